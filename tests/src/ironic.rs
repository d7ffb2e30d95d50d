//! A real Ironic (PyPI `ironic==39.0.0`, sqlite, noauth, fake-hardware,
//! loopback only) for the protocol tests, and what they share: the agent
//! binary on a simulated machine, an image server, disk helpers.
//! `tests/ironic/venv.sh` installs Ironic once (cached in
//! `target/ironic-venv`); each test starts its own Ironic on a free
//! 127.0.0.1 port with `tests/ironic/start-ironic.sh`.
//!
//! `IRONIC_TESTS=skip` skips these suites (e.g. on a machine without Python).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One real Ironic at a time: each is a heavy Python process, and several
/// starting at once on a small machine only makes every phase slower.
pub static ONE_IRONIC: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn one_ironic() -> std::sync::MutexGuard<'static, ()> {
    ONE_IRONIC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn skip() -> bool {
    std::env::var("IRONIC_TESTS").is_ok_and(|v| v == "skip")
}

/// A running Ironic; stopped (whole process group) on drop.
pub struct Ironic {
    pid: i32,
    pub port: u16,
    pub work: PathBuf,
    http: reqwest::blocking::Client,
    require_tls: bool,
    /// Appended to ironic.conf (`IRONIC_EXTRA_CONF` of start-ironic.sh).
    extra_conf: String,
    _dir: Option<tempfile::TempDir>,
}

impl Ironic {
    pub fn start(require_tls: bool) -> Ironic {
        Ironic::start_with_conf(require_tls, "")
    }

    /// An Ironic whose ironic.conf ends with `extra_conf` (later values win).
    pub fn start_with_conf(require_tls: bool, extra_conf: &str) -> Ironic {
        Ironic::start_on_with_conf(crate::free_port(), require_tls, extra_conf)
    }

    /// [`Ironic::start`] on a chosen port (for configuration that names it,
    /// e.g. the API URL a VM reaches it by).
    pub fn start_on(port: u16, require_tls: bool) -> Ironic {
        Ironic::start_on_with_conf(port, require_tls, "")
    }

    fn start_on_with_conf(port: u16, require_tls: bool, extra_conf: &str) -> Ironic {
        let dir = tempfile::Builder::new()
            .prefix("ironic-")
            .tempdir()
            .expect("tempdir");
        let work = dir.path().to_path_buf();
        let mut me = Ironic {
            pid: 0,
            port,
            work,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("http"),
            require_tls,
            extra_conf: extra_conf.to_string(),
            _dir: Some(dir),
        };
        me.launch();
        me
    }

