//! The agent against a real Ironic (PyPI `ironic==39.0.0`, sqlite, noauth,
//! fake-hardware, loopback only). `tests/ironic/venv.sh` installs Ironic once
//! (cached in `target/ironic-venv`); each test starts its own Ironic on a
//! free 127.0.0.1 port with `tests/ironic/start-ironic.sh`.
//!
//! `IRONIC_TESTS=skip` skips the suite (e.g. on a machine without Python).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One real Ironic at a time: each is a heavy Python process, and several
/// starting at once on a small machine only makes every phase slower.
static ONE_IRONIC: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_ironic() -> std::sync::MutexGuard<'static, ()> {
    ONE_IRONIC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn skip() -> bool {
    std::env::var("IRONIC_TESTS").is_ok_and(|v| v == "skip")
}

/// A running Ironic; stopped (whole process group) on drop.
struct Ironic {
    pid: i32,
    port: u16,
    work: PathBuf,
    http: reqwest::blocking::Client,
    require_tls: bool,
    _dir: Option<tempfile::TempDir>,
}

impl Ironic {
    fn start(require_tls: bool) -> Ironic {
        let dir = tempfile::Builder::new()
            .prefix("ironic-")
            .tempdir()
            .expect("tempdir");
        let work = dir.path().to_path_buf();
        let mut me = Ironic {
            pid: 0,
            port: agent_tests::free_port(),
            work,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http"),
            require_tls,
            _dir: Some(dir),
        };
        me.launch();
        me
    }

