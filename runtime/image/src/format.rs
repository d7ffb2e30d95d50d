//! Image format detection from bytes and the per-format safety checks of
//! oslo.utils' `imageutils.format_inspector`, as IPA's
//! `disk_utils.get_and_validate_image_format` applies them.
//!
//! Only headers are read: [`sniff`] needs the first [`SNIFF_LEN`] bytes
//! (the ISO 9660 volume descriptor sits at 32 KiB) and, when available, the
//! last 512 bytes (fixed VHD footer).

use crate::error::ImageError;

/// Bytes from the start of the image [`sniff`] wants to see.
pub const SNIFF_LEN: usize = 64 * 1024;

/// A detected image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Raw,
    Gpt,
    Iso,
    Qcow2,
    Vmdk,
    Vhd,
    Vhdx,
    Vdi,
    Qed,
    Luks,
}

impl Format {
    /// The name Glance/Ironic use (`disk_format`, `permitted_image_formats`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Gpt => "gpt",
            Format::Iso => "iso",
            Format::Qcow2 => "qcow2",
            Format::Vmdk => "vmdk",
            Format::Vhd => "vhd",
            Format::Vhdx => "vhdx",
            Format::Vdi => "vdi",
            Format::Qed => "qed",
            Format::Luks => "luks",
        }
    }

    /// Bytes that go to the disk unchanged.
    pub fn is_raw_like(self) -> bool {
        matches!(self, Format::Raw | Format::Gpt | Format::Iso)
    }

    /// qemu-img's driver name for conversion.
    pub fn qemu_driver(self) -> &'static str {
        match self {
            Format::Vhd => "vpc",
            Format::Raw | Format::Gpt | Format::Iso => "raw",
            other => other.name(),
        }
    }
}

fn be32(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_be_bytes(a))
}

fn le64(b: &[u8], off: usize) -> Option<u64> {
    let s = b.get(off..off + 8)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    Some(u64::from_le_bytes(a))
}

fn at(b: &[u8], off: usize, magic: &[u8]) -> bool {
    b.get(off..off + magic.len()) == Some(magic)
}

/// Detects the format from the image's first bytes (`head`, ideally
/// [`SNIFF_LEN`] long) and optionally its last 512 bytes (`tail`).
/// Returns an error when several non-raw formats claim the bytes.
pub fn sniff(head: &[u8], tail: Option<&[u8]>) -> Result<Format, ImageError> {
    let mut found = Vec::new();
    if at(head, 0, b"QFI\xfb") {
        found.push(Format::Qcow2);
    }
    if at(head, 0, b"QED\0") {
        found.push(Format::Qed);
    }
    if at(head, 0, b"KDMV") || at(head, 0, b"# Disk DescriptorFile") {
        found.push(Format::Vmdk);
    }
    if at(head, 0, b"vhdxfile") {
        found.push(Format::Vhdx);
    }
    if at(head, 0, b"conectix")
        || tail.is_some_and(|t| at(t, t.len().saturating_sub(512), b"conectix"))
    {
        found.push(Format::Vhd);
    }
    if at(head, 0x40, &0xbeda_107f_u32.to_le_bytes()) {
        found.push(Format::Vdi);
    }
    if at(head, 0, b"LUKS\xba\xbe") {
        found.push(Format::Luks);
    }
    match found.as_slice() {
        [] => {}
        [one] => return Ok(*one),
        many => {
            let names: Vec<_> = many.iter().map(|f| f.name()).collect();
            return Err(ImageError::invalid(format!(
                "image matches several formats: {}",
                names.join(", ")
            )));
        }
    }
    // Raw-like: a hybrid ISO also has an MBR/GPT; it is written byte for byte
    // either way, so report ISO first, then GPT, then plain raw.
    if at(head, 0x8001, b"CD001") {
        return Ok(Format::Iso);
    }
    if has_protective_mbr(head) && (at(head, 512, b"EFI PART") || at(head, 4096, b"EFI PART")) {
        return Ok(Format::Gpt);
    }
    Ok(Format::Raw)
}

fn has_protective_mbr(b: &[u8]) -> bool {
    at(b, 510, &[0x55, 0xaa]) && (0..4).any(|i| b.get(446 + 16 * i + 4) == Some(&0xee))
}

/// The format's safety checks (oslo.utils format_inspector semantics).
pub fn safety_check(format: Format, head: &[u8]) -> Result<(), ImageError> {
    match format {
        Format::Qcow2 => check_qcow2(head),
        Format::Vmdk => check_vmdk(head),
        Format::Gpt => check_gpt(head),
        Format::Qed => Err(ImageError::invalid("QED images are not supported")),
        Format::Raw | Format::Iso | Format::Vhd | Format::Vhdx | Format::Vdi | Format::Luks => {
            Ok(())
        }
    }
}

