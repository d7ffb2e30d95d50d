//! The agent binary as a process on a simulated machine, standalone (no
//! Ironic): what the black-box API tests drive over a real socket.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::{agent_binary, free_port, managers_dir, shared_cwasm_cache};

/// The token every test agent is started with.
pub const TOKEN: &str = "process-test-token";

/// How to start an agent.
#[derive(Debug, Clone)]
pub struct AgentOptions<'a> {
    /// Components: `(crate, file stem)`.
    pub managers: Vec<(&'a str, &'a str)>,
    /// A grants file's content (`--grants`); `None`: the built-in grants.
    pub grants: Option<String>,
    /// A limits file's content (`--limits`).
    pub limits: Option<String>,
    /// Sidecar manifests: `(file stem, manifest text)` written as
    /// `<stem>.manifest.toml` (for components built without one).
    pub manifests: Vec<(&'a str, String)>,
    /// More flags.
    pub extra: Vec<String>,
    /// Wait until `/v1/status` answers.
    pub wait_for_api: bool,
}

impl Default for AgentOptions<'_> {
    fn default() -> Self {
        AgentOptions {
            managers: vec![("generic_manager", "generic")],
            grants: None,
            limits: None,
            manifests: Vec::new(),
            extra: Vec::new(),
            wait_for_api: true,
        }
    }
}

/// A running agent process; killed on drop.
pub struct Agent {
    child: Child,
    pub port: u16,
    pub machine: tempfile::TempDir,
    pub managers: tempfile::TempDir,
    pub http: reqwest::blocking::Client,
    /// When the process was started.
    pub started: Instant,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An agent with the generic manager and `extra` flags.
pub fn start(extra: &[&str]) -> Agent {
    start_with(AgentOptions {
        extra: extra.iter().map(|s| s.to_string()).collect(),
        ..AgentOptions::default()
    })
}

/// An agent as `opts` says.
pub fn start_with(opts: AgentOptions<'_>) -> Agent {
    let machine = tempfile::tempdir().expect("machine dir");
    let desc = ironic_sim::MachineDescription::from_toml(
        ironic_sim::DEFAULT_MACHINE,
        Path::new("default.toml"),
    )
    .expect("default machine");
    ironic_sim::create(&desc, machine.path()).expect("simulated machine");
    let managers = managers_dir(&opts.managers);
    for (stem, manifest) in &opts.manifests {
        std::fs::write(
            managers.path().join(format!("{stem}.manifest.toml")),
            manifest,
        )
        .expect("sidecar manifest");
    }
    let port = free_port();
    let mut command = Command::new(agent_binary());
    command
        .arg("--standalone")
        .arg("--hardware-root")
        .arg(machine.path())
        .arg("--managers-dir")
        .arg(managers.path())
        .arg("--cache-dir")
        .arg(shared_cwasm_cache())
        .args([
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            &port.to_string(),
            "--agent-token",
            TOKEN,
        ]);
    for (flag, content, name) in [
        ("--grants", &opts.grants, "grants.toml"),
        ("--limits", &opts.limits, "limits.toml"),
    ] {
        if let Some(content) = content {
            let path = machine.path().join(".ironic-sim").join(name);
            std::fs::write(&path, content).expect("write config file");
            command.arg(flag).arg(path);
        }
    }
    let started = Instant::now();
    let child = command
        .args(&opts.extra)
        .stdin(Stdio::null())
        // The agent's log stays with its machine (inspect it on failure).
        .stderr(
            std::fs::File::create(machine.path().join(".ironic-sim/agent.log")).expect("log file"),
        )
        .spawn()
        .expect("agent starts");
    let agent = Agent {
        child,
        port,
        machine,
        managers,
        http: reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client"),
        started,
    };
    if opts.wait_for_api {
        agent.wait_for_api(Duration::from_secs(120));
    }
    agent
}

impl Agent {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until `/v1/status` answers; panics with the log after `limit`.
    pub fn wait_for_api(&self, limit: Duration) {
        let t = Instant::now();
        while !self
            .http
            .get(self.url("/v1/status"))
            .timeout(Duration::from_secs(2))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                t.elapsed() < limit,
                "agent never served /v1/status; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's log (stderr) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.machine.path().join(".ironic-sim/agent.log"))
            .unwrap_or_default()
    }

    /// `POST /v1/commands/`: status and JSON reply.
    pub fn post(&self, name: &str, params: Value, wait: bool) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(&format!("/v1/commands/?wait={wait}&agent_token={TOKEN}")))
            .json(&json!({"name": name, "params": params}))
            .send()
            .expect("POST answered");
        assert_eq!(r.headers()["content-type"], "application/json");
        (r.status().as_u16(), r.json().expect("JSON reply"))
    }

    /// Runs an (async) command and polls it until it is done.
    pub fn run(&self, name: &str, params: Value) -> Value {
        let (status, v) = self.post(name, params, false);
        assert_eq!(status, 200, "{name}: {v}");
        let id = v["id"].as_str().expect("command id").to_string();
        let t = Instant::now();
        loop {
            let v: Value = self
                .http
                .get(self.url(&format!("/v1/commands/{id}?agent_token={TOKEN}")))
                .send()
                .expect("GET answered")
                .json()
                .expect("JSON reply");
            if v["command_status"] != "RUNNING" {
                return v;
            }
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "{name} never finished: {v}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs clean step `step` of the managers (`args` as its arguments).
    pub fn clean_step(&self, step: &str, args: Value, node: Value) -> Value {
        self.run(
            "clean.execute_clean_step",
            json!({
                "step": {"step": step, "interface": "deploy", "priority": 0, "args": args},
                "node": node,
                "ports": [],
            }),
        )
    }

    /// Every recorded system action's name.
    pub fn actions(&self) -> Vec<String> {
        std::fs::read_to_string(self.machine.path().join(".ironic-sim/actions.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["action"].as_str().map(str::to_string))
            .collect()
    }

    /// The managers directory's files, sorted.
    pub fn managers_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.managers.path())
            .expect("managers dir")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        files
    }

    /// True once connecting is refused, within `limit`.
    pub fn refused_within(&self, limit: Duration) -> bool {
        let t = Instant::now();
        while t.elapsed() < limit {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}
