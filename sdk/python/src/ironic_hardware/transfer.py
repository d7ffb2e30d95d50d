"""Progress reports and downloads into the scratch space."""

from ._bindings import call, wit


def report_progress(percent, message):
    """Progress of the running step (``percent`` 0-100 or ``None``), shown
    in the command's status."""
    wit().progress.report(None if percent is None else int(percent), str(message))


def report_device_progress(device, percent, message):
    """Progress of one device within the step; the host shows every
    device's latest report together."""
    wit().progress.report_device(device, None if percent is None else int(percent), str(message))


class Fetched:
    """A downloaded file: ``name`` in the scratch space, ``size``,
    ``sha256`` (lower-case hex) and ``path`` (absolute, for a program)."""

    def __init__(self, name, size, sha256, path):
        self.name = name
        self.size = size
        self.sha256 = sha256
        self.path = path

    def __repr__(self):
        return f"Fetched({self.name!r}, size={self.size}, sha256={self.sha256!r})"


def fetch(url, name, sha256=None, max_bytes=None):
    """HTTP(S) GET ``url`` (granted in ``[fetch] urls``) into scratch file
    ``name``. With ``sha256`` the digest is checked before this returns (a
    mismatch raises `HostError` kind ``checksum-mismatch`` and leaves no
    file). The host streams the body and reports progress."""
    got = call(f"fetch {url}", wit().fetch.get, url, name, sha256, max_bytes)
    path = call(f"scratch {got.name}", wit().scratch.file_path, got.name)
    return Fetched(got.name, got.size, got.sha256, path)
