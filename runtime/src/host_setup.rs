//! Turning command-line flags and the machine into an
//! `ironic_host::HostConfig`.

use std::path::PathBuf;

use clap::Args;
use ironic_host::{Grants, HostConfig};

use crate::machine::Machine;

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

    /// Operator grants (TOML); default: the built-in grants. Re-read on
    /// SIGHUP.
    #[arg(long)]
    pub grants: Option<PathBuf>,

    /// Grants directory: one `<manager>.toml` per manager, added to the
    /// grants; watched, and re-read on SIGHUP (default:
    /// /etc/ironic-wasm-agent/grants.d, or the simulated machine's).
    #[arg(long, alias = "grants_dir")]
    pub grants_dir: Option<PathBuf>,

    /// Do not watch the managers directory (by default new, replaced and
    /// removed components take effect without a restart).
    #[arg(long)]
    pub no_watch_managers: bool,

    /// Compile a manager that arrives without a precompiled artifact with
    /// the optimising compiler before serving it (by default it is served
    /// at once from baseline code, replaced by the optimised code when
    /// that is ready; docs/managers/README.md).
    #[arg(long)]
    pub no_baseline_compile: bool,

    /// Bounds on what managers and clients can make the agent spend (TOML;
    /// see docs/security.md); default: the built-in bounds.
    #[arg(long)]
    pub limits: Option<PathBuf>,
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

impl HostFlags {
    /// The machine these flags name (see [`Machine::at`]).
    pub fn machine(&self) -> anyhow::Result<Machine> {
        Machine::at(&self.hardware_root)
    }

    /// The host's configuration on `machine`.
    pub fn host_config(&self, machine: &Machine) -> anyhow::Result<HostConfig> {
        Ok(HostConfig {
            managers_dir: self.managers_dir.clone(),
            cache_dir: self
                .cache_dir
                .clone()
                .or_else(|| machine.default_cache_dir()),
            hardware_root: machine.root().to_path_buf(),
            grants: Grants::builtin(),
            grants_file: self.grants.clone(),
            grants_dir: Some(
                self.grants_dir
                    .clone()
                    .unwrap_or_else(|| machine.default_grants_dir()),
            ),
            limits: crate::limits::AgentLimits::load(self.limits.as_deref())?.managers,
            program_dirs: machine.program_dirs(),
            network: machine.network(),
            faults_file: machine.faults_file(),
            scratch_dir: machine.scratch_dir(),
            // The agent's client TLS settings: set by the run sequence,
            // which has the configuration.
            fetch_tls: None,
            // A manager arriving without an artifact answers within about a
            // second from baseline code (docs/managers/README.md).
            tiering: if self.no_baseline_compile {
                ironic_host::Tiering::OptimisedOnly
            } else {
                ironic_host::Tiering::BaselineFirst
            },
        })
    }
}
