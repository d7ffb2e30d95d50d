//! Whole-disk images: written onto the disk byte for byte, then the GPT
//! backup moved to the real end of the disk (`sgdisk -e`), the table
//! re-read, checked, and the config drive added in a partition of its own
//! (IPA `standby.py` `_write_whole_disk_image` and
//! `partition_utils.create_config_drive_partition`).

use std::path::Path;

use serde_json::json;

use super::{blocking, check_partition_table, DeployReport, DeployRequest};
use crate::disk::{self, CreatedPartition};
use crate::error::ImageError;
use crate::temp::TempFile;
use crate::{ImageInfo, WriteOptions};

pub(super) async fn deploy(
    info: &ImageInfo,
    req: &DeployRequest,
    opts: &WriteOptions,
) -> Result<DeployReport, ImageError> {
    let write = crate::write_image(info, &req.disk, opts).await?;
    tracing::info!(image = %info.id, device = %req.device, bytes = write.bytes, streamed = write.streamed,
        elapsed_ms = write.elapsed.as_millis() as u64, "image written");
    // The image's GPT was made for a smaller disk: its backup header is not
    // at the end. IPA ignores a failed fix-up, and so do we.
    let (disk, device, id) = (req.disk.clone(), req.device.clone(), info.id.clone());
    let disk_id = blocking(move || {
        if let Err(e) = disk::fix_gpt_backup(&disk) {
            tracing::warn!(%device, error = %e, "GPT fix-up failed; ignored");
        }
        if let Err(e) = disk::reread_partition_table(&disk) {
            tracing::warn!(%device, error = %e, "re-reading the partition table failed");
        }
        check_partition_table(&id, &device, &disk)
    })
    .await?;
    let configdrive_partition = match req.configdrive.as_deref().filter(|s| !s.is_empty()) {
        Some(cd) => {
            let part = write_whole_disk_configdrive(&req.disk, &req.device, cd, opts).await?;
            tracing::info!(device = %req.device, partition = part.number, "config drive written for the whole-disk image");
            Some(part.number)
        }
        None => None,
    };
    Ok(DeployReport {
        write,
        layout: None,
        partition_uuids: json!({"root uuid": disk_id}),
        root_uuid: disk_id,
        efi_system_partition_uuid: None,
        configdrive_partition,
    })
}

/// The config drive of a whole-disk image goes into an existing `config-2`
/// partition, else into a new partition in the last 64 MiB of the disk
/// (IPA `partition_utils.create_config_drive_partition`). Returns the
/// partition used.
pub async fn write_whole_disk_configdrive(
    disk_path: &Path,
    device: &str,
    configdrive: &str,
    opts: &WriteOptions,
) -> Result<CreatedPartition, ImageError> {
    let tmp = TempFile(opts.work_dir.join(format!(
        "configdrive-{}",
        device.rsplit('/').next().unwrap_or("disk")
    )));
    let bytes = crate::write_configdrive(configdrive, opts, tmp.path()).await?;
    if bytes > disk::CONFIG_DRIVE_PART_BYTES {
        return Err(ImageError::ConfigDrive {
            message: format!("config drive of {bytes} bytes for {device} exceeds 64 MiB"),
        });
    }
    let disk_path = disk_path.to_path_buf();
    let device = device.to_string();
    let src = tmp.0.clone();
    let part = blocking(move || {
        let (_, existing) = disk::read_partitions(&disk_path)?;
        let mut labelled = Vec::new();
        for p in &existing {
            let label = disk::filesystem_label(&disk_path, p.offset).map_err(|e| {
                ImageError::Partition {
                    device: disk_path.clone(),
                    message: format!("reading partition {}: {e}", p.number),
                }
            })?;
            if label.is_some_and(|l| l.eq_ignore_ascii_case("config-2")) {
                labelled.push(p.clone());
            }
        }
        if labelled.len() > 1 {
            return Err(ImageError::Partition {
                device: disk_path.clone(),
                message: format!("{} partitions are labelled config-2", labelled.len()),
            });
        }
        crate::disk::fix_gpt_backup(&disk_path)?;
        let part = match labelled.pop() {
            Some(p) => {
                tracing::info!(%device, partition = p.number, "using the image's config-2 partition");
                CreatedPartition {
                    number: p.number,
                    role: "configdrive".into(),
                    offset: p.offset,
                    size: p.size,
                    part_uuid: p.part_uuid.clone(),
                }
            }
            None => {
                let p = disk::create_config_drive_partition(&disk_path)?;
                disk::reread_partition_table(&disk_path)?;
                p
            }
        };
        disk::copy_into(&disk_path, part.offset, part.size, &src)?;
        Ok(part)
    })
    .await?;
    drop(tmp);
    Ok(part)
}
