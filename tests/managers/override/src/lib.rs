//! Placeholder; filled in by the dispatch tests.
use ironic_hardware_guest::prelude::*;

struct Override;

impl HardwareManager for Override {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new("OverrideHardwareManager", "override_hardware_manager", "1.0"))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_SERVICE_PROVIDER)
    }
}

export_manager!(Override);
