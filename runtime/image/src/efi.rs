//! UEFI boot entries (IPA `efi_utils.manage_uefi`): find
//! the ESP on the install disk, find the boot loaders on it, and register
//! them with `efibootmgr`.
//!
//! IPA mounts the ESP to walk it; here the FAT file system is read in
//! place (`fatfs` over the partition's byte range), so nothing is mounted
//! and the same code serves a simulated disk. `efibootmgr` itself runs
//! through the agent's [`ProgramRunner`].

use std::io::Read;
use std::path::Path;

use crate::disk::{self, ExistingPartition};
use crate::error::ImageError;
use crate::programs::{ProgramError, ProgramRunner};

pub use crate::efi_raid::manage_uefi_raid;
pub use generic_storage::efiboot::{parse_boot_records, BootRecord};

/// Loader file names IPA looks for (lower case).
const LOADERS: &[&str] = &[
    "bootx64.csv",
    "bootaa64.csv",
    "boot.csv",
    "bootia32.efi",
    "bootx64.efi",
    "bootia64.efi",
    "bootarm.efi",
    "bootaa64.efi",
    "bootriscv32.efi",
    "bootriscv64.efi",
    "bootriscv128.efi",
    "grubaa64.efi",
    "winload.efi",
];

/// A boot loader found on the ESP: its `\`-separated path and the label
/// of its boot entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EfiLoader {
    pub path: String,
    pub label: String,
}

fn fail(disk: &Path, message: impl Into<String>) -> ImageError {
    ImageError::Partition {
        device: disk.to_path_buf(),
        message: message.into(),
    }
}

fn program_error(device: &str) -> impl Fn(ProgramError) -> ImageError + '_ {
    move |e| ImageError::Program {
        program: "efibootmgr".into(),
        device: device.to_string(),
        message: e.to_string(),
    }
}

/// The ESP of `disk`: the first partition typed as an ESP (parted's `esp`
/// flag; on GPT also what `boot` means), else the one whose PARTUUID or
/// file-system UUID is `esp_uuid`.
pub fn find_esp(disk: &Path, esp_uuid: Option<&str>) -> Result<ExistingPartition, ImageError> {
    let (_, parts) = disk::read_partitions(disk)?;
    if let Some(p) = parts.iter().find(|p| p.esp) {
        return Ok(p.clone());
    }
    if let Some(want) = esp_uuid.filter(|u| !u.is_empty()) {
        for p in &parts {
            let fs = disk::filesystem_uuid(disk, p.offset)
                .map_err(|e| fail(disk, format!("reading partition {}: {e}", p.number)))?;
            if p.part_uuid.eq_ignore_ascii_case(want)
                || fs.is_some_and(|u| u.eq_ignore_ascii_case(want))
            {
                return Ok(p.clone());
            }
        }
    }
    Err(ImageError::Partition {
        device: disk.to_path_buf(),
        message: format!(
            "no EFI system partition found (efi_system_part_uuid {})",
            esp_uuid.unwrap_or("not given")
        ),
    })
}

/// Loader discovery (IPA `efi_utils._get_efi_bootloaders`): walk the ESP
/// top-down; the first CSV met wins alone; otherwise every known `.efi` loader,
/// labelled `ironic1`, `ironic2`, … . An ESP that is not a FAT file system
/// (e.g. freshly formatted by a stand-in) has no loaders.
pub fn find_loaders(disk: &Path, esp: &ExistingPartition) -> Result<Vec<EfiLoader>, ImageError> {
    let window = crate::esp::Window::open(disk, esp)?;
    let fs = match fatfs::FileSystem::new(window, fatfs::FsOptions::new()) {
        Ok(fs) => fs,
        Err(e) => {
            tracing::warn!(disk = %disk.display(), partition = esp.number, error = %e,
                "the EFI system partition holds no FAT file system; no boot loader");
            return Ok(Vec::new());
        }
    };
    let mut found = Vec::new();
    let mut stack = vec![(fs.root_dir(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut subdirs = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| fail(disk, format!("reading the ESP: {e}")))?;
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            if entry.is_dir() {
                subdirs.push((entry.to_dir(), path));
                continue;
            }
            let lower = name.to_ascii_lowercase();
            if !LOADERS.contains(&lower.as_str()) {
                continue;
            }
            if lower.ends_with(".csv") {
                let mut data = Vec::new();
                entry
                    .to_file()
                    .read_to_end(&mut data)
                    .map_err(|e| fail(disk, format!("reading {path} on the ESP: {e}")))?;
                let text = decode_utf16(&data);
                let fields: Vec<&str> = text.splitn(4, ',').collect();
                let (Some(file), Some(label)) = (fields.first(), fields.get(1)) else {
                    return Err(fail(
                        disk,
                        format!("{path} on the ESP is not a boot CSV: {text:?}"),
                    ));
                };
                let loader = if rel.is_empty() {
                    file.trim().to_string()
                } else {
                    format!("{rel}/{}", file.trim())
                };
                return Ok(vec![EfiLoader {
                    path: efi_path(&loader),
                    label: label.trim().to_string(),
                }]);
            }
            found.push(path);
        }
        // Directories in listing order, depth first like os.walk.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(found
        .iter()
        .enumerate()
        .map(|(i, p)| EfiLoader {
            path: efi_path(p),
            label: format!("ironic{}", i + 1),
        })
        .collect())
}

