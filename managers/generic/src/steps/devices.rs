//! Block devices and partitions as the erase steps see them, read from sysfs
//! through the `machine` capability.
//!
//! The device list is the inventory's (`inventory::disks::list_disks`, IPA's
//! `list_all_block_devices`) and skip-list hints are the shared `hints`
//! module's; this module adds what erasure needs on top: the partition entries
//! in IPA's order and the read-only flag with IPA's partition fallback.

use std::collections::BTreeSet;

use ironic_hardware_guest::prelude::*;

/// A partition of a listed device.
#[derive(Debug, Clone)]
pub struct Partition {
    /// `/dev/sda1`.
    pub name: String,
    /// Byte offset inside the parent device.
    pub start: u64,
    /// Bytes.
    pub size: u64,
}

/// A whole device (disk, md array, multipath map) with its partitions.
#[derive(Debug, Clone)]
pub struct Device {
    /// `/dev/sda`.
    pub name: String,
    /// `sda`.
    pub kname: String,
    /// Bytes.
    pub size: u64,
    pub partitions: Vec<Partition>,
}

/// One entry of an erase listing: a whole device or one of its partitions.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `/dev/sda` or `/dev/sda1`.
    pub name: String,
    /// The whole device holding this entry (itself for a disk).
    pub disk: String,
    /// `Some` for a partition.
    pub partition: Option<Partition>,
    /// For a whole device: its partitions' (start, size) in bytes.
    pub inner: Vec<(u64, u64)>,
}

fn sys(kname: &str, attr: &str) -> Option<String> {
    machine::read_trimmed(&format!("/sys/class/block/{kname}/{attr}"))
}

/// `kname` without its `/dev/` prefix.
pub fn kname_of(name: &str) -> &str {
    name.strip_prefix("/dev/").unwrap_or(name)
}

/// Whole devices (disks, md arrays, multipath maps) in lsblk order, each
/// with its partitions, from the inventory's lister so that erasing and the
/// inventory agree on what a disk is; plus the names (disks and partitions)
/// the node's `properties.skip_block_devices` hints exclude, matched by the
/// shared hint module (the same grammar as root device hints).
pub fn list_devices(
    node: &serde_json::Value,
) -> Result<(Vec<Device>, BTreeSet<String>), ManagerError> {
    let records = crate::inventory::disks::list_disks()?;
    let skipped = crate::hints::skipped_devices(node, &records)?;
    let devices = records
        .into_iter()
        .map(|d| Device {
            name: d.device.name,
            kname: d.kname,
            size: d.device.size,
            partitions: d
                .partitions
                .into_iter()
                .map(|p| Partition {
                    name: p.name,
                    start: p.start,
                    size: p.size,
                })
                .collect(),
        })
        .collect();
    Ok((devices, skipped))
}

/// Whole devices and partitions sorted by name, descending, as IPA's
/// `_list_erasable_devices` does: partitions come before their disk.
pub fn entries_with_partitions(devices: &[Device]) -> Vec<Entry> {
    let mut entries = Vec::new();
    for device in devices {
        entries.push(Entry {
            name: device.name.clone(),
            disk: device.name.clone(),
            partition: None,
            inner: device
                .partitions
                .iter()
                .map(|p| (p.start, p.size))
                .collect(),
        });
        for part in &device.partitions {
            entries.push(Entry {
                name: part.name.clone(),
                disk: device.name.clone(),
                partition: Some(part.clone()),
                inner: Vec::new(),
            });
        }
    }
    entries.sort_by(|a, b| b.name.cmp(&a.name));
    entries
}

/// `/sys/class/block/<kname>/ro` is `1`. Unreadable → writable, except that a
/// partition name falls back to its disk (IPA strips trailing digits for
/// non-NVMe names; `parent` does that for every partition).
pub fn is_read_only(kname: &str, parent: Option<&str>) -> bool {
    match sys(kname, "ro") {
        Some(value) => value == "1",
        None => parent.is_some_and(|p| sys(p, "ro").as_deref() == Some("1")),
    }
}

/// Properties from the udev database for the device (`E:KEY=VALUE` lines of
/// `/run/udev/data/b<major>:<minor>`).
pub fn udev_property(kname: &str, key: &str) -> Option<String> {
    let dev = sys(kname, "dev")?;
    let text = machine::read_text(&format!("/run/udev/data/b{dev}")).ok()?;
    let prefix = format!("E:{key}=");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
