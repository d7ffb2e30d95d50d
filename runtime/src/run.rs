//! Running the agent: hardware managers, the Ironic loop (inspection,
//! lookup, heartbeats) and the API server.
//!
//! `run_agent` starts the manager host (and its directory watcher), adapts it
//! to the API's [`agent_api::Managers`] trait, picks the system-actions
//! backend (real only when the hardware root is `/`, a recorder otherwise),
//! looks the node up unless standalone, and serves the API beside the
//! heartbeats until a signal, `system.lockdown` or `rescue.finalize_rescue`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use agent_api::{
    AgentError, AgentState, ApiConfig, ManagerSteps, Managers, RealSystem, Recorder, StepKind,
    StopReason, SystemActions,
};
use ironic_client::{IronicLoop, Startup};
use ironic_host::{DispatchError, Host};
use serde_json::Value;

use crate::host_setup::{self, HostFlags};

/// What `main.rs` hands over.
pub struct RunOptions {
    pub host: HostFlags,
    pub standalone: bool,
    /// The effective configuration (all layers but Ironic's, which lookup adds).
    pub config: ironic_config::Config,
}

/// Runs the agent until it is told to stop: managers, then (unless
/// standalone) inspection and lookup, then the API and the heartbeats.
pub async fn run_agent(opts: RunOptions) -> anyhow::Result<()> {
    let started_at = agent_api::unix_now();
    let root = opts.host.hardware_root.clone();

    // A rescued machine belongs to its user: never serve the API again.
    if root
        .join(agent_api::extensions::rescue::RESCUED_MARKER)
        .exists()
    {
        tracing::warn!(root = %root.display(), "rescue marker present; not serving the API");
        return Ok(());
    }

    let host_config = opts.host.host_config()?;
    // `load_manager` validates candidates against the same configuration.
    let validate_config = host_config.clone();
    // Loading compiles components: blocking work.
    let host = tokio::task::spawn_blocking(move || Host::start(host_config))
        .await
        .context("manager host start-up panicked")?
        .context("starting the hardware-manager host")?;
    for m in host.managers() {
        tracing::info!(manager = %m.name, id = %m.id, version = %m.version, support = m.support, "hardware manager loaded");
    }
    for r in host.rejected() {
        tracing::warn!(file = %r.file.display(), reason = %r.reason, "hardware manager not used");
    }
    let host = Arc::new(host);
    // Managers added, replaced or removed in the directory take effect
    // without a restart; the handle lives as long as the agent runs.
    let _watch = host_setup::watch_managers(&opts.host, &host);
    let managers = Arc::new(HostManagers {
        host,
        skip_bmc_detect: AtomicBool::new(false),
        host_config: validate_config,
        loading: std::sync::Mutex::new(()),
    });
    // Boot-time managers (`manager_urls`, `ipa-manager-urls`): before lookup,
    // so that inspection and lookup already see them.
    load_boot_managers(&opts.config, &managers).await;

    // Only the real root is the machine itself: any other hardware root
    // (a simulated machine, or a directory someone points the agent at)
    // gets a recorder, so power and network actions can never reach the
    // host the agent happens to run on.
    let system: Arc<dyn SystemActions> = if root == std::path::Path::new("/") {
        Arc::new(RealSystem::new(&root))
    } else {
        tracing::info!(root = %root.display(), "not the real root: system actions are recorded, not performed");
        Arc::new(Recorder::new(&root))
    };

    let config = opts.config;
    let ironic = if opts.standalone || config.api_urls().is_empty() {
        if !opts.standalone {
            tracing::warn!("no api_url configured (ipa-api-url); running without Ironic");
        }
        None
    } else {
        let machine = Arc::new(HostMachine {
            managers: managers.clone(),
            root: root.clone(),
        });
        let mut ironic = IronicLoop::new(config.clone(), machine)?;
        let startup = ironic.startup().await?;
        if startup.dead {
            // IPA's behaviour: Ironic holds a token we do not know; serving
            // or heartbeating would only be refused. Wait to be rebooted.
            shutdown_signal().await;
            return Ok(());
        }
        managers
            .skip_bmc_detect
            .store(startup.skip_bmc_detect, Ordering::Relaxed);
        Some((ironic, startup))
    };
    // Ironic's lookup layer may change these (e.g. the TLS minimum version).
    let effective = ironic.as_ref().map_or(&config, |(lp, _)| &lp.config);
    let listen_host = effective.str("listen_host").unwrap_or_else(|| "::".into());
    let listen_port = effective
        .int("listen_port")
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(9999);
    let token = match &ironic {
        Some((_, startup)) => startup.token.clone(),
        None => config.non_empty("agent_token"),
    };

    let listener = bind(&listen_host, listen_port).await?;
    let listen = listener
        .local_addr()
        .context("reading the listen address")?;
    let mut api_config = ApiConfig::new(listen, &root);
    api_config.standalone = opts.standalone;
    api_config.started_at = started_at;
    // Ironic gates features on the agent's version; report the IPA release
    // we are wire-compatible with, as in heartbeats.
    api_config.version = ironic_client::IPA_COMPAT_VERSION.to_string();
    api_config.tls = ironic
        .as_ref()
        .is_some_and(|(_, st)| st.server_tls.is_some());
    api_config.image = Some(image_settings(effective)?);

    let state = AgentState::new(api_config, managers.clone(), system);
    state.set_token(token);

    let (stop_heartbeats, heartbeats_stopped) = tokio::sync::watch::channel(false);
    let mut heartbeat_task = None;
    let served = match ironic {
        None => {
            tracing::info!(%listen, standalone = opts.standalone, "agent API listening");
            agent_api::serve(listener, state, shutdown_signal()).await?
        }
        Some((ironic, startup)) => {
            state.cache_node(&startup.lookup.node);
            let tls = startup.server_tls.clone();
            heartbeat_task = Some(start_heartbeats(
                ironic,
                startup,
                &state,
                heartbeats_stopped,
            ));
            match tls {
                Some(tls) => {
                    tracing::info!(%listen, "agent API listening (TLS)");
                    let listener = ironic_client::tls::TlsListener::new(listener, tls)
                        .context("starting the TLS listener")?;
                    agent_api::serve(listener, state, shutdown_signal()).await?
                }
                None => {
                    tracing::info!(%listen, "agent API listening");
                    agent_api::serve(listener, state, shutdown_signal()).await?
                }
            }
        }
    };
    // Rescue, lockdown and shutdown all end the heartbeats.
    let _ = stop_heartbeats.send(true);
    if let Some(task) = heartbeat_task {
        let _ = task.await;
    }
    match served {
        None => tracing::info!("shutting down"),
        Some(StopReason::Rescue) => tracing::info!("rescue finalized; exiting"),
        Some(StopReason::Lockdown) => {
            // IPA idles forever after a lockdown; only a signal ends us.
            tracing::warn!("locked down; idling until terminated");
            shutdown_signal().await;
        }
    }
    Ok(())
}

