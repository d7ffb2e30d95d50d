//! Software RAID configurations as Ironic's `target_raid_config` states
//! them (`controller: software`) and IPA builds them: validation with IPA's
//! messages (`hardware.py` `validate_configuration`), the order volumes are
//! built in, their md names, and where their partitions go on each holder
//! disk (`raid_utils.py` `calculate_raid_start`,
//! `calc_raid_partition_sectors`).

use serde_json::{Map, Value};

use crate::table::TableKind;

/// Levels IPA builds (`SUPPORTED_SOFTWARE_RAID_LEVELS`).
pub const SUPPORTED_LEVELS: [&str; 5] = ["0", "1", "1+0", "5", "6"];

/// IPA's ESP size for software RAID holders (`raid_utils.ESP_SIZE_MIB`; not
/// the configurable `[disk_utils]efi_system_partition_size`, which IPA does
/// not use here either).
pub const ESP_SIZE_MIB: u64 = 550;

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A logical disk's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VolumeSize {
    Gib(u64),
    /// `"MAX"`: the rest of the holder disks.
    Max,
}

/// One logical disk of a software RAID configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalDisk {
    /// Position in `logical_disks` as given.
    pub index: usize,
    /// Ironic's level (`"1+0"`); see [`LogicalDisk::mdadm_level`].
    pub raid_level: String,
    pub size: VolumeSize,
    pub volume_name: Option<String>,
    /// `is_root_volume` as given (`None` when absent).
    pub is_root_volume: Option<bool>,
    /// `physical_disks`: device hint objects, when given.
    pub physical_disks: Option<Vec<Map<String, Value>>>,
    /// The logical disk as given (what Ironic gets back).
    pub raw: Map<String, Value>,
}

impl LogicalDisk {
    /// mdadm's spelling of the level (`1+0` is `10`).
    pub fn mdadm_level(&self) -> &str {
        if self.raid_level == "1+0" {
            "10"
        } else {
            &self.raid_level
        }
    }
}

/// Why a configuration cannot be built: IPA raises `SoftwareRAIDError`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaidError(pub String);

impl std::fmt::Display for RaidError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The software RAID configuration of a node, if any: Ironic's
/// `driver_internal_info.target_raid_config` when present, else
/// `target_raid_config`.
///
/// IPA's `create_configuration` (hardware.py) reads only the node's
/// `target_raid_config`, although Ironic's `AgentRAID.create_configuration`
/// (ironic/drivers/modules/agent.py) puts the configuration filtered by its
/// `create_root_volume`/`create_nonroot_volumes` arguments into
/// `driver_internal_info.target_raid_config` precisely for the agent; IPA
/// therefore builds volumes the operator asked to skip. We use the filtered
/// one.
pub fn target_raid_config(node: &Value) -> Option<&Value> {
    let filtered = node
        .pointer("/driver_internal_info/target_raid_config")
        .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()));
    filtered.or_else(|| {
        node.get("target_raid_config")
            .filter(|v| v.as_object().is_some_and(|o| !o.is_empty()))
    })
}

/// `True` when any logical disk says `controller: software` (IPA and
/// Ironic's `deploy_utils.is_software_raid`).
pub fn is_software_raid(config: &Value) -> bool {
    config
        .get("logical_disks")
        .and_then(Value::as_array)
        .is_some_and(|l| {
            l.iter()
                .any(|d| d.get("controller").and_then(Value::as_str) == Some("software"))
        })
}

fn parse_size(value: Option<&Value>) -> Option<VolumeSize> {
    match value? {
        Value::String(s) if s == "MAX" => Some(VolumeSize::Max),
        Value::String(s) => s.trim().parse().ok().map(VolumeSize::Gib),
        Value::Number(n) => n.as_u64().map(VolumeSize::Gib),
        _ => None,
    }
}

