//! The command engine: registry of extensions, the results list, sync and
//! async execution, the busy rule and `wait=true` (IPA
//! `ironic_python_agent/extensions/base.py`, `ExecuteCommandMixin` and
//! `async_command`).
//!
//! Progress: while an async command is `RUNNING`, progress reported by the
//! hardware manager appears in its result object as an extra key
//! `command_progress: {"percent": <int|null>, "message": "<text>"}`. Ironic
//! ignores unknown keys; finished results carry exactly the five spec keys.

mod params;
mod record;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use serde_json::{Map, Value};

pub use record::{CommandRecord, CommandStatus, Progress};
use tokio::sync::{watch, Notify};

use crate::errors::{AgentError, ErrorClass, HttpFault};
use crate::AgentState;

/// How a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs inside the request; the reply carries the terminal result.
    Sync,
    /// Returns `RUNNING` at once; completes on a worker.
    Async,
}

/// A keyword parameter of a command.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Keyword name.
    pub name: &'static str,
    /// Whether Python would raise "missing required positional argument".
    pub required: bool,
}

/// Shorthand for a required parameter.
pub const fn req(name: &'static str) -> Param {
    Param {
        name,
        required: true,
    }
}

/// Shorthand for an optional parameter.
pub const fn opt(name: &'static str) -> Param {
    Param {
        name,
        required: false,
    }
}

/// Why a command body failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// An IPA (RESTError family) error: recorded with its own type/code.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// Any other failure, as a Python exception class and text: recorded as
    /// `{"type": class, "code": 500, "message": "Command execution failed"}`
    /// for sync commands, `CommandExecutionError` for async ones.
    #[error("{class}: {text}")]
    Exception {
        /// Python-style exception class (`TypeError`, `ValueError`...).
        class: &'static str,
        /// The exception text.
        text: String,
    },
}

/// A boxed command future.
pub type CommandFuture = Pin<Box<dyn Future<Output = Result<Value, CommandError>> + Send>>;

/// A command body.
pub type Handler = Arc<dyn Fn(Ctx, Map<String, Value>) -> CommandFuture + Send + Sync>;

/// Wraps a command body function as a [`Handler`].
pub fn handler(
    f: impl Fn(Ctx, Map<String, Value>) -> CommandFuture + Send + Sync + 'static,
) -> Handler {
    Arc::new(f)
}

/// A synchronous parameter validator; errors of the InvalidContentError
/// family answer HTTP 400 and nothing is recorded.
pub type Validator = fn(&AgentState, &Map<String, Value>) -> Result<(), AgentError>;

/// One command of an extension.
#[derive(Clone)]
pub struct CommandDef {
    /// Command name (after the dot).
    pub name: &'static str,
    /// Sync or async.
    pub mode: Mode,
    /// Accepted keyword parameters.
    pub params: &'static [Param],
    /// Whether unknown keywords are accepted (`**kwargs`).
    pub extra_kwargs: bool,
    /// Optional synchronous validator.
    pub validator: Option<Validator>,
    /// The body.
    pub handler: Handler,
}

/// An extension: a named group of commands.
#[derive(Clone)]
pub struct Extension {
    /// Wire name (`clean`, `standby`...).
    pub name: &'static str,
    /// IPA's class name, used in Python-style error texts.
    pub class: &'static str,
    /// Its commands.
    pub commands: Vec<CommandDef>,
    /// Steps it runs itself instead of a hardware manager (listed with
    /// the managers' steps, see [`crate::native_steps`]).
    pub native_steps: Vec<crate::native_steps::NativeStep>,
}

/// What a running command can reach.
#[derive(Clone)]
pub struct Ctx {
    /// The whole agent.
    pub state: AgentState,
    record: Option<Arc<CommandRecord>>,
}

impl Ctx {
    /// Reports progress of the running (async) command; no-op for sync ones.
    pub fn progress(&self, percent: Option<u8>, message: &str) {
        if let Some(r) = &self.record {
            r.set_progress(percent, message);
        }
    }

    /// A progress sink that can move into another task.
    pub fn progress_sink(&self) -> crate::managers::StepProgressFn {
        let record = self.record.clone();
        Arc::new(move |percent, message| {
            if let Some(r) = &record {
                r.set_progress(percent, message);
            }
        })
    }

