//! The command engine: registry of extensions, the results list, sync and
//! async execution, the busy rule and `wait=true` (agent-api.md §7,
//! commands.md §1).
//!
//! Progress: while an async command is `RUNNING`, progress reported by the
//! hardware manager appears in its result object as an extra key
//! `command_progress: {"percent": <int|null>, "message": "<text>"}`. Ironic
//! ignores unknown keys; finished results carry exactly the five spec keys.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use tokio::sync::{watch, Notify};

use crate::errors::{AgentError, HttpFault};
use crate::AgentState;

/// Status of a command result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandStatus {
    /// Async command still executing.
    Running,
    /// Finished normally.
    Succeeded,
    /// Raised an error.
    Failed,
    /// Hardware-manager version mismatch (all step kinds; historical name).
    CleanVersionMismatch,
}

impl CommandStatus {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CommandStatus::Running => "RUNNING",
            CommandStatus::Succeeded => "SUCCEEDED",
            CommandStatus::Failed => "FAILED",
            CommandStatus::CleanVersionMismatch => "CLEAN_VERSION_MISMATCH",
        }
    }
}

/// Progress reported by a running step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// 0-100, or unknown.
    pub percent: Option<u8>,
    /// Free text.
    pub message: String,
}

#[derive(Debug)]
struct ResultState {
    status: CommandStatus,
    error: Option<AgentError>,
    result: Option<Value>,
    progress: Option<Progress>,
}

/// One command result (agent-api.md §7.1). Shared between the list, the
/// worker that completes it and requests waiting on it.
#[derive(Debug)]
pub struct CommandRecord {
    id: String,
    command_name: String,
    state: Mutex<ResultState>,
    done: watch::Sender<bool>,
}

impl CommandRecord {
    fn new(command_name: &str, state: ResultState) -> Self {
        let terminal = state.status != CommandStatus::Running;
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            command_name: command_name.to_string(),
            state: Mutex::new(state),
            done: watch::Sender::new(terminal),
        }
    }

    /// The result's UUID4.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Command name without the extension prefix.
    pub fn command_name(&self) -> &str {
        &self.command_name
    }

    /// Current status.
    pub fn status(&self) -> CommandStatus {
        self.lock().status
    }

    /// Records progress (only kept while running).
    pub fn set_progress(&self, percent: Option<u8>, message: &str) {
        let mut st = self.lock();
        if st.status == CommandStatus::Running {
            st.progress = Some(Progress {
                percent: percent.map(|p| p.min(100)),
                message: message.to_string(),
            });
        }
    }

    /// Waits until the result is terminal.
    pub async fn wait(&self) {
        let mut rx = self.done.subscribe();
        // An error means the sender is gone, which cannot happen while
        // `self` is alive; either way there is nothing more to wait for.
        let _ = rx.wait_for(|done| *done).await;
    }

    /// The result as a JSON value.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    fn finish(&self, status: CommandStatus, result: Option<Value>, error: Option<AgentError>) {
        {
            let mut st = self.lock();
            st.status = status;
            st.result = result;
            st.error = error;
            st.progress = None;
        }
        self.done.send_replace(true);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ResultState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Serialize for CommandRecord {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let st = self.lock();
        let progress = st
            .progress
            .as_ref()
            .filter(|_| st.status == CommandStatus::Running);
        let mut map = serializer.serialize_map(Some(5 + usize::from(progress.is_some())))?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("command_name", &self.command_name)?;
        map.serialize_entry("command_status", st.status.as_str())?;
        map.serialize_entry("command_error", &st.error)?;
        map.serialize_entry("command_result", &st.result)?;
        if let Some(p) = progress {
            map.serialize_entry(
                "command_progress",
                &serde_json::json!({"percent": p.percent, "message": p.message}),
            )?;
        }
        map.end()
    }
}

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
pub type Handler = fn(Ctx, Map<String, Value>) -> CommandFuture;

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

    /// A progress sink that can move into a blocking task.
    pub fn progress_sink(&self) -> impl Fn(Option<u8>, &str) + Send + Sync + 'static {
        let record = self.record.clone();
        move |percent, message| {
            if let Some(r) = &record {
                r.set_progress(percent, message);
            }
        }
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