/// Heartbeats run beside the API; a finished async command triggers one at
/// once, because the conductor only advances on heartbeats.
fn start_heartbeats(
    ironic: IronicLoop,
    startup: Startup,
    state: &AgentState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let handle = Arc::new(ApiHandle {
        state: state.clone(),
    });
    let finished = state.engine().finished_notify();
    tokio::spawn(ironic.heartbeat(startup, handle, finished, stop))
}

/// The API as the Ironic loop sees it: where a new token and node land.
struct ApiHandle {
    state: AgentState,
}

impl ironic_client::AgentHandle for ApiHandle {
    fn set_token(&self, token: &str) {
        self.state.set_token(Some(token.to_string()));
    }
    fn set_node(&self, node: &Value) {
        self.state.cache_node(node);
    }
}

/// The machine as the Ironic loop sees it: inventory and managers for
/// inspection and lookup.
struct HostMachine {
    managers: Arc<HostManagers>,
    root: std::path::PathBuf,
}

impl ironic_client::Machine for HostMachine {
    fn inventory(&self, skip_bmc_detect: bool) -> anyhow::Result<Value> {
        Ok(self.managers.host.inventory(skip_bmc_detect)?)
    }
    fn managers(&self) -> Vec<(String, String)> {
        self.managers
            .host
            .managers()
            .into_iter()
            .map(|m| (m.manager_name, m.version))
            .collect()
    }
    fn hardware_root(&self) -> std::path::PathBuf {
        self.root.clone()
    }
}

