//! Native partition-table work on the install disk: the layout of a
//! partition image (IPA `disk_utils.make_partitions`), the whole-disk
//! config-drive partition (`partition_utils.create_config_drive_partition`),
//! the GPT fix-up after a whole-disk write (`disk_utils.fix_gpt_partition`)
//! and the kernel re-read of the table (`disk_utils.trigger_device_rescan`).
//!
//! IPA shells out to `parted`/`sgdisk`; doing it natively (`gpt` and
//! `mbrman` crates) means the same code serves a real block device and a
//! simulated disk (a regular file), and there is no text output to parse.
//! Partitions are addressed by byte offset inside the disk, never through
//! `/dev/sdXN`, so nothing waits on udev.
//!
//! Longer than most files here: every function reads or writes the partition table of the install
//! disk through the same `Disk` view, and a third of the file is their tests on disk images.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::Path;

use crate::error::ImageError;
use crate::partition::PartitionPlan;

const MIB: u64 = 1 << 20;

/// One partition as created on the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedPartition {
    /// 1-based partition number.
    pub number: u32,
    /// Ironic's role key (`root`, `efi system partition`, ...).
    pub role: String,
    /// Byte offset inside the disk.
    pub offset: u64,
    /// Bytes.
    pub size: u64,
    /// PARTUUID as `lsblk` shows it: the GPT partition GUID (lower case), or
    /// `<disk signature>-<nn>` on an msdos table.
    pub part_uuid: String,
}

/// The partition table written by [`create_partition_table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `gpt` or `msdos`.
    pub label: String,
    pub partitions: Vec<CreatedPartition>,
}

impl Layout {
    /// The partition with `role`.
    pub fn get(&self, role: &str) -> Option<&CreatedPartition> {
        self.partitions.iter().find(|p| p.role == role)
    }
}

fn fail(disk: &Path, message: impl Into<String>) -> ImageError {
    ImageError::Partition {
        device: disk.to_path_buf(),
        message: message.into(),
    }
}

fn io_fail<'a>(disk: &'a Path, what: &str) -> impl Fn(io::Error) -> ImageError + 'a {
    let what = what.to_string();
    move |e| fail(disk, format!("{what}: {e}"))
}

/// An open disk: the file, its size and
/// logical sector size.
struct Disk {
    file: File,
    size: u64,
    sector: u64,
}

impl Disk {
    fn open(path: &Path, write: bool) -> Result<Disk, ImageError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(path)
            .map_err(io_fail(path, "open"))?;
        let meta = file.metadata().map_err(io_fail(path, "stat"))?;
        let is_block = meta.file_type().is_block_device();
        if !is_block && !meta.is_file() {
            return Err(fail(path, "neither a block device nor a regular file"));
        }
        let size = file.seek(SeekFrom::End(0)).map_err(io_fail(path, "size"))?;
        let sector = if is_block {
            blockdev::logical_sector_size(&file).map_or(512, u64::from)
        } else {
            512
        };
        Ok(Disk { file, size, sector })
    }

    fn lb_size(&self, path: &Path) -> Result<gpt::disk::LogicalBlockSize, ImageError> {
        match self.sector {
            512 => Ok(gpt::disk::LogicalBlockSize::Lb512),
            4096 => Ok(gpt::disk::LogicalBlockSize::Lb4096),
            n => Err(fail(path, format!("unsupported logical sector size {n}"))),
        }
    }

    fn zero(&self, path: &Path, offset: u64, len: u64) -> Result<(), ImageError> {
        let zeros = vec![0u8; MIB as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(MIB);
            self.file
                .write_all_at(&zeros[..n as usize], offset + done)
                .map_err(io_fail(path, "wiping old metadata"))?;
            done += n;
        }
        Ok(())
    }
}

