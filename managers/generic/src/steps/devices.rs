//! Block devices and partitions as the erase steps see them, read from sysfs
//! through the `machine` capability.
//!
//! The device list is the inventory's (`inventory::disks::list_disks`,
//! IPA's `list_all_block_devices`, inventory.md §2.1); this module adds what
//! erasure needs on top: the partition entries, the read-only flag with IPA's
//! partition fallback, and the attributes skip-list hints compare.

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
/// inventory agree on what a disk is.
pub fn list_devices() -> Result<Vec<Device>, ManagerError> {
    Ok(crate::inventory::disks::list_disks()?
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
        .collect())
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
        });
        for part in &device.partitions {
            entries.push(Entry {
                name: part.name.clone(),
                disk: device.name.clone(),
                partition: Some(part.clone()),
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

/// Attributes a skip-list hint can name (images.md §8.3), as far as sysfs
/// and udev tell them.
pub fn hint_value(kname: &str, size: u64, hint: &str) -> HintValue {
    let text = |v: Option<String>| HintValue::Text(v.into_iter().collect());
    match hint {
        "name" => HintValue::Text(vec![format!("/dev/{kname}")]),
        "size" => HintValue::Size(size),
        "model" => text(sys(kname, "device/model")),
        "vendor" => text(sys(kname, "device/vendor")),
        "serial" => HintValue::Text(
            [
                sys(kname, "device/serial"),
                udev_property(kname, "ID_SERIAL_SHORT"),
                udev_property(kname, "ID_SERIAL"),
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
        "wwn" => HintValue::Text(
            [
                sys(kname, "wwid"),
                sys(kname, "device/wwid"),
                udev_property(kname, "ID_WWN"),
            ]
            .into_iter()
            .flatten()
            .collect(),
        ),
        "wwn_with_extension" => text(udev_property(kname, "ID_WWN_WITH_EXTENSION")),
        "wwn_vendor_extension" => text(udev_property(kname, "ID_WWN_VENDOR_EXTENSION")),
        "rotational" => HintValue::Bool(sys(kname, "queue/rotational").map(|v| v == "1")),
        "hctl" => text(
            machine::list_dir(&format!("/sys/class/block/{kname}/device/scsi_device"))
                .ok()
                .and_then(|entries| entries.into_iter().next())
                .map(|e| e.name),
        ),
        "by_path" => text(by_path(kname)),
        "tran" => text(
            udev_property(kname, "ID_BUS")
                .or_else(|| kname.starts_with("nvme").then(|| "nvme".to_string())),
        ),
        _ => HintValue::Unknown,
    }
}

fn by_path(kname: &str) -> Option<String> {
    let entries = machine::list_dir("/dev/disk/by-path").ok()?;
    entries.into_iter().rev().find_map(|e| {
        let link = format!("/dev/disk/by-path/{}", e.name);
        let target = machine::read_link(&link).ok()?;
        (target.rsplit('/').next() == Some(kname)).then_some(link)
    })
}

/// A device attribute for hint matching.
pub enum HintValue {
    /// Candidate strings (serial and wwn have several sources; any may match).
    Text(Vec<String>),
    Size(u64),
    Bool(Option<bool>),
    Unknown,
}
