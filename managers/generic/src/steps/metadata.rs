//! Native metadata wipe: the effect of IPA's `destroy_disk_metadata`
//! (`disk_utils.py`: `wipefs --all`, zeroing the GPT areas with `dd`,
//! `sgdisk -Z`) done through the `disks` capability.
//!
//! Rather than locating each signature like wipefs, we zero fixed zones at
//! both ends of the device or partition, plus every GPT structure the
//! primary/backup headers point at:
//!
//! * head zone (8 MiB): protective MBR, GPT primary header + entries for 512
//!   and 4096-byte sectors (the reference's `dd count=33`/`5`), every
//!   filesystem/RAID/LVM/crypto signature libblkid looks for near the start
//!   (ext*, xfs, btrfs primary at 64 KiB, swap, iso9660/UDF anchors, md 1.1
//!   and 1.2, LVM2 label, bcache, ZFS labels 0/1 in the first 512 KiB, and
//!   the LUKS2 secondary header, whose furthest position is 4 MiB);
//! * tail zone (8 MiB): backup GPT (the reference's `dd seek=B/S-G`), md 0.90
//!   and 1.0 superblocks, ZFS labels 2/3, trailing UDF/NILFS2 structures;
//! * GPT structures wherever the headers say they are: a disk image written
//!   to a larger disk leaves its backup GPT in the middle, which `sgdisk -Z`
//!   removes and a fixed zone would miss.
//!
//! On a partitioned disk the disk's own zones stop at its first partition and
//! resume after its last (partitions are wiped on their own or kept on
//! purpose). This matches or exceeds what the reference clears, and leaves
//! data outside these ranges intact. No `wipefs`/`sgdisk` run is needed for the on-disk
//! effect. What native I/O cannot do is ask the kernel to re-read the
//! partition table (sgdisk and wipefs issue BLKRRPART): the kernel keeps the
//! stale partition devices until the next reread (e.g. image writing's
//! partprobe). Neither does it wait for `fuser` (IPA's
//! `wait_for_disk_to_become_available`). Both need host support.

use ironic_hardware_guest::disks::{Disk, DiskError};

/// Zeroed at the start of every device and partition.
pub const HEAD_ZONE: u64 = 8 << 20;
/// Zeroed at the end of every device and partition.
pub const TAIL_ZONE: u64 = 8 << 20;

pub fn disk_error(e: &DiskError) -> String {
    match e {
        DiskError::Denied(m) => format!("access denied: {m}"),
        DiskError::NotFound(m) => format!("not found: {m}"),
        DiskError::OutOfRange(m) => format!("out of range: {m}"),
        DiskError::Unsupported(m) => format!("unsupported: {m}"),
        DiskError::Io(m) => format!("I/O error: {m}"),
    }
}

/// A window of a disk: the whole device or one partition, addressed through
/// the handle of the device that holds it.
pub struct Region<'a> {
    pub disk: &'a Disk,
    /// Byte offset of the region inside `disk`.
    pub base: u64,
    /// Bytes.
    pub len: u64,
    pub sector: u64,
}

impl Region<'_> {
    /// Read `len` bytes at `offset` (relative to the region), rounding the
    /// request out to whole sectors as the capability requires. Short or
    /// out-of-range reads give `None`.
    pub fn read(&self, offset: u64, len: u64) -> Option<Vec<u8>> {
        let end = offset.checked_add(len)?;
        if end > self.len {
            return None;
        }
        let abs = self.base + offset;
        let start = abs - abs % self.sector;
        let stop = (self.base + end).div_ceil(self.sector) * self.sector;
        let data = self
            .disk
            .read(start, u32::try_from(stop - start).ok()?)
            .ok()?;
        let from = usize::try_from(abs - start).ok()?;
        let to = from + usize::try_from(len).ok()?;
        data.get(from..to).map(<[u8]>::to_vec)
    }

    /// Zero `[offset, offset + len)` of the region, clamped to it.
    pub fn zero(&self, offset: u64, len: u64) -> Result<(), String> {
        let offset = offset.min(self.len);
        let len = len.min(self.len - offset);
        if len == 0 {
            return Ok(());
        }
        self.disk
            .write_zeroes(self.base + offset, len)
            .map_err(|e| {
                format!(
                    "zeroing {len} bytes at offset {}: {}",
                    self.base + offset,
                    disk_error(&e)
                )
            })
    }
}

fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A GPT header found in a region.
#[derive(Debug, Clone, Copy)]
pub struct GptHeader {
    /// Sector size the header was found with.
    pub sector: u64,
    pub my_lba: u64,
    pub alternate_lba: u64,
    pub entries_lba: u64,
    pub entries: u32,
    pub entry_size: u32,
}

impl GptHeader {
    fn entries_bytes(&self) -> u64 {
        u64::from(self.entries) * u64::from(self.entry_size)
    }
}

fn gpt_header_at(region: &Region, offset: u64, sector: u64) -> Option<GptHeader> {
    let hdr = region.read(offset, 92)?;
    if hdr.get(0..8)? != b"EFI PART" {
        return None;
    }
    let header = GptHeader {
        sector,
        my_lba: le_u64(&hdr, 24)?,
        alternate_lba: le_u64(&hdr, 32)?,
        entries_lba: le_u64(&hdr, 72)?,
        entries: le_u32(&hdr, 80)?,
        entry_size: le_u32(&hdr, 84)?,
    };
    // Bound what we trust from an unverified header: the spec allows at most
    // a few MiB of entries in practice.
    (header.entry_size >= 128 && header.entries_bytes() <= 4 << 20).then_some(header)
}