/// Writes the table of `plan` onto `disk` (IPA's single `parted` call:
/// `mklabel` + every `mkpart` + flags), after wiping the old metadata at
/// both ends (the part of `destroy_disk_metadata` that matters to the
/// table: a stale backup GPT would otherwise survive at the end).
/// The last MiB stays free (the GPT backup table lives there).
pub fn create_partition_table(disk: &Path, plan: &PartitionPlan) -> Result<Layout, ImageError> {
    let d = Disk::open(disk, true)?;
    let end = plan.partitions.last().map_or(0, |p| p.end_mib) * MIB;
    // GPT: 33 sectors of backup at the end; msdos: nothing, but keep the
    // same rule (parted refuses a partition ending on the last sector too).
    let needed = end + MIB;
    if needed > d.size {
        return Err(fail(
            disk,
            format!(
                "the partition layout needs {} MiB but the disk has {} MiB",
                needed / MIB,
                d.size / MIB
            ),
        ));
    }
    let tail = d.size.min(MIB);
    d.zero(disk, 0, MIB.min(d.size))?;
    d.zero(disk, d.size - tail, tail)?;
    let layout = match plan.label.as_str() {
        "gpt" => write_gpt(disk, d, plan)?,
        "msdos" => write_msdos(disk, d, plan)?,
        other => return Err(fail(disk, format!("unknown disk label {other}"))),
    };
    tracing::info!(disk = %disk.display(), label = %layout.label, partitions = layout.partitions.len(),
        "partition table written");
    Ok(layout)
}

fn gpt_type(role: &str, fs_type: &str) -> gpt::partition_types::Type {
    use gpt::partition_types as t;
    match role {
        "efi system partition" => t::EFI,
        "BIOS Boot partition" => t::BIOS,
        "PReP Boot partition" => t::PPC_BOOT,
        _ if fs_type == "linux-swap" => t::LINUX_SWAP,
        _ => t::LINUX_FS,
    }
}

fn write_gpt(path: &Path, d: Disk, plan: &PartitionPlan) -> Result<Layout, ImageError> {
    let lb = d.lb_size(path)?;
    let sector = d.sector;
    let last_lba = d.size / sector - 1;
    let mut file = d.file;
    let pmbr = gpt::mbr::ProtectiveMBR::with_lb_size(u32::try_from(last_lba).unwrap_or(u32::MAX));
    pmbr.overwrite_lba0(&mut file)
        .map_err(|e| fail(path, format!("writing the protective MBR: {e}")))?;
    let gerr = |e: gpt::GptError| fail(path, format!("GPT: {e}"));
    let mut g = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(lb)
        .create_from_device(file, None)
        .map_err(gerr)?;
    let mut out = Vec::new();
    for p in &plan.partitions {
        let first = p.start_mib * MIB / sector;
        let len = (p.end_mib - p.start_mib) * MIB / sector;
        // parted names every `mkpart primary` partition "primary".
        g.add_partition_at(
            "primary",
            p.number,
            first,
            len,
            gpt_type(p.role, p.fs_type),
            0,
        )
        .map_err(|e| fail(path, format!("partition {} ({}): {e}", p.number, p.role)))?;
        let guid = g
            .partitions()
            .get(&p.number)
            .map(|e| e.part_guid.to_string())
            .unwrap_or_default();
        out.push(CreatedPartition {
            number: p.number,
            role: p.role.to_string(),
            offset: first * sector,
            size: len * sector,
            part_uuid: guid.to_ascii_lowercase(),
        });
    }
    let mut file = g.write().map_err(gerr)?;
    file.flush().map_err(io_fail(path, "flush"))?;
    file.sync_all().map_err(io_fail(path, "sync"))?;
    Ok(Layout {
        label: "gpt".into(),
        partitions: out,
    })
}

fn mbr_type(role: &str, fs_type: &str) -> u8 {
    match (role, fs_type) {
        ("PReP Boot partition", _) => 0x41,
        (_, "linux-swap") => 0x82,
        (_, "fat32") => 0x0c,
        _ => 0x83,
    }
}

