//! `commands`: run a declared and granted program, without a shell, with a
//! clean environment, with capped output and a deadline that holds for the
//! whole process tree ([`super::process_tree`]).
//!
//! A command is over when the program has exited *and* closed its output
//! (a child it left holding stdout is still the command running). At the
//! deadline, on overflow, and after a normal end, every process left of it
//! is killed.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::process_tree::{kill_group, CommandCgroup};
use super::{CommandsView, ScratchView};
use crate::bindings::latest::ironic::hardware::commands::{
    self, CommandError, CommandOutput, RunRequest,
};
use crate::policy::Need;
use crate::text::sanitize;

/// Find `program` in `dirs` (first executable regular file wins).
pub fn find_program(program: &str, dirs: &[PathBuf]) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    dirs.iter().map(|d| d.join(program)).find(|p| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Reads `stream` to its end, keeping at most `cap` bytes; `Err` with what
/// was read when the stream goes past the cap.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    cap: usize,
) -> Result<Vec<u8>, Vec<u8>> {
    let mut out = Vec::new();
    let Some(mut stream) = stream else {
        return Ok(out);
    };
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) => return Ok(out),
            Ok(n) => {
                if out.len() + n > cap {
                    return Err(out);
                }
                out.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return Ok(out),
        }
    }
}

/// Whatever is left of a command when this is dropped is killed: its
/// process group and its cgroup. Dropped on every way out, including when
/// the call itself is dropped at its deadline.
struct Tree {
    pgid: Option<u32>,
    cgroup: Option<CommandCgroup>,
}

impl Drop for Tree {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            kill_group(pgid);
        }
        // Dropping the cgroup kills what is in it and removes it.
        self.cgroup.take();
    }
}

enum Ending {
    Done(std::process::ExitStatus, Vec<u8>, Vec<u8>),
    Overflow,
    TimedOut,
}

impl CommandsView<'_> {
    async fn run_program(
        &self,
        program: &str,
        args: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
        env: Vec<(String, String)>,
        cwd: Option<PathBuf>,
    ) -> Result<CommandOutput, CommandError> {
        let manager = self.manager.name.as_str();
        if program.is_empty() || program.contains('/') || program.contains('\0') {
            return Err(CommandError::Denied(format!(
                "{:?}: only bare program names can be run (manager {manager})",
                sanitize(program, 256)
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
        for (name, value) in &env {
            self.manager
                .policy
                .check(Need::Env(name))
                .map_err(CommandError::Denied)?;
            if value.contains('\0') {
                return Err(CommandError::Failed(format!(
                    "{program}: the value of {name} contains a NUL byte"
                )));
            }
        }

        // Capped at the call's remaining time: a command never outlives it.
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = match timeout_ms {
            Some(ms) => remaining.min(Duration::from_millis(u64::from(ms))),
            None => remaining,
        };
        let cap = self.env.limits.output_cap;
        let path_var = std::env::join_paths(dirs).unwrap_or_default();
        let cgroup = CommandCgroup::create();

        let mut command = tokio::process::Command::new(&path);
        command
            .args(&args)
            .env_clear()
            .env("PATH", path_var)
            .env("LC_ALL", "C")
            .envs(env)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        if let Some(dir) = &cwd {
            command.current_dir(dir);
        }
        if let Some(cg) = &cgroup {
            let fd = cg.procs_fd();
            // SAFETY: runs in the child between fork and exec, where only
            // async-signal-safe calls are allowed: `write(2)` on a
            // descriptor opened before the fork, from a static buffer.
            unsafe {
                command.pre_exec(move || {
                    if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                        Ok(())
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                });
            }
        }
        let mut child = command.spawn().map_err(|e| {
            CommandError::Failed(format!("{program}: cannot start {}: {e}", path.display()))
        })?;
        let tree = Tree {
            pgid: child.id(),
            cgroup,
        };
        tracing::debug!(manager, program, args = ?args.iter().map(|a| sanitize(a, 256)).collect::<Vec<_>>(), "running program");

        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            tokio::spawn(async move {
                // The program may exit without reading: a broken pipe is fine.
                let _ = pipe.write_all(&data).await;
            });
        }
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let finished = async {
            let (status, out, err) =
                tokio::join!(child.wait(), read_capped(out, cap), read_capped(err, cap));
            match (status, out, err) {
                (Ok(status), Ok(out), Ok(err)) => Ok(Ending::Done(status, out, err)),
                (Err(e), _, _) => Err(e),
                _ => Ok(Ending::Overflow),
            }
        };
        let ending = match tokio::time::timeout(timeout, finished).await {
            Ok(Ok(ending)) => ending,
            Ok(Err(e)) => {
                return Err(CommandError::Failed(format!("{program}: wait: {e}")));
            }
            Err(_) => Ending::TimedOut,
        };
        // Whatever is left of the tree goes now, in every case.
        drop(tree);
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
                    "program timed out; killed with everything it started"
                );
                Err(CommandError::TimedOut(format!(
                    "{program}: still running after {} ms; killed with everything it started (manager {manager})",
                    timeout.as_millis()
                )))
            }
            Ending::Done(status, stdout, stderr) => Ok(CommandOutput {
                exit_code: status.code(),
                stdout,
                stderr,
            }),
        }
    }
}

impl commands::Host for CommandsView<'_> {
    async fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<CommandOutput, CommandError>> {
        Ok(self
            .run_program(&program, args, stdin, timeout_ms, Vec::new(), None)
            .await)
    }

    async fn run_with(
        &mut self,
        request: RunRequest,
    ) -> wasmtime::Result<Result<CommandOutput, CommandError>> {
        let cwd = if request.in_scratch {
            let mut scratch = ScratchView {
                manager: self.manager,
                env: self.env,
                space: &mut *self.space,
            };
            match scratch.space() {
                Ok(space) => Some(space.dir().to_path_buf()),
                Err(e) => {
                    return Ok(Err(CommandError::Denied(format!(
                        "{}: a working directory in the scratch space: {e:?}",
                        request.program
                    ))))
                }
            }
        } else {
            None
        };
        Ok(self
            .run_program(
                &request.program,
                request.args,
                request.stdin,
                request.timeout_ms,
                request.env,
                cwd,
            )
            .await)
    }
}