    /// Runs blocking work (manager calls, system actions) off the runtime.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, CommandError>
    where
        F: FnOnce() -> Result<T, AgentError> + Send + 'static,
        T: Send + 'static,
    {
        match tokio::task::spawn_blocking(f).await {
            Ok(r) => r.map_err(CommandError::Agent),
            Err(e) => Err(CommandError::Exception {
                class: "RuntimeError",
                text: format!("worker failed: {e}"),
            }),
        }
    }
}

/// Bounds of the results list: a long-running agent must not keep every
/// result forever (IPA does). Oldest results go first, but the newest result
/// of each command name is always kept: Ironic reads the last
/// `execute_clean_step` (and friends) to learn how a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Most results kept.
    pub max_results: usize,
    /// Most bytes of serialised results kept.
    pub max_total_bytes: usize,
    /// A single result larger than this is replaced by an error saying so.
    pub max_result_bytes: usize,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        HistoryLimits {
            max_results: 1000,
            max_total_bytes: 64 * 1024 * 1024,
            // `collect_system_logs` answers up to 10 MiB of logs, gzipped
            // and base64-encoded.
            max_result_bytes: 16 * 1024 * 1024,
        }
    }
}

/// The command engine.
pub struct CommandEngine {
    extensions: HashMap<&'static str, Extension>,
    results: RwLock<Vec<Arc<CommandRecord>>>,
    limits: HistoryLimits,
    /// Command admission: the busy check and the start of an async
    /// command happen under it. Never held while a command body runs, so a
    /// slow manager cannot stall other commands (IPA holds its
    /// `command_lock` across sync commands; we do not).
    admission: tokio::sync::Mutex<()>,
    /// The async command running now, if any (the busy rule).
    running: Mutex<Option<Arc<CommandRecord>>>,
    finished: watch::Sender<u64>,
    finished_notify: Arc<Notify>,
}

impl std::fmt::Debug for CommandEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandEngine")
            .field("extensions", &self.extensions.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What admission decided.
enum Admitted {
    /// An async command, started.
    Started(Arc<CommandRecord>),
    /// A sync command, to run in the request.
    RunHere(Map<String, Value>),
}

/// A command found and checked, ready to run.
struct Resolved<'a> {
    extension: &'a Extension,
    command: &'a CommandDef,
}

impl CommandEngine {
    /// An engine serving the given extensions with default history limits.
    pub fn new(extensions: Vec<Extension>) -> Self {
        Self::with_limits(extensions, HistoryLimits::default())
    }

    /// An engine serving the given extensions, keeping results within
    /// `limits`.
    pub fn with_limits(extensions: Vec<Extension>, limits: HistoryLimits) -> Self {
        Self {
            extensions: extensions.into_iter().map(|e| (e.name, e)).collect(),
            results: RwLock::new(Vec::new()),
            limits,
            admission: tokio::sync::Mutex::new(()),
            running: Mutex::new(None),
            finished: watch::Sender::new(0),
            finished_notify: Arc::new(Notify::new()),
        }
    }

