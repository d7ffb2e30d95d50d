//! Files the deploy creates in the work directory (downloaded images,
//! decoded config drives). In the ramdisk they live in RAM, so each is
//! removed as soon as its owner is dropped, on every path out.

use std::path::PathBuf;

/// A path removed when dropped.
pub(crate) struct TempFile(pub PathBuf);

impl TempFile {
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::debug!(path = %self.0.display(), error = %e, "removing a temporary file");
            }
        }
    }
}