fn write_msdos(path: &Path, d: Disk, plan: &PartitionPlan) -> Result<Layout, ImageError> {
    if plan.partitions.len() > 4 {
        return Err(fail(
            path,
            format!(
                "{} partitions do not fit in an msdos table (4 primary partitions at most)",
                plan.partitions.len()
            ),
        ));
    }
    let sector = d.sector;
    let mut file = d.file;
    let signature: [u8; 4] = uuid::Uuid::new_v4().as_bytes()[..4]
        .try_into()
        .unwrap_or([0x49, 0x50, 0x41, 0x21]);
    let mut mbr = mbrman::MBR::new_from(&mut file, sector as u32, signature)
        .map_err(|e| fail(path, format!("msdos table: {e}")))?;
    let sig = u32::from_le_bytes(signature);
    let mut out = Vec::new();
    for p in &plan.partitions {
        let first = p.start_mib * MIB / sector;
        let len = (p.end_mib - p.start_mib) * MIB / sector;
        let (Ok(first32), Ok(len32)) = (u32::try_from(first), u32::try_from(len)) else {
            return Err(fail(
                path,
                format!(
                    "partition {} ({}) lies beyond the 2 TiB an msdos table can address",
                    p.number, p.role
                ),
            ));
        };
        let boot = if p.flags.contains(&"boot") {
            mbrman::BOOT_ACTIVE
        } else {
            mbrman::BOOT_INACTIVE
        };
        mbr[p.number as usize] = mbrman::MBRPartitionEntry {
            boot,
            first_chs: mbrman::CHS::empty(),
            sys: mbr_type(p.role, p.fs_type),
            last_chs: mbrman::CHS::empty(),
            starting_lba: first32,
            sectors: len32,
        };
        out.push(CreatedPartition {
            number: p.number,
            role: p.role.to_string(),
            offset: first * sector,
            size: len * sector,
            part_uuid: format!("{sig:08x}-{:02x}", p.number),
        });
    }
    mbr.write_into(&mut file)
        .map_err(|e| fail(path, format!("writing the msdos table: {e}")))?;
    file.sync_all().map_err(io_fail(path, "sync"))?;
    Ok(Layout {
        label: "msdos".into(),
        partitions: out,
    })
}

/// Makes the kernel re-read the partition table of a block device
/// (`BLKRRPART`, what `partprobe` does). Nothing to do for a regular file.
/// Retried a few times: udev may briefly hold the device after a write.
pub fn reread_partition_table(disk: &Path) -> Result<(), ImageError> {
    if !blockdev::is_block_device(disk) {
        return Ok(());
    }
    let file = File::open(disk).map_err(io_fail(disk, "open"))?;
    blockdev::reread_partitions_retrying(&file, 10)
        .map_err(|e| fail(disk, format!("re-reading the partition table: {e}")))?;
    tracing::debug!(disk = %disk.display(), "partition table re-read");
    Ok(())
}

/// `sgdisk -e` (IPA `disk_utils._fix_gpt_structs`): when the disk holds a GPT
/// whose backup header is not on the last sector (an image smaller than the
/// disk), move the backup header and table to the real end and grow the usable
/// area. The protective MBR's size is updated in place (boot code, disk
/// signature and hybrid entries are kept). Returns whether anything moved;
/// a disk without a GPT is left alone.
pub fn fix_gpt_backup(disk: &Path) -> Result<bool, ImageError> {
    let d = Disk::open(disk, true)?;
    let mut sig = [0u8; 8];
    if d.file.read_exact_at(&mut sig, d.sector).is_err() || &sig != b"EFI PART" {
        return Ok(false);
    }
    let lb = d.lb_size(disk)?;
    let last_lba = d.size / d.sector - 1;
    let sector = d.sector;
    let gerr = |e: gpt::GptError| fail(disk, format!("GPT: {e}"));
    let mut g = gpt::GptConfig::new()
        .writable(true)
        .logical_block_size(lb)
        .open_from_device(d.file)
        .map_err(gerr)?;
    let backup_lba = g
        .primary_header()
        .map_err(|e| fail(disk, format!("GPT: {e}")))?
        .backup_lba;
    if backup_lba == last_lba {
        return Ok(false);
    }
    if backup_lba > last_lba {
        return Err(fail(
            disk,
            format!("the GPT's backup header is at sector {backup_lba}, beyond the end of the disk (sector {last_lba})"),
        ));
    }
    // Rebuilding the headers recomputes the backup position from the
    // device size (the crate's init_headers), keeping every entry.
    let parts = g.take_partitions();
    g.update_partitions(parts).map_err(gerr)?;
    g.write_inplace().map_err(gerr)?;
    let file = g.take_device();
    // Protective entry (type 0xEE) size field: cover the whole disk now.
    let mut entry = [0u8; 16];
    for i in 0..4u64 {
        let off = 446 + i * 16;
        file.read_exact_at(&mut entry, off)
            .map_err(io_fail(disk, "reading the MBR"))?;
        if entry[4] == 0xEE {
            let size = u32::try_from(last_lba).unwrap_or(u32::MAX);
            file.write_all_at(&size.to_le_bytes(), off + 12)
                .map_err(io_fail(disk, "updating the protective MBR"))?;
        }
    }
    file.sync_all().map_err(io_fail(disk, "sync"))?;
    tracing::info!(disk = %disk.display(), old_backup_lba = backup_lba, new_backup_lba = last_lba,
        sector, "moved the backup GPT to the end of the disk");
    Ok(true)
}

