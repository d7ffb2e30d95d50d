//! `erase_devices`, `erase_devices_metadata`, `erase_devices_express`
//! (IPA `hardware.py` `HardwareManager.erase_devices`, `GenericHardwareManager`).

use std::collections::{BTreeMap, BTreeSet};

use ironic_hardware_guest::disks::{self, Access, Disk, DiskError, EraseJob, ZeroPass};
use ironic_hardware_guest::prelude::*;
use serde_json::{Map, Value};

use super::devices::{self, Device, Entry};
use super::metadata::{self, disk_error, Region};
use super::node::{EraseOptions, Node};
use super::secure_erase::{self, EraseError};
use super::skip;

const ERASE_ERROR: &str = "BlockDeviceEraseError";

fn open(name: &str, access: Access) -> Result<Disk, String> {
    Disk::open(name, access).map_err(|e| format!("cannot open {name}: {}", disk_error(&e)))
}

fn sector_of(disk: &Disk) -> u64 {
    u64::from(disk.logical_sector_size()).max(512)
}

fn whole_region(disk: &Disk) -> Region<'_> {
    Region {
        disk,
        base: 0,
        len: disk.size(),
        sector: sector_of(disk),
    }
}

fn partition_region<'a>(disk: &'a Disk, part: &devices::Partition) -> Region<'a> {
    Region {
        disk,
        base: part.start,
        len: part.size,
        sector: sector_of(disk),
    }
}

/// The device or any of its partitions is a software RAID member.
fn is_raid_member(device: &Device, disk: Option<&Disk>) -> bool {
    let knames: Vec<&str> = std::iter::once(device.kname.as_str())
        .chain(device.partitions.iter().map(|p| devices::kname_of(&p.name)))
        .collect();
    let regions: Vec<Region> = disk
        .map(|d| {
            std::iter::once(whole_region(d))
                .chain(device.partitions.iter().map(|p| partition_region(d, p)))
                .collect()
        })
        .unwrap_or_default();
    skip::is_raid_member(&knames, &regions)
}

/// Whole devices after the skip list: hint matches and RAID volumes
/// the skip list keeps are dropped, and with `include_wipe` also the
/// volumes kept but wiped (IPA `list_block_devices_check_skip_list`).
/// Also returns the skipped names (partitions too).
fn listed_devices(
    node: &Node,
    include_wipe: bool,
) -> Result<(Vec<Device>, BTreeSet<String>), ManagerError> {
    let (devices, skipped) = devices::list_devices(&node.value)?;
    let volume_names = crate::hints::SkipList::from_node(&node.value)?.volume_names;
    let fates = if volume_names.is_empty() {
        Default::default()
    } else {
        let arrays = crate::raid::md::arrays()?;
        crate::raid::md::fates(&arrays, &volume_names)
    };
    let mut kept = Vec::new();
    for device in devices {
        if skipped.contains(&device.name) {
            log::log(
                log::Level::Info,
                &format!("{} is in the skip list; not erasing it", device.name),
            );
            continue;
        }
        let fate = fates.get(&device.name).map(|f| f.0);
        let spared = match fate {
            Some(crate::raid::md::Fate::Keep) => true,
            Some(crate::raid::md::Fate::Wipe) => include_wipe,
            _ => false,
        };
        if spared {
            log::log(
                log::Level::Info,
                &format!("{} is a RAID volume the skip list keeps", device.name),
            );
            continue;
        }
        kept.push(device);
    }
    Ok((kept, skipped))
}

/// Run the shared-filesystem guard over `[start, start + len)` of `disk`.
fn guard(node: &Node, name: &str, disk: &Disk, start: u64, len: u64) -> Result<(), ManagerError> {
    if !node.options.guard {
        return Ok(());
    }
    match skip::protected_filesystem(&whole_region(disk), start, len) {
        Some(what) => Err(skip::protected_error(name, what)),
        None => Ok(()),
    }
}

// ------------------------------------------------------------ progress

/// Step-wide progress: each device is an equal share.
struct Progress {
    step: &'static str,
    devices: usize,
}

