//! `system_vendor` (IPA `GenericHardwareManager.get_system_vendor_info`): the
//! SMBIOS strings lshw reports, read from `/sys/class/dmi/id`. Missing values
//! are `""`, never null.

use ironic_hardware_guest::prelude::*;

use super::sysfs;

const DMI: &str = "/sys/class/dmi/id";

pub(crate) fn get_system_vendor_info() -> SystemVendor {
    let get = |file: &str| sysfs::read_opt(&format!("{DMI}/{file}")).unwrap_or_default();
    // lshw shows the product as `<product_name> (<sku>)` when the SKU is set.
    let product = get("product_name");
    let sku = get("product_sku");
    let product_name = if sku.is_empty() || product.is_empty() {
        product
    } else {
        format!("{product} ({sku})")
    };
    SystemVendor {
        product_name,
        serial_number: get("product_serial"),
        manufacturer: get("sys_vendor"),
        firmware: SystemFirmware {
            vendor: get("bios_vendor"),
            version: get("bios_version"),
            build_date: get("bios_date"),
        },
        extra: None,
    }
}