/// qcow2: version 2 or 3, no backing file, no external data file, no
/// unknown incompatible feature bits.
fn check_qcow2(h: &[u8]) -> Result<(), ImageError> {
    let short = || ImageError::invalid("qcow2 header is truncated");
    let version = be32(h, 4).ok_or_else(short)?;
    if version != 2 && version != 3 {
        return Err(ImageError::invalid(format!(
            "qcow2 version {version} is not supported"
        )));
    }
    let backing_offset = be64(h, 8).ok_or_else(short)?;
    if backing_offset != 0 {
        // A backing file makes qemu-img read an arbitrary host path into the disk.
        return Err(ImageError::invalid("qcow2 image has a backing file"));
    }
    if version == 3 {
        let incompatible = be64(h, 72).ok_or_else(short)?;
        const DATA_FILE: u64 = 1 << 2;
        // dirty, corrupt, external data file, compression type, extended L2
        const KNOWN: u64 = 0b1_1111;
        if incompatible & DATA_FILE != 0 {
            return Err(ImageError::invalid("qcow2 image has an external data file"));
        }
        if incompatible & !KNOWN != 0 {
            return Err(ImageError::invalid(format!(
                "qcow2 image has unknown incompatible features {incompatible:#x}"
            )));
        }
    }
    Ok(())
}

/// vmdk: only monolithicSparse / streamOptimized, with the descriptor inside
/// the file (no extents pointing at host files).
fn check_vmdk(h: &[u8]) -> Result<(), ImageError> {
    let descriptor: &[u8] = if at(h, 0, b"KDMV") {
        let off = le64(h, 28).unwrap_or(0).saturating_mul(512);
        let len = le64(h, 36).unwrap_or(0).saturating_mul(512);
        let (Ok(off), Ok(len)) = (usize::try_from(off), usize::try_from(len)) else {
            return Err(ImageError::invalid(
                "vmdk descriptor location is out of range",
            ));
        };
        h.get(off..off.saturating_add(len.min(64 * 1024)))
            .ok_or_else(|| {
                ImageError::invalid("vmdk descriptor lies outside the inspected header")
            })?
    } else {
        return Err(ImageError::invalid(
            "vmdk descriptor-only images reference external extents",
        ));
    };
    let text = String::from_utf8_lossy(descriptor);
    let create_type = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("createType"))
        .filter_map(|rest| rest.trim_start().strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').to_string())
        .next()
        .ok_or_else(|| ImageError::invalid("vmdk descriptor has no createType"))?;
    if create_type != "monolithicSparse" && create_type != "streamOptimized" {
        return Err(ImageError::invalid(format!(
            "vmdk createType {create_type} is not allowed"
        )));
    }
    for line in text.lines().map(str::trim) {
        if (line.starts_with("RW ") || line.starts_with("RDONLY ") || line.starts_with("NOACCESS "))
            && !line.contains("SPARSE")
        {
            return Err(ImageError::invalid(format!(
                "vmdk extent {line:?} is not allowed"
            )));
        }
    }
    Ok(())
}

/// gpt: the protective MBR must be sane (one 0xEE entry starting at LBA 1).
fn check_gpt(h: &[u8]) -> Result<(), ImageError> {
    let mut protective = 0;
    for i in 0..4 {
        let e = 446 + 16 * i;
        if h.get(e + 4) == Some(&0xee) {
            protective += 1;
            let start = h
                .get(e + 8..e + 12)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
            if start != Some(1) {
                return Err(ImageError::invalid(
                    "GPT protective MBR entry does not start at LBA 1",
                ));
            }
        }
    }
    if protective != 1 {
        return Err(ImageError::invalid(
            "GPT image has an invalid protective MBR",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2(version: u32, backing: u64, incompat: u64) -> Vec<u8> {
        let mut h = vec![0u8; 4096];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[8..16].copy_from_slice(&backing.to_be_bytes());
        h[72..80].copy_from_slice(&incompat.to_be_bytes());
        h
    }

    #[test]
    fn qcow2_checks() {
        assert_eq!(sniff(&qcow2(3, 0, 0), None).ok(), Some(Format::Qcow2));
        assert!(safety_check(Format::Qcow2, &qcow2(3, 0, 1)).is_ok());
        assert!(safety_check(Format::Qcow2, &qcow2(3, 512, 0)).is_err());
        assert!(safety_check(Format::Qcow2, &qcow2(3, 0, 4)).is_err());
        assert!(safety_check(Format::Qcow2, &qcow2(3, 0, 1 << 9)).is_err());
        assert!(safety_check(Format::Qcow2, &qcow2(1, 0, 0)).is_err());
    }

    #[test]
    fn raw_like() {
        let mut g = vec![0u8; SNIFF_LEN];
        assert_eq!(sniff(&g, None).ok(), Some(Format::Raw));
        g[446 + 4] = 0xee;
        g[446 + 8] = 1;
        g[510] = 0x55;
        g[511] = 0xaa;
        g[512..520].copy_from_slice(b"EFI PART");
        assert_eq!(sniff(&g, None).ok(), Some(Format::Gpt));
        assert!(safety_check(Format::Gpt, &g).is_ok());
        g[446 + 16 + 4] = 0xee;
        assert!(safety_check(Format::Gpt, &g).is_err());
        let mut iso = vec![0u8; SNIFF_LEN];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(sniff(&iso, None).ok(), Some(Format::Iso));
        let mut vhd_tail = vec![0u8; 512];
        vhd_tail[..8].copy_from_slice(b"conectix");
        assert_eq!(
            sniff(&vec![0u8; 1024], Some(&vhd_tail)).ok(),
            Some(Format::Vhd)
        );
        assert!(safety_check(Format::Qed, b"QED\0").is_err());
    }
}
