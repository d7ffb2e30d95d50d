//! The agent's REST API and command engine, wire-compatible with the Ironic
//! Python Agent (IPA) so a stock Ironic conductor cannot tell the difference.
//!
//! * [`router`] / [`serve`]: the HTTP API (`server`), IPA's
//!   `ironic_python_agent/api/app.py`.
//! * [`engine`]: command registry, results list, sync/async execution.
//! * [`extensions`]: `clean`, `deploy`, `service`, `poll`, `log`, `system`,
//!   `rescue`, `standby`.
//! * [`managers::Managers`]: the only way the engine reaches hardware managers.
//! * [`system_actions::SystemActions`]: power, network and logs, real or recorded.
//! * [`native_steps`]: steps the agent runs itself (the image pipeline's
//!   `write_image`, `load_manager`), listed beside the managers' steps;
//!   each extension registers its own.
//! * [`device`]: the only way a device the managers name becomes a path
//!   the agent writes to.
//!
//! Extra wire behaviour beyond IPA (documented deliberately):
//! * a running async command shows manager-reported progress as
//!   `command_progress: {"percent": n|null, "message": "..."}` in its result;
//! * a sync command called with missing/unexpected parameters is recorded as
//!   `FAILED` with a `TypeError` error object instead of IPA's 500-forever bug;
//! * a JSON body that is not an object answers 400, not IPA's 500.

// Tests may unwrap: a panic is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod connections;
pub mod device;
pub mod engine;
pub mod errors;
pub mod extensions;
pub mod managers;
pub mod native_steps;
pub mod server;
pub mod system_actions;
pub mod token;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::watch;

pub use engine::{CommandEngine, CommandRecord, CommandStatus};
pub use errors::{AgentError, ErrorClass, HttpFault};
/// The image pipeline, re-exported so the agent binary configures
/// [`ImageSettings`] without its own dependency on it.
pub use ironic_image;
pub use managers::{
    deduplicate_steps, LoadedManagerInfo, ManagerSteps, ManagerUpload, Managers, StepKind,
};
pub use server::{router, serve};
pub use system_actions::{
    agent_log, AgentLogWriter, LogMember, RealSystem, Recorder, SystemAction, SystemActions,
    AGENT_LOG_MEMBER,
};

/// Default cap on a request body (a bigger body answers 413).
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// Default cap on the uncompressed content of `collect_system_logs`.
pub const DEFAULT_MAX_LOG_BYTES: usize = 10 * 1024 * 1024;

/// Seconds since the UNIX epoch, as a float (IPA's `time.time()`).
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Static configuration of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Address the API listens on (informational here; [`serve`] takes a
    /// bound listener).
    pub listen: SocketAddr,
    /// Standalone mode (no Ironic): enables `poll.set_node_info`.
    pub standalone: bool,
    /// Root of the hardware view: `/` on a real machine, the fixture tree of
    /// a simulated one. Rescue files are written under it.
    pub hardware_root: PathBuf,
    /// How the deploy runs the machine's programs (`mkfs`, `efibootmgr`):
    /// chosen by whoever decided what machine this is (the agent binary).
    /// Default: none at all.
    pub programs: ironic_image::programs::ProgramRunner,
    /// Agent version reported by `/v1/status` (and in heartbeats).
    pub version: String,
    /// When the agent's run sequence began (UNIX seconds).
    pub started_at: f64,
    /// Whether the API is served over TLS (only affects advertised URLs).
    pub tls: bool,
    /// Request body cap in bytes.
    pub max_body_bytes: usize,
    /// `collect_system_logs` content cap in bytes.
    pub max_log_bytes: usize,
    /// Bounds of the HTTP server.
    pub http: connections::HttpLimits,
    /// Bounds of the results list.
    pub history: engine::HistoryLimits,
    /// The native image pipeline (`standby.prepare_image`, the `write_image`
    /// deploy step, `image.install_bootloader`). `None` (the default) leaves
    /// `write_image` to the hardware managers, which is what the API tests
    /// with fake managers rely on; the agent binary always sets it.
    pub image: Option<ImageSettings>,
}

/// Settings of the native image pipeline.
#[derive(Debug, Clone, Default)]
pub struct ImageSettings {
    /// Download/verify/write knobs; `progress` is set per command.
    pub write: ironic_image::WriteOptions,
    /// `enable_bios_bootloader_install` (Ironic's lookup config).
    pub enable_bios_bootloader_install: bool,
    /// `ignore_bootloader_failure` when the command does not say.
    pub ignore_bootloader_failure: bool,
    /// `[disk_utils]efi_system_partition_size` (MiB) and
    /// `bios_boot_partition_size` (MiB) for partition images; 0 = IPA's
    /// defaults (550, 1).
    pub esp_mb: u64,
    pub bios_boot_mb: u64,
    /// `inject_files_priority`: the listed priority of `inject_files`.
    pub inject_files_priority: i64,
}

impl ApiConfig {
    /// Defaults: not standalone, plain HTTP, this crate's version, started now.
    pub fn new(listen: SocketAddr, hardware_root: impl Into<PathBuf>) -> Self {
        Self {
            listen,
            standalone: false,
            hardware_root: hardware_root.into(),
            programs: ironic_image::programs::ProgramRunner::none(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: unix_now(),
            tls: false,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            http: connections::HttpLimits::default(),
            history: engine::HistoryLimits::default(),
            image: None,
        }
    }
}

/// Why the API stopped serving on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `system.lockdown`: network brought down after the reply; idle forever.
    Lockdown,
    /// `rescue.finalize_rescue`: the agent's job is done; exit.
    Rescue,
}

