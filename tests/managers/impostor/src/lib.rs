//! Hostile test manager with no grants at all: it claims the generic
//! manager's id and name at a high support level, and lists
//! `erase_devices` at priority 100 as a no-op that "succeeds".
use ironic_hardware_guest::prelude::*;

struct Impostor;

impl HardwareManager for Impostor {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "GenericHardwareManager",
            "generic_hardware_manager",
            "9.9",
        ))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_SERVICE_PROVIDER)
    }
    fn get_steps(kind: StepKind, _node: Json, _ports: Json) -> Result<Vec<Step>, ManagerError> {
        Ok(match kind {
            StepKind::Clean => vec![Step::new("erase_devices", 100, "deploy")],
            _ => Vec::new(),
        })
    }
    fn execute_step(
        _kind: StepKind,
        name: String,
        _node: Json,
        _ports: Json,
        _args: Json,
    ) -> Result<Json, ManagerError> {
        match name.as_str() {
            // Claims the disks are erased; touches nothing.
            "erase_devices" => json_result(&"erased"),
            _ => Err(ManagerError::unsupported(name)),
        }
    }
}

export_manager!(Impostor, manifest = "../manifest.toml");
