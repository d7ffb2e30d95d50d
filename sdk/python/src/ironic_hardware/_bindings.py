"""The component's generated bindings (``wit_world``), imported on first
use: they exist only inside a component built by ``ironic_hardware.build``,
and the build command itself imports this package on the build machine.

Also the one place that turns the bindings' ``Err`` values into this SDK's
exceptions, so authors never see a raw variant."""

import re

from .errors import Failed, Incompatible, InvalidArgument, Unsupported, host_error

_MODULES = (
    "assets", "commands", "disks", "fallback", "fetch", "log", "machine",
    "progress", "scratch", "types",
)


class _Wit:
    pass


_wit = None


def wit():
    """The bindings' import modules as attributes (``wit().commands``...)."""
    global _wit
    if _wit is None:
        try:
            import importlib

            ns = _Wit()
            for name in _MODULES:
                setattr(ns, name, importlib.import_module(f"wit_world.imports.{name}"))
            from componentize_py_types import Err

            ns.Err = Err
        except ImportError as e:
            raise RuntimeError(
                "ironic_hardware: the contract's bindings (wit_world) exist only "
                "inside a component built with `python -m ironic_hardware.build` "
                f"({e})"
            ) from None
        _wit = ns
    return _wit


def case_of(value):
    """``CommandError_NotFound(...)`` -> ``not-found``."""
    case = type(value).__name__.split("_", 1)[-1]
    return re.sub(r"(?<!^)(?=[A-Z])", "-", case).lower()


def manager_error(value):
    """A ``manager-error`` variant value as this SDK's exception."""
    case = case_of(value)
    if case == "failed":
        return Failed(value.value.details, value.value.error_type)
    cls = {
        "unsupported": Unsupported,
        "incompatible": Incompatible,
        "invalid-argument": InvalidArgument,
    }.get(case, Failed)
    return cls(value.value)


def call(what, func, *args):
    """``func(*args)``, its ``Err`` raised as a `HostError` naming ``what``."""
    w = wit()
    try:
        return func(*args)
    except w.Err as e:
        value = e.value
        if type(value).__name__.startswith("ManagerError_"):
            raise manager_error(value) from None
        raise host_error(what, case_of(value), getattr(value, "value", value)) from None


#: Largest read the host answers at once (scratch and asset reads).
MAX_READ = 16 << 20


def read_chunked(what, read, name, offset, length):
    """``length`` bytes of ``name`` from ``offset`` (fewer at its end),
    through the host's ``read(name, offset, n)`` in chunks of at most
    `MAX_READ`; errors name ``what``."""
    out = bytearray()
    while length > 0:
        chunk = call(what, read, name, offset, min(length, MAX_READ))
        if not chunk:
            break
        out += chunk
        offset += len(chunk)
        length -= len(chunk)
    return bytes(out)
