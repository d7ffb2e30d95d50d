//! The `rescue` extension: `finalize_rescue(rescue_password="", hashed=False)`
//! (sync) writes the password hash to
//! `<root>/etc/ipa-rescue-config/ipa-rescue-password` (SHA-256 crypt `$5$`
//! unless already hashed), creates the `<root>/etc/.rescued` marker, and
//! stops the API once the reply is sent.

use std::io::Write;
use std::path::Path;

use serde_json::{Map, Value};
use sha_crypt::{PasswordHasher, ShaCrypt};

use crate::engine::{handler, opt, CommandDef, CommandFuture, Ctx, Extension, Mode, Param};
use crate::errors::AgentError;
use crate::StopReason;

const PARAMS: &[Param] = &[opt("rescue_password"), opt("hashed")];

/// Password file, relative to the hardware root.
pub const PASSWORD_FILE: &str = "etc/ipa-rescue-config/ipa-rescue-password";
/// Marker file, relative to the hardware root: a restarted agent that finds
/// it does not serve the API.
pub const RESCUED_MARKER: &str = "etc/.rescued";

/// The extension's commands.
pub fn extension() -> Extension {
    Extension {
        name: "rescue",
        class: "RescueExtension",
        commands: vec![CommandDef {
            name: "finalize_rescue",
            mode: Mode::Sync,
            params: PARAMS,
            extra_kwargs: false,
            validator: None,
            handler: handler(finalize_rescue),
        }],
        native_steps: Vec::new(),
    }
}

fn finalize_rescue(ctx: Ctx, params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move {
        // Python's str(): a non-string password is used as its text form.
        let password = match params.get("rescue_password") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let hashed = params.get("hashed").is_some_and(truthy);
        let root = ctx.state.config().hardware_root.clone();
        ctx.blocking(move || write_rescue_files(&root, &password, hashed))
            .await?;
        tracing::info!("rescue finalized; the API stops after this reply");
        ctx.state.request_stop(StopReason::Rescue);
        Ok(Value::Null)
    })
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// SHA-256 crypt (`$5$salt$hash`) with a random salt.
pub fn hash_password(password: &str) -> Result<String, AgentError> {
    // 12 random bytes from a v4 UUID → 16 crypt-base64 salt characters.
    let random = uuid::Uuid::new_v4();
    let salt = &random.as_bytes()[..12];
    ShaCrypt::SHA256
        .hash_password_with_salt(password.as_bytes(), salt)
        .map(|h| h.to_string())
        .map_err(|e| {
            AgentError::command_execution(format!("could not hash the rescue password: {e}"))
        })
}

fn write_rescue_files(root: &Path, password: &str, hashed: bool) -> Result<(), AgentError> {
    let hash = if hashed {
        password.to_string()
    } else {
        hash_password(password)?
    };
    let io_err = |what: &str, e: std::io::Error| {
        AgentError::command_execution(format!("could not write {what}: {e}"))
    };
    let file = root.join(PASSWORD_FILE);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_err("the rescue config directory", e))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(&file)
        .map_err(|e| io_err("the rescue password", e))?;
    f.write_all(hash.as_bytes())
        .map_err(|e| io_err("the rescue password", e))?;
    std::fs::write(root.join(RESCUED_MARKER), b"").map_err(|e| io_err("the rescue marker", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha_crypt::PasswordVerifier;

    #[test]
    fn sha256_crypt_verifies() {
        let h = hash_password("hunter2").unwrap();
        assert!(h.starts_with("$5$"), "{h}");
        assert!(ShaCrypt::default()
            .verify_password(b"hunter2", h.as_str())
            .is_ok());
        assert!(ShaCrypt::default()
            .verify_password(b"wrong", h.as_str())
            .is_err());
    }
}
