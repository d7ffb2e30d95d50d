//! IPA's `GenericHardwareManager` as a component: the inventory of a Linux
//! machine read from sysfs/procfs, and the generic clean/deploy/service
//! steps. Everything it touches goes through host capabilities declared in
//! `manifest.toml`.

use ironic_hardware_guest::prelude::*;

mod hints;
mod inventory;
mod raid;
mod steps;

struct Generic;

impl HardwareManager for Generic {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "GenericHardwareManager",
            "generic_hardware_manager",
            "1.2",
        ))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_GENERIC)
    }

    fn get_cpus() -> Result<Cpu, ManagerError> {
        inventory::get_cpus()
    }
    fn get_memory() -> Result<Memory, ManagerError> {
        inventory::get_memory()
    }
    fn list_block_devices() -> Result<Vec<BlockDevice>, ManagerError> {
        inventory::list_block_devices()
    }
    fn list_network_interfaces() -> Result<Vec<NetworkInterface>, ManagerError> {
        inventory::list_network_interfaces()
    }
    fn get_bmc_address() -> Result<Option<String>, ManagerError> {
        inventory::get_bmc_address()
    }
    fn get_bmc_v6address() -> Result<Option<String>, ManagerError> {
        inventory::get_bmc_v6address()
    }
    fn get_bmc_mac() -> Result<Option<String>, ManagerError> {
        inventory::get_bmc_mac()
    }
    fn get_system_vendor_info() -> Result<SystemVendor, ManagerError> {
        inventory::get_system_vendor_info()
    }
    fn get_boot_info() -> Result<BootInfo, ManagerError> {
        inventory::get_boot_info()
    }
    fn get_os_install_device(node: Option<Json>) -> Result<String, ManagerError> {
        inventory::get_os_install_device(node)
    }

    fn get_steps(kind: StepKind, node: Json, ports: Json) -> Result<Vec<Step>, ManagerError> {
        steps::get_steps(kind, &node, &ports)
    }
    fn execute_step(
        kind: StepKind,
        name: String,
        node: Json,
        ports: Json,
        args: Json,
    ) -> Result<Json, ManagerError> {
        steps::execute_step(kind, &name, &node, &ports, &args)
    }
}

export_manager!(Generic, manifest = "../manifest.toml");