impl Progress {
    fn report(&self, index: usize, fraction: f64, message: &str) {
        let share = 100.0 / self.devices.max(1) as f64;
        let percent = (index as f64 * share + fraction.clamp(0.0, 1.0) * share).min(100.0);
        progress::report(Some(percent as u8), &format!("{}: {message}", self.step));
    }
}

// --------------------------------------------------------- erase_devices

/// What the per-device phase decided.
enum Prepared {
    /// Done without an overwrite: secure erase, or skipped.
    Done(String),
    /// To be overwritten; the disk is open read-write.
    Overwrite(Disk),
}

/// `erase_devices` (IPA `HardwareManager.erase_devices`). Per device, in
/// listing order: the checks and the secure-erase attempt (programs run through
/// the host one at a time). Then every device left to overwrite goes to the
/// host in one `erase-many` call, which runs up to `disk_erasure_concurrency`
/// of them at the same time on host threads: a wasm guest has a single thread,
/// so only the host can overlap the devices' I/O. A failing device does not
/// stop the others; the step then fails naming every failed device.
pub fn erase_devices(node_json: &str) -> Result<Json, ManagerError> {
    let node = Node::parse(node_json)?;
    let (devices, _) = listed_devices(&node, false)?;
    if devices.is_empty() {
        return json_result(&Map::new());
    }
    // IPA checks each device just before submitting it, so a protected disk
    // found late leaves earlier erasures running. We check every device
    // before touching any.
    for device in &devices {
        // A device we cannot open cannot be erased either; that failure is
        // reported for the device below instead of stopping every device.
        if let Ok(disk) = open(&device.name, Access::ReadOnly) {
            guard(&node, &device.name, &disk, 0, device.size)?;
        }
    }
    let mut errors: Vec<(usize, String)> = Vec::new();
    let mut overwrites: Vec<(usize, Disk)> = Vec::new();
    for (index, device) in devices.iter().enumerate() {
        progress::report_device(&device.name, Some(0), "checking");
        match prepare(&node.options, device) {
            Ok(Prepared::Done(what)) => {
                log::log(log::Level::Info, &format!("{} {what}", device.name));
                progress::report_device(&device.name, Some(100), &what);
            }
            Ok(Prepared::Overwrite(disk)) => {
                progress::report_device(&device.name, Some(0), "waiting for the overwrite");
                overwrites.push((index, disk));
            }
            Err(e) => {
                fail(&device.name, &e);
                errors.push((index, e));
            }
        }
    }
    errors.extend(overwrite_all(&devices, &overwrites, &node.options));
    errors.sort_by_key(|(index, _)| *index);
    if !errors.is_empty() {
        let named: Vec<(String, String)> = errors
            .into_iter()
            .map(|(index, e)| (devices[index].name.clone(), e))
            .collect();
        return Err(ManagerError::failed_as(
            ERASE_ERROR,
            format!(
                "Failed to erase the device(s): {}",
                join_errors(&named, "; ")
            ),
        ));
    }
    progress::report(Some(100), "erase_devices: done");
    // IPA's generic erase_block_device returns None for every device.
    let result: Map<String, Value> = devices
        .iter()
        .map(|d| (d.name.clone(), Value::Null))
        .collect();
    json_result(&result)
}

fn fail(device: &str, error: &str) {
    log::log(
        log::Level::Error,
        &format!("erasing {device} failed: {error}"),
    );
    progress::report_device(device, Some(100), "failed");
    progress::report(None, &format!("erase_devices: {device} failed"));
}

fn join_errors(errors: &[(String, String)], separator: &str) -> String {
    errors
        .iter()
        .map(|(dev, err)| format!("\"{dev}\": {err}"))
        .collect::<Vec<_>>()
        .join(separator)
}

