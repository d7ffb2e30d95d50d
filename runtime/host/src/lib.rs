//! Manager host: loads hardware managers (WebAssembly components), grants
//! them capabilities (declared ∩ granted, checked on every call), and
//! dispatches IPA's hardware-manager calls to them, each call in a fresh
//! sandboxed instance with memory, time and output limits.
//!
//! The host is async (tokio): a call's deadline covers everything it does,
//! wasm code and time spent waiting in host calls alike, and no call holds
//! a thread or a lock that other calls need while it waits.

mod artifact;
mod bindings;
pub mod capabilities;
mod dispatch;
mod engine;
mod error;
pub mod grants;
mod install;
mod inventory;
mod loader;
pub mod manifest;
mod policy;
mod registry;
mod sandbox;
mod text;
mod watch;

use std::path::PathBuf;
use std::time::Duration;

#[cfg(feature = "compiler")]
pub use artifact::precompile_for_cpu;
pub use artifact::{cache_key, ArtifactError, LoadedFrom};
pub use bindings::ContractVersion;
pub use capabilities::progress::ProgressFn;
pub use engine::{COMPILER, PORTABLE_CPU};
pub use error::{DispatchError, HostError, SandboxFailure};
pub use grants::{GrantSources, Grants};
pub use install::{InstallRequest, Installed};
pub use ironic_steps::{ManagerSteps, StepKind};
pub use loader::Tiering;
pub use manifest::{Capabilities, CommandCaps, DiskCaps, MachineCaps, ManifestSource};
pub use policy::normalise_path;
pub use registry::{
    manager_name_is_valid, precompile, validate, Host, Precompiled, ReloadReport, Validation,
};
pub use text::sanitize;
pub use watch::{WatchHandle, WatchOptions};

/// Per-call and per-manager resource limits: everything a manager can make
/// the agent spend has a bound (docs/security.md lists them with their
/// tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per instance (default 128 MiB).
    pub memory_bytes: usize,
    /// Deadline of an ordinary call, `info` and loading included (default
    /// 60 s).
    pub call_timeout: Duration,
    /// Deadline of `execute-step` (default 6 h).
    pub step_timeout: Duration,
    /// Cap on each of a program's stdout and stderr (default 8 MiB).
    pub output_cap: usize,
    /// Disks one call may hold open at once (default 64).
    pub max_open_disks: usize,
    /// Threads `erase-many` may use, whatever concurrency the manager asks
    /// for (default 16).
    pub max_erase_threads: u32,
    /// Longest progress message, and composed per-device status line
    /// (default 4096 bytes).
    pub max_progress_message: usize,
    /// Devices shown on a step's progress board (default 128).
    pub max_progress_devices: usize,
    /// Log lines a manager may write per second on average (default 50)...
    pub log_lines_per_second: u32,
    /// ...and at once (default 500); the rest are dropped and counted.
    pub log_burst: u32,
    /// Longest log message (default 4096 bytes).
    pub max_log_message: usize,
    /// Largest step result (JSON) a manager may return (default 4 MiB).
    pub max_step_result_bytes: usize,
    /// Most steps one manager may list for a kind (default 1000).
    pub max_steps: usize,
    /// Size of the compile cache directory, least recently used artifacts
    /// removed first (default 1 GiB).
    pub max_cache_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 128 * 1024 * 1024,
            call_timeout: Duration::from_secs(60),
            step_timeout: Duration::from_secs(6 * 3600),
            output_cap: 8 * 1024 * 1024,
            max_open_disks: 64,
            max_erase_threads: 16,
            max_progress_message: 4096,
            max_progress_devices: 128,
            log_lines_per_second: 50,
            log_burst: 500,
            max_log_message: 4096,
            max_step_result_bytes: 4 * 1024 * 1024,
            max_steps: 1000,
            max_cache_bytes: 1 << 30,
        }
    }
}

/// Where `machine.network-addresses` comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkSource {
    /// The machine's real interfaces (getifaddrs).
    Live,
    /// A JSON list `[{"interface":"eth0","family":"ipv4","address":"192.0.2.10"}]`
    /// (a simulated machine's addresses file); a missing file means no
    /// addresses.
    File(PathBuf),
    /// No addresses at all.
    None,
}

