//! Hostile test manager: `info` sleeps for an hour in a host call (a WASI
//! clock poll, not a wasm loop), which only a deadline covering host calls
//! can end.
use ironic_hardware_guest::prelude::*;

struct Sleepy;

impl HardwareManager for Sleepy {
    fn info() -> Result<ManagerInfo, ManagerError> {
        std::thread::sleep(std::time::Duration::from_secs(3600));
        Ok(ManagerInfo::new(
            "SleepyHardwareManager",
            "sleepy_hardware_manager",
            "1.0",
        ))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_MAINLINE)
    }
}

export_manager!(Sleepy, manifest = "../manifest.toml");
