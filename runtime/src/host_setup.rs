//! Turning command-line flags into an `ironic_host::HostConfig`: the one
//! place that knows where managers, grants, programs and addresses come from
//! on a real machine and on a simulated one.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use ironic_host::{Grants, HostConfig, Limits, NetworkSource};

/// Where the managers live and what they may touch.
#[derive(Args, Debug, Clone)]
pub struct HostFlags {
    /// Root of the machine's hardware view (`/` on a real machine, a
    /// simulated machine's directory otherwise).
    #[arg(long, alias = "hardware_root", default_value = "/")]
    pub hardware_root: PathBuf,

    /// Directory of hardware-manager components (`*.wasm`).
    #[arg(
        long,
        alias = "managers_dir",
        default_value = "/usr/lib/ironic-wasm-agent/managers"
    )]
    pub managers_dir: PathBuf,

    /// Cache of compiled managers; precompiled artifacts are looked up here.
    #[arg(long, alias = "cache_dir")]
    pub cache_dir: Option<PathBuf>,

    /// Operator grants (TOML); default: the built-in grants.
    #[arg(long)]
    pub grants: Option<PathBuf>,

    /// Do not watch the managers directory (by default new, replaced and
    /// removed components take effect without a restart).
    #[arg(long)]
    pub no_watch_managers: bool,
}

/// Start watching the managers directory unless disabled; a watcher that
/// cannot start is logged, not fatal (the agent still serves the managers
/// it loaded).
pub fn watch_managers(
    flags: &HostFlags,
    host: &std::sync::Arc<ironic_host::Host>,
) -> Option<ironic_host::WatchHandle> {
    if flags.no_watch_managers {
        return None;
    }
    match host.watch(ironic_host::WatchOptions::default()) {
        Ok(handle) => Some(handle),
        Err(e) => {
            tracing::warn!("not watching the managers directory: {e}");
            None
        }
    }
}

/// Marker a simulated machine carries (see the `ironic-sim` crate).
pub fn is_simulated(root: &Path) -> bool {
    ironic_sim::is_simulated(root)
}

/// Programs managers may run are looked up here: the system's directories
/// on the real machine only. Programs take device paths as arguments that
/// the host does not map (`nvme format /dev/nvme0n1`), so under any other
/// hardware root they must be that root's stand-ins, never the host's tools.
fn program_dirs(root: &Path) -> Vec<PathBuf> {
    if root != Path::new("/") {
        vec![root.join(".ironic-sim/bin")]
    } else {
        [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .map(PathBuf::from)
        .collect()
    }
}

impl HostFlags {
    pub fn host_config(&self) -> anyhow::Result<HostConfig> {
        let grants = match &self.grants {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading grants file {}", path.display()))?;
                Grants::from_toml(&text, path)?
            }
            None => Grants::builtin(),
        };
        let root = &self.hardware_root;
        let network = if is_simulated(root) {
            NetworkSource::File(root.join(".ironic-sim/addresses.json"))
        } else {
            NetworkSource::Live
        };
        let cache_dir = self.cache_dir.clone().or_else(|| {
            // A simulated machine keeps its cache beside it, so `make run`
            // and the tests never write outside their own directories.
            is_simulated(root).then(|| root.join(".ironic-sim/cache"))
        });
        Ok(HostConfig {
            managers_dir: self.managers_dir.clone(),
            cache_dir,
            hardware_root: root.clone(),
            grants,
            limits: Limits::default(),
            program_dirs: program_dirs(root),
            network,
        })
    }
}
