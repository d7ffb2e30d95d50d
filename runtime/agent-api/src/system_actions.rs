//! Machine-level side effects (power, network, flush, log sources) behind one
//! trait, so a simulated machine can record them instead of performing them.
//!
//! * [`RealSystem`] runs the real programs (`sync`, `poweroff`, `reboot`,
//!   `ip link set <if> down`, `journalctl`, ...). Tests use only its log
//!   collection, which reads and never changes anything.
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
        // IPA: utils.collect_system_logs (the journal, else /var/log) and
        // GenericHardwareManager.collect_system_logs (command outputs and
        // udev properties per block device), plus this agent's own log,
        // which a ramdisk without journald has nowhere else.
        let mut budget = Budget(cap);
        let mut members = vec![budget.member(AGENT_LOG_MEMBER, agent_log().snapshot())];
        match run_capture(
            "journalctl",
            &["--full", "--no-pager", "-b", "-n", "10000"],
            PROGRAM_TIMEOUT,
        ) {
            Some((true, out)) => members.push(budget.member("journal", out)),
            _ => collect_tree(&self.root, "var/log", &mut budget, &mut members),
        }
        let lsblk_columns = format!("-o{}", LSBLK_COLUMNS.join(","));
        let commands: &[(&str, &str, &[&str])] = &[
            ("df", "df", &["-a"]),
            ("dmesg", "dmesg", &[]),
            ("efibootmgr", "efibootmgr", &["-v"]),
            ("iptables", "iptables", &["-L"]),
            ("ip_addr", "ip", &["addr"]),
            ("lsblk", "lsblk", &["--all", &lsblk_columns]),
            (
                "lsblk-full",
                "lsblk",
                &["--all", "--bytes", "--output-all", "--pairs"],
            ),
            ("lshw", "lshw", &["-quiet", "-json"]),
            ("mount", "mount", &[]),
            ("multipath", "multipath", &["-ll"]),
            ("parted", "parted", &["-l"]),
            ("ps", "ps", &["au"]),
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
        collect_udev(&self.root, &mut budget, &mut members);
        members
    }
}

/// lsblk's columns in IPA's `lsblk` log member (utils.LSBLK_COLUMNS).
const LSBLK_COLUMNS: &[&str] = &[
    "KNAME", "MODEL", "SIZE", "ROTA", "TYPE", "UUID", "PARTUUID", "SERIAL", "WWN", "LOG-SEC",
    "PHY-SEC", "TRAN",
];

/// Name of the agent's own log in the logs archive.
pub const AGENT_LOG_MEMBER: &str = "ironic-agent.log";

/// IPA's `_collect_udev`: one `udev/<kname>` member per block device with its
/// udev properties as a JSON object, read from udev's database
/// (`/run/udev/data/b<major>:<minor>`, `E:` lines) instead of pyudev.
fn collect_udev(root: &Path, budget: &mut Budget, out: &mut Vec<LogMember>) {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/block")) else {
        return;
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for kname in names {
        if budget.0 == 0 {
            return;
        }
        let Ok(dev) = std::fs::read_to_string(root.join(format!("sys/class/block/{kname}/dev")))
        else {
            continue;
        };
        let Ok(db) = std::fs::read_to_string(root.join(format!("run/udev/data/b{}", dev.trim())))
        else {
            continue;
        };
        let props: serde_json::Map<String, Value> = db
            .lines()
            .filter_map(|l| l.strip_prefix("E:"))
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect();
        let data = Value::Object(props).to_string().into_bytes();
        out.push(budget.member(&format!("udev/{kname}"), data));
    }
}

/// The agent's own recent log output, kept in memory (bounded) so that the
/// logs collector and `collect_system_logs` carry it on machines without
/// journald or a log file (the ramdisk).
pub struct AgentLog {
    bytes: std::sync::Mutex<std::collections::VecDeque<u8>>,
    cap: usize,
}

/// At most this much of the agent's own log is kept in memory.
pub const AGENT_LOG_CAP: usize = 2 * 1024 * 1024;

/// The process-wide agent log ring.
pub fn agent_log() -> &'static AgentLog {
    static LOG: std::sync::OnceLock<AgentLog> = std::sync::OnceLock::new();
    LOG.get_or_init(|| AgentLog {
        bytes: std::sync::Mutex::new(std::collections::VecDeque::new()),
        cap: AGENT_LOG_CAP,
    })
}

impl AgentLog {
    /// Appends output, dropping the oldest bytes past the cap.
    pub fn append(&self, data: &[u8]) {
        let mut ring = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        let data = &data[data.len().saturating_sub(self.cap)..];
        let excess = (ring.len() + data.len()).saturating_sub(self.cap);
        ring.drain(..excess);
        ring.extend(data);
    }

    /// A copy of what is kept.
    pub fn snapshot(&self) -> Vec<u8> {
        let ring = self.bytes.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().copied().collect()
    }
}

/// An `io::Write` into [`agent_log`] (the tracing writer tees into it).
#[derive(Debug, Default, Clone, Copy)]
pub struct AgentLogWriter;

impl Write for AgentLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        agent_log().append(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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
        let mut members = vec![budget.member(AGENT_LOG_MEMBER, agent_log().snapshot())];
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
        assert_eq!(members[0].name, AGENT_LOG_MEMBER);
        assert_eq!(members[1].name, "proc/cmdline");
        assert!(members.iter().any(|m| m.name == "var/log/big"));
    }
}

#[cfg(test)]
mod real_logs_tests {
    use super::*;

    /// The real backend reads only: command outputs and files. It must
    /// produce IPA's members, the agent's own log and udev properties, not
    /// an empty archive (the bug where inspection sent a 41-byte tar.gz).
    #[test]
    fn real_system_collects_ipa_members_and_the_agent_log() {
        agent_log().append(b"agent says hello\n");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("sys/class/block/vda")).unwrap();
        std::fs::write(root.join("sys/class/block/vda/dev"), "254:0\n").unwrap();
        std::fs::create_dir_all(root.join("run/udev/data")).unwrap();
        std::fs::write(
            root.join("run/udev/data/b254:0"),
            "S:disk/by-path/virtio-pci-0000:00:05.0\nE:ID_SERIAL=disk-1\nE:DEVTYPE=disk\n",
        )
        .unwrap();
        std::fs::create_dir_all(root.join("var/log")).unwrap();
        let members = RealSystem::new(root).collect_logs(4 * 1024 * 1024);
        let names: Vec<&str> = members.iter().map(|m| m.name.as_str()).collect();
        let agent = &members[0];
        assert_eq!(agent.name, AGENT_LOG_MEMBER);
        assert!(String::from_utf8_lossy(&agent.data).contains("agent says hello"));
        // `ps` and `mount` exist on every machine the tests run on.
        for wanted in ["ps", "mount", "df"] {
            assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
        }
        let udev = members
            .iter()
            .find(|m| m.name == "udev/vda")
            .expect("udev/vda");
        let props: Value = serde_json::from_slice(&udev.data).unwrap();
        assert_eq!(props, json!({"ID_SERIAL": "disk-1", "DEVTYPE": "disk"}));
    }

    #[test]
    fn agent_log_keeps_the_newest_bytes() {
        let log = AgentLog {
            bytes: Default::default(),
            cap: 8,
        };
        log.append(b"0123456");
        log.append(b"789ab");
        assert_eq!(log.snapshot(), b"456789ab");
        log.append(b"this is far longer than the cap");
        assert_eq!(log.snapshot(), b" the cap");
    }
}
