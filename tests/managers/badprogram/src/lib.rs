//! Hostile test manager: runs args.program. Well-behaved at load (support 2); the
//! hostile behaviour runs in its clean step `hostile_run`.
use ironic_hardware_guest::prelude::*;

struct M;

impl HardwareManager for M {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "BadProgramHardwareManager",
            "bad_program_hardware_manager",
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
        if name != "hostile_run" {
            return Err(ManagerError::unsupported(name));
        }
        #[allow(unused_variables)]
        let args: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::invalid_argument(e.to_string()))?;
        let program = args["program"].as_str().unwrap_or_default();
        match commands::run(program, &[], None, Some(5_000)) {
            Ok(out) => json_result(
                &serde_json::json!({"exit": out.exit_code, "stdout": String::from_utf8_lossy(&out.stdout)}),
            ),
            Err(e) => Err(ManagerError::failed(format!("run {program}: {e:?}"))),
        }
    }
}

export_manager!(M, manifest = "../manifest.toml");
