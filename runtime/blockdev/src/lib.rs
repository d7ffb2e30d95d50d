//! The Linux block-device ioctls the agent uses, written once: the host's
//! `disks` capability and the image pipeline both call them.
//!
//! Request numbers are the `_IO(0x12, n)` values of `linux/fs.h`. Every
//! function takes an open descriptor; whether a path is a block device at
//! all is the caller's question ([`is_block_device`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

/// `BLKRRPART` = `_IO(0x12, 95)`: re-read the partition table.
const BLKRRPART: libc::c_ulong = 0x125f;
/// `BLKDISCARD` = `_IO(0x12, 119)`: discard a byte range.
const BLKDISCARD: libc::c_ulong = 0x1277;
/// `BLKZEROOUT` = `_IO(0x12, 127)`: zero a byte range, letting the device
/// use WRITE ZEROES / UNMAP when it can.
const BLKZEROOUT: libc::c_ulong = 0x127f;

/// True when `path` is a block device (a real disk, not a file standing in
/// for one).
pub fn is_block_device(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// `ioctl(fd, request, &[offset, len])`, the argument shape of
/// `BLKDISCARD` and `BLKZEROOUT`.
fn range_ioctl(fd: impl AsFd, request: libc::c_ulong, offset: u64, len: u64) -> io::Result<()> {
    let range: [u64; 2] = [offset, len];
    // SAFETY: both requests read a `u64[2]` (start, length) through the
    // pointer, which points at a live local array for the whole call.
    // `as _`: the request is a c_ulong on glibc and a c_int on musl.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), request as _, range.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Makes `[offset, offset + len)` read back zeroes (`BLKZEROOUT`). Both must
/// be multiples of the logical sector size.
pub fn zero_out(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    range_ioctl(fd, BLKZEROOUT, offset, len)
}

/// Discards `[offset, offset + len)` (`BLKDISCARD`). `EOPNOTSUPP` when the
/// device cannot.
pub fn discard(fd: impl AsFd, offset: u64, len: u64) -> io::Result<()> {
    range_ioctl(fd, BLKDISCARD, offset, len)
}

/// Asks the kernel to re-read the partition table (`BLKRRPART`, what
/// `partprobe` does). `EBUSY` when a partition is in use.
pub fn reread_partitions(fd: impl AsFd) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument; the descriptor is open for the
    // whole call. `as _`: see `range_ioctl`.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), BLKRRPART as _, 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// [`reread_partitions`], retried while udev briefly holds the device
/// after a write (`EBUSY`), up to `attempts` times 300 ms apart.
pub fn reread_partitions_retrying(fd: impl AsFd, attempts: u32) -> io::Result<()> {
    let fd = fd.as_fd();
    let mut last = io::Error::from_raw_os_error(libc::EBUSY);
    for _ in 0..attempts.max(1) {
        match reread_partitions(fd) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => last = e,
            Err(e) => return Err(e),
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    Err(last)
}

/// Size in bytes (`lseek(SEEK_END)`, which is `BLKGETSIZE64` for a block
/// device and the length for a file).
pub fn size(fd: impl AsFd) -> io::Result<u64> {
    Ok(rustix::fs::seek(fd, rustix::fs::SeekFrom::End(0))?)
}

/// Logical sector size (`BLKSSZGET`).
pub fn logical_sector_size(fd: impl AsFd) -> io::Result<u32> {
    Ok(rustix::fs::ioctl_blksszget(fd)?)
}

/// Physical sector size (`BLKPBSZGET`).
pub fn physical_sector_size(fd: impl AsFd) -> io::Result<u32> {
    Ok(rustix::fs::ioctl_blkpbszget(fd)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_not_block_devices_and_refuse_block_ioctls() {
        let f = tempfile::tempfile().expect("file");
        f.set_len(4096).expect("len");
        assert_eq!(size(&f).expect("size"), 4096);
        let e = reread_partitions(&f).expect_err("not a block device");
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
        assert!(zero_out(&f, 0, 512).is_err());
        assert!(logical_sector_size(&f).is_err());
        let dir = tempfile::tempdir().expect("dir");
        assert!(!is_block_device(dir.path()));
    }
}
