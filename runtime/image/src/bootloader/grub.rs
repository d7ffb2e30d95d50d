//! GRUB installed from the deployed image (IPA `extensions/image.py`
//! `_install_grub2`): the root partition mounted with `/dev`, `/proc`, `/run`
//! bound and a sysfs, the image's own `grub-install` run in a chroot on the
//! install disk (on every holder disk when the root is a software RAID
//! array), then `grub-mkconfig`. Runs code of the image as root, which is
//! why `enable_bios_bootloader_install` gates it.

use std::path::Path;

use generic_storage::table::{PartType, Table, TableKind};

use super::{find_partition, md_layout, node, run, BootloaderOutcome, BootloaderRequest};
use crate::error::ImageError;
use crate::holder_io::HolderIo;
use crate::programs::ProgramRunner;

/// What IPA binds into the chroot (`BIND_MOUNTS`); sysfs is mounted fresh.
const BIND_MOUNTS: [&str; 3] = ["/dev", "/proc", "/run"];

fn fail(req: &BootloaderRequest, message: impl Into<String>) -> ImageError {
    ImageError::Bootloader {
        device: req.device.clone(),
        message: message.into(),
    }
}

/// IPA `_is_bootloader_loaded` (BIOS ramdisks only): an msdos table with a
/// bootable partition and boot code in the MBR. IPA asks `parted` and
/// `file`; the MBR says the same.
fn bootloader_loaded(disk: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let mut mbr = [0u8; 512];
    let read = std::fs::File::open(disk).and_then(|f| f.read_exact_at(&mut mbr, 0));
    if read.is_err() || mbr[510..] != [0x55, 0xAA] {
        return false;
    }
    let active = (0..4).any(|i| mbr[446 + i * 16] == 0x80);
    active && mbr[..440].iter().any(|b| *b != 0)
}

/// IPA `raid_utils.prepare_boot_partitions_for_softraid` in BIOS mode: a
/// 2 MiB BIOS boot partition in the first free space of every GPT holder
/// (`sgdisk -n 0:<first free>:+2MiB -t 0:ef02 -c 0:bios-boot-part-<i>`),
/// where GRUB's core image goes; msdos holders keep it in the MBR gap.
fn bios_boot_partitions(req: &BootloaderRequest, holders: &[String]) -> Result<(), ImageError> {
    for (i, holder) in holders.iter().enumerate() {
        let path = node(&req.root, holder);
        let mut io = HolderIo::open(&path).map_err(|e| fail(req, e))?;
        let Some(mut table) = Table::read(&io).map_err(|e| fail(req, format!("{holder}: {e}")))?
        else {
            continue;
        };
        if table.kind != TableKind::Gpt {
            continue;
        }
        let name = format!("bios-boot-part-{i}");
        if table.entries.iter().any(|e| e.name == name) {
            continue;
        }
        let first = table
            .first_free()
            .ok_or_else(|| fail(req, format!("{holder}: no room for a BIOS boot partition")))?;
        let sectors = (2u64 << 20) / table.sector;
        let random = *uuid::Uuid::new_v4().as_bytes();
        table
            .add(
                first,
                first + sectors - 1,
                PartType::BiosBoot,
                &name,
                random,
            )
            .map_err(|e| fail(req, format!("{holder}: BIOS boot partition: {e}")))?;
        table
            .write(&mut io)
            .map_err(|e| fail(req, format!("{holder}: {e}")))?;
        tracing::info!(%holder, "BIOS boot partition created on the software RAID holder");
    }
    Ok(())
}

