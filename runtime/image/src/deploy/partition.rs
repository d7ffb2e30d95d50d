//! Partition images (IPA `ironic_lib/disk_utils.py` `work_on_disk`): wipe,
//! partition, format the ESP, write the config drive, the image into the
//! root partition, `mkswap`/`mkfs` swap and ephemeral, then read the UUIDs
//! Ironic asks for. The table is written natively ([`crate::disk`]).

use std::path::PathBuf;

use serde_json::{json, Map, Value};

use super::{blocking, check_partition_table, DeployReport, DeployRequest};
use crate::disk::{self, CreatedPartition};
use crate::error::ImageError;
use crate::partition::{partition_path, LayoutRequest, PartitionPlan};
use crate::programs::{ProgramError, ProgramRunner};
use crate::temp::TempFile;
use crate::{ImageInfo, WriteOptions};

const MIB: u64 = 1 << 20;

fn program_error(device: &str, e: ProgramError) -> ImageError {
    let program = match &e {
        ProgramError::NotFound { program, .. }
        | ProgramError::Failed { program, .. }
        | ProgramError::TimedOut { program, .. } => program.clone(),
    };
    ImageError::Program {
        program,
        device: device.to_string(),
        message: e.to_string(),
    }
}

/// The steps of `work_on_disk` in its order; blocking steps (table,
/// programs) run on the blocking pool.
pub(super) async fn deploy(
    info: &ImageInfo,
    req: &DeployRequest,
    opts: &WriteOptions,
    runner: &ProgramRunner,
) -> Result<DeployReport, ImageError> {
    let invalid = |message: String| ImageError::InvalidParams { message };
    let root_mb = info
        .root_mb
        .filter(|m| *m > 0)
        .ok_or_else(|| invalid(format!("image {}: root_mb must be greater than 0", info.id)))?;
    // Rebuild with preserve_ephemeral (IPA `work_on_disk(commit=False)`):
    // the disk keeps its table and the ephemeral partition its contents.
    let preserve = info.preserve_ephemeral == Some(true);

    // Step 2: the config drive is decoded first; its size sizes its partition.
    let cd_file = match req.configdrive.as_deref().filter(|s| !s.is_empty()) {
        Some(value) => {
            let path = opts.work_dir.join(format!("configdrive-{}", info.id));
            let tmp = TempFile(path);
            let bytes = crate::write_configdrive(value, opts, tmp.path()).await?;
            Some((tmp, bytes))
        }
        None => None,
    };
    let configdrive_mb = cd_file.as_ref().map_or(0, |(_, b)| b.div_ceil(MIB));

    let plan = PartitionPlan::new(&LayoutRequest {
        boot_mode: req.boot_mode.clone(),
        disk_label: req.disk_label.clone(),
        cpu_arch: req.cpu_arch.clone(),
        root_mb,
        swap_mb: info.swap_mb.unwrap_or(0),
        ephemeral_mb: info.ephemeral_mb.unwrap_or(0),
        configdrive_mb,
        esp_mb: req.esp_mb,
        bios_boot_mb: req.bios_boot_mb,
    })?;
    tracing::info!(image = %info.id, device = %req.device, label = %plan.label,
        parted = ?plan.parted_args(&req.device), "partitioning (the table is written natively; parted equivalent shown)");

    let disk_path = req.disk.clone();
    let plan_c = plan.clone();
    let layout = blocking(move || {
        let layout = if preserve {
            existing_layout(&disk_path, &plan_c)?
        } else {
            disk::create_partition_table(&disk_path, &plan_c)?
        };
        disk::reread_partition_table(&disk_path)?;
        Ok(layout)
    })
    .await?;

    // Step 5: on a real disk the kernel must show each partition node.
    if blockdev::is_block_device(&req.disk) {
        let nodes: Vec<String> = layout
            .partitions
            .iter()
            .map(|p| partition_path(&req.device, p.number))
            .collect();
        blocking(move || wait_for_nodes(&nodes)).await?;
    }

    let path_of = |p: &CreatedPartition| partition_path(&req.device, p.number);

    // Step 6: ESP.
    if let Some(esp) = layout.get("efi system partition") {
        let node = path_of(esp);
        run_checked(runner, "mkfs", vec!["-t", "vfat", "-n", "efi-part"], &node).await?;
    }

    // Step 7: config drive.
    if let Some((tmp, _)) = &cd_file {
        let part = layout
            .get("configdrive")
            .ok_or_else(|| ImageError::Internal(anyhow::anyhow!("no configdrive partition")))?
            .clone();
        let (disk_path, src) = (req.disk.clone(), tmp.0.clone());
        let n = blocking(move || disk::copy_into(&disk_path, part.offset, part.size, &src)).await?;
        tracing::info!(device = %req.device, bytes = n, "config drive written");
    }

    // Step 8: the image into root (streamed or downloaded, first MiB held).
    let root = layout
        .get("root")
        .ok_or_else(|| ImageError::Internal(anyhow::anyhow!("no root partition in the plan")))?
        .clone();
    let write = crate::write_partition_image(info, &req.disk, root.offset, root.size, opts).await?;

    // Step 9: swap and ephemeral.
    if let Some(swap) = layout.get("swap") {
        run_checked(runner, "mkswap", vec!["-L", "swap1"], &path_of(swap)).await?;
    }
    if let Some(eph) = layout.get("ephemeral").filter(|_| !preserve) {
        let fmt = info
            .ephemeral_format
            .clone()
            .filter(|f| !f.is_empty())
            .unwrap_or_else(|| "ext4".into());
        let mut args = vec!["-t".to_string(), fmt.clone()];
        if fmt == "ext3" || fmt == "ext4" {
            args.push("-F".into());
        }
        let label_flag = if fmt == "msdos" || fmt == "vfat" {
            "-n"
        } else {
            "-L"
        };
        args.extend([label_flag.to_string(), "ephemeral0".into()]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_checked(runner, "mkfs", args, &path_of(eph)).await?;
    }

    // Step 10: rescan, UUIDs.
    let disk_path = req.disk.clone();
    let layout_c = layout.clone();
    let (root_uuid, esp_uuid, prep_uuid) = blocking(move || {
        disk::reread_partition_table(&disk_path)?;
        let uuid_of = |p: &CreatedPartition| -> Result<String, ImageError> {
            let fs =
                disk::filesystem_uuid(&disk_path, p.offset).map_err(|e| ImageError::Partition {
                    device: disk_path.clone(),
                    message: format!("reading partition {}: {e}", p.number),
                })?;
            Ok(fs.unwrap_or_else(|| p.part_uuid.clone()))
        };
        let root = layout_c
            .get("root")
            .map(&uuid_of)
            .transpose()?
            .unwrap_or_default();
        let esp = layout_c
            .get("efi system partition")
            .map(&uuid_of)
            .transpose()?;
        let prep = layout_c
            .get("PReP Boot partition")
            .map(&uuid_of)
            .transpose()?;
        Ok((root, esp, prep))
    })
    .await?;

    let mut partitions = Map::new();
    for p in &layout.partitions {
        partitions.insert(p.role.clone(), Value::String(path_of(p)));
    }
    let mut uuids = json!({
        "partitions": partitions,
        "root uuid": root_uuid,
        "efi system partition uuid": esp_uuid,
    });
    if req.cpu_arch.starts_with("ppc") {
        uuids["PReP Boot partition uuid"] = json!(prep_uuid);
    }
    let (id, device, disk) = (info.id.clone(), req.device.clone(), req.disk.clone());
    blocking(move || check_partition_table(&id, &device, &disk)).await?;
    Ok(DeployReport {
        write,
        configdrive_partition: layout.get("configdrive").map(|p| p.number),
        layout: Some(layout),
        root_uuid,
        efi_system_partition_uuid: esp_uuid,
        partition_uuids: uuids,
    })
}

/// The disk's table when it matches `plan` exactly (same partitions at the
/// same places), for a rebuild that preserves the ephemeral partition. IPA
/// assumes it does and writes the image into whatever partition has the
/// root's number; a different layout (another flavor, a changed config
/// drive size) is refused here instead of overwriting the wrong partition.
fn existing_layout(
    disk: &std::path::Path,
    plan: &PartitionPlan,
) -> Result<disk::Layout, ImageError> {
    let (label, parts) = disk::read_partitions(disk)?;
    let mismatch = |message: String| ImageError::Partition {
        device: disk.to_path_buf(),
        message: format!(
            "preserve_ephemeral: {message}; the partition layout must not change on a rebuild"
        ),
    };
    if label != plan.label {
        return Err(mismatch(format!(
            "the disk has a {label} table, the layout needs {}",
            plan.label
        )));
    }
    let mut partitions = Vec::new();
    for p in &plan.partitions {
        let (start, size) = (p.start_mib * MIB, (p.end_mib - p.start_mib) * MIB);
        let found = parts.iter().find(|e| e.number == p.number);
        match found {
            Some(e) if e.offset == start && e.size == size => partitions.push(CreatedPartition {
                number: p.number,
                role: p.role.to_string(),
                offset: e.offset,
                size: e.size,
                part_uuid: e.part_uuid.clone(),
            }),
            Some(e) => {
                return Err(mismatch(format!(
                    "partition {} ({}) is {} bytes at {}, the layout needs {size} bytes at {start}",
                    p.number, p.role, e.size, e.offset
                )))
            }
            None => {
                return Err(mismatch(format!(
                    "partition {} ({}) is missing",
                    p.number, p.role
                )))
            }
        }
    }
    tracing::info!(disk = %disk.display(), "preserve_ephemeral: keeping the existing partition table");
    Ok(disk::Layout {
        label: plan.label.clone(),
        partitions,
    })
}

async fn run_checked(
    runner: &ProgramRunner,
    program: &'static str,
    mut args: Vec<&str>,
    node: &str,
) -> Result<(), ImageError> {
    args.push(node);
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    let runner = runner.clone();
    let node_c = node.to_string();
    blocking(move || {
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        runner
            .check(program, &argv)
            .map(|_| ())
            .map_err(|e| program_error(&node_c, e))
    })
    .await
}

fn wait_for_nodes(nodes: &[String]) -> Result<(), ImageError> {
    use std::os::unix::fs::FileTypeExt;
    for node in nodes {
        let mut ok = false;
        for _ in 0..3 {
            if std::fs::metadata(node).is_ok_and(|m| m.file_type().is_block_device()) {
                ok = true;
                break;
            }
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        if !ok {
            return Err(ImageError::Partition {
                device: PathBuf::from(node),
                message: "partition node did not appear after re-reading the table".into(),
            });
        }
    }
    Ok(())
}