    /// Every result kept, oldest first.
    pub fn results(&self) -> Vec<Arc<CommandRecord>> {
        self.results
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The result with `id`.
    pub fn get(&self, id: &str) -> Option<Arc<CommandRecord>> {
        self.results
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .rev()
            .find(|r| r.id() == id)
            .cloned()
    }

    /// Counter bumped each time an async command finishes (any outcome);
    /// the heartbeat loop watches it to heartbeat early.
    pub fn finished(&self) -> watch::Receiver<u64> {
        self.finished.subscribe()
    }

    /// Notified (one stored permit) each time an async command finishes.
    pub fn finished_notify(&self) -> Arc<Notify> {
        self.finished_notify.clone()
    }

    /// Adds `record` and drops the oldest finished results past the limits
    /// (never the newest of a command name, never a running one).
    fn push(&self, record: Arc<CommandRecord>) {
        let mut results = self.results.write().unwrap_or_else(|p| p.into_inner());
        results.push(record);
        let mut total: usize = results.iter().map(|r| r.size_bytes()).sum();
        if results.len() <= self.limits.max_results && total <= self.limits.max_total_bytes {
            return;
        }
        // Newest record of each name: kept whatever the limits say.
        let mut newest: HashMap<&str, usize> = HashMap::new();
        for (i, r) in results.iter().enumerate() {
            newest.insert(r.command_name(), i);
        }
        let mut keep = vec![true; results.len()];
        let mut count = results.len();
        for (i, r) in results.iter().enumerate() {
            if count <= self.limits.max_results && total <= self.limits.max_total_bytes {
                break;
            }
            if newest.get(r.command_name()) == Some(&i) || r.status() == CommandStatus::Running {
                continue;
            }
            keep[i] = false;
            count -= 1;
            total -= r.size_bytes();
        }
        let mut index = 0;
        results.retain(|_| {
            index += 1;
            keep[index - 1]
        });
    }

    /// The running async command's name, if one is running.
    fn busy_with(&self) -> Option<String> {
        let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running
            .as_ref()
            .filter(|r| r.status() == CommandStatus::Running)
            .map(|r| r.command_name().to_string())
    }

    /// Executes `<extension>.<command>` as `POST /v1/commands/` does (IPA
    /// `ExecuteCommandMixin.execute_command`). Returns the recorded result,
    /// or the HTTP fault for requests that record nothing.
    pub async fn execute(
        &self,
        state: &AgentState,
        name: &str,
        params: Map<String, Value>,
        wait: bool,
    ) -> Result<Arc<CommandRecord>, HttpFault> {
        let admitted = {
            let _admission = self.admission.lock().await;
            if let Some(busy) = self.busy_with() {
                return Err(HttpFault::busy(&busy));
            }
            let resolved = self.resolve(name)?;
            let (ext_name, cmd_name) = (resolved.extension.name, resolved.command.name);
            if let Some(validator) = resolved.command.validator {
                match validator(state, &params) {
                    Ok(()) => {}
                    // InvalidContentError family: HTTP 400, nothing recorded.
                    Err(e) if e.is_invalid_content() => {
                        return Err(HttpFault::from_agent_error(&e))
                    }
                    // Anything else is recorded as a failed sync result.
                    Err(e) => {
                        let record = Arc::new(CommandRecord::failed(cmd_name, e));
                        self.push(record.clone());
                        return Ok(record);
                    }
                }
            }
            tracing::info!(
                extension = ext_name,
                command = cmd_name,
                "executing command"
            );
            match resolved.command.mode {
                Mode::Async => Admitted::Started(self.spawn_async(state, &resolved, params)),
                // Runs below, outside the admission lock.
                Mode::Sync => Admitted::RunHere(params),
            }
        };
        let record = match admitted {
            Admitted::Started(record) => record,
            Admitted::RunHere(params) => self.run_sync(state, name, params).await?,
        };
        if wait {
            record.wait().await;
        }
        Ok(record)
    }

    /// Finds `<extension>.<command>`.
    fn resolve(&self, name: &str) -> Result<Resolved<'_>, HttpFault> {
        let Some((ext_name, cmd_name)) = name.split_once('.') else {
            return Err(HttpFault::from_agent_error(&AgentError::invalid_command(
                "Command name must be of the form <extension>.<name>",
            )));
        };
        let extension = self
            .extensions
            .get(ext_name)
            .ok_or_else(|| HttpFault::extension_not_found(ext_name))?;
        let command = extension
            .commands
            .iter()
            .find(|c| c.name == cmd_name)
            .ok_or_else(|| {
                HttpFault::from_agent_error(&AgentError::invalid_command(format!(
                    "Unknown command: {cmd_name}"
                )))
            })?;
        Ok(Resolved { extension, command })
    }

    /// Runs a sync command in the request and records its terminal result.
    async fn run_sync(
        &self,
        state: &AgentState,
        name: &str,
        params: Map<String, Value>,
    ) -> Result<Arc<CommandRecord>, HttpFault> {
        let resolved = self.resolve(name)?;
        let (class, cmd) = (resolved.extension.class, resolved.command);
        let outcome = match params::check_params(class, cmd, &params) {
            Err(type_error) => Err(CommandError::Exception {
                class: "TypeError",
                text: type_error,
            }),
            Ok(()) => {
                let ctx = Ctx {
                    state: state.clone(),
                    record: None,
                };
                (cmd.handler)(ctx, params).await
            }
        };
        let record = match outcome {
            Ok(v) => CommandRecord::succeeded(cmd.name, wrap_sync(v)),
            Err(CommandError::Agent(e)) if e.is_invalid_content() => {
                return Err(HttpFault::from_agent_error(&e));
            }
            Err(e) => {
                let error = match e {
                    CommandError::Agent(e) => e,
                    CommandError::Exception { class, text } => AgentError::exception(class, text),
                };
                tracing::warn!(command = cmd.name, error = %error, "sync command failed");
                CommandRecord::failed(cmd.name, error)
            }
        };
        let record = Arc::new(record.capped(self.limits.max_result_bytes));
        self.push(record.clone());
        Ok(record)
    }

