"""Write an Ironic hardware manager in Python, as a WebAssembly component
for ironic-wasm-agent (contract ``ironic:hardware@0.3.0``).

::

    from ironic_hardware import (HardwareManager, step, machine, run,
                                 SUPPORT_NONE, SUPPORT_SERVICE_PROVIDER)

    class Vendor(HardwareManager):
        id = "VendorHardwareManager"
        name = "vendor_hardware_manager"
        version = "1.0"

        def evaluate_hardware_support(self):
            vendor = machine.read_trimmed("/sys/class/dmi/id/sys_vendor")
            return SUPPORT_SERVICE_PROVIDER if vendor == "Example Corp" else SUPPORT_NONE

        @step("clean", priority=0, interface="management", abortable=True,
              args={"version": {"description": "firmware version", "required": True}})
        def update_firmware(self, node, ports, version):
            run("vendor-flash", "--version", version)   # raises on a non-zero exit
            return {"installed": version}

Build it (componentize-py with the bundled contract, manifest embedded)::

    python -m ironic_hardware.build app.py -o vendor.wasm --manifest manifest.toml

See docs/managers/python.md in the ironic-wasm-agent repository.
"""

from . import assets, commands, fallback, log, machine, scratch
from .commands import Completed, run
from .errors import (
    Denied,
    Failed,
    HostError,
    Incompatible,
    InvalidArgument,
    ManagerError,
    NotFound,
    ProcessExecutionError,
    Unsupported,
)
from .manager import (
    SUPPORT_GENERIC,
    SUPPORT_MAINLINE,
    SUPPORT_NONE,
    SUPPORT_SERVICE_PROVIDER,
    HardwareManager,
)
from .machine import read_text, read_trimmed
from .records import (
    block_device,
    boot_info,
    cpu,
    memory,
    network_interface,
    system_firmware,
    system_vendor,
    with_extra,
)
from .steps import step
from .transfer import Fetched, fetch, report_device_progress, report_progress

#: The contract version this SDK builds components for.
CONTRACT_VERSION = "0.3.0"
__version__ = "0.3.0"


def list_block_devices():
    """The block devices as the next manager in support order sees them
    (IPA's ``dispatch_to_managers('list_block_devices')`` from a vendor
    manager): the generic manager's list, to filter or extend."""
    return fallback.list_block_devices()


def root_device_hints(node):
    """The node's root device hints (``properties.root_device``), ``{}``
    when none."""
    hints = ((node or {}).get("properties") or {}).get("root_device") or {}
    return hints if isinstance(hints, dict) else {}


def port_macs(ports):
    """The MAC addresses of Ironic's ports (lower case), in order."""
    return [str(p.get("address", "")).lower() for p in ports or [] if isinstance(p, dict)]
