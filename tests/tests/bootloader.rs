//! `image.install_bootloader` and partition-image rebuilds on simulated
//! machines, through the agent's API:
//!
//! * UEFI: the image's `/boot/efi/EFI` tree (read in place from its ext4
//!   root file system) lands on the empty ESP and the CSV's loader gets the
//!   boot entry (the machine's `efibootmgr` stand-in records it);
//! * BIOS with legacy boot loaders allowed: the GRUB installation the agent
//!   would run (mount, bind mounts, the image's grub-install and
//!   grub-mkconfig in a chroot), recorded as the programs a simulated
//!   machine does not run;
//! * PReP partitions are refused; `preserve_ephemeral` keeps the ephemeral
//!   partition's bytes and refuses a changed layout.
//!
//! The real tools on real (virtual) disks: `tests/tests/storage_vm.rs`.
//! Only files these tests create are partitioned, formatted or read.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use agent_tests::ironic::{read_at, sha256_of, write_at, ImageServer};
use agent_tests::sim_agent::SimAgent as Agent;
use ironic_sim::BootMode;
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;
const ROOT_FS_UUID: &str = "7d4c1f60-2f0e-4b8e-9a51-3e2d1c0b9a87";

/// An ext4 root file system of `mib` MiB made from `tree` (`mkfs.ext4 -d`,
/// no mount needed), with a known UUID.
fn root_image(path: &Path, tree: &Path, mib: u64) {
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-U", ROOT_FS_UUID, "-d"])
        .arg(tree)
        .arg(path)
        .arg(format!("{mib}M"))
        .stdout(Stdio::null())
        .status()
        .expect("mkfs.ext4 (e2fsprogs) is installed by tests/setup-tools.sh");
    assert!(st.success());
}

fn put(root: &Path, rel: &str, data: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, data).unwrap();
}

/// UTF-16LE with a byte-order mark, as shim's BOOTX64.CSV is.
fn utf16(text: &str) -> Vec<u8> {
    let mut out = vec![0xFF, 0xFE];
    for u in text.encode_utf16() {
        out.extend(u.to_le_bytes());
    }
    out
}

fn partition_image_info(server: &ImageServer, image: &Path, mode: &str, extra: Value) -> Value {
    let mut info = json!({
        "id": "root-image", "urls": [server.url("root.img")],
        "disk_format": "raw", "container_format": "bare", "stream_raw_images": true,
        "os_hash_algo": "sha256", "os_hash_value": sha256_of(image),
        "image_type": "partition", "root_mb": 32, "swap_mb": 0,
        "ephemeral_mb": 0, "preserve_ephemeral": false,
        "deploy_boot_mode": mode, "boot_option": "local", "node_uuid": "n1",
    });
    for (k, v) in extra.as_object().unwrap() {
        info[k] = v.clone();
    }
    info
}

/// The ESP (partition 1) of `disk` as a FAT file system: `path` → bytes.
fn esp_file(disk: &Path, path: &str) -> Option<Vec<u8>> {
    let bytes = read_at(disk, MIB, 550 * MIB as usize);
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(bytes), fatfs::FsOptions::new()).ok()?;
    let mut f = fs.root_dir().open_file(path).ok()?;
    let mut data = Vec::new();
    f.read_to_end(&mut data).ok()?;
    Some(data)
}

#[test]
fn uefi_partition_image_brings_its_efi_tree_onto_the_esp() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let shim = b"MZ shim loader stand-in".repeat(1000);
    put(&tree, "boot/efi/EFI/debian/shimx64.efi", &shim);
    put(&tree, "boot/efi/EFI/debian/grubx64.efi", b"MZ grub");
    put(
        &tree,
        "boot/efi/EFI/debian/BOOTX64.CSV",
        &utf16("shimx64.efi,debian,,This is the boot entry for debian\n"),
    );
    put(&tree, "boot/efi/EFI/BOOT/BOOTX64.EFI", &shim);
    put(&tree, "etc/fstab", b"# empty\n");
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let image = images.join("root.img");
    root_image(&image, &tree, 24);
    let server = ImageServer::start(&images);

    let agent = Agent::start(dir.path(), BootMode::Uefi, "");
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": partition_image_info(&server, &image, "uefi", json!({}))}),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", agent.log());
    let uuids = agent.run("standby.get_partition_uuids", json!({}))["command_result"].clone();
    assert_eq!(uuids["root uuid"], ROOT_FS_UUID);
    let v = agent.run(
        "image.install_bootloader",
        json!({
            "root_uuid": ROOT_FS_UUID, "efi_system_part_uuid": uuids["efi system partition uuid"],
            "prep_boot_part_uuid": null, "target_boot_mode": "uefi",
        }),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", agent.log());
    let disk = agent.disk();
    assert_eq!(
        esp_file(&disk, "EFI/debian/shimx64.efi").as_deref(),
        Some(&shim[..])
    );
    assert_eq!(
        esp_file(&disk, "EFI/BOOT/BOOTX64.EFI").as_deref(),
        Some(&shim[..])
    );
    // The CSV names the loader and the label; one entry for it.
    let entries =
        std::fs::read_to_string(agent.sim.root.join(".ironic-sim/efi-boot-entries")).unwrap();
    assert_eq!(entries, "0001\tdebian\t\\EFI\\debian\\shimx64.efi\n");
    // Nothing of the image ran: no program was skipped or started beyond efibootmgr.
    assert!(agent.skipped().is_empty(), "{:?}", agent.skipped());

    // clean_uefi_nvram: entries whose path matches go (the default patterns
    // match disk entries, shim and grub), others stay; bad patterns are the
    // caller's error.
    let clean = |args: Value| {
        agent.run(
            "clean.execute_clean_step",
            json!({"step": {"interface": "deploy", "step": "clean_uefi_nvram", "args": args},
                   "node": {"uuid": "n1"}, "ports": []}),
        )
    };
    let v = clean(json!({"match_patterns": ["shim.*\\.efi", 3]}));
    assert_eq!(
        v["command_error"]["type"], "InvalidCommandParamsError",
        "{v}"
    );
    let v = clean(json!({}));
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let entries =
        std::fs::read_to_string(agent.sim.root.join(".ironic-sim/efi-boot-entries")).unwrap();
    assert_eq!(entries, "", "the disk entry is gone");
    let calls = agent.sim.recorded_calls("efibootmgr");
    assert!(
        calls.contains(&vec!["-b".to_string(), "0001".into(), "-B".into()]),
        "{calls:?}"
    );
    assert!(
        !calls.iter().any(|c| c.contains(&"0000".to_string())),
        "PXE entry kept: {calls:?}"
    );
}

