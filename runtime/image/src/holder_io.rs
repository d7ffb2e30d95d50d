//! A holder disk (a software RAID member, or an md device) opened for the
//! shared partition-table code of `generic_storage::table`.

use std::os::unix::fs::FileExt;
use std::path::Path;

use generic_storage::table::BlockIo;

/// An open disk and its size, read and written at byte offsets.
pub(crate) struct HolderIo {
    file: std::fs::File,
    pub(crate) size: u64,
}

impl HolderIo {
    /// Opens `path` read-write; errors name the path.
    pub(crate) fn open(path: &Path) -> Result<HolderIo, String> {
        use std::io::{Seek, SeekFrom};
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        let size = file
            .seek(SeekFrom::End(0))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(HolderIo { file, size })
    }
}

impl BlockIo for HolderIo {
    fn sector_size(&self) -> u64 {
        blockdev::logical_sector_size(&self.file).map_or(512, u64::from)
    }
    fn size(&self) -> u64 {
        self.size
    }
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| e.to_string())?;
        Ok(buf)
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        self.file
            .write_all_at(data, offset)
            .map_err(|e| e.to_string())
    }
}
