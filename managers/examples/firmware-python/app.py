"""A firmware-update manager in Python, on contract ironic:hardware@0.3.0
only, with the ironic_hardware SDK: the main job a vendor ships a manager
for, without a new ramdisk.

The clean (and service) step ``flash_firmware(url, sha256, version)``:

1. downloads the firmware image with the host's ``fetch`` into the call's
   private scratch space; the host checks the pinned SHA-256 before the
   manager sees success, and caps the size;
2. runs the vendor's flashing tool ``flash-tool`` (granted by the operator;
   a stand-in on simulated machines) with the image's path and
   ``FLASH_MODE=safe`` in its environment;
3. reports progress at each stage and returns what was flashed.

The scratch space is wiped when the call ends.
"""

import re

from ironic_hardware import (
    SUPPORT_NONE,
    SUPPORT_SERVICE_PROVIDER,
    HardwareManager,
    InvalidArgument,
    fetch,
    log,
    read_trimmed,
    report_progress,
    run,
    step,
)

VENDOR = "Dell Inc."
TOOL = "flash-tool"
FLASH_TIMEOUT_MS = 30 * 60 * 1000
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class FirmwareUpdate(HardwareManager):
    id = "ExampleFirmwarePythonManager"
    name = "example_firmware_python"
    version = "1.0"

    def evaluate_hardware_support(self):
        vendor = read_trimmed("/sys/class/dmi/id/sys_vendor", default="")
        return SUPPORT_SERVICE_PROVIDER if vendor == VENDOR else SUPPORT_NONE

    # Ironic takes an agent's clean steps from the deploy interface only.
    @step(("clean", "service"), priority=0, interface="deploy", abortable=False, args={
        "url": {"description": "HTTP(S) URL of the firmware image", "required": True},
        "sha256": {"description": "SHA-256 of the image (hex)", "required": True},
        "version": {"description": "firmware version the image holds", "required": True},
    })
    def flash_firmware(self, node, ports, url, sha256, version):
        sha256 = str(sha256).lower()
        if not SHA256.match(sha256):
            raise InvalidArgument(f"flash_firmware: sha256 {sha256!r} is not 64 hex digits")
        if not isinstance(version, str) or not version or version.startswith("-"):
            raise InvalidArgument(f"flash_firmware: invalid version {version!r}")

        report_progress(0, f"downloading {url}")
        image = fetch(url, "firmware.bin", sha256=sha256)
        report_progress(50, f"downloaded {image.size} bytes; flashing {version}")
        log.info(f"flash_firmware: flashing {version} from {image.path}")
        out = run(TOOL, "--image", image.path, "--version", version,
                  env={"FLASH_MODE": "safe"}, timeout_ms=FLASH_TIMEOUT_MS)
        report_progress(100, f"firmware {version} flashed")
        return {
            "flashed": version,
            "size": image.size,
            "sha256": image.sha256,
            "tool_output": out.stdout.strip(),
        }
