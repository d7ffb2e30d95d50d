"""Read-only view of the machine (``machine``): files, directories and
links under the paths the manager declared and the operator granted, with
absolute paths as on the real machine (``/sys/class/dmi/id/sys_vendor``)."""

from ._bindings import call, wit
from .errors import HostError


def read_bytes(path):
    """A file's contents (at most 16 MiB); raises `HostError`."""
    return call(path, wit().machine.read_file, path)


def read_text(path):
    """A file's contents as text (invalid UTF-8 replaced); raises `HostError`
    (`NotFound`, `Denied`, ...)."""
    return read_bytes(path).decode("utf-8", "replace")


def read_trimmed(path, default=None):
    """A file's text, stripped; ``default`` when absent, unreadable or empty.
    A denied read is logged, since it usually means a missing grant."""
    try:
        text = read_text(path).strip()
    except HostError as e:
        if e.kind == "denied":
            from . import log

            log.warn(f"cannot read {path}: {e}")
        return default
    return text or default


def list_dir(path):
    """``[(name, kind)]`` of a directory, sorted by name; ``kind`` is
    ``file``, ``directory``, ``symlink``, ``block-device``, ``char-device``
    or ``other``."""
    entries = call(path, wit().machine.list_dir, path)
    return [(e.name, e.kind.name.lower().replace("_", "-")) for e in entries]


def read_link(path):
    return call(path, wit().machine.read_link, path)


def kind(path):
    """The kind of the entry at ``path`` (following links), or ``None`` when
    there is none."""
    from .errors import NotFound

    try:
        k = call(path, wit().machine.kind, path)
    except NotFound:
        return None
    return k.name.lower().replace("_", "-")


def exists(path):
    return kind(path) is not None


def remove_file(path):
    """Remove a file (needs ``[machine] remove`` declared and granted)."""
    call(path, wit().machine.remove_file, path)


def network_addresses():
    """``[(interface, family, address)]``; family ``ipv4`` or ``ipv6``."""
    out = call("network-addresses", wit().machine.network_addresses)
    return [(a.interface, a.family.name.lower(), a.address) for a in out]
