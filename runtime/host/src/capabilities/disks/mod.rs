//! `disks`: block devices by name, mapped to `<root>/dev/<name>` (regular
//! files in tests, real devices when the root is `/`).
//!
//! Every I/O runs on the blocking pool, so a slow or hung device holds a
//! pool thread, never the executor, and the call's deadline still ends the
//! call. A call holds at most `Limits::max_open_disks` disks at once.

use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::sync::Arc;

use cap_std::fs::OpenOptions;
use rustix::fs::FallocateFlags;
use wasmtime::component::Resource;

use super::faults::WriteFault;
use super::{erase, is_escape, DisksView};
use crate::bindings::latest::ironic::hardware::disks::{self, Access, DiskError, EraseJob};
use crate::policy::Need;
use crate::text::sanitize;

/// Largest single read.
pub const MAX_READ: u32 = 16 * 1024 * 1024;

/// An open disk, held in the call's resource table. Cheap to clone: the
/// blocking pool and the erase workers get their own handle.
#[derive(Debug, Clone)]
pub struct DiskHandle(Arc<Disk>);

#[derive(Debug)]
/// The device behind a [`DiskHandle`].
pub struct Disk {
    name: String,
    file: File,
    writable: bool,
    block: bool,
    size: u64,
    logical: u32,
    physical: u32,
    /// Injected by a simulated machine's faults file.
    fault: Option<WriteFault>,
}

impl std::ops::Deref for DiskHandle {
    type Target = Disk;
    fn deref(&self) -> &Disk {
        &self.0
    }
}

/// Check a device name: `/dev/` + safe characters, no `..` or empty parts.
pub fn validate_name(name: &str) -> Result<&str, String> {
    let shown = || sanitize(name, 256);
    let rest = name
        .strip_prefix("/dev/")
        .ok_or_else(|| format!("{:?}: a disk name starts with /dev/", shown()))?;
    let safe = rest
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '/'));
    let parts_ok = rest
        .split('/')
        .all(|p| !p.is_empty() && p != "." && p != "..");
    if rest.is_empty() || !safe || !parts_ok || name.len() > 256 {
        return Err(format!("{:?}: invalid disk name", shown()));
    }
    Ok(rest)
}

fn sector_sizes_from_sysfs(root: &cap_std::fs::Dir, rest: &str) -> (u32, u32) {
    let base = rest.rsplit('/').next().unwrap_or(rest);
    let read = |file: &str| -> Option<u32> {
        let path = format!("sys/class/block/{base}/queue/{file}");
        let text = root.read_to_string(path).ok()?;
        text.trim().parse().ok()
    };
    (
        read("logical_block_size").unwrap_or(512),
        read("physical_block_size").unwrap_or(512),
    )
}

/// Runs `op` on the blocking pool with its own handle.
async fn blocking<T: Send + 'static>(
    disk: &DiskHandle,
    op: impl FnOnce(&DiskHandle) -> Result<T, DiskError> + Send + 'static,
) -> Result<T, DiskError> {
    let d = disk.clone();
    match tokio::task::spawn_blocking(move || op(&d)).await {
        Ok(result) => result,
        Err(e) => Err(disk.io("I/O worker", e)),
    }
}