/// How the host is set up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Directory of `*.wasm` managers (file stem = the manager's name for grants).
    pub managers_dir: PathBuf,
    /// Where precompiled artifacts are cached; `None` compiles every start
    /// (within one process the same bytes are still compiled only once).
    pub cache_dir: Option<PathBuf>,
    /// Root the machine and disk capabilities resolve in (`/` in production).
    pub hardware_root: PathBuf,
    /// The operator's grants when there is no grants file (see
    /// [`grants`]).
    pub grants: Grants,
    /// The operator's grants file: read at start and by
    /// [`Host::reload_grants`]; replaces `grants` when set.
    pub grants_file: Option<PathBuf>,
    /// The grants directory: one `<name>.toml` per manager, added to the
    /// other grants; watched with the managers directory.
    pub grants_dir: Option<PathBuf>,
    /// Per-call limits.
    pub limits: Limits,
    /// Directories programs are looked up in (also the programs' `PATH`).
    pub program_dirs: Vec<PathBuf>,
    /// Source of interface addresses.
    pub network: NetworkSource,
    /// A simulated machine's fault-injection file
    /// ([`capabilities::faults`]); `None` on the real machine.
    pub faults_file: Option<PathBuf>,
    /// Where managers' scratch spaces and unpacked assets are made (a
    /// tmpfs in the ramdisk).
    pub scratch_dir: PathBuf,
    /// The agent's client TLS settings for `fetch`; without them, only
    /// `http://` URLs can be fetched.
    pub fetch_tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    /// How a running host compiles a component that has no artifact.
    pub tiering: Tiering,
}

impl HostConfig {
    /// A host for the managers in `managers_dir` on the machine at
    /// `hardware_root`, with the built-in grants, default limits, no compile
    /// cache, no programs, no network addresses and no faults: callers set
    /// what their machine has.
    pub fn new(managers_dir: impl Into<PathBuf>, hardware_root: impl Into<PathBuf>) -> Self {
        HostConfig {
            managers_dir: managers_dir.into(),
            cache_dir: None,
            hardware_root: hardware_root.into(),
            grants: Grants::builtin(),
            grants_file: None,
            grants_dir: None,
            limits: Limits::default(),
            program_dirs: Vec::new(),
            network: NetworkSource::None,
            faults_file: None,
            scratch_dir: std::env::temp_dir().join("ironic-agent-scratch"),
            fetch_tls: None,
            tiering: Tiering::default(),
        }
    }
}

/// A loaded manager, as the CLI and API show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerSummary {
    /// The component file.
    pub file: PathBuf,
    /// File stem: the name grants, logs and errors use.
    pub name: String,
    /// The manager's id (IPA's class name), e.g. `GenericHardwareManager`.
    pub id: String,
    /// Name in `hardware_manager_version`, e.g. `generic_hardware_manager`.
    pub manager_name: String,
    /// Version in `hardware_manager_version`.
    pub version: String,
    /// Hardware support level (> 0).
    pub support: u32,
    /// The contract version the component targets.
    pub contract: ContractVersion,
    /// Where the manifest came from.
    pub manifest: ManifestSource,
    /// How the code it runs now was obtained.
    pub loaded_from: LoadedFrom,
    /// How the code it first served with was obtained (`Baseline` for a
    /// component that arrived without an artifact, whose `loaded_from`
    /// becomes `Compiled` when the optimised code takes over).
    pub arrived_as: LoadedFrom,
    /// What the manager declared.
    pub declared: Capabilities,
    /// What the operator granted it.
    pub granted: Capabilities,
    /// Log lines dropped by the rate limit since it was loaded.
    pub log_lines_dropped: u64,
}

/// A component that is not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedManager {
    /// The component file.
    pub file: PathBuf,
    /// Why it is not used, in words (the same wording everywhere: agent
    /// log, `managers list`, `managers validate`, `load_manager` errors).
    pub reason: String,
    /// Which kind of "not used".
    pub kind: Unused,
}

/// Why a component is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unused {
    /// Invalid: bad component, manifest, identity, or a failing `info`.
    Rejected,
    /// `evaluate-hardware-support` answered 0.
    NotForThisHardware,
    /// It declares capabilities the operator has not granted (listed); it
    /// loads when the grants arrive.
    WaitingForGrants(Vec<String>),
}

impl std::fmt::Display for Unused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unused::Rejected => "rejected",
            Unused::NotForThisHardware => "not used",
            Unused::WaitingForGrants(_) => "waiting for grants",
        })
    }
}