/// The native image pipeline's settings from the effective configuration
/// (after Ironic's lookup layer: `md5_enabled`, `permitted_image_formats`
/// and `enable_bios_bootloader_install` come from there).
fn image_settings(cfg: &ironic_config::Config) -> anyhow::Result<agent_api::ImageSettings> {
    use agent_api::ironic_image::WriteOptions;
    use std::time::Duration;
    let secs = |name: &str, default: i64| cfg.int(name).unwrap_or(default).max(0) as u64;
    // Some [disk_utils] options are untyped in IPA: parse their text.
    let disk_utils = |name: &str, default: u64| {
        cfg.get("disk_utils", name)
            .and_then(|e| e.value.to_string().trim().parse::<u64>().ok())
            .unwrap_or(default)
            .max(1)
    };
    let defaults = WriteOptions::default();
    // Image servers are reached with the same TLS settings as Ironic.
    let tls =
        ironic_client::tls::client_config(&ironic_client::ClientSettings::from_config(cfg).tls)
            .context("building the image download TLS configuration")?;
    let permitted = cfg.list_in("DEFAULT", "permitted_image_formats");
    let write = WriteOptions {
        md5_allowed: cfg.bool("md5_enabled"),
        permitted_formats: if permitted.is_empty() {
            defaults.permitted_formats.clone()
        } else {
            permitted
        },
        connect_timeout: Duration::from_secs(secs("image_download_connection_timeout", 60).max(1)),
        retries: u32::try_from(secs("image_download_connection_retries", 9)).unwrap_or(u32::MAX),
        retry_interval: Duration::from_secs(secs("image_download_connection_retry_interval", 10)),
        max_duration: Some(secs("image_download_max_duration", 0))
            .filter(|s| *s > 0)
            .map(Duration::from_secs),
        tls: Some(Arc::new(tls)),
        convert_memory_limit_mib: disk_utils("image_convert_memory_limit", 2048),
        convert_attempts: u32::try_from(disk_utils("image_convert_attempts", 3)).unwrap_or(3),
        ..defaults
    };
    Ok(agent_api::ImageSettings {
        write,
        enable_bios_bootloader_install: cfg.bool("enable_bios_bootloader_install"),
        ignore_bootloader_failure: cfg.bool("ignore_bootloader_failure"),
    })
}

/// Binds `host:port`; `::` falls back to `0.0.0.0` when IPv6 is unavailable
/// (IPA's default listen address rule).
async fn bind(host: &str, port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let ip: IpAddr = host
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .with_context(|| format!("invalid listen address {host:?}"))?;
    match tokio::net::TcpListener::bind(SocketAddr::new(ip, port)).await {
        Ok(l) => Ok(l),
        Err(e) if ip.is_ipv6() && ip.is_unspecified() => {
            tracing::info!(error = %e, "IPv6 unavailable; listening on 0.0.0.0");
            tokio::net::TcpListener::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))
                .await
                .with_context(|| format!("binding 0.0.0.0:{port}"))
        }
        Err(e) => Err(e).with_context(|| format!("binding {host}:{port}")),
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// The manager host seen through the API's `Managers` trait.
struct HostManagers {
    host: Arc<Host>,
    /// Set from Ironic's lookup answer (`agent_skip_bmc_detect`).
    skip_bmc_detect: AtomicBool,
    /// The host's configuration, to validate a component before installing it.
    host_config: ironic_host::HostConfig,
    /// Serialises `load_manager` calls (one staging/rename at a time).
    loading: std::sync::Mutex<()>,
}