/// IPA's generic `erase_block_device` for one whole device, up to the
/// overwrite: skips, read-only handling and secure erase.
fn prepare(opts: &EraseOptions, device: &Device) -> Result<Prepared, String> {
    let dev = device.name.as_str();
    if skip::is_virtual_media(&device.kname) {
        return Ok(Prepared::Done("skipped: virtual media device".into()));
    }
    let reader = open(dev, Access::ReadOnly)?;
    if is_raid_member(device, Some(&reader)) {
        return Ok(Prepared::Done("skipped: Linux software RAID member".into()));
    }
    drop(reader);
    if devices::is_read_only(&device.kname, None) {
        if opts.skip_read_only {
            return Ok(Prepared::Done("skipped: read-only device".into()));
        }
        return Err(format!(
            "Failed to erase BlockDevice {dev}: the device is in read-only mode \
             (set agent_erase_skip_read_only to skip such devices)"
        ));
    }

    let secure: Result<bool, EraseError> = if dev.starts_with("/dev/nvme") {
        if opts.enable_nvme_secure_erase {
            secure_erase::nvme_erase(dev).map(|()| true)
        } else {
            Ok(false)
        }
    } else if opts.enable_ata_secure_erase {
        secure_erase::ata_erase(dev)
    } else {
        Ok(false)
    };
    match secure {
        Ok(true) if dev.starts_with("/dev/nvme") => {
            return Ok(Prepared::Done("erased (NVMe format)".into()))
        }
        Ok(true) => return Ok(Prepared::Done("erased (ATA security erase)".into())),
        Ok(false) => {}
        Err(EraseError(e)) if opts.continue_if_secure_erase_failed => {
            log::log(
                log::Level::Warn,
                &format!("secure erase of {dev} failed, overwriting instead: {e}"),
            );
        }
        Err(EraseError(e)) => {
            return Err(format!(
                "Failed to invoke secure erase, fallback to shred is not enabled: {e}"
            ));
        }
    }
    if opts.iterations == 0 && !opts.zeroize {
        // shred with no pass and no --zero writes nothing; so do we.
        log::log(
            log::Level::Warn,
            &format!(
                "{dev}: agent_erase_devices_iterations=0 and zeroize off: nothing is overwritten"
            ),
        );
        return Ok(Prepared::Done("not overwritten (no pass requested)".into()));
    }
    open(dev, Access::ReadWrite).map(Prepared::Overwrite)
}

/// The overwrite fallback, equivalent to `shred --force [--zero] --iterations N`,
/// for every device in `overwrites` in one host call: N passes of
/// pseudo-random data, then, with `agent_erase_devices_zeroize`, a final pass
/// that makes the device read back zeroes. Returns the failures.
///
/// Only the final zero pass uses the cheapest zeroing primitive
/// (BLKZEROOUT / fallocate ZERO_RANGE): its promise is "reads return
/// zeroes", which that guarantees at a fraction of the cost. The random
/// passes are real writes: the operator asked for the media to be
/// overwritten, and a zeroing primitive may be a deallocation that leaves old
/// data in flash or in a thin pool.
fn overwrite_all(
    devices: &[Device],
    overwrites: &[(usize, Disk)],
    opts: &EraseOptions,
) -> Vec<(usize, String)> {
    if overwrites.is_empty() {
        return Vec::new();
    }
    let concurrency = opts.concurrency.clamp(1, overwrites.len() as u32);
    log::log(
        log::Level::Info,
        &format!(
            "overwriting {} device(s), {concurrency} at a time ({} random pass(es){})",
            overwrites.len(),
            opts.iterations,
            if opts.zeroize { " and a zero pass" } else { "" }
        ),
    );
    let zeroes = if opts.zeroize {
        ZeroPass::Cheapest
    } else {
        ZeroPass::None
    };
    let jobs: Vec<EraseJob<'_>> = overwrites
        .iter()
        .map(|(_, disk)| EraseJob {
            disk,
            random_passes: opts.iterations,
            zeroes,
        })
        .collect();
    let results = disks::erase_many(&jobs, concurrency);
    let mut errors = Vec::new();
    for (i, (index, _)) in overwrites.iter().enumerate() {
        let dev = devices[*index].name.as_str();
        let result = results.get(i).cloned().unwrap_or_else(|| {
            Err(DiskError::Io(format!(
                "{dev}: the host returned no result for its erase job"
            )))
        });
        match result {
            Ok(()) => {
                log::log(log::Level::Info, &format!("{dev} erased (overwrite)"));
            }
            Err(e) => {
                let e = format!("Unable to erase block device {dev}: {}", disk_error(&e));
                fail(dev, &e);
                errors.push((*index, e));
            }
        }
    }
    errors
}