/// A partition found on a disk (for the whole-disk config drive).
#[derive(Debug, Clone)]
pub struct ExistingPartition {
    pub number: u32,
    pub offset: u64,
    pub size: u64,
    /// Typed as an EFI system partition (GPT type GUID, msdos 0xEF).
    pub esp: bool,
    /// PARTUUID (GPT GUID lower case, or `<signature>-<nn>`).
    pub part_uuid: String,
}

/// The partitions of `disk` (GPT, else msdos primaries), and the table type.
pub fn read_partitions(disk: &Path) -> Result<(String, Vec<ExistingPartition>), ImageError> {
    let d = Disk::open(disk, false)?;
    let mut sig = [0u8; 8];
    let sector = d.sector;
    if d.file.read_exact_at(&mut sig, sector).is_ok() && &sig == b"EFI PART" {
        let lb = d.lb_size(disk)?;
        let g = gpt::GptConfig::new()
            .writable(false)
            .logical_block_size(lb)
            .open_from_device(d.file)
            .map_err(|e| fail(disk, format!("GPT: {e}")))?;
        let parts = g
            .partitions()
            .iter()
            .filter(|(_, p)| p.is_used())
            .map(|(n, p)| ExistingPartition {
                number: *n,
                offset: p.first_lba * sector,
                size: (p.last_lba + 1 - p.first_lba) * sector,
                esp: p.part_type_guid == gpt::partition_types::EFI,
                part_uuid: p.part_guid.to_string().to_ascii_lowercase(),
            })
            .collect();
        return Ok(("gpt".into(), parts));
    }
    let mut mbr = [0u8; 512];
    d.file
        .read_exact_at(&mut mbr, 0)
        .map_err(io_fail(disk, "reading the MBR"))?;
    if mbr[510] != 0x55 || mbr[511] != 0xAA {
        return Ok(("none".into(), Vec::new()));
    }
    let sig = u32::from_le_bytes([mbr[440], mbr[441], mbr[442], mbr[443]]);
    let parts = (0..4)
        .filter_map(|i| {
            let e = &mbr[446 + i * 16..462 + i * 16];
            let start = u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64;
            let len = u32::from_le_bytes([e[12], e[13], e[14], e[15]]) as u64;
            (e[4] != 0 && len > 0).then(|| ExistingPartition {
                number: i as u32 + 1,
                offset: start * sector,
                size: len * sector,
                esp: e[4] == 0xEF,
                part_uuid: format!("{sig:08x}-{:02x}", i + 1),
            })
        })
        .collect();
    Ok(("msdos".into(), parts))
}

/// Size of the whole-disk config-drive partition (IPA: `-64MB`/`-64MiB`).
pub const CONFIG_DRIVE_PART_BYTES: u64 = 64 * MIB;

