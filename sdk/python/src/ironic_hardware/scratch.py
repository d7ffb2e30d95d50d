"""The manager's private scratch directory (``scratch``): files by name
(letters, digits, ``.``, ``_``, ``-``), a size cap, wiped when the call
ends. Programs see a file by its path (`file_path`)."""

from ._bindings import MAX_READ, call, read_chunked, wit  # noqa: F401 (MAX_READ re-exported)


def path():
    """Absolute path of the scratch directory, to hand to a program."""
    return call("scratch path", wit().scratch.path)


def file_path(name):
    """Absolute path of file ``name`` in it."""
    return call(f"scratch {name}", wit().scratch.file_path, name)


def write(name, data, offset=0):
    """Write ``data`` (bytes or text) at ``offset`` of file ``name``."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    call(f"scratch {name}", wit().scratch.write, name, offset, bytes(data))


def read(name, offset=0, length=None):
    """Bytes of file ``name`` from ``offset``: ``length`` of them, or to the
    end (read in chunks of at most 16 MiB)."""
    if length is None:
        length = size(name) - offset
    return read_chunked(f"scratch {name}", wit().scratch.read, name, offset, length)


def read_text(name):
    return read(name).decode("utf-8", "replace")


def size(name):
    return call(f"scratch {name}", wit().scratch.size, name)


def remove(name):
    call(f"scratch {name}", wit().scratch.remove, name)


def list_files():
    return call("scratch list", wit().scratch.list_files)
