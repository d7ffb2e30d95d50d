//! `commands`: run a declared and granted program, without a shell, with a
//! clean environment, in its own process group, with capped output and a
//! deadline.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::bindings::latest::ironic::hardware::commands::{self, CommandError, CommandOutput};
use crate::policy::Need;
use crate::sandbox::CallState;

/// Find `program` in `dirs` (first executable regular file wins).
pub fn find_program(program: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter().map(|d| d.join(program)).find(|p| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Read `stream` until EOF or `cap` bytes; past the cap, raise `overflow`.
fn capped_reader(
    mut stream: impl Read + Send + 'static,
    cap: usize,
    overflow: Arc<AtomicBool>,
) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    if out.len() + n > cap {
                        overflow.store(true, Ordering::SeqCst);
                        break;
                    }
                    out.extend_from_slice(&chunk[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        out
    })
}

fn kill_group(child: &mut Child) {
    if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
        // The group may already be gone; that is fine.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
}

enum Ending {
    Exited(std::process::ExitStatus),
    TimedOut,
    Overflow,
}

impl CallState {
    fn run_program(
        &self,
        program: &str,
        args: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> Result<CommandOutput, CommandError> {
        let manager = self.manager.name.as_str();
        if program.is_empty() || program.contains('/') || program.contains('\0') {
            return Err(CommandError::Denied(format!(
                "{program:?}: only bare program names can be run (manager {manager})"
            )));
        }
        self.manager
            .policy
            .check(Need::Program(program))
            .map_err(CommandError::Denied)?;
        let dirs = &self.env.program_dirs;
        let path = find_program(program, dirs).ok_or_else(|| {
            let searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            CommandError::NotFound(format!("{program}: not found in {}", searched.join(":")))
        })?;
        if args.iter().any(|a| a.contains('\0')) {
            return Err(CommandError::Failed(format!(
                "{program}: an argument contains a NUL byte"
            )));
        }

        // Cap at the call's remaining time so a command never outlives it.
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = match timeout_ms {
            Some(ms) => remaining.min(Duration::from_millis(u64::from(ms))),
            None => remaining,
        };
        let cap = self.env.limits.output_cap;
        let path_var = std::env::join_paths(dirs).unwrap_or_default();

        let mut child = Command::new(&path)
            .args(&args)
            .env_clear()
            .env("PATH", path_var)
            .env("LC_ALL", "C")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .map_err(|e| {
                CommandError::Failed(format!("{program}: cannot start {}: {e}", path.display()))
            })?;
        tracing::debug!(manager, program, ?args, "running program");

        let writer = match (stdin, child.stdin.take()) {
            (Some(data), Some(mut pipe)) => Some(std::thread::spawn(move || {
                // The program may exit without reading: a broken pipe is fine.
                let _ = pipe.write_all(&data);
            })),
            _ => None,
        };
        let overflow = Arc::new(AtomicBool::new(false));
        let readers = match (child.stdout.take(), child.stderr.take()) {
            (Some(out), Some(err)) => (
                capped_reader(out, cap, overflow.clone()),
                capped_reader(err, cap, overflow.clone()),
            ),
            _ => {
                kill_group(&mut child);
                let _ = child.wait();
                return Err(CommandError::Failed(format!("{program}: no output pipes")));
            }
        };

        let started = Instant::now();
        let ending = loop {
            if overflow.load(Ordering::SeqCst) {
                break Ending::Overflow;
            }
            match child.try_wait() {
                Ok(Some(status)) => break Ending::Exited(status),
                Ok(None) => {}
                Err(e) => {
                    kill_group(&mut child);
                    let _ = child.wait();
                    return Err(CommandError::Failed(format!("{program}: wait: {e}")));
                }
            }
            if started.elapsed() >= timeout {
                break Ending::TimedOut;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Also reaps leftovers of the group that would keep the pipes open.
        kill_group(&mut child);
        let _ = child.wait();
        let stdout = readers.0.join().unwrap_or_default();
        let stderr = readers.1.join().unwrap_or_default();
        if let Some(w) = writer {
            let _ = w.join();
        }
        match ending {
            Ending::Overflow => {
                tracing::warn!(
                    manager,
                    program,
                    cap,
                    "program output exceeded the cap; killed"
                );
                Err(CommandError::OutputTooLarge(format!(
                    "{program}: output exceeded the cap of {cap} bytes; killed (manager {manager})"
                )))
            }
            Ending::TimedOut => {
                tracing::warn!(
                    manager,
                    program,
                    timeout_ms = timeout.as_millis() as u64,
                    "program timed out; killed"
                );
                Err(CommandError::TimedOut(format!(
                    "{program}: still running after {} ms; killed (manager {manager})",
                    timeout.as_millis()
                )))
            }
            Ending::Exited(status) => Ok(CommandOutput {
                exit_code: status.code(),
                stdout,
                stderr,
            }),
        }
    }
}

impl commands::Host for CallState {
    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> Result<CommandOutput, CommandError> {
        self.run_program(&program, args, stdin, timeout_ms)
    }
}
