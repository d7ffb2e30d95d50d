//! Software RAID: the `raid` interface's steps `create_configuration`,
//! `delete_configuration` (clean, service) and `apply_configuration`
//! (deploy, service), as IPA's GenericHardwareManager builds arrays
//! (hardware.py `_do_create_configuration`, `delete_configuration`,
//! `_delete_config_pass`; raid_utils.py).
//!
//! Each volume gets one partition on every holder disk (tables written
//! natively, `holders`), then an md array over them through `mdadm`. What a
//! configuration means is `generic_storage::raid`.
//!
//! Longer than most files here: creating and deleting a configuration are two halves of one state
//! (which holders and arrays exist), kept together so the deletion passes mirror the creation;
//! holders and md are modules of their own.

use std::collections::{BTreeMap, BTreeSet};

use generic_storage::raid::{self as config, LogicalDisk, PartitionStart};
use generic_storage::table::{PartType, Table, TableKind};
use ironic_hardware_guest::prelude::*;
use serde_json::{json, Map, Value};

use crate::hints::{self, DeviceHints, HintDevice, SkipList};
use crate::inventory::disks::{self, DiskRecord};

pub mod holders;
pub mod md;

use holders::{warn, DiskIo};
use md::{raid_error, Fate, MdArray};

fn parse_node(json: &str) -> Result<Value, ManagerError> {
    match serde_json::from_str(json) {
        Ok(Value::Null) => Ok(Value::Object(Map::new())),
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(ManagerError::invalid_argument(format!(
            "node must be a JSON object, got {other}"
        ))),
        Err(e) => Err(ManagerError::invalid_argument(format!(
            "node is not JSON: {e}"
        ))),
    }
}

fn node_uuid(node: &Value) -> String {
    node.get("uuid")
        .and_then(Value::as_str)
        .unwrap_or("<unknown node>")
        .to_string()
}

