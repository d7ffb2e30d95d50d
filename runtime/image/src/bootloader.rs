//! `image.install_bootloader` (IPA `extensions/image.py`): UEFI boot
//! entries for the loaders on the ESP, the image's EFI tree copied onto an
//! empty ESP first, and GRUB installed from the deployed image when legacy
//! boot loaders are allowed (`enable_bios_bootloader_install`), on every
//! holder disk of a software RAID root.
//!
//! The order is IPA's `install_bootloader`:
//! 1. the ramdisk booted UEFI and `efibootmgr` exists: register the ESP's
//!    loaders ([`crate::efi::manage_uefi`]); when the ESP has none, copy the
//!    image's `/boot/efi/EFI` onto it ([`crate::esp`]) and try again;
//! 2. no root UUID (or `0x00000000`): a whole-disk image boots itself;
//! 3. legacy GRUB installation in a chroot of the deployed root ([`grub`]),
//!    or `InvalidImage` when it is not allowed.
//!
//! Programs (`mount`, `chroot`, `mdadm`, `efibootmgr`) run through the
//! machine's [`ProgramRunner`]: on a simulated machine its stand-ins, where
//! a missing one is recorded as skipped.

use std::path::{Path, PathBuf};

use crate::disk::{self, ExistingPartition};
use crate::error::ImageError;
use crate::partition::partition_path;
use crate::programs::ProgramRunner;

mod grub;

/// What `install_bootloader` was asked, resolved by the agent.
#[derive(Debug, Clone)]
pub struct BootloaderRequest {
    /// The install device as the machine names it (`/dev/sda`, `/dev/md0`).
    pub device: String,
    /// The same device as the agent opens it.
    pub disk: PathBuf,
    /// The machine's hardware root (`/`, or a simulated machine).
    pub root: PathBuf,
    pub root_uuid: Option<String>,
    pub efi_system_part_uuid: Option<String>,
    pub prep_boot_part_uuid: Option<String>,
    /// `bios` or `uefi` (Ironic's `target_boot_mode`).
    pub target_boot_mode: String,
    /// The ramdisk booted in UEFI mode.
    pub ramdisk_uefi: bool,
    /// `enable_bios_bootloader_install`.
    pub legacy_allowed: bool,
}

/// How the request was satisfied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootloaderOutcome {
    /// UEFI boot entries were created (`labels`).
    UefiEntries { labels: Vec<String> },
    /// A whole-disk image: nothing to install.
    WholeDisk,
    /// GRUB was installed on `disks`.
    Grub { disks: Vec<String> },
    /// The disk already boots (a boot sector in BIOS mode): left alone.
    AlreadyBootable,
}

fn not_found(message: String) -> ImageError {
    ImageError::DeviceNotFound { message }
}

/// A device node of the machine, as the agent opens it.
fn in_root(root: &Path, device: &str) -> PathBuf {
    root.join(device.trim_start_matches('/'))
}

/// The members and holder disks of md array `kname`, from sysfs (`slaves/`,
/// each member's parent directory); `None` when `kname` is no array.
pub fn md_layout(root: &Path, kname: &str) -> Option<(Vec<String>, Vec<String>)> {
    let base = root.join("sys/block").join(kname);
    if !kname.starts_with("md") || !base.join("md").is_dir() {
        return None;
    }
    let mut members: Vec<String> = std::fs::read_dir(base.join("slaves"))
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    members.sort();
    let mut holders: Vec<String> = Vec::new();
    for m in &members {
        let class = root.join("sys/class/block").join(m);
        let holder = if class.join("partition").exists() {
            std::fs::read_link(&class)
                .ok()
                .and_then(|t| {
                    t.parent()
                        .and_then(|p| p.file_name())
                        .map(|n| n.to_string_lossy().into_owned())
                })
                .unwrap_or_else(|| m.clone())
        } else {
            m.clone()
        };
        let holder = format!("/dev/{holder}");
        if !holders.contains(&holder) {
            holders.push(holder);
        }
    }
    Some((
        members.iter().map(|m| format!("/dev/{m}")).collect(),
        holders,
    ))
}

/// IPA `partition_utils.get_partition`: the partition of `device` whose
/// file-system UUID, PARTUUID or label is `uuid`; on an md device its first
/// partition when nothing matches (the root of a whole-disk image on
/// software RAID, whose "root UUID" is the disk identifier).
pub fn find_partition(
    req: &BootloaderRequest,
    uuid: &str,
) -> Result<(String, ExistingPartition), ImageError> {
    let (_, parts) = disk::read_partitions(&req.disk)?;
    for p in &parts {
        let fs_uuid = disk::filesystem_uuid(&req.disk, p.offset).ok().flatten();
        let label = disk::filesystem_label(&req.disk, p.offset).ok().flatten();
        let matches = fs_uuid
            .as_deref()
            .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
            || p.part_uuid.eq_ignore_ascii_case(uuid)
            || label.as_deref() == Some(uuid);
        if matches {
            return Ok((partition_path(&req.device, p.number), p.clone()));
        }
    }
    let kname = req.device.trim_start_matches("/dev/");
    if md_layout(&req.root, kname).is_some() {
        if let Some(first) = parts.iter().find(|p| p.number == 1) {
            tracing::info!(device = %req.device, "no partition matches {uuid}; using the md device's first partition");
            return Ok((partition_path(&req.device, 1), first.clone()));
        }
    }
    Err(not_found(format!(
        "No partition with UUID {uuid} found on device {}",
        req.device
    )))
}

