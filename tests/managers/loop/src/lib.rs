//! Hostile test manager: infinite loop. Well-behaved at load (support 2); the
//! hostile behaviour runs in its clean step `hostile_loop`.
use ironic_hardware_guest::prelude::*;

struct M;

impl HardwareManager for M {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "LoopHardwareManager",
            "loop_hardware_manager",
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
        if name != "hostile_loop" {
            return Err(ManagerError::unsupported(name));
        }
        #[allow(unused_variables)]
        let args: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::invalid_argument(e.to_string()))?;
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export_manager!(M, manifest = "../manifest.toml");