/// IPA `create_config_drive_partition` when no `config-2` partition exists:
/// a new partition in the last 64 MiB of the disk for the config drive of a
/// whole-disk image; returns it. GPT: `sgdisk -n
/// 0:-64MB:0 -u 0:<random>` (first free number, aligned start); msdos: a
/// primary `fat32` partition (type 0x0c), refused when 4 primaries exist.
pub fn create_config_drive_partition(disk: &Path) -> Result<CreatedPartition, ImageError> {
    let (label, existing) = read_partitions(disk)?;
    let d = Disk::open(disk, true)?;
    let sector = d.sector;
    match label.as_str() {
        "gpt" => {
            let lb = d.lb_size(disk)?;
            let mut g = gpt::GptConfig::new()
                .writable(true)
                .logical_block_size(lb)
                .open_from_device(d.file)
                .map_err(|e| fail(disk, format!("GPT: {e}")))?;
            let last_usable = g.header().last_usable;
            let len = CONFIG_DRIVE_PART_BYTES / sector;
            // sgdisk aligns the start down to 2048 sectors (1 MiB).
            let align = MIB / sector;
            let first = (last_usable + 1 - len) / align * align;
            let number = g
                .find_next_partition_id()
                .ok_or_else(|| fail(disk, "no free GPT entry for the config drive"))?;
            g.add_partition_at(
                "config-2",
                number,
                first,
                last_usable + 1 - first,
                gpt::partition_types::LINUX_FS,
                0,
            )
            .map_err(|e| {
                fail(
                    disk,
                    format!("no room for a config drive partition in the last 64 MiB: {e}"),
                )
            })?;
            let p = g.partitions().get(&number).cloned();
            let file = g.write().map_err(|e| fail(disk, format!("GPT: {e}")))?;
            file.sync_all().map_err(io_fail(disk, "sync"))?;
            let p = p.ok_or_else(|| fail(disk, "config drive partition vanished"))?;
            Ok(CreatedPartition {
                number,
                role: "configdrive".into(),
                offset: p.first_lba * sector,
                size: (p.last_lba + 1 - p.first_lba) * sector,
                part_uuid: p.part_guid.to_string(),
            })
        }
        "msdos" => {
            if existing.iter().filter(|p| p.number < 5).count() > 3 {
                return Err(fail(
                    disk,
                    "the msdos table already has 4 primary partitions; no room for a config drive",
                ));
            }
            // IPA: above 2 TiB the partition sits just below the 2 TiB limit.
            let two_tib = 2_097_152 * MIB;
            let (start, end) = if d.size > two_tib {
                (2_097_087 * MIB, 2_097_151 * MIB)
            } else {
                ((d.size - CONFIG_DRIVE_PART_BYTES) / MIB * MIB, d.size)
            };
            if existing.iter().any(|p| p.offset + p.size > start) {
                return Err(fail(
                    disk,
                    "the last 64 MiB of the disk are already partitioned; no room for a config drive",
                ));
            }
            let mut mbr = [0u8; 512];
            d.file
                .read_exact_at(&mut mbr, 0)
                .map_err(io_fail(disk, "reading the MBR"))?;
            let slot = (0..4usize)
                .find(|i| mbr[446 + i * 16 + 4] == 0)
                .ok_or_else(|| fail(disk, "no free msdos entry for the config drive"))?;
            let (first, len) = (start / sector, (end - start) / sector);
            let mut e = [0u8; 16];
            e[4] = 0x0c;
            e[8..12].copy_from_slice(&(first as u32).to_le_bytes());
            e[12..16].copy_from_slice(&(len as u32).to_le_bytes());
            d.file
                .write_all_at(&e, 446 + slot as u64 * 16)
                .map_err(io_fail(disk, "writing the MBR"))?;
            d.file.sync_all().map_err(io_fail(disk, "sync"))?;
            let sig = u32::from_le_bytes([mbr[440], mbr[441], mbr[442], mbr[443]]);
            Ok(CreatedPartition {
                number: slot as u32 + 1,
                role: "configdrive".into(),
                offset: start,
                size: end - start,
                part_uuid: format!("{sig:08x}-{:02x}", slot + 1),
            })
        }
        _ => Err(fail(
            disk,
            "the image has no partition table; cannot add a config drive partition",
        )),
    }
}

/// A file-system label at `offset` (ISO 9660 volume id, FAT label, ext
/// label), trimmed; `None` when none is recognised.
pub fn filesystem_label(disk: &Path, offset: u64) -> io::Result<Option<String>> {
    let f = File::open(disk)?;
    let mut b = vec![0u8; 0x8100];
    read_up_to(&f, &mut b, offset)?;
    let text = |s: &[u8]| {
        let t = String::from_utf8_lossy(s)
            .trim_matches(|c: char| c == '\0' || c == ' ')
            .to_string();
        (!t.is_empty()).then_some(t)
    };
    if &b[0x8001..0x8006] == b"CD001" {
        return Ok(text(&b[0x8028..0x8048]));
    }
    if b[510] == 0x55 && b[511] == 0xAA {
        if &b[82..87] == b"FAT32" {
            return Ok(text(&b[71..82]));
        }
        if &b[54..57] == b"FAT" {
            return Ok(text(&b[43..54]));
        }
    }
    if b[1024 + 56..1024 + 58] == [0x53, 0xEF] {
        return Ok(text(&b[1024 + 120..1024 + 136]));
    }
    Ok(None)
}

