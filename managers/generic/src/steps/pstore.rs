//! `erase_pstore` (IPA `GenericHardwareManager.erase_pstore`): empty the pstore mount.

use ironic_hardware_guest::prelude::*;

/// The mount point of the first `pstore` filesystem in `/proc/mounts`
/// (IPA: `^pstore (\S+) pstore`).
fn pstore_mount() -> Option<String> {
    let mounts = machine::read_text("/proc/mounts").ok()?;
    mounts.lines().find_map(|line| {
        let mut fields = line.split(' ');
        match (fields.next(), fields.next(), fields.next()) {
            (Some("pstore"), Some(dir), Some("pstore")) if !dir.is_empty() => Some(dir.to_string()),
            _ => None,
        }
    })
}

/// Entries are listed and removed natively through the `machine`
/// capability (`remove-file`, granted only under `/sys/fs/pstore`): pstore is
/// a flat directory of records and unlinking one frees its backend slot.
/// No program such as `rm` is needed, so none has to be granted.
pub fn erase_pstore() -> Result<Json, ManagerError> {
    let Some(dir) = pstore_mount() else {
        log::log(log::Level::Info, "no pstore mount; nothing to erase");
        return Ok("null".into());
    };
    let dir = dir.trim_end_matches('/').to_string();
    let entries = machine::list_dir(&dir)
        .map_err(|e| ManagerError::failed(format!("erase_pstore: cannot list {dir}: {e:?}")))?;
    let files: Vec<String> = entries
        .into_iter()
        .filter(|e| e.kind == machine::EntryKind::File)
        .map(|e| format!("{dir}/{}", e.name))
        .collect();
    progress::report(
        None,
        &format!("erase_pstore: removing {} entries from {dir}", files.len()),
    );
    let mut failures = Vec::new();
    for path in &files {
        if let Err(e) = machine::remove_file(path) {
            failures.push(format!("{path}: {e:?}"));
        }
    }
    if failures.is_empty() {
        Ok("null".into())
    } else {
        Err(ManagerError::failed(format!(
            "erase_pstore: could not remove {}",
            failures.join("; ")
        )))
    }
}
