//! Which devices the erase steps leave alone (kept RAID volumes are
//! `crate::raid::md::fates`; device hints are the `hints` module's): virtual
//! media, RAID members, read-only devices (IPA
//! `GenericHardwareManager.erase_block_device`, `_is_virtual_media_device`,
//! `_is_linux_raid_member`, `_is_read_only_device`), and the shared-disk
//! filesystem guard (`hardware.py` `safety_check_block_device`).

use ironic_hardware_guest::prelude::*;

use super::devices;
use super::metadata::{self, Region};

// ------------------------------------------------------ per-device checks

/// The virtual-media device (`/dev/disk/by-label/ir-vfd-dev` points at it).
pub fn is_virtual_media(kname: &str) -> bool {
    machine::read_link("/dev/disk/by-label/ir-vfd-dev")
        .ok()
        .is_some_and(|target| target.rsplit('/').next() == Some(kname))
}

const MD_MAGIC: u32 = 0xa92b_4efc;

/// Whether a region carries an md superblock (0.90 near the end, 1.0 at the
/// end, 1.1 at the start, 1.2 at 4 KiB).
fn has_md_superblock(region: &Region) -> bool {
    let len = region.len;
    let candidates = [
        Some(0),
        Some(4096),
        (len >= 8192).then(|| ((len / 512 - 16) & !7) * 512),
        (len >= 128 << 10).then(|| (len & !((64 << 10) - 1)) - (64 << 10)),
    ];
    candidates.into_iter().flatten().any(|offset| {
        region
            .read(offset, 4)
            .is_some_and(|b| b.get(..4) == Some(&MD_MAGIC.to_le_bytes()[..]))
    })
}

/// A Linux software RAID member, as `lsblk --fs` reports `linux_raid_member`
/// for the device or any of its partitions: udev's filesystem type or an md
/// holder in sysfs for any of `knames`, or an md superblock in any of
/// `regions` (the device and its partitions, read through the disk).
pub fn is_raid_member(knames: &[&str], regions: &[Region]) -> bool {
    knames.iter().any(|kname| {
        devices::udev_property(kname, "ID_FS_TYPE").as_deref() == Some("linux_raid_member")
            || machine::list_dir(&format!("/sys/class/block/{kname}/holders"))
                .is_ok_and(|holders| holders.iter().any(|h| h.name.starts_with("md")))
    }) || regions.iter().any(has_md_superblock)
}

// ------------------------------------------------------------ the guard

/// Partition types of shared-disk filesystems (IPA
/// `safety_check_block_device`). IPA compares the uppercase GUIDs
/// case-sensitively with lsblk's lowercase output, so only MBR `0xfb` ever
/// matches there; we compare case-insensitively, which is the documented
/// intent.
const PROTECTED_TYPES: &[(&str, &str)] = &[
    ("37AFFC90-EF7D-4E96-91C3-2D7AE055B174", "IBM GPFS Partition"),
    (
        "AA31E02A-400F-11DB-9590-000C2911D1B8",
        "VMware VMFS Partition (GPT)",
    ),
    ("0xfb", "VMware VMFS Partition (MBR)"),
];

/// GFS2 superblock: big-endian magic 0x01161970 and metatype 1 at 64 KiB.
fn has_gfs2(region: &Region) -> bool {
    region
        .read(64 << 10, 8)
        .is_some_and(|b| b == [0x01, 0x16, 0x19, 0x70, 0, 0, 0, 1])
}

/// The shared filesystem found in `[start, start + len)` of `disk` (a whole
/// device when `whole`), if any. IPA only looks at the device's own lsblk row,
/// so erasing a whole disk never notices a VMFS partition on it and its GFS2
/// check never runs; we check every partition the table lists inside the
/// range and look for a GFS2 superblock (the documented intent).
pub fn protected_filesystem(disk_region: &Region, start: u64, len: u64) -> Option<&'static str> {
    let table = metadata::partition_table(disk_region);
    for entry in table
        .iter()
        .filter(|e| e.start >= start && e.start < start + len)
    {
        if let Some((_, label)) = PROTECTED_TYPES
            .iter()
            .find(|(t, _)| t.eq_ignore_ascii_case(&entry.kind))
        {
            return Some(label);
        }
    }
    let region_at = |base: u64, len: u64| Region {
        disk: disk_region.disk,
        base,
        len,
        sector: disk_region.sector,
    };
    if has_gfs2(&region_at(start, len)) {
        return Some("Red Hat Global File System 2");
    }
    table
        .iter()
        .filter(|e| e.start > start && e.start < start + len)
        .any(|e| has_gfs2(&region_at(e.start, start + len - e.start)))
        .then_some("Red Hat Global File System 2")
}

/// `ProtectedDeviceError` for `device`.
pub fn protected_error(device: &str, what: &str) -> ManagerError {
    ManagerError::failed_as(
        "ProtectedDeviceError",
        format!(
            "Protected device located, cleaning aborted. Detected a shared-disk filesystem \
             ({what}) on {device}. To wipe it anyway set the node's \
             driver_internal_info.wipe_special_filesystems to false."
        ),
    )
}