struct Inner {
    config: ApiConfig,
    engine: CommandEngine,
    token: token::TokenHolder,
    managers: Arc<dyn Managers>,
    system: Arc<dyn SystemActions>,
    node: Mutex<Option<Value>>,
    partition_uuids: Mutex<Value>,
    native: native_steps::NativeSteps,
    /// `(image id, mapped device)` last written by this process.
    written_image: Mutex<Option<(String, PathBuf)>>,
    node_info: watch::Sender<Option<Value>>,
    stop: watch::Sender<Option<StopReason>>,
}

/// Everything the API and the commands share. Cheap to clone.
#[derive(Clone)]
pub struct AgentState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AgentState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentState")
            .field("config", &self.inner.config)
            .field("token", &self.inner.token)
            .finish_non_exhaustive()
    }
}

impl AgentState {
    /// A new agent with all built-in extensions and no token.
    pub fn new(
        config: ApiConfig,
        managers: Arc<dyn Managers>,
        system: Arc<dyn SystemActions>,
    ) -> Self {
        let extensions = extensions::all();
        let history = config.history;
        // Without the image pipeline the managers own `write_image` (what
        // the API's tests with fake managers rely on).
        let native = if let Some(image) = &config.image {
            native_steps::NativeSteps::new(
                extensions
                    .iter()
                    .flat_map(|e| e.native_steps.iter().cloned())
                    .map(|mut step| {
                        // Listed at `inject_files_priority`, as IPA lists it.
                        if step.name == "inject_files" {
                            step.priority = image.inject_files_priority;
                        }
                        step
                    })
                    .collect(),
            )
        } else {
            native_steps::NativeSteps::default()
        };
        Self {
            inner: Arc::new(Inner {
                config,
                engine: CommandEngine::with_limits(extensions, history),
                token: token::TokenHolder::default(),
                managers,
                system,
                node: Mutex::new(None),
                partition_uuids: Mutex::new(Value::Object(Default::default())),
                native,
                written_image: Mutex::new(None),
                node_info: watch::Sender::new(None),
                stop: watch::Sender::new(None),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ApiConfig {
        &self.inner.config
    }

    /// The command engine.
    pub fn engine(&self) -> &CommandEngine {
        &self.inner.engine
    }

    /// Sets (or with `None` forgets) the agent token.
    pub fn set_token(&self, token: Option<String>) {
        self.inner.token.set(token);
    }

    /// The token holder.
    pub fn token(&self) -> &token::TokenHolder {
        &self.inner.token
    }

    /// The hardware managers.
    pub fn managers(&self) -> Arc<dyn Managers> {
        self.inner.managers.clone()
    }

    /// The system-action backend.
    pub fn system(&self) -> Arc<dyn SystemActions> {
        self.inner.system.clone()
    }

    /// The node most recently received from Ironic (lookup or step command).
    pub fn cached_node(&self) -> Option<Value> {
        lock(&self.inner.node).clone()
    }

    /// Caches `node` (IPA's `cache_node`); returns true when it is a
    /// different node (uuid) than the cached one.
    pub fn cache_node(&self, node: &Value) -> bool {
        let mut cached = lock(&self.inner.node);
        let changed = cached.as_ref().map(|n| n.get("uuid")) != Some(node.get("uuid"));
        *cached = Some(node.clone());
        changed
    }

    /// The dict answered by `standby.get_partition_uuids` (`{}` until an
    /// image is written).
    pub fn partition_uuids(&self) -> Value {
        lock(&self.inner.partition_uuids).clone()
    }

    /// Records partition UUIDs after an image was written.
    pub fn set_partition_uuids(&self, uuids: Value) {
        *lock(&self.inner.partition_uuids) = uuids;
    }

    /// The agent-native steps (empty without [`ApiConfig::image`]).
    pub fn native_steps(&self) -> &native_steps::NativeSteps {
        &self.inner.native
    }

    /// `(image id, device)` last written by this process, if any.
    pub fn written_image(&self) -> Option<(String, PathBuf)> {
        lock(&self.inner.written_image).clone()
    }

    pub(crate) fn set_written_image(&self, written: Option<(String, PathBuf)>) {
        *lock(&self.inner.written_image) = written;
    }

    /// Lookup data pushed by `poll.set_node_info` (standalone mode).
    pub fn node_info(&self) -> watch::Receiver<Option<Value>> {
        self.inner.node_info.subscribe()
    }

    pub(crate) fn set_node_info(&self, info: Value) {
        self.inner.node_info.send_replace(Some(info));
    }

    /// Asks [`serve`] to stop after the current reply is sent.
    pub fn request_stop(&self, reason: StopReason) {
        tracing::info!(?reason, "API stop requested");
        self.inner.stop.send_replace(Some(reason));
    }

    /// Watches stop requests.
    pub fn stop_requested(&self) -> watch::Receiver<Option<StopReason>> {
        self.inner.stop.subscribe()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