/// Parses and validates `config` (IPA `validate_configuration`): one or two
/// logical disks, all `controller: software`, the first RAID-1, at most one
/// `MAX` and one root volume, unique volume names (required for all when the
/// node's skip list names RAID volumes), `physical_disks` a list of at least
/// two hint objects, RAID-5/6 only with enough block devices.
///
/// IPA collects the problems and reports them together, as here. Where IPA
/// would crash on a malformed entry (a missing `raid_level`, a
/// `physical_disks` that is not a list, a `size_gb` that is not a size) this
/// reports the entry instead.
pub fn validate(
    config: &Value,
    node_uuid: &str,
    raid_skip_list: bool,
    block_device_count: usize,
) -> Result<Vec<LogicalDisk>, RaidError> {
    let list = config
        .get("logical_disks")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| RaidError("RAID config contains no logical disks".into()))?;
    let mut errors: Vec<String> = Vec::new();
    if !(1..=2).contains(&list.len()) {
        errors.push("Software RAID configuration requires one or two logical disks".into());
    }
    let mut disks = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    let mut root_selected = false;
    for (index, entry) in list.iter().enumerate() {
        let Some(raw) = entry.as_object() else {
            errors.push(format!("logical disk {index} is not an object: {entry}"));
            continue;
        };
        if raw.get("controller").and_then(Value::as_str) != Some("software") {
            errors.push(
                "Software RAID configuration requires all logical disks to have \
                 'controller'='software'"
                    .into(),
            );
        }
        let volume_name = raw.get("volume_name").and_then(Value::as_str);
        match volume_name {
            None if raid_skip_list => errors.push(
                "All logical disks are required to have a volume name specified as a volume \
                 name is mentioned in the property skip block devices."
                    .into(),
            ),
            None => {}
            Some(name) if names.contains(&name) => errors.push(format!(
                "Duplicate software RAID device name {name} detected"
            )),
            Some(name) => names.push(name),
        }
        let is_root_volume = raw.get("is_root_volume").and_then(Value::as_bool);
        if is_root_volume == Some(true) {
            if root_selected {
                errors.push(
                    "Software RAID configuration allows only one logical disk to be marked \
                     as is_root_volume"
                        .into(),
                );
            }
            root_selected = true;
        }
        let physical_disks = match raw.get("physical_disks") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                if items.len() < 2 {
                    errors.push(
                        "The physical_disks parameter for software RAID must be a list with \
                         at least 2 items, each specifying a disk in the device hints format"
                            .into(),
                    );
                }
                if items.iter().any(|i| !i.is_object()) {
                    errors.push(
                        "The physical_disks parameter for software RAID must be a list of \
                         device hints (dictionaries)"
                            .into(),
                    );
                }
                Some(
                    items
                        .iter()
                        .filter_map(|i| i.as_object().cloned())
                        .collect(),
                )
            }
            Some(_) => {
                errors.push(
                    "The physical_disks parameter for software RAID must be a list with at \
                     least 2 items, each specifying a disk in the device hints format"
                        .into(),
                );
                None
            }
        };
        let raid_level = match raw.get("raid_level") {
            Some(Value::String(l)) => l.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                errors.push(format!("logical disk {index} has no raid_level"));
                continue;
            }
        };
        let Some(size) = parse_size(raw.get("size_gb")) else {
            errors.push(format!(
                "logical disk {index}: size_gb must be a number of GiB or \"MAX\", got {}",
                raw.get("size_gb").unwrap_or(&Value::Null)
            ));
            continue;
        };
        if size == VolumeSize::Gib(0) {
            errors.push(format!("logical disk {index}: size_gb must be at least 1"));
        }
        disks.push(LogicalDisk {
            index,
            raid_level,
            size,
            volume_name: volume_name.map(String::from),
            is_root_volume,
            physical_disks,
            raw: raw.clone(),
        });
    }
    if let Some(first) = disks.first().filter(|d| d.index == 0) {
        if first.raid_level != "1" {
            errors.push(
                "Software RAID Configuration requires RAID-1 for the first logical disk".into(),
            );
        }
    }
    if list.len() == 2 && disks.len() == 2 {
        if disks[0].size == VolumeSize::Max && disks[1].size == VolumeSize::Max {
            errors.push("Software RAID can have only one RAID device with size 'MAX'".into());
        }
        let level = disks[1].raid_level.as_str();
        if !SUPPORTED_LEVELS.contains(&level) {
            errors.push(format!(
                "Software RAID configuration does not support RAID level {level}"
            ));
        }
        if level == "5" && block_device_count < 3 {
            errors.push(format!(
                "Software RAID configuration is not possible for RAID level 5 with only \
                 {block_device_count} block devices found."
            ));
        }
        if level == "6" && block_device_count < 4 {
            errors.push(format!(
                "Software RAID configuration is not possible for RAID level 6 with only \
                 {block_device_count} block devices found."
            ));
        }
    }
    if errors.is_empty() {
        Ok(disks)
    } else {
        Err(RaidError(format!(
            "Could not validate Software RAID config for {node_uuid}: {}",
            errors.join("; ")
        )))
    }
}