// ------------------------------------------------ metadata and express

/// The devices and partitions of IPA's `_list_erasable_devices`: skip-listed
/// and kept-RAID entries removed, then virtual media, RAID members and
/// read-only entries silently dropped. Sorted by name descending (partitions
/// before their disk).
fn erasable_entries(node: &Node) -> Result<Vec<Entry>, ManagerError> {
    let (devices, skipped) = listed_devices(node, true)?;
    let mut entries = Vec::new();
    for entry in devices::entries_with_partitions(&devices) {
        let Some(device) = devices.iter().find(|d| d.name == entry.disk) else {
            continue;
        };
        let kname = devices::kname_of(&entry.name).to_string();
        // Hints apply to partitions on their own attributes too (IPA matches
        // every listed entry). A partition of a skipped disk never gets here:
        // IPA would still wipe it when the hint names the disk only, which
        // defeats the operator's intent.
        if skipped.contains(&entry.name) {
            continue;
        }
        if skip::is_virtual_media(&kname) {
            continue;
        }
        let reader = open(&entry.disk, Access::ReadOnly).ok();
        let member = match (&entry.partition, &reader) {
            // A partition on its own (IPA runs `lsblk --fs` on the partition).
            (Some(part), reader) => {
                let regions: Vec<Region> =
                    reader.iter().map(|d| partition_region(d, part)).collect();
                skip::is_raid_member(&[&kname], &regions)
            }
            (None, reader) => is_raid_member(device, reader.as_ref()),
        };
        if member {
            log::log(
                log::Level::Info,
                &format!("{} is a RAID member; not wiping it", entry.name),
            );
            continue;
        }
        let parent = entry.partition.as_ref().map(|_| device.kname.as_str());
        if devices::is_read_only(&kname, parent) {
            log::log(
                log::Level::Info,
                &format!("{} is read-only; not wiping it", entry.name),
            );
            continue;
        }
        entries.push(entry);
    }
    Ok(entries)
}

/// Open every disk the entries live on, read-write, once.
fn open_disks(entries: &[Entry]) -> BTreeMap<String, Result<Disk, String>> {
    let mut disks = BTreeMap::new();
    for entry in entries {
        disks
            .entry(entry.disk.clone())
            .or_insert_with(|| open(&entry.disk, Access::ReadWrite));
    }
    disks
}

/// Guard every entry before wiping any (IPA guards each just before its wipe,
/// so a protected partition found late leaves others already wiped).
fn guard_entries(
    node: &Node,
    entries: &[Entry],
    disks: &BTreeMap<String, Result<Disk, String>>,
) -> Result<(), ManagerError> {
    for entry in entries {
        let Some(Ok(disk)) = disks.get(&entry.disk) else {
            continue; // the open error is reported when wiping
        };
        let (start, len) = entry
            .partition
            .as_ref()
            .map_or((0, disk.size()), |p| (p.start, p.size));
        guard(node, &entry.name, disk, start, len)?;
    }
    Ok(())
}