/// Installs GRUB; see the module documentation.
pub(super) fn install(
    req: &BootloaderRequest,
    runner: &ProgramRunner,
    root_uuid: &str,
) -> Result<BootloaderOutcome, ImageError> {
    let kname = req.device.trim_start_matches("/dev/").to_string();
    let md = md_layout(&req.root, &kname);
    let (root_partition, _) = find_partition(req, root_uuid)?;
    let efi_uuid = req
        .efi_system_part_uuid
        .as_deref()
        .filter(|u| !u.is_empty());
    if let Some((members, _)) = &md {
        // IPA restarts the array "to help grub find it" (hardware.md_restart).
        run(runner, &req.device, "mdadm", &["--stop", &req.device])?;
        let mut args = vec!["--assemble", req.device.as_str()];
        args.extend(members.iter().map(String::as_str));
        run(runner, &req.device, "mdadm", &args)?;
        if let Err(e) = crate::disk::reread_partition_table(&req.disk) {
            tracing::warn!(device = %req.device, error = %e, "re-reading the array's partitions failed");
        }
    } else if !req.ramdisk_uefi && efi_uuid.is_none() && bootloader_loaded(&req.disk) {
        tracing::info!(device = %req.device, "Skipping installation of bootloader on device as it is already marked bootable.");
        return Ok(BootloaderOutcome::AlreadyBootable);
    }
    let efi_partition = match efi_uuid {
        Some(u) => Some(find_partition(req, u)?.0),
        None => None,
    };
    let disks: Vec<String> = match &md {
        Some((_, holders)) => {
            if req.target_boot_mode == "uefi" {
                return Err(fail(
                    req,
                    "GRUB for UEFI on a software RAID root is installed from the ESP's loaders \
                     (UEFI ramdisk with efibootmgr); legacy GRUB installation is BIOS only here",
                ));
            }
            bios_boot_partitions(req, holders)?;
            holders.clone()
        }
        None => vec![req.device.clone()],
    };

    let mount_dir = tempfile::Builder::new()
        .prefix("ironic-grub-")
        .tempdir()
        .map_err(|e| fail(req, format!("creating a mount point: {e}")))?;
    let path = mount_dir.path().to_string_lossy().into_owned();
    let mut mounted: Vec<String> = Vec::new();
    let result = (|| -> Result<(), ImageError> {
        run(runner, &req.device, "mount", &[&root_partition, &path])?;
        mounted.push(path.clone());
        for fs in BIND_MOUNTS {
            let target = format!("{path}{fs}");
            std::fs::create_dir_all(&target).map_err(|e| fail(req, format!("{target}: {e}")))?;
            run(runner, &req.device, "mount", &["-o", "bind", fs, &target])?;
            mounted.push(target);
        }
        let sys = format!("{path}/sys");
        std::fs::create_dir_all(&sys).map_err(|e| fail(req, format!("{sys}: {e}")))?;
        run(runner, &req.device, "mount", &["-t", "sysfs", "none", &sys])?;
        mounted.push(sys);

        let binary = if Path::new(&format!("{path}/usr/sbin/grub2-install")).exists() {
            "grub2"
        } else {
            "grub"
        };
        let chroot = |command: &str| -> Result<Option<String>, ImageError> {
            run(
                runner,
                &req.device,
                "chroot",
                &[&path, "/bin/sh", "-c", command],
            )
        };
        // The image's vfat file systems (the ESP with grubenv) for GRUB.
        chroot("mount -a -t vfat")?;
        if let Some(esp) = &efi_partition {
            let target = format!("{path}/boot/efi");
            std::fs::create_dir_all(&target).map_err(|e| fail(req, format!("{target}: {e}")))?;
            run(runner, &req.device, "mount", &[esp, &target])?;
            mounted.push(target.clone());
            tracing::warn!("GRUB2 will be installed for UEFI on efi partition {esp} using the install command which does not place Secure Boot signed binaries.");
            for command in [
                format!("{binary}-install"),
                format!("{binary}-install --removable"),
            ] {
                if let Err(e) = chroot(&command) {
                    tracing::warn!(error = %e, "Ignoring GRUB2 boot loader installation failure");
                }
            }
        } else {
            for disk in &disks {
                tracing::info!(%disk, "installing GRUB2");
                chroot(&format!("{binary}-install {disk}"))?;
            }
        }
        configure(req, runner, &path, binary, md.is_some())?;
        if let Some(uuid) = efi_uuid {
            append_esp_to_fstab(&path, uuid);
        }
        Ok(())
    })();
    // Unmount in reverse, whatever happened; the image's vfat mounts first.
    if mounted.len() > 1 {
        let _ = runner.run("chroot", &[&path, "/bin/sh", "-c", "umount -a -t vfat"]);
    }
    let mut unmount_failed = false;
    for target in mounted.iter().rev() {
        if let Err(e) = runner.check("umount", &[target]) {
            tracing::warn!(%target, error = %e, "Unable to umount");
            unmount_failed = true;
        }
    }
    result.map_err(|e| match e {
        ImageError::Bootloader { device, message } => ImageError::Bootloader {
            device: device.clone(),
            message: format!(
                "Installing GRUB2 boot loader to device {device} failed with {message}."
            ),
        },
        other => other,
    })?;
    if unmount_failed {
        // Leave the directory: something is still mounted on it.
        let _ = mount_dir.keep();
    }
    Ok(BootloaderOutcome::Grub { disks })
}

