"""The base class of a manager and its export as the component's
``ironic:hardware/manager`` interface."""

import json
import traceback

from . import steps as _steps
from ._bindings import wit
from .errors import Failed, HostError, ManagerError, Unsupported

#: Support levels (IPA's ``HardwareSupport``).
SUPPORT_NONE = 0
SUPPORT_GENERIC = 1
SUPPORT_MAINLINE = 2
SUPPORT_SERVICE_PROVIDER = 3


class HardwareManager:
    """Subclass it, set ``id``, ``name`` and ``version``, implement
    `evaluate_hardware_support`, declare steps with ``@step``, and override
    the inventory methods your hardware needs. Every other method answers
    `Unsupported`, so the agent asks the next manager in support order.

    ``id`` plays the role of IPA's class name (it keys step maps); ``name``
    and ``version`` are what Ironic sees in ``hardware_manager_version``.
    """

    id = None
    name = None
    version = None

    def evaluate_hardware_support(self):
        """0 none (not used), 1 generic, 2 mainline, 3 service provider."""
        raise Failed(f"{type(self).__name__} does not implement evaluate_hardware_support")

    def get_cpus(self):
        raise Unsupported("get-cpus")

    def get_memory(self):
        raise Unsupported("get-memory")

    def list_block_devices(self):
        raise Unsupported("list-block-devices")

    def list_network_interfaces(self):
        raise Unsupported("list-network-interfaces")

    def get_bmc_address(self):
        raise Unsupported("get-bmc-address")

    def get_bmc_v6address(self):
        raise Unsupported("get-bmc-v6address")

    def get_bmc_mac(self):
        raise Unsupported("get-bmc-mac")

    def get_system_vendor_info(self):
        raise Unsupported("get-system-vendor-info")

    def get_boot_info(self):
        raise Unsupported("get-boot-info")

    def get_os_install_device(self, node):
        """``node``: the node Ironic sent (a dict) or ``None``."""
        raise Unsupported("get-os-install-device")

    def get_steps(self, kind, node, ports):
        """The steps of ``kind`` (``clean``, ``deploy``, ``service``): by
        default those declared with ``@step``. An override may filter
        ``super().get_steps(...)`` by node."""
        return _steps.listing(_steps.collect(type(self)), kind)

    def execute_step(self, kind, name, node, ports, args):
        """Run a step declared with ``@step``, its arguments checked first."""
        return _steps.run(self, _steps.collect(type(self)), kind, name, node, ports, args)


# --- the export ---

def _variant(error):
    """This SDK's exception as the contract's ``manager-error`` value."""
    t = wit().types
    if isinstance(error, Failed):
        return t.ManagerError_Failed(t.Failure(error_type=error.error_type, details=error.message))
    cls = {
        "unsupported": t.ManagerError_Unsupported,
        "incompatible": t.ManagerError_Incompatible,
        "invalid-argument": t.ManagerError_InvalidArgument,
    }[error.case]
    return cls(error.message)


def _where(e):
    frames = traceback.extract_tb(e.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {last.filename}:{last.lineno})"


def _guard(call, func, *args):
    w = wit()
    try:
        return func(*args)
    except ManagerError as e:
        raise w.Err(_variant(e)) from None
    except HostError as e:
        raise w.Err(_variant(Failed(str(e)))) from None
    except w.Err:
        raise
    except Exception as e:  # a bug in the manager: a clear failure, not a trap
        raise w.Err(_variant(Failed(f"{call}: {type(e).__name__}: {e}{_where(e)}"))) from None


def _step_record(spec):
    t = wit().types
    if not isinstance(spec, _steps.StepSpec):
        return spec  # already a record (an override built it)
    args = spec.argsinfo()
    return t.Step(
        name=spec.name,
        priority=spec.priority,
        interface=spec.interface,
        reboot_requested=spec.reboot_requested,
        abortable=spec.abortable,
        argsinfo=None if args is None else [
            t.ArgInfo(name=n, description=d, required=r) for n, d, r in args
        ],
    )


def _kind(kind):
    return kind.name.lower()


