//! Test manager at support 3 (service provider): overrides
//! `get-system-vendor-info`, answers unsupported for every other inventory
//! method (so the generic manager answers those), and offers one clean step,
//! `vendor_flash`, with a required `version` argument; the step echoes its
//! arguments and reports progress.
use ironic_hardware_guest::prelude::*;

struct Override;

impl HardwareManager for Override {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "OverrideHardwareManager",
            "override_hardware_manager",
            "1.0",
        ))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_SERVICE_PROVIDER)
    }
    fn get_system_vendor_info() -> Result<SystemVendor, ManagerError> {
        Ok(SystemVendor {
            product_name: "Override Product".into(),
            serial_number: "OVR-0001".into(),
            manufacturer: "Override Corp".into(),
            firmware: SystemFirmware {
                vendor: "Override Corp".into(),
                version: "9.9.9".into(),
                build_date: "01/01/2030".into(),
            },
            extra: None,
        })
    }
    fn get_steps(kind: StepKind, _node: Json, _ports: Json) -> Result<Vec<Step>, ManagerError> {
        Ok(match kind {
            StepKind::Clean => vec![Step::new("vendor_flash", 0, "management")
                .abortable(false)
                .arg("version", "firmware version to flash", true)],
            _ => Vec::new(),
        })
    }
    fn execute_step(
        _kind: StepKind,
        name: String,
        _node: Json,
        _ports: Json,
        args: Json,
    ) -> Result<Json, ManagerError> {
        if name != "vendor_flash" {
            return Err(ManagerError::unsupported(name));
        }
        let parsed: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::invalid_argument(e.to_string()))?;
        if parsed.get("version").and_then(|v| v.as_str()).is_none() {
            return Err(ManagerError::invalid_argument(
                "vendor_flash: missing required argument version",
            ));
        }
        progress::report(Some(50), "flashing");
        log::log(log::Level::Info, "vendor_flash done");
        json_result(&serde_json::json!({ "flashed": true, "args": parsed }))
    }
}

export_manager!(Override, manifest = "../manifest.toml");