/// The ESP of the install device (the partition typed as one, else the one
/// `efi_system_part_uuid` names), if any.
fn esp_of(req: &BootloaderRequest) -> Option<ExistingPartition> {
    crate::efi::find_esp(&req.disk, req.efi_system_part_uuid.as_deref()).ok()
}

/// Installs or registers the boot loader as IPA's `install_bootloader` does
/// (see the module documentation). Failures are the caller's to ignore
/// (`ignore_bootloader_failure`).
pub fn install_bootloader(
    req: &BootloaderRequest,
    runner: &ProgramRunner,
) -> Result<BootloaderOutcome, ImageError> {
    if req
        .prep_boot_part_uuid
        .as_deref()
        .is_some_and(|u| !u.is_empty())
    {
        // IPA deprecates PReP (ppc64) and this agent is built for x86-64
        // and arm64: say so instead of installing nothing.
        return Err(ImageError::Bootloader {
            device: req.device.clone(),
            message: "PReP boot partitions (ppc64) are not supported by this agent".into(),
        });
    }
    if req.ramdisk_uefi != (req.target_boot_mode == "uefi") {
        tracing::warn!(ramdisk_uefi = req.ramdisk_uefi, target = %req.target_boot_mode,
            "Boot mode mismatch: installing the boot loader may fail or work incorrectly");
    }
    if req.ramdisk_uefi {
        if runner.find("efibootmgr").is_none() {
            tracing::warn!("efibootmgr is not available in the ramdisk");
        } else if let Some(labels) = uefi_entries(req, runner)? {
            return Ok(BootloaderOutcome::UefiEntries { labels });
        }
    }
    let root_uuid = req.root_uuid.as_deref().unwrap_or("");
    if root_uuid.is_empty() || root_uuid == "0x00000000" {
        tracing::info!(
            "Not using grub2-install since root UUID is not provided. Assuming a whole disk image"
        );
        return Ok(BootloaderOutcome::WholeDisk);
    }
    if !req.legacy_allowed {
        return Err(ImageError::InvalidImage {
            reason: "Install of legacy BIOS bootloaders disabled by \
                     CONF.enable_bios_bootloader_install as part of CVE-2026-43003 mitigation."
                .into(),
        });
    }
    grub::install(req, runner, root_uuid)
}

/// Step 1: boot entries for the ESP's loaders. `None` when the ESP holds
/// no loader even after copying the image's EFI tree onto it.
fn uefi_entries(
    req: &BootloaderRequest,
    runner: &ProgramRunner,
) -> Result<Option<Vec<String>>, ImageError> {
    let kname = req.device.trim_start_matches("/dev/");
    if let Some((_, holders)) = md_layout(&req.root, kname) {
        return crate::efi::manage_uefi_raid(req, runner, &holders);
    }
    let Some(esp) = esp_of(req) else {
        return Err(not_found(format!(
            "No EFI partition could be detected on device {} and EFI partition UUID has not \
             been recorded during deployment (which is often the case for whole disk images). \
             Are you using a UEFI-compatible image?",
            req.device
        )));
    };
    let labels = crate::efi::register_loaders(runner, &req.device, &req.disk, &esp)?;
    if !labels.is_empty() {
        return Ok(Some(labels));
    }
    // An empty ESP: the partition image's own EFI tree goes onto it.
    let Some(root_uuid) = req
        .root_uuid
        .as_deref()
        .filter(|u| !u.is_empty() && *u != "0x00000000")
    else {
        return Ok(None);
    };
    let Ok((_, root_part)) = find_partition(req, root_uuid) else {
        return Ok(None);
    };
    if !crate::esp::has_fat(&req.disk, &esp)? {
        crate::esp::format(&req.disk, &esp)?;
    }
    if crate::esp::copy_efi_assets(&req.disk, &root_part, &esp)? == 0 {
        return Ok(None);
    }
    let labels = crate::efi::register_loaders(runner, &req.device, &req.disk, &esp)?;
    Ok((!labels.is_empty()).then_some(labels))
}

/// Runs `program args…`, failing with the program's words.
pub(crate) fn run(
    runner: &ProgramRunner,
    device: &str,
    program: &str,
    args: &[&str],
) -> Result<Option<String>, ImageError> {
    runner
        .check(program, args)
        .map_err(|e| ImageError::Bootloader {
            device: device.to_string(),
            message: e.to_string(),
        })
}

/// The md device node for `in_root` callers outside this module.
pub(crate) fn node(root: &Path, device: &str) -> PathBuf {
    in_root(root, device)
}
