//! Fake managers, an in-process client and a raw HTTP/1.1 client.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_api::ironic_image::programs::ProgramRunner;
use agent_api::managers::StepProgressFn;
use agent_api::{AgentError, AgentState, ApiConfig, ManagerSteps, Managers, Recorder, StepKind};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

pub const TOKEN: &str = "tkn-1234";

/// A gate a fake step blocks on until the test opens it.
pub struct Gate {
    open: tokio::sync::watch::Sender<bool>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            open: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Gate {
    pub fn open(&self) {
        self.open.send_replace(true);
    }
    async fn wait(&self) {
        let mut rx = self.open.subscribe();
        // Never hang a test run forever.
        let _ = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(|open| *open)).await;
    }
}

/// What the fake did, for assertions.
#[derive(Debug, Clone)]
pub struct Call {
    pub kind: StepKind,
    pub name: String,
    pub args: Value,
    pub node_uuid: Value,
}

/// Fake managers: "GenericHardwareManager" (support 1) and
/// "VendorHardwareManager" (support 2) with generic-like steps.
pub struct FakeManagers {
    pub versions: Mutex<BTreeMap<String, String>>,
    pub gate: Gate,
    pub calls: Mutex<Vec<Call>>,
    /// What `os_install_device` answers (`/dev/sda`).
    pub install_device: Mutex<String>,
}

impl Default for FakeManagers {
    fn default() -> Self {
        let mut versions = BTreeMap::new();
        versions.insert("generic_hardware_manager".to_string(), "1.2".to_string());
        versions.insert("vendor_hardware_manager".to_string(), "1.0".to_string());
        Self {
            versions: Mutex::new(versions),
            gate: Gate::default(),
            calls: Mutex::new(Vec::new()),
            install_device: Mutex::new("/dev/sda".into()),
        }
    }
}

fn step(name: &str, priority: i64, interface: &str, abortable: bool) -> Value {
    let mut s = json!({"step": name, "priority": priority, "interface": interface, "reboot_requested": false});
    if abortable {
        s["abortable"] = json!(true);
    }
    s
}

#[async_trait::async_trait]
impl Managers for FakeManagers {
    async fn get_steps(
        &self,
        kind: StepKind,
        _node: &Value,
        _ports: &Value,
    ) -> Result<Vec<ManagerSteps>, AgentError> {
        let clean = kind == StepKind::Clean;
        let generic = match kind {
            StepKind::Clean => vec![
                step("erase_devices", 10, "deploy", true),
                step("erase_devices_metadata", 99, "deploy", true),
                step("erase_devices_express", 0, "deploy", true),
                step("slow_step", 0, "deploy", true),
                step("fail_step", 0, "deploy", true),
            ],
            StepKind::Deploy => vec![
                step("erase_devices_metadata", 0, "deploy", false),
                step("write_image", 0, "deploy", false),
            ],
            StepKind::Service => vec![step("burnin_cpu", 0, "deploy", true)],
        };
        let mut vendor_fw = json!({
            "step": "update_firmware", "priority": 0, "interface": "deploy",
            "reboot_requested": true, "abortable": false,
            "argsinfo": {"images": {"description": "firmware images", "required": true}}
        });
        if !clean {
            vendor_fw.as_object_mut().unwrap().remove("abortable");
        }
        Ok(vec![
            ManagerSteps {
                id: "VendorHardwareManager".into(),
                support: 2,
                steps: vec![vendor_fw, step("erase_devices", 5, "deploy", clean)],
                may_write_disks: false,
            },
            ManagerSteps {
                id: "GenericHardwareManager".into(),
                support: 1,
                steps: generic,
                may_write_disks: false,
            },
        ])
    }

    async fn execute_step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        _ports: &Value,
        args: &Value,
        progress: StepProgressFn,
    ) -> Result<Value, AgentError> {
        self.calls.lock().unwrap().push(Call {
            kind,
            name: name.to_string(),
            args: args.clone(),
            node_uuid: node.get("uuid").cloned().unwrap_or(Value::Null),
        });
        match name {
            "erase_devices_metadata" | "erase_devices_express" | "burnin_cpu" => Ok(Value::Null),
            "erase_devices" => Ok(json!({"/dev/loop0": null})),
            "slow_step" => {
                progress(Some(42), "erasing /dev/sda");
                self.gate.wait().await;
                Ok(json!("done"))
            }
            "fail_step" => Err(AgentError::new("BlockDeviceEraseError", "disk on fire")),
            "update_firmware" => {
                Ok(json!({"flashed": args["images"].clone(), "args": args.clone()}))
            }
            "write_image" => Ok(
                json!({"result": "prepare_image: image (lab-disk.img) written to device /dev/loop0 root_uuid=0x05197912", "partition_uuids": {"root uuid": "0x05197912"}}),
            ),
            other => Err(AgentError::method_not_found(other)),
        }
    }

    fn versions(&self) -> Result<BTreeMap<String, String>, AgentError> {
        Ok(self.versions.lock().unwrap().clone())
    }

    async fn os_install_device(&self, _node: Option<&Value>) -> Result<String, AgentError> {
        Ok(self.install_device.lock().unwrap().clone())
    }

    async fn inventory(&self) -> Result<Value, AgentError> {
        Ok(
            json!({"cpu": {"count": 2, "architecture": "x86_64"}, "memory": {"total": 2147483648u64}, "interfaces": [], "disks": []}),
        )
    }
}

