//! Errors at the crate boundary.

use std::fmt;
use std::path::PathBuf;

/// Failure to start the host (configuration, grants, managers directory).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The grants file is not valid.
    #[error("grants file {file}: {message}")]
    Grants {
        /// The grants file (or `<built-in>`).
        file: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A file or directory could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The culprit.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The WebAssembly engine could not be set up.
    #[error("wasm engine: {0}")]
    Engine(String),
    /// No manager in the directory is usable (IPA's `HardwareManagerNotFound`).
    #[error("HardwareManagerNotFound: no usable hardware manager in {dir}{}", rejected_suffix(.rejected))]
    HardwareManagerNotFound {
        /// The managers directory.
        dir: PathBuf,
        /// Why each candidate was not used.
        rejected: Vec<crate::RejectedManager>,
    },
    /// A component offered to a running host was not loaded; the running
    /// set is unchanged.
    #[error("manager {manager} ({file}) rejected: {reason}")]
    Rejected {
        /// The manager (file stem).
        manager: String,
        /// The component file.
        file: PathBuf,
        /// Why.
        reason: String,
    },
    /// No manager of that name is loaded.
    #[error("no hardware manager named {manager} is loaded")]
    NotLoaded {
        /// The name asked for.
        manager: String,
    },
}

fn rejected_suffix(rejected: &[crate::RejectedManager]) -> String {
    if rejected.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = rejected
        .iter()
        .map(|r| format!("{}: {}", r.file.display(), r.reason))
        .collect();
    format!(" ({})", parts.join("; "))
}

/// How the sandbox ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxFailure {
    /// The guest trapped (panic, unreachable, out-of-bounds access, ...).
    Trap,
    /// The call ran past its deadline.
    Timeout,
    /// The guest tried to grow its memory past the limit.
    MemoryLimit,
    /// The guest broke the contract (bad instantiation, invalid result).
    Contract,
}

impl fmt::Display for SandboxFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SandboxFailure::Trap => "trap",
            SandboxFailure::Timeout => "timeout",
            SandboxFailure::MemoryLimit => "memory limit",
            SandboxFailure::Contract => "contract violation",
        })
    }
}

/// A dispatched call that produced no value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DispatchError {
    /// No manager answered (IPA's `HardwareManagerMethodNotFound`).
    #[error("no hardware manager handles {call}")]
    NoManager {
        /// The call, e.g. `get-cpus` or `execute-step erase_devices`.
        call: String,
    },
    /// No manager ran step `step`: none lists it (`hint` names the steps
    /// that exist), or the managers listing it answered unsupported
    /// (`hint` names them and their reasons).
    #[error("no hardware manager handles {call}: {hint}")]
    StepNotHandled {
        /// `execute-step <kind> <step>`.
        call: String,
        /// The step name.
        step: String,
        /// Why, for the operator.
        hint: String,
    },
    /// A manager answered with a failure; dispatch stopped.
    #[error("manager {manager} failed {call}: {}{details}", error_type.as_deref().map(|t| format!("{t}: ")).unwrap_or_default())]
    Failed {
        /// The manager (file stem).
        manager: String,
        /// The call.
        call: String,
        /// IPA error class the manager chose, if any.
        error_type: Option<String>,
        /// What went wrong.
        details: String,
    },
    /// A manager rejected the arguments (`InvalidCommandParamsError`).
    #[error("manager {manager} rejected the arguments of {call}: {details}")]
    InvalidArgument {
        /// The manager (file stem).
        manager: String,
        /// The call.
        call: String,
        /// What is wrong.
        details: String,
    },
    /// The sandbox stopped the call (trap, timeout, memory limit).
    #[error("manager {manager} {failure} in {call}: {details}")]
    Sandbox {
        /// The manager (file stem).
        manager: String,
        /// The call.
        call: String,
        /// How it ended.
        failure: SandboxFailure,
        /// Trap message, limit, guest stderr.
        details: String,
    },
}
