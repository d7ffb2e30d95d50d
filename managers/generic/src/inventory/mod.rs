//! Inventory of the machine (Ironic's inventory JSON, as IPA's
//! `GenericHardwareManager.list_hardware_info` builds it), read from
//! sysfs/procfs through the `machine` capability. No lshw, lsblk or lscpu:
//! each field is read from the kernel file those tools read, so the same code
//! runs on real hardware and on a simulated hardware root.

use ironic_hardware_guest::prelude::*;

mod bmc;
mod boot;
mod cpu;
pub(crate) mod disks;
mod dmi;
mod memory;
mod network;
mod root_device;
pub(crate) mod sysfs;

pub fn get_cpus() -> Result<Cpu, ManagerError> {
    cpu::get_cpus()
}
pub fn get_memory() -> Result<Memory, ManagerError> {
    memory::get_memory()
}
pub fn list_block_devices() -> Result<Vec<BlockDevice>, ManagerError> {
    Ok(disks::list_disks()?.into_iter().map(|d| d.device).collect())
}
pub fn list_network_interfaces() -> Result<Vec<NetworkInterface>, ManagerError> {
    network::list_network_interfaces()
}
pub fn get_bmc_address() -> Result<Option<String>, ManagerError> {
    bmc::get_bmc_address()
}
pub fn get_bmc_v6address() -> Result<Option<String>, ManagerError> {
    bmc::get_bmc_v6address()
}
pub fn get_bmc_mac() -> Result<Option<String>, ManagerError> {
    bmc::get_bmc_mac()
}
pub fn get_system_vendor_info() -> Result<SystemVendor, ManagerError> {
    Ok(dmi::get_system_vendor_info())
}
pub fn get_boot_info() -> Result<BootInfo, ManagerError> {
    boot::get_boot_info()
}
pub fn get_os_install_device(node: Option<Json>) -> Result<String, ManagerError> {
    root_device::get_os_install_device(node.as_deref())
}