impl DisksView<'_> {
    fn disk(&self, handle: &Resource<DiskHandle>) -> Result<DiskHandle, DiskError> {
        self.table
            .get(handle)
            .cloned()
            .map_err(|e| DiskError::Io(format!("invalid disk handle: {e}")))
    }

    fn open_disk(&mut self, name: &str, access: Access) -> Result<DiskHandle, DiskError> {
        let rest = validate_name(name).map_err(DiskError::NotFound)?;
        let need = match access {
            Access::ReadOnly => Need::DiskRead(name),
            Access::ReadWrite => Need::DiskWrite(name),
        };
        self.manager.policy.check(need).map_err(DiskError::Denied)?;
        let cap = self.env.limits.max_open_disks;
        if *self.open >= cap {
            tracing::warn!(manager = %self.manager.name, cap, "open disk limit reached");
            return Err(DiskError::Io(format!(
                "{name}: this call already holds {cap} open disks (the limit); drop some first"
            )));
        }
        let writable = access == Access::ReadWrite;
        let mut options = OpenOptions::new();
        options.read(true).write(writable);
        let file = self
            .env
            .root
            .open_with(format!("dev/{rest}"), &options)
            .map_err(|e| {
                if is_escape(&e) {
                    DiskError::Denied(format!("{name}: resolves outside the hardware root"))
                } else if e.kind() == std::io::ErrorKind::NotFound {
                    DiskError::NotFound(name.to_string())
                } else {
                    DiskError::Io(format!("{name}: open: {e}"))
                }
            })?
            .into_std();
        let meta = file
            .metadata()
            .map_err(|e| DiskError::Io(format!("{name}: stat: {e}")))?;
        let block = meta.file_type().is_block_device();
        let (size, logical, physical) = if block {
            let size =
                blockdev::size(&file).map_err(|e| DiskError::Io(format!("{name}: size: {e}")))?;
            let logical = blockdev::logical_sector_size(&file).unwrap_or(512);
            let physical = blockdev::physical_sector_size(&file).unwrap_or(logical);
            (size, logical, physical)
        } else if meta.is_file() {
            let (l, p) = sector_sizes_from_sysfs(&self.env.root, rest);
            (meta.len(), l, p)
        } else {
            return Err(DiskError::Unsupported(format!(
                "{name}: not a block device or disk image"
            )));
        };
        let fault = self.write_fault(name)?;
        tracing::debug!(manager = %self.manager.name, disk = name, writable, size, ?fault, "opened disk");
        Ok(DiskHandle(Arc::new(Disk {
            name: name.to_string(),
            file,
            writable,
            block,
            size,
            logical,
            physical,
            fault,
        })))
    }

    /// The simulated machine's write fault for `name`, if any (the real
    /// machine has no faults file).
    fn write_fault(&self, name: &str) -> Result<Option<WriteFault>, DiskError> {
        let Some(file) = &self.env.faults_file else {
            return Ok(None);
        };
        match std::fs::read_to_string(file) {
            Ok(text) => super::faults::write_fault(&text, name)
                .map_err(|e| DiskError::Io(format!("{name}: {e}"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DiskError::Io(format!(
                "{name}: reading {}: {e}",
                file.display()
            ))),
        }
    }
}

impl Disk {
    fn check_range(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(DiskError::OutOfRange(format!(
                "{}: range {offset}+{len} is outside the device ({} bytes)",
                self.name, self.size
            ))),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn check_writable(&self) -> Result<(), DiskError> {
        if self.writable {
            Ok(())
        } else {
            Err(DiskError::Denied(format!(
                "{}: opened read-only",
                self.name
            )))
        }
    }

    fn check_aligned(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        let sector = u64::from(self.logical.max(1));
        if self.block && (!offset.is_multiple_of(sector) || !len.is_multiple_of(sector)) {
            return Err(DiskError::OutOfRange(format!(
                "{}: range {offset}+{len} is not aligned to {sector}-byte sectors",
                self.name
            )));
        }
        Ok(())
    }

    pub(crate) fn io(&self, what: &str, e: impl std::fmt::Display) -> DiskError {
        DiskError::Io(format!("{}: {what}: {e}", self.name))
    }

    fn zero_fill(&self, offset: u64, len: u64) -> std::io::Result<()> {
        let chunk = vec![0u8; 1024 * 1024];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.file.write_all_at(&chunk[..n], offset + done)?;
            done += n as u64;
        }
        Ok(())
    }

    /// `write_all_at`, failing past an injected fault (after writing what
    /// comes before it, as a failing device would).
    pub(crate) fn write_at(&self, data: &[u8], offset: u64) -> std::io::Result<()> {
        if let Some(fault) = self.fault {
            if let Some(allowed) = fault.allowed(offset, data.len() as u64) {
                // What a failing device does: the part before the fault
                // lands (or not: the fault is the error either way).
                let _ = self.file.write_all_at(&data[..allowed as usize], offset);
                return Err(fault.error());
            }
        }
        self.file.write_all_at(data, offset)
    }

    /// Make `[offset, offset + len)` read back zeroes, cheapest first.
    /// Range and alignment are the caller's to check.
    pub(crate) fn zero_range(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        if let Some(fault) = self.fault {
            if let Some(allowed) = fault.allowed(offset, len) {
                if allowed > 0 {
                    self.zero_range_unchecked(offset, allowed)?;
                }
                return Err(self.io("write zeroes", fault.error()));
            }
        }
        self.zero_range_unchecked(offset, len)
    }

    fn zero_range_unchecked(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        if len == 0 {
            return Ok(());
        }
        if self.block {
            return blockdev::zero_out(&self.file, offset, len)
                .map_err(|e| self.io("BLKZEROOUT", e));
        }
        // A disk image file: punch a hole first. FALLOC_FL_ZERO_RANGE would
        // also read back zeroes, but on ext4/xfs it allocates (unwritten)
        // extents, so a full erase of a sparse 16 GiB image would take
        // 16 GiB of the host's disk (fallocate(2)).
        let punch = FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE;
        if rustix::fs::fallocate(&self.file, punch, offset, len).is_ok() {
            return Ok(());
        }
        if rustix::fs::fallocate(&self.file, FallocateFlags::ZERO_RANGE, offset, len).is_ok() {
            return Ok(());
        }
        self.zero_fill(offset, len)
            .map_err(|e| self.io("write zeroes", e))
    }

    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    pub(crate) fn sync(&self) -> Result<(), DiskError> {
        self.file.sync_data().map_err(|e| self.io("flush", e))
    }

    fn read(&self, offset: u64, len: u32) -> Result<Vec<u8>, DiskError> {
        if len > MAX_READ {
            return Err(DiskError::OutOfRange(format!(
                "{}: read of {len} bytes exceeds 16 MiB",
                self.name
            )));
        }
        // Reads past the end are clipped, like read(2).
        let len = u64::from(len).min(self.size.saturating_sub(offset));
        self.check_range(offset, len)?;
        let mut buf = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| self.io("read", e))?;
        Ok(buf)
    }

    fn discard(&self, offset: u64, len: u64) -> Result<(), DiskError> {
        self.check_writable()?;
        self.check_range(offset, len)?;
        self.check_aligned(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        let result = if self.block {
            blockdev::discard(&self.file, offset, len)
        } else {
            rustix::fs::fallocate(
                &self.file,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                offset,
                len,
            )
            .map_err(std::io::Error::from)
        };
        result.map_err(|e| match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) | Some(libc::ENOTTY) => {
                DiskError::Unsupported(format!("{}: discard is not supported", self.name))
            }
            _ => self.io("discard", e),
        })
    }

    fn reread_partitions(&self) -> Result<(), DiskError> {
        self.check_writable()?;
        if !self.block {
            return Ok(());
        }
        match blockdev::reread_partitions(&self.file) {
            Ok(()) => Ok(()),
            Err(e) => match e.raw_os_error() {
                Some(libc::EINVAL) | Some(libc::ENOTTY) => Err(DiskError::Unsupported(format!(
                    "{}: the device has no partition table support",
                    self.name
                ))),
                Some(libc::EBUSY) => Err(DiskError::Io(format!(
                    "{}: re-reading the partition table: a partition is in use ({e})",
                    self.name
                ))),
                _ => Err(self.io("re-reading the partition table (BLKRRPART)", e)),
            },
        }
    }
}

