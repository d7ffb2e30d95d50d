//! Hostile test manager: reads a path given in args.path. Well-behaved at load (support 2); the
//! hostile behaviour runs in its clean step `hostile_escape`.
use ironic_hardware_guest::prelude::*;

struct M;

impl HardwareManager for M {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "EscapeHardwareManager",
            "escape_hardware_manager",
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
        if name != "hostile_escape" {
            return Err(ManagerError::unsupported(name));
        }
        #[allow(unused_variables)]
        let args: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::invalid_argument(e.to_string()))?;
        let path = args["path"].as_str().unwrap_or_default();
        match machine::read_file(path) {
            Ok(bytes) => {
                json_result(&serde_json::json!({"content": String::from_utf8_lossy(&bytes)}))
            }
            Err(e) => Err(ManagerError::failed(format!("read-file {path}: {e:?}"))),
        }
    }
}

export_manager!(M, manifest = "../manifest.toml");
