"""An example vendor hardware manager written in Python.

It is the kind of manager a hardware vendor ships next to the generic one:

* it claims the machine (support 3, "service provider") only when the DMI
  system vendor is the vendor's, and is not used at all otherwise;
* it overrides one inventory call, ``get-system-vendor-info``, reporting the
  firmware version the vendor's own tool (``vendor-fw-update --query``) sees
  instead of the one DMI carries; every other inventory call answers
  ``unsupported`` so the generic manager answers it;
* it offers a clean (and service) step ``update_firmware`` that runs the
  vendor tool with the requested version, reports progress and returns a
  JSON result.

Everything the manager touches goes through the host's capabilities
(``machine``, ``commands``, ``progress``, ``log``), each declared in
``manifest.toml`` and granted by the operator.
"""

import json
import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import commands, log, machine, progress
from wit_world.imports.types import (
    ArgInfo,
    Failure,
    ManagerError_Failed,
    ManagerError_InvalidArgument,
    ManagerError_Unsupported,
    ManagerInfo,
    Step,
    StepKind,
    SystemFirmware,
    SystemVendor,
)

# The vendor this manager is for: DMI's sys_vendor (the default simulated
# machine's manufacturer).
VENDOR = "Dell Inc."
# The vendor's firmware tool; declared in manifest.toml, granted by the operator.
TOOL = "vendor-fw-update"
TOOL_TIMEOUT_MS = 30 * 60 * 1000

SUPPORT_NONE = 0
SUPPORT_SERVICE_PROVIDER = 3

DMI = "/sys/class/dmi/id/"


def unsupported(what):
    return Err(ManagerError_Unsupported(what))


def failed(details, error_type=None):
    return Err(ManagerError_Failed(Failure(error_type=error_type, details=details)))


def invalid(details):
    return Err(ManagerError_InvalidArgument(details))


def describe(err):
    """`Err(CommandError_NotFound(value='x'))` -> `not-found: x`."""
    value = err.value
    case = type(value).__name__.split("_", 1)[-1]
    kind = re.sub(r"(?<!^)(?=[A-Z])", "-", case).lower()
    return f"{kind}: {getattr(value, 'value', value)}"


def dmi(name):
    """A DMI attribute, stripped; "" when absent or not readable."""
    try:
        return machine.read_file(DMI + name).decode("utf-8", "replace").strip()
    except Err as e:
        if isinstance(e.value, machine.MachineError_Denied):
            # Forgotten grant: say so, or the manager just looks unused.
            log.log(log.Level.WARN, f"cannot read DMI {name}: {describe(e)}")
        return ""


def run_tool(args, timeout_ms=TOOL_TIMEOUT_MS):
    """Run the vendor tool; returns (exit code, stdout, stderr) or raises Err."""
    try:
        out = commands.run(TOOL, args, None, timeout_ms)
    except Err as e:
        raise failed(f"{TOOL} {' '.join(args)}: {describe(e)}")
    return (
        out.exit_code,
        out.stdout.decode("utf-8", "replace"),
        out.stderr.decode("utf-8", "replace"),
    )


def query_version():
    """The firmware version the vendor tool reports (`current-version: X`)."""
    code, stdout, stderr = run_tool(["--query"], 60_000)
    if code != 0:
        raise failed(f"{TOOL} --query exited with {code}: {stderr.strip()}")
    for line in stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "current-version" and value.strip():
            return value.strip()
    raise failed(f"{TOOL} --query printed no current-version line")


class Manager(exports.Manager):
    def info(self):
        return ManagerInfo(
            id="ExampleVendorPythonManager",
            name="example_vendor_python",
            version="1.0",
        )

    def evaluate_hardware_support(self):
        vendor = dmi("sys_vendor")
        if vendor == VENDOR:
            log.log(log.Level.INFO, f"{VENDOR} hardware: support level 3")
            return SUPPORT_SERVICE_PROVIDER
        return SUPPORT_NONE

    # --- inventory: one override, the rest is the generic manager's ---

    def get_system_vendor_info(self):
        try:
            version = query_version()
        except Err as e:
            # No vendor tool (or it failed): let the next manager answer.
            why = getattr(e.value.value, "details", e.value.value)
            log.log(log.Level.WARN, f"vendor firmware version unknown ({why}); deferring")
            raise unsupported("get-system-vendor-info: vendor tool unavailable")
        return SystemVendor(
            product_name=dmi("product_name"),
            serial_number=dmi("product_serial"),
            manufacturer=dmi("sys_vendor"),
            firmware=SystemFirmware(
                vendor=dmi("bios_vendor"),
                version=version,
                build_date=dmi("bios_date"),
            ),
        )

    def get_cpus(self):
        raise unsupported("get-cpus")

    def get_memory(self):
        raise unsupported("get-memory")

    def list_block_devices(self):
        raise unsupported("list-block-devices")

    def list_network_interfaces(self):
        raise unsupported("list-network-interfaces")

    def get_bmc_address(self):
        raise unsupported("get-bmc-address")

    def get_bmc_v6address(self):
        raise unsupported("get-bmc-v6address")

    def get_bmc_mac(self):
        raise unsupported("get-bmc-mac")

    def get_boot_info(self):
        raise unsupported("get-boot-info")

    def get_os_install_device(self, node):
        raise unsupported("get-os-install-device")

    # --- steps ---

    def get_steps(self, kind, node, ports):
        if kind not in (StepKind.CLEAN, StepKind.SERVICE):
            return []
        return [
            Step(
                name="update_firmware",
                priority=0,  # never runs automatically: only when asked for
                interface="management",
                reboot_requested=False,
                abortable=True,
                argsinfo=[
                    ArgInfo(
                        name="version",
                        description="firmware version to install, e.g. 2.19.0",
                        required=True,
                    )
                ],
            )
        ]

    def execute_step(self, kind, name, node, ports, args):
        if name != "update_firmware":
            raise unsupported(name)
        try:
            args = json.loads(args) if args else {}
        except ValueError as e:
            raise invalid(f"update_firmware: arguments are not JSON: {e}")
        version = args.get("version") if isinstance(args, dict) else None
        if not isinstance(version, str) or not version.strip():
            raise invalid("update_firmware: missing required argument version")
        if version.startswith("-") or any(c.isspace() for c in version):
            raise invalid(f"update_firmware: invalid version {version!r}")

        progress.report(0, f"checking the installed firmware")
        previous = query_version()
        if previous == version:
            progress.report(100, f"firmware {version} already installed")
            return json.dumps(
                {"updated": False, "version": version, "previous_version": previous}
            )

        progress.report(10, f"installing firmware {version} (was {previous})")
        log.log(log.Level.INFO, f"update_firmware: {previous} -> {version}")
        code, stdout, stderr = run_tool(
            ["--install", version, "--component", "bios", "--non-interactive"]
        )
        if code != 0:
            raise failed(
                f"{TOOL} exited with {code}: {stderr.strip() or stdout.strip()}"
            )
        progress.report(100, f"firmware {version} installed")
        return json.dumps(
            {
                "updated": True,
                "version": version,
                "previous_version": previous,
                "tool_output": stdout.strip(),
            }
        )