/// Fetches, verifies and loads each `manager_urls` entry
/// (`URL#sha256=<hex>[&name=<stem>]`). A failure is logged and that manager
/// skipped: the agent starts with the others.
async fn load_boot_managers(config: &ironic_config::Config, managers: &Arc<HostManagers>) {
    let specs = config.list_in("DEFAULT", "manager_urls");
    if specs.is_empty() {
        return;
    }
    let mut fetch = agent_api::load_manager::FetchOptions::default();
    match image_settings(config) {
        Ok(s) => {
            fetch.tls = s.write.tls;
            fetch.connect_timeout = s.write.connect_timeout;
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "manager_urls: TLS settings unavailable; using the system's CA store")
        }
    }
    for spec in specs {
        let source = match agent_api::load_manager::ComponentSource::parse_pinned(&spec) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(entry = %spec, error = %e.details, "manager_urls: entry skipped");
                continue;
            }
        };
        let bytes = match agent_api::load_manager::fetch(&source, &fetch).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(url = %source.url, manager = %source.name, error = %e.details, "manager_urls: manager skipped");
                continue;
            }
        };
        let m = managers.clone();
        let name = source.name.clone();
        match tokio::task::spawn_blocking(move || m.load_manager(&name, &bytes)).await {
            Ok(Ok(info)) => {
                tracing::info!(url = %source.url, manager = %info.name, id = %info.id, version = %info.version, "manager_urls: hardware manager loaded")
            }
            Ok(Err(e)) => {
                tracing::error!(url = %source.url, manager = %source.name, error = %e.details, "manager_urls: manager skipped")
            }
            Err(e) => {
                tracing::error!(url = %source.url, manager = %source.name, error = %e, "manager_urls: loading panicked; manager skipped")
            }
        }
    }
}

/// A uniquely named staging directory inside `dir` (same file system, so
/// the final rename is atomic). Hidden, so the host never scans it.
fn staging_dir(dir: &std::path::Path, name: &str) -> std::io::Result<std::path::PathBuf> {
    use std::sync::atomic::AtomicU64;
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".load-{name}-{}-{n}", std::process::id()));
    std::fs::create_dir(&path)?;
    Ok(path)
}