/// The file-system UUID at `offset` as `lsblk -o UUID` prints it (ext2/3/4,
/// XFS, btrfs, swap, FAT, ISO 9660 are recognised); `None` otherwise, and
/// the caller falls back to the PARTUUID like IPA's `block_uuid`.
pub fn filesystem_uuid(disk: &Path, offset: u64) -> io::Result<Option<String>> {
    let f = File::open(disk)?;
    let mut b = vec![0u8; 0x10100];
    read_up_to(&f, &mut b, offset)?;
    let uuid = |s: &[u8]| -> Option<String> {
        let u = uuid::Uuid::from_slice(s).ok()?;
        (!u.is_nil()).then(|| u.hyphenated().to_string())
    };
    // ext2/3/4: magic 0xEF53 at 1024+56, UUID at 1024+104.
    if b[1024 + 56..1024 + 58] == [0x53, 0xEF] {
        return Ok(uuid(&b[1024 + 104..1024 + 120]));
    }
    if &b[0..4] == b"XFSB" {
        return Ok(uuid(&b[32..48]));
    }
    if &b[0x10040..0x10048] == b"_BHRfS_M" {
        return Ok(uuid(&b[0x10020..0x10030]));
    }
    // Swap: signature in the last 10 bytes of the first page, UUID at 1036.
    if &b[4086..4096] == b"SWAPSPACE2" {
        return Ok(uuid(&b[1036..1052]));
    }
    if b[510] == 0x55 && b[511] == 0xAA {
        let id = |at: usize| {
            let v = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            Some(format!("{:04X}-{:04X}", v >> 16, v & 0xffff))
        };
        if &b[82..87] == b"FAT32" {
            return Ok(id(67));
        }
        if &b[54..57] == b"FAT" {
            return Ok(id(39));
        }
    }
    if &b[0x8001..0x8006] == b"CD001" {
        // Creation time (17 bytes at 0x832D) is what blkid reports.
        let t = &b[0x832D..0x832D + 16];
        if t.iter().all(u8::is_ascii_digit) {
            let s = String::from_utf8_lossy(t);
            return Ok(Some(format!(
                "{}-{}-{}-{}-{}-{}-{}",
                &s[0..4],
                &s[4..6],
                &s[6..8],
                &s[8..10],
                &s[10..12],
                &s[12..14],
                &s[14..16]
            )));
        }
    }
    Ok(None)
}