/// IPA `_configure_grub`: `rd.md.uuid=` for dracut images on software RAID,
/// then `grub-mkconfig` in the chroot.
fn configure(
    req: &BootloaderRequest,
    runner: &ProgramRunner,
    path: &str,
    binary: &str,
    on_md: bool,
) -> Result<(), ImageError> {
    let has_dracut = ["usr/bin/dracut", "usr/sbin/dracut", "sbin/dracut"]
        .iter()
        .any(|p| Path::new(path).join(p).exists());
    if on_md && has_dracut {
        let scan = run(runner, &req.device, "mdadm", &["--examine", "--scan"])?.unwrap_or_default();
        let uuids: Vec<String> = scan
            .split_whitespace()
            .filter_map(|w| w.strip_prefix("UUID="))
            .map(|u| format!("rd.md.uuid={u}"))
            .collect();
        let file = Path::new(path).join("etc/default/grub");
        if let Ok(text) = std::fs::read_to_string(&file) {
            let updated: Vec<String> = text
                .lines()
                .map(|l| match l.strip_prefix("GRUB_CMDLINE_LINUX=\"") {
                    Some(rest) => {
                        let inner = rest.strip_suffix('"').unwrap_or(rest);
                        format!("GRUB_CMDLINE_LINUX=\"{inner} {}\"", uuids.join(" "))
                    }
                    None => l.to_string(),
                })
                .collect();
            std::fs::write(&file, updated.join("\n") + "\n")
                .map_err(|e| fail(req, format!("{}: {e}", file.display())))?;
        }
    }
    runner
        .check_with_env(
            "chroot",
            &[
                path,
                "/bin/sh",
                "-c",
                &format!("{binary}-mkconfig -o /boot/{binary}/grub.cfg"),
            ],
            &[
                ("GRUB_DISABLE_OS_PROBER", "true"),
                ("GRUB_SAVEDEFAULT", "true"),
            ],
        )
        .map(|_| ())
        .map_err(|e| fail(req, e.to_string()))
}

/// IPA `_append_uefi_to_fstab`: the ESP mounted at `/boot/efi` on boot.
fn append_esp_to_fstab(path: &str, uuid: &str) {
    let fstab = Path::new(path).join("etc/fstab");
    let Ok(text) = std::fs::read_to_string(&fstab) else {
        return;
    };
    // A FAT volume id (XXXX-XXXX) is a UUID; a GUID is a PARTUUID.
    let label = if uuid.len() == 9 { "UUID" } else { "PARTUUID" };
    let entry = format!("{label}={uuid}");
    if text.contains(&entry) {
        return;
    }
    let line = format!("{entry}\t/boot/efi\tvfat\tumask=0077\t0\t1\n");
    if let Err(e) = std::fs::write(&fstab, text + &line) {
        tracing::warn!(error = %e, "Failed to add entry to /etc/fstab");
    }
}
