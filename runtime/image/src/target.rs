//! The write side: aligned buffers, the target device (O_DIRECT when it can,
//! write-zeroes for runs of zeros) and [`GuardedTarget`], the single place
//! where the first-MiB rule lives.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::error::ImageError;

/// Alignment for O_DIRECT buffers, offsets and lengths. 4 KiB satisfies both
/// 512-byte and 4Kn devices.
pub(crate) const ALIGN: usize = 4096;

/// Size of the region held back until the digest verifies.
pub const HOLD_BYTES: usize = 1 << 20;

/// A heap buffer whose usable region starts on an [`ALIGN`] boundary.
///
/// Over-allocating a `Vec` and slicing at the aligned offset avoids unsafe
/// allocation code; the `Vec` is never grown, so the region never moves.
pub(crate) struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
    cap: usize,
    len: usize,
}

impl AlignedBuf {
    pub(crate) fn new(cap: usize) -> AlignedBuf {
        let raw = vec![0u8; cap + ALIGN];
        let off = raw.as_ptr().align_offset(ALIGN);
        AlignedBuf {
            raw,
            off,
            cap,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == self.cap
    }

    pub(crate) fn clear(&mut self) {
        self.len = 0;
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.raw[self.off..self.off + self.len]
    }

    /// Appends as much of `data` as fits; returns the number of bytes taken.
    pub(crate) fn fill_from(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.cap - self.len);
        let start = self.off + self.len;
        self.raw[start..start + n].copy_from_slice(&data[..n]);
        self.len += n;
        n
    }

    /// The unfilled tail, for reads straight into the buffer.
    pub(crate) fn spare_mut(&mut self) -> &mut [u8] {
        let start = self.off + self.len;
        &mut self.raw[start..self.off + self.cap]
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len = (self.len + n).min(self.cap);
    }
}

/// An open deploy target: a block device or a regular file standing in for one.
pub(crate) struct Device {
    path: PathBuf,
    buffered: File,
    /// Same file opened with O_DIRECT, when the filesystem/device supports it.
    direct: Option<File>,
    is_block: bool,
    /// Bytes issued as write-zeroes instead of data.
    pub(crate) zeroed: u64,
    punch_unsupported: bool,
    /// A partition of the disk (`(byte offset, length)`): every offset is
    /// relative to it and nothing outside it is touched. Partitions are
    /// written through the whole disk rather than `/dev/sdXN` so the same
    /// code serves a simulated disk (a file without partition nodes) and a
    /// real one, with no wait for udev to create the node.
    window: Option<(u64, u64)>,
}

