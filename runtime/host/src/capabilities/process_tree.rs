//! Every process a program starts ends with its command.
//!
//! A program runs in a process group of its own, and where the kernel
//! offers cgroup v2 in a cgroup of its own: a child under the agent's own
//! cgroup, made for the command and removed after it. Killing the cgroup
//! (`cgroup.kill`, Linux 5.14) reaches descendants that left the process
//! group or the session (`setsid`), which killing the group cannot.
//! See the kernel's Documentation/admin-guide/cgroup-v2.rst ("cgroup.kill").

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Where command cgroups are made: the agent's own cgroup v2 directory,
/// when it is writable and supports `cgroup.kill`.
fn parent_cgroup() -> Option<&'static Path> {
    static PARENT: OnceLock<Option<PathBuf>> = OnceLock::new();
    PARENT
        .get_or_init(|| {
            let found = find_own_cgroup();
            match &found {
                Some(dir) => {
                    tracing::debug!(cgroup = %dir.display(), "programs run in a cgroup each")
                }
                None => tracing::warn!(
                    "cgroup v2 with cgroup.kill is not available: a program's descendants \
                     that leave its process group cannot be killed with it"
                ),
            }
            found
        })
        .as_deref()
}

/// The agent's cgroup v2 directory: the cgroup2 mount (from
/// `/proc/self/mountinfo`) joined with the `0::` line of
/// `/proc/self/cgroup`.
fn find_own_cgroup() -> Option<PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // Fields: ... mount-point ... - fstype source options
    let mount = mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next() == Some("cgroup2"))
            .then(|| left.split_whitespace().nth(4).map(PathBuf::from))
            .flatten()
    })?;
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let rel = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let dir = mount.join(rel.trim_start_matches('/'));
    // A cgroup without `cgroup.kill` (kernel < 5.14) cannot do the job.
    let probe = dir.join(format!("ironic-agent-probe-{}", std::process::id()));
    let usable = std::fs::create_dir(&probe).is_ok() && probe.join("cgroup.kill").exists();
    let _ = std::fs::remove_dir(&probe);
    usable.then_some(dir)
}

/// The cgroup of one command; killed and removed when dropped.
#[derive(Debug)]
pub(crate) struct CommandCgroup {
    dir: PathBuf,
    /// `cgroup.procs`, opened before the fork: the child writes itself into
    /// it between fork and exec.
    procs: OwnedFd,
}

impl CommandCgroup {
    /// A fresh cgroup for one command, or `None` where cgroups cannot be
    /// used (then the process group is all there is).
    pub(crate) fn create() -> Option<CommandCgroup> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let parent = parent_cgroup()?;
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let dir = parent.join(format!("ironic-agent-cmd-{}-{n}", std::process::id()));
        if let Err(e) = std::fs::create_dir(&dir) {
            tracing::warn!(cgroup = %dir.display(), "cannot make a command cgroup: {e}");
            return None;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("cgroup.procs"))
        {
            Ok(f) => Some(CommandCgroup {
                dir,
                procs: f.into(),
            }),
            Err(e) => {
                tracing::warn!(cgroup = %dir.display(), "cannot open cgroup.procs: {e}");
                let _ = std::fs::remove_dir(&dir);
                None
            }
        }
    }

    /// The descriptor the child writes `0` (itself) into before exec.
    pub(crate) fn procs_fd(&self) -> i32 {
        self.procs.as_raw_fd()
    }

    /// Kills every process in the cgroup.
    pub(crate) fn kill(&self) {
        if let Err(e) = std::fs::write(self.dir.join("cgroup.kill"), "1") {
            tracing::warn!(cgroup = %self.dir.display(), "cgroup.kill: {e}");
        }
    }

    /// True while any process is left in it.
    fn populated(&self) -> bool {
        std::fs::read_to_string(self.dir.join("cgroup.events"))
            .map(|t| t.lines().any(|l| l == "populated 1"))
            .unwrap_or(false)
    }
}

impl Drop for CommandCgroup {
    fn drop(&mut self) {
        self.kill();
        // The kernel empties the cgroup asynchronously; a removed cgroup
        // must be empty.
        for _ in 0..100 {
            if !self.populated() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            tracing::warn!(cgroup = %self.dir.display(), "removing the command cgroup: {e}");
        }
    }
}

/// Kills a process group (the whole group; it may already be gone).
pub(crate) fn kill_group(pgid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
