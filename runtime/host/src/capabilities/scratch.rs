//! `scratch`: a private directory per call (or per manager, when the grant
//! says it lasts), made on first use, capped in size, wiped when its owner
//! ends. The manager reads and writes it by plain file name; programs get
//! its absolute path.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{is_plain_name, ScratchView};
use crate::bindings::latest::ironic::hardware::scratch::{self, ScratchError};
use crate::policy::Need;
use crate::text::sanitize;

/// Largest single read.
const MAX_READ: u32 = 16 * 1024 * 1024;

/// A scratch directory and its size cap; removed when dropped.
#[derive(Debug)]
pub(crate) struct ScratchSpace {
    dir: PathBuf,
    cap: u64,
    /// Serialises size accounting of concurrent writers (fetch and the
    /// manager's own writes).
    lock: Mutex<()>,
}

impl ScratchSpace {
    /// A new, empty directory under `parent`, named after `manager`.
    pub(crate) fn create(parent: &Path, manager: &str, cap: u64) -> std::io::Result<ScratchSpace> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        std::fs::create_dir_all(parent)?;
        let dir = parent.join(format!("{manager}-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(ScratchSpace {
            dir,
            cap,
            lock: Mutex::new(()),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The path of file `name`, checked.
    pub(crate) fn file(&self, name: &str) -> Result<PathBuf, ScratchError> {
        if !is_plain_name(name) {
            return Err(ScratchError::InvalidName(format!(
                "{:?}: a scratch file name is one path component of letters, digits, `.`, `_`, `-`",
                sanitize(name, 128)
            )));
        }
        Ok(self.dir.join(name))
    }

    /// Bytes used by the files now.
    pub(crate) fn used(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Room left, in bytes, for growing file `name` from its current size.
    pub(crate) fn room_for(&self, name: &Path) -> u64 {
        let own = std::fs::metadata(name).map(|m| m.len()).unwrap_or(0);
        self.cap.saturating_sub(self.used().saturating_sub(own))
    }

    fn write(&self, name: &str, offset: u64, data: &[u8]) -> Result<(), ScratchError> {
        let path = self.file(name)?;
        let _accounting = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let end = offset.saturating_add(data.len() as u64);
        let current = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let after = self.used() - current.min(self.used()) + end.max(current);
        if after > self.cap {
            return Err(ScratchError::Full(format!(
                "{name}: writing up to byte {end} would take the scratch space past its {} bytes",
                self.cap
            )));
        }
        let io = |e: std::io::Error| ScratchError::Io(format!("{name}: {e}"));
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io)?;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        f.write_all(data).map_err(io)
    }

    fn read(&self, name: &str, offset: u64, len: u32) -> Result<Vec<u8>, ScratchError> {
        let path = self.file(name)?;
        let io = |e: std::io::Error| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ScratchError::NotFound(name.to_string())
            } else {
                ScratchError::Io(format!("{name}: {e}"))
            }
        };
        let mut f = std::fs::File::open(&path).map_err(io)?;
        f.seek(SeekFrom::Start(offset)).map_err(io)?;
        let mut out = Vec::new();
        f.take(u64::from(len.min(MAX_READ)))
            .read_to_end(&mut out)
            .map_err(io)?;
        Ok(out)
    }
}

impl Drop for ScratchSpace {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "removing a scratch space: {e}");
        }
    }
}

impl ScratchView<'_> {
    /// The call's scratch space, made on first use; `denied` without one.
    pub(crate) fn space(&mut self) -> Result<&ScratchSpace, ScratchError> {
        self.manager
            .policy
            .check(Need::Scratch)
            .map_err(ScratchError::Denied)?;
        if self.manager.policy.scratch_persistent() {
            return self
                .manager
                .persistent_scratch(&self.env.scratch_dir)
                .map_err(|e| ScratchError::Io(format!("making the scratch space: {e}")));
        }
        if self.space.is_none() {
            let cap = self.manager.policy.scratch_bytes().unwrap_or(0);
            let made = ScratchSpace::create(&self.env.scratch_dir, &self.manager.name, cap)
                .map_err(|e| ScratchError::Io(format!("making the scratch space: {e}")))?;
            tracing::debug!(manager = %self.manager.name, dir = %made.dir.display(), cap, "scratch space");
            *self.space = Some(made);
        }
        self.space
            .as_ref()
            .ok_or_else(|| ScratchError::Io("no scratch space".into()))
    }
}

impl scratch::Host for ScratchView<'_> {
    async fn path(&mut self) -> wasmtime::Result<Result<String, ScratchError>> {
        Ok(self.space().map(|s| s.dir.display().to_string()))
    }

    async fn file_path(&mut self, name: String) -> wasmtime::Result<Result<String, ScratchError>> {
        Ok(self
            .space()
            .and_then(|s| s.file(&name))
            .map(|p| p.display().to_string()))
    }

    async fn write(
        &mut self,
        name: String,
        offset: u64,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), ScratchError>> {
        Ok(self.space().and_then(|s| s.write(&name, offset, &data)))
    }

    async fn read(
        &mut self,
        name: String,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, ScratchError>> {
        Ok(self.space().and_then(|s| s.read(&name, offset, len)))
    }

    async fn size(&mut self, name: String) -> wasmtime::Result<Result<u64, ScratchError>> {
        Ok(self.space().and_then(|s| {
            let path = s.file(&name)?;
            std::fs::metadata(path)
                .map(|m| m.len())
                .map_err(|_| ScratchError::NotFound(name.clone()))
        }))
    }

    async fn remove(&mut self, name: String) -> wasmtime::Result<Result<(), ScratchError>> {
        Ok(self.space().and_then(|s| {
            let path = s.file(&name)?;
            std::fs::remove_file(path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    ScratchError::NotFound(name.clone())
                } else {
                    ScratchError::Io(format!("{name}: {e}"))
                }
            })
        }))
    }

    async fn list_files(&mut self) -> wasmtime::Result<Result<Vec<String>, ScratchError>> {
        Ok(self.space().and_then(|s| {
            let mut names: Vec<String> = std::fs::read_dir(&s.dir)
                .map_err(|e| ScratchError::Io(e.to_string()))?
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            Ok(names)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_the_cap_are_refused_and_the_space_is_wiped_on_drop() {
        let parent = tempfile::tempdir().expect("dir");
        let s = ScratchSpace::create(parent.path(), "m", 1000).expect("space");
        s.write("a.bin", 0, &[1; 600]).expect("fits");
        s.write("a.bin", 0, &[2; 700])
            .expect("rewriting the same file fits");
        assert!(matches!(
            s.write("b.bin", 0, &[3; 400]),
            Err(ScratchError::Full(_))
        ));
        assert!(matches!(
            s.write("../x", 0, b"x"),
            Err(ScratchError::InvalidName(_))
        ));
        assert_eq!(s.read("a.bin", 690, 100).expect("read"), vec![2; 10]);
        let dir = s.dir().to_path_buf();
        drop(s);
        assert!(!dir.exists());
    }
}
