//! The agent's runner for helper programs the deploy needs (`mkfs`,
//! `mkswap`, `efibootmgr`): bare names resolved in the machine's program
//! directories, no shell, a clean environment (`LC_ALL=C`), a deadline,
//! capped output.
//!
//! On the real machine (hardware root `/`) the system directories are
//! searched. Under any other root (a simulated machine) only its stand-ins
//! in `<root>/.ironic-sim/bin` are: the arguments are the machine's device
//! paths (`/dev/sda1`), which the host's tools must never see. A program a
//! simulated machine does not provide is skipped and the skip recorded in
//! `<root>/.ironic-sim/actions.jsonl`, so a test sees exactly what would
//! have run.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Output cap per stream.
const OUTPUT_CAP: usize = 1 << 20;

/// What running a program gave.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It ran (whatever its exit status).
    Ran {
        status: Option<i32>,
        stdout: String,
        stderr: String,
    },
    /// Simulated machine without that stand-in: not run, recorded.
    Skipped,
}

impl Outcome {
    /// True when the program ran and exited 0.
    pub fn success(&self) -> bool {
        matches!(
            self,
            Outcome::Ran {
                status: Some(0),
                ..
            }
        )
    }
}

/// Why a program could not be run.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("{program}: not found in {searched}")]
    NotFound { program: String, searched: String },
    #[error("{program}: {message}")]
    Failed { program: String, message: String },
    #[error("{program}: still running after {timeout:?}; killed")]
    TimedOut { program: String, timeout: Duration },
}

/// Resolves and runs programs for one machine.
#[derive(Debug, Clone)]
pub struct ProgramRunner {
    dirs: Vec<PathBuf>,
    /// Simulated machine: its root (skips are recorded there).
    sim_root: Option<PathBuf>,
    timeout: Duration,
}

impl ProgramRunner {
    /// The runner for the machine whose hardware root is `root`.
    pub fn for_root(root: &Path) -> ProgramRunner {
        if root == Path::new("/") {
            let dirs = [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ];
            ProgramRunner {
                dirs: dirs.iter().map(PathBuf::from).collect(),
                sim_root: None,
                timeout: Duration::from_secs(600),
            }
        } else {
            ProgramRunner {
                dirs: vec![root.join(".ironic-sim/bin")],
                sim_root: Some(root.to_path_buf()),
                timeout: Duration::from_secs(600),
            }
        }
    }

    /// True on a simulated machine.
    pub fn is_simulated(&self) -> bool {
        self.sim_root.is_some()
    }

    /// The executable `program` resolves to, if any.
    pub fn find(&self, program: &str) -> Option<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        if program.is_empty() || program.contains('/') {
            return None;
        }
        self.dirs.iter().map(|d| d.join(program)).find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    }

    /// Runs `program args…` (blocking). A missing program is an error on a
    /// real machine and a recorded skip on a simulated one.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<Outcome, ProgramError> {
        let Some(path) = self.find(program) else {
            if let Some(root) = &self.sim_root {
                tracing::warn!(program, ?args, "simulated machine has no stand-in; not run");
                record_skip(root, program, args);
                return Ok(Outcome::Skipped);
            }
            let searched: Vec<String> = self.dirs.iter().map(|d| d.display().to_string()).collect();
            return Err(ProgramError::NotFound {
                program: program.into(),
                searched: searched.join(":"),
            });
        };
        let failed = |message: String| ProgramError::Failed {
            program: program.into(),
            message,
        };
        tracing::info!(program, ?args, path = %path.display(), "running program");
        let mut child = Command::new(&path)
            .args(args)
            .env_clear()
            .env("PATH", std::env::join_paths(&self.dirs).unwrap_or_default())
            .env("LC_ALL", "C")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| failed(format!("cannot start {}: {e}", path.display())))?;
        let drain = |s: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut out = Vec::new();
                if let Some(s) = s {
                    let _ = s.take(OUTPUT_CAP as u64).read_to_end(&mut out);
                }
                String::from_utf8_lossy(&out).into_owned()
            })
        };
        let out = drain(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err = drain(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if started.elapsed() < self.timeout => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ProgramError::TimedOut {
                        program: program.into(),
                        timeout: self.timeout,
                    });
                }
                Err(e) => return Err(failed(format!("wait: {e}"))),
            }
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        tracing::debug!(program, code = ?status.code(), "program finished");
        Ok(Outcome::Ran {
            status: status.code(),
            stdout,
            stderr,
        })
    }

    /// Runs and requires exit status 0; returns stdout.
    pub fn check(&self, program: &str, args: &[&str]) -> Result<Option<String>, ProgramError> {
        match self.run(program, args)? {
            Outcome::Skipped => Ok(None),
            Outcome::Ran {
                status: Some(0),
                stdout,
                ..
            } => Ok(Some(stdout)),
            Outcome::Ran { status, stderr, .. } => Err(ProgramError::Failed {
                program: program.into(),
                message: format!(
                    "{} exited with {status:?}: {}",
                    args.join(" "),
                    stderr.trim()
                ),
            }),
        }
    }
}

fn record_skip(root: &Path, program: &str, args: &[&str]) {
    let path = root.join(".ironic-sim/actions.jsonl");
    let line = serde_json::json!({
        "action": "program_skipped",
        "program": program,
        "args": args,
        "reason": "no stand-in in .ironic-sim/bin",
    });
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = res {
        tracing::warn!(path = %path.display(), error = %e, "could not record a skipped program");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_machine_uses_only_its_stand_ins() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::create_dir_all(root.join(".ironic-sim/bin")).expect("bin");
        let r = ProgramRunner::for_root(root);
        // `sh` exists on the host but is not a stand-in: skipped, recorded.
        assert!(matches!(
            r.run("sh", &["-c", "exit 3"]),
            Ok(Outcome::Skipped)
        ));
        let actions =
            std::fs::read_to_string(root.join(".ironic-sim/actions.jsonl")).expect("actions");
        assert!(actions.contains("\"program\":\"sh\""), "{actions}");
        let stand_in = root.join(".ironic-sim/bin/mkswap");
        std::fs::write(&stand_in, "#!/bin/sh\necho \"$@\"\nexit 0\n").expect("write");
        std::fs::set_permissions(
            &stand_in,
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        assert_eq!(
            r.check("mkswap", &["-L", "swap1", "/dev/sda2"])
                .expect("run"),
            Some("-L swap1 /dev/sda2\n".into())
        );
        assert!(r.find("../bin/mkswap").is_none());
    }
}
