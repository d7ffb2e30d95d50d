//! UEFI boot on a software RAID root (IPA `efi_utils.manage_uefi` with an
//! md device and `raid_utils.prepare_boot_partitions_for_softraid`): the
//! image's ESP lives inside the array, where firmware cannot read it, so an
//! ESP partition is made on every holder disk (in the room
//! `create_configuration` left before the RAID partitions), the holders'
//! ESPs are mirrored by an md RAID-1 with metadata 1.0 (its superblock at
//! the end, so firmware sees plain FAT) named `esp`, the image's ESP is
//! copied onto it, and one set of boot entries is made per holder.

use std::path::Path;

use generic_storage::table::{PartType, Table};

use crate::bootloader::{node, BootloaderRequest};
use crate::disk::ExistingPartition;
use crate::efi::{add_entries, find_esp, find_loaders};
use crate::error::ImageError;
use crate::holder_io::HolderIo;
use crate::partition::partition_path;
use crate::programs::ProgramRunner;

/// IPA's ESP size on RAID holders (`raid_utils.ESP_SIZE_MIB`).
const ESP_MIB: u64 = generic_storage::raid::ESP_SIZE_MIB;

fn fail(device: &str, message: impl Into<String>) -> ImageError {
    ImageError::Bootloader {
        device: device.to_string(),
        message: message.into(),
    }
}

/// The whole of `path` as one partition (an md device holding FAT).
fn whole(path: &Path) -> Result<ExistingPartition, String> {
    let io = HolderIo::open(path)?;
    Ok(ExistingPartition {
        number: 0,
        offset: 0,
        size: io.size,
        esp: true,
        part_uuid: String::new(),
    })
}

/// md arrays in sysfs: `(kname, level)`.
fn arrays(root: &Path) -> Vec<(String, String)> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/block")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("md"))
        .filter_map(|n| {
            let level =
                std::fs::read_to_string(root.join("sys/block").join(&n).join("md/level")).ok()?;
            Some((n, level.trim().to_string()))
        })
        .collect()
}

/// Registers boot entries for a software RAID root; `None` when the image's
/// ESP has no loader (IPA then goes on to GRUB).
pub fn manage_uefi_raid(
    req: &BootloaderRequest,
    runner: &ProgramRunner,
    holders: &[String],
) -> Result<Option<Vec<String>>, ImageError> {
    let device = req.device.as_str();
    let esp = find_esp(&req.disk, req.efi_system_part_uuid.as_deref()).map_err(|_| {
        ImageError::DeviceNotFound {
            message: format!(
                "No EFI partition could be detected on device {device} and EFI partition UUID \
                 has not been recorded during deployment"
            ),
        }
    })?;
    if find_loaders(&req.disk, &esp)?.is_empty() {
        return Ok(None);
    }
    // A RAIDed ESP from an earlier deployment (raid1 holding FAT) is reused.
    let existing = arrays(&req.root).into_iter().find(|(n, level)| {
        level == "raid1"
            && whole(&node(&req.root, &format!("/dev/{n}")))
                .ok()
                .is_some_and(|p| {
                    crate::esp::has_fat(&node(&req.root, &format!("/dev/{n}")), &p).unwrap_or(false)
                })
    });
    let (esp_md, members) = match existing {
        Some((kname, _)) => {
            let md = format!("/dev/{kname}");
            let (members, _) = crate::bootloader::md_layout(&req.root, &kname).unwrap_or_default();
            tracing::info!(%md, "Found RAIDed ESP, skip creation");
            (md, members)
        }
        None => create_esp_array(req, runner, holders)?,
    };
    let md_path = node(&req.root, &esp_md);
    let md_whole = whole(&md_path).map_err(|e| fail(device, e))?;

    // The image's ESP onto the mirror, then its old copy made unrecognisable
    // (IPA `wipefs -a`), so the instance does not find two ESPs.
    if !crate::esp::has_fat(&md_path, &md_whole)? {
        crate::esp::format(&md_path, &md_whole)?;
    }
    crate::esp::copy_fat_tree(&req.disk, &esp, &md_path, &md_whole)?;
    crate::esp::erase_signature(&req.disk, &esp)?;

    let loaders = find_loaders(&md_path, &md_whole)?;
    let mut labels = Vec::new();
    for (i, member) in members.iter().enumerate() {
        let (holder, number) = split_partition(member).ok_or_else(|| {
            fail(
                device,
                format!("cannot tell the partition number of {member}"),
            )
        })?;
        // IPA passes the member partition as efibootmgr's disk (-d); the
        // disk holding it is what efibootmgr expects.
        labels.extend(add_entries(
            runner,
            &holder,
            number,
            &loaders,
            Some(&format!("(RAID, part{i})")),
        )?);
    }
    Ok(Some(labels))
}