/// The order volumes are built in (IPA moves the `MAX` one last) with each
/// one's md device: `/dev/md<position>` (IPA `create_raid_device`).
pub fn build_order(disks: &[LogicalDisk]) -> Vec<(String, &LogicalDisk)> {
    let mut ordered: Vec<&LogicalDisk> =
        disks.iter().filter(|d| d.size != VolumeSize::Max).collect();
    ordered.extend(disks.iter().filter(|d| d.size == VolumeSize::Max));
    ordered
        .into_iter()
        .enumerate()
        .map(|(i, d)| (format!("/dev/md{i}"), d))
        .collect()
}

/// The array name (`mdadm --name`) of the volume built at `position`: its
/// `volume_name`, else `md<position>`.
pub fn array_name(disk: &LogicalDisk, position: usize) -> String {
    disk.volume_name
        .clone()
        .unwrap_or_else(|| format!("md{position}"))
}

/// Where the first RAID partition starts on a holder (IPA
/// `calculate_raid_start`): after room for the ESP in UEFI mode (551 MiB),
/// after room for a BIOS boot partition on GPT (8 MiB), else at the first
/// usable sector of the fresh msdos table (`first_free`, what `sgdisk -F`
/// prints).
pub fn raid_start(boot_mode: &str, table: TableKind, first_free: u64, sector: u64) -> u64 {
    if boot_mode == "uefi" {
        (ESP_SIZE_MIB + 1) * MIB / sector
    } else if table == TableKind::Gpt {
        8 * MIB / sector
    } else {
        first_free
    }
}

/// Where a volume's partition lies on one holder, as IPA's `parted mkpart`
/// puts it (`calc_raid_partition_sectors`): the first partition starts at
/// [`raid_start`] and ends at `size_gb` GiB from the start of the disk (not
/// after it, a quirk IPA documents: it is a little smaller than asked);
/// later ones start where the previous ended (whole GiB) and are `size_gb`
/// long; `MAX` runs to the last usable sector, aligned down to a MiB so
/// every holder of equal size gives equal partitions. Returns the first and
/// last sector (inclusive) and where the next partition starts, or why it
/// does not fit.
pub fn partition_extent(
    size: VolumeSize,
    start: PartitionStart,
    sector: u64,
    last_usable: u64,
) -> Result<(u64, u64, PartitionStart), String> {
    let first = match start {
        PartitionStart::Sector(s) => s,
        PartitionStart::Gib(g) => g * GIB / sector,
        PartitionStart::End => {
            return Err(format!(
                "no room for a partition of {} after a MAX partition",
                describe(size)
            ))
        }
    };
    let (last, next) = match (size, start) {
        (VolumeSize::Max, _) => {
            let align = (MIB / sector).max(1);
            ((last_usable + 1) / align * align - 1, None)
        }
        (VolumeSize::Gib(g), PartitionStart::Gib(s)) => ((s + g) * GIB / sector - 1, Some(s + g)),
        (VolumeSize::Gib(g), _) => (g * GIB / sector - 1, Some(g)),
    };
    if last <= first {
        return Err(format!(
            "a partition of {} cannot start at sector {first}",
            describe(size)
        ));
    }
    if last > last_usable {
        return Err(format!(
            "a partition of {} from sector {first} ends at sector {last}, past the last usable sector {last_usable}",
            describe(size)
        ));
    }
    Ok((
        first,
        last,
        next.map_or(PartitionStart::End, PartitionStart::Gib),
    ))
}