/// IPA `get_node_boot_mode`: secure boot → uefi; else the node's deploy boot
/// mode or `boot_mode` capability; else the ramdisk's own mode.
pub fn node_boot_mode(node: &Value) -> String {
    let ramdisk = if crate::inventory::sysfs::is_dir("/sys/firmware/efi") {
        "uefi"
    } else {
        "bios"
    };
    let secure = ["instance_info", "properties"].iter().any(|k| {
        capability(node.get(*k), "secure_boot").is_some_and(|v| v.eq_ignore_ascii_case("true"))
    });
    if secure {
        return "uefi".into();
    }
    let chosen = node
        .pointer("/instance_info/deploy_boot_mode")
        .and_then(Value::as_str)
        .map(String::from)
        .or_else(|| capability(node.get("properties"), "boot_mode"))
        .or_else(|| {
            node.pointer("/driver_internal_info/deploy_boot_mode")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .map(|m| m.to_ascii_lowercase());
    match chosen.as_deref() {
        Some("uefi") => "uefi".into(),
        Some("bios") => "bios".into(),
        _ => ramdisk.into(),
    }
}

/// A capability of `holder` (`instance_info` or `properties`):
/// `capabilities` as a dict, a JSON string or `k:v,k:v`.
fn capability(holder: Option<&Value>, key: &str) -> Option<String> {
    let caps = holder?.get("capabilities")?;
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    match caps {
        Value::Object(m) => m.get(key).and_then(text),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => m.get(key).and_then(text),
            _ => s.split(',').find_map(|kv| {
                let (k, v) = kv.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            }),
        },
        _ => None,
    }
}

/// IPA `get_partition_table_type_from_specs`: gpt in UEFI mode, else the
/// `disk_label` capability (instance_info first), msdos by default.
fn partition_table_type(node: &Value, boot_mode: &str) -> TableKind {
    if boot_mode == "uefi" {
        return TableKind::Gpt;
    }
    let label = capability(node.get("instance_info"), "disk_label")
        .or_else(|| capability(node.get("properties"), "disk_label"));
    if label.as_deref() == Some("gpt") {
        TableKind::Gpt
    } else {
        TableKind::Msdos
    }
}

/// Disks RAID volumes may be built on: every whole disk (multipath maps
/// included, their paths not), without existing md arrays. IPA's
/// `list_block_devices` also lists md arrays, so a volume spanning "all
/// disks" would try to partition an existing array; they are left out here.
fn raid_candidates() -> Result<Vec<DiskRecord>, ManagerError> {
    Ok(disks::list_disks()?
        .into_iter()
        .filter(|d| !d.kind.contains("raid"))
        .collect())
}

/// Each volume's disks, by the volume's index in the configuration.
type VolumeDisks = BTreeMap<usize, Vec<String>>;

/// IPA `raid_utils.get_block_devices_for_raid`: each volume's disks (its
/// `physical_disks` hints, one distinct disk per hint, else every disk),
/// and all disks involved, in order.
fn devices_for_raid(
    candidates: &[HintDevice],
    volumes: &[LogicalDisk],
) -> Result<(Vec<String>, VolumeDisks), ManagerError> {
    let mut all: Vec<String> = Vec::new();
    let mut per_volume = BTreeMap::new();
    let described: Vec<String> = candidates.iter().map(|d| d.name.clone()).collect();
    for volume in volumes {
        let matching: Vec<String> = match &volume.physical_disks {
            Some(hints_list) => {
                let mut matching: Vec<String> = Vec::new();
                for hint in hints_list {
                    let parsed = DeviceHints::parse(&Value::Object(hint.clone()))
                        .map_err(|e| {
                            raid_error(format!(
                                "physical_disks hint {}: {e:?}",
                                Value::Object(hint.clone())
                            ))
                        })?
                        .ok_or_else(|| raid_error("an empty physical_disks hint"))?;
                    let names: Vec<&str> = candidates
                        .iter()
                        .filter(|d| parsed.matches(d))
                        .map(|d| d.name.as_str())
                        .collect();
                    if names.is_empty() {
                        return Err(raid_error(format!(
                            "No candidates for physical disk {} from the list {described:?}",
                            Value::Object(hint.clone())
                        )));
                    }
                    let Some(pick) = names.iter().find(|n| !matching.iter().any(|m| m == *n))
                    else {
                        return Err(raid_error(format!(
                            "No candidates left for physical disk {} from the list {names:?} \
                             after picking {matching:?} for previous volumes",
                            Value::Object(hint.clone())
                        )));
                    };
                    matching.push(pick.to_string());
                }
                matching
            }
            None => described.clone(),
        };
        for m in &matching {
            if !all.contains(m) {
                all.push(m.clone());
            }
        }
        per_volume.insert(volume.index, matching);
    }
    Ok((all, per_volume))
}

/// `create_configuration` (clean, service): builds the node's software RAID
/// configuration and returns it (Ironic stores it as the node's
/// `raid_config`). No configuration: `{}`.
pub fn create_configuration(node_json: &str) -> Result<Json, ManagerError> {
    let node = parse_node(node_json)?;
    let Some(config) = config::target_raid_config(&node).cloned() else {
        log::log(log::Level::Info, "No target_raid_config found");
        return json_result(&json!({}));
    };
    let created = do_create(&node, &config)?;
    json_result(&created)
}

/// `apply_configuration(raid_config, delete_existing=True)` (deploy,
/// service): validates, deletes what exists unless told not to, builds.
pub fn apply_configuration(node_json: &str, args: &StepArgs) -> Result<Json, ManagerError> {
    let node = parse_node(node_json)?;
    let raid_config: Value = match args.as_map().get("raid_config") {
        None | Some(Value::Null) => {
            return Err(ManagerError::invalid_argument(
                "apply_configuration: missing required argument raid_config",
            ))
        }
        // Deploy templates carry arguments as given; a JSON string is accepted.
        Some(Value::String(text)) => serde_json::from_str(text).map_err(|e| {
            ManagerError::invalid_argument(format!(
                "apply_configuration: raid_config is not JSON: {e}"
            ))
        })?,
        Some(v) => v.clone(),
    };
    let delete_existing = match args.as_map().get("delete_existing") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => !matches!(
            s.to_ascii_lowercase().as_str(),
            "false" | "0" | "no" | "off"
        ),
        Some(other) => hints::truthy(Some(other)),
    };
    let skip = SkipList::from_node(&node)?;
    let count = raid_candidates()?.len();
    config::validate(
        &raid_config,
        &node_uuid(&node),
        !skip.volume_names.is_empty(),
        count,
    )
    .map_err(|e| raid_error(e.0))?;
    if delete_existing {
        delete(&node)?;
    }
    json_result(&do_create(&node, &raid_config)?)
}