    /// Records an async command as running and starts it on a worker.
    fn spawn_async(
        &self,
        state: &AgentState,
        resolved: &Resolved<'_>,
        params: Map<String, Value>,
    ) -> Arc<CommandRecord> {
        let cmd = resolved.command;
        let record = Arc::new(CommandRecord::running(cmd.name));
        self.push(record.clone());
        *self.running.lock().unwrap_or_else(|p| p.into_inner()) = Some(record.clone());
        let ctx = Ctx {
            state: state.clone(),
            record: Some(record.clone()),
        };
        let checked = params::check_params(resolved.extension.class, cmd, &params);
        let handler = cmd.handler.clone();
        let notify = self.finished_notify.clone();
        let finished = self.finished.clone();
        let max_result_bytes = self.limits.max_result_bytes;
        let worker_record = record.clone();
        tokio::spawn(async move {
            let outcome = match checked {
                Err(text) => Err(CommandError::Exception {
                    class: "TypeError",
                    text,
                }),
                // A panicking body must still finish its result.
                Ok(()) => match tokio::spawn(handler(ctx, params)).await {
                    Ok(outcome) => outcome,
                    Err(e) => Err(CommandError::Exception {
                        class: "RuntimeError",
                        text: format!("command worker failed: {e}"),
                    }),
                },
            };
            complete_async(&worker_record, outcome, max_result_bytes);
            finished.send_modify(|n| *n = n.wrapping_add(1));
            notify.notify_one();
        });
        record
    }
}

/// Finishes an async result as IPA's `AsyncCommandResult.run` does: a
/// string result becomes `{"result": "<command>: <text>"}`, a version
/// mismatch gets its own status, anything else not an IPA error becomes
/// `CommandExecutionError`.
fn complete_async(
    record: &CommandRecord,
    outcome: Result<Value, CommandError>,
    max_result_bytes: usize,
) {
    let name = record.command_name().to_string();
    let outcome = outcome.and_then(|v| {
        let size = serde_json::to_vec(&v).map_or(0, |b| b.len());
        if size > max_result_bytes {
            return Err(CommandError::Agent(AgentError::command_execution(format!(
                "the result of {name} is {size} bytes, over the cap of {max_result_bytes} bytes; not kept"
            ))));
        }
        Ok(v)
    });
    match outcome {
        Ok(Value::String(s)) => record.finish(
            CommandStatus::Succeeded,
            Some(serde_json::json!({"result": format!("{name}: {s}")})),
            None,
        ),
        Ok(v) => record.finish(CommandStatus::Succeeded, Some(v), None),
        Err(CommandError::Agent(e)) if e.error_type == ErrorClass::VersionMismatch => {
            tracing::warn!(command = %name, details = %e.details, "hardware manager version mismatch");
            record.finish(CommandStatus::CleanVersionMismatch, None, Some(e));
        }
        Err(CommandError::Agent(e)) => {
            tracing::warn!(command = %name, error = %e, "command failed");
            record.finish(CommandStatus::Failed, None, Some(e));
        }
        Err(CommandError::Exception { class, text }) => {
            tracing::warn!(command = %name, %class, %text, "command failed");
            record.finish(
                CommandStatus::Failed,
                None,
                Some(AgentError::command_execution(text)),
            );
        }
    }
    tracing::info!(command = %name, status = record.status().as_str(), "command finished");
}

/// Sync string results are wrapped as `{"result": s}`.
fn wrap_sync(v: Value) -> Value {
    match v {
        Value::String(s) => serde_json::json!({"result": s}),
        v => v,
    }
}
