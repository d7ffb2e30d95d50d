//! Partition images and config drives through the agent's API on a simulated
//! machine (IPA `partition_utils.work_on_disk`,
//! `create_config_drive_partition`, `StandbyExtension.get_partition_uuids`,
//! `efi_utils.manage_uefi`): the table read back with `sgdisk`, the UUIDs
//! `get_partition_uuids` returns against the disk, the root partition and
//! config drive bytes, the programs the machine's stand-ins recorded, and the
//! UEFI boot entry `install_bootloader` makes.
//!
//! Only files these tests create are partitioned, formatted or read.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use agent_tests::ironic::{read_at, sha256_of, write_at, ImageServer};
use agent_tests::sim_agent::SimAgent as Agent;
use agent_tests::workspace_root;
use ironic_sim::{BootMode, SimMachine};
use serde_json::json;

const MIB: u64 = 1 << 20;
const ROOT_FS_UUID: &str = "5b1f0a4e-7c1d-4e8a-9c55-0d6f3a2b9e11";

/// An ext4 file system image with a known UUID (made on the test's own file).
fn root_image(path: &Path, mib: u64) {
    let f = std::fs::File::create(path).unwrap();
    f.set_len(mib * MIB).unwrap();
    drop(f);
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-U", ROOT_FS_UUID])
        .arg(path)
        .status()
        .expect("mkfs.ext4 (e2fsprogs) is installed by tests/setup-tools.sh");
    assert!(st.success());
    // Recognisable bytes past the superblocks, so a misplaced write shows.
    let pattern: Vec<u8> = (0..MIB).map(|i| (i % 251) as u8).collect();
    write_at(path, (mib - 2) * MIB, &pattern);
}

