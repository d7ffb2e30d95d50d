//! `log` and `progress`: guest messages into tracing and the step's sink.

use crate::bindings::latest::ironic::hardware::log::{self, Level};
use crate::policy::Need;
use crate::sandbox::CallState;

/// Longest message kept (bytes); longer ones are truncated.
const MAX_MESSAGE: usize = 4096;

pub(crate) fn truncate(message: &str) -> &str {
    if message.len() <= MAX_MESSAGE {
        return message;
    }
    let mut end = MAX_MESSAGE;
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    &message[..end]
}

impl log::Host for CallState {
    fn log(&mut self, level: Level, message: String) {
        if self.manager.policy.check(Need::Log).is_err() {
            return;
        }
        let manager = self.manager.name.as_str();
        let message = truncate(&message);
        match level {
            Level::Trace => tracing::trace!(target: "manager", manager, "{message}"),
            Level::Debug => tracing::debug!(target: "manager", manager, "{message}"),
            Level::Info => tracing::info!(target: "manager", manager, "{message}"),
            Level::Warn => tracing::warn!(target: "manager", manager, "{message}"),
            Level::Error => tracing::error!(target: "manager", manager, "{message}"),
        }
    }
}

// `types` has no functions; the world imports it through `manager`.
impl crate::bindings::latest::ironic::hardware::types::Host for CallState {}