/// IPA `_do_create_configuration`.
fn do_create(node: &Value, raid_config: &Value) -> Result<Value, ManagerError> {
    if !config::is_software_raid(raid_config) {
        log::log(log::Level::Info, "No Software RAID config found");
        return Ok(json!({}));
    }
    log::log(log::Level::Info, "Creating Software RAID");
    let skip = SkipList::from_node(node)?;
    let records = raid_candidates()?;
    let volumes = config::validate(
        raid_config,
        &node_uuid(node),
        !skip.volume_names.is_empty(),
        records.len(),
    )
    .map_err(|e| raid_error(e.0))?;

    // Volumes kept (or kept but wiped) by the skip list are not built again.
    let mut reused: Vec<usize> = Vec::new();
    let mut kept_holders: BTreeSet<String> = BTreeSet::new();
    if !skip.volume_names.is_empty() {
        let arrays = md::arrays()?;
        reused = reused_volumes(&volumes, &arrays, &skip.volume_names)?;
        let fates = md::fates(&arrays, &skip.volume_names);
        for a in &arrays {
            if fates.get(&a.name).is_some_and(|f| f.0 != Fate::Delete) {
                kept_holders.extend(a.holders.iter().cloned());
            }
        }
    }
    let volumes: Vec<LogicalDisk> = volumes
        .into_iter()
        .filter(|v| !reused.contains(&v.index))
        .collect();

    let hint_devices = hints::disk_devices(&records);
    let (block_devices, per_volume) = devices_for_raid(&hint_devices, &volumes)?;
    if reused.is_empty() {
        let mut with_parts = Vec::new();
        for name in &block_devices {
            let io = DiskIo::open(name).map_err(raid_error)?;
            if io
                .table()
                .map_err(raid_error)?
                .is_some_and(|t| !t.entries.is_empty())
            {
                with_parts.push(name.clone());
            }
        }
        if !with_parts.is_empty() {
            return Err(raid_error(format!(
                "Partitions detected on devices {} during RAID config",
                with_parts.join(", ")
            )));
        }
    } else if let Some(shared) = block_devices.iter().find(|d| kept_holders.contains(*d)) {
        // IPA would write a new table over the kept arrays' partitions here.
        return Err(raid_error(format!(
            "{shared} holds a software RAID volume the skip list keeps; new volumes cannot \
             be partitioned on it (name its other disks in physical_disks)"
        )));
    }

    let table_kind = partition_table_type(node, &node_boot_mode(node));
    let boot_mode = node_boot_mode(node);
    if block_devices.is_empty() || volumes.is_empty() {
        log::log(log::Level::Info, "Successfully created Software RAID");
        return Ok(raid_config.clone());
    }

    // mklabel on every disk, then each volume's partition on its disks
    // (`MAX` last, as IPA orders them).
    let mut tables: BTreeMap<String, (DiskIo, Table, PartitionStart)> = BTreeMap::new();
    for name in &block_devices {
        let io = DiskIo::open(name).map_err(raid_error)?;
        let sectors = io.disk.size() / generic_storage::table::BlockIo::sector_size(&io);
        let sector = generic_storage::table::BlockIo::sector_size(&io);
        let table = Table::new(table_kind, sector, sectors, holders::random());
        let first_free = table
            .first_free()
            .ok_or_else(|| raid_error(format!("{name} is too small")))?;
        let start = PartitionStart::Sector(config::raid_start(
            &boot_mode, table_kind, first_free, sector,
        ));
        tables.insert(name.clone(), (io, table, start));
    }
    let order = config::build_order(&volumes);
    let mut members: Vec<Vec<String>> = Vec::new();
    for (_, volume) in &order {
        let mut parts = Vec::new();
        for name in &per_volume[&volume.index] {
            let (_, table, start) = tables
                .get_mut(name)
                .ok_or_else(|| raid_error(format!("{name} was not prepared")))?;
            let (first, last, next) =
                config::partition_extent(volume.size, *start, table.sector, table.last_usable())
                    .map_err(|e| {
                        raid_error(format!("Failed to create partitions on {name}: {e}"))
                    })?;
            let number = table
                .add(
                    first,
                    last,
                    PartType::LinuxData,
                    "primary",
                    holders::random(),
                )
                .map_err(|e| raid_error(format!("Failed to create partitions on {name}: {e}")))?;
            *start = next;
            parts.push(holders::partition_name(name, number));
        }
        members.push(parts);
    }
    for (name, (io, table, _)) in tables.iter_mut() {
        log::log(
            log::Level::Info,
            &format!(
                "{name}: writing a {} table for software RAID",
                table.kind.as_str()
            ),
        );
        table
            .write(io)
            .map_err(|e| raid_error(format!("Failed to create partitions on {name}: {e}")))?;
        io.disk.flush().map_err(|e| {
            raid_error(format!(
                "{name}: flush: {}",
                crate::steps::metadata::disk_error(&e)
            ))
        })?;
        io.reread().map_err(raid_error)?;
    }

    for (position, ((device, volume), parts)) in order.iter().zip(&members).enumerate() {
        let name = config::array_name(volume, position);
        let count = parts.len().to_string();
        let mut args = vec![
            "--create",
            device.as_str(),
            "--force",
            "--run",
            "--metadata=1",
            "--level",
            volume.mdadm_level(),
            "--name",
            name.as_str(),
            "--raid-devices",
            count.as_str(),
        ];
        args.extend(parts.iter().map(String::as_str));
        md::mdadm(&args).map_err(|e| {
            raid_error(format!(
                "Failed to create md device {device} on {}: {e}",
                parts.join(" ")
            ))
        })?;
        // IPA re-adds members mdadm left out (raid_utils.create_raid_device).
        let actual = md::run("mdadm", &["--detail", device])
            .ok()
            .filter(md::Ran::ok)
            .map(|r| generic_storage::mdadm::component_devices(&r.stdout))
            .unwrap_or_default();
        for missing in parts.iter().filter(|p| !actual.contains(p)) {
            warn(&format!(
                "Found {missing} to be missing from {device} ... re-adding!"
            ));
            md::mdadm(&["--add", device, missing])
                .map_err(|e| raid_error(format!("Failed re-add {missing} to {device}: {e}")))?;
        }
        log::log(
            log::Level::Info,
            &format!(
                "created {device} ({name}, raid{}) on {}",
                volume.raid_level,
                parts.join(", ")
            ),
        );
    }
    log::log(log::Level::Info, "Successfully created Software RAID");
    Ok(raid_config.clone())
}

