//! A real Ironic (39.0.0) direct-deploys a partition image with a config
//! drive onto a simulated machine (see `agent_tests::ironic`).
//!
//! What Ironic needs for a partition image (read from its source):
//! `instance_info.image_type = "partition"` (`images.is_whole_disk_image`) and
//! `root_gb` (`deploy_utils.parse_instance_info`); no kernel/ramdisk, since the
//! boot option is `local`. It sends the layout keys in `image_info`
//! (`PARTITION_IMAGE_LABELS`), then reads `root uuid` from
//! `standby.get_partition_uuids` into
//! `driver_internal_info.root_uuid_or_disk_id` and calls
//! `image.install_bootloader` with it. With the agent's defaults (legacy GRUB
//! installation disabled, IPA `ImageExtension.install_bootloader`) that call
//! fails on a BIOS machine, as it does with IPA, so the agent runs with
//! `ipa-ignore-bootloader-failure=1`.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use agent_tests::ironic::*;
use serde_json::json;

const MIB: u64 = 1 << 20;
const ROOT_FS_UUID: &str = "2f6c1e0a-93b4-4d5e-8a7b-6c5d4e3f2a10";

#[test]
fn ironic_deploys_a_partition_image_with_a_config_drive() {
    if skip() {
        return;
    }
    let _one = one_ironic();
    let dir = tempfile::tempdir().unwrap();
    let (root, mac) = sim_machine(dir.path());
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let image = images.join("root.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(32 * MIB)
        .unwrap();
    let st = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-L", "root", "-U", ROOT_FS_UUID])
        .arg(&image)
        .status()
        .expect("mkfs.ext4 (e2fsprogs) on the test's own image file");
    assert!(st.success());
    let server = ImageServer::start(&images);
    let cd_bytes: Vec<u8> = (0..(2 * MIB + 777)).map(|i| (i * 13 % 251) as u8).collect();
    let configdrive = agent_tests::gzip_base64(&cd_bytes, dir.path(), 0);

    let ironic = Ironic::start(false);
    let uuid = ironic.enroll(&mac);
    let port = agent_tests::free_port();
    let extra = "ipa-advertise-protocol=http ipa-ignore-bootloader-failure=1";

    ironic.provision(&uuid, "provide");
    ironic.wait_state(&uuid, &["clean wait"], Duration::from_secs(60));
    let agent = start_agent(&root, &ironic, port, extra);
    ironic.wait_state(&uuid, &["available"], Duration::from_secs(240));
    drop(agent);

    ironic.patch(
        &uuid,
        json!([
            {"op": "add", "path": "/instance_info", "value": {
                "image_source": server.url("root.img"),
                "image_os_hash_algo": "sha256",
                "image_os_hash_value": sha256_of(&image),
                "image_disk_format": "raw",
                "image_type": "partition",
                "root_gb": 1,
            }},
        ]),
    );
    let t = Instant::now();
    ironic.provision_with(&uuid, "active", json!({"configdrive": configdrive}));
    ironic.wait_state(&uuid, &["wait call-back"], Duration::from_secs(60));
    let agent = start_agent(&root, &ironic, port, extra);
    let node = ironic.wait_state(&uuid, &["active"], Duration::from_secs(240));
    drop(agent);
    eprintln!("partition image deploy: {:.1}s", t.elapsed().as_secs_f64());

    assert_eq!(
        node["driver_internal_info"]["root_uuid_or_disk_id"], ROOT_FS_UUID,
        "Ironic stored the root file system's UUID from get_partition_uuids"
    );
    assert_eq!(node["driver_internal_info"]["is_whole_disk_image"], false);

    // The default machine boots BIOS: msdos table, config drive #1, root #2
    // (1 GiB, active), on the smallest disk of at least 4 GiB (sda).
    let disk = root.join("dev/sda");
    let mbr = read_at(&disk, 0, 512);
    let entry = |i: usize| {
        let e = &mbr[446 + i * 16..462 + i * 16];
        (
            e[0],
            e[4],
            u32::from_le_bytes(e[8..12].try_into().unwrap()) as u64 * 512,
            u32::from_le_bytes(e[12..16].try_into().unwrap()) as u64 * 512,
        )
    };
    let (cd_flag, _, cd_off, cd_len) = entry(0);
    let (root_flag, root_type, root_off, root_len) = entry(1);
    assert_eq!(
        (cd_flag, cd_off, cd_len),
        (0, MIB, 3 * MIB),
        "config drive partition"
    );
    assert_eq!(
        (root_flag, root_type, root_off, root_len),
        (0x80, 0x83, 4 * MIB, 1024 * MIB)
    );
    assert_eq!(
        read_at(&disk, cd_off, cd_bytes.len()),
        cd_bytes,
        "config drive on disk"
    );
    assert_eq!(
        read_at(&disk, root_off, 32 * MIB as usize),
        std::fs::read(&image).unwrap(),
        "root partition holds the image"
    );
}
