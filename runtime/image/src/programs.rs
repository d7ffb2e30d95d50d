//! The agent's runner for helper programs the deploy needs (`mkfs`,
//! `mkswap`, `efibootmgr`): bare names resolved in the machine's program
//! directories, no shell, a clean environment (`LC_ALL=C`), a deadline,
//! capped output.
//!
//! Which runner a machine gets is the agent binary's decision, made once
//! with the machine itself: the real machine searches the system's
//! directories ([`ProgramRunner::system`]); a simulated one only its
//! stand-ins ([`ProgramRunner::stand_ins`]), because the arguments are the
//! machine's device paths (`/dev/sda1`), which the host's tools must never
//! see. A program a simulated machine does not provide is skipped and the
//! skip recorded in its actions file, so a test sees exactly what would
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

/// The system's program directories, searched in this order on the real
/// machine.
pub const SYSTEM_PROGRAM_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// How long one program may run.
const PROGRAM_TIMEOUT: Duration = Duration::from_secs(600);

/// Resolves and runs programs for one machine.
#[derive(Debug, Clone)]
pub struct ProgramRunner {
    dirs: Vec<PathBuf>,
    /// Simulated machine: the file skipped programs are recorded in.
    skips_recorded_in: Option<PathBuf>,
    timeout: Duration,
}

impl ProgramRunner {
    /// The real machine's runner: the system's directories; a missing
    /// program is an error.
    pub fn system() -> ProgramRunner {
        ProgramRunner {
            dirs: SYSTEM_PROGRAM_DIRS.iter().map(PathBuf::from).collect(),
            skips_recorded_in: None,
            timeout: PROGRAM_TIMEOUT,
        }
    }

    /// A simulated machine's runner: only the stand-ins in `bin_dir`; a
    /// program without one is skipped and recorded in `actions_file`.
    pub fn stand_ins(bin_dir: PathBuf, actions_file: PathBuf) -> ProgramRunner {
        ProgramRunner {
            dirs: vec![bin_dir],
            skips_recorded_in: Some(actions_file),
            timeout: PROGRAM_TIMEOUT,
        }
    }

    /// A runner that finds no program at all (every run fails): for
    /// configurations that never run programs.
    pub fn none() -> ProgramRunner {
        ProgramRunner {
            dirs: Vec::new(),
            skips_recorded_in: None,
            timeout: PROGRAM_TIMEOUT,
        }
    }

    /// True on a simulated machine.
    pub fn is_simulated(&self) -> bool {
        self.skips_recorded_in.is_some()
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
        self.run_with_env(program, args, &[])
    }

    /// [`ProgramRunner::run`] with extra environment variables beside
    /// `PATH` and `LC_ALL` (e.g. `GRUB_DISABLE_OS_PROBER` for grub-mkconfig).
    pub fn run_with_env(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Outcome, ProgramError> {
        let Some(path) = self.find(program) else {
            if let Some(actions) = &self.skips_recorded_in {
                tracing::warn!(program, ?args, "simulated machine has no stand-in; not run");
                record_skip(actions, program, args);
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
            .envs(env.iter().copied())
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
        self.check_with_env(program, args, &[])
    }

    /// [`ProgramRunner::check`] with extra environment variables.
    pub fn check_with_env(
        &self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Option<String>, ProgramError> {
        match self.run_with_env(program, args, env)? {
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

fn record_skip(path: &Path, program: &str, args: &[&str]) {
    let line = serde_json::json!({
        "action": "program_skipped",
        "program": program,
        "args": args,
        "reason": "no stand-in on the simulated machine",
    });
    let res = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
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
        let r = ProgramRunner::stand_ins(
            root.join(".ironic-sim/bin"),
            root.join(".ironic-sim/actions.jsonl"),
        );
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
