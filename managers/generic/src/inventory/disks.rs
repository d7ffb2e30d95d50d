//! Whole block devices (IPA `hardware.py` `list_all_block_devices`), read from
//! sysfs and the udev database the way
//! `lsblk -bia -oKNAME,MODEL,SIZE,ROTA,TYPE,...,TRAN` and IPA's udev fallbacks
//! do.
//!
//! Paths of a dm-multipath map are not listed; the map is, once (IPA
//! `list_all_block_devices` with multipath enabled).
//!
//! [`list_disks`] returns richer records than the inventory serialises
//! (read-only flag, device numbers, partitions) so the erase steps and the
//! root-device rule share one notion of "a disk".

use std::collections::{BTreeMap, HashMap};

use ironic_hardware_guest::prelude::*;

use super::sysfs;

/// Sysfs `size` attributes count 512-byte units whatever the logical
/// sector size.
const SYSFS_SECTOR: u64 = 512;

/// A whole device as the inventory and the steps see it.
#[derive(Debug, Clone)]
pub(crate) struct DiskRecord {
    /// The serialised inventory record.
    pub device: BlockDevice,
    /// Kernel name, `sda`.
    pub kname: String,
    /// lsblk `TYPE`: `disk`, `raid1`, `mpath`, ...
    pub kind: String,
    /// Device numbers from sysfs `dev`.
    pub major: u32,
    pub minor: u32,
    /// Partitions in partition-number order.
    pub partitions: Vec<PartitionRecord>,
}

/// A partition of a [`DiskRecord`].
#[derive(Debug, Clone)]
pub(crate) struct PartitionRecord {
    /// `/dev/sda1`.
    pub name: String,
    /// `sda1`.
    pub kname: String,
    /// Partition number (sysfs `partition`).
    pub number: u32,
    /// Byte offset in the parent device.
    pub start: u64,
    /// Bytes.
    pub size: u64,
}

/// Every whole disk, md array and multipath map, in major:minor order,
/// filtered like IPA's `list_all_block_devices(block_type="disk")`.
pub(crate) fn list_disks() -> Result<Vec<DiskRecord>, ManagerError> {
    let by_path = by_path_map()?;
    let mut found = Vec::new();
    for kname in sysfs::list_required("/sys/block")? {
        if let Some(record) = read_disk(&kname, &by_path)? {
            found.push(record);
        }
    }
    found.sort_by_key(|d| (d.major, d.minor));
    Ok(found)
}

/// lsblk's `TYPE` for a whole device, `None` when IPA's disk listing skips it.
fn disk_kind(kname: &str) -> Option<String> {
    // Floppies, RAM disks and loop devices never appear (IPA `list_all_block_devices`);
    // sr*/ rom and plain device-mapper targets fail the type filter.
    const SKIPPED: [&str; 5] = ["fd", "ram", "zram", "loop", "sr"];
    if SKIPPED.iter().any(|p| kname.starts_with(p)) {
        return None;
    }
    let base = format!("/sys/block/{kname}");
    if kname.starts_with("md") {
        // An md array reports its level (raid1, ...); a broken array or an
        // md container ("md") is skipped.
        let level = sysfs::read_opt(&format!("{base}/md/level"))?;
        return level.contains("raid").then_some(level);
    }
    if kname.starts_with("dm-") {
        // Multipath maps have a dm uuid `mpath-<wwid>`; LVM, crypt, ... are skipped.
        let uuid = sysfs::read_opt(&format!("{base}/dm/uuid"))?;
        return uuid.starts_with("mpath-").then(|| "mpath".to_string());
    }
    Some("disk".to_string())
}

/// The multipath map `kname` is a path of, if any: a holder `dm-N` whose
/// dm uuid is `mpath-…`. IPA asks `multipath -c` per device when multipathd
/// runs; a path is held by its map exactly when multipathd built the map,
/// so sysfs says the same without the program.
pub(crate) fn multipath_map_of(kname: &str) -> Option<String> {
    let holders = sysfs::list_opt(&format!("/sys/block/{kname}/holders")).ok()??;
    holders.into_iter().find(|h| {
        h.starts_with("dm-")
            && sysfs::read_opt(&format!("/sys/block/{h}/dm/uuid"))
                .is_some_and(|u| u.starts_with("mpath-"))
    })
}

