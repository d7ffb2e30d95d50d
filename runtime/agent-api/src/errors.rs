//! IPA's error vocabulary, in the two shapes Ironic sees.
//!
//! * [`AgentError`]: the error object stored in a command result's
//!   `command_error` (`{"type", "code", "message", "details"}`, IPA
//!   `errors.py` `RESTError.serializable_fields`).
//! * [`HttpFault`]: an HTTP-level failure answered as
//!   `{"faultcode": "Client"|"Server", "faultstring": "..."}` (IPA `api/app.py`
//!   `format_exception`).
//!   Ironic substring-matches `faultstring`, so every text here is exact.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ironic_steps::StepKind;
use serde::{Deserialize, Serialize};

/// Default `details` of the RESTError family when none is given.
pub const DEFAULT_DETAILS: &str = "An unexpected error occurred. Please try back later.";

/// Declares [`ErrorClass`] from IPA's catalogue: variant = (class name,
/// code, fixed message).
macro_rules! error_classes {
    ($($variant:ident = ($name:literal, $code:literal, $message:literal),)*) => {
        /// An IPA error class (`ironic_python_agent/errors.py`): each has a
        /// fixed code and message. [`ErrorClass::Other`] is any other class
        /// name: a Python exception class (`TypeError`), or one a hardware
        /// manager chose.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum ErrorClass {
            $(
                #[doc = concat!("`", $name, "`: ", $message)]
                $variant,
            )*
            /// A class outside IPA's catalogue.
            Other(String),
        }

        impl ErrorClass {
            /// The class name on the wire (`command_error.type`).
            pub fn name(&self) -> &str {
                match self {
                    $(ErrorClass::$variant => $name,)*
                    ErrorClass::Other(name) => name,
                }
            }

            /// `(code, message)` of a catalogue class.
            pub fn catalogue(&self) -> Option<(u16, &'static str)> {
                match self {
                    $(ErrorClass::$variant => Some(($code, $message)),)*
                    ErrorClass::Other(_) => None,
                }
            }

            /// The class named `name` (a catalogue class when it is one).
            pub fn from_name(name: &str) -> ErrorClass {
                match name {
                    $($name => ErrorClass::$variant,)*
                    other => ErrorClass::Other(other.to_string()),
                }
            }
        }
    };
}

