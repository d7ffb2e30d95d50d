//! The native image pipeline behind `standby.prepare_image`, the native
//! `write_image` deploy step, `standby.get_partition_uuids` and
//! `image.install_bootloader`, against a tiny image server on 127.0.0.1
//! and a simulated disk file (`<root>/dev/sda`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_api::ironic_image::WriteOptions;
use agent_api::ImageSettings;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{agent_with, node, ports, TestAgent};

const DISK_BYTES: u64 = 8 << 20;
const DISK_ID: u32 = 0x1234_5678;

/// A 3 MiB raw whole-disk image: an MBR (disk id, one Linux partition) and
/// a recognisable data pattern.
fn disk_image(with_table: bool) -> Vec<u8> {
    let mut img = vec![0u8; 3 << 20];
    if with_table {
        img[440..444].copy_from_slice(&DISK_ID.to_le_bytes());
        let entry = &mut img[446..462];
        entry[4] = 0x83; // Linux
        entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
        entry[12..16].copy_from_slice(&4096u32.to_le_bytes());
        img[510] = 0x55;
        img[511] = 0xAA;
    }
    for (i, b) in img[1 << 20..].iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    img
}

fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Serves `files` over HTTP/1.1 on 127.0.0.1 (one request per
/// connection) and counts the requests.
struct ImageServer {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
}

impl ImageServer {
    async fn start(files: HashMap<String, Vec<u8>>) -> ImageServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let files = Arc::new(files);
        let count = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let files = files.clone();
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let reply = match files.get(&path) {
                        Some(body) => {
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            )
                            .into_bytes();
                            r.extend_from_slice(body);
                            r
                        }
                        None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                            .to_vec(),
                    };
                    let _ = sock.write_all(&reply).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        ImageServer { addr, requests }
    }

    fn url(&self, name: &str) -> String {
        format!("http://{}/{name}", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// An agent with the native pipeline enabled and an 8 MiB `/dev/sda`.
fn imaging_agent(md5_allowed: bool) -> TestAgent {
    let t = agent_with(|c| {
        c.image = Some(ImageSettings {
            write: WriteOptions {
                md5_allowed,
                retries: 0,
                retry_interval: Duration::ZERO,
                connect_timeout: Duration::from_secs(10),
                ..WriteOptions::default()
            },
            ..ImageSettings::default()
        })
    });
    let dev = t.root.path().join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    let f = std::fs::File::create(dev.join("sda")).unwrap();
    f.set_len(DISK_BYTES).unwrap();
    std::fs::File::create(dev.join("sdb"))
        .unwrap()
        .set_len(DISK_BYTES)
        .unwrap();
    t
}

fn disk(t: &TestAgent, name: &str) -> Vec<u8> {
    std::fs::read(t.root.path().join("dev").join(name)).unwrap()
}

fn image_info(server: &ImageServer, name: &str, data: &[u8]) -> Value {
    json!({
        "id": name, "urls": [server.url(name)], "disk_format": "raw", "container_format": null,
        "stream_raw_images": true, "os_hash_algo": "sha256", "os_hash_value": sha256(data),
        "node_uuid": node()["uuid"],
    })
}

fn write_image_step(info: &Value) -> Value {
    json!({"interface": "deploy", "step": "write_image", "args": {"image_info": info, "configdrive": null}})
}

#[tokio::test]
async fn prepare_image_validator_answers_400_and_records_nothing() {
    let t = imaging_agent(false);
    t.post_cmd(
        "standby.prepare_image",
        json!({"image_info": {"urls": ["http://127.0.0.1:1/x"], "checksum": "a".repeat(64)}}),
        false,
    )
    .await
    .assert_fault(
        400,
        "Invalid command parameters: Image is missing 'id' field.",
    );
    // md5-length checksum with md5 disabled (Ironic's lookup config).
    let r = t
        .post_cmd(
            "standby.prepare_image",
            json!({"image_info": {"id": "x", "urls": ["http://127.0.0.1:1/x"], "checksum": "b".repeat(32)}}),
            false,
        )
        .await;
    assert_eq!(
        r.status.as_u16(),
        400,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    assert!(r.json()["faultstring"]
        .as_str()
        .unwrap()
        .contains("md5 checksums are disabled"));
    assert!(
        t.list().await.is_empty(),
        "validator failures record nothing"
    );
}

#[tokio::test]
async fn deploy_steps_list_write_image_once_as_native() {
    let t = imaging_agent(true);
    let r = t
        .post_cmd(
            "deploy.get_deploy_steps",
            json!({"node": node(), "ports": ports()}),
            true,
        )
        .await
        .json();
    let steps = &r["command_result"]["deploy_steps"];
    let all: Vec<(&str, &str)> = steps
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(m, l)| {
            l.as_array()
                .unwrap()
                .iter()
                .map(move |s| (m.as_str(), s["step"].as_str().unwrap()))
        })
        .collect();
    let writes: Vec<_> = all.iter().filter(|(_, s)| *s == "write_image").collect();
    assert_eq!(
        writes,
        [&("GenericHardwareManager", "write_image")],
        "{steps}"
    );
    let w = steps["GenericHardwareManager"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "write_image")
        .unwrap();
    assert_eq!(
        w,
        &json!({"step": "write_image", "priority": 0, "interface": "deploy", "reboot_requested": false})
    );
    // The managers' other deploy steps are still there.
    assert!(all.contains(&("VendorHardwareManager", "update_firmware")));
}

#[tokio::test]
async fn write_image_step_writes_the_simulated_disk_natively() {
    let img = disk_image(true);
    let server = ImageServer::start(HashMap::from([("/disk.img".to_string(), img.clone())])).await;
    let t = imaging_agent(true);
    let info = image_info(&server, "disk.img", &img);
    let step = write_image_step(&info);

    let r = t
        .post_cmd(
            "deploy.execute_deploy_step",
            json!({"step": step, "node": node(), "ports": ports(), "deploy_version": {"generic_hardware_manager": "1.2", "vendor_hardware_manager": "1.0"}}),
            false,
        )
        .await
        .json();
    assert_eq!(r["command_status"], "RUNNING");
    let done = t.settle().await;
    assert_eq!(done["command_status"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["command_result"],
        json!({
            "deploy_result": {"result": "prepare_image: image (disk.img) written to device /dev/sda root_uuid=0x12345678"},
            "deploy_step": step,
        })
    );
    let sda = disk(&t, "sda");
    assert_eq!(sda.len() as u64, DISK_BYTES, "the disk keeps its size");
    assert_eq!(&sda[..img.len()], &img[..], "the disk holds the image");
    assert!(sda[img.len()..].iter().all(|b| *b == 0));
    assert!(
        disk(&t, "sdb").iter().all(|b| *b == 0),
        "other disk untouched"
    );
    assert!(
        !t.managers
            .calls
            .lock()
            .unwrap()
            .iter()
            .any(|c| c.name == "write_image"),
        "the managers never saw write_image"
    );

    let uuids = t
        .post_cmd("standby.get_partition_uuids", json!({}), true)
        .await
        .json();
    assert_eq!(uuids["command_result"], json!({"root uuid": "0x12345678"}));

    // Same image id again: nothing is downloaded, the answer is the same.
    let before = server.requests();
    t.post_cmd(
        "deploy.execute_deploy_step",
        json!({"step": step, "node": node(), "ports": ports()}),
        false,
    )
    .await;
    let again = t.settle().await;
    assert_eq!(again["command_status"], "SUCCEEDED", "{again}");
    assert_eq!(again["command_result"], done["command_result"]);
    assert_eq!(server.requests(), before, "no second download");
}

#[tokio::test]
async fn write_image_goes_to_the_device_the_managers_pick() {
    let img = disk_image(true);
    let server = ImageServer::start(HashMap::from([("/disk.img".to_string(), img.clone())])).await;
    let t = imaging_agent(true);
    *t.managers.install_device.lock().unwrap() = "/dev/sdb".into();
    let r = t
        .post_cmd(
            "standby.prepare_image",
            json!({"image_info": image_info(&server, "disk.img", &img)}),
            false,
        )
        .await;
    assert_eq!(r.json()["command_status"], "RUNNING");
    let done = t.settle().await;
    assert_eq!(done["command_status"], "SUCCEEDED", "{done}");
    assert_eq!(
        done["command_result"],
        json!({"result": "prepare_image: image (disk.img) written to device /dev/sdb root_uuid=0x12345678"})
    );
    assert_eq!(&disk(&t, "sdb")[..img.len()], &img[..]);
    assert!(disk(&t, "sda").iter().all(|b| *b == 0));
}

#[tokio::test]
async fn pipeline_errors_name_their_culprit_and_leave_no_boot_sector() {
    let img = disk_image(true);
    let bare = disk_image(false);
    let server = ImageServer::start(HashMap::from([
        ("/disk.img".to_string(), img.clone()),
        ("/bare.img".to_string(), bare.clone()),
    ]))
    .await;
    let t = imaging_agent(true);

    // Wrong digest: ImageChecksumError, the first MiB never reached the disk.
    let mut info = image_info(&server, "disk.img", &img);
    info["os_hash_value"] = json!(sha256(b"something else"));
    t.post_cmd(
        "deploy.execute_deploy_step",
        json!({"step": write_image_step(&info), "node": node(), "ports": ports()}),
        false,
    )
    .await;
    let r = t.settle().await;
    assert_eq!(r["command_status"], "FAILED");
    assert_eq!(r["command_error"]["type"], "ImageChecksumError", "{r}");
    assert!(r["command_error"]["details"]
        .as_str()
        .unwrap()
        .contains(&server.url("disk.img")));
    assert!(disk(&t, "sda")[..1 << 20].iter().all(|b| *b == 0));
    assert_eq!(
        t.post_cmd("standby.get_partition_uuids", json!({}), true)
            .await
            .json()["command_result"],
        json!({})
    );

    // 404: ImageDownloadFatalError naming the URL.
    let mut info = image_info(&server, "missing.img", &img);
    info["urls"] = json!([server.url("missing.img")]);
    t.post_cmd("standby.prepare_image", json!({"image_info": info}), false)
        .await;
    let r = t.settle().await;
    assert_eq!(r["command_error"]["type"], "ImageDownloadFatalError", "{r}");
    assert!(r["command_error"]["details"]
        .as_str()
        .unwrap()
        .contains("missing.img"));

    // No partition table: refused after the write, like IPA.
    t.post_cmd(
        "deploy.execute_deploy_step",
        json!({"step": write_image_step(&image_info(&server, "bare.img", &bare)), "node": node(), "ports": ports()}),
        false,
    )
    .await;
    let r = t.settle().await;
    assert_eq!(r["command_error"]["type"], "DeploymentError", "{r}");
    assert!(
        r["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("No partitions found on the device /dev/sda"),
        "{r}"
    );

    // An install device outside the simulated root is refused.
    *t.managers.install_device.lock().unwrap() = "/dev/../etc/passwd".into();
    t.post_cmd(
        "standby.prepare_image",
        json!({"image_info": image_info(&server, "disk.img", &img)}),
        false,
    )
    .await;
    let r = t.settle().await;
    assert_eq!(r["command_error"]["type"], "DeviceNotFound", "{r}");

    // Missing image_info in the step: IPA's TypeError, wrapped.
    let step = json!({"interface": "deploy", "step": "write_image", "args": {}});
    t.post_cmd(
        "deploy.execute_deploy_step",
        json!({"step": step, "node": node(), "ports": ports()}),
        false,
    )
    .await;
    let r = t.settle().await;
    assert_eq!(r["command_error"]["type"], "DeploymentError", "{r}");
    assert!(r["command_error"]["details"]
        .as_str()
        .unwrap()
        .starts_with("Unexpected exception performing deploy step write_image. TypeError:"));
}

#[tokio::test]
async fn install_bootloader_whole_disk_bios_uefi() {
    let t = imaging_agent(true);
    let run = |params: Value| {
        let t = &t;
        async move {
            t.post_cmd("image.install_bootloader", params, false).await;
            t.settle().await
        }
    };
    // BIOS, whole disk: nothing to do.
    let r = run(json!({"root_uuid": "0x00000000", "efi_system_part_uuid": null, "prep_boot_part_uuid": null, "target_boot_mode": "bios"})).await;
    assert_eq!(r["command_status"], "SUCCEEDED", "{r}");
    assert_eq!(r["command_result"], Value::Null);
    // BIOS, a real root uuid: legacy GRUB is disabled by default.
    let r = run(json!({"root_uuid": "1be8dcb4-6d1c-4a5b-9e4e-0123456789ab"})).await;
    assert_eq!(r["command_error"]["type"], "InvalidImage", "{r}");
    assert!(r["command_error"]["details"]
        .as_str()
        .unwrap()
        .contains("CVE-2026-43003"));
    // ... unless failures are ignored.
    let r = run(json!({"root_uuid": "1be8dcb4", "ignore_bootloader_failure": true})).await;
    assert_eq!(r["command_status"], "SUCCEEDED", "{r}");
    assert!(t.actions().is_empty());

    // UEFI ramdisk without efibootmgr (this root has no stand-in): boot
    // entries are not managed; a GPT whole-disk image needs nothing else,
    // any other root uuid falls to the (disabled) GRUB path, as in IPA.
    // The efibootmgr path itself: tests/tests/partition_image.rs and
    // runtime/image/tests/efi.rs.
    std::fs::create_dir_all(t.root.path().join("sys/firmware/efi")).unwrap();
    let r = run(json!({"root_uuid": "0x00000000", "efi_system_part_uuid": null, "prep_boot_part_uuid": null, "target_boot_mode": "uefi"})).await;
    assert_eq!(r["command_status"], "SUCCEEDED", "{r}");
    let r = run(json!({"root_uuid": "0x12345678", "efi_system_part_uuid": null, "prep_boot_part_uuid": null, "target_boot_mode": "uefi"})).await;
    assert_eq!(r["command_error"]["type"], "InvalidImage", "{r}");
    assert!(t.actions().is_empty());
}

#[tokio::test]
async fn without_the_pipeline_prepare_image_fails_clearly() {
    // The default ApiConfig has no image pipeline: write_image stays with
    // the managers and prepare_image says why it cannot run.
    let t = crate::common::agent();
    t.post_cmd(
        "standby.prepare_image",
        json!({"image_info": {"id": "x", "urls": ["http://127.0.0.1:1/x"], "checksum": "a".repeat(64)}}),
        false,
    )
    .await;
    let r = t.settle().await;
    assert_eq!(r["command_error"]["type"], "CommandExecutionError", "{r}");
    assert!(r["command_error"]["details"]
        .as_str()
        .unwrap()
        .contains("not enabled"));
}