impl Device {
    /// Opens an existing target for writing. Block devices are opened with
    /// O_EXCL (fails if mounted or otherwise claimed).
    pub(crate) fn open(path: &Path, allow_direct: bool) -> Result<Device, ImageError> {
        let meta = std::fs::metadata(path).map_err(|e| ImageError::write(path, "stat", e))?;
        let is_block = meta.file_type().is_block_device();
        if !is_block && !meta.is_file() {
            return Err(ImageError::write(
                path,
                "open",
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "target is neither a block device nor a regular file",
                ),
            ));
        }
        let excl = if is_block { libc::O_EXCL } else { 0 };
        let buffered = OpenOptions::new()
            .write(true)
            .custom_flags(excl)
            .open(path)
            .map_err(|e| ImageError::write(path, "open", e))?;
        Ok(Device::with_file(path, buffered, is_block, allow_direct))
    }

    /// Opens the byte range `[offset, offset + len)` of `path` (a partition)
    /// as the target; offsets given to the device are relative to it.
    pub(crate) fn open_window(
        path: &Path,
        allow_direct: bool,
        offset: u64,
        len: u64,
    ) -> Result<Device, ImageError> {
        let mut dev = Device::open(path, allow_direct)?;
        let size = dev
            .size_of_file()
            .map_err(|e| ImageError::write(path, "size", e))?;
        if offset.checked_add(len).is_none_or(|end| end > size) {
            return Err(ImageError::write(
                path,
                "open partition",
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("partition at byte {offset} (+{len}) lies beyond the end of the disk ({size} bytes)"),
                ),
            ));
        }
        dev.window = Some((offset, len));
        Ok(dev)
    }

    /// Creates (truncating) a regular file, e.g. the download work file.
    pub(crate) fn create(path: &Path, allow_direct: bool) -> Result<Device, ImageError> {
        let buffered = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| ImageError::write(path, "create", e))?;
        Ok(Device::with_file(path, buffered, false, allow_direct))
    }

    fn with_file(path: &Path, buffered: File, is_block: bool, allow_direct: bool) -> Device {
        // O_DIRECT is refused at open time (EINVAL) by filesystems such as
        // tmpfs; then everything goes through the page cache + fdatasync.
        // O_EXCL is not repeated: the buffered descriptor already holds the claim.
        let direct = if allow_direct {
            OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_DIRECT)
                .open(path)
                .ok()
        } else {
            None
        };
        tracing::debug!(path = %path.display(), is_block, direct = direct.is_some(), "opened target");
        Device {
            path: path.to_path_buf(),
            buffered,
            direct,
            is_block,
            zeroed: 0,
            punch_unsupported: false,
            window: None,
        }
    }

    /// Checks that `[offset, offset+len)` stays inside the window and
    /// returns the absolute offset.
    fn absolute(&self, offset: u64, len: u64) -> io::Result<u64> {
        match self.window {
            None => Ok(offset),
            Some((base, size)) => {
                if offset.checked_add(len).is_none_or(|end| end > size) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("write at {offset} (+{len}) beyond the end of the partition ({size} bytes)"),
                    ));
                }
                Ok(base + offset)
            }
        }
    }

    fn size_of_file(&self) -> io::Result<u64> {
        use std::io::Seek;
        let mut f = &self.buffered;
        f.seek(io::SeekFrom::End(0))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn is_block(&self) -> bool {
        self.is_block
    }

    pub(crate) fn supports_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Size of a block device (or current length of a file), or of the
    /// partition for a window.
    pub(crate) fn size(&self) -> io::Result<u64> {
        match self.window {
            Some((_, len)) => Ok(len),
            None => self.size_of_file(),
        }
    }

    /// True for a partition window (its size is fixed, even on a file).
    pub(crate) fn is_window(&self) -> bool {
        self.window.is_some()
    }

    pub(crate) fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let offset = self.absolute(offset, data.len() as u64)?;
        self.raw_write_at(offset, data)
    }

    fn raw_write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let aligned = offset.is_multiple_of(ALIGN as u64)
            && data.len().is_multiple_of(ALIGN)
            && (data.as_ptr() as usize).is_multiple_of(ALIGN);
        if let (true, Some(direct)) = (aligned, &self.direct) {
            match direct.write_all_at(data, offset) {
                Ok(()) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    tracing::warn!(path = %self.path.display(), "O_DIRECT write refused; using buffered I/O");
                    self.direct = None;
                }
                Err(e) => return Err(e),
            }
        }
        self.buffered.write_all_at(data, offset)
    }

    /// Makes `[offset, offset+len)` read as zeros without transferring data:
    /// `BLKZEROOUT` on block devices, a punched hole on files. The target may
    /// hold an old image, so "skip" is never an option here.
    pub(crate) fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let offset = self.absolute(offset, len)?;
        let fd = self.buffered.as_raw_fd();
        let res = if self.is_block {
            if !offset.is_multiple_of(512) || !len.is_multiple_of(512) {
                Err(io::Error::from_raw_os_error(libc::EINVAL))
            } else {
                blockdev::zero_out(&self.buffered, offset, len)
            }
        } else if self.punch_unsupported {
            Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP))
        } else {
            let (Ok(off), Ok(l)) = (i64::try_from(offset), i64::try_from(len)) else {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            };
            // SAFETY: plain syscall on an owned, open descriptor.
            let rc = unsafe {
                libc::fallocate(
                    fd,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    off,
                    l,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                let e = io::Error::last_os_error();
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS)
                ) {
                    self.punch_unsupported = true;
                }
                Err(e)
            }
        };
        match res {
            Ok(()) => {
                self.zeroed += len;
                Ok(())
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) | Some(libc::EINVAL)
                ) =>
            {
                // Fallback: write real zeros.
                tracing::debug!(error = %e, "write-zeroes unsupported; writing zeros");
                let mut zeros = AlignedBuf::new(HOLD_BYTES);
                zeros.advance(HOLD_BYTES);
                let mut done = 0u64;
                while done < len {
                    let n = (len - done).min(HOLD_BYTES as u64) as usize;
                    self.raw_write_at(offset + done, &zeros.as_slice()[..n])?;
                    done += n as u64;
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Regular files: make sure the file is at least `len` long (a trailing
    /// zero run was punched, not written, and must still exist).
    pub(crate) fn ensure_len(&mut self, len: u64) -> io::Result<()> {
        if !self.is_block && self.window.is_none() && self.buffered.metadata()?.len() < len {
            self.buffered.set_len(len)?;
        }
        Ok(())
    }

    pub(crate) fn sync(&self) -> io::Result<()> {
        self.buffered.sync_data()
    }
}

/// The first-MiB rule, in one place.
///
/// Everything written into `[0, HOLD_BYTES)` is kept in memory and reaches the
/// device only in [`GuardedTarget::commit`], which the caller invokes after
/// the digest verified; commit first syncs the rest of the image, then writes
/// and syncs the first MiB. The region is zeroed when the guard is created.
/// So an aborted download, a checksum mismatch or a crash at any moment leaves
/// a disk without partition table / boot sector / GPT header: firmware will
/// never boot a half-written or unverified image, and no stale boot sector of
/// a previous image survives next to new data.
pub(crate) struct GuardedTarget {
    dev: Device,
    held: Option<AlignedBuf>,
    /// Highest offset (exclusive) written in the held region.
    held_len: usize,
}

impl GuardedTarget {
    /// `hold = false` is for work files that are never booted.
    pub(crate) fn new(mut dev: Device, hold: bool) -> Result<GuardedTarget, ImageError> {
        let held = if hold {
            dev.zero_range(0, HOLD_BYTES as u64)
                .and_then(|()| dev.sync())
                .map_err(|e| ImageError::write(dev.path(), "zero first MiB", e))?;
            dev.zeroed = 0;
            let mut b = AlignedBuf::new(HOLD_BYTES);
            b.advance(HOLD_BYTES);
            Some(b)
        } else {
            None
        };
        Ok(GuardedTarget {
            dev,
            held,
            held_len: 0,
        })
    }

    pub(crate) fn device(&self) -> &Device {
        &self.dev
    }

    /// Splits off the part of `[offset, offset+len)` below the hold boundary.
    fn held_part(&self, offset: u64, len: usize) -> usize {
        match self.held {
            Some(_) if offset < HOLD_BYTES as u64 => (HOLD_BYTES - offset as usize).min(len),
            _ => 0,
        }
    }

    pub(crate) fn write_at(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let n = self.held_part(offset, data.len());
        if n > 0 {
            let start = offset as usize;
            if let Some(h) = self.held.as_mut() {
                h.raw[h.off + start..h.off + start + n].copy_from_slice(&data[..n]);
            }
            self.held_len = self.held_len.max(start + n);
        }
        if n < data.len() {
            self.dev.write_at(offset + n as u64, &data[n..])?;
        }
        Ok(())
    }

    pub(crate) fn zero_range(&mut self, offset: u64, len: u64) -> io::Result<()> {
        let n = self.held_part(offset, usize::try_from(len).unwrap_or(usize::MAX));
        if n > 0 {
            let start = offset as usize;
            if let Some(h) = self.held.as_mut() {
                h.raw[h.off + start..h.off + start + n].fill(0);
            }
            self.held_len = self.held_len.max(start + n);
        }
        self.dev.zero_range(offset + n as u64, len - n as u64)
    }

    /// Call only after verification: syncs the body, then writes and syncs
    /// the held first MiB. `total` is the image length.
    pub(crate) fn commit(mut self, total: u64) -> Result<Device, ImageError> {
        let path = self.dev.path().to_path_buf();
        self.dev
            .ensure_len(total)
            .map_err(|e| ImageError::write(&path, "extend", e))?;
        self.dev
            .sync()
            .map_err(|e| ImageError::write(&path, "fdatasync", e))?;
        if let Some(h) = self.held.take() {
            let n = self
                .held_len
                .min(usize::try_from(total).unwrap_or(usize::MAX));
            let data = &h.as_slice()[..n];
            // Write the aligned prefix through O_DIRECT and any tail buffered.
            let aligned = n - n % ALIGN;
            self.dev
                .write_at(0, &data[..aligned])
                .and_then(|()| self.dev.write_at(aligned as u64, &data[aligned..]))
                .and_then(|()| self.dev.sync())
                .map_err(|e| ImageError::write(&path, "write first MiB", e))?;
        }
        Ok(self.dev)
    }
}

/// True when every byte is zero. Folds 4 KiB blocks without early exit
/// inside a block so the compiler vectorizes the inner loop.
pub(crate) fn is_zero(data: &[u8]) -> bool {
    data.chunks(ALIGN)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buf_is_aligned_and_fills() {
        let mut b = AlignedBuf::new(8192);
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert_eq!(b.fill_from(&[1u8; 5000]), 5000);
        assert_eq!(b.fill_from(&[2u8; 5000]), 3192);
        assert!(b.is_full());
        assert_eq!(b.as_slice()[4999], 1);
        assert_eq!(b.as_slice()[5000], 2);
    }

    #[test]
    fn zero_detection() {
        let mut v = vec![0u8; 1 << 20];
        assert!(is_zero(&v));
        v[777_777] = 1;
        assert!(!is_zero(&v));
        assert!(is_zero(&[]));
    }

    #[test]
    fn guard_holds_first_mib_until_commit() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("disk");
        std::fs::write(&p, vec![0xAAu8; 3 << 20]).expect("old data");
        let dev = Device::open(&p, true).expect("open");
        let mut g = GuardedTarget::new(dev, true).expect("guard");
        g.write_at(0, &vec![0x11u8; 2 << 20]).expect("write");
        let now = std::fs::read(&p).expect("read");
        assert!(
            now[..HOLD_BYTES].iter().all(|&b| b == 0),
            "first MiB zeroed, not yet written"
        );
        assert!(now[HOLD_BYTES..2 << 20].iter().all(|&b| b == 0x11));
        assert!(now[2 << 20..].iter().all(|&b| b == 0xAA));
        drop(g.commit(2 << 20).expect("commit"));
        let now = std::fs::read(&p).expect("read");
        assert!(now[..2 << 20].iter().all(|&b| b == 0x11));
    }
}