// IPA's catalogue (`ironic_python_agent/errors.py`): class, code, message.
error_classes! {
    RestError = ("RESTError", 500, "An error occurred"),
    InvalidContentError = ("InvalidContentError", 400, "Invalid request body"),
    InvalidCommandError = ("InvalidCommandError", 400, "Invalid command"),
    InvalidCommandParamsError = ("InvalidCommandParamsError", 400, "Invalid command parameters"),
    NotFound = ("NotFound", 404, "Not found"),
    RequestedObjectNotFoundError = ("RequestedObjectNotFoundError", 404, "Not found"),
    DeviceNotFound = ("DeviceNotFound", 404, "Error finding the disk or partition device to deploy the image onto"),
    CommandExecutionError = ("CommandExecutionError", 500, "Command execution failed"),
    AgentIsBusy = ("AgentIsBusy", 409, "Agent is busy"),
    ContainerNotPermittedError = ("ContainerNotPermittedError", 500, "Container image not permitted"),
    IronicAPIError = ("IronicAPIError", 500, "Error in call to agent-api"),
    HeartbeatError = ("HeartbeatError", 500, "Error heartbeating to agent API"),
    HeartbeatConflictError = ("HeartbeatConflictError", 500, "ConflictError heartbeating to agent API"),
    HeartbeatConnectionError = ("HeartbeatConnectionError", 500, "Error attempting to heartbeat - Possible transitory network failure or blocking port may be present."),
    LookupNodeError = ("LookupNodeError", 500, "Error getting configuration from Ironic"),
    LookupAgentIPError = ("LookupAgentIPError", 500, "Error finding IP for Ironic Agent"),
    ImageDownloadError = ("ImageDownloadError", 500, "Error downloading image"),
    ImageDownloadOutofSpaceError = ("ImageDownloadOutofSpaceError", 500, "Error downloading image"),
    ImageDownloadFatalError = ("ImageDownloadFatalError", 500, "Error downloading image"),
    ImageDownloadTimeoutError = ("ImageDownloadTimeoutError", 408, "Image download timeout"),
    ImageChecksumError = ("ImageChecksumError", 500, "Error verifying image checksum"),
    ImageWriteError = ("ImageWriteError", 500, "Error writing image to device"),
    SystemRebootError = ("SystemRebootError", 500, "Error rebooting system"),
    BlockDeviceEraseError = ("BlockDeviceEraseError", 500, "Error erasing block device"),
    BlockDeviceError = ("BlockDeviceError", 500, "Block device caused unknown error"),
    SoftwareRAIDError = ("SoftwareRAIDError", 500, "Software RAID caused unknown error"),
    VirtualMediaBootError = ("VirtualMediaBootError", 500, "Configuring agent from virtual media failed"),
    ExtensionError = ("ExtensionError", 500, "An error occurred"),
    UnknownNodeError = ("UnknownNodeError", 500, "Agent is not associated with an Ironic node"),
    HardwareManagerNotFound = ("HardwareManagerNotFound", 500, "No valid HardwareManager found"),
    HardwareManagerMethodNotFound = ("HardwareManagerMethodNotFound", 500, "No HardwareManager found to handle method"),
    HardwareManagerConfigurationError = ("HardwareManagerConfigurationError", 500, "Hardware manager configuration error"),
    IncompatibleHardwareMethodError = ("IncompatibleHardwareMethodError", 500, "HardwareManager method is not compatible with hardware"),
    VersionMismatch = ("VersionMismatch", 409, "Hardware managers version mismatch, reload agent with correct version"),
    CleaningError = ("CleaningError", 500, "Clean step failed"),
    DeploymentError = ("DeploymentError", 500, "Deploy step failed"),
    ServicingError = ("ServicingError", 500, "Service step failed"),
    InvalidImage = ("InvalidImage", 500, "The provided image is not valid for use"),
    ClockSyncError = ("ClockSyncError", 500, "Error syncing system clock"),
    IncompatibleNumaFormatError = ("IncompatibleNumaFormatError", 500, "Error in NUMA node data format"),
    InvalidMetricConfig = ("InvalidMetricConfig", 500, "Invalid value for metrics config option."),
    MetricsNotSupported = ("MetricsNotSupported", 500, "Metrics action is not supported. You may need to adjust the [metrics] section in ironic.conf."),
}

impl std::fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<&str> for ErrorClass {
    fn from(name: &str) -> Self {
        ErrorClass::from_name(name)
    }
}

impl PartialEq<&str> for ErrorClass {
    fn eq(&self, other: &&str) -> bool {
        self.name() == *other
    }
}

impl Serialize for ErrorClass {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ErrorClass {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Ok(ErrorClass::from_name(&name))
    }
}

/// The IPA error object carried in `command_error` (IPA `errors.py` `RESTError`).
///
/// Serialises to exactly `{"type", "code", "message", "details"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{error_type}: {message}: {details}")]
pub struct AgentError {
    /// IPA's error class (`CleaningError`, `TypeError`, ...).
    #[serde(rename = "type")]
    pub error_type: ErrorClass,
    /// The class's HTTP-like code (informational; the HTTP status stays 200).
    pub code: u16,
    /// The class's fixed message.
    pub message: String,
    /// The specific text; Ironic shows this first.
    pub details: String,
}

impl AgentError {
    /// An error of a catalogue class with its standard code and message.
    /// Unknown class names (a manager's own error type) get code 500 and the
    /// RESTError message, as an IPA RESTError subclass without overrides would.
    pub fn new(error_type: impl Into<ErrorClass>, details: impl Into<String>) -> Self {
        let error_type = error_type.into();
        let (code, message) = error_type.catalogue().unwrap_or((500, "An error occurred"));
        Self {
            error_type,
            code,
            message: message.to_string(),
            details: details.into(),
        }
    }

