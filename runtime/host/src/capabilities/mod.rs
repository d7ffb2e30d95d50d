//! Host implementations of the manager's imports. Each checks the policy
//! (declared ∩ granted) on every call and returns denials as error values.

pub mod commands;
pub mod disks;
pub(crate) mod erase;
pub(crate) mod faults;
pub mod log;
pub mod machine;
pub(crate) mod progress;

use std::path::{Path, PathBuf};

/// A guest path checked, normalised, and made relative to the hardware root.
pub(crate) struct RootedPath {
    /// The normalised absolute path (what the policy matched).
    pub absolute: String,
    /// The same path relative to the hardware root (for cap-std).
    pub relative: PathBuf,
}

/// Normalise `path` and make it relative to the hardware root.
pub(crate) fn rooted(path: &str) -> Result<RootedPath, String> {
    let normal = crate::policy::normalise_path(path)?;
    let relative = normal
        .strip_prefix("/")
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| normal.clone());
    let relative = if relative.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        relative
    };
    Ok(RootedPath {
        absolute: normal.to_string_lossy().into_owned(),
        relative,
    })
}

/// True when cap-std refused a path because it leads outside the root
/// (through `..` or a symbolic link).
pub(crate) fn is_escape(e: &std::io::Error) -> bool {
    e.to_string().contains("outside of the filesystem")
}
