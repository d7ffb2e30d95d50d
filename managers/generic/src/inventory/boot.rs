//! `boot` (IPA `GenericHardwareManager.get_boot_info`).

use ironic_hardware_guest::prelude::*;

use super::sysfs;

pub(crate) fn get_boot_info() -> Result<BootInfo, ManagerError> {
    let cmdline = sysfs::read_required("/proc/cmdline")?;
    Ok(BootInfo {
        current_boot_mode: if sysfs::is_dir("/sys/firmware/efi") {
            "uefi"
        } else {
            "bios"
        }
        .to_string(),
        pxe_interface: kernel_param(&cmdline, "BOOTIF"),
        extra: None,
    })
}

/// Raw value of `key=value` among the whitespace-separated tokens of the
/// kernel command line; a later duplicate wins (IPA builds a dict).
pub(crate) fn kernel_param(cmdline: &str, key: &str) -> Option<String> {
    cmdline
        .split_whitespace()
        .rev()
        .filter_map(|token| token.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::kernel_param;

    #[test]
    fn bootif_is_raw_and_last_wins() {
        let line = "ro BOOTIF=01-aa-bb-cc-dd-ee-ff x=1 BOOTIF=aa:bb:cc:dd:ee:00\n";
        assert_eq!(
            kernel_param(line, "BOOTIF").as_deref(),
            Some("aa:bb:cc:dd:ee:00")
        );
        assert_eq!(kernel_param("ro quiet", "BOOTIF"), None);
    }
}