    /// A non-IPA exception recorded by a sync command (e.g. Python's
    /// `TypeError` for bad keyword arguments). The reference fails to
    /// serialise these (IPA `ExecuteCommandMixin.execute_command` stores the raw
    /// exception in a `SyncCommandResult`); we record them cleanly instead.
    pub fn exception(class: &str, details: impl Into<String>) -> Self {
        Self {
            error_type: ErrorClass::from_name(class),
            code: 500,
            message: "Command execution failed".to_string(),
            details: details.into(),
        }
    }

    /// `CommandExecutionError` with the given details.
    pub fn command_execution(details: impl Into<String>) -> Self {
        Self::new(ErrorClass::CommandExecutionError, details)
    }

    /// `InvalidCommandParamsError` with the given details.
    pub fn invalid_params(details: impl Into<String>) -> Self {
        Self::new(ErrorClass::InvalidCommandParamsError, details)
    }

    /// `InvalidCommandError` with the given details.
    pub fn invalid_command(details: impl Into<String>) -> Self {
        Self::new(ErrorClass::InvalidCommandError, details)
    }

    /// `HardwareManagerMethodNotFound`: no manager implements `method`.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            ErrorClass::HardwareManagerMethodNotFound,
            format!("Could not find method: {method}"),
        )
    }

    /// True for the `InvalidContentError` family, which the reference answers
    /// with HTTP 400 instead of recording a result.
    pub fn is_invalid_content(&self) -> bool {
        matches!(
            self.error_type,
            ErrorClass::InvalidContentError
                | ErrorClass::InvalidCommandError
                | ErrorClass::InvalidCommandParamsError
        )
    }

    /// HTTP status for this error when it is answered at the HTTP level.
    pub fn http_status(&self) -> StatusCode {
        StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The RESTError faultstring form: `"<message>: <details>"`.
    pub fn faultstring(&self) -> String {
        format!("{}: {}", self.message, self.details)
    }
}

/// An HTTP-level error answered as a WSME fault body (IPA `Application.handle_exception`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {faultstring}")]
pub struct HttpFault {
    /// HTTP status of the reply.
    pub status: StatusCode,
    /// Exact `faultstring` text.
    pub faultstring: String,
    /// Methods for the `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl HttpFault {
    /// A fault with the given status and text.
    pub fn new(status: StatusCode, faultstring: impl Into<String>) -> Self {
        Self {
            status,
            faultstring: faultstring.into(),
            allow: None,
        }
    }

    /// 401 for a missing or wrong agent token.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "401 Unauthorized: Token invalid.")
    }

    /// 404 for an unknown route (werkzeug's text).
    pub fn route_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "404 Not Found: The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.",
        )
    }

    /// 405 with the route's allowed methods.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 Method Not Allowed: The method is not allowed for the requested URL.",
            )
        }
    }

    /// 400 for a body that is not JSON.
    pub fn bad_json(parser_message: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            format!("400 Bad Request: Failed to decode JSON object: {parser_message}"),
        )
    }

    /// 400 for a JSON body without a usable `name`/`params`.
    pub fn missing_name_or_params() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: Missing or invalid name or params",
        )
    }

    /// 413 for a body above the cap (werkzeug's text).
    pub fn too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "413 Request Entity Too Large: The data value transmitted exceeds the capacity limit.",
        )
    }

    /// 409 while an async command runs.
    pub fn busy(command_name: &str) -> Self {
        Self::from_agent_error(&AgentError::new(
            ErrorClass::AgentIsBusy,
            format!("executing command {command_name}"),
        ))
    }

    /// 404 for an unknown command id.
    pub fn result_not_found(id: &str) -> Self {
        Self::from_agent_error(&AgentError::new(
            ErrorClass::RequestedObjectNotFoundError,
            format!("Command Result with id {id} not found."),
        ))
    }

    /// 404 for an unknown extension.
    pub fn extension_not_found(ext: &str) -> Self {
        Self::from_agent_error(&AgentError::new(
            ErrorClass::RequestedObjectNotFoundError,
            format!("Extension with id {ext} not found."),
        ))
    }

    /// A RESTError answered at the HTTP level: status = its code,
    /// faultstring `"<message>: <details>"`.
    pub fn from_agent_error(err: &AgentError) -> Self {
        Self::new(err.http_status(), err.faultstring())
    }

    /// 500 for an unexpected internal failure.
    pub fn internal(text: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, text)
    }
}

