//! Inventory of the machine (Ironic's inventory JSON, see
//! shared/spec/inventory.md), read from sysfs/procfs through the `machine`
//! capability.

use ironic_hardware_guest::prelude::*;

pub fn get_cpus() -> Result<Cpu, ManagerError> {
    Err(ManagerError::unsupported("get-cpus"))
}
pub fn get_memory() -> Result<Memory, ManagerError> {
    Err(ManagerError::unsupported("get-memory"))
}
pub fn list_block_devices() -> Result<Vec<BlockDevice>, ManagerError> {
    Err(ManagerError::unsupported("list-block-devices"))
}
pub fn list_network_interfaces() -> Result<Vec<NetworkInterface>, ManagerError> {
    Err(ManagerError::unsupported("list-network-interfaces"))
}
pub fn get_bmc_address() -> Result<Option<String>, ManagerError> {
    Err(ManagerError::unsupported("get-bmc-address"))
}
pub fn get_bmc_v6address() -> Result<Option<String>, ManagerError> {
    Err(ManagerError::unsupported("get-bmc-v6address"))
}
pub fn get_bmc_mac() -> Result<Option<String>, ManagerError> {
    Err(ManagerError::unsupported("get-bmc-mac"))
}
pub fn get_system_vendor_info() -> Result<SystemVendor, ManagerError> {
    Err(ManagerError::unsupported("get-system-vendor-info"))
}
pub fn get_boot_info() -> Result<BootInfo, ManagerError> {
    Err(ManagerError::unsupported("get-boot-info"))
}
pub fn get_os_install_device(_node: Option<Json>) -> Result<String, ManagerError> {
    Err(ManagerError::unsupported("get-os-install-device"))
}
