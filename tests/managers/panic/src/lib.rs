//! Hostile test manager: panics. Well-behaved at load (support 2); the
//! hostile behaviour runs in its clean step `hostile_panic`.
use ironic_hardware_guest::prelude::*;

struct M;

impl HardwareManager for M {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "PanicHardwareManager",
            "panic_hardware_manager",
            "1.0",
        ))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_MAINLINE)
    }
    fn execute_step(
        _kind: StepKind,
        name: String,
        _node: Json,
        _ports: Json,
        args: Json,
    ) -> Result<Json, ManagerError> {
        if name != "hostile_panic" {
            return Err(ManagerError::unsupported(name));
        }
        #[allow(unused_variables)]
        let args: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::invalid_argument(e.to_string()))?;
        panic!("hostile manager panicked on purpose");
    }
}

export_manager!(M, manifest = "../manifest.toml");
