//! Installing a component into the managers directory of a running host
//! (`load_manager`, `manager_urls`): staged beside the directory, validated
//! with the host's own loader (so it is compiled once), renamed into place,
//! then loaded; on any failure the directory is put back as it was and the
//! running set is unchanged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::HostError;
use crate::registry::{manager_name_is_valid, read_component, Host};
use crate::ManagerSummary;

/// What [`Host::install_component`] did.
#[derive(Debug, Clone)]
pub struct Installed {
    /// The manager now loaded.
    pub manager: ManagerSummary,
    /// The version it replaced, when a manager of that name was loaded.
    pub replaced_version: Option<String>,
}

/// A uniquely named staging directory inside `dir` (same file system, so
/// the final rename is atomic). Hidden, so the host never scans it.
struct Staging(PathBuf);

impl Staging {
    fn create(dir: &Path, name: &str) -> std::io::Result<Staging> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".load-{name}-{}-{n}", std::process::id()));
        std::fs::create_dir(&path)?;
        Ok(Staging(path))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            tracing::warn!(dir = %self.0.display(), error = %e, "could not remove the staging directory");
        }
    }
}

impl Host {
    /// Installs `bytes` (an already verified component) as manager `name`
    /// (`<name>.wasm` in the managers directory) and loads it, replacing a
    /// manager of the same name. Validation (contract, grants, `info`,
    /// support) comes first: a rejected component leaves the directory and
    /// the running managers as they were. One install at a time.
    pub async fn install_component(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<Installed, HostError> {
        if !manager_name_is_valid(name) {
            return Err(HostError::Rejected {
                manager: name.to_string(),
                file: PathBuf::from(format!("{name}.wasm")),
                reason: "invalid manager name (letters, digits, `_` and `-` only)".into(),
            });
        }
        let _one_at_a_time = self.installing.lock().await;
        let dir = self.managers_dir().to_path_buf();
        let target = dir.join(format!("{name}.wasm"));
        let io = |what: &str, e: std::io::Error| HostError::Io {
            path: target.clone(),
            message: format!("installing manager {name}: {what}: {e}"),
        };
        let rejected = |reason: String| HostError::Rejected {
            manager: name.to_string(),
            file: target.clone(),
            reason: format!("nothing was changed: {reason}"),
        };
        let staging = Staging::create(&dir, name).map_err(|e| io("staging directory", e))?;
        let staged = staging.0.join(format!("{name}.wasm"));
        {
            let mut f = std::fs::File::create(&staged).map_err(|e| io("staging", e))?;
            f.write_all(bytes).map_err(|e| io("staging", e))?;
            f.sync_all().map_err(|e| io("staging", e))?;
        }
        // A sidecar manifest next to the final file applies to it:
        // validate with the same one.
        let sidecar = format!("{name}.manifest.toml");
        if dir.join(&sidecar).exists() {
            std::fs::copy(dir.join(&sidecar), staging.0.join(&sidecar))
                .map_err(|e| io("staging the sidecar manifest", e))?;
        }
        let (staged_bytes, _) =
            read_component(&staged).map_err(|e| io("reading the staged component", e))?;
        // Validated with the host's own loader: compiled once, reused by the
        // load below (same bytes, same engine).
        match self
            .loader
            .load(&staged, std::sync::Arc::new(staged_bytes), true, &mut None)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(rejected(
                    "evaluate-hardware-support returned 0: not used on this machine".into(),
                ))
            }
            Err(e) => return Err(rejected(format!("{e:#}"))),
        }

        let previous = self.managers().into_iter().find(|m| m.name == name);
        let backup = staging.0.join("previous.wasm");
        let had_file = match std::fs::hard_link(&target, &backup) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io("keeping the previous component", e)),
        };
        std::fs::rename(&staged, &target).map_err(|e| io("renaming into place", e))?;
        match self.add_component(&target).await {
            Ok(manager) => Ok(Installed {
                manager,
                replaced_version: previous.map(|p| p.version),
            }),
            Err(e) => {
                // Put the directory back as it was; the host kept its
                // running set.
                let restored = if had_file {
                    std::fs::rename(&backup, &target)
                } else {
                    std::fs::remove_file(&target)
                };
                if let Err(re) = restored {
                    tracing::error!(file = %target.display(), error = %re, "could not restore the managers directory after a rejected load");
                }
                Err(rejected(e.to_string()))
            }
        }
    }
}
