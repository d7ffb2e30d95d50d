//! The node fields the erase steps read (IPA `hardware.py` erase code; Ironic
//! `drivers/modules/deploy_utils.py` `agent_add_clean_params` sets them).

use ironic_hardware_guest::prelude::*;
use serde_json::Value;

/// Erase knobs from `driver_internal_info`, with IPA's defaults.
#[derive(Debug, Clone)]
pub struct EraseOptions {
    pub iterations: u32,
    pub zeroize: bool,
    /// `agent_continue_if_secure_erase_failed`, else the legacy
    /// `agent_continue_if_ata_erase_failed` (IPA `erase_block_device`).
    pub continue_if_secure_erase_failed: bool,
    pub enable_nvme_secure_erase: bool,
    pub enable_ata_secure_erase: bool,
    pub concurrency: u32,
    pub skip_read_only: bool,
    /// The shared-filesystem guard is active.
    pub guard: bool,
}

/// The parsed node.
pub struct Node {
    pub value: Value,
    pub options: EraseOptions,
}

/// Ironic sends booleans as JSON booleans, but operators can put strings in
/// `driver_info`; accept what oslo's `bool_from_string` accepts.
fn as_bool(value: Option<&Value>) -> Option<bool> {
    match value? {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn as_u32(value: Option<&Value>) -> Option<u32> {
    match value? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Node {
    pub fn parse(json: &str) -> Result<Node, ManagerError> {
        let value: Value = match serde_json::from_str(json) {
            Ok(Value::Null) => Value::Object(Default::default()),
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => {
                return Err(ManagerError::invalid_argument(format!(
                    "node must be a JSON object, got {other}"
                )))
            }
            Err(e) => {
                return Err(ManagerError::invalid_argument(format!(
                    "node is not JSON: {e}"
                )))
            }
        };
        let info = value.get("driver_internal_info");
        let get = |key: &str| info.and_then(|i| i.get(key));
        let continue_if_secure_erase_failed =
            match as_bool(get("agent_continue_if_secure_erase_failed")) {
                Some(flag) => flag,
                None => as_bool(get("agent_continue_if_ata_erase_failed")).unwrap_or(false),
            };
        // IPA skips the guard when `driver_internal_info.wipe_special_filesystems` is
        // false (`safety_check_block_device`). Its troubleshooting doc tells operators
        // to set `driver_info.wipe_special_filesystems=True` instead, which the code
        // never reads; we honour that documented intent too.
        let guard = as_bool(get("wipe_special_filesystems")).unwrap_or(true)
            && !as_bool(
                value
                    .get("driver_info")
                    .and_then(|d| d.get("wipe_special_filesystems")),
            )
            .unwrap_or(false);
        let options = EraseOptions {
            iterations: as_u32(get("agent_erase_devices_iterations")).unwrap_or(1),
            zeroize: as_bool(get("agent_erase_devices_zeroize")).unwrap_or(true),
            continue_if_secure_erase_failed,
            enable_nvme_secure_erase: as_bool(get("agent_enable_nvme_secure_erase"))
                .unwrap_or(true),
            enable_ata_secure_erase: as_bool(get("agent_enable_ata_secure_erase")).unwrap_or(true),
            concurrency: as_u32(get("disk_erasure_concurrency")).unwrap_or(1).max(1),
            skip_read_only: as_bool(get("agent_erase_skip_read_only")).unwrap_or(false),
            guard,
        };
        Ok(Node { value, options })
    }
}