impl IntoResponse for HttpFault {
    fn into_response(self) -> Response {
        let faultcode = if self.status.is_server_error() {
            "Server"
        } else {
            "Client"
        };
        let body = serde_json::json!({"faultcode": faultcode, "faultstring": self.faultstring});
        let mut response = json_response(self.status, &body);
        if let Some(allow) = self.allow {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// IPA's wrapper error class for unexpected failures of `kind` steps.
pub fn step_wrapper_class(kind: StepKind) -> ErrorClass {
    match kind {
        StepKind::Clean => ErrorClass::CleaningError,
        StepKind::Deploy => ErrorClass::DeploymentError,
        StepKind::Service => ErrorClass::ServicingError,
    }
}

/// The wrapper error for a non-IPA failure of step `name`, worded as IPA
/// does: `Unexpected exception performing clean step <name>. <Class>: <text>`.
pub fn step_failure(kind: StepKind, name: &str, exc_class: &str, text: &str) -> AgentError {
    AgentError::new(
        step_wrapper_class(kind),
        format!(
            "Unexpected exception performing {} step {name}. {exc_class}: {text}",
            kind.as_str()
        ),
    )
}

/// A JSON response with `Content-Type: application/json` (no charset, as IPA).
pub fn json_response<T: Serialize + ?Sized>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => {
            let mut r = (status, bytes).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
        Err(e) => {
            let text = format!(
                "{{\"faultcode\": \"Server\", \"faultstring\": {}}}",
                serde_json::Value::String(e.to_string())
            );
            let mut r = (StatusCode::INTERNAL_SERVER_ERROR, text).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    }
}

/// Renders a JSON value the way Python's `repr()` renders the equivalent
/// object; IPA puts such reprs into error details (VersionMismatch,
/// malformed steps) and operators compare them with IPA's logs.
pub fn py_repr(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                if f.fract() == 0.0 && f.abs() < 1e16 {
                    format!("{f:.1}")
                } else {
                    f.to_string()
                }
            } else {
                n.to_string()
            }
        }
        Value::String(s) => py_str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", py_str_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `repr()` of a `str`: single quotes unless the text contains a
/// single quote and no double quote.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_object_has_exactly_four_keys() {
        let err = AgentError::new("BlockDeviceEraseError", "disk on fire");
        let v = serde_json::to_value(&err).unwrap();
        assert_eq!(
            v,
            json!({"type": "BlockDeviceEraseError", "code": 500, "message": "Error erasing block device", "details": "disk on fire"})
        );
    }

    #[test]
    fn busy_fault_text() {
        let f = HttpFault::busy("execute_clean_step");
        assert_eq!(f.status, StatusCode::CONFLICT);
        assert_eq!(
            f.faultstring,
            "Agent is busy: executing command execute_clean_step"
        );
    }

    #[test]
    fn python_repr() {
        assert_eq!(
            py_repr(&json!({"generic_hardware_manager": "1.2"})),
            "{'generic_hardware_manager': '1.2'}"
        );
        assert_eq!(
            py_repr(&json!({"a": [1, 2.0, null, true], "b": "it's"})),
            "{'a': [1, 2.0, None, True], 'b': \"it's\"}"
        );
    }
}