/// Wipe one entry's metadata. A partition is written through its own device
/// node when there is one (so the kernel's cache of the partition is
/// invalidated too), else through the disk at the partition's offset.
fn wipe_entry(entry: &Entry, disk: &Result<Disk, String>) -> Result<(), String> {
    let disk = disk.as_ref().map_err(Clone::clone)?;
    match &entry.partition {
        None => {
            metadata::wipe(&whole_region(disk), &entry.inner)?;
            // The kernel still has the old partitions; tell it (what
            // `partprobe` would do). Not fatal: a partition may be in use.
            if let Err(e) = disk.reread_partitions() {
                let level = match e {
                    DiskError::Unsupported(_) => log::Level::Debug,
                    _ => log::Level::Warn,
                };
                log::log(
                    level,
                    &format!(
                        "{}: partition table not re-read: {}",
                        entry.name,
                        disk_error(&e)
                    ),
                );
            }
            Ok(())
        }
        Some(part) => match Disk::open(&part.name, Access::ReadWrite) {
            Ok(own) => metadata::wipe(&whole_region(&own), &[]),
            Err(DiskError::NotFound(_)) => metadata::wipe(&partition_region(disk, part), &[]),
            Err(e) => Err(format!("cannot open {}: {}", part.name, disk_error(&e))),
        },
    }
}

/// `erase_devices_metadata` (IPA `GenericHardwareManager`); also the deploy step.
pub fn erase_devices_metadata(node_json: &str) -> Result<Json, ManagerError> {
    let node = Node::parse(node_json)?;
    let entries = erasable_entries(&node)?;
    let disks = open_disks(&entries);
    guard_entries(&node, &entries, &disks)?;
    let progress = Progress {
        step: "erase_devices_metadata",
        devices: entries.len(),
    };
    let mut errors = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        progress.report(index, 0.0, &format!("wiping metadata of {}", entry.name));
        let result = disks.get(&entry.disk).map_or_else(
            || Err(format!("{} was not opened", entry.disk)),
            |d| wipe_entry(entry, d),
        );
        if let Err(e) = result {
            log::log(
                log::Level::Error,
                &format!("wiping metadata of {} failed: {e}", entry.name),
            );
            errors.push((entry.name.clone(), e));
        }
    }
    if !errors.is_empty() {
        return Err(ManagerError::failed_as(
            ERASE_ERROR,
            format!(
                "Failed to erase the metadata on the device(s): {}",
                join_errors(&errors, "; ")
            ),
        ));
    }
    progress::report(Some(100), "erase_devices_metadata: done");
    Ok("null".into())
}

/// `erase_devices_express` (IPA `GenericHardwareManager`): NVMe format where
/// possible, else a metadata wipe. IPA also issues `nvme format` for NVMe
/// *partitions*, which formats the whole namespace before its other partitions
/// are even looked at; we format namespaces only and wipe partitions' metadata.
pub fn erase_devices_express(node_json: &str) -> Result<Json, ManagerError> {
    let node = Node::parse(node_json)?;
    let entries = erasable_entries(&node)?;
    if entries.is_empty() {
        return Ok("null".into());
    }
    let disks = open_disks(&entries);
    guard_entries(&node, &entries, &disks)?;
    let progress = Progress {
        step: "erase_devices_express",
        devices: entries.len(),
    };
    let mut errors = Vec::new();
    for (index, entry) in entries.iter().enumerate() {
        progress.report(index, 0.0, &format!("erasing {}", entry.name));
        let mut nvme_error = None;
        if entry.partition.is_none()
            && entry.name.starts_with("/dev/nvme")
            && node.options.enable_nvme_secure_erase
        {
            match secure_erase::nvme_erase(&entry.name) {
                Ok(()) => continue,
                Err(EraseError(e)) => nvme_error = Some(e),
            }
        }
        let result = disks.get(&entry.disk).map_or_else(
            || Err(format!("{} was not opened", entry.disk)),
            |d| wipe_entry(entry, d),
        );
        if let Err(e) = result {
            let e = match nvme_error {
                Some(nvme) => format!("{nvme}; metadata wipe: {e}"),
                None => e,
            };
            errors.push((entry.name.clone(), e));
        }
    }
    if !errors.is_empty() {
        return Err(ManagerError::failed_as(
            ERASE_ERROR,
            format!(
                "Failed to conduct an express erase on the device(s): {}",
                join_errors(&errors, "\n")
            ),
        ));
    }
    progress::report(Some(100), "erase_devices_express: done");
    Ok("null".into())
}
