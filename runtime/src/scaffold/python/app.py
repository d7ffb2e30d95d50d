"""@NAME@: a hardware manager for ironic-wasm-agent (contract
ironic:hardware@0.3.0). Every method not written here answers
``unsupported``, so the agent asks the next manager in support order."""

from ironic_hardware import (
    SUPPORT_NONE,
    SUPPORT_SERVICE_PROVIDER,
    HardwareManager,
    log,
    read_trimmed,
    report_progress,
    step,
)

#: DMI ``sys_vendor`` of the machines this manager is for; ``None`` claims
#: every machine.
VENDOR = None


class Manager(HardwareManager):
    id = "@ID@"
    name = "@MANAGER_NAME@"
    version = "1.0"

    def evaluate_hardware_support(self):
        vendor = read_trimmed("/sys/class/dmi/id/sys_vendor", default="")
        if VENDOR is not None and vendor != VENDOR:
            return SUPPORT_NONE
        return SUPPORT_SERVICE_PROVIDER

    @step("clean", priority=0, interface="deploy",
          args={"message": {"description": "text to log and return", "required": True}})
    def example_step(self, node, ports, message):
        report_progress(50, f"example_step: {message}")
        log.info(f"example_step: {message}")
        vendor = read_trimmed("/sys/class/dmi/id/sys_vendor", default="")
        return {"message": message, "sys_vendor": vendor}
