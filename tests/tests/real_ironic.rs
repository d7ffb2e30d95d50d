//! The agent against a real Ironic (see `agent_tests::ironic`): inspection,
//! cleaning (plain HTTP and auto-TLS), surviving an Ironic restart, and
//! direct deploys of raw and qcow2 images chosen by a root device hint.

use std::process::Command;
use std::time::{Duration, Instant};

use agent_tests::ironic::*;
use serde_json::{json, Value};

fn agent_phases(require_tls: bool, restart_ironic: bool) {
    if skip() {
        return;
    }
    let _one = one_ironic();
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, mac) = sim_machine(dir.path());
    let mut ironic = Ironic::start(require_tls);
    let uuid = ironic.enroll(&mac);
    let port = agent_tests::free_port();
    let extra = if require_tls {
        ""
    } else {
        "ipa-advertise-protocol=http"
    };

    // Inspection.
    let t = Instant::now();
    ironic.provision(&uuid, "inspect");
    ironic.wait_state(&uuid, &["inspect wait"], Duration::from_secs(60));
    let agent = start_agent(&root, &ironic, port, extra);
    let node = ironic.wait_state(&uuid, &["manageable"], Duration::from_secs(120));
    eprintln!("inspection: {:.1}s", t.elapsed().as_secs_f64());
    let (_, data) = ironic.call(
        reqwest::Method::GET,
        &format!("/v1/nodes/{uuid}/inventory"),
        None,
    );
    let out = Command::new(agent_tests::agent_binary())
        .args(["inventory", "--hardware-root"])
        .arg(&root)
        .args(["--managers-dir"])
        .arg(root.parent().expect("machine dir").join("managers"))
        .output()
        .expect("inventory");
    let local: Value = serde_json::from_slice(&out.stdout).expect("inventory JSON");
    assert_eq!(
        data["inventory"], local,
        "Ironic stored the machine's inventory"
    );
    assert_eq!(node["properties"]["cpu_arch"], local["cpu"]["architecture"]);
    drop(agent);

    // Cleaning (`provide`): a fresh agent, as after a reboot. Put a GPT
    // signature at both ends of the first disk, as a previous tenant would.
    let disk = root.join("dev/sda");
    let disk_len = std::fs::metadata(&disk).expect("disk").len();
    write_at(&disk, 512, b"EFI PART");
    write_at(&disk, disk_len - 512, b"EFI PART");
    let t = Instant::now();
    ironic.provision(&uuid, "provide");
    ironic.wait_state(&uuid, &["clean wait"], Duration::from_secs(60));
    let spawned = Instant::now();
    let _agent = start_agent(&root, &ironic, port, extra);
    // Start-up until Ironic has accepted and recorded the first heartbeat.
    let deadline = Instant::now() + Duration::from_secs(60);
    while ironic.node(&uuid)["driver_internal_info"]["agent_url"].is_null() {
        assert!(Instant::now() < deadline, "no heartbeat recorded");
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "agent start to first heartbeat recorded by Ironic (require_tls={require_tls}): {:.2}s",
        spawned.elapsed().as_secs_f64()
    );
    if restart_ironic {
        // The agent has heartbeated once; take Ironic away for a while.
        ironic.stop();
        std::thread::sleep(Duration::from_secs(8));
        ironic.launch();
    }
    let node = ironic.wait_state(&uuid, &["available"], Duration::from_secs(240));
    eprintln!(
        "cleaning (require_tls={require_tls}, restart={restart_ironic}): {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        read_at(&disk, 512, 8),
        vec![0; 8],
        "primary GPT header erased"
    );
    assert_eq!(
        read_at(&disk, disk_len - 512, 8),
        vec![0; 8],
        "backup GPT header erased"
    );
    let steps: Vec<String> = node["driver_internal_info"]["clean_steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s["step"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    // Ironic clears clean_steps at the end; the conductor log names the steps it ran.
    let log = std::fs::read_to_string(ironic.work.join("ironic.log")).unwrap_or_default();
    assert!(
        steps.is_empty() || steps.contains(&"erase_devices_metadata".to_string()),
        "{steps:?}"
    );
    assert!(
        log.contains("erase_devices_metadata"),
        "Ironic ran the metadata erase step"
    );
}

#[test]
fn agent_inspect_and_provide_plain_http() {
    agent_phases(false, false);
}

#[test]
fn agent_inspect_and_provide_auto_tls() {
    agent_phases(true, false);
}

#[test]
fn agent_survives_ironic_restart_during_heartbeats() {
    agent_phases(false, true);
}

