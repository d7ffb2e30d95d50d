//! Test manager for hot swaps, version 1.0 (see `manager.rs`).
const VERSION: &str = "1.0";

mod manager;

ironic_hardware_guest::export_manager!(manager::SlowStep, manifest = "../manifest.toml");
