//! Partition tables on RAID holder disks, written through the `disks`
//! capability (what IPA's `parted mklabel`, `parted mkpart` and `parted rm`
//! do; the table logic is `generic_storage::table`), and metadata wipes.

use ironic_hardware_guest::disks::{Access, Disk, DiskError};
use ironic_hardware_guest::prelude::*;

use generic_storage::table::{BlockIo, Table};

use crate::steps::metadata::{self, disk_error, Region};

/// A disk as the table code sees it.
pub struct DiskIo {
    pub name: String,
    pub disk: Disk,
}

impl DiskIo {
    pub fn open(name: &str) -> Result<DiskIo, String> {
        let disk = Disk::open(name, Access::ReadWrite)
            .map_err(|e| format!("cannot open {name}: {}", disk_error(&e)))?;
        Ok(DiskIo {
            name: name.to_string(),
            disk,
        })
    }

    /// The disk's table, if it has one.
    pub fn table(&self) -> Result<Option<Table>, String> {
        Table::read(self).map_err(|e| format!("{}: reading the partition table: {e}", self.name))
    }

    /// Asks the kernel to re-read the table (what `partprobe` does). A
    /// simulated disk has nothing to re-read.
    pub fn reread(&self) -> Result<(), String> {
        match self.disk.reread_partitions() {
            Ok(()) | Err(DiskError::Unsupported(_)) => Ok(()),
            Err(e) => Err(format!(
                "{}: the kernel did not re-read the partition table: {}",
                self.name,
                disk_error(&e)
            )),
        }
    }

    /// Zeroes the metadata zones of the whole disk (its table, signatures at
    /// both ends): `wipefs -af <disk>` as IPA runs it on holders, without
    /// depending on signatures libblkid knows.
    pub fn wipe(&self) -> Result<(), String> {
        let region = Region {
            disk: &self.disk,
            base: 0,
            len: self.disk.size(),
            sector: self.sector_size(),
        };
        metadata::wipe(&region, &[]).map_err(|e| format!("{}: {e}", self.name))
    }
}

impl BlockIo for DiskIo {
    fn sector_size(&self) -> u64 {
        u64::from(self.disk.logical_sector_size()).max(512)
    }
    fn size(&self) -> u64 {
        self.disk.size()
    }
    fn read(&self, offset: u64, len: usize) -> Result<Vec<u8>, String> {
        let len = u32::try_from(len).map_err(|_| "read too large".to_string())?;
        self.disk
            .read(offset, len)
            .map_err(|e| format!("{}: read at {offset}: {}", self.name, disk_error(&e)))
    }
    fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        self.disk
            .write(offset, data)
            .map_err(|e| format!("{}: write at {offset}: {}", self.name, disk_error(&e)))
    }
}

/// 16 random bytes for GUIDs and disk signatures.
pub fn random() -> [u8; 16] {
    uuid::Uuid::new_v4().into_bytes()
}

/// `<disk><n>`, or `<disk>p<n>` when the disk's name ends in a digit
/// (`/dev/nvme0n1p1`, `/dev/md0p1`). IPA's `create_raid_device` adds the `p`
/// only for names containing `nvme`, which breaks other such disks.
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// `log` a failure that IPA only warns about.
pub fn warn(message: &str) {
    log::log(log::Level::Warn, message);
}