fn read_disk(
    kname: &str,
    by_path: &HashMap<String, String>,
) -> Result<Option<DiskRecord>, ManagerError> {
    let Some(kind) = disk_kind(kname) else {
        return Ok(None);
    };
    if let Some(map) = multipath_map_of(kname) {
        log::log(
            log::Level::Debug,
            &format!("{kname} is a path of the multipath device {map}; listing the map instead"),
        );
        return Ok(None);
    }
    let base = format!("/sys/block/{kname}");
    let sectors = read_u64(&format!("{base}/size"))?;
    if sectors == 0 {
        // Empty card readers, detached loop-like devices (IPA skips size 0).
        return Ok(None);
    }
    let (major, minor) = read_dev(&format!("{base}/dev"))?;
    let udev = udev_properties(major, minor);
    let prop = |keys: &[&str]| -> Option<String> {
        keys.iter()
            .filter_map(|k| udev.get(*k))
            .map(|v| v.trim())
            .find(|v| !v.is_empty())
            .map(str::to_string)
    };

    // lsblk MODEL: udev's ID_MODEL_ENC (full name) before sysfs `model`
    // (SCSI INQUIRY, cut at 16 characters).
    let model = prop(&["ID_MODEL_ENC"])
        .map(|enc| normalise_space(&unhex(&enc)))
        .filter(|m| !m.is_empty())
        .or_else(|| prop(&["ID_MODEL"]))
        .or_else(|| sysfs::read_opt(&format!("{base}/device/model")));
    // lsblk SERIAL, then IPA's udev fallbacks (ID_SERIAL_SHORT, ID_SERIAL).
    let serial = prop(&["ID_SCSI_SERIAL", "ID_SERIAL_SHORT"])
        .or_else(|| sysfs::read_opt(&format!("{base}/device/serial")))
        .or_else(|| sysfs::read_opt(&format!("{base}/serial")))
        .or_else(|| prop(&["DM_SERIAL_SHORT", "ID_SERIAL", "DM_SERIAL"]));
    // lsblk WWN (udev, with extension first), then IPA's ID_WWN/DM_WWN, then
    // the kernel's own identifier.
    let wwn = prop(&["ID_WWN_WITH_EXTENSION", "ID_WWN", "DM_WWN"])
        .or_else(|| sysfs::read_opt(&format!("{base}/wwid")))
        .or_else(|| sysfs::read_opt(&format!("{base}/device/wwid")));
    let hctl = first_entry(&format!("{base}/device/scsi_device"))?;
    let tran = transport(kname, hctl.as_deref(), &base);

    let device = BlockDevice {
        name: format!("/dev/{kname}"),
        model,
        size: sectors.saturating_mul(SYSFS_SECTOR),
        rotational: sysfs::read_opt(&format!("{base}/queue/rotational")).as_deref() == Some("1"),
        wwn,
        serial,
        vendor: sysfs::read_opt(&format!("{base}/device/vendor")),
        wwn_with_extension: prop(&["ID_WWN_WITH_EXTENSION", "DM_WWN_WITH_EXTENSION"]),
        wwn_vendor_extension: prop(&["ID_WWN_VENDOR_EXTENSION", "DM_WWN_VENDOR_EXTENSION"]),
        hctl,
        by_path: by_path.get(&format!("/dev/{kname}")).cloned(),
        logical_sectors: read_u32(&format!("{base}/queue/logical_block_size"))?,
        physical_sectors: read_u32(&format!("{base}/queue/physical_block_size"))?,
        tran,
        extra: None,
    };
    Ok(Some(DiskRecord {
        device,
        kname: kname.to_string(),
        kind,
        major,
        minor,
        partitions: partitions(kname)?,
    }))
}

fn partitions(kname: &str) -> Result<Vec<PartitionRecord>, ManagerError> {
    let base = format!("/sys/block/{kname}");
    let mut parts = Vec::new();
    for entry in sysfs::list_required(&base)? {
        // Partitions are subdirectories named after the disk with a
        // `partition` attribute (sda1, nvme0n1p1).
        if !entry.starts_with(kname) {
            continue;
        }
        let dir = format!("{base}/{entry}");
        let Some(number) = sysfs::read_opt(&format!("{dir}/partition")) else {
            continue;
        };
        let number = number
            .parse()
            .map_err(|_| bad_value(&format!("{dir}/partition"), &number))?;
        parts.push(PartitionRecord {
            name: format!("/dev/{entry}"),
            kname: entry.clone(),
            number,
            start: read_u64(&format!("{dir}/start"))?.saturating_mul(SYSFS_SECTOR),
            size: read_u64(&format!("{dir}/size"))?.saturating_mul(SYSFS_SECTOR),
        });
    }
    parts.sort_by_key(|p| p.number);
    Ok(parts)
}

