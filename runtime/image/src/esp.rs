//! Filling an empty EFI system partition from the deployed image (IPA
//! `extensions/image.py` `_preserve_efi_assets`): the partition image's root
//! file system carries the boot loaders in `/boot/efi/EFI/…` (where the
//! distribution's packages installed them), and the ESP the deploy created
//! is empty, so they are copied onto it before the boot entries are made.
//!
//! Both file systems are read and written in place, as byte ranges of the
//! install disk: the root file system with `ext4-view` (read-only), the ESP
//! with `fatfs`. Nothing is mounted and no program of the image runs, which
//! is why this happens even when `enable_bios_bootloader_install` is off
//! (IPA copies the assets only inside its GRUB installation, which that
//! option gates because running the image's `grub-install` runs code from
//! the image; copying files does not). The same code serves a simulated
//! disk.
//!
//! Every file is bounded ([`MAX_FILE_BYTES`]); the ESP's size bounds the
//! total.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use ext4_view::Ext4;

use crate::disk::ExistingPartition;
use crate::error::ImageError;

/// The largest single file copied onto the ESP (boot loaders are a few MiB).
pub const MAX_FILE_BYTES: u64 = 64 << 20;
/// Deepest directory nesting followed under `/boot/efi/EFI`.
const MAX_DEPTH: usize = 16;
/// Where the image keeps its EFI tree (IPA: `<root>/boot/efi/EFI`).
const EFI_TREE: &str = "/boot/efi/EFI";

fn fail(disk: &Path, message: impl Into<String>) -> ImageError {
    ImageError::Partition {
        device: disk.to_path_buf(),
        message: message.into(),
    }
}

/// A partition of the disk file as ext4-view reads it.
struct PartitionReader {
    file: File,
    offset: u64,
    len: u64,
}

impl ext4_view::Ext4Read for PartitionReader {
    fn read(
        &mut self,
        start_byte: u64,
        dst: &mut [u8],
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync + 'static>> {
        start_byte
            .checked_add(dst.len() as u64)
            .filter(|e| *e <= self.len)
            .ok_or("read past the end of the partition")?;
        self.file.read_exact_at(dst, self.offset + start_byte)?;
        Ok(())
    }
}

/// A partition as a seekable read/write stream (fatfs's storage).
pub(crate) struct Window {
    pub file: File,
    pub offset: u64,
    pub len: u64,
    pub pos: u64,
}

impl Window {
    pub(crate) fn open(disk: &Path, part: &ExistingPartition) -> Result<Window, ImageError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(disk)
            .map_err(|e| fail(disk, format!("open: {e}")))?;
        Ok(Window {
            file,
            offset: part.offset,
            len: part.size,
            pos: 0,
        })
    }
}

impl Read for Window {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        let n = self.file.read_at(&mut buf[..n], self.offset + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Write for Window {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        if n == 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WriteZero,
                "end of the partition",
            ));
        }
        let n = self.file.write_at(&buf[..n], self.offset + self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.sync_data()
    }
}

impl Seek for Window {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match new {
            Some(p) if p <= self.len => {
                self.pos = p;
                Ok(p)
            }
            _ => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek outside the partition",
            )),
        }
    }
}

/// Whether the partition holds a FAT file system fatfs can open.
pub fn has_fat(disk: &Path, part: &ExistingPartition) -> Result<bool, ImageError> {
    let w = Window::open(disk, part)?;
    Ok(fatfs::FileSystem::new(w, fatfs::FsOptions::new()).is_ok())
}

/// Formats the ESP as FAT labelled `efi-part` (what the deploy's
/// `mkfs -t vfat -n efi-part` makes). Only used when the ESP has no file
/// system at all, which on a real machine cannot follow a successful
/// deploy; a simulated machine's `mkfs` stand-in formats nothing.
pub fn format(disk: &Path, part: &ExistingPartition) -> Result<(), ImageError> {
    let mut w = Window::open(disk, part)?;
    fatfs::format_volume(
        &mut w,
        fatfs::FormatVolumeOptions::new().volume_label(*b"efi-part   "),
    )
    .map_err(|e| fail(disk, format!("formatting the EFI system partition: {e}")))
}