/// Fills `buf` from `offset`, leaving zeros past the end of the file.
fn read_up_to(f: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copies `src` (a file) into `disk` at `offset`, refusing more than `limit`
/// bytes (config drive into its partition: IPA's `dd … oflag=direct`).
pub fn copy_into(disk: &Path, offset: u64, limit: u64, src: &Path) -> Result<u64, ImageError> {
    let mut input = File::open(src).map_err(io_fail(src, "open"))?;
    let len = input.metadata().map_err(io_fail(src, "stat"))?.len();
    if len > limit {
        return Err(fail(
            disk,
            format!("{} bytes do not fit in a partition of {limit} bytes", len),
        ));
    }
    let out = OpenOptions::new()
        .write(true)
        .open(disk)
        .map_err(io_fail(disk, "open"))?;
    let mut buf = vec![0u8; 4 * MIB as usize];
    let mut done = 0u64;
    loop {
        let n = input.read(&mut buf).map_err(io_fail(src, "read"))?;
        if n == 0 {
            break;
        }
        out.write_all_at(&buf[..n], offset + done)
            .map_err(io_fail(disk, "write"))?;
        done += n as u64;
    }
    out.sync_data().map_err(io_fail(disk, "sync"))?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::LayoutRequest;
    use std::process::Command;

    fn disk(dir: &Path, mib: u64) -> std::path::PathBuf {
        let p = dir.join("disk");
        let f = File::create(&p).expect("disk");
        f.set_len(mib * MIB).expect("size");
        p
    }

    fn sgdisk(args: &[&str], disk: &Path) -> Option<String> {
        let out = Command::new("sgdisk").args(args).arg(disk).output().ok()?;
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn gpt_layout_as_parted_would_write_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = disk(dir.path(), 64);
        let plan = PartitionPlan::new(&LayoutRequest {
            boot_mode: "uefi".into(),
            cpu_arch: "x86_64".into(),
            root_mb: 20,
            swap_mb: 8,
            configdrive_mb: 1,
            esp_mb: 10,
            ..Default::default()
        })
        .expect("plan");
        let layout = create_partition_table(&path, &plan).expect("table");
        let roles: Vec<_> = layout.partitions.iter().map(|p| p.role.as_str()).collect();
        assert_eq!(
            roles,
            ["efi system partition", "swap", "configdrive", "root"]
        );
        let root = layout.get("root").expect("root");
        assert_eq!(
            (root.number, root.offset, root.size),
            (4, 20 * MIB, 20 * MIB)
        );
        let (label, read) = read_partitions(&path).expect("read");
        assert_eq!(label, "gpt");
        assert_eq!(read.len(), 4);
        assert_eq!((read[3].offset, read[3].size), (20 * MIB, 20 * MIB));
        if let Some(info) = sgdisk(&["-i", "1"], &path) {
            assert!(
                info.contains("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
                "{info}"
            );
            let guid = layout.partitions[0].part_uuid.to_ascii_uppercase();
            assert!(info.contains(&guid), "{info}");
        }
        if let Some(v) = sgdisk(&["-v"], &path) {
            assert!(v.contains("No problems found"), "{v}");
        }
    }

    #[test]
    fn msdos_layout_with_boot_flag() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = disk(dir.path(), 32);
        let plan = PartitionPlan::new(&LayoutRequest {
            boot_mode: "bios".into(),
            cpu_arch: "x86_64".into(),
            root_mb: 16,
            ephemeral_mb: 4,
            ..Default::default()
        })
        .expect("plan");
        let layout = create_partition_table(&path, &plan).expect("table");
        let mut mbr = [0u8; 512];
        File::open(&path)
            .expect("open")
            .read_exact_at(&mut mbr, 0)
            .expect("read");
        assert_eq!(&mbr[510..], &[0x55, 0xAA]);
        // root is #2, active, Linux, at 5 MiB.
        let e = &mbr[446 + 16..446 + 32];
        assert_eq!((e[0], e[4]), (0x80, 0x83));
        assert_eq!(u32::from_le_bytes([e[8], e[9], e[10], e[11]]), 5 * 2048);
        let sig = u32::from_le_bytes([mbr[440], mbr[441], mbr[442], mbr[443]]);
        assert_eq!(
            layout.get("root").expect("root").part_uuid,
            format!("{sig:08x}-02")
        );
        let too_big = PartitionPlan::new(&LayoutRequest {
            boot_mode: "bios".into(),
            root_mb: 64,
            ..Default::default()
        })
        .expect("plan");
        assert!(matches!(
            create_partition_table(&path, &too_big),
            Err(ImageError::Partition { .. })
        ));
    }

    #[test]
    fn backup_gpt_moves_to_the_end_of_a_larger_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = disk(dir.path(), 16);
        let plan = PartitionPlan::new(&LayoutRequest {
            boot_mode: "uefi".into(),
            root_mb: 8,
            esp_mb: 2,
            ..Default::default()
        })
        .expect("plan");
        create_partition_table(&path, &plan).expect("table");
        // The "image" (16 MiB) lands on a 48 MiB disk.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .expect("open")
            .set_len(48 * MIB)
            .expect("grow");
        if let Some(v) = sgdisk(&["-v"], &path) {
            assert!(v.contains("doesn't reside"), "{v}");
        }
        assert!(fix_gpt_backup(&path).expect("fix"));
        let mut hdr = [0u8; 512];
        let f = File::open(&path).expect("open");
        f.read_exact_at(&mut hdr, 48 * MIB - 512).expect("read");
        assert_eq!(&hdr[..8], b"EFI PART");
        if let Some(v) = sgdisk(&["-v"], &path) {
            assert!(v.contains("No problems found"), "{v}");
        }
        assert!(!fix_gpt_backup(&path).expect("second fix is a no-op"));
        let (_, parts) = read_partitions(&path).expect("read");
        assert_eq!(parts.len(), 2, "entries kept");
        // A disk without GPT is left alone.
        let plain = dir.path().join("plain");
        File::create(&plain)
            .expect("plain")
            .set_len(MIB)
            .expect("len");
        assert!(!fix_gpt_backup(&plain).expect("no gpt"));
    }
}