/// An agent over fake managers on a temporary simulated machine.
pub struct TestAgent {
    pub state: AgentState,
    pub router: Router,
    pub managers: Arc<FakeManagers>,
    pub root: tempfile::TempDir,
}

pub fn agent() -> TestAgent {
    agent_with(|_| {})
}

pub fn agent_with(tweak: impl FnOnce(&mut ApiConfig)) -> TestAgent {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join(".ironic-sim")).unwrap();
    std::fs::create_dir_all(root.path().join("sys/class/net/eth0")).unwrap();
    std::fs::create_dir_all(root.path().join("proc")).unwrap();
    std::fs::create_dir_all(root.path().join("var/log")).unwrap();
    std::fs::write(
        root.path().join("proc/cmdline"),
        "BOOT_IMAGE=vmlinuz ipa-debug=1\n",
    )
    .unwrap();
    std::fs::write(root.path().join("proc/meminfo"), "MemTotal: 2048 kB\n").unwrap();
    std::fs::write(root.path().join("var/log/messages"), "agent booted\n").unwrap();
    let mut config = ApiConfig::new("127.0.0.1:9999".parse().unwrap(), root.path());
    // A simulated machine: its stand-ins only, skips recorded with its actions.
    config.programs = ProgramRunner::stand_ins(
        root.path().join(".ironic-sim/bin"),
        actions_file(root.path()),
    );
    config.version = "13.0.0".into();
    config.started_at = 1700000000.123;
    tweak(&mut config);
    let managers = Arc::new(FakeManagers::default());
    let state = AgentState::new(
        config,
        managers.clone(),
        Arc::new(Recorder::new(root.path(), actions_file(root.path()))),
    );
    state.set_token(Some(TOKEN.into()));
    let router = agent_api::router(state.clone());
    TestAgent {
        state,
        router,
        managers,
        root,
    }
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    /// Asserts a WSME fault with exactly this status and faultstring.
    pub fn assert_fault(&self, status: u16, faultstring: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.content_type(), "application/json");
        let code = if status >= 500 { "Server" } else { "Client" };
        assert_eq!(
            self.json(),
            json!({"faultcode": code, "faultstring": faultstring})
        );
    }
}

impl TestAgent {
    pub async fn request(&self, method: Method, uri: &str, body: impl Into<Body>) -> Reply {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "10.0.0.5:9999")
            .header("content-type", "application/json")
            .body(body.into())
            .unwrap();
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.request(Method::GET, uri, Body::empty()).await
    }

    /// POST /v1/commands/ with the test token.
    pub async fn post_cmd(&self, name: &str, params: Value, wait: bool) -> Reply {
        let uri = format!("/v1/commands/?wait={wait}&agent_token={TOKEN}");
        let body = json!({"name": name, "params": params}).to_string();
        self.request(Method::POST, &uri, body).await
    }

    pub async fn list(&self) -> Vec<Value> {
        let r = self
            .get(&format!("/v1/commands/?agent_token={TOKEN}"))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        r.json()["commands"].as_array().unwrap().clone()
    }

    /// Polls the list until the newest result is no longer RUNNING.
    pub async fn settle(&self) -> Value {
        for _ in 0..500 {
            let list = self.list().await;
            if let Some(last) = list.last() {
                if last["command_status"] != "RUNNING" {
                    return last.clone();
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("command never finished");
    }

    pub fn actions(&self) -> Vec<Value> {
        Recorder::read_actions(&actions_file(self.root.path()))
    }
}

/// Where the test machine's recorder writes.
pub fn actions_file(root: &std::path::Path) -> std::path::PathBuf {
    root.join(".ironic-sim/actions.jsonl")
}

pub fn node() -> Value {
    json!({"uuid": "5062a51c-ec9e-4a8d-844f-5a9dbc462eaf", "driver_internal_info": {}, "properties": {}, "instance_info": {}})
}

pub fn ports() -> Value {
    json!([{"uuid": "12d0b201-19b5-44d6-9869-8a7ca15a6984", "address": "52:54:00:12:34:56"}])
}

/// Checks the exact five-key shape of a result object.
pub fn assert_result_shape(r: &Value) {
    let obj = r.as_object().expect("result object");
    let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "id",
            "command_name",
            "command_status",
            "command_error",
            "command_result"
        ],
        "{r}"
    );
    let id = r["id"].as_str().unwrap();
    let uuid = uuid_parse(id);
    assert!(uuid, "not a UUID4: {id}");
}

fn uuid_parse(s: &str) -> bool {
    let b = s.as_bytes();
    s.len() == 36
        && b[8] == b'-'
        && b[13] == b'-'
        && b[18] == b'-'
        && b[23] == b'-'
        && b[14] == b'4'
        && s.chars().enumerate().all(|(i, c)| {
            [8, 13, 18, 23].contains(&i) || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
        })
}

/// A minimal HTTP/1.1 client over a real socket (keep-alive or not).
pub async fn raw_http(addr: SocketAddr, request: &str) -> std::io::Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..pos]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= pos + 4 + len {
                let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
                let body = &buf[pos + 4..pos + 4 + len];
                let v = serde_json::from_slice(body).unwrap_or(Value::Null);
                return Ok((status, v));
            }
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "connection closed before a full reply",
    ))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn post_request(path: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub fn read_file(root: &Path, rel: &str) -> String {
    std::fs::read_to_string(root.join(rel)).unwrap()
}
