//! Conveniences for errors, steps and JSON arguments.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{ArgInfo, Failure, ManagerError, ManagerInfo, Step};

impl ManagerInfo {
    /// `id` plays the role of IPA's class name; `name`/`version` are what
    /// Ironic sees in `hardware_manager_version`.
    pub fn new(id: impl Into<String>, name: impl Into<String>, version: impl Into<String>) -> Self {
        ManagerInfo {
            id: id.into(),
            name: name.into(),
            version: version.into(),
        }
    }
}

impl ManagerError {
    /// "Not implemented here": the agent asks the next manager.
    pub fn unsupported(what: impl Into<String>) -> Self {
        ManagerError::Unsupported(what.into())
    }
    /// "Implemented, but not for this hardware": the agent asks the next manager.
    pub fn incompatible(why: impl Into<String>) -> Self {
        ManagerError::Incompatible(why.into())
    }
    /// Bad arguments; reported as `InvalidCommandParamsError`.
    pub fn invalid_argument(why: impl Into<String>) -> Self {
        ManagerError::InvalidArgument(why.into())
    }
    /// A failure the agent wraps for the call (e.g. `CleaningError`).
    pub fn failed(details: impl Into<String>) -> Self {
        ManagerError::Failed(Failure {
            error_type: None,
            details: details.into(),
        })
    }
    /// A failure reported as the IPA error class `error_type`.
    pub fn failed_as(error_type: impl Into<String>, details: impl Into<String>) -> Self {
        ManagerError::Failed(Failure {
            error_type: Some(error_type.into()),
            details: details.into(),
        })
    }
}

impl Step {
    /// A step that does not request a reboot, with no `abortable` key and no
    /// arguments.
    pub fn new(name: impl Into<String>, priority: i32, interface: impl Into<String>) -> Self {
        Step {
            name: name.into(),
            priority,
            interface: interface.into(),
            reboot_requested: false,
            abortable: None,
            argsinfo: None,
        }
    }
    pub fn abortable(mut self, abortable: bool) -> Self {
        self.abortable = Some(abortable);
        self
    }
    pub fn reboot_requested(mut self, reboot: bool) -> Self {
        self.reboot_requested = reboot;
        self
    }
    /// Declare an argument (`argsinfo`).
    pub fn arg(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        required: bool,
    ) -> Self {
        self.argsinfo.get_or_insert_with(Vec::new).push(ArgInfo {
            name: name.into(),
            description: description.into(),
            required,
        });
        self
    }
}

/// A step's JSON arguments, with typed accessors whose errors name the argument.
pub struct StepArgs(serde_json::Map<String, serde_json::Value>);

impl StepArgs {
    /// Parse the `args` JSON object handed to `execute-step`.
    pub fn parse(json: &str) -> Result<Self, ManagerError> {
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(serde_json::Value::Object(map)) => Ok(StepArgs(map)),
            Ok(serde_json::Value::Null) => Ok(StepArgs(serde_json::Map::new())),
            Ok(other) => Err(ManagerError::invalid_argument(format!(
                "step arguments must be a JSON object, got {other}"
            ))),
            Err(e) => Err(ManagerError::invalid_argument(format!(
                "step arguments are not JSON: {e}"
            ))),
        }
    }

    /// An optional argument; `None` when absent or `null`.
    pub fn get<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, ManagerError> {
        match self.0.get(name) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(value) => serde_json::from_value(value.clone())
                .map(Some)
                .map_err(|e| ManagerError::invalid_argument(format!("argument {name}: {e}"))),
        }
    }

    /// A required argument.
    pub fn required<T: DeserializeOwned>(&self, name: &str) -> Result<T, ManagerError> {
        self.get(name)?.ok_or_else(|| {
            ManagerError::invalid_argument(format!("missing required argument {name}"))
        })
    }

    /// The raw map.
    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}

/// Serialise a step result.
pub fn json_result<T: Serialize>(value: &T) -> Result<String, ManagerError> {
    serde_json::to_string(value)
        .map_err(|e| ManagerError::failed(format!("step result is not serialisable: {e}")))
}

/// An inventory record's `extra` field from any JSON object: its keys are
/// added to the record in the inventory Ironic stores.
pub fn extra(value: serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Null => None,
        v => Some(v.to_string()),
    }
}

/// A program to run, built up then run: `run` fails unless it exits 0,
/// with its stdout and stderr in the error (IPA's `utils.execute` raising
/// `ProcessExecutionError`); `output` returns whatever happened.
#[derive(Debug, Clone)]
pub struct Command {
    request: crate::commands::RunRequest,
}

impl Command {
    pub fn new(program: impl Into<String>) -> Self {
        Command {
            request: crate::commands::RunRequest {
                program: program.into(),
                args: Vec::new(),
                stdin: None,
                timeout_ms: None,
                env: Vec::new(),
                in_scratch: false,
            },
        }
    }
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.request.args.push(arg.into());
        self
    }
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.request.args.extend(args.into_iter().map(Into::into));
        self
    }
    /// An environment variable; its name must be declared (`[commands] env`)
    /// and granted.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.request.env.push((name.into(), value.into()));
        self
    }
    /// Run in the call's scratch space (declared and granted `[scratch]`).
    pub fn in_scratch(mut self) -> Self {
        self.request.in_scratch = true;
        self
    }
    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.request.stdin = Some(bytes.into());
        self
    }
    pub fn timeout_ms(mut self, ms: u32) -> Self {
        self.request.timeout_ms = Some(ms);
        self
    }

    /// Run it and return what happened, whatever the exit status.
    pub fn output(&self) -> Result<crate::commands::CommandOutput, crate::commands::CommandError> {
        crate::commands::run_with(&self.request)
    }

    /// Run it; anything but exit status 0 is a failure naming the program,
    /// the status and its output.
    pub fn run(&self) -> Result<crate::commands::CommandOutput, ManagerError> {
        let program = &self.request.program;
        let out = self
            .output()
            .map_err(|e| ManagerError::failed(format!("{program}: {e:?}")))?;
        if out.exit_code == Some(0) {
            return Ok(out);
        }
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
        Err(ManagerError::failed(format!(
            "{program} {} exited with {}; stdout: {}; stderr: {}",
            self.request.args.join(" "),
            out.exit_code
                .map_or_else(|| "a signal".to_string(), |c| format!("status {c}")),
            text(&out.stdout),
            text(&out.stderr)
        )))
    }
}