/// The primary GPT header, trying the device's sector size first, then the
/// two sizes images are made with.
pub fn primary_gpt(region: &Region) -> Option<GptHeader> {
    let mut sizes = vec![region.sector];
    for s in [512, 4096] {
        if !sizes.contains(&s) {
            sizes.push(s);
        }
    }
    sizes.into_iter().find_map(|s| gpt_header_at(region, s, s))
}

/// A partition-table entry: start byte offset and type.
#[derive(Debug, Clone)]
pub struct TableEntry {
    pub start: u64,
    /// GPT type GUID (uppercase) or MBR type as `0x..`.
    pub kind: String,
}

fn guid(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.get(..16)?.try_into().ok()?;
    Some(format!(
        "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{}",
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        u16::from_le_bytes([b[4], b[5]]),
        u16::from_le_bytes([b[6], b[7]]),
        b[8],
        b[9],
        b[10..]
            .iter()
            .map(|x| format!("{x:02X}"))
            .collect::<String>()
    ))
}

/// The partitions a region's partition table describes (GPT, else MBR).
pub fn partition_table(region: &Region) -> Vec<TableEntry> {
    if let Some(h) = primary_gpt(region) {
        let Some(data) = region.read(h.entries_lba.saturating_mul(h.sector), h.entries_bytes())
        else {
            return Vec::new();
        };
        return data
            .chunks(h.entry_size as usize)
            .filter_map(|e| {
                let kind = guid(e)?;
                let first = le_u64(e, 32)?;
                (kind != "00000000-0000-0000-0000-000000000000").then(|| TableEntry {
                    start: first.saturating_mul(h.sector),
                    kind,
                })
            })
            .collect();
    }
    let Some(mbr) = region.read(0, 512) else {
        return Vec::new();
    };
    if mbr.get(510..512) != Some(&[0x55, 0xAA]) {
        return Vec::new();
    }
    (0..4)
        .filter_map(|i| {
            let e = mbr.get(446 + i * 16..446 + (i + 1) * 16)?;
            let kind = *e.get(4)?;
            let start = u64::from(le_u32(e, 8)?) * 512;
            (kind != 0).then(|| TableEntry {
                start,
                kind: format!("0x{kind:02x}"),
            })
        })
        .collect()
}

/// Ranges (relative to the region) holding GPT structures that the headers
/// point at, beyond the fixed zones: backup header and both entry arrays.
fn gpt_ranges(region: &Region) -> Vec<(u64, u64)> {
    let Some(primary) = primary_gpt(region) else {
        return Vec::new();
    };
    let s = primary.sector;
    let mut ranges = vec![(
        primary.entries_lba.saturating_mul(s),
        primary.entries_bytes(),
    )];
    let backup_off = primary.alternate_lba.saturating_mul(s);
    if backup_off != primary.my_lba.saturating_mul(s) {
        ranges.push((backup_off, s));
        match gpt_header_at(region, backup_off, s) {
            Some(backup) => {
                ranges.push((backup.entries_lba.saturating_mul(s), backup.entries_bytes()))
            }
            // Standard layout: entries right before the backup header.
            None => ranges.push((
                backup_off.saturating_sub(primary.entries_bytes()),
                primary.entries_bytes(),
            )),
        }
    }
    ranges
}

/// Destroy the metadata of a region (see the module comment); errors name
/// what failed but not the device (the caller adds it).
///
/// `partitions` ((start, size) in bytes) are never written: the zones of a
/// partitioned disk stop at its first partition and start after its last.
/// Partitions get their own wipe, or are kept on purpose (skip-list hint,
/// read-only, RAID member); like IPA, wiping a disk must not reach into them.
pub fn wipe(region: &Region, partitions: &[(u64, u64)]) -> Result<(), String> {
    // Read the GPT pointers before zeroing the headers that hold them.
    let extra = gpt_ranges(region);
    let s = region.sector;
    let align_down = |v: u64| v - v % s;
    let align_up = |v: u64| v.div_ceil(s) * s;
    let first_start = partitions.iter().map(|p| p.0).min().unwrap_or(u64::MAX);
    let last_end = partitions
        .iter()
        .map(|p| p.0.saturating_add(p.1))
        .max()
        .unwrap_or(0);
    let head_end = align_down(HEAD_ZONE.min(first_start));
    let tail_start = align_up(region.len.saturating_sub(TAIL_ZONE).max(last_end));
    region.zero(0, head_end)?;
    region.zero(tail_start, region.len.saturating_sub(tail_start))?;
    for (offset, len) in extra {
        let start = align_down(offset);
        let end = align_up(offset.saturating_add(len).min(region.len));
        if start < end {
            region.zero(start, end - start)?;
        }
    }
    region
        .disk
        .flush()
        .map_err(|e| format!("flush: {}", disk_error(&e)))
}

#[cfg(test)]
mod tests {
    use super::guid;

    #[test]
    fn gpt_type_guids_are_mixed_endian() {
        // Linux filesystem data, 0FC63DAF-8483-4772-8E79-3D69D8477DE4, as stored.
        let raw = [
            0xAF, 0x3D, 0xC6, 0x0F, 0x83, 0x84, 0x72, 0x47, 0x8E, 0x79, 0x3D, 0x69, 0xD8, 0x47,
            0x7D, 0xE4,
        ];
        assert_eq!(
            guid(&raw).as_deref(),
            Some("0FC63DAF-8483-4772-8E79-3D69D8477DE4")
        );
    }
}