/// The command engine.
pub struct CommandEngine {
    extensions: HashMap<&'static str, Extension>,
    results: RwLock<Vec<Arc<CommandRecord>>>,
    // Held for a whole sync command, and until an async one is spawned.
    lock: tokio::sync::Mutex<()>,
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

impl CommandEngine {
    /// An engine serving the given extensions.
    pub fn new(extensions: Vec<Extension>) -> Self {
        Self {
            extensions: extensions.into_iter().map(|e| (e.name, e)).collect(),
            results: RwLock::new(Vec::new()),
            lock: tokio::sync::Mutex::new(()),
            finished: watch::Sender::new(0),
            finished_notify: Arc::new(Notify::new()),
        }
    }

    /// Every result, oldest first.
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
            .find(|r| r.id == id)
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

    fn push(&self, record: Arc<CommandRecord>) {
        self.results
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }

    fn newest_running(&self) -> Option<String> {
        let results = self.results.read().unwrap_or_else(|p| p.into_inner());
        results
            .last()
            .filter(|r| r.status() == CommandStatus::Running)
            .map(|r| r.command_name.clone())
    }

    /// Executes `<extension>.<command>` as `POST /v1/commands/` does
    /// (agent-api.md §7.4). Returns the recorded result, or the HTTP fault
    /// for requests that record nothing.
    pub async fn execute(
        &self,
        state: &AgentState,
        name: &str,
        params: Map<String, Value>,
        wait: bool,
    ) -> Result<Arc<CommandRecord>, HttpFault> {
        let record = {
            let _guard = self.lock.lock().await;
            self.execute_locked(state, name, params).await?
        };
        if wait {
            record.wait().await;
        }
        Ok(record)
    }

