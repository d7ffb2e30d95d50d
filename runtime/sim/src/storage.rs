//! Storage stacked on the disks: assembled Linux software RAID arrays (md)
//! and dm-multipath maps, as the kernel and udev show them once assembled.
//!
//! * An md array is `/sys/devices/virtual/block/mdN` with its `md/`
//!   attributes (level, metadata, member `dev-*` directories), `slaves/`
//!   links to its members and a `holders/mdN` link in each member, as
//!   drivers/md/md.c lays them out; udev's record carries `MD_*`
//!   properties (from `mdadm --detail --export`) and the members'
//!   `ID_FS_TYPE=linux_raid_member`; `/proc/mdstat` lists it.
//! * A multipath map is `/sys/devices/virtual/block/dm-N` with `dm/name` and
//!   `dm/uuid` = `mpath-<wwid>` (what multipathd sets, and what lsblk's
//!   `TYPE=mpath` is derived from), `slaves/` links to its paths and a
//!   holder link in each path; `/dev/mapper/<name>`. The paths and the map
//!   are one LUN, so their disk files are one file (hard links).
//!
//! `.ironic-sim/md/<name>/` keeps what the `mdadm` stand-in answers from
//! (see `standins`); stopping an array or zeroing a member's superblock
//! there changes this tree the way the kernel and udev would.
//!
//! A little over the usual size: md arrays and multipath maps share the stacking code (slaves,
//! holders, udev records).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::build::Tree;
use crate::description::{partition_name, MachineDescription};
use crate::{SimError, SIM_DIR};

/// An assembled md array.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MdDescription {
    /// Kernel name: `md0`, `md127`.
    pub name: String,
    /// `raid0`, `raid1`, `raid10`, `raid5` or `raid6`.
    pub level: String,
    /// Kernel names of the member partitions or disks, in role order.
    pub members: Vec<String>,
    /// The array's name in its superblock (`mdadm --create --name`); udev
    /// makes `/dev/md/<name>` of it. Absent: the array has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_name: Option<String>,
    /// Superblock format: `1.2` (mdadm's default), `1.1`, `1.0` or `0.90`.
    #[serde(default = "default_metadata")]
    pub metadata: String,
}

/// A dm-multipath map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultipathDescription {
    /// Kernel name: `dm-0`.
    pub name: String,
    /// The LUN's WWID as multipath names it (`3600508b4…`).
    pub wwid: String,
    /// Kernel names of the SCSI disks that are paths to the LUN (two or more,
    /// same size and sector sizes, no partitions of their own).
    pub paths: Vec<String>,
    /// `/dev/mapper/<alias>`; default `mpatha`, `mpathb`, … in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
}

fn default_metadata() -> String {
    "1.2".into()
}

const LEVELS: [(&str, usize); 5] = [
    ("raid0", 2),
    ("raid1", 2),
    ("raid10", 2),
    ("raid5", 3),
    ("raid6", 4),
];
const METADATA: [&str; 4] = ["0.90", "1.0", "1.1", "1.2"];

/// Bytes a member gives up to its superblock and bitmap (mdadm reserves
/// more on large devices; one MiB is its minimum data offset).
const MD_RESERVED: u64 = 1 << 20;
/// RAID chunk: array sizes are whole chunks per member.
const CHUNK: u64 = 512 << 10;

