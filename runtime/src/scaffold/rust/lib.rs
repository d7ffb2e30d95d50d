//! @NAME@: a hardware manager for ironic-wasm-agent (contract
//! ironic:hardware@0.3.0). Every method not written here answers
//! `unsupported`, so the agent asks the next manager in support order.

use ironic_hardware_guest::prelude::*;
use serde_json::{json, Value};

/// DMI `sys_vendor` of the machines this manager is for; `None` claims
/// every machine.
const VENDOR: Option<&str> = None;

struct Manager;

fn example_step(call: &StepCall) -> Result<Value, ManagerError> {
    // Checked by the SDK against argsinfo before this runs.
    let message: String = call.args.required("message")?;
    progress::report(Some(50), &format!("example_step: {message}"));
    log::log(log::Level::Info, &format!("example_step: {message}"));
    let vendor = machine::read_trimmed("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
    Ok(json!({"message": message, "sys_vendor": vendor}))
}

impl HardwareManager for Manager {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new("@ID@", "@MANAGER_NAME@", "1.0"))
    }

    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        let vendor = machine::read_trimmed("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
        Ok(match VENDOR {
            Some(ours) if ours != vendor => SUPPORT_NONE,
            _ => SUPPORT_SERVICE_PROVIDER,
        })
    }

    fn steps() -> Vec<StepDef> {
        vec![StepDef::clean(
            Step::new("example_step", 0, "deploy").arg("message", "text to log and return", true),
            example_step,
        )]
    }
}

export_manager!(Manager, manifest = "../manifest.toml");