#[test]
fn bios_grub_runs_the_image_s_grub_in_a_chroot_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    put(&tree, "etc/fstab", b"# empty\n");
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let image = images.join("root.img");
    root_image(&image, &tree, 24);
    let server = ImageServer::start(&images);

    // Not allowed (the default): InvalidImage naming the mitigation.
    let agent = Agent::start(dir.path(), BootMode::Bios, "");
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": partition_image_info(&server, &image, "bios", json!({}))}),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let params = json!({"root_uuid": ROOT_FS_UUID, "efi_system_part_uuid": null,
        "prep_boot_part_uuid": null, "target_boot_mode": "bios"});
    let v = agent.run("image.install_bootloader", params.clone());
    assert_eq!(v["command_error"]["type"], "InvalidImage", "{v}");
    assert!(v["command_error"]["details"]
        .as_str()
        .unwrap()
        .contains("CVE-2026-43003"));
    drop(agent);

    let agent = Agent::start(
        &dir.path().join("allowed"),
        BootMode::Bios,
        "[DEFAULT]\nenable_bios_bootloader_install = true\n",
    );
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": partition_image_info(&server, &image, "bios", json!({}))}),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let v = agent.run("image.install_bootloader", params);
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", agent.log());
    let skipped = agent.skipped();
    let mount_dir = skipped[0].split_whitespace().nth(2).unwrap().to_string();
    // The msdos layout's root is partition 1 (no BIOS boot partition).
    assert_eq!(skipped[0], format!("mount /dev/sda1 {mount_dir}"));
    for want in [
        format!("mount -o bind /dev {mount_dir}/dev"),
        format!("mount -t sysfs none {mount_dir}/sys"),
        format!("chroot {mount_dir} /bin/sh -c grub-install /dev/sda"),
        format!("chroot {mount_dir} /bin/sh -c grub-mkconfig -o /boot/grub/grub.cfg"),
        format!("umount {mount_dir}"),
    ] {
        assert!(skipped.contains(&want), "{want:?} in {skipped:#?}");
    }
}

#[test]
fn prep_boot_partitions_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), BootMode::Bios, "");
    let v = agent.run(
        "image.install_bootloader",
        json!({"root_uuid": ROOT_FS_UUID, "prep_boot_part_uuid": "1234-ABCD", "target_boot_mode": "bios"}),
    );
    assert_eq!(v["command_error"]["type"], "CommandExecutionError", "{v}");
    assert!(
        v["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("PReP"),
        "{v}"
    );
}

#[test]
fn preserve_ephemeral_keeps_the_ephemeral_partition_on_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    put(&tree, "etc/hostname", b"first\n");
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let image = images.join("root.img");
    root_image(&image, &tree, 24);
    let server = ImageServer::start(&images);
    let agent = Agent::start(dir.path(), BootMode::Bios, "");
    let layout = json!({"ephemeral_mb": 16, "ephemeral_format": "ext4"});
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": partition_image_info(&server, &image, "bios", layout.clone())}),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    // msdos: ephemeral is partition 1 at 1 MiB; the tenant's data in it.
    let data: Vec<u8> = (0..MIB).map(|i| (i % 241) as u8).collect();
    write_at(&agent.disk(), 2 * MIB, &data);

    // A new image, same layout, preserving the ephemeral partition.
    put(&tree, "etc/hostname", b"second\n");
    std::fs::remove_file(&image).unwrap();
    root_image(&image, &tree, 24);
    let mut rebuild = layout.clone();
    rebuild["preserve_ephemeral"] = json!(true);
    rebuild["id"] = json!("root-image-2");
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": partition_image_info(&server, &image, "bios", rebuild.clone())}),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", agent.log());
    assert_eq!(
        read_at(&agent.disk(), 2 * MIB, MIB as usize),
        data,
        "ephemeral kept"
    );
    assert_eq!(
        read_at(&agent.disk(), 17 * MIB, 24 * MIB as usize),
        std::fs::read(&image).unwrap(),
        "the new root image in root (partition 2 at 17 MiB)"
    );
    let mkfs: Vec<Vec<String>> = agent.sim.recorded_calls("mkfs");
    assert_eq!(
        mkfs.len(),
        1,
        "the ephemeral file system is made once: {mkfs:?}"
    );

    // A different layout is refused instead of writing the wrong partition.
    rebuild["ephemeral_mb"] = json!(8);
    rebuild["id"] = json!("root-image-3");
    let v = agent.run(
        "standby.prepare_image",
        json!({"image_info": partition_image_info(&server, &image, "bios", rebuild)}),
    );
    assert_eq!(v["command_error"]["type"], "DeploymentError", "{v}");
    assert!(
        v["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("preserve_ephemeral"),
        "{v}"
    );
    assert_eq!(
        read_at(&agent.disk(), 2 * MIB, MIB as usize),
        data,
        "still kept"
    );
}