    pub fn launch(&mut self) {
        let script = crate::workspace_root().join("tests/ironic/start-ironic.sh");
        // Appended to whatever the test's environment already asks for.
        let extra = [
            std::env::var("IRONIC_EXTRA_CONF").unwrap_or_default(),
            self.extra_conf.clone(),
        ]
        .join("\n");
        let out = Command::new("bash")
            .arg(script)
            .arg(&self.work)
            .arg(self.port.to_string())
            .arg(if self.require_tls { "True" } else { "False" })
            .arg("10")
            .env("IRONIC_EXTRA_CONF", extra)
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
    pub fn stop(&mut self) {
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

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
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

    pub fn enroll(&self, mac: &str) -> String {
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

    pub fn provision(&self, uuid: &str, target: &str) {
        self.provision_with(uuid, target, json!({}));
    }

    /// A provision-state change with more request fields (`clean_steps`,
    /// `configdrive`, ...) beside `target`.
    pub fn provision_with(&self, uuid: &str, target: &str, fields: Value) {
        let mut request = fields;
        request["target"] = json!(target);
        let (s, body) = self.call(
            reqwest::Method::PUT,
            &format!("/v1/nodes/{uuid}/states/provision"),
            Some(request),
        );
        assert_eq!(s, 202, "{target}: {body}");
    }

    /// A JSON-patch of the node; panics unless Ironic accepts it.
    pub fn patch(&self, uuid: &str, ops: Value) {
        let (s, body) = self.call(
            reqwest::Method::PATCH,
            &format!("/v1/nodes/{uuid}"),
            Some(ops),
        );
        assert_eq!(s, 200, "{body}");
    }

    pub fn node(&self, uuid: &str) -> Value {
        self.call(reqwest::Method::GET, &format!("/v1/nodes/{uuid}"), None)
            .1
    }

    /// Polls until the node is in one of `states`; panics on a `* failed`
    /// state or timeout with the node's last error.
    pub fn wait_state(&self, uuid: &str, states: &[&str], timeout: Duration) -> Value {
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

    /// Runs a manual clean of `steps` and waits until it is over (the node
    /// back in `manageable` or in `clean failed`, within 300 s); returns
    /// the node.
    pub fn manual_clean(&self, uuid: &str, steps: Value) -> Value {
        let before = self.node(uuid)["provision_updated_at"].clone();
        self.provision_with(uuid, "clean", json!({"clean_steps": steps}));
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let node = self.node(uuid);
            let state = node["provision_state"].as_str().unwrap_or_default();
            let moved = node["provision_updated_at"] != before;
            if moved && (state == "manageable" || state == "clean failed") {
                return node;
            }
            assert!(
                Instant::now() < deadline,
                "manual clean still in {state}: {}",
                node["last_error"]
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

/// An Ironic with fast track (the agent, and what it loaded, stays up
/// between operations), a manageable node enrolled for `mac` and powered
/// on, and the agent of the simulated machine at `root` heartbeating to it:
/// where an operator's manual cleaning starts.
pub fn fast_track_node(root: &Path, mac: &str) -> (Ironic, String, Agent) {
    let ironic = Ironic::start_with_conf(false, "[deploy]\nfast_track = True\n");
    let uuid = ironic.enroll(mac);
    let (s, body) = ironic.call(
        reqwest::Method::PUT,
        &format!("/v1/nodes/{uuid}/states/power"),
        Some(json!({"target": "power on"})),
    );
    assert_eq!(s, 202, "{body}");
    let agent = start_agent(
        root,
        &ironic,
        crate::free_port(),
        "ipa-advertise-protocol=http",
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    while ironic.node(&uuid)["driver_internal_info"]["agent_last_heartbeat"].is_null() {
        assert!(
            Instant::now() < deadline,
            "no heartbeat while manageable (fast track)"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (ironic, uuid, agent)
}

impl Drop for Ironic {
    fn drop(&mut self) {
        self.stop();
    }
}

// ---------------------------------------------------------------------------
// The real agent binary driven by the real Ironic.

pub struct Agent {
    pub child: Child,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A simulated machine and a managers directory holding only the generic
/// manager (as `generic.wasm`, the name the built-in grants know).
pub fn sim_machine(dir: &Path) -> (PathBuf, String) {
    sim_machine_described(dir, None)
}

/// [`sim_machine`] from a machine description (TOML text) instead of the
/// default one.
pub fn sim_machine_described(dir: &Path, description: Option<&str>) -> (PathBuf, String) {
    let root = dir.join("machine");
    let managers = dir.join("managers");
    std::fs::create_dir_all(&managers).expect("managers dir");
    std::fs::copy(
        crate::guest_component("generic_manager"),
        managers.join("generic.wasm"),
    )
    .expect("copy the generic manager");
    let mut create = Command::new(crate::agent_binary());
    create.args(["sim", "create"]).arg(&root);
    if let Some(text) = description {
        let file = dir.join("machine.toml");
        std::fs::write(&file, text).expect("machine description");
        create.arg("--machine").arg(file);
    }
    let st = create.status().expect("sim create");
    assert!(st.success());
    let out = Command::new(crate::agent_binary())
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

pub fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open disk");
    f.write_all_at(data, offset).expect("write disk");
}

pub fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(path).expect("open disk");
    let mut buf = vec![0; len];
    f.read_exact_at(&mut buf, offset).expect("read disk");
    buf
}

pub fn start_agent(root: &Path, ironic: &Ironic, port: u16, cmdline_extra: &str) -> Agent {
    std::fs::write(
        root.join("proc/cmdline"),
        format!(
            "ipa-api-url={} ipa-inspection-collectors=default,logs {cmdline_extra}",
            ironic.url()
        ),
    )
    .expect("cmdline");
    let child = Command::new(crate::agent_binary())
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

/// `python3 -m http.server` on 127.0.0.1 serving one directory; killed on drop.
pub struct ImageServer {
    child: Child,
    pub port: u16,
}

impl ImageServer {
    pub fn start(dir: &Path) -> ImageServer {
        let port = crate::free_port();
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

    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for ImageServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub const IMAGE_BYTES: u64 = 256 << 20;

/// A sparse raw whole-disk image: an msdos table (disk id 0x5eed1234, one
/// Linux partition from 1 MiB to the end) and pseudo-random data at 1 MiB
/// and in the last MiB, so a misplaced or partial write shows.
pub fn build_image(path: &Path) {
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

pub fn sha256_of(path: &Path) -> String {
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
pub fn disk_starts_with(disk: &Path, image: &Path) -> bool {
    let len = std::fs::metadata(image).expect("image").len();
    let chunk = 4u64 << 20;
    (0..len.div_ceil(chunk)).all(|i| {
        let off = i * chunk;
        let n = chunk.min(len - off) as usize;
        read_at(disk, off, n) == read_at(image, off, n)
    })
}

/// The serial of `device` in the simulated machine's inventory.
pub fn disk_serial(root: &Path, device: &str) -> String {
    let out = Command::new(crate::agent_binary())
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
