//! The agent binary, standalone, on a simulated machine of the test's own,
//! driven through its API (`wait=true` commands).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ironic_sim::{BootMode, MachineDescription, SimMachine};
use serde_json::{json, Value};

const TOKEN: &str = "sim-agent-token";

/// A standalone agent; killed on drop.
pub struct SimAgent {
    child: Child,
    pub port: u16,
    pub sim: SimMachine,
    _managers: tempfile::TempDir,
    http: reqwest::blocking::Client,
}

impl Drop for SimAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SimAgent {
    /// The default machine in `boot` mode under `dir`, with `config` as the
    /// agent's configuration file.
    pub fn start(dir: &Path, boot: BootMode, config: &str) -> SimAgent {
        let mut desc =
            MachineDescription::from_toml(ironic_sim::DEFAULT_MACHINE, Path::new("default.toml"))
                .expect("default machine");
        desc.boot.mode = boot;
        let sim = ironic_sim::create(&desc, &dir.join("machine")).expect("simulated machine");
        let conf = dir.join("agent.conf");
        std::fs::write(&conf, config).expect("agent.conf");
        let managers = crate::managers_dir(&[("generic_manager", "generic")]);
        let port = crate::free_port();
        let log = std::fs::File::create(sim.root.join(".ironic-sim/agent.log")).expect("log");
        let child = Command::new(crate::agent_binary())
            .arg("--standalone")
            .arg("--hardware-root")
            .arg(&sim.root)
            .arg("--managers-dir")
            .arg(managers.path())
            .arg("--cache-dir")
            .arg(crate::shared_cwasm_cache())
            .arg("--config-file")
            .arg(&conf)
            .args(["--listen-host", "127.0.0.1", "--listen-port"])
            .arg(port.to_string())
            .args(["--agent-token", TOKEN])
            .stdin(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start the agent");
        let agent = SimAgent {
            child,
            port,
            sim,
            _managers: managers,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(300))
                .build()
                .expect("http client"),
        };
        let t = Instant::now();
        while !agent
            .http
            .get(format!("http://127.0.0.1:{port}/v1/status"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                t.elapsed() < Duration::from_secs(120),
                "agent never served /v1/status:\n{}",
                agent.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        agent
    }

    /// Runs a command to completion and returns its record (or the HTTP
    /// error body).
    pub fn run(&self, name: &str, params: Value) -> Value {
        let r = self
            .http
            .post(format!(
                "http://127.0.0.1:{}/v1/commands/?wait=true&agent_token={TOKEN}",
                self.port
            ))
            .json(&json!({"name": name, "params": params}))
            .send()
            .expect("command request");
        r.json().expect("JSON answer")
    }

    pub fn disk(&self) -> PathBuf {
        self.sim.disk_path("sda")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.sim.root.join(".ironic-sim/agent.log")).unwrap_or_default()
    }

    /// Programs the machine has no stand-in for: what would have run
    /// (`program args...`).
    pub fn skipped(&self) -> Vec<String> {
        self.sim
            .recorded_actions()
            .into_iter()
            .filter(|a| a["action"] == "program_skipped")
            .map(|a| {
                let args: Vec<String> = a["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect();
                format!(
                    "{} {}",
                    a["program"].as_str().unwrap_or_default(),
                    args.join(" ")
                )
            })
            .collect()
    }
}