/// IPA `_create_raid_ignore_list`: with volume names in the skip list, the
/// arrays that exist must be exactly the kept ones and their wiped
/// neighbours, each matching a volume of the configuration; those volumes
/// are not built again. Returns their indexes.
fn reused_volumes(
    volumes: &[LogicalDisk],
    arrays: &[MdArray],
    skip_names: &[String],
) -> Result<Vec<usize>, ManagerError> {
    if arrays.is_empty() {
        return Ok(Vec::new());
    }
    if arrays
        .iter()
        .any(|a| a.volume_name.as_deref().is_none_or(str::is_empty))
    {
        return Err(raid_error(
            "A Software RAID device detected that does not have a volume name. This is not \
             allowed because there is a volume_name hint in the property 'skip_block_devices'.",
        ));
    }
    let fates = md::fates(arrays, skip_names);
    let mut remaining: Vec<(&MdArray, String)> = arrays
        .iter()
        .filter_map(|a| Some((a, a.volume_name.clone()?)))
        .collect();
    let mut reused = Vec::new();
    for volume in volumes {
        let Some(name) = &volume.volume_name else {
            continue;
        };
        let Some(pos) = remaining.iter().position(|(_, n)| n == name) else {
            continue;
        };
        let (array, _) = remaining[pos];
        if !skip_names.contains(name) {
            let (fate, cause) = fates
                .get(&array.name)
                .cloned()
                .unwrap_or((Fate::Delete, None));
            if fate != Fate::Wipe || cause.is_none() {
                return Err(raid_error(
                    "Existing Software RAID device detected that should not",
                ));
            }
        }
        remaining.remove(pos);
        reused.push(volume.index);
    }
    remaining
        .retain(|(a, n)| !(n == "esp" && fates.get(&a.name).is_some_and(|f| f.0 == Fate::Keep)));
    if !remaining.is_empty() {
        return Err(raid_error(
            "Existing Software RAID device detected that should not",
        ));
    }
    Ok(reused)
}

