//! The agent's run sequence (IPA `agent.py` `IronicPythonAgent.run`):
//! hardware managers, then (unless standalone) inspection and lookup, then
//! the API served beside the heartbeats until a signal,
//! `system.lockdown` or `rescue.finalize_rescue`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use agent_api::{AgentState, ApiConfig, StopReason};
use anyhow::Context;
use ironic_client::{IronicLoop, Startup};
use ironic_host::Host;
use serde_json::Value;

use crate::host_setup::{self, HostFlags};
use crate::machine::Machine;
use crate::managers::{load_boot_managers, HostManagers};
use crate::settings::image_settings;

/// What `main.rs` hands over.
pub struct RunOptions {
    pub machine: Machine,
    pub host: HostFlags,
    pub standalone: bool,
    /// The effective configuration (all layers but Ironic's, which lookup adds).
    pub config: ironic_config::Config,
}

/// Runs the agent until it is told to stop: managers, then (unless
/// standalone) inspection and lookup, then the API and the heartbeats.
pub async fn run_agent(opts: RunOptions) -> anyhow::Result<()> {
    let started_at = agent_api::unix_now();
    let machine = opts.machine;
    let root = machine.root().to_path_buf();
    // The first line an operator looks for on a serial console.
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        root = %root.display(),
        api_url = %opts.config.api_urls().join(","),
        debug = opts.config.bool("debug"),
        "ironic-agent starting"
    );

    // A rescued machine belongs to its user: never serve the API again,
    // and stay idle rather than exit, so that a supervisor restarting the
    // agent does not loop (IPA agent.run sleeps forever likewise).
    if root
        .join(agent_api::extensions::rescue::RESCUED_MARKER)
        .exists()
    {
        tracing::warn!(root = %root.display(), "rescue marker present; not serving the API");
        shutdown_signal().await;
        return Ok(());
    }

    let limits = crate::limits::AgentLimits::load(opts.host.limits.as_deref())?;
    let mut config = opts.config;
    // The virtual media's static network first: everything below may need it.
    let resolv_conf = machine
        .reads_etc()
        .then(|| std::path::Path::new("/etc/resolv.conf"));
    ironic_net::apply_virtual_media_network(&root, &machine.network_scope(), resolv_conf).await;
    // Ironic by mDNS (its announcement may set ntp_server), then the clock:
    // TLS (Ironic's certificate, auto-TLS) depends on it.
    ironic_net::mdns::resolve_api_url(&mut config, opts.standalone)
        .await
        .context("api_url=mdns")?;
    ironic_net::clock::sync(&config, &machine.clock_control())
        .await
        .context("fail_if_clock_not_set")?;

    // IPA's hardware initialisation: arrays assembled and multipath up
    // before any manager lists disks; the wait for the root disk follows
    // the managers' load, before inspection and lookup.
    let init = crate::hardware_init::InitSettings::from_config(&config);
    crate::hardware_init::prepare(&init, &machine.program_runner()).await;
    let mut host_config = opts.host.host_config(&machine)?;
    // Managers fetch with the agent's own client TLS settings.
    host_config.fetch_tls = image_settings(&config)?.write.tls;
    let host = Arc::new(Host::new(host_config).context("starting the hardware-manager host")?);
    let managers = Arc::new(HostManagers::new(host));
    // Managers load beside everything else: every component at once, each
    // bounded by its call deadline, so the API serves at once and a stuck
    // component holds up nothing; calls that need managers wait for the
    // load. Then the directory is watched (new, replaced and removed
    // components take effect without a restart) and the boot-time managers
    // (`manager_urls`, `ipa-manager-urls`) are fetched. The task's output,
    // the watcher, lives as long as its handle.
    let (all_loaded, mut loaded) = tokio::sync::watch::channel(false);
    let _loading = {
        let (managers, flags, config) = (managers.clone(), opts.host.clone(), config.clone());
        let scope = machine.network_scope();
        tokio::spawn(async move {
            managers.load().await;
            let watcher = host_setup::watch_managers(&flags, managers.host());
            load_boot_managers(&config, &managers).await;
            managers.open();
            // LLDP and VLANs need the interfaces the managers list.
            prepare_network(&config, &scope, &managers).await;
            // IPA waits for the root disk before lookup (`wait_for_disks`).
            let host = managers.host().clone();
            crate::hardware_init::wait_for_disks(&init, || {
                crate::hardware_init::probe_root_disk(&host)
            })
            .await;
            all_loaded.send_replace(true);
            watcher
        })
    };

    let _reload_on_sighup = tokio::spawn(reload_on_sighup(managers.host().clone()));

    let system = machine.system_actions();

    let ironic = if opts.standalone {
        None
    } else if config.api_urls().is_empty() {
        // IPA (agent.py `IronicPythonAgent.run`): with only an inspection
        // callback URL, as Ironic boots a ramdisk for managed inspection, the
        // agent inspects and then serves its API without lookup or heartbeats.
        if ironic_client::inspect::enabled(&config) {
            // The inventory needs every manager, as below.
            let _ = loaded.wait_for(|done| *done).await;
            let hardware = Arc::new(HostMachine {
                managers: managers.clone(),
                root: root.clone(),
                system: system.clone(),
                program_dirs: machine.program_dirs(),
            });
            match IronicLoop::new(config.clone(), hardware)?.startup().await {
                Err(ironic_client::Error::NoApiUrl) => tracing::info!(
                    "no api_url configured (ipa-api-url): inspection only, no lookup or heartbeats"
                ),
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
        } else {
            tracing::warn!("no api_url configured (ipa-api-url); running without Ironic");
        }
        None
    } else {
        // Inspection and lookup report the inventory: every manager first,
        // the boot-time ones too.
        let _ = loaded.wait_for(|done| *done).await;
        let hardware = Arc::new(HostMachine {
            managers: managers.clone(),
            root: root.clone(),
            system: system.clone(),
            program_dirs: machine.program_dirs(),
        });
        let mut ironic = IronicLoop::new(config.clone(), hardware)?;
        let startup = ironic.startup().await?;
        if startup.dead {
            // IPA's behaviour: Ironic holds a token we do not know; serving
            // or heartbeating would only be refused. Wait to be rebooted.
            shutdown_signal().await;
            return Ok(());
        }
        managers.set_skip_bmc_detect(startup.skip_bmc_detect);
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
    api_config.programs = machine.program_runner();
    api_config.http = limits.http;
    api_config.history = limits.history;
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
    /// The same log sources as `log.collect_system_logs`.
    system: Arc<dyn agent_api::SystemActions>,
    /// Where collectors find `dmidecode` and `hardware-detect`.
    program_dirs: Vec<std::path::PathBuf>,
}

#[async_trait::async_trait]
impl ironic_client::Machine for HostMachine {
    async fn inventory(&self, skip_bmc_detect: bool) -> anyhow::Result<Value> {
        Ok(self.managers.full_inventory(skip_bmc_detect).await?)
    }
    fn program_dirs(&self) -> Vec<std::path::PathBuf> {
        self.program_dirs.clone()
    }
    fn lldp_raw(&self) -> Option<Value> {
        self.managers.network().lldp_raw()
    }
    fn managers(&self) -> Vec<(String, String)> {
        self.managers
            .host()
            .managers()
            .into_iter()
            .map(|m| (m.manager_name, m.version))
            .collect()
    }
    fn hardware_root(&self) -> std::path::PathBuf {
        self.root.clone()
    }
    fn system_logs(&self) -> Vec<(String, Vec<u8>)> {
        self.system
            .collect_logs(agent_api::DEFAULT_MAX_LOG_BYTES)
            .into_iter()
            .map(|m| (m.name, m.data))
            .collect()
    }
}

/// LLDP and VLAN interfaces before inspection and lookup (IPA lists
/// interfaces, with LLDP, and brings VLANs up while building the inventory
/// for inspection; done once here, the result merged into every inventory).
async fn prepare_network(
    config: &ironic_config::Config,
    scope: &ironic_net::Scope,
    managers: &Arc<HostManagers>,
) {
    let nics = match managers.host().inventory(true).await {
        Ok(inventory) => ironic_net::nics_of(&inventory),
        Err(_) => Vec::new(),
    };
    let lldp_wanted = ironic_client::inspect::wants_lldp(config);
    ironic_net::prepare(config, lldp_wanted, scope, &nics, managers.network()).await;
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

/// SIGHUP: read the grants (file and directory) again and rescan the
/// managers directory, as the watcher would; for operators who disabled
/// it or edit files in place.
async fn reload_on_sighup(host: Arc<Host>) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("SIGHUP will not reload grants: {e}");
            return;
        }
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading grants and managers");
        match host.reload_grants().await {
            Ok(report) => {
                tracing::info!(added = ?report.added, removed = ?report.removed, replaced = report.replaced.len(), waiting_or_rejected = report.rejected.len(), "grants reloaded")
            }
            Err(e) => tracing::error!("grants not reloaded, the previous ones stay in force: {e}"),
        }
        if let Err(e) = host.reload().await {
            tracing::error!("managers directory not rescanned: {e}");
        }
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