/// lsblk's `TRAN` derivation: SCSI disks by their host's transport class,
/// then USB by device path, then the libata driver; NVMe by name; anything
/// else (virtio, md, dm) has none.
fn transport(kname: &str, hctl: Option<&str>, base: &str) -> Option<String> {
    let devpath = sysfs::read_link(base).unwrap_or_default();
    if let Some(hctl) = hctl {
        let host = hctl.split(':').next().unwrap_or("0");
        for (class, tran) in [
            ("spi_host", "spi"),
            ("fc_host", "fc"),
            ("sas_host", "sas"),
            ("iscsi_host", "iscsi"),
        ] {
            if sysfs::exists(&format!("/sys/class/{class}/host{host}")) {
                return Some(tran.to_string());
            }
        }
        if devpath.contains("/usb") {
            return Some("usb".to_string());
        }
        let proc_name = sysfs::read_opt(&format!("/sys/class/scsi_host/host{host}/proc_name"))?;
        if proc_name.starts_with("ahci") || proc_name.starts_with("sata") {
            return Some("sata".to_string());
        }
        if proc_name.contains("ata") {
            return Some("ata".to_string());
        }
        return None;
    }
    if kname.starts_with("nvme") {
        return Some("nvme".to_string());
    }
    None
}

/// First entry of a directory, e.g. the `H:C:T:L` under `device/scsi_device`.
fn first_entry(path: &str) -> Result<Option<String>, ManagerError> {
    Ok(sysfs::list_opt(path)?.and_then(|names| names.into_iter().next()))
}

/// `/dev/sda` or `/dev/sda1` → `/dev/disk/by-path/pci-…` from the by-path
/// links (the last link enumerated wins, as in IPA). Missing directory →
/// empty.
pub(crate) fn by_path_map() -> Result<HashMap<String, String>, ManagerError> {
    const DIR: &str = "/dev/disk/by-path";
    let mut map = HashMap::new();
    for name in sysfs::list_opt(DIR)?.unwrap_or_default() {
        let link = format!("{DIR}/{name}");
        if let Some(target) = sysfs::read_link(&link) {
            map.insert(sysfs::resolve_relative(DIR, &target), link);
        }
    }
    Ok(map)
}

/// `E:KEY=value` properties of the udev database record for a block device;
/// empty when udev has no record (the udev-derived fields then stay null).
pub(crate) fn udev_properties(major: u32, minor: u32) -> BTreeMap<String, String> {
    let path = format!("/run/udev/data/b{major}:{minor}");
    let Some(bytes) = sysfs::read_bytes_opt(&path) else {
        return BTreeMap::new();
    };
    parse_udev_record(&String::from_utf8_lossy(&bytes))
}

pub(crate) fn parse_udev_record(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("E:"))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Decode udev's `\xNN` escapes (`ID_MODEL_ENC`).
pub(crate) fn unhex(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes.get(i + 1) == Some(&b'x') {
            if let Some(b) = std::str::from_utf8(&bytes[i + 2..i + 4])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Trim and collapse runs of whitespace (lsblk normalises model strings).
fn normalise_space(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn bad_value(path: &str, value: &str) -> ManagerError {
    ManagerError::failed(format!("{path}: unexpected value {value:?}"))
}

fn read_u64(path: &str) -> Result<u64, ManagerError> {
    let text = sysfs::read_required(path)?;
    text.trim()
        .parse()
        .map_err(|_| bad_value(path, text.trim()))
}

fn read_u32(path: &str) -> Result<u32, ManagerError> {
    let text = sysfs::read_required(path)?;
    text.trim()
        .parse()
        .map_err(|_| bad_value(path, text.trim()))
}

/// `8:16` → (8, 16).
fn read_dev(path: &str) -> Result<(u32, u32), ManagerError> {
    let text = sysfs::read_required(path)?;
    parse_dev(text.trim()).ok_or_else(|| bad_value(path, text.trim()))
}

pub(crate) fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once(':')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_records() {
        let props = parse_udev_record(
            "S:disk/by-path/x\nE:ID_SERIAL=A_B\nE:ID_MODEL_ENC=SAMSUNG\\x20MZ7\nG:systemd\n",
        );
        assert_eq!(props.get("ID_SERIAL").map(String::as_str), Some("A_B"));
        assert_eq!(unhex(&props["ID_MODEL_ENC"]), "SAMSUNG MZ7");
        assert_eq!(unhex("a\\x2"), "a\\x2");
        assert_eq!(parse_dev("259:3"), Some((259, 3)));
        assert_eq!(parse_dev("259"), None);
    }
}