    async fn execute_locked(
        &self,
        state: &AgentState,
        name: &str,
        params: Map<String, Value>,
    ) -> Result<Arc<CommandRecord>, HttpFault> {
        let Some((ext_name, cmd_name)) = name.split_once('.') else {
            return Err(HttpFault::from_agent_error(&AgentError::invalid_command(
                "Command name must be of the form <extension>.<name>",
            )));
        };
        if let Some(busy) = self.newest_running() {
            return Err(HttpFault::busy(&busy));
        }
        let ext = self
            .extensions
            .get(ext_name)
            .ok_or_else(|| HttpFault::extension_not_found(ext_name))?;
        let cmd = ext
            .commands
            .iter()
            .find(|c| c.name == cmd_name)
            .ok_or_else(|| {
                HttpFault::from_agent_error(&AgentError::invalid_command(format!(
                    "Unknown command: {cmd_name}"
                )))
            })?;
        if let Some(validator) = cmd.validator {
            match validator(state, &params) {
                Ok(()) => {}
                // InvalidContentError family: HTTP 400, nothing recorded.
                Err(e) if e.is_invalid_content() => return Err(HttpFault::from_agent_error(&e)),
                // Anything else is recorded as a failed sync result (§7.4 step 9).
                Err(e) => {
                    let record = Arc::new(CommandRecord::new(
                        cmd_name,
                        ResultState {
                            status: CommandStatus::Failed,
                            error: Some(e),
                            result: None,
                            progress: None,
                        },
                    ));
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

        match cmd.mode {
            Mode::Sync => {
                let outcome = match check_params(ext.class, cmd, &params) {
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
                let st = match outcome {
                    Ok(v) => ResultState {
                        status: CommandStatus::Succeeded,
                        error: None,
                        result: Some(wrap_sync(v)),
                        progress: None,
                    },
                    Err(CommandError::Agent(e)) if e.is_invalid_content() => {
                        return Err(HttpFault::from_agent_error(&e));
                    }
                    Err(e) => {
                        let error = match e {
                            CommandError::Agent(e) => e,
                            CommandError::Exception { class, text } => {
                                AgentError::exception(class, text)
                            }
                        };
                        tracing::warn!(command = cmd_name, error = %error, "sync command failed");
                        ResultState {
                            status: CommandStatus::Failed,
                            error: Some(error),
                            result: None,
                            progress: None,
                        }
                    }
                };
                let record = Arc::new(CommandRecord::new(cmd_name, st));
                self.push(record.clone());
                Ok(record)
            }
            Mode::Async => {
                let record = Arc::new(CommandRecord::new(
                    cmd_name,
                    ResultState {
                        status: CommandStatus::Running,
                        error: None,
                        result: None,
                        progress: None,
                    },
                ));
                self.push(record.clone());
                let ctx = Ctx {
                    state: state.clone(),
                    record: Some(record.clone()),
                };
                let checked = check_params(ext.class, cmd, &params);
                let handler = cmd.handler;
                let notify = self.finished_notify.clone();
                let finished = self.finished.clone();
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
                    complete_async(&worker_record, outcome);
                    finished.send_modify(|n| *n = n.wrapping_add(1));
                    notify.notify_one();
                });
                Ok(record)
            }
        }
    }
}

/// Finishes an async result per agent-api.md §7.5.
fn complete_async(record: &CommandRecord, outcome: Result<Value, CommandError>) {
    let name = record.command_name.clone();
    match outcome {
        Ok(Value::String(s)) => record.finish(
            CommandStatus::Succeeded,
            Some(serde_json::json!({"result": format!("{name}: {s}")})),
            None,
        ),
        Ok(v) => record.finish(CommandStatus::Succeeded, Some(v), None),
        Err(CommandError::Agent(e)) if e.error_type == "VersionMismatch" => {
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

/// Python's keyword-argument binding check, with Python's wording:
/// `Cls.fn() got an unexpected keyword argument 'x'` (checked first) or
/// `Cls.fn() missing 2 required positional arguments: 'a' and 'b'`.
fn check_params(class: &str, cmd: &CommandDef, params: &Map<String, Value>) -> Result<(), String> {
    let qualname = format!("{class}.{}", cmd.name);
    if !cmd.extra_kwargs {
        if let Some(k) = params
            .keys()
            .find(|k| !cmd.params.iter().any(|p| p.name == k.as_str()))
        {
            return Err(format!(
                "{qualname}() got an unexpected keyword argument '{k}'"
            ));
        }
    }
    let missing: Vec<String> = cmd
        .params
        .iter()
        .filter(|p| p.required && !params.contains_key(p.name))
        .map(|p| format!("'{}'", p.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = match missing.len() {
        1 => missing[0].clone(),
        2 => format!("{} and {}", missing[0], missing[1]),
        n => format!("{}, and {}", missing[..n - 1].join(", "), missing[n - 1]),
    };
    let plural = if missing.len() == 1 { "" } else { "s" };
    Err(format!(
        "{qualname}() missing {} required positional argument{plural}: {list}",
        missing.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn noop(_: Ctx, _: Map<String, Value>) -> CommandFuture {
        Box::pin(async { Ok(Value::Null) })
    }

    fn def(params: &'static [Param], extra: bool) -> CommandDef {
        CommandDef {
            name: "execute_clean_step",
            mode: Mode::Sync,
            params,
            extra_kwargs: extra,
            validator: None,
            handler: noop,
        }
    }

    #[test]
    fn python_type_errors() {
        const P: &[Param] = &[req("step"), req("node"), req("ports"), opt("clean_version")];
        let d = def(P, false);
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            check_params("CleanExtension", &d, &m(json!({"node": {}, "ports": []}))),
            Err("CleanExtension.execute_clean_step() missing 1 required positional argument: 'step'".into())
        );
        assert_eq!(
            check_params("CleanExtension", &d, &m(json!({"node": {}}))),
            Err("CleanExtension.execute_clean_step() missing 2 required positional arguments: 'step' and 'ports'".into())
        );
        assert_eq!(
            check_params("CleanExtension", &d, &m(json!({}))),
            Err("CleanExtension.execute_clean_step() missing 3 required positional arguments: 'step', 'node', and 'ports'".into())
        );
        assert_eq!(
            check_params("CleanExtension", &d, &m(json!({"x": 1}))),
            Err(
                "CleanExtension.execute_clean_step() got an unexpected keyword argument 'x'".into()
            )
        );
        let d = def(P, true);
        assert!(check_params(
            "CleanExtension",
            &d,
            &m(json!({"x": 1, "step": {}, "node": {}, "ports": []}))
        )
        .is_ok());
    }

    #[test]
    fn progress_only_while_running() {
        let r = CommandRecord::new(
            "execute_clean_step",
            ResultState {
                status: CommandStatus::Running,
                error: None,
                result: None,
                progress: None,
            },
        );
        r.set_progress(Some(40), "halfway");
        let v = r.to_json();
        assert_eq!(
            v["command_progress"],
            json!({"percent": 40, "message": "halfway"})
        );
        r.finish(CommandStatus::Succeeded, Some(json!({})), None);
        let v = r.to_json();
        assert_eq!(v.as_object().unwrap().len(), 5);
        r.set_progress(Some(50), "late");
        assert_eq!(r.to_json().as_object().unwrap().len(), 5);
    }
}