/// `EFI/BOOT/BOOTX64.EFI` → `\EFI\BOOT\BOOTX64.EFI`.
fn efi_path(rel: &str) -> String {
    format!("\\{}", rel.replace('/', "\\"))
}

/// UTF-16 with BOM, else UTF-16-LE; UTF-8 when the bytes are not UTF-16.
fn decode_utf16(data: &[u8]) -> String {
    let (body, le) = match data {
        [0xFF, 0xFE, rest @ ..] => (rest, true),
        [0xFE, 0xFF, rest @ ..] => (rest, false),
        _ if data.len() >= 2 && data[1] == 0 => (data, true),
        _ => return String::from_utf8_lossy(data).into_owned(),
    };
    let units: Vec<u16> = body
        .chunks_exact(2)
        .map(|c| {
            if le {
                u16::from_le_bytes([c[0], c[1]])
            } else {
                u16::from_be_bytes([c[0], c[1]])
            }
        })
        .collect();
    String::from_utf16_lossy(&units)
        .trim_matches(|c: char| c == '\u{feff}' || c.is_whitespace())
        .to_string()
}

/// IPA `manage_uefi`: registers the ESP's loaders; `Ok(false)` when the ESP has
/// none (the caller then goes on as IPA does).
///
/// `device` is the disk as the machine names it (efibootmgr's `-d`),
/// `disk` the path the agent reads it through.
pub fn manage_uefi(
    runner: &ProgramRunner,
    device: &str,
    disk: &Path,
    esp_uuid: Option<&str>,
) -> Result<bool, ImageError> {
    let esp = find_esp(disk, esp_uuid)?;
    Ok(!register_loaders(runner, device, disk, &esp)?.is_empty())
}

/// Registers the loaders found on `esp` (a partition of `disk`); returns
/// the labels of the entries created, none when the ESP holds no loader.
pub fn register_loaders(
    runner: &ProgramRunner,
    device: &str,
    disk: &Path,
    esp: &ExistingPartition,
) -> Result<Vec<String>, ImageError> {
    let loaders = find_loaders(disk, esp)?;
    if loaders.is_empty() {
        tracing::warn!(%device, partition = esp.number, "no boot loader found on the EFI system partition");
        return Ok(Vec::new());
    }
    add_entries(runner, device, esp.number, &loaders, None)
}

/// One `efibootmgr -c` per loader on partition `part` of `device`, after
/// deleting entries with the same label (IPA `efi_utils._run_efibootmgr`);
/// `suffix` is appended to each label (software RAID: one set of entries
/// per holder disk, told apart by `(RAID, part<i>)`).
pub(crate) fn add_entries(
    runner: &ProgramRunner,
    device: &str,
    part: u32,
    loaders: &[EfiLoader],
    suffix: Option<&str>,
) -> Result<Vec<String>, ImageError> {
    let part = part.to_string();
    let mut labels = Vec::new();
    for loader in loaders {
        let label = match suffix {
            Some(s) => format!("{} {s}", loader.label),
            None => loader.label.clone(),
        };
        let listing = runner
            .check("efibootmgr", &["-v"])
            .map_err(program_error(device))?;
        for record in parse_boot_records(listing.as_deref().unwrap_or("")) {
            if record.label == label {
                tracing::info!(number = %record.number, label = %record.label, "removing a boot entry with the same label");
                runner
                    .check("efibootmgr", &["-b", &record.number, "-B"])
                    .map_err(program_error(device))?;
            }
        }
        runner
            .check(
                "efibootmgr",
                &[
                    "-v",
                    "-c",
                    "-d",
                    device,
                    "-p",
                    &part,
                    "-w",
                    "-L",
                    &label,
                    "-l",
                    &loader.path,
                ],
            )
            .map_err(program_error(device))?;
        tracing::info!(%device, partition = %part, %label, path = %loader.path, "UEFI boot entry created");
        labels.push(label);
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_records_parse_like_ipa() {
        let text = "BootCurrent: 0001\nTimeout: 0 seconds\nBootOrder: 0001,0000\n\
            Boot0000* ironic1\tHD(1,GPT,abc,0x800,0x100000)/File(\\EFI\\BOOT\\BOOTX64.EFI)\n\
            Boot0001* UEFI PXEv4 (MAC:52540012)   PciRoot(0x0)/Pci(0x3,0x0)/MAC(525400123456,1)\n\
            Boot0002  disabled entry VenHw(99e275e7-75a0-4b37-a2e6-c5385e6c00cb)\n";
        let r = parse_boot_records(text);
        assert_eq!(r.len(), 3);
        assert_eq!(
            (r[0].number.as_str(), r[0].label.as_str()),
            ("0000", "ironic1")
        );
        assert_eq!(r[1].label, "UEFI PXEv4 (MAC:52540012)");
        assert!(r[1].device_path.starts_with("PciRoot("));
        assert_eq!(r[2].label, "disabled entry");
    }

    #[test]
    fn csv_is_utf16() {
        let text = "shimx64.efi,centos,,This is the boot entry for centos\n";
        let mut bytes = vec![0xFF, 0xFE];
        for u in text.encode_utf16() {
            bytes.extend(u.to_le_bytes());
        }
        assert_eq!(decode_utf16(&bytes), text.trim());
        assert_eq!(
            efi_path("EFI/centos/shimx64.efi"),
            "\\EFI\\centos\\shimx64.efi"
        );
    }
}
