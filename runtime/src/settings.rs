//! The agent's settings derived from its configuration for the parts that
//! are not the API's own: the image pipeline and component downloads.

use std::sync::Arc;
use std::time::Duration;

use agent_api::ironic_image::WriteOptions;
use anyhow::Context;

/// The native image pipeline's settings from the effective configuration
/// (after Ironic's lookup layer: `md5_enabled`, `permitted_image_formats`
/// and `enable_bios_bootloader_install` come from there).
pub fn image_settings(cfg: &ironic_config::Config) -> anyhow::Result<agent_api::ImageSettings> {
    let secs = |name: &str, default: i64| cfg.int(name).unwrap_or(default).max(0) as u64;
    // Some [disk_utils] options are untyped in IPA: parse their text.
    let disk_utils = |name: &str, default: u64| {
        cfg.get("disk_utils", name)
            .and_then(|e| e.value.to_string().trim().parse::<u64>().ok())
            .unwrap_or(default)
            .max(1)
    };
    let defaults = WriteOptions::default();
    // Image servers are reached with the same TLS settings as Ironic.
    let tls =
        ironic_client::tls::client_config(&ironic_client::ClientSettings::from_config(cfg).tls)
            .context("building the image download TLS configuration")?;
    let permitted = cfg.list_in("DEFAULT", "permitted_image_formats");
    let write = WriteOptions {
        md5_allowed: cfg.bool("md5_enabled"),
        permitted_formats: if permitted.is_empty() {
            defaults.permitted_formats.clone()
        } else {
            permitted
        },
        connect_timeout: Duration::from_secs(secs("image_download_connection_timeout", 60).max(1)),
        retries: u32::try_from(secs("image_download_connection_retries", 9)).unwrap_or(u32::MAX),
        retry_interval: Duration::from_secs(secs("image_download_connection_retry_interval", 10)),
        max_duration: Some(secs("image_download_max_duration", 0))
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        tls: Some(Arc::new(tls)),
        convert_memory_limit_mib: disk_utils("image_convert_memory_limit", 2048),
        convert_attempts: u32::try_from(disk_utils("image_convert_attempts", 3)).unwrap_or(3),
        ..defaults
    };
    Ok(agent_api::ImageSettings {
        write,
        enable_bios_bootloader_install: cfg.bool("enable_bios_bootloader_install"),
        ignore_bootloader_failure: cfg.bool("ignore_bootloader_failure"),
        esp_mb: disk_utils("efi_system_partition_size", 550),
        bios_boot_mb: disk_utils("bios_boot_partition_size", 1),
        inject_files_priority: cfg.int("inject_files_priority").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_settings_follow_defaults_and_ironic_lookup_config() {
        let opts = ironic_config::LoadOptions {
            hardware_root: std::path::PathBuf::from("/nonexistent-hardware-root"),
            ..Default::default()
        };
        let mut cfg = ironic_config::load(&opts).expect("defaults load");
        let s = image_settings(&cfg).expect("settings");
        assert!(s.write.md5_allowed, "IPA default md5_enabled=true");
        assert_eq!(s.write.permitted_formats, ["raw", "gpt", "qcow2"]);
        assert_eq!(s.write.retries, 9);
        assert_eq!(s.write.connect_timeout, std::time::Duration::from_secs(60));
        assert_eq!(s.write.max_duration, None);
        assert!(s.write.tls.is_some());
        assert!(!s.enable_bios_bootloader_install);
        assert_eq!(
            (s.esp_mb, s.bios_boot_mb),
            (550, 1),
            "IPA's [disk_utils] defaults"
        );

        cfg.apply_ironic(&serde_json::json!({
            "agent_md5_checksum_enable": false,
            "permitted_image_formats": ["raw", "iso"],
            "enable_bios_bootloader_install": true,
        }));
        let s = image_settings(&cfg).expect("settings");
        assert!(!s.write.md5_allowed);
        assert_eq!(s.write.permitted_formats, ["raw", "iso"]);
        assert!(s.enable_bios_bootloader_install);
    }
}