// ---------------------------------------------------------------------------
// Direct deploy of a raw whole-disk image.

#[test]
fn agent_deploys_raw_then_qcow2_image_by_root_device_hint() {
    if skip() {
        return;
    }
    let _one = one_ironic();
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, mac) = sim_machine(dir.path());
    let (sda, sdb) = (root.join("dev/sda"), root.join("dev/sdb"));
    assert!(
        std::fs::metadata(&sda).expect("sda").len() < std::fs::metadata(&sdb).expect("sdb").len(),
        "the hint must pick the larger disk, not the default smallest one"
    );
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).expect("images dir");
    let image = images.join("disk.img");
    build_image(&image);
    let digest = sha256_of(&image);
    let server = ImageServer::start(&images);
    let serial = disk_serial(&root, "/dev/sdb");

    let ironic = Ironic::start(false);
    let uuid = ironic.enroll(&mac);
    let port = agent_tests::free_port();
    let extra = "ipa-advertise-protocol=http";

    let t = Instant::now();
    ironic.provision(&uuid, "provide");
    ironic.wait_state(&uuid, &["clean wait"], Duration::from_secs(60));
    let agent = start_agent(&root, &ironic, port, extra);
    ironic.wait_state(&uuid, &["available"], Duration::from_secs(240));
    drop(agent);
    let provide_s = t.elapsed().as_secs_f64();
    let sda_head = read_at(&sda, 0, 1 << 20);

    // Deploy: the root device hint names sdb's serial.
    ironic.patch(
        &uuid,
        json!([
            {"op": "add", "path": "/properties/root_device", "value": {"serial": serial}},
            {"op": "add", "path": "/instance_info", "value": {
                "image_source": server.url("disk.img"),
                "image_os_hash_algo": "sha256",
                "image_os_hash_value": digest,
                "image_disk_format": "raw",
            }},
        ]),
    );
    let t = Instant::now();
    ironic.provision(&uuid, "active");
    ironic.wait_state(&uuid, &["wait call-back"], Duration::from_secs(60));
    let agent = start_agent(&root, &ironic, port, extra);
    let node = ironic.wait_state(&uuid, &["active"], Duration::from_secs(240));
    drop(agent);
    let deploy_s = t.elapsed().as_secs_f64();
    assert!(
        disk_starts_with(&sdb, &image),
        "sdb holds the image byte for byte"
    );
    assert_eq!(read_at(&sda, 0, 1 << 20), sda_head, "sda untouched");
    assert_eq!(
        node["driver_internal_info"]["root_uuid_or_disk_id"], "0x5eed1234",
        "Ironic got the disk identifier from get_partition_uuids"
    );

    // Undeploy: deleting → cleaning → available; cleaning wipes sdb's table.
    let t = Instant::now();
    ironic.provision(&uuid, "deleted");
    ironic.wait_state(&uuid, &["clean wait"], Duration::from_secs(60));
    let agent = start_agent(&root, &ironic, port, extra);
    ironic.wait_state(&uuid, &["available"], Duration::from_secs(240));
    drop(agent);
    let undeploy_s = t.elapsed().as_secs_f64();
    assert_eq!(
        read_at(&sdb, 0, 512),
        vec![0; 512],
        "cleaning erased the deployed table"
    );
    eprintln!(
        "deploy by root device hint: provide {provide_s:.1}s, deploy {deploy_s:.1}s, undeploy {undeploy_s:.1}s"
    );

    // The same image as qcow2: the agent converts it onto the disk.
    let qcow2 = images.join("disk.qcow2");
    let st = Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&image)
        .arg(&qcow2)
        .status()
        .expect("qemu-img");
    assert!(st.success(), "qemu-img convert");
    ironic.patch(
        &uuid,
        json!([
            {"op": "add", "path": "/instance_info", "value": {
                "image_source": server.url("disk.qcow2"),
                "image_os_hash_algo": "sha256",
                "image_os_hash_value": sha256_of(&qcow2),
                "image_disk_format": "qcow2",
            }},
        ]),
    );
    let t = Instant::now();
    ironic.provision(&uuid, "active");
    ironic.wait_state(&uuid, &["wait call-back"], Duration::from_secs(60));
    let agent = start_agent(&root, &ironic, port, extra);
    ironic.wait_state(&uuid, &["active"], Duration::from_secs(240));
    drop(agent);
    assert!(
        disk_starts_with(&sdb, &image),
        "sdb holds the converted qcow2 image byte for byte"
    );
    eprintln!("qcow2 deploy: {:.1}s", t.elapsed().as_secs_f64());
}