/// `sgdisk -i <n>`: (first sector, last sector, unique GUID lower case, type GUID).
fn sgdisk_info(disk: &Path, n: u32) -> (u64, u64, String, String) {
    let out = Command::new("sgdisk")
        .arg("-i")
        .arg(n.to_string())
        .arg(disk)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let field = |name: &str| -> String {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .to_string()
    };
    let sector = |name: &str| {
        field(name)
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    (
        sector("First sector:"),
        sector("Last sector:"),
        field("Partition unique GUID:").to_ascii_lowercase(),
        field("Partition GUID code:")
            .split_whitespace()
            .next()
            .unwrap()
            .to_string(),
    )
}

fn calls(sim: &SimMachine, program: &str) -> Vec<Vec<String>> {
    sim.recorded_calls(program)
}

#[test]
fn uefi_partition_image_with_config_drive_through_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let image = images.join("root.img");
    root_image(&image, 24);
    let server = ImageServer::start(&images);
    let cd_bytes: Vec<u8> = (0..(3 * MIB + 12345))
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    let configdrive = agent_tests::gzip_base64(&cd_bytes, dir.path(), 76);

    let agent = Agent::start(dir.path(), BootMode::Uefi, "");
    let disk = agent.disk();
    // A previous tenant's data where the new partitions go.
    write_at(&disk, 600 * MIB, &[0xAA; 4096]);
    let v = agent.run(
        "standby.prepare_image",
        json!({
            "image_info": {
                "id": "root-image", "urls": [server.url("root.img")],
                "disk_format": "raw", "container_format": "bare", "stream_raw_images": true,
                "os_hash_algo": "sha256", "os_hash_value": sha256_of(&image),
                "image_type": "partition", "root_mb": 32, "swap_mb": 8,
                "ephemeral_mb": 16, "ephemeral_format": "ext4", "preserve_ephemeral": false,
                "deploy_boot_mode": "uefi", "boot_option": "local", "node_uuid": "n1",
            },
            "configdrive": configdrive,
        }),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", agent.log());

    // The table, as sgdisk reads it: ESP, ephemeral, swap, config drive, root.
    let st = Command::new("sgdisk")
        .arg("-v")
        .arg(&disk)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&st.stdout).contains("No problems found"));
    let parts: Vec<_> = (1..=5).map(|n| sgdisk_info(&disk, n)).collect();
    let mib_range = |p: &(u64, u64, String, String)| (p.0 * 512 / MIB, (p.1 + 1) * 512 / MIB);
    assert_eq!(mib_range(&parts[0]), (1, 551), "ESP");
    assert_eq!(parts[0].3, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(mib_range(&parts[1]), (551, 567), "ephemeral");
    assert_eq!(mib_range(&parts[2]), (567, 575), "swap");
    assert_eq!(parts[2].3, "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F");
    assert_eq!(
        mib_range(&parts[3]),
        (575, 579),
        "config drive (4 MiB for 3 MiB + a bit)"
    );
    assert_eq!(mib_range(&parts[4]), (579, 611), "root last");

    // What Ironic reads back.
    let v = agent.run("standby.get_partition_uuids", json!({}));
    let uuids = &v["command_result"];
    assert_eq!(
        uuids["partitions"],
        json!({
            "efi system partition": "/dev/sda1", "ephemeral": "/dev/sda2", "swap": "/dev/sda3",
            "configdrive": "/dev/sda4", "root": "/dev/sda5",
        })
    );
    assert_eq!(
        uuids["root uuid"], ROOT_FS_UUID,
        "the root file system's UUID"
    );
    // The stand-in mkfs does not format: the ESP answers with its PARTUUID.
    assert_eq!(uuids["efi system partition uuid"], parts[0].2.as_str());

    // Bytes: root partition = image; config drive partition = decoded drive.
    let root_off = parts[4].0 * 512;
    assert_eq!(
        read_at(&disk, root_off, 24 * MIB as usize),
        std::fs::read(&image).unwrap()
    );
    let cd_off = parts[3].0 * 512;
    assert_eq!(read_at(&disk, cd_off, cd_bytes.len()), cd_bytes);

    // Programs, with the machine's device names.
    let sv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        calls(&agent.sim, "mkfs"),
        vec![
            sv(&["-t", "vfat", "-n", "efi-part", "/dev/sda1"]),
            sv(&["-t", "ext4", "-F", "-L", "ephemeral0", "/dev/sda2"]),
        ]
    );
    assert_eq!(
        calls(&agent.sim, "mkswap"),
        vec![sv(&["-L", "swap1", "/dev/sda3"])]
    );

    // install_bootloader: a boot loader on the ESP (a FAT fixture, as the
    // image's GRUB step would have left) → one boot entry via efibootmgr.
    let fat = std::fs::read(workspace_root().join("tests/fixtures/esp-bootx64.fat")).unwrap();
    write_at(&disk, parts[0].0 * 512, &fat);
    let v = agent.run(
        "image.install_bootloader",
        json!({
            "root_uuid": ROOT_FS_UUID, "efi_system_part_uuid": parts[0].2,
            "prep_boot_part_uuid": null, "target_boot_mode": "uefi",
        }),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    assert_eq!(
        calls(&agent.sim, "efibootmgr"),
        vec![
            sv(&["-v"]),
            sv(&[
                "-v",
                "-c",
                "-d",
                "/dev/sda",
                "-p",
                "1",
                "-w",
                "-L",
                "ironic1",
                "-l",
                "\\EFI\\BOOT\\BOOTX64.EFI"
            ]),
        ]
    );
}