/// Copies the root file system's `/boot/efi/EFI` tree onto the ESP (files
/// already there are overwritten), plus `boot/grub2/grub.cfg` and
/// `grubenv` into each vendor directory that lacks them, as IPA does.
/// Returns the number of files copied: 0 when the root file system is not
/// ext2/3/4 or has no EFI tree (IPA then goes on without assets).
pub fn copy_efi_assets(
    disk: &Path,
    root: &ExistingPartition,
    esp: &ExistingPartition,
) -> Result<usize, ImageError> {
    let file = File::open(disk).map_err(|e| fail(disk, format!("open: {e}")))?;
    let reader = PartitionReader {
        file,
        offset: root.offset,
        len: root.size,
    };
    let ext4 = match Ext4::load(Box::new(reader)) {
        Ok(fs) => fs,
        Err(e) => {
            tracing::info!(disk = %disk.display(), partition = root.number, error = %e,
                "the root partition is no ext2/3/4 file system this agent reads; no EFI assets copied");
            return Ok(0);
        }
    };
    if !ext4.exists(EFI_TREE).unwrap_or(false) {
        tracing::info!(disk = %disk.display(), "the image has no {EFI_TREE}; no EFI assets to copy");
        return Ok(0);
    }
    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
    let mut dirs: Vec<String> = Vec::new();
    collect(&ext4, EFI_TREE, "EFI", 0, &mut dirs, &mut files, disk)?;
    let vendors: Vec<String> = dirs
        .iter()
        .filter(|d| d.matches('/').count() == 1)
        .cloned()
        .collect();
    for name in ["grub.cfg", "grubenv"] {
        let source = format!("/boot/grub2/{name}");
        if ext4.exists(source.as_str()).unwrap_or(false) {
            let data = read_bounded(&ext4, &source, disk)?;
            for vendor in &vendors {
                let target = format!("{vendor}/{name}");
                if !files.iter().any(|(p, _)| p.eq_ignore_ascii_case(&target)) {
                    files.push((target, data.clone()));
                }
            }
        }
    }

    let w = Window::open(disk, esp)?;
    let fs = fatfs::FileSystem::new(w, fatfs::FsOptions::new())
        .map_err(|e| fail(disk, format!("the EFI system partition is not FAT: {e}")))?;
    let root_dir = fs.root_dir();
    for dir in &dirs {
        match root_dir.create_dir(dir) {
            Ok(_) => {}
            Err(e) => return Err(fail(disk, format!("creating {dir} on the ESP: {e}"))),
        }
    }
    for (path, data) in &files {
        let mut f = root_dir
            .create_file(path)
            .map_err(|e| fail(disk, format!("creating {path} on the ESP: {e}")))?;
        f.truncate()
            .map_err(|e| fail(disk, format!("truncating {path} on the ESP: {e}")))?;
        f.write_all(data).map_err(|e| {
            fail(
                disk,
                format!("writing {path} on the ESP (is it full?): {e}"),
            )
        })?;
    }
    drop(root_dir);
    fs.unmount()
        .map_err(|e| fail(disk, format!("closing the ESP: {e}")))?;
    tracing::info!(disk = %disk.display(), files = files.len(), "EFI assets copied from the image onto the ESP");
    Ok(files.len())
}

fn read_bounded(ext4: &Ext4, path: &str, disk: &Path) -> Result<Vec<u8>, ImageError> {
    let meta = ext4
        .metadata(path)
        .map_err(|e| fail(disk, format!("reading {path} in the image: {e}")))?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(fail(
            disk,
            format!(
                "{path} in the image is {} bytes; EFI assets larger than {MAX_FILE_BYTES} bytes are refused",
                meta.len()
            ),
        ));
    }
    ext4.read(path)
        .map_err(|e| fail(disk, format!("reading {path} in the image: {e}")))
}

