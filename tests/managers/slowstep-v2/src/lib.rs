//! Test manager for hot swaps, version 2.0: the source of `slowstep-v1`
//! with another version string, so the two builds differ only in it.
const VERSION: &str = "2.0";

#[path = "../../slowstep-v1/src/manager.rs"]
mod manager;

ironic_hardware_guest::export_manager!(
    manager::SlowStep,
    manifest = "../../slowstep-v1/manifest.toml"
);