#[test]
fn bios_msdos_partition_image_and_its_uuids() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let image = images.join("root.img");
    root_image(&image, 16);
    let server = ImageServer::start(&images);
    let agent = Agent::start(dir.path(), BootMode::Bios, "");
    let disk = agent.disk();
    let v = agent.run(
        "standby.prepare_image",
        json!({
            "image_info": {
                "id": "bios-root", "urls": [server.url("root.img")], "disk_format": "raw",
                "stream_raw_images": false, "os_hash_algo": "sha256",
                "os_hash_value": sha256_of(&image), "image_type": "partition",
                "root_mb": 20, "swap_mb": 0, "ephemeral_mb": 0, "deploy_boot_mode": "bios",
            },
        }),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", agent.log());
    let mbr = read_at(&disk, 0, 512);
    assert_eq!(&mbr[510..], &[0x55, 0xAA]);
    let e = &mbr[446..462];
    assert_eq!(
        (e[0], e[4]),
        (0x80, 0x83),
        "one active Linux partition (root, boot flag)"
    );
    assert_eq!(u32::from_le_bytes(e[8..12].try_into().unwrap()), 2048);
    assert_eq!(u32::from_le_bytes(e[12..16].try_into().unwrap()), 20 * 2048);
    let v = agent.run("standby.get_partition_uuids", json!({}));
    let uuids = &v["command_result"];
    assert_eq!(uuids["partitions"], json!({"root": "/dev/sda1"}));
    assert_eq!(uuids["root uuid"], ROOT_FS_UUID);
    assert!(uuids["efi system partition uuid"].is_null());
    assert_eq!(
        read_at(&disk, MIB, 16 * MIB as usize),
        std::fs::read(&image).unwrap()
    );
    assert!(calls(&agent.sim, "mkfs").is_empty() && calls(&agent.sim, "mkswap").is_empty());
    // Without a boot loader on the machine's ESP and with the legacy GRUB
    // install disabled (the default), install_bootloader refuses.
    let v = agent.run(
        "image.install_bootloader",
        json!({"root_uuid": ROOT_FS_UUID, "target_boot_mode": "bios"}),
    );
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert_eq!(v["command_error"]["type"], "InvalidImage", "{v}");
}

/// Whole-disk image smaller than the disk, with a config drive: the backup
/// GPT moves to the end of the disk and the drive lands in a new partition
/// in the last 64 MiB.
#[test]
fn whole_disk_image_gets_gpt_fixup_and_config_drive_partition() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let image = images.join("disk.img");
    let f = std::fs::File::create(&image).unwrap();
    f.set_len(64 * MIB).unwrap();
    drop(f);
    let st = Command::new("sgdisk")
        .args(["-n", "1:2048:+32M", "-t", "1:8300"])
        .arg(&image)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    write_at(&image, 2 * MIB, &[0x5A; 8192]);
    let server = ImageServer::start(&images);
    let cd_bytes: Vec<u8> = (0..(MIB + 99)).map(|i| (i % 241) as u8).collect();
    let configdrive = agent_tests::gzip_base64(&cd_bytes, dir.path(), 76);

    let agent = Agent::start(dir.path(), BootMode::Bios, "");
    let disk = agent.disk();
    let disk_len = std::fs::metadata(&disk).unwrap().len();
    let v = agent.run(
        "standby.prepare_image",
        json!({
            "image_info": {
                "id": "whole", "urls": [server.url("disk.img")], "disk_format": "raw",
                "stream_raw_images": true, "os_hash_algo": "sha256",
                "os_hash_value": sha256_of(&image),
            },
            "configdrive": configdrive,
        }),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", agent.log());
    let out = Command::new("sgdisk")
        .arg("-v")
        .arg(&disk)
        .output()
        .unwrap();
    let verify = String::from_utf8_lossy(&out.stdout);
    assert!(verify.contains("No problems found"), "{verify}");
    assert_eq!(
        &read_at(&disk, disk_len - 512, 8)[..],
        b"EFI PART",
        "backup header at the end"
    );
    let (first, last, _, _) = sgdisk_info(&disk, 2);
    assert_eq!(
        (last + 1) * 512,
        disk_len - 33 * 512,
        "config drive ends at the last usable sector"
    );
    assert!(
        disk_len - first * 512 <= 64 * MIB + MIB,
        "within the last 64 MiB"
    );
    assert_eq!(read_at(&disk, first * 512, cd_bytes.len()), cd_bytes);
    assert_eq!(
        read_at(&disk, 2 * MIB, 8192),
        vec![0x5A; 8192],
        "image data intact"
    );
    let v = agent.run("standby.get_partition_uuids", json!({}));
    assert_eq!(v["command_result"], json!({"root uuid": "0x00000000"}));
}