    fn launch(&mut self) {
        let script = agent_tests::workspace_root().join("tests/ironic/start-ironic.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(&self.work)
            .arg(self.port.to_string())
            .arg(if self.require_tls { "True" } else { "False" })
            .arg("10")
            .stderr(Stdio::inherit())
            .output()
            .expect("running start-ironic.sh");
        assert!(
            out.status.success(),
            "Ironic did not start; see {}",
            self.work.display()
        );
        self.pid = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("pid");
    }

    /// Stops Ironic (SIGTERM, then SIGKILL) and waits until its port is closed.
    fn stop(&mut self) {
        if self.pid == 0 {
            return;
        }
        let group = format!("-{}", self.pid);
        let _ = Command::new("kill")
            .args(["-TERM", "--", &group])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && Path::new(&format!("/proc/{}", self.pid)).exists() {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        self.pid = 0;
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url()))
            .header("X-OpenStack-Ironic-API-Version", "1.115");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().expect("Ironic request");
        let status = resp.status().as_u16();
        let text = resp.text().unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn enroll(&self, mac: &str) -> String {
        let (s, node) = self.call(
            reqwest::Method::POST,
            "/v1/nodes",
            Some(json!({
                "driver": "fake-hardware", "boot_interface": "fake", "power_interface": "fake",
                "management_interface": "noop", "deploy_interface": "direct", "inspect_interface": "agent",
                "network_interface": "noop",
                "driver_info": {"deploy_forces_oob_reboot": true},
                "properties": {"cpu_arch": "x86_64"},
            })),
        );
        assert_eq!(s, 201, "{node}");
        let uuid = node["uuid"].as_str().expect("uuid").to_string();
        let (s, port) = self.call(
            reqwest::Method::POST,
            "/v1/ports",
            Some(json!({"node_uuid": uuid, "address": mac, "pxe_enabled": true})),
        );
        assert_eq!(s, 201, "{port}");
        let (s, body) = self.call(
            reqwest::Method::PUT,
            &format!("/v1/nodes/{uuid}/states/power"),
            Some(json!({"target": "power off"})),
        );
        assert_eq!(s, 202, "{body}");
        self.provision(&uuid, "manage");
        self.wait_state(&uuid, &["manageable"], Duration::from_secs(60));
        uuid
    }

    fn provision(&self, uuid: &str, target: &str) {
        let (s, body) = self.call(
            reqwest::Method::PUT,
            &format!("/v1/nodes/{uuid}/states/provision"),
            Some(json!({"target": target})),
        );
        assert_eq!(s, 202, "{target}: {body}");
    }

    fn node(&self, uuid: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/v1/nodes/{uuid}"), None)
            .1
    }

    /// Polls until the node is in one of `states`; panics on a `* failed`
    /// state or timeout with the node's last error.
    fn wait_state(&self, uuid: &str, states: &[&str], timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let node = self.node(uuid);
            let st = node["provision_state"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if states.contains(&st.as_str()) {
                return node;
            }
            assert!(
                !st.ends_with("failed"),
                "node in {st}: {}",
                node["last_error"]
            );
            assert!(
                Instant::now() < deadline,
                "timeout waiting for {states:?}; node in {st}: {}",
                node["last_error"]
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Ironic {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// The real agent binary driven by the real Ironic.

struct Agent {
    child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A simulated machine and a managers directory holding only the generic
/// manager (as `generic.wasm`, the name the built-in grants know).
fn sim_machine(dir: &Path) -> (PathBuf, String) {
    let root = dir.join("machine");
    let managers = dir.join("managers");
    std::fs::create_dir_all(&managers).expect("managers dir");
    std::fs::copy(
        agent_tests::guest_component("generic_manager"),
        managers.join("generic.wasm"),
    )
    .expect("copy the generic manager");
    let st = Command::new(agent_tests::agent_binary())
        .args(["sim", "create"])
        .arg(&root)
        .status()
        .expect("sim create");
    assert!(st.success());
    let out = Command::new(agent_tests::agent_binary())
        .args(["inventory", "--hardware-root"])
        .arg(&root)
        .args(["--managers-dir"])
        .arg(root.parent().expect("machine dir").join("managers"))
        .output()
        .expect("inventory");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: Value = serde_json::from_slice(&out.stdout).expect("inventory JSON");
    let mac = inv["interfaces"][0]["mac_address"]
        .as_str()
        .expect("a NIC with a MAC")
        .to_string();
    (root, mac)
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open disk");
    f.write_all_at(data, offset).expect("write disk");
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).expect("open disk");
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, offset).expect("read disk");
    buf
}

fn start_agent(root: &Path, ironic: &Ironic, port: u16, cmdline_extra: &str) -> Agent {
    std::fs::write(
        root.join("proc/cmdline"),
        format!(
            "ipa-api-url={} ipa-inspection-collectors=default,logs {cmdline_extra}",
            ironic.url()
        ),
    )
    .expect("cmdline");
    let child = Command::new(agent_tests::agent_binary())
        .arg("--hardware-root")
        .arg(root)
        .arg("--managers-dir")
        .arg(root.parent().expect("machine dir").join("managers"))
        .args([
            "--listen_host",
            "127.0.0.1",
            "--listen_port",
            &port.to_string(),
        ])
        .args([
            "--advertise_host",
            "127.0.0.1",
            "--advertise_port",
            &port.to_string(),
        ])
        .stderr(Stdio::inherit())
        .spawn()
        .expect("agent");
    Agent { child }
}

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

/// `python3 -m http.server` on 127.0.0.1 serving one directory; killed on drop.
struct ImageServer {
    child: Child,
    port: u16,
}

impl ImageServer {
    fn start(dir: &Path) -> ImageServer {
        let port = agent_tests::free_port();
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 http.server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "image server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        ImageServer { child, port }
    }

    fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const IMAGE_BYTES: u64 = 256 << 20;

/// A sparse raw whole-disk image: an msdos table (disk id 0x5eed1234, one
/// Linux partition from 1 MiB to the end) and pseudo-random data at 1 MiB
/// and in the last MiB, so a misplaced or partial write shows.
fn build_image(path: &Path) {
    let f = std::fs::File::create(path).expect("image file");
    f.set_len(IMAGE_BYTES).expect("image size");
    drop(f);
    let mut mbr = vec![0u8; 512];
    mbr[440..444].copy_from_slice(&0x5eed_1234u32.to_le_bytes());
    let entry = &mut mbr[446..462];
    entry[4] = 0x83;
    entry[8..12].copy_from_slice(&2048u32.to_le_bytes());
    entry[12..16].copy_from_slice(&((IMAGE_BYTES / 512 - 2048) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xAA;
    write_at(path, 0, &mbr);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    write_at(path, 1 << 20, &random(4 << 20));
    write_at(path, IMAGE_BYTES - (1 << 20), &random(1 << 20));
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("digest")
        .to_string()
}

/// True when `disk` starts with the bytes of `image` (compared in 4 MiB chunks).
fn disk_starts_with(disk: &Path, image: &Path) -> bool {
    let len = std::fs::metadata(image).expect("image").len();
    let chunk = 4u64 << 20;
    (0..len.div_ceil(chunk)).all(|i| {
        let off = i * chunk;
        let n = chunk.min(len - off) as usize;
        read_at(disk, off, n) == read_at(image, off, n)
    })
}

/// The serial of `device` in the simulated machine's inventory.
fn disk_serial(root: &Path, device: &str) -> String {
    let out = Command::new(agent_tests::agent_binary())
        .args(["inventory", "--hardware-root"])
        .arg(root)
        .args(["--managers-dir"])
        .arg(root.parent().expect("machine dir").join("managers"))
        .output()
        .expect("inventory");
    let inv: Value = serde_json::from_slice(&out.stdout).expect("inventory JSON");
    inv["disks"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == device))
        .and_then(|d| d["serial"].as_str())
        .unwrap_or_else(|| panic!("{device} has no serial in {}", inv["disks"]))
        .to_string()
}

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
    let (s, body) = ironic.call(
        reqwest::Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([
            {"op": "add", "path": "/properties/root_device", "value": {"serial": serial}},
            {"op": "add", "path": "/instance_info", "value": {
                "image_source": server.url("disk.img"),
                "image_os_hash_algo": "sha256",
                "image_os_hash_value": digest,
                "image_disk_format": "raw",
            }},
        ])),
    );
    assert_eq!(s, 200, "{body}");
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
    let (s, body) = ironic.call(
        reqwest::Method::PATCH,
        &format!("/v1/nodes/{uuid}"),
        Some(json!([
            {"op": "add", "path": "/instance_info", "value": {
                "image_source": server.url("disk.qcow2"),
                "image_os_hash_algo": "sha256",
                "image_os_hash_value": sha256_of(&qcow2),
                "image_disk_format": "qcow2",
            }},
        ])),
    );
    assert_eq!(s, 200, "{body}");
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
