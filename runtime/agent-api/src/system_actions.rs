//! Machine-level side effects (power, network, flush, log sources) behind one
//! trait, so a simulated machine can record them instead of performing them.
//!
//! * [`RealSystem`] runs the real programs (`sync`, `poweroff`, `reboot`,
//!   `ip link set <if> down`, `journalctl`, ...). Tests never use it.
//! * [`Recorder`] appends each requested action as one JSON line to
//!   `<root>/.ironic-sim/actions.jsonl` and collects logs from files under the
//!   hardware root.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::errors::{AgentError, ErrorClass};

/// A machine-level action requested by a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SystemAction {
    /// Flush file-system buffers (`sync`).
    Sync,
    /// Power the machine off (`standby.power_off`).
    PowerOff,
    /// Reboot the machine (`standby.run_image`).
    Reboot,
    /// Bring every network interface down (`system.lockdown`).
    NetworkDown,
}

impl SystemAction {
    /// Stable name used in the recorder's JSON lines.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemAction::Sync => "sync",
            SystemAction::PowerOff => "power_off",
            SystemAction::Reboot => "reboot",
            SystemAction::NetworkDown => "network_down",
        }
    }
}

/// One member of the `collect_system_logs` tarball.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMember {
    /// Path inside the tar archive.
    pub name: String,
    /// Content.
    pub data: Vec<u8>,
}

/// Side effects on the machine the agent runs on. Calls are blocking.
pub trait SystemActions: Send + Sync + 'static {
    /// Performs (or records) `action`.
    fn perform(&self, action: SystemAction) -> Result<(), AgentError>;

    /// Log material for `log.collect_system_logs`, at most `cap` bytes in total.
    fn collect_logs(&self, cap: usize) -> Vec<LogMember>;
}

/// Performs actions for real on this machine.
#[derive(Debug, Default)]
pub struct RealSystem {
    /// Root of the hardware view (`/` on a real machine).
    pub root: PathBuf,
}

impl RealSystem {
    /// Real actions; `root` is only used to list network interfaces.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
}

/// How long any single helper program may run.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(30);

impl SystemActions for RealSystem {
    fn perform(&self, action: SystemAction) -> Result<(), AgentError> {
        tracing::warn!(action = action.as_str(), "performing system action");
        let run = |program: &str, args: &[&str]| -> Result<(), AgentError> {
            match run_capture(program, args, PROGRAM_TIMEOUT) {
                Some((true, _)) => Ok(()),
                Some((false, out)) => Err(AgentError::command_execution(format!(
                    "{program} {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out).trim()
                ))),
                None => Err(AgentError::command_execution(format!(
                    "{program} could not be run"
                ))),
            }
        };
        match action {
            SystemAction::Sync => run("sync", &[]),
            SystemAction::PowerOff => {
                let _ = run("sync", &[]);
                run("poweroff", &[])
                    .map_err(|e| AgentError::new(ErrorClass::SystemRebootError, e.details))
            }
            SystemAction::Reboot => {
                let _ = run("sync", &[]);
                run("reboot", &[])
                    .map_err(|e| AgentError::new(ErrorClass::SystemRebootError, e.details))
            }
            SystemAction::NetworkDown => {
                for iface in interfaces(&self.root) {
                    if let Err(e) = run("ip", &["link", "set", &iface, "down"]) {
                        tracing::warn!(%iface, error = %e.details, "could not bring interface down");
                    }
                }
                Ok(())
            }
        }
    }

    fn collect_logs(&self, cap: usize) -> Vec<LogMember> {
        let mut budget = Budget(cap);
        let mut members = Vec::new();
        match run_capture(
            "journalctl",
            &["--full", "--no-pager", "-b", "-n", "10000"],
            PROGRAM_TIMEOUT,
        ) {
            Some((true, out)) => members.push(budget.member("journal", out)),
            _ => collect_tree(&self.root, "var/log", &mut budget, &mut members),
        }
        let commands: &[(&str, &str, &[&str])] = &[
            ("df", "df", &["-a"]),
            ("dmesg", "dmesg", &[]),
            ("ip_addr", "ip", &["addr"]),
            (
                "lsblk",
                "lsblk",
                &["--all", "-o", "+UUID,PARTUUID,LABEL,PARTLABEL"],
            ),
            (
                "lsblk-full",
                "lsblk",
                &["--all", "--bytes", "--output-all", "--pairs"],
            ),
            ("mount", "mount", &[]),
            ("ps", "ps", &["-ef"]),
            ("efibootmgr", "efibootmgr", &["-v"]),
            ("iptables", "iptables", &["-L"]),
            ("multipath", "multipath", &["-ll"]),
        ];
        for (name, program, args) in commands {
            if budget.0 == 0 {
                break;
            }
            if let Some((_, out)) = run_capture(program, args, PROGRAM_TIMEOUT) {
                members.push(budget.member(name, out));
            }
        }
        collect_file(
            &self.root,
            "proc/mdstat",
            "mdstat",
            &mut budget,
            &mut members,
        );
        members
    }
}

/// Records actions for a simulated machine instead of performing them.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// The simulated machine's hardware root (logs and interfaces are read
    /// under it).
    root: PathBuf,
    /// One JSON object per recorded action.
    actions_file: PathBuf,
}