impl disks::Host for DisksView<'_> {
    async fn erase_many(
        &mut self,
        jobs: Vec<EraseJob>,
        concurrency: u32,
    ) -> wasmtime::Result<Vec<Result<(), DiskError>>> {
        let manager = self.manager.name.clone();
        let mut results: Vec<Option<Result<(), DiskError>>> = Vec::with_capacity(jobs.len());
        let mut runnable = Vec::new();
        let mut names = std::collections::BTreeSet::new();
        for (index, job) in jobs.iter().enumerate() {
            let disk = match self.disk(&job.disk) {
                Ok(d) => d,
                Err(e) => {
                    results.push(Some(Err(e)));
                    continue;
                }
            };
            if !names.insert(disk.name.clone()) {
                results.push(Some(Err(DiskError::Io(format!(
                    "{}: listed in more than one erase job",
                    disk.name
                )))));
                continue;
            }
            results.push(None);
            runnable.push((
                index,
                erase::Job {
                    disk,
                    random_passes: job.random_passes,
                    zeroes: job.zeroes,
                },
            ));
        }
        let progress = self
            .manager
            .policy
            .check(Need::Progress)
            .is_ok()
            .then(|| self.progress.clone());
        // The guest's concurrency is a wish; the host's threads are capped.
        let max = self.env.limits.max_erase_threads;
        let concurrency = concurrency.clamp(1, max.max(1));
        let (indices, jobs): (Vec<usize>, Vec<erase::Job>) = runnable.into_iter().unzip();
        tracing::info!(manager, disks = jobs.len(), concurrency, "erasing disks");
        let deadline = self.deadline;
        let outcome = tokio::task::spawn_blocking(move || {
            erase::run(&jobs, concurrency, deadline, progress.as_deref())
        })
        .await
        .map_err(|e| wasmtime::Error::msg(format!("erase workers failed: {e}")))?;
        tracing::debug!(manager, peak = outcome.peak, "erase jobs finished");
        for (index, result) in indices.into_iter().zip(outcome.results) {
            results[index] = Some(result);
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(DiskError::Io("erase job was not run".into()))))
            .inspect(|r| {
                if let Err(e) = r {
                    tracing::warn!(manager, "erase job failed: {e:?}");
                }
            })
            .collect())
    }
}