def export(cls):
    """The class componentize-py exports for manager class ``cls``; checks
    ``cls`` first (at build time), naming what is missing."""
    if not (isinstance(cls, type) and issubclass(cls, HardwareManager)):
        raise TypeError(f"{cls!r} is not a subclass of ironic_hardware.HardwareManager")
    for attr in ("id", "name", "version"):
        value = getattr(cls, attr)
        if not isinstance(value, str) or not value.strip():
            raise TypeError(
                f"{cls.__name__}.{attr} must be a non-empty string (e.g. "
                f"{attr} = {'VendorHardwareManager' if attr == 'id' else 'vendor_hardware_manager' if attr == 'name' else '1.0'!r})"
            )
    if cls.evaluate_hardware_support is HardwareManager.evaluate_hardware_support:
        raise TypeError(f"{cls.__name__} must implement evaluate_hardware_support(self)")
    _steps.collect(cls)  # declarations checked when the module was imported

    holder = {}

    def me():
        if "m" not in holder:
            holder["m"] = cls()
        return holder["m"]

    class Manager:
        def info(self):
            def answer():
                return wit().types.ManagerInfo(id=cls.id, name=cls.name, version=cls.version)
            return _guard("info", answer)

        def evaluate_hardware_support(self):
            def answer():
                level = me().evaluate_hardware_support()
                if not isinstance(level, int) or level < 0:
                    raise TypeError(f"support level must be an int >= 0, got {level!r}")
                return level
            return _guard("evaluate-hardware-support", answer)

        def get_cpus(self):
            return _guard("get-cpus", lambda: me().get_cpus())

        def get_memory(self):
            return _guard("get-memory", lambda: me().get_memory())

        def list_block_devices(self):
            return _guard("list-block-devices", lambda: list(me().list_block_devices()))

        def list_network_interfaces(self):
            return _guard("list-network-interfaces", lambda: list(me().list_network_interfaces()))

        def get_bmc_address(self):
            return _guard("get-bmc-address", lambda: me().get_bmc_address())

        def get_bmc_v6address(self):
            return _guard("get-bmc-v6address", lambda: me().get_bmc_v6address())

        def get_bmc_mac(self):
            return _guard("get-bmc-mac", lambda: me().get_bmc_mac())

        def get_system_vendor_info(self):
            return _guard("get-system-vendor-info", lambda: me().get_system_vendor_info())

        def get_boot_info(self):
            return _guard("get-boot-info", lambda: me().get_boot_info())

        def get_os_install_device(self, node):
            def answer():
                parsed = None if node is None else _steps.parse_json("node", node, None)
                return me().get_os_install_device(parsed)
            return _guard("get-os-install-device", answer)

        def get_steps(self, kind, node, ports):
            def answer():
                listed = me().get_steps(
                    _kind(kind),
                    _steps.parse_json("node", node, {}),
                    _steps.parse_json("ports", ports, []),
                )
                return [_step_record(s) for s in listed]
            return _guard("get-steps", answer)

        def execute_step(self, kind, name, node, ports, args):
            def answer():
                result = me().execute_step(
                    _kind(kind),
                    name,
                    _steps.parse_json("node", node, {}),
                    _steps.parse_json("ports", ports, []),
                    _steps.parse_args(args),
                )
                try:
                    return json.dumps(result)
                except (TypeError, ValueError) as e:
                    raise Failed(f"step {name}: result is not JSON-serialisable: {e}") from None
            return _guard(f"execute-step {name}", answer)

    Manager.__qualname__ = Manager.__name__ = "Manager"
    Manager.wrapped = cls
    return Manager


def find_manager(module):
    """The export of the one `HardwareManager` subclass defined in
    ``module`` (or of ``module.Manager`` when it names one)."""
    explicit = getattr(module, "Manager", None)
    if isinstance(explicit, type) and issubclass(explicit, HardwareManager):
        return export(explicit)
    found = [
        v for v in vars(module).values()
        if isinstance(v, type) and issubclass(v, HardwareManager)
        and v is not HardwareManager and v.__module__ == module.__name__
    ]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise TypeError(
            f"{module.__name__} must define exactly one subclass of "
            f"ironic_hardware.HardwareManager (found: {names}); name the one to export "
            "`Manager`"
        )
    return export(found[0])