/// `delete_configuration` (clean, service): every array is stopped and its
/// members' superblocks zeroed, then every md trace on any disk, then the
/// holders' tables; arrays the skip list keeps stay (their neighbours are
/// only wiped). Two passes, as IPA; arrays still there fail the step.
pub fn delete_configuration(node_json: &str) -> Result<Json, ManagerError> {
    let node = parse_node(node_json)?;
    delete(&node)?;
    json_result(&Value::Null)
}

fn scan() -> Result<Vec<MdArray>, ManagerError> {
    // Arrays whose members carry superblocks but were not assembled at boot.
    // Its exit status is not checked (IPA: check_exit_code=False).
    md::run("mdadm", &["--assemble", "--scan"]).map_err(raid_error)?;
    md::arrays()
}

fn delete(node: &Value) -> Result<(), ManagerError> {
    let skip_names = SkipList::from_node(node)?.volume_names;
    let mut arrays = scan()?;
    for _ in 0..2 {
        let fates = delete_pass(&arrays, &skip_names)?;
        arrays = scan()?;
        if !skip_names.is_empty() {
            arrays.retain(|a| fates.get(&a.name).is_none_or(|f| f.0 == Fate::Delete));
        }
        if arrays.is_empty() {
            log::log(log::Level::Info, "Finished deleting Software RAID(s)");
            return Ok(());
        }
    }
    let names: Vec<&str> = arrays.iter().map(|a| a.name.as_str()).collect();
    Err(raid_error(format!(
        "Unable to clean all softraid correctly. Remaining {names:?}"
    )))
}