impl Recorder {
    /// A recorder for the simulated machine whose hardware root is `root`,
    /// appending to `actions_file`.
    pub fn new(root: impl Into<PathBuf>, actions_file: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            actions_file: actions_file.into(),
        }
    }

    /// Reads back every action recorded in `actions_file` (tests use this).
    pub fn read_actions(actions_file: &Path) -> Vec<Value> {
        std::fs::read_to_string(actions_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn append(&self, line: &Value) -> std::io::Result<()> {
        let path = &self.actions_file;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        // One write per line so concurrent appends never interleave.
        let mut text = line.to_string();
        text.push('\n');
        f.write_all(text.as_bytes())
    }
}

impl SystemActions for Recorder {
    fn perform(&self, action: SystemAction) -> Result<(), AgentError> {
        let mut line = json!({"action": action.as_str(), "time": crate::unix_now()});
        if action == SystemAction::NetworkDown {
            line["interfaces"] = json!(interfaces(&self.root));
        }
        tracing::info!(
            action = action.as_str(),
            "recording simulated system action"
        );
        self.append(&line).map_err(|e| {
            AgentError::command_execution(format!("could not record {}: {e}", action.as_str()))
        })
    }

    fn collect_logs(&self, cap: usize) -> Vec<LogMember> {
        let mut budget = Budget(cap);
        let mut members = Vec::new();
        for (path, name) in [
            ("proc/cmdline", "proc/cmdline"),
            ("proc/meminfo", "proc/meminfo"),
            ("proc/mdstat", "mdstat"),
            ("proc/mounts", "mount"),
        ] {
            collect_file(&self.root, path, name, &mut budget, &mut members);
        }
        collect_tree(&self.root, "var/log", &mut budget, &mut members);
        members
    }
}

/// Remaining byte budget for log collection.
struct Budget(usize);

impl Budget {
    /// Keeps the tail of `data` that fits (recent log lines matter most).
    fn member(&mut self, name: &str, mut data: Vec<u8>) -> LogMember {
        if data.len() > self.0 {
            data.drain(..data.len() - self.0);
        }
        self.0 -= data.len();
        LogMember {
            name: name.to_string(),
            data,
        }
    }
}

/// Adds one regular file (no symlinks) under `root` if it exists.
fn collect_file(root: &Path, rel: &str, name: &str, budget: &mut Budget, out: &mut Vec<LogMember>) {
    let path = root.join(rel);
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return;
    };
    if !meta.is_file() || budget.0 == 0 {
        return;
    }
    if let Some(data) = read_tail(&path, meta.len(), budget.0) {
        out.push(budget.member(name, data));
    }
}

/// Adds regular files below `root/rel`, recursively, without following links.
fn collect_tree(root: &Path, rel: &str, budget: &mut Budget, out: &mut Vec<LogMember>) {
    let mut stack = vec![rel.to_string()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(root.join(&dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in names {
            let rel = format!("{dir}/{name}");
            let Ok(meta) = std::fs::symlink_metadata(root.join(&rel)) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(rel);
            } else if meta.is_file() {
                let member_name = rel.clone();
                collect_file(root, &rel, &member_name, budget, out);
            }
        }
    }
}

/// Reads at most the last `max` bytes of a file of length `len`.
fn read_tail(path: &Path, len: u64, max: usize) -> Option<Vec<u8>> {
    let mut f = std::fs::File::open(path).ok()?;
    // /proc files report length 0: read them whole, bounded by `max`.
    if len > max as u64 {
        f.seek(SeekFrom::Start(len - max as u64)).ok()?;
    }
    let mut data = Vec::new();
    f.take(max as u64).read_to_end(&mut data).ok()?;
    Some(data)
}

/// Network interfaces listed under `<root>/sys/class/net`, except loopback.
fn interfaces(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("sys/class/net"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "lo")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Runs a program with a deadline; `(success, stdout+stderr)` or `None` when
/// it could not be started.
fn run_capture(program: &str, args: &[&str], timeout: Duration) -> Option<(bool, Vec<u8>)> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    // Drain pipes on threads so a chatty program cannot block on a full pipe.
    let mut stdout = child.stdout.take()?;
    let mut stderr = child.stderr.take()?;
    let out_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut out = out_thread.join().unwrap_or_default();
    out.extend(err_thread.join().unwrap_or_default());
    Some((status.is_some_and(|s| s.success()), out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sys/class/net/eth0")).unwrap();
        std::fs::create_dir_all(dir.path().join("sys/class/net/lo")).unwrap();
        let actions = dir.path().join("actions.jsonl");
        let r = Recorder::new(dir.path(), &actions);
        r.perform(SystemAction::Sync).unwrap();
        r.perform(SystemAction::NetworkDown).unwrap();
        let actions = Recorder::read_actions(&actions);
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0]["action"], "sync");
        assert_eq!(actions[1]["action"], "network_down");
        assert_eq!(actions[1]["interfaces"], json!(["eth0"]));
    }

    #[test]
    fn recorder_logs_are_capped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::create_dir_all(dir.path().join("var/log/sub")).unwrap();
        std::fs::write(dir.path().join("proc/cmdline"), "ipa-debug=1\n").unwrap();
        std::fs::write(dir.path().join("var/log/big"), vec![b'x'; 5000]).unwrap();
        std::fs::write(dir.path().join("var/log/sub/small"), "hello").unwrap();
        let members =
            Recorder::new(dir.path(), dir.path().join("actions.jsonl")).collect_logs(1000);
        let total: usize = members.iter().map(|m| m.data.len()).sum();
        assert!(total <= 1000);
        assert_eq!(members[0].name, "proc/cmdline");
        assert!(members.iter().any(|m| m.name == "var/log/big"));
    }
}
