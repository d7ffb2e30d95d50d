//! Small wrappers over the `machine` capability: essential reads fail with
//! the path named; optional reads give `None`.

use ironic_hardware_guest::machine::{self, EntryKind, MachineError};
use ironic_hardware_guest::prelude::*;

/// A machine error as text.
pub(crate) fn describe(err: &MachineError) -> String {
    match err {
        MachineError::Denied(m) => format!("access denied: {m}"),
        MachineError::NotFound(m) => format!("not found: {m}"),
        MachineError::InvalidPath(m) => format!("invalid path: {m}"),
        MachineError::Io(m) => format!("I/O error: {m}"),
    }
}

/// A failure naming `path`.
pub(crate) fn failed(path: &str, err: &MachineError) -> ManagerError {
    ManagerError::failed(format!("cannot read {path}: {}", describe(err)))
}

/// Whole file as text; a missing or unreadable file is a failure naming it.
pub(crate) fn read_required(path: &str) -> Result<String, ManagerError> {
    machine::read_text(path).map_err(|e| failed(path, &e))
}

/// The trimmed contents, `None` when absent, unreadable or blank. Denials and
/// I/O errors are logged: they hide data an operator may expect.
pub(crate) fn read_opt(path: &str) -> Option<String> {
    match machine::read_text(path) {
        Ok(text) => {
            let text = text.trim();
            (!text.is_empty()).then(|| text.to_string())
        }
        Err(MachineError::NotFound(_)) => None,
        Err(e) => {
            log::log(log::Level::Debug, &format!("{path}: {}", describe(&e)));
            None
        }
    }
}

/// Raw bytes, `None` when absent or unreadable.
pub(crate) fn read_bytes_opt(path: &str) -> Option<Vec<u8>> {
    machine::read_file(path).ok()
}

/// Directory entry names; `Ok(None)` when the directory does not exist.
pub(crate) fn list_opt(path: &str) -> Result<Option<Vec<String>>, ManagerError> {
    match machine::list_dir(path) {
        Ok(entries) => Ok(Some(entries.into_iter().map(|e| e.name).collect())),
        Err(MachineError::NotFound(_)) => Ok(None),
        Err(e) => Err(failed(path, &e)),
    }
}

/// Entry names of a directory that must exist.
pub(crate) fn list_required(path: &str) -> Result<Vec<String>, ManagerError> {
    list_opt(path)?.ok_or_else(|| ManagerError::failed(format!("cannot read {path}: not found")))
}

/// Kind of the entry (following links), `None` when absent or not allowed.
pub(crate) fn kind(path: &str) -> Option<EntryKind> {
    machine::kind(path).ok()
}

pub(crate) fn exists(path: &str) -> bool {
    kind(path).is_some()
}

pub(crate) fn is_dir(path: &str) -> bool {
    matches!(kind(path), Some(EntryKind::Directory))
}

/// Link target as stored, `None` when not a link or absent.
pub(crate) fn read_link(path: &str) -> Option<String> {
    machine::read_link(path).ok()
}

/// Last component of a link target (`../../../0000:04:00.0` → `0000:04:00.0`).
pub(crate) fn link_basename(path: &str) -> Option<String> {
    let target = read_link(path)?;
    let base = target.trim_end_matches('/').rsplit('/').next()?;
    (!base.is_empty()).then(|| base.to_string())
}

/// Resolve `target` (a link stored in directory `dir`) to a normalised
/// absolute path, the way `os.path.normpath(os.path.join(dir, target))` does.
pub(crate) fn resolve_relative(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|s| !s.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::resolve_relative;

    #[test]
    fn resolves_udev_links() {
        assert_eq!(
            resolve_relative("/dev/disk/by-path", "../../sda"),
            "/dev/sda"
        );
        assert_eq!(
            resolve_relative("/dev/disk/by-path", "/dev/nvme0n1"),
            "/dev/nvme0n1"
        );
        assert_eq!(
            resolve_relative("/dev/disk/by-path", "./../../sdb"),
            "/dev/sdb"
        );
    }
}