/// One pass of IPA's `_delete_config_pass`.
fn delete_pass(
    arrays: &[MdArray],
    skip_names: &[String],
) -> Result<BTreeMap<String, (Fate, Option<String>)>, ManagerError> {
    let fates = if skip_names.is_empty() {
        arrays
            .iter()
            .map(|a| (a.name.clone(), (Fate::Delete, None)))
            .collect()
    } else {
        md::fates(arrays, skip_names)
    };
    let mut all_holders: Vec<String> = Vec::new();
    let mut keep_devices: BTreeSet<String> = BTreeSet::new();
    let mut delete_partitions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for array in arrays {
        if array.members.is_empty() {
            log::log(
                log::Level::Info,
                &format!(
                    "Software RAID cleaning is skipping {} (no members)",
                    array.name
                ),
            );
            continue;
        }
        for h in &array.holders {
            if !all_holders.contains(h) {
                all_holders.push(h.clone());
            }
        }
        let (fate, cause) = fates
            .get(&array.name)
            .cloned()
            .unwrap_or((Fate::Delete, None));
        if fate != Fate::Delete {
            keep_devices.extend(array.members.iter().cloned());
            if fate == Fate::Wipe {
                warn(&format!(
                    "Software RAID device {} is not going to be deleted because device {} is on \
                     the skip list and is present on the same holder disk. The device will be wiped.",
                    array.name,
                    cause.unwrap_or_default()
                ));
                if let Err(e) = DiskIo::open(&array.name).and_then(|io| io.wipe()) {
                    warn(&format!("Failed to wipe {}: {e}", array.name));
                }
            }
            warn(&format!(
                "Software RAID device {} was not deleted",
                array.name
            ));
            continue;
        }
        log::log(
            log::Level::Info,
            &format!("Deleting Software RAID device {}", array.name),
        );
        if let Err(e) = DiskIo::open(&array.name).and_then(|io| io.wipe()) {
            warn(&format!("Failed to wipe {}: {e}", array.name));
        }
        if let Err(e) = md::mdadm(&["--stop", &array.name]) {
            warn(&format!("Failed to stop {}: {e}", array.name));
        }
        for member in &array.members {
            let examined = md::run("mdadm", &["--examine", member]).map_err(raid_error)?;
            if !examined.ok() {
                if generic_storage::mdadm::no_superblock(&examined.stderr) {
                    continue;
                }
                return Err(raid_error(format!(
                    "Failed to examine device {member}: {}",
                    examined.message()
                )));
            }
            if let Err(e) = md::mdadm(&["--zero-superblock", member]) {
                warn(&format!("Failed to remove superblock from {member}: {e}"));
            }
            if !skip_names.is_empty() {
                let holder = format!("/dev/{}", md::holder_of(member.trim_start_matches("/dev/")));
                delete_partitions
                    .entry(holder)
                    .or_default()
                    .push(member.clone());
            }
        }
        log::log(
            log::Level::Info,
            &format!("Deleted Software RAID device {}", array.name),
        );
    }

    // Every remaining md trace on any disk or partition, partitions first
    // (IPA: reversed lsblk order).
    let mut keep_disks: BTreeSet<String> = BTreeSet::new();
    let mut names: Vec<(String, String)> = Vec::new();
    for disk in disks::list_disks()?
        .into_iter()
        .filter(|d| !d.kind.contains("raid"))
    {
        names.push((disk.device.name.clone(), disk.device.name.clone()));
        for p in &disk.partitions {
            names.push((p.name.clone(), disk.device.name.clone()));
        }
    }
    for (name, disk) in names.iter().rev() {
        if keep_devices.contains(name) {
            keep_disks.insert(disk.clone());
            continue;
        }
        if keep_disks.contains(name) {
            continue;
        }
        let examined = match md::run("mdadm", &["--examine", name]) {
            Ok(r) => r,
            Err(e) => {
                warn(&format!("Failed to examine device {name}: {e}"));
                continue;
            }
        };
        if !examined.ok() {
            continue;
        }
        if let Err(e) = md::mdadm(&["--zero-superblock", name]) {
            warn(&format!("Failed to remove superblock from {name}: {e}"));
        }
    }

    // The holders' tables: gone, or only the deleted arrays' partitions when
    // the disk also holds a kept array.
    for holder in &all_holders {
        let io = match DiskIo::open(holder) {
            Ok(io) => io,
            Err(e) => {
                warn(&format!("Failed to remove partitions on {holder}: {e}"));
                continue;
            }
        };
        if keep_disks.contains(holder) {
            let Some(parts) = delete_partitions.get(holder) else {
                warn(&format!(
                    "Holder disk {holder} contains only logical disk(s) on the skip list"
                ));
                continue;
            };
            warn(&format!(
                "Holder disk {holder} contains logical disk on the skip list. Deleting just partitions: {}",
                parts.join(", ")
            ));
            let mut io = io;
            let mut table = io.table().map_err(raid_error)?.ok_or_else(|| {
                raid_error(format!(
                    "{holder} has no partition table to delete partitions from"
                ))
            })?;
            for part in parts {
                let number = part
                    .trim_start_matches(holder.as_str())
                    .trim_start_matches('p')
                    .parse::<u32>()
                    .map_err(|_| {
                        raid_error(format!("cannot tell the partition number of {part}"))
                    })?;
                table.remove(number);
            }
            table.write(&mut io).map_err(raid_error)?;
            io.reread().map_err(raid_error)?;
            continue;
        }
        log::log(
            log::Level::Info,
            &format!("Removing partitions on holder disk {holder}"),
        );
        if let Err(e) = io.wipe().and_then(|()| io.reread()) {
            warn(&format!("Failed to remove partitions on {holder}: {e}"));
        }
    }
    Ok(fates)
}

/// The software RAID root volume by the node's configuration (IPA
/// `get_os_install_device` with `_raid_root_device_mapping`): the array of
/// the volume marked `is_root_volume: true`, if it exists; and the devices
/// volumes marked `false` exclude from the candidates (the array, its
/// holder disks, its members).
pub fn root_volume(node: &Value) -> Result<(Option<String>, BTreeSet<String>), ManagerError> {
    let Some(cfg) = config::target_raid_config(node) else {
        return Ok((None, BTreeSet::new()));
    };
    let wanted = config::root_volume_names(cfg);
    if wanted.is_empty() {
        return Ok((None, BTreeSet::new()));
    }
    let arrays = md::arrays()?;
    let mut excluded = BTreeSet::new();
    for (name, is_root) in wanted {
        let Some(array) = arrays
            .iter()
            .find(|a| a.volume_name.as_deref() == Some(name.as_str()))
        else {
            continue;
        };
        if is_root {
            return Ok((Some(array.name.clone()), excluded));
        }
        excluded.insert(array.name.clone());
        excluded.extend(array.holders.iter().cloned());
        excluded.extend(array.members.iter().cloned());
    }
    Ok((None, excluded))
}
