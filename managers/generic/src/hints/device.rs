//! Disks and partitions as hints see them (IPA's
//! `list_block_devices(all_serial_and_wwn=True)` in `hardware.py`), read
//! through the `machine` capability on top of the inventory's disk list.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ironic_hardware_guest::prelude::*;
use serde_json::Value;

use super::{HintDevice, SkipList};
use crate::inventory::disks::{self, DiskRecord, PartitionRecord};
use crate::inventory::sysfs;

/// First non-blank udev property among `keys`.
fn first_of(udev: &BTreeMap<String, String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|k| udev.get(*k))
        .map(|v| v.trim())
        .find(|v| !v.is_empty())
        .map(str::to_string)
}

/// Append the udev serials and WWN to the lsblk ones: `serial` becomes
/// `[lsblk SERIAL, ID_SERIAL_SHORT, ID_SERIAL]`, `wwn` `[lsblk WWN, ID_WWN]`.
fn add_udev_identifiers(device: &mut HintDevice, udev: &BTreeMap<String, String>) {
    device.serial.extend(
        [
            first_of(udev, &["ID_SERIAL_SHORT", "DM_SERIAL_SHORT"]),
            first_of(udev, &["ID_SERIAL", "DM_SERIAL"]),
        ]
        .into_iter()
        .flatten(),
    );
    device.wwn.extend(first_of(udev, &["ID_WWN", "DM_WWN"]));
}

/// Whole disks (md arrays, multipath maps), in the order given (lsblk's).
pub(crate) fn disk_devices(disks: &[DiskRecord]) -> Vec<HintDevice> {
    disks.iter().map(disk_device).collect()
}

fn disk_device(disk: &DiskRecord) -> HintDevice {
    let mut device = HintDevice::from_block_device(&disk.device);
    add_udev_identifiers(&mut device, &disks::udev_properties(disk.major, disk.minor));
    device
}

/// A partition on its own attributes, as lsblk lists it: its name and
/// size, the disk's rotational flag (they share the request queue), the
/// identifiers in the partition's own udev record (udev copies the disk's
/// into it on real systems), its by-path link; no model, vendor, SCSI
/// address or transport (lsblk reports those for the disk only).
fn partition_device(
    disk: &DiskRecord,
    part: &PartitionRecord,
    by_path: &HashMap<String, String>,
) -> HintDevice {
    let udev = sysfs::read_opt(&format!("/sys/class/block/{}/dev", part.kname))
        .and_then(|dev| disks::parse_dev(&dev))
        .map(|(major, minor)| disks::udev_properties(major, minor))
        .unwrap_or_default();
    let mut device = HintDevice {
        name: part.name.clone(),
        size: part.size,
        rotational: disk.device.rotational,
        wwn_with_extension: first_of(&udev, &["ID_WWN_WITH_EXTENSION", "DM_WWN_WITH_EXTENSION"]),
        wwn_vendor_extension: first_of(
            &udev,
            &["ID_WWN_VENDOR_EXTENSION", "DM_WWN_VENDOR_EXTENSION"],
        ),
        by_path: by_path.get(&part.name).cloned(),
        ..HintDevice::default()
    };
    add_udev_identifiers(&mut device, &udev);
    device
}

/// Every disk followed by its partitions.
fn devices_with_partitions(disks: &[DiskRecord]) -> Result<Vec<HintDevice>, ManagerError> {
    let by_path = if disks.iter().any(|d| !d.partitions.is_empty()) {
        disks::by_path_map()?
    } else {
        HashMap::new()
    };
    let mut devices = Vec::new();
    for disk in disks {
        devices.push(disk_device(disk));
        devices.extend(
            disk.partitions
                .iter()
                .map(|p| partition_device(disk, p, &by_path)),
        );
    }
    Ok(devices)
}

/// Names of the disks and partitions the node's skip list excludes
/// (`properties.skip_block_devices` device-hint entries, matched against
/// each device's own attributes: a `name` hint for a disk does not exclude
/// its partitions). `volume_name` entries are the RAID steps' and the erase
/// steps' business (`crate::raid::md::fates`). An invalid entry is an
/// `invalid_argument` error naming it.
pub(crate) fn skipped_devices(
    node: &Value,
    disks: &[DiskRecord],
) -> Result<BTreeSet<String>, ManagerError> {
    let skip = SkipList::from_node(node)?;
    if skip.device_hints.is_empty() {
        return Ok(BTreeSet::new());
    }
    let skipped = skip.skipped_names(&devices_with_partitions(disks)?);
    log_skipped(&skipped);
    Ok(skipped)
}

/// Log what the skip list removed, as IPA warns per hint.
pub(crate) fn log_skipped(skipped: &BTreeSet<String>) {
    if !skipped.is_empty() {
        let names: Vec<&str> = skipped.iter().map(String::as_str).collect();
        log::log(
            log::Level::Warn,
            &format!("properties.skip_block_devices skips: {}", names.join(", ")),
        );
    }
}
