//! Deploying an image onto the install disk, both kinds on one road
//! ([`deploy_image`]): whole-disk images are written onto the disk as they
//! are, then the GPT is fixed up, the table re-read and the config drive
//! added ([`whole_disk`]); partition images get IPA's layout, formatted
//! partitions and the image in the root partition ([`partition`]). Both
//! end with IPA's partition-table check and the UUIDs Ironic asks for
//! (`standby.get_partition_uuids`).
//!
//! IPA: `ironic_python_agent/extensions/standby.py` (`_write_image`,
//! `_write_whole_disk_image`, `_write_partition_image`) and
//! `ironic_lib/disk_utils.py` (`work_on_disk`).

mod partition;
mod whole_disk;

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::disk::Layout;
use crate::error::ImageError;
use crate::programs::ProgramRunner;
use crate::{ImageInfo, WriteOptions, WriteReport};

pub use whole_disk::write_whole_disk_configdrive;

/// Where and how an image is deployed.
#[derive(Debug, Clone)]
pub struct DeployRequest {
    /// The install disk as the agent opens it (`/dev/sda`, or the file
    /// standing in for it on a simulated machine).
    pub disk: PathBuf,
    /// The disk as the machine names it (`/dev/sda`): partition paths in
    /// the result and program arguments derive from it.
    pub device: String,
    /// The config drive (inline gzip+base64, or a URL), if any.
    pub configdrive: Option<String>,
    /// `uefi` or `bios`: the node's boot mode (IPA `get_node_boot_mode`).
    /// Partition images only.
    pub boot_mode: String,
    /// The node's `disk_label` capability. Partition images only.
    pub disk_label: Option<String>,
    /// The machine's CPU architecture (ppc64 gets a PReP partition).
    /// Partition images only.
    pub cpu_arch: String,
    /// `[disk_utils]efi_system_partition_size` in MiB.
    pub esp_mb: u64,
    /// `[disk_utils]bios_boot_partition_size` in MiB.
    pub bios_boot_mb: u64,
}

/// What [`deploy_image`] did.
#[derive(Debug, Clone)]
pub struct DeployReport {
    /// The image write.
    pub write: WriteReport,
    /// The table this agent created (partition images).
    pub layout: Option<Layout>,
    /// `root uuid`: for a whole-disk image the MBR disk identifier; for a
    /// partition image the root file system's UUID, else its PARTUUID.
    pub root_uuid: String,
    /// `efi system partition uuid` (UEFI partition layouts).
    pub efi_system_partition_uuid: Option<String>,
    /// The partition that received the config drive, if any.
    pub configdrive_partition: Option<u32>,
    /// What `standby.get_partition_uuids` answers.
    pub partition_uuids: Value,
}

/// Deploys `info` as `req` says: whole-disk or partition image by
/// `image_type`.
pub async fn deploy_image(
    info: &ImageInfo,
    req: &DeployRequest,
    opts: &WriteOptions,
    runner: &ProgramRunner,
) -> Result<DeployReport, ImageError> {
    if info.is_partition_image() {
        partition::deploy(info, req, opts, runner).await
    } else {
        whole_disk::deploy(info, req, opts).await
    }
}

/// IPA's check after writing (`standby.py` `_write_image`, which lists the
/// partitions with `parted`): a disk without any partition is refused.
/// Returns the MBR disk identifier, the whole-disk `root uuid`.
pub fn check_partition_table(
    image_id: &str,
    device: &str,
    disk: &Path,
) -> Result<String, ImageError> {
    use std::os::unix::fs::FileExt;
    let read_error = |op, source| ImageError::Write {
        device: disk.to_path_buf(),
        op,
        source,
    };
    let f = std::fs::File::open(disk).map_err(|e| read_error("opening to check the table", e))?;
    let mut head = [0u8; 1024];
    f.read_exact_at(&mut head, 0)
        .map_err(|e| read_error("reading the partition table", e))?;
    if !has_partition_table(&head) {
        return Err(ImageError::NoPartitions {
            device: device.to_string(),
            image_id: image_id.to_string(),
        });
    }
    mbr_disk_identifier(disk).map_err(|e| read_error("reading the disk identifier", e))
}

/// True when the first sectors hold an MBR with at least one partition, or
/// a GPT header (what `parted` would list partitions from).
fn has_partition_table(head: &[u8; 1024]) -> bool {
    if &head[512..520] == b"EFI PART" {
        return true;
    }
    head[510] == 0x55 && head[511] == 0xAA && (0..4).any(|i| head[446 + i * 16 + 4] != 0)
}

/// The MBR disk identifier as IPA reports it for whole-disk images
/// (`hexdump -s 440 -n 4 -e '"0x%08x"'`: 4 bytes at offset 440, little-endian).
pub fn mbr_disk_identifier(device: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(device)?;
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, 440)?;
    Ok(format!("0x{:08x}", u32::from_le_bytes(b)))
}

/// Runs blocking disk work (tables, programs) off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ImageError> + Send + 'static,
) -> Result<T, ImageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ImageError::Internal(anyhow::anyhow!("blocking task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_table_detection() {
        let mut head = [0u8; 1024];
        assert!(!has_partition_table(&head));
        head[510] = 0x55;
        head[511] = 0xAA;
        // Signature but no entry: parted lists no partition.
        assert!(!has_partition_table(&head));
        head[446 + 4] = 0x83;
        assert!(has_partition_table(&head));
        let mut gpt = [0u8; 1024];
        gpt[512..520].copy_from_slice(b"EFI PART");
        assert!(has_partition_table(&gpt));
    }
}