/// A block device the stacked devices can sit on: a disk or a partition.
#[derive(Debug, Clone)]
pub(crate) struct BlockNode {
    /// Its directory under `/sys/devices`.
    pub dir: String,
    pub major: u32,
    pub minor: u32,
    pub bytes: u64,
    pub rotational: bool,
    pub logical: u32,
    pub physical: u32,
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 32
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn numbered(name: &str, prefix: &str) -> Option<u32> {
    let digits = name.strip_prefix(prefix)?;
    (!digits.is_empty() && digits.len() <= 3 && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
        .filter(|n| *n < 256)
}

/// Every disk and partition name of the description, with its size.
fn block_sizes(desc: &MachineDescription) -> BTreeMap<String, (u64, usize)> {
    let mut sizes = BTreeMap::new();
    for (i, disk) in desc.disks.iter().enumerate() {
        sizes.insert(disk.name.clone(), (disk.size.0, i));
        for (j, part) in disk.partitions.iter().enumerate() {
            sizes.insert(partition_name(&disk.name, j + 1), (part.size.0, i));
        }
    }
    sizes
}

/// Checks `[[md]]` and `[[multipath]]`: `Err((key, message))`.
pub(crate) fn validate(desc: &MachineDescription) -> Result<(), (String, String)> {
    let sizes = block_sizes(desc);
    // Each disk or partition backs at most one stacked device; a disk whose
    // partitions are used is not used whole, and the other way round.
    let mut used: HashMap<String, String> = HashMap::new();
    let mut claim = |name: &str, by: String, key: String| -> Result<(), (String, String)> {
        if let Some(other) = used.get(name) {
            return Err((key, format!("{name} already belongs to {other}")));
        }
        let (_, disk_index) = sizes[name];
        let disk = &desc.disks[disk_index].name;
        let parent_or_child = used.iter().find(|(n, _)| {
            (name == disk && sizes[n.as_str()].1 == disk_index) || n.as_str() == disk.as_str()
        });
        if let Some((n, other)) = parent_or_child {
            return Err((
                key,
                format!("{name} and {n} (of {other}) share disk {disk}; a disk is used whole or by partitions"),
            ));
        }
        used.insert(name.to_string(), by);
        Ok(())
    };

    let mut multipath_names = HashSet::new();
    let mut aliases = HashSet::new();
    for (i, map) in desc.multipath.iter().enumerate() {
        let key = |field: &str| format!("multipath[{i}].{field}");
        if numbered(&map.name, "dm-").is_none() {
            return Err((key("name"), format!("{:?} is not dm-N (N < 256)", map.name)));
        }
        if !multipath_names.insert(map.name.as_str()) {
            return Err((key("name"), format!("map {} is listed twice", map.name)));
        }
        if map.wwid.is_empty() || !map.wwid.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err((key("wwid"), format!("{:?} is not a WWID", map.wwid)));
        }
        let alias = alias_of(map, i);
        if !is_token(&alias) || !aliases.insert(alias.clone()) {
            return Err((key("alias"), format!("{alias:?} is not a free map name")));
        }
        if map.paths.len() < 2 {
            return Err((
                key("paths"),
                "a multipath map needs two or more paths".into(),
            ));
        }
        let mut geometry = None;
        for (j, path) in map.paths.iter().enumerate() {
            let pkey = format!("multipath[{i}].paths[{j}]");
            let Some(disk) = desc.disks.iter().find(|d| &d.name == path) else {
                return Err((pkey, format!("{path} is not a disk of this machine")));
            };
            if !disk.transport().is_scsi() {
                return Err((
                    pkey,
                    format!("{path} is not a SCSI disk; paths are SCSI devices"),
                ));
            }
            if !disk.partitions.is_empty() {
                return Err((
                    pkey,
                    format!("{path} has partitions; a path's partitions are the map's"),
                ));
            }
            let this = (
                disk.size.0,
                disk.logical_sector_size,
                disk.physical_sector_size,
            );
            if *geometry.get_or_insert(this) != this {
                return Err((
                    pkey,
                    format!(
                        "{path} differs in size or sector size from the other paths to one LUN"
                    ),
                ));
            }
            claim(path, map.name.clone(), pkey)?;
        }
    }

    let mut md_names = HashSet::new();
    for (i, md) in desc.md.iter().enumerate() {
        let key = |field: &str| format!("md[{i}].{field}");
        if numbered(&md.name, "md").is_none() {
            return Err((key("name"), format!("{:?} is not mdN (N < 256)", md.name)));
        }
        if !md_names.insert(md.name.as_str()) {
            return Err((key("name"), format!("array {} is listed twice", md.name)));
        }
        let Some((_, min)) = LEVELS.iter().find(|(l, _)| *l == md.level) else {
            let known: Vec<&str> = LEVELS.iter().map(|(l, _)| *l).collect();
            return Err((
                key("level"),
                format!("{:?} is not one of {}", md.level, known.join(", ")),
            ));
        };
        if md.members.len() < *min {
            return Err((
                key("members"),
                format!("{} needs at least {min} members", md.level),
            ));
        }
        if !METADATA.contains(&md.metadata.as_str()) {
            return Err((
                key("metadata"),
                format!("{:?} is not one of {}", md.metadata, METADATA.join(", ")),
            ));
        }
        if let Some(name) = &md.volume_name {
            if !is_token(name) {
                return Err((
                    key("volume_name"),
                    format!("{name:?}: letters, digits, '_', '-' and '.', at most 32"),
                ));
            }
        }
        for (j, member) in md.members.iter().enumerate() {
            let mkey = format!("md[{i}].members[{j}]");
            let Some((bytes, _)) = sizes.get(member) else {
                return Err((
                    mkey,
                    format!("{member} is not a disk or partition of this machine"),
                ));
            };
            if *bytes < 2 * MD_RESERVED + CHUNK {
                return Err((mkey, format!("{member} is too small for an array member")));
            }
            claim(member, md.name.clone(), mkey)?;
        }
    }
    Ok(())
}

fn alias_of(map: &MultipathDescription, index: usize) -> String {
    map.alias.clone().unwrap_or_else(|| {
        let letter = char::from(b'a' + (index % 26) as u8);
        format!("mpath{letter}")
    })
}

/// The array's size in bytes, from its level and smallest member.
fn md_bytes(md: &MdDescription, member_bytes: &[u64]) -> u64 {
    let per = member_bytes
        .iter()
        .copied()
        .min()
        .unwrap_or(0)
        .saturating_sub(MD_RESERVED);
    let per = per - per % CHUNK;
    let n = member_bytes.len() as u64;
    match md.level.as_str() {
        "raid0" => per * n,
        "raid10" => per * n / 2,
        "raid5" => per * (n - 1),
        "raid6" => per * (n - 2),
        _ => per,
    }
}

/// mdadm's UUID format (`xxxxxxxx:xxxxxxxx:xxxxxxxx:xxxxxxxx`), derived
/// from the host and array names so a rebuilt machine keeps it.
pub(crate) fn md_uuid(hostname: &str, name: &str) -> String {
    let mut words = [0x811c_9dc5u32, 0x0100_0193, 0x5bd1_e995, 0x2545_f491];
    for (i, w) in words.iter_mut().enumerate() {
        for b in hostname
            .bytes()
            .chain([b':'])
            .chain(name.bytes())
            .chain([i as u8])
        {
            *w = (*w ^ u32::from(b)).wrapping_mul(0x0100_0193);
        }
    }
    words.map(|w| format!("{w:08x}")).join(":")
}

/// Appends `E:` lines to a block device's udev record.
fn add_udev(t: &Tree, node: &BlockNode, lines: &[String]) -> Result<(), SimError> {
    let rel = format!("/run/udev/data/b{}:{}", node.major, node.minor);
    let mut record = std::fs::read_to_string(t.path(&rel)).unwrap_or_default();
    for line in lines {
        let _ = writeln!(record, "E:{line}");
    }
    t.file(&rel, record)
}

/// Writes a virtual block device directory shared by md and dm.
fn virtual_block(
    t: &Tree,
    name: &str,
    (major, minor): (u32, u32),
    bytes: u64,
    members: &[&BlockNode],
) -> Result<String, SimError> {
    let dir = format!("/sys/devices/virtual/block/{name}");
    t.attr(&format!("{dir}/dev"), format!("{major}:{minor}"))?;
    t.attr(&format!("{dir}/size"), bytes / 512)?;
    t.attr(&format!("{dir}/ro"), 0)?;
    t.attr(&format!("{dir}/removable"), 0)?;
    t.attr(
        &format!("{dir}/uevent"),
        format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=disk"),
    )?;
    let q = format!("{dir}/queue");
    let logical = members.iter().map(|m| m.logical).max().unwrap_or(512);
    let physical = members.iter().map(|m| m.physical).max().unwrap_or(512);
    let rotational = members.iter().any(|m| m.rotational);
    t.attr(&format!("{q}/rotational"), u8::from(rotational))?;
    t.attr(&format!("{q}/logical_block_size"), logical)?;
    t.attr(&format!("{q}/physical_block_size"), physical)?;
    t.attr(&format!("{q}/hw_sector_size"), logical)?;
    t.attr(&format!("{q}/minimum_io_size"), physical)?;
    t.attr(&format!("{q}/optimal_io_size"), 0)?;
    t.attr(&format!("{q}/write_zeroes_max_bytes"), 0)?;
    t.attr(&format!("{q}/discard_max_bytes"), 0)?;
    t.dir(&format!("{dir}/holders"))?;
    for m in members {
        let member = m.dir.rsplit('/').next().unwrap_or_default();
        t.rel_link(&format!("{dir}/slaves/{member}"), &m.dir)?;
        t.rel_link(&format!("{}/holders/{name}", m.dir), &dir)?;
    }
    t.rel_link(&format!("/sys/block/{name}"), &dir)?;
    t.rel_link(&format!("/sys/class/block/{name}"), &dir)?;
    t.rel_link(&format!("/sys/dev/block/{major}:{minor}"), &dir)?;
    Ok(dir)
}

/// Builds every array and map; `nodes` are the disks and partitions by
/// kernel name.
pub(crate) fn build(
    t: &Tree,
    desc: &MachineDescription,
    nodes: &HashMap<String, BlockNode>,
) -> Result<(), SimError> {
    let node = |name: &str| {
        nodes.get(name).ok_or_else(|| SimError::Description {
            file: "machine.toml".into(),
            key: "md/multipath".into(),
            message: format!("{name} was not built"),
        })
    };

    for (i, map) in desc.multipath.iter().enumerate() {
        let minor = numbered(&map.name, "dm-").unwrap_or(0);
        let paths = map
            .paths
            .iter()
            .map(|p| node(p))
            .collect::<Result<Vec<_>, _>>()?;
        let bytes = paths[0].bytes;
        let alias = alias_of(map, i);
        let dir = virtual_block(t, &map.name, (253, minor), bytes, &paths)?;
        t.attr(&format!("{dir}/dm/name"), &alias)?;
        t.attr(&format!("{dir}/dm/uuid"), format!("mpath-{}", map.wwid))?;
        t.attr(&format!("{dir}/dm/suspended"), 0)?;
        t.link(&format!("/dev/mapper/{alias}"), &format!("../{}", map.name))?;
        t.link_replacing(
            &format!("/dev/disk/by-id/dm-name-{alias}"),
            &format!("../../{}", map.name),
        )?;
        t.link_replacing(
            &format!("/dev/disk/by-id/dm-uuid-mpath-{}", map.wwid),
            &format!("../../{}", map.name),
        )?;
        // The map's record (multipath-tools' udev rules and dm's): the LUN's
        // identity under DM_* names, which IPA reads as the map's serial/WWN.
        let path_record = std::fs::read_to_string(t.path(&format!(
            "/run/udev/data/b{}:{}",
            paths[0].major, paths[0].minor
        )))
        .unwrap_or_default();
        let path_prop = |key: &str| {
            path_record
                .lines()
                .find_map(|l| l.strip_prefix(&format!("E:{key}=")))
                .map(str::to_string)
        };
        let mut record = format!(
            "S:mapper/{alias}\nS:disk/by-id/dm-name-{alias}\nS:disk/by-id/dm-uuid-mpath-{wwid}\n\
             I:1700000000\nE:DM_NAME={alias}\nE:DM_UUID=mpath-{wwid}\nE:DM_SUSPENDED=0\n\
             E:DM_SERIAL={wwid}\nE:MPATH_SBIN_PATH=/sbin\nE:DEVTYPE=disk\n",
            wwid = map.wwid
        );
        if let Some(wwn) = path_prop("ID_WWN") {
            let _ = writeln!(record, "E:DM_WWN={wwn}");
        }
        if let Some(model) = path_prop("ID_MODEL") {
            let _ = writeln!(record, "E:ID_MODEL={model}");
        }
        record.push_str("G:systemd\nQ:systemd\nV:1\n");
        t.file(&format!("/run/udev/data/b253:{minor}"), record)?;
        for path in &paths {
            add_udev(
                t,
                path,
                &[
                    "DM_MULTIPATH_DEVICE_PATH=1".into(),
                    "ID_FS_TYPE=mpath_member".into(),
                    "SYSTEMD_READY=0".into(),
                ],
            )?;
        }
        // One LUN: the map and every path are the same bytes.
        let first = t.path(&format!("/dev/{}", map.paths[0]));
        for other in map.paths.iter().skip(1) {
            let path = t.path(&format!("/dev/{other}"));
            std::fs::remove_file(&path).map_err(|source| SimError::Io {
                path: path.clone(),
                source,
            })?;
            std::fs::hard_link(&first, &path).map_err(|source| SimError::Io { path, source })?;
        }
        let map_file = t.path(&format!("/dev/{}", map.name));
        std::fs::hard_link(&first, &map_file).map_err(|source| SimError::Io {
            path: map_file,
            source,
        })?;
        // What the multipath stand-in answers from.
        let state = format!("/{SIM_DIR}/multipath/{}", map.name);
        t.attr(&format!("{state}/wwid"), &map.wwid)?;
        t.attr(&format!("{state}/alias"), &alias)?;
        t.file(&format!("{state}/paths"), map.paths.join("\n") + "\n")?;
    }

    let mut mdstat = String::from("Personalities : ");
    let mut personalities: Vec<&str> = desc.md.iter().map(|m| m.level.as_str()).collect();
    personalities.sort();
    personalities.dedup();
    for p in &personalities {
        let _ = write!(mdstat, "[{p}] ");
    }
    mdstat = mdstat.trim_end().to_string() + "\n";
    for md in &desc.md {
        let minor = numbered(&md.name, "md").unwrap_or(0);
        let members = md
            .members
            .iter()
            .map(|m| node(m))
            .collect::<Result<Vec<_>, _>>()?;
        let sizes: Vec<u64> = members.iter().map(|m| m.bytes).collect();
        let bytes = md_bytes(md, &sizes);
        let dir = virtual_block(t, &md.name, (9, minor), bytes, &members)?;
        let uuid = md_uuid(&desc.hostname, &md.name);
        t.attr(&format!("{dir}/md/level"), &md.level)?;
        t.attr(&format!("{dir}/md/raid_disks"), members.len())?;
        t.attr(&format!("{dir}/md/metadata_version"), &md.metadata)?;
        t.attr(&format!("{dir}/md/array_state"), "clean")?;
        t.attr(&format!("{dir}/md/uuid"), &uuid)?;
        for (slot, (m, member)) in members.iter().zip(&md.members).enumerate() {
            let dev = format!("{dir}/md/dev-{member}");
            t.rel_link(&format!("{dev}/block"), &m.dir)?;
            t.attr(&format!("{dev}/state"), "in_sync")?;
            t.attr(&format!("{dev}/slot"), slot)?;
            t.rel_link(&format!("{dir}/md/rd{slot}"), &dev)?;
        }
        let set_name = md
            .volume_name
            .as_ref()
            .map(|v| format!("{}:{v}", desc.hostname));
        let mut record = String::new();
        if let Some(v) = &md.volume_name {
            let _ = writeln!(record, "S:md/{v}");
            t.link(&format!("/dev/md/{v}"), &format!("../{}", md.name))?;
        }
        let _ = write!(
            record,
            "I:1700000000\nE:MD_LEVEL={}\nE:MD_DEVICES={}\nE:MD_METADATA={}\nE:MD_UUID={uuid}\nE:DEVTYPE=disk\n",
            md.level,
            members.len(),
            md.metadata
        );
        if let (Some(v), Some(set)) = (&md.volume_name, &set_name) {
            let _ = write!(record, "E:MD_DEVNAME={v}\nE:MD_NAME={set}\n");
        }
        record.push_str("G:systemd\nQ:systemd\nV:1\n");
        t.file(&format!("/run/udev/data/b9:{minor}"), record)?;
        for m in &members {
            let mut lines = vec![
                "ID_FS_TYPE=linux_raid_member".to_string(),
                "ID_FS_USAGE=raid".into(),
                format!("ID_FS_UUID={uuid}"),
                format!("ID_FS_VERSION={}", md.metadata),
            ];
            if let Some(set) = &set_name {
                lines.push(format!("ID_FS_LABEL={set}"));
            }
            add_udev(t, m, &lines)?;
        }
        let file = t.path(&format!("/dev/{}", md.name));
        std::fs::File::create(&file)
            .and_then(|f| f.set_len(bytes))
            .map_err(|source| SimError::Io { path: file, source })?;

        // What the mdadm stand-in answers from.
        let state = format!("/{SIM_DIR}/md/{}", md.name);
        t.attr(&format!("{state}/level"), &md.level)?;
        t.attr(&format!("{state}/metadata"), &md.metadata)?;
        t.attr(&format!("{state}/uuid"), &uuid)?;
        t.attr(
            &format!("{state}/name"),
            set_name.clone().unwrap_or_default(),
        )?;
        t.attr(&format!("{state}/size_kib"), bytes / 1024)?;
        let mut listing = String::new();
        for (slot, (m, member)) in members.iter().zip(&md.members).enumerate() {
            let _ = writeln!(listing, "{slot} {} {} {member}", m.major, m.minor);
        }
        t.file(&format!("{state}/members"), listing)?;
        // The kernel objects `mdadm --stop` removes (relative to the root).
        let mut removed = vec![
            format!("sys/block/{}", md.name),
            format!("sys/class/block/{}", md.name),
            format!("sys/dev/block/9:{minor}"),
            format!("run/udev/data/b9:{minor}"),
            format!("dev/{}", md.name),
        ];
        if let Some(v) = &md.volume_name {
            removed.push(format!("dev/md/{v}"));
        }
        for m in &members {
            removed.push(format!(
                "{}/holders/{}",
                m.dir.trim_start_matches('/'),
                md.name
            ));
        }
        t.file(
            &format!("{state}/kernel-objects"),
            removed.join("\n") + "\n",
        )?;
        let mut member_records = String::new();
        for (m, member) in members.iter().zip(&md.members) {
            let _ = writeln!(
                member_records,
                "{member} run/udev/data/b{}:{}",
                m.major, m.minor
            );
        }
        t.file(&format!("{state}/member-records"), member_records)?;

        let _ = write!(mdstat, "{} : active {} ", md.name, md.level);
        let parts: Vec<String> = md
            .members
            .iter()
            .enumerate()
            .map(|(slot, m)| format!("{m}[{slot}]"))
            .collect();
        let _ = writeln!(mdstat, "{}", parts.join(" "));
        let up = "U".repeat(members.len());
        let _ = writeln!(
            mdstat,
            "      {} blocks super {} [{n}/{n}] [{up}]\n",
            bytes / 1024,
            md.metadata,
            n = members.len()
        );
    }
    mdstat.push_str("unused devices: <none>\n");
    if !desc.md.is_empty() {
        t.file("/proc/mdstat", mdstat)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md_sizes_follow_the_level() {
        let md = |level: &str| MdDescription {
            name: "md0".into(),
            level: level.into(),
            members: vec![],
            volume_name: None,
            metadata: "1.2".into(),
        };
        let gib = 1u64 << 30;
        let per = gib - MD_RESERVED;
        assert_eq!(md_bytes(&md("raid1"), &[gib, 2 * gib]), per);
        assert_eq!(md_bytes(&md("raid0"), &[gib, gib]), 2 * per);
        assert_eq!(md_bytes(&md("raid5"), &[gib, gib, gib]), 2 * per);
        assert_eq!(md_bytes(&md("raid6"), &[gib; 4]), 2 * per);
        assert_eq!(md_bytes(&md("raid10"), &[gib; 4]), 2 * per);
        let uuid = md_uuid("host", "md0");
        assert_eq!(uuid.len(), 35);
        assert_ne!(uuid, md_uuid("host", "md1"));
    }
}