impl disks::HostDisk for DisksView<'_> {
    async fn open(
        &mut self,
        name: String,
        access: Access,
    ) -> wasmtime::Result<Result<Resource<DiskHandle>, DiskError>> {
        let handle = match self.open_disk(&name, access) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        Ok(match self.table.push(handle) {
            Ok(resource) => {
                *self.open += 1;
                Ok(resource)
            }
            Err(e) => Err(DiskError::Io(format!(
                "{}: too many open disks: {e}",
                sanitize(&name, 256)
            ))),
        })
    }

    async fn name(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<String> {
        Ok(self.disk(&disk).map(|d| d.name.clone()).unwrap_or_default())
    }

    async fn size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u64> {
        Ok(self.disk(&disk).map(|d| d.size).unwrap_or(0))
    }

    async fn logical_sector_size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u32> {
        Ok(self.disk(&disk).map(|d| d.logical).unwrap_or(512))
    }

    async fn physical_sector_size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u32> {
        Ok(self.disk(&disk).map(|d| d.physical).unwrap_or(512))
    }

    async fn read(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, DiskError>> {
        let d = match self.disk(&disk) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(&d, move |d| d.read(offset, len)).await)
    }

    async fn write(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), DiskError>> {
        let d = match self.disk(&disk) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(&d, move |d| {
            d.check_writable()?;
            d.check_range(offset, data.len() as u64)?;
            d.write_at(&data, offset).map_err(|e| d.io("write", e))
        })
        .await)
    }

    async fn write_zeroes(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> wasmtime::Result<Result<(), DiskError>> {
        let d = match self.disk(&disk) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(&d, move |d| {
            d.check_writable()?;
            d.check_range(offset, len)?;
            d.check_aligned(offset, len)?;
            d.zero_range(offset, len)
        })
        .await)
    }

    async fn discard(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> wasmtime::Result<Result<(), DiskError>> {
        let d = match self.disk(&disk) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(&d, move |d| d.discard(offset, len)).await)
    }

    async fn flush(
        &mut self,
        disk: Resource<DiskHandle>,
    ) -> wasmtime::Result<Result<(), DiskError>> {
        let d = match self.disk(&disk) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        Ok(blocking(&d, |d| d.sync()).await)
    }

    async fn reread_partitions(
        &mut self,
        disk: Resource<DiskHandle>,
    ) -> wasmtime::Result<Result<(), DiskError>> {
        let d = match self.disk(&disk) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let result = blocking(&d, |d| d.reread_partitions()).await;
        if result.is_ok() {
            tracing::debug!(manager = %self.manager.name, disk = %d.name, "partition table re-read");
        }
        Ok(result)
    }

    async fn drop(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<()> {
        self.table.delete(disk)?;
        *self.open = self.open.saturating_sub(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
