//! Which devices the erase steps leave alone: skip-list hints
//! (hardware-managers.md §10.2, images.md §8.4), virtual media, RAID members,
//! read-only devices (erase.md §4), and the shared-disk filesystem guard
//! (erase.md §2).

use ironic_hardware_guest::prelude::*;
use serde_json::{Map, Value};

use super::devices::{self, Device, HintValue};
use super::metadata::{self, Region};

// ---------------------------------------------------------------- skip list

/// The device matches every hint of one skip-list entry.
fn matches_entry(kname: &str, size: u64, hints: &Map<String, Value>) -> Result<bool, String> {
    for (name, expected) in hints {
        let actual = devices::hint_value(kname, size, name);
        if !matches_hint(name, &actual, expected)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whole devices the skip list names (`volume_name` entries are software RAID
/// volumes, handled by `raid_volume_skipped`). An invalid hint fails the step,
/// as IPA's hint parser raises.
pub fn skipped_by_hints(
    device: &Device,
    skip_list: &[Map<String, Value>],
) -> Result<bool, ManagerError> {
    for entry in skip_list.iter().filter(|e| !e.contains_key("volume_name")) {
        let hit = matches_entry(&device.kname, device.size, entry).map_err(|e| {
            ManagerError::invalid_argument(format!(
                "properties.skip_block_devices entry {entry:?}: {e}"
            ))
        })?;
        if hit {
            return Ok(true);
        }
    }
    Ok(false)
}

/// md arrays whose volume name the skip list keeps. Array names come from the
/// udev database (`MD_DEVNAME`, `/dev/md/<name>`) or sysfs.
/// Simplification: IPA also classifies arrays sharing holder disks with a kept
/// array as `wipe`; here only the kept arrays themselves are skipped, their
/// member disks being skipped anyway as RAID members.
pub fn raid_volume_skipped(device: &Device, skip_list: &[Map<String, Value>]) -> bool {
    if !device.kname.starts_with("md") {
        return false;
    }
    let names: Vec<String> = [
        devices::udev_property(&device.kname, "MD_DEVNAME"),
        devices::udev_property(&device.kname, "MD_NAME")
            .map(|n| n.rsplit(':').next().unwrap_or(&n).to_string()),
    ]
    .into_iter()
    .flatten()
    .collect();
    skip_list.iter().any(|e| {
        e.get("volume_name")
            .and_then(Value::as_str)
            .is_some_and(|v| names.iter().any(|n| n == v))
    })
}

const OPERATORS: &[&str] = &[
    "s==", "s!=", "s<", "s<=", "s>", "s>=", "==", "!=", "<", "<=", ">", ">=", "=", "<in>", "<or>",
    "<all-in>",
];

/// Normalise like IPA: trim and lowercase (the URL quoting IPA adds is
/// applied to both sides, so comparing unquoted values is equivalent).
fn norm(s: &str) -> String {
    s.trim().to_lowercase()
}

fn matches_hint(name: &str, actual: &HintValue, expected: &Value) -> Result<bool, String> {
    let expr = match expected {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => return Err(format!("hint {name}: unsupported value {other}")),
    };
    match actual {
        HintValue::Unknown => Err(format!("unknown hint {name}")),
        HintValue::Bool(value) => {
            let want = match expected {
                Value::Bool(b) => *b,
                _ => match norm(&expr).as_str() {
                    "1" | "t" | "true" | "on" | "y" | "yes" => true,
                    "0" | "f" | "false" | "off" | "n" | "no" => false,
                    _ => return Err(format!("hint {name}: {expr:?} is not a boolean")),
                },
            };
            Ok(*value == Some(want))
        }
        HintValue::Size(bytes) => {
            let gib = *bytes as f64 / f64::from(1u32 << 30);
            let (op, values) = split_expression(&expr, "==");
            let first = values
                .first()
                .and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| format!("hint size: {expr:?} is not a number"))?;
            Ok(compare_numeric(op, gib, first, &values))
        }
        HintValue::Text(candidates) => {
            let (op, values) = split_expression(&expr, "s==");
            Ok(candidates
                .iter()
                .map(|c| norm(c))
                .filter(|c| !c.is_empty())
                .any(|c| compare_text(op, &c, &values)))
        }
    }
}

/// `<op> v1 [<op> v2 ...]` → (op, values); a bare value gets `default`.
fn split_expression<'a>(expr: &'a str, default: &'a str) -> (&'a str, Vec<String>) {
    let lowered = norm(expr);
    let mut tokens = lowered.split_whitespace();
    match tokens.next() {
        Some(first) if OPERATORS.contains(&first) => {
            let op = OPERATORS
                .iter()
                .find(|o| **o == first)
                .copied()
                .unwrap_or(default);
            let rest: Vec<&str> = tokens.collect();
            let values = if op == "<or>" {
                rest.split(|t| *t == "<or>").map(|v| v.join(" ")).collect()
            } else {
                vec![rest.join(" ")]
            };
            (op, values)
        }
        _ => (default, vec![lowered]),
    }
}

fn compare_text(op: &str, actual: &str, values: &[String]) -> bool {
    let Some(v) = values.first().map(String::as_str) else {
        return false;
    };
    match op {
        "s==" => actual == v,
        "s!=" => actual != v,
        "s<" => actual < v,
        "s<=" => actual <= v,
        "s>" => actual > v,
        "s>=" => actual >= v,
        "<in>" => actual.contains(v),
        "<or>" => values.iter().any(|x| x == actual),
        _ => match (actual.parse::<f64>(), v.parse::<f64>()) {
            (Ok(a), Ok(b)) => compare_numeric(op, a, b, values),
            _ => false,
        },
    }
}

fn compare_numeric(op: &str, actual: f64, v: f64, values: &[String]) -> bool {
    match op {
        "==" => actual == v,
        "!=" => actual != v,
        "<" => actual < v,
        "<=" => actual <= v,
        ">" => actual > v,
        ">=" | "=" => actual >= v,
        "<or>" => values
            .iter()
            .filter_map(|x| x.parse::<f64>().ok())
            .any(|x| x == actual),
        _ => false,
    }
}

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

/// Partition types of shared-disk filesystems (erase.md §2). IPA compares the
/// uppercase GUIDs case-sensitively with lsblk's lowercase output, so only
/// MBR `0xfb` ever matches there; we compare case-insensitively, which is the
/// documented intent.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(values: &[&str]) -> HintValue {
        HintValue::Text(values.iter().map(|v| v.to_string()).collect())
    }

    #[test]
    fn string_hints_are_case_insensitive_with_operators() {
        let serial = text(&[
            "S6LPNE0T612345",
            "SAMSUNG_MZ7L3480HCHQ-00A07_S6LPNE0T612345",
        ]);
        assert_eq!(
            matches_hint("serial", &serial, &json("s6lpne0t612345")),
            Ok(true)
        );
        assert_eq!(
            matches_hint("serial", &serial, &json("<in> MZ7L3480")),
            Ok(true)
        );
        assert_eq!(
            matches_hint("serial", &serial, &json("<or> abc <or> s6lpne0t612345")),
            Ok(true)
        );
        assert_eq!(
            matches_hint("serial", &serial, &json("s!= s6lpne0t612345")),
            Ok(true)
        );
        assert_eq!(matches_hint("serial", &text(&[]), &json("x")), Ok(false));
        assert!(matches_hint("colour", &HintValue::Unknown, &json("red")).is_err());
    }

    #[test]
    fn size_and_boolean_hints() {
        let size = HintValue::Size(8 << 30);
        assert_eq!(matches_hint("size", &size, &serde_json::json!(8)), Ok(true));
        assert_eq!(matches_hint("size", &size, &json(">= 4")), Ok(true));
        assert_eq!(matches_hint("size", &size, &json("< 4")), Ok(false));
        assert_eq!(
            matches_hint(
                "rotational",
                &HintValue::Bool(Some(false)),
                &serde_json::json!(false)
            ),
            Ok(true)
        );
        assert_eq!(
            matches_hint("rotational", &HintValue::Bool(Some(true)), &json("no")),
            Ok(false)
        );
    }

    fn json(s: &str) -> Value {
        Value::String(s.to_string())
    }
}