/// Walks `src` (in the image) depth first; `dst` is the path on the ESP.
fn collect(
    ext4: &Ext4,
    src: &str,
    dst: &str,
    depth: usize,
    dirs: &mut Vec<String>,
    files: &mut Vec<(String, Vec<u8>)>,
    disk: &Path,
) -> Result<(), ImageError> {
    if depth > MAX_DEPTH {
        return Err(fail(disk, format!("{src} in the image nests too deep")));
    }
    dirs.push(dst.to_string());
    let entries = ext4
        .read_dir(src)
        .map_err(|e| fail(disk, format!("listing {src} in the image: {e}")))?;
    for entry in entries {
        let entry = entry.map_err(|e| fail(disk, format!("listing {src} in the image: {e}")))?;
        let name = entry.file_name();
        let name = name.as_str().map_err(|_| {
            fail(
                disk,
                format!("a file name under {src} in the image is not UTF-8"),
            )
        })?;
        if name == "." || name == ".." {
            continue;
        }
        let src_path = format!("{src}/{name}");
        let dst_path = format!("{dst}/{name}");
        let meta = ext4
            .symlink_metadata(src_path.as_str())
            .map_err(|e| fail(disk, format!("reading {src_path} in the image: {e}")))?;
        if meta.is_dir() {
            collect(ext4, &src_path, &dst_path, depth + 1, dirs, files, disk)?;
        } else if meta.is_symlink() {
            // FAT has no links; a link inside the EFI tree is unusual and
            // could point anywhere in the image: skipped, as noted.
            tracing::warn!(path = %src_path, "symbolic link in the image's EFI tree not copied");
        } else {
            let data = read_bounded(ext4, &src_path, disk)?;
            files.push((dst_path, data));
        }
    }
    Ok(())
}

/// Copies every file of the FAT file system on `src` (a partition of
/// `src_disk`) onto the FAT file system on `dst` (of `dst_disk`), keeping
/// the tree (IPA: `cp -a` between the two mounted ESPs).
pub fn copy_fat_tree(
    src_disk: &Path,
    src: &ExistingPartition,
    dst_disk: &Path,
    dst: &ExistingPartition,
) -> Result<usize, ImageError> {
    let from = fatfs::FileSystem::new(Window::open(src_disk, src)?, fatfs::FsOptions::new())
        .map_err(|e| fail(src_disk, format!("the image's ESP is not FAT: {e}")))?;
    let to = fatfs::FileSystem::new(Window::open(dst_disk, dst)?, fatfs::FsOptions::new())
        .map_err(|e| fail(dst_disk, format!("the RAID ESP is not FAT: {e}")))?;
    let mut copied = 0;
    let mut stack = vec![String::new()];
    while let Some(dir) = stack.pop() {
        if dir.matches('/').count() > MAX_DEPTH {
            return Err(fail(src_disk, format!("{dir} on the ESP nests too deep")));
        }
        let listing = if dir.is_empty() {
            from.root_dir()
        } else {
            from.root_dir()
                .open_dir(&dir)
                .map_err(|e| fail(src_disk, format!("{dir}: {e}")))?
        };
        for entry in listing.iter() {
            let entry = entry.map_err(|e| fail(src_disk, format!("{dir}: {e}")))?;
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            if entry.is_dir() {
                to.root_dir()
                    .create_dir(&path)
                    .map_err(|e| fail(dst_disk, format!("{path}: {e}")))?;
                stack.push(path);
                continue;
            }
            if entry.len() > MAX_FILE_BYTES {
                return Err(fail(
                    src_disk,
                    format!("{path} on the ESP is larger than {MAX_FILE_BYTES} bytes"),
                ));
            }
            let mut data = Vec::new();
            entry
                .to_file()
                .read_to_end(&mut data)
                .map_err(|e| fail(src_disk, format!("{path}: {e}")))?;
            let mut out = to
                .root_dir()
                .create_file(&path)
                .map_err(|e| fail(dst_disk, format!("{path}: {e}")))?;
            out.truncate()
                .map_err(|e| fail(dst_disk, format!("{path}: {e}")))?;
            out.write_all(&data)
                .map_err(|e| fail(dst_disk, format!("{path} (is the RAID ESP full?): {e}")))?;
            copied += 1;
        }
    }
    to.unmount()
        .map_err(|e| fail(dst_disk, format!("closing the RAID ESP: {e}")))?;
    Ok(copied)
}

/// Makes the file system on `part` unrecognisable (its boot sector
/// zeroed), as `wipefs -a` would.
pub fn erase_signature(disk: &Path, part: &ExistingPartition) -> Result<(), ImageError> {
    let mut w = Window::open(disk, part)?;
    w.write_all(&[0u8; 4096])
        .and_then(|()| w.flush())
        .map_err(|e| fail(disk, format!("erasing the old ESP's signature: {e}")))
}