/// `/dev/sda2` → (`/dev/sda`, 2); `/dev/nvme0n1p2` → (`/dev/nvme0n1`, 2).
fn split_partition(part: &str) -> Option<(String, u32)> {
    let digits = part.len() - part.chars().rev().take_while(char::is_ascii_digit).count();
    let number = part[digits..].parse().ok()?;
    let disk = &part[..digits];
    let disk = match disk.strip_suffix('p') {
        Some(d) if d.ends_with(|c: char| c.is_ascii_digit()) => d,
        _ => disk,
    };
    Some((disk.to_string(), number))
}

/// An ESP partition in the first free space of every holder, mirrored by a
/// new md RAID-1 (metadata 1.0, name `esp`). Returns the array and its
/// members.
fn create_esp_array(
    req: &BootloaderRequest,
    runner: &ProgramRunner,
    holders: &[String],
) -> Result<(String, Vec<String>), ImageError> {
    let device = req.device.as_str();
    let mut members = Vec::new();
    for (i, holder) in holders.iter().enumerate() {
        let mut io = HolderIo::open(&node(&req.root, holder)).map_err(|e| fail(device, e))?;
        let mut table = Table::read(&io)
            .map_err(|e| fail(device, format!("{holder}: {e}")))?
            .ok_or_else(|| fail(device, format!("{holder} has no partition table")))?;
        let first = table
            .first_free()
            .ok_or_else(|| fail(device, format!("{holder}: no free space for an ESP")))?;
        let last = first + ESP_MIB * (1 << 20) / table.sector - 1;
        let name = format!("uefi-holder-{i}");
        let number = table
            .add(
                first,
                last,
                PartType::Esp,
                &name,
                *uuid::Uuid::new_v4().as_bytes(),
            )
            .map_err(|e| fail(device, format!("{holder}: ESP of {ESP_MIB} MiB: {e}")))?;
        table
            .write(&mut io)
            .map_err(|e| fail(device, format!("{holder}: {e}")))?;
        // The holder's other partitions are in use (RAID members): the new
        // one is added on its own, as IPA's partx does.
        let nr = number.to_string();
        crate::bootloader::run(runner, device, "partx", &["-a", "--nr", &nr, holder])?;
        members.push(partition_path(holder, number));
        tracing::info!(%holder, partition = number, "EFI partition created on the software RAID holder");
    }
    let taken: Vec<String> = arrays(&req.root).into_iter().map(|(n, _)| n).collect();
    let md = (0..128)
        .map(|i| format!("md{i}"))
        .find(|n| !taken.contains(n))
        .map(|n| format!("/dev/{n}"))
        .ok_or_else(|| fail(device, "No free md (RAID) devices are left"))?;
    let count = members.len().to_string();
    let mut args = vec![
        "--create",
        md.as_str(),
        "--force",
        "--run",
        "--metadata=1.0",
        "--level",
        "1",
        "--name",
        "esp",
        "--raid-devices",
        count.as_str(),
    ];
    args.extend(members.iter().map(String::as_str));
    crate::bootloader::run(runner, device, "mdadm", &args)?;
    Ok((md, members))
}

#[cfg(test)]
mod tests {
    use super::split_partition;

    #[test]
    fn partition_numbers() {
        assert_eq!(split_partition("/dev/sda12"), Some(("/dev/sda".into(), 12)));
        assert_eq!(
            split_partition("/dev/nvme0n1p2"),
            Some(("/dev/nvme0n1".into(), 2))
        );
        assert_eq!(split_partition("/dev/sda"), None);
    }
}
