//! `erase_pstore` (hardware-managers.md §9.4): empty the pstore mount.

use ironic_hardware_guest::commands::{self, CommandError};
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

/// Entries are listed natively; removing them needs a program because the
/// `machine` capability is read-only. `rm` gets only the exact entry paths we
/// listed (no globbing, `--` ends options), one invocation for all.
pub fn erase_pstore() -> Result<Json, ManagerError> {
    let Some(dir) = pstore_mount() else {
        log::log(log::Level::Info, "no pstore mount; nothing to erase");
        return Ok("null".into());
    };
    let entries = machine::list_dir(&dir)
        .map_err(|e| ManagerError::failed(format!("erase_pstore: cannot list {dir}: {e:?}")))?;
    let paths: Vec<String> = entries
        .into_iter()
        .filter(|e| !e.name.contains('/') && e.name != "." && e.name != "..")
        .map(|e| format!("{}/{}", dir.trim_end_matches('/'), e.name))
        .collect();
    if paths.is_empty() {
        return Ok("null".into());
    }
    progress::report(
        None,
        &format!("erase_pstore: removing {} entries from {dir}", paths.len()),
    );
    let mut args = vec!["-r".to_string(), "-f".to_string(), "--".to_string()];
    args.extend(paths);
    let failure = match commands::run("rm", &args, None, Some(60_000)) {
        Ok(out) if out.exit_code == Some(0) => return Ok("null".into()),
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(CommandError::Denied(m) | CommandError::NotFound(m) | CommandError::Failed(m)) => m,
        Err(CommandError::TimedOut(m) | CommandError::OutputTooLarge(m)) => m,
    };
    Err(ManagerError::failed(format!(
        "erase_pstore: removing the entries of {dir} failed: {failure}"
    )))
}
