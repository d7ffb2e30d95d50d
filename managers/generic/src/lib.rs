//! IPA's `GenericHardwareManager` as a component.

use ironic_hardware_guest::prelude::*;

struct Generic;

impl HardwareManager for Generic {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new("GenericHardwareManager", "generic_hardware_manager", "1.2"))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_GENERIC)
    }
}

export_manager!(Generic, manifest = "../manifest.toml");