impl HostManagers {
    /// Stage, validate, install (rename) and activate; see
    /// [`Managers::load_manager`].
    fn install(
        &self,
        name: &str,
        bytes: &[u8],
        staging: &std::path::Path,
    ) -> Result<agent_api::LoadedManagerInfo, AgentError> {
        use std::io::Write;
        let dir = self.host.managers_dir().to_path_buf();
        let io = |what: &str, e: std::io::Error| {
            AgentError::command_execution(format!("load_manager {name}: {what}: {e}"))
        };
        let rejected = |reason: String| {
            AgentError::new(
                "HardwareManagerRejected",
                format!("hardware manager {name} rejected; nothing was changed: {reason}"),
            )
        };
        let file_name = format!("{name}.wasm");
        let staged = staging.join(&file_name);
        {
            let mut f = std::fs::File::create(&staged).map_err(|e| io("staging", e))?;
            f.write_all(bytes).map_err(|e| io("staging", e))?;
            f.sync_all().map_err(|e| io("staging", e))?;
        }
        // A sidecar manifest next to the final file applies to it: validate
        // with the same one.
        let sidecar = format!("{name}.manifest.toml");
        if dir.join(&sidecar).exists() {
            std::fs::copy(dir.join(&sidecar), staging.join(&sidecar))
                .map_err(|e| io("staging the sidecar manifest", e))?;
        }
        let validation = ironic_host::validate(&self.host_config, &staged)
            .map_err(|e| rejected(e.to_string()))?;
        validation.verdict.map_err(rejected)?;

        let target = dir.join(&file_name);
        let previous = self.host.managers().into_iter().find(|m| m.name == name);
        let backup = staging.join("previous.wasm");
        let had_file = match std::fs::hard_link(&target, &backup) {
            Ok(()) => true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(io("keeping the previous component", e)),
        };
        std::fs::rename(&staged, &target).map_err(|e| io("installing", e))?;
        match self.host.add_component(&target) {
            Ok(m) => Ok(agent_api::LoadedManagerInfo {
                name: m.name,
                id: m.id,
                manager_name: m.manager_name,
                version: m.version,
                support: m.support,
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

fn host_kind(kind: StepKind) -> ironic_host::StepKind {
    match kind {
        StepKind::Clean => ironic_host::StepKind::Clean,
        StepKind::Deploy => ironic_host::StepKind::Deploy,
        StepKind::Service => ironic_host::StepKind::Service,
    }
}

/// What a failed call was, for wording its error as IPA would.
enum CallSite<'a> {
    /// `execute_<kind>_step` of step `name`.
    Step(StepKind, &'a str),
    /// `get_<kind>_steps`.
    Listing(StepKind),
    /// Any other call (versions, inventory).
    Other(&'a str),
}

/// `DispatchError` → IPA error object.
fn to_agent_error(err: DispatchError, site: CallSite<'_>) -> AgentError {
    tracing::warn!(error = %err, "hardware manager call failed");
    match err {
        DispatchError::NoManager { call } => AgentError::method_not_found(match site {
            CallSite::Step(_, name) => name,
            _ => call.as_str(),
        }),
        DispatchError::Failed {
            error_type: Some(t),
            details,
            ..
        } => AgentError::new(&t, details),
        DispatchError::InvalidArgument { details, .. } => AgentError::invalid_params(details),
        DispatchError::Failed {
            manager,
            error_type: None,
            details,
            ..
        } => wrap(site, "ManagerError", &format!("{manager}: {details}")),
        err @ DispatchError::Sandbox { .. } => wrap(site, "SandboxError", &err.to_string()),
    }
}

fn wrap(site: CallSite<'_>, class: &str, text: &str) -> AgentError {
    match site {
        CallSite::Step(kind, name) => kind.step_failure(name, class, text),
        CallSite::Listing(kind) => {
            AgentError::new(kind.wrapper_error(), format!("{class}: {text}"))
        }
        CallSite::Other(call) => {
            AgentError::command_execution(format!("{call} failed. {class}: {text}"))
        }
    }
}

impl Managers for HostManagers {
    fn get_steps(
        &self,
        kind: StepKind,
        node: &Value,
        ports: &Value,
    ) -> Result<Vec<ManagerSteps>, AgentError> {
        let steps = self
            .host
            .get_steps(host_kind(kind), node, ports)
            .map_err(|e| to_agent_error(e, CallSite::Listing(kind)))?;
        Ok(steps
            .into_iter()
            .map(|m| ManagerSteps {
                id: m.id,
                support: m.support,
                steps: m.steps,
            })
            .collect())
    }

    fn execute_step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        ports: &Value,
        args: &Value,
        progress: &(dyn Fn(Option<u8>, &str) + Send + Sync),
    ) -> Result<Value, AgentError> {
        self.host
            .execute_step(host_kind(kind), name, node, ports, args, progress)
            .map_err(|e| to_agent_error(e, CallSite::Step(kind, name)))
    }

    fn versions(&self) -> Result<BTreeMap<String, String>, AgentError> {
        self.host
            .versions()
            .map_err(|e| to_agent_error(e, CallSite::Other("get_version")))
    }

    fn inventory(&self) -> Result<Value, AgentError> {
        self.host
            .inventory(self.skip_bmc_detect.load(Ordering::Relaxed))
            .map_err(|e| to_agent_error(e, CallSite::Other("list_hardware_info")))
    }

    fn os_install_device(&self, node: Option<&Value>) -> Result<String, AgentError> {
        self.host
            .os_install_device(node)
            .map_err(|e| to_agent_error(e, CallSite::Other("get_os_install_device")))
    }

    fn load_manager(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<agent_api::LoadedManagerInfo, AgentError> {
        if !agent_api::load_manager::valid_name(name) {
            return Err(AgentError::invalid_params(format!(
                "invalid hardware manager name {name:?}"
            )));
        }
        let _one_at_a_time = self.loading.lock().unwrap_or_else(|p| p.into_inner());
        let staging = staging_dir(self.host.managers_dir(), name).map_err(|e| {
            AgentError::command_execution(format!("load_manager {name}: staging directory: {e}"))
        })?;
        let result = self.install(name, bytes, &staging);
        if let Err(e) = std::fs::remove_dir_all(&staging) {
            tracing::warn!(dir = %staging.display(), error = %e, "could not remove the staging directory");
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_settings_follow_defaults_and_ironic_lookup_config() {
        let opts = ironic_config::LoadOptions {
            hardware_root: std::path::PathBuf::from("/nonexistent-hardware-root"),
            ..Default::default()
        };
        let mut cfg = ironic_config::load(&opts).expect("defaults load");
        let s = image_settings(&cfg).expect("settings");
        assert!(s.write.md5_allowed, "IPA default md5_enabled=true");
        assert_eq!(s.write.permitted_formats, ["raw", "gpt", "qcow2"]);
        assert_eq!(s.write.retries, 9);
        assert_eq!(s.write.connect_timeout, std::time::Duration::from_secs(60));
        assert_eq!(s.write.max_duration, None);
        assert!(s.write.tls.is_some());
        assert!(!s.enable_bios_bootloader_install);

        cfg.apply_ironic(&serde_json::json!({
            "agent_md5_checksum_enable": false,
            "permitted_image_formats": ["raw", "iso"],
            "enable_bios_bootloader_install": true,
        }));
        let s = image_settings(&cfg).expect("settings");
        assert!(!s.write.md5_allowed);
        assert_eq!(s.write.permitted_formats, ["raw", "iso"]);
        assert!(s.enable_bios_bootloader_install);
    }

    #[test]
    fn dispatch_errors_map_to_ipa_errors() {
        let e = to_agent_error(
            DispatchError::NoManager {
                call: "execute-step foo".into(),
            },
            CallSite::Step(StepKind::Clean, "foo"),
        );
        assert_eq!(e.error_type, "HardwareManagerMethodNotFound");
        assert_eq!(e.details, "Could not find method: foo");

        let e = to_agent_error(
            DispatchError::Failed {
                manager: "generic".into(),
                call: "execute-step erase_devices".into(),
                error_type: Some("BlockDeviceEraseError".into()),
                details: "disk on fire".into(),
            },
            CallSite::Step(StepKind::Clean, "erase_devices"),
        );
        assert_eq!(
            (e.error_type.as_str(), e.code, e.details.as_str()),
            ("BlockDeviceEraseError", 500, "disk on fire")
        );

        let e = to_agent_error(
            DispatchError::Failed {
                manager: "generic".into(),
                call: "execute-step erase_devices".into(),
                error_type: None,
                details: "boom".into(),
            },
            CallSite::Step(StepKind::Deploy, "erase_devices"),
        );
        assert_eq!(e.error_type, "DeploymentError");
        assert_eq!(e.details, "Unexpected exception performing deploy step erase_devices. ManagerError: generic: boom");

        let e = to_agent_error(
            DispatchError::Sandbox {
                manager: "loop".into(),
                call: "execute-step spin".into(),
                failure: ironic_host::SandboxFailure::Timeout,
                details: "deadline".into(),
            },
            CallSite::Step(StepKind::Service, "spin"),
        );
        assert_eq!(e.error_type, "ServicingError");
        assert!(
            e.details.contains("loop") && e.details.contains("execute-step spin"),
            "{}",
            e.details
        );

        let e = to_agent_error(
            DispatchError::InvalidArgument {
                manager: "generic".into(),
                call: "execute-step clean_uefi_nvram".into(),
                details: "match_patterns must be a list".into(),
            },
            CallSite::Step(StepKind::Clean, "clean_uefi_nvram"),
        );
        assert_eq!(e.error_type, "InvalidCommandParamsError");
    }
}