fn describe(size: VolumeSize) -> String {
    match size {
        VolumeSize::Gib(g) => format!("{g} GiB"),
        VolumeSize::Max => "MAX".into(),
    }
}

/// Where a holder's next RAID partition starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionStart {
    /// The first partition: a sector.
    Sector(u64),
    /// After a sized partition: whole GiB from the start of the disk.
    Gib(u64),
    /// After a `MAX` partition: nothing fits.
    End,
}

/// The md device and member partitions chosen for a root volume by the
/// node's configuration: the volume with `is_root_volume: true`, matched to
/// an existing array by its name. IPA remembers this only in the process
/// that built the arrays (`_raid_root_device_mapping`), so after the reboot
/// between cleaning and deployment it is lost; matching names works in any
/// agent. Returns `(array name, is_root_volume)` per volume that sets it.
pub fn root_volume_names(config: &Value) -> Vec<(String, bool)> {
    let Some(list) = config.get("logical_disks").and_then(Value::as_array) else {
        return Vec::new();
    };
    // The same order and names create_configuration uses.
    let disks: Vec<LogicalDisk> = list
        .iter()
        .enumerate()
        .filter_map(|(index, d)| {
            let raw = d.as_object()?;
            (raw.get("controller").and_then(Value::as_str) == Some("software")).then_some(())?;
            Some(LogicalDisk {
                index,
                raid_level: String::new(),
                size: parse_size(raw.get("size_gb"))?,
                volume_name: raw
                    .get("volume_name")
                    .and_then(Value::as_str)
                    .map(String::from),
                is_root_volume: raw.get("is_root_volume").and_then(Value::as_bool),
                physical_disks: None,
                raw: raw.clone(),
            })
        })
        .collect();
    build_order(&disks)
        .into_iter()
        .enumerate()
        .filter_map(|(position, (_, d))| Some((array_name(d, position), d.is_root_volume?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ld(level: &str, size: Value) -> Value {
        json!({"raid_level": level, "size_gb": size, "controller": "software"})
    }

    fn err(config: Value) -> String {
        validate(&config, "node-1", false, 2).unwrap_err().0
    }

    #[test]
    fn valid_configurations() {
        let c = json!({"logical_disks": [ld("1", json!(10)), ld("0", json!("MAX"))]});
        let disks = validate(&c, "n", false, 2).unwrap();
        assert_eq!(disks[1].size, VolumeSize::Max);
        let order = build_order(&disks);
        assert_eq!(order[0].0, "/dev/md0");
        assert_eq!(order[1].1.raid_level, "0");
        // MAX first in the list is built last.
        let c = json!({"logical_disks": [ld("1", json!("MAX")), ld("1+0", json!(4))]});
        let disks = validate(&c, "n", false, 2).unwrap();
        let order = build_order(&disks);
        assert_eq!(order[0].1.mdadm_level(), "10");
        assert_eq!(order[1].1.size, VolumeSize::Max);
    }

    #[test]
    fn ipa_messages() {
        assert_eq!(
            err(json!({"logical_disks": []})),
            "RAID config contains no logical disks"
        );
        assert_eq!(
            err(json!({"logical_disks": [ld("0", json!("MAX"))]})),
            "Could not validate Software RAID config for node-1: Software RAID Configuration \
             requires RAID-1 for the first logical disk"
        );
        let e = err(json!({"logical_disks": [
            {"raid_level": "1", "size_gb": "MAX", "controller": "hardware"},
            ld("5", json!("MAX")),
        ]}));
        assert!(e.contains("'controller'='software'"), "{e}");
        assert!(e.contains("only one RAID device with size 'MAX'"), "{e}");
        assert!(
            e.contains("RAID level 5 with only 2 block devices found."),
            "{e}"
        );
        assert!(
            err(json!({"logical_disks": [ld("1", json!(1)), ld("7", json!(1))]}))
                .contains("does not support RAID level 7")
        );
        let mut a = ld("1", json!(1));
        a["volume_name"] = json!("root");
        a["is_root_volume"] = json!(true);
        let e = err(json!({"logical_disks": [a.clone(), a]}));
        assert!(
            e.contains("Duplicate software RAID device name root detected"),
            "{e}"
        );
        assert!(
            e.contains("only one logical disk to be marked as is_root_volume"),
            "{e}"
        );
        let mut p = ld("1", json!(1));
        p["physical_disks"] = json!([{"name": "/dev/sda"}]);
        assert!(err(json!({"logical_disks": [p]})).contains("at least 2 items"));
        let mut p = ld("1", json!(1));
        p["physical_disks"] = json!(["sda", "sdb"]);
        assert!(err(json!({"logical_disks": [p]})).contains("list of device hints"));
        // A skip list with volume names requires names everywhere.
        let c = json!({"logical_disks": [ld("1", json!(1))]});
        assert!(validate(&c, "n", true, 2)
            .unwrap_err()
            .0
            .contains("volume name specified"));
        // What IPA would crash on is reported.
        assert!(
            err(json!({"logical_disks": [{"controller": "software", "size_gb": 1}]}))
                .contains("no raid_level")
        );
        assert!(err(json!({"logical_disks": [ld("1", json!("big"))]})).contains("size_gb"));
    }

    #[test]
    fn filtered_configuration_from_ironic_wins() {
        let node = json!({
            "target_raid_config": {"logical_disks": [ld("1", json!(1)), ld("0", json!(2))]},
            "driver_internal_info": {"target_raid_config": {"logical_disks": [ld("1", json!(1))]}},
        });
        let c = target_raid_config(&node).unwrap();
        assert_eq!(c["logical_disks"].as_array().unwrap().len(), 1);
        assert!(is_software_raid(c));
        let node = json!({"target_raid_config": {}, "driver_internal_info": {}});
        assert!(target_raid_config(&node).is_none());
    }

    #[test]
    fn partitions_where_parted_puts_them() {
        let s = 512;
        // UEFI: 551 MiB in, the first ends at 10 GiB from the disk start.
        let start = PartitionStart::Sector(raid_start("uefi", TableKind::Gpt, 2048, s));
        let (first, last, next) =
            partition_extent(VolumeSize::Gib(10), start, s, 40 << 21).unwrap();
        assert_eq!((first, last), (551 * 2048, 10 * 2_097_152 - 1));
        assert_eq!(next, PartitionStart::Gib(10));
        let (first, last, _) = partition_extent(VolumeSize::Gib(2), next, s, 40 << 21).unwrap();
        assert_eq!((first, last), (10 * 2_097_152, 12 * 2_097_152 - 1));
        // MAX: to the last usable sector, aligned down to a MiB.
        let last_usable = 20 * 2_097_152 - 34;
        let (_, last, next) =
            partition_extent(VolumeSize::Max, PartitionStart::Gib(12), s, last_usable).unwrap();
        assert_eq!((last + 1) % 2048, 0);
        assert!(last <= last_usable && last_usable - last < 2048);
        assert_eq!(next, PartitionStart::End);
        // BIOS: 8 MiB on GPT, the first free sector on msdos.
        assert_eq!(raid_start("bios", TableKind::Gpt, 34, s), 16384);
        assert_eq!(raid_start("bios", TableKind::Msdos, 2048, s), 2048);
        assert_eq!(raid_start("uefi", TableKind::Gpt, 6, 4096), 551 * 256);
        // Too big for the disk.
        let e = partition_extent(
            VolumeSize::Gib(30),
            PartitionStart::Sector(2048),
            s,
            20 << 21,
        )
        .unwrap_err();
        assert!(e.contains("past the last usable sector"), "{e}");
    }

    #[test]
    fn root_volumes_by_name() {
        let mut root = ld("1", json!(10));
        root["is_root_volume"] = json!(true);
        let mut data = ld("0", json!("MAX"));
        data["volume_name"] = json!("data");
        data["is_root_volume"] = json!(false);
        let c = json!({"logical_disks": [data, root]});
        // MAX is built last: the root volume is md0 and named so.
        assert_eq!(
            root_volume_names(&c),
            vec![("md0".to_string(), true), ("data".to_string(), false)]
        );
    }
}
