"""Files shipped beside the manager (``assets``), listed with their SHA-256
in its manifest and checked by the host when it loads the manager.
Read-only; programs see an asset by its path (`path`)."""

from ._bindings import MAX_READ, call, read_chunked, wit  # noqa: F401 (MAX_READ re-exported)


def names():
    """The asset names, sorted."""
    return list(wit().assets.names())


def path(name):
    """Absolute path of asset ``name``, to hand to a program."""
    return call(f"asset {name}", wit().assets.path, name)


def size(name):
    return call(f"asset {name}", wit().assets.size, name)


def read(name, offset=0, length=None):
    """Bytes of asset ``name`` from ``offset``: ``length`` of them or to the end."""
    if length is None:
        length = size(name) - offset
    return read_chunked(f"asset {name}", wit().assets.read, name, offset, length)


def read_text(name):
    return read(name).decode("utf-8", "replace")
