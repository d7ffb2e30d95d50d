"""An example vendor hardware manager written in Python with the
ironic_hardware SDK (sdk/python).

It is the kind of manager a hardware vendor ships next to the generic one:

* it claims the machine (support 3, "service provider") only when the DMI
  system vendor is the vendor's, and is not used at all otherwise;
* it overrides one inventory call, ``get-system-vendor-info``, reporting the
  firmware version the vendor's own tool (``vendor-fw-update --query``) sees
  instead of the one DMI carries; every other inventory call is the SDK's
  default ``unsupported``, so the generic manager answers it;
* it offers a clean (and service) step ``update_firmware`` that runs the
  vendor tool with the requested version, reports progress and returns a
  JSON result.

Everything the manager touches goes through the host's capabilities
(``machine``, ``commands``, ``progress``, ``log``), each declared in
``manifest.toml`` and granted by the operator.
"""

from ironic_hardware import (
    SUPPORT_NONE,
    SUPPORT_SERVICE_PROVIDER,
    Failed,
    HardwareManager,
    HostError,
    InvalidArgument,
    Unsupported,
    log,
    read_trimmed,
    records,
    report_progress,
    run,
    step,
)

# The vendor this manager is for: DMI's sys_vendor (the default simulated
# machine's manufacturer).
VENDOR = "Dell Inc."
# The vendor's firmware tool; declared in manifest.toml, granted by the operator.
TOOL = "vendor-fw-update"
TOOL_TIMEOUT_MS = 30 * 60 * 1000

DMI = "/sys/class/dmi/id/"


def dmi(name):
    """A DMI attribute, stripped; "" when absent or not readable."""
    return read_trimmed(DMI + name, default="")


def query_version():
    """The firmware version the vendor tool reports (`current-version: X`)."""
    out = run(TOOL, "--query", timeout_ms=60_000)
    for line in out.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "current-version" and value.strip():
            return value.strip()
    raise Failed(f"{TOOL} --query printed no current-version line")


class ExampleVendor(HardwareManager):
    id = "ExampleVendorPythonManager"
    name = "example_vendor_python"
    version = "1.0"

    def evaluate_hardware_support(self):
        if dmi("sys_vendor") == VENDOR:
            log.info(f"{VENDOR} hardware: support level 3")
            return SUPPORT_SERVICE_PROVIDER
        return SUPPORT_NONE

    # --- inventory: one override, the rest is the generic manager's ---

    def get_system_vendor_info(self):
        try:
            version = query_version()
        except (HostError, Failed) as e:
            # No vendor tool (or it failed): let the next manager answer.
            log.warn(f"vendor firmware version unknown ({e}); deferring")
            raise Unsupported("get-system-vendor-info: vendor tool unavailable") from None
        return records.system_vendor(
            product_name=dmi("product_name"),
            serial_number=dmi("product_serial"),
            manufacturer=dmi("sys_vendor"),
            firmware=records.system_firmware(
                vendor=dmi("bios_vendor"), version=version, build_date=dmi("bios_date")
            ),
        )

    # --- steps ---

    @step(
        ("clean", "service"),
        priority=0,  # never runs automatically: only when asked for
        interface="management",
        abortable=True,
        args={
            "version": {
                "description": "firmware version to install, e.g. 2.19.0",
                "required": True,
            }
        },
    )
    def update_firmware(self, node, ports, version):
        if not isinstance(version, str) or not version.strip():
            raise InvalidArgument(
                f"update_firmware: missing required argument version (text, got {version!r})"
            )
        if version.startswith("-") or any(c.isspace() for c in version):
            raise InvalidArgument(f"update_firmware: invalid version {version!r}")

        report_progress(0, "checking the installed firmware")
        previous = query_version()
        if previous == version:
            report_progress(100, f"firmware {version} already installed")
            return {"updated": False, "version": version, "previous_version": previous}

        report_progress(10, f"installing firmware {version} (was {previous})")
        log.info(f"update_firmware: {previous} -> {version}")
        out = run(TOOL, "--install", version, "--component", "bios", "--non-interactive",
                  timeout_ms=TOOL_TIMEOUT_MS)
        report_progress(100, f"firmware {version} installed")
        return {
            "updated": True,
            "version": version,
            "previous_version": previous,
            "tool_output": out.stdout.strip(),
        }
