//! Installing a component into the managers directory of a running host
//! (`load_manager`, `manager_urls`), optionally with its grants (written to
//! the grants directory) and its assets (an archive beside it): staged
//! beside the directory, validated with the host's own loader and the new
//! grants (so it is compiled once), renamed into place, then loaded; on any
//! failure the directories are put back as they were and the running set
//! is unchanged.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::HostError;
use crate::loader::LoadOutcome;
use crate::registry::{manager_name_is_valid, read_component, Host, NOT_FOR_THIS_HARDWARE};
use crate::{Capabilities, ManagerSummary};

/// A component to install, and what comes with it.
#[derive(Debug, Clone, Copy)]
pub struct InstallRequest<'a> {
    /// The manager name (file stem): `<name>.wasm`.
    pub name: &'a str,
    /// The component, already verified against its pinned digest.
    pub component: &'a [u8],
    /// Grants to install with it (`<grants dir>/<name>.toml`), replacing
    /// that file; added to the other grants.
    pub grants: Option<&'a Capabilities>,
    /// A tar archive of its assets (`<name>.assets.tar`), replacing the
    /// previous one.
    pub assets_tar: Option<&'a [u8]>,
}

/// A file replaced by an install, and how to put it back.
struct Replaced {
    target: PathBuf,
    backup: PathBuf,
    had_file: bool,
}

impl Replaced {
    /// Move `staged` to `target`, keeping the previous file as `backup`.
    fn install(staged: &Path, target: &Path, backup: PathBuf) -> std::io::Result<Replaced> {
        let had_file = match std::fs::hard_link(target, &backup) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e),
        };
        std::fs::rename(staged, target)?;
        Ok(Replaced {
            target: target.to_path_buf(),
            backup,
            had_file,
        })
    }

    fn restore(self) {
        let restored = if self.had_file {
            std::fs::rename(&self.backup, &self.target)
        } else {
            std::fs::remove_file(&self.target)
        };
        if let Err(e) = restored {
            tracing::error!(file = %self.target.display(), error = %e, "could not restore the managers directory after a rejected load");
        }
    }
}

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
    /// Installs an already verified component as manager `request.name`
    /// (`<name>.wasm` in the managers directory), with its grants and
    /// assets, and loads it, replacing a manager of the same name.
    /// Validation (contract, grants, assets, `info`, support) comes first:
    /// a rejected component leaves the directories and the running
    /// managers as they were. One install at a time.
    pub async fn install_component(
        &self,
        request: InstallRequest<'_>,
    ) -> Result<Installed, HostError> {
        let name = request.name;
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
        let assets_dir = dir.join(format!("{name}.assets"));
        if request.assets_tar.is_some() && assets_dir.is_dir() {
            return Err(rejected(format!(
                "assets were given, but {} exists (a directory takes precedence over an archive): remove it first",
                assets_dir.display()
            )));
        }
        let staging = Staging::create(&dir, name).map_err(|e| io("staging directory", e))?;
        let staged = staging.0.join(format!("{name}.wasm"));
        write_synced(&staged, request.component).map_err(|e| io("staging", e))?;
        // A sidecar manifest next to the final file applies to it:
        // validate with the same one.
        let sidecar = format!("{name}.manifest.toml");
        if dir.join(&sidecar).exists() {
            std::fs::copy(dir.join(&sidecar), staging.0.join(&sidecar))
                .map_err(|e| io("staging the sidecar manifest", e))?;
        }
        let archive = format!("{name}.assets.tar");
        match request.assets_tar {
            Some(tar) => write_synced(&staging.0.join(&archive), tar)
                .map_err(|e| io("staging the assets", e))?,
            None if dir.join(&archive).is_file() => {
                std::fs::copy(dir.join(&archive), staging.0.join(&archive))
                    .map(drop)
                    .map_err(|e| io("staging the assets", e))?
            }
            None => {}
        }
        let (staged_bytes, _) =
            read_component(&staged).map_err(|e| io("reading the staged component", e))?;
        // Validated with the host's own loader: compiled once, reused by the
        // load below (same bytes, same engine).
        match self
            .loader
            .load(
                &staged,
                std::sync::Arc::new(staged_bytes),
                request.grants,
                &mut None,
            )
            .await
        {
            Ok(LoadOutcome::Loaded(_)) => {}
            Ok(LoadOutcome::NotForThisHardware) => {
                return Err(rejected(NOT_FOR_THIS_HARDWARE.into()))
            }
            Ok(LoadOutcome::WaitingForGrants { reason, .. }) => return Err(rejected(reason)),
            Err(e) => return Err(rejected(format!("{e:#}"))),
        }

        let previous = self.managers().into_iter().find(|m| m.name == name);
        let mut replaced = Vec::new();
        let mut previous_grant = None;
        let result: Result<ManagerSummary, HostError> = async {
            if request.assets_tar.is_some() {
                replaced.push(
                    Replaced::install(
                        &staging.0.join(&archive),
                        &dir.join(&archive),
                        staging.0.join("previous.assets.tar"),
                    )
                    .map_err(|e| io("installing the assets", e))?,
                );
            }
            if let Some(grants) = request.grants {
                previous_grant = Some(
                    self.loader
                        .grant_sources
                        .write_manager_grant(name, grants)?,
                );
            }
            replaced.push(
                Replaced::install(&staged, &target, staging.0.join("previous.wasm"))
                    .map_err(|e| io("renaming into place", e))?,
            );
            if request.grants.is_some() {
                self.reload_grants().await?;
            }
            self.add_component(&target).await
        }
        .await;
        match result {
            Ok(manager) => Ok(Installed {
                manager,
                replaced_version: previous.map(|p| p.version),
            }),
            Err(e) => {
                // Put the directories back as they were; the host kept its
                // running set (grants re-read to what they were).
                for r in replaced.into_iter().rev() {
                    r.restore();
                }
                if let Some(previous) = previous_grant {
                    self.loader
                        .grant_sources
                        .restore_manager_grant(name, previous);
                    if let Err(re) = self.reload_grants().await {
                        tracing::error!(error = %re, "could not re-read the grants after a rejected load");
                    }
                }
                Err(rejected(e.to_string()))
            }
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
