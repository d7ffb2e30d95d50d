//! One command result as Ironic reads it (`GET /v1/commands/`): status,
//! error, result, and progress while it runs. IPA:
//! `ironic_python_agent/extensions/base.py` (`BaseCommandResult`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use tokio::sync::watch;

use crate::errors::AgentError;

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
pub(crate) struct ResultState {
    pub(crate) status: CommandStatus,
    pub(crate) error: Option<AgentError>,
    pub(crate) result: Option<Value>,
    pub(crate) progress: Option<Progress>,
}

/// One command result. Shared between the list, the worker that completes
/// it and requests waiting on it.
#[derive(Debug)]
pub struct CommandRecord {
    id: String,
    command_name: String,
    state: Mutex<ResultState>,
    done: watch::Sender<bool>,
    /// Bytes of the serialised result once terminal (what the history
    /// limits count).
    size: AtomicUsize,
}

/// A result's size while it runs: its id, name and status.
const RUNNING_SIZE: usize = 160;

impl CommandRecord {
    pub(crate) fn new(command_name: &str, state: ResultState) -> Self {
        let terminal = state.status != CommandStatus::Running;
        let record = Self {
            id: uuid::Uuid::new_v4().to_string(),
            command_name: command_name.to_string(),
            state: Mutex::new(state),
            done: watch::Sender::new(terminal),
            size: AtomicUsize::new(RUNNING_SIZE),
        };
        if terminal {
            record.measure();
        }
        record
    }

    /// An async command just started.
    pub(crate) fn running(command_name: &str) -> Self {
        Self::new(
            command_name,
            ResultState {
                status: CommandStatus::Running,
                error: None,
                result: None,
                progress: None,
            },
        )
    }

    /// A finished command with `result`.
    pub(crate) fn succeeded(command_name: &str, result: Value) -> Self {
        Self::new(
            command_name,
            ResultState {
                status: CommandStatus::Succeeded,
                error: None,
                result: Some(result),
                progress: None,
            },
        )
    }

    /// A failed command.
    pub(crate) fn failed(command_name: &str, error: AgentError) -> Self {
        Self::new(
            command_name,
            ResultState {
                status: CommandStatus::Failed,
                error: Some(error),
                result: None,
                progress: None,
            },
        )
    }

    /// This record, or a failure saying so when its result is over `cap`
    /// bytes.
    pub(crate) fn capped(self, cap: usize) -> Self {
        let size = self.size_bytes();
        if size <= cap {
            return self;
        }
        let name = self.command_name.clone();
        Self::failed(
            &name,
            AgentError::command_execution(format!(
                "the result of {name} is {size} bytes, over the cap of {cap} bytes; not kept"
            )),
        )
    }

    /// Bytes of the serialised result (an estimate while running).
    pub fn size_bytes(&self) -> usize {
        self.size.load(Ordering::Relaxed)
    }

    fn measure(&self) {
        let size = serde_json::to_vec(self).map_or(0, |b| b.len());
        self.size.store(size, Ordering::Relaxed);
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

    pub(crate) fn finish(
        &self,
        status: CommandStatus,
        result: Option<Value>,
        error: Option<AgentError>,
    ) {
        {
            let mut st = self.lock();
            st.status = status;
            st.result = result;
            st.error = error;
            st.progress = None;
        }
        self.measure();
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
