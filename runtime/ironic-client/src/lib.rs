//! The agent's side of the Ironic protocol (IPA `agent.py`,
//! `ironic_api_client.py`): version discovery, inspection callback, lookup with
//! token adoption, heartbeats (including prompt ones when a command finishes),
//! and TLS for both the outbound client and the agent's API server (manual and
//! auto-TLS).
//!
//! Use [`IronicLoop::startup`] (inspection + lookup + TLS decision), start
//! the API with [`Startup::server_tls`], then [`IronicLoop::heartbeat`].

pub mod client;
pub mod collectors;
mod heartbeat;
pub mod inspect;
mod lookup;
pub mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use client::{ClientSettings, HeartbeatBody, IronicClient};
pub use heartbeat::{HeartbeatOutcome, HeartbeatTiming};
pub use lookup::{decide_token, LookupResult, TokenDecision};

/// The `agent_version` sent in heartbeats. Ironic gates features on IPA's
/// version numbers, so the agent reports the IPA release it is
/// wire-compatible with (the one the recordings were made with).
pub const IPA_COMPAT_VERSION: &str = "13.0.0";

/// Errors at the crate boundary.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `api_url` configured.
    #[error("no Ironic API URL is configured")]
    NoApiUrl,
    /// Every URL failed at connection level.
    #[error("cannot reach Ironic: {0}")]
    Connection(String),
    /// Lookup never succeeded within `lookup_timeout` (fatal, as IPA).
    #[error("lookup found no node within {0} s")]
    LookupTimeout(u64),
    /// No usable advertised address for the callback URL.
    #[error("cannot determine the address to advertise to Ironic: {0}")]
    NoAdvertiseAddress(String),
    /// TLS material could not be built.
    #[error("TLS: {0}")]
    Tls(String),
    /// Anything else (hardware inventory, ...).
    #[error("{0}")]
    Other(String),
}

/// What the Ironic loop needs from the machine (implemented by the lead
/// over `ironic_host::Host`).
#[async_trait::async_trait]
pub trait Machine: Send + Sync + 'static {
    /// The inventory JSON (IPA's `list_hardware_info`).
    async fn inventory(&self, skip_bmc_detect: bool) -> anyhow::Result<Value>;
    /// `(name, version)` of every hardware manager, in dispatch order.
    fn managers(&self) -> Vec<(String, String)>;
    /// What the `logs` collector sends (IPA's `collect_system_logs`):
    /// `(name in the archive, content)`. No default: a machine that forgot
    /// it sent Ironic an empty archive.
    fn system_logs(&self) -> Vec<(String, Vec<u8>)>;
    /// LLDP heard per interface (`{name: [[type, hex], ...]}`) for the
    /// `lldp` collector, `None` when the agent did not listen.
    fn lldp_raw(&self) -> Option<Value>;
    /// Where the machine's programs (`dmidecode`, `hardware-detect`) are
    /// looked up: the system's on the real machine, the stand-ins of a
    /// simulated one.
    fn program_dirs(&self) -> Vec<std::path::PathBuf>;
    /// Root of the machine's hardware view (`/`, or a simulated machine).
    fn hardware_root(&self) -> std::path::PathBuf {
        std::path::PathBuf::from("/")
    }
}

/// What the Ironic loop needs from the agent's API (implemented by the lead
/// over `agent_api::AgentState`).
pub trait AgentHandle: Send + Sync + 'static {
    /// Ironic issued a token: from now on, commands must carry it.
    fn set_token(&self, token: &str);
    /// The node Ironic returned at lookup (for commands that read it).
    fn set_node(&self, _node: &Value) {}
}

/// Where the API must listen and how.
pub struct Startup {
    /// Lookup result (node + config).
    pub lookup: LookupResult,
    /// The token to give the API (`None`: none yet).
    pub token: Option<String>,
    /// IPA's dead state: Ironic holds a token this process does not know
    /// (answered `"******"`). Serve nothing, heartbeat never, sleep forever.
    pub dead: bool,
    /// TLS for the API server (auto-TLS or manual), `None` for plain HTTP.
    pub server_tls: Option<Arc<rustls::ServerConfig>>,
    /// The callback URL heartbeats advertise.
    pub callback_url: String,
    /// Auto-TLS certificate PEM (sent as `agent_verify_ca`).
    pub verify_ca: Option<String>,
    /// `skip_bmc_detect` requested by Ironic.
    pub skip_bmc_detect: bool,
}

/// The agent's Ironic loop.
pub struct IronicLoop {
    /// Effective configuration; Ironic's lookup layer is applied to it.
    pub config: ironic_config::Config,
    client: Arc<IronicClient>,
    machine: Arc<dyn Machine>,
    lookup_state: lookup::LookupState,
    /// Heartbeat timing knobs.
    pub timing: HeartbeatTiming,
}

impl IronicLoop {
    /// Builds the loop; fails on unusable TLS settings.
    pub fn new(
        config: ironic_config::Config,
        machine: Arc<dyn Machine>,
    ) -> Result<IronicLoop, Error> {
        let client = Arc::new(IronicClient::new(ClientSettings::from_config(&config))?);
        Ok(IronicLoop {
            config,
            client,
            machine,
            lookup_state: Default::default(),
            timing: HeartbeatTiming::default(),
        })
    }

    /// The underlying client.
    pub fn client(&self) -> &Arc<IronicClient> {
        &self.client
    }

    async fn inventory(&self, skip_bmc: bool) -> Result<Value, Error> {
        self.machine
            .inventory(skip_bmc)
            .await
            .map_err(|e| Error::Other(format!("collecting the inventory: {e:#}")))
    }

    /// The middle of IPA's `IronicPythonAgent.run`: inspection (when
    /// enabled), lookup until found (`Err(LookupTimeout)` after
    /// `lookup_timeout`: exit non-zero), Ironic's config layer applied,
    /// token decision, auto-TLS / manual-TLS decision and callback URL.
    pub async fn startup(&mut self) -> Result<Startup, Error> {
        let inventory = self.inventory(false).await?;
        let mut node_uuid = None;
        if inspect::enabled(&self.config) {
            let root = self.machine.hardware_root();
            node_uuid = inspect::run(
                &self.client,
                &self.config,
                self.machine.clone(),
                inventory.clone(),
                &root,
            )
            .await;
        }
        if self.client.urls().is_empty() {
            return Err(Error::NoApiUrl);
        }
        let macs = macs_of(&inventory);
        let timeout = self.config.int("lookup_timeout").unwrap_or(600).max(0) as u64;
        let interval = self.config.int("lookup_interval").unwrap_or(1).max(0) as u64;
        let result = lookup::lookup_until_found(
            &self.client,
            &mut self.lookup_state,
            &macs,
            node_uuid.as_deref(),
            Duration::from_secs(timeout),
            Duration::from_secs(interval),
        )
        .await?;
        let changed = self.config.apply_ironic(&result.config);
        if !changed.is_empty() {
            tracing::info!(?changed, "applied Ironic's configuration");
        }
        let preset = self.config.non_empty("agent_token");
        let (token, dead) = match decide_token(preset.as_deref(), &result.config["agent_token"]) {
            TokenDecision::Adopt(t) => (Some(t), false),
            TokenDecision::Keep => (preset, false),
            TokenDecision::Dead => (None, true),
        };
        if dead {
            tracing::error!("Ironic holds an agent token this agent does not know; waiting for a reboot (no API, no heartbeats)");
        }
        let skip_bmc_detect = result.config["agent_skip_bmc_detect"]
            .as_bool()
            .unwrap_or(false);
        let (server_tls, callback_url, verify_ca) = if dead {
            (None, String::new(), None)
        } else {
            self.tls_and_callback(&inventory).await?
        };
        Ok(Startup {
            lookup: result,
            token,
            dead,
            server_tls,
            callback_url,
            verify_ca,
            skip_bmc_detect,
        })
    }

    async fn tls_and_callback(
        &mut self,
        inventory: &Value,
    ) -> Result<(Option<Arc<rustls::ServerConfig>>, String, Option<String>), Error> {
        let cfg = &self.config;
        let min_tls = cfg.str("tls_min_version").unwrap_or_else(|| "1.2".into());
        let port = cfg.int("advertise_port").unwrap_or(9999);
        let mut protocol = cfg
            .str("advertise_protocol")
            .unwrap_or_else(|| "http".into());
        let cert = cfg.non_empty("tls_cert_file");
        let key = cfg.non_empty("tls_key_file");
        let version = self.client.api_version().await;
        let auto = !cfg.bool("listen_tls")
            && cfg.bool("enable_auto_tls")
            && version >= client::VERIFY_CA_VERSION
            && !(cert.is_some() && key.is_some());
        let needs_ip = auto;
        let host = advertise_host(cfg, inventory, &self.client.urls(), needs_ip).await?;
        let (server, verify_ca) = if let (Some(c), Some(k)) = (&cert, &key) {
            // Manual TLS: the configured pair is used even when listen_tls is
            // false (IPA `Application.start`); the protocol is not switched.
            tracing::info!(cert = %c, "API served with the configured TLS certificate");
            (
                Some(tls::server_config_from_files(
                    c.as_ref(),
                    k.as_ref(),
                    &min_tls,
                )?),
                None,
            )
        } else if auto {
            let ip: IpAddr = host.parse().map_err(|_| {
                Error::NoAdvertiseAddress(format!("auto-TLS needs an IP address, not {host:?}"))
            })?;
            let curve = tls::Curve::parse(&cfg.str("tls_certificate_curve").unwrap_or_default())
                .unwrap_or(tls::Curve::P384);
            let skew = cfg
                .int("auto_tls_allowed_clock_skew")
                .unwrap_or(3600)
                .max(0) as u64;
            let hostname = inventory["hostname"]
                .as_str()
                .map(String::from)
                .or_else(|| {
                    std::fs::read_to_string("/proc/sys/kernel/hostname")
                        .ok()
                        .map(|s| s.trim().to_string())
                })
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "localhost".into());
            let cert = tls::generate_auto_cert(&hostname, ip, curve, Duration::from_secs(skew))?;
            protocol = "https".into();
            let _ = self.config.set_override(
                "DEFAULT",
                "advertise_protocol",
                "https",
                ironic_config::Source::Computed("auto-TLS".into()),
            );
            tracing::info!(%hostname, %ip, "auto-TLS: generated a self-signed certificate");
            (
                Some(tls::server_config_from_pem(
                    &cert.cert_pem,
                    &cert.key_pem,
                    &min_tls,
                )?),
                Some(cert.cert_pem),
            )
        } else {
            (None, None)
        };
        let host_part = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok((
            server,
            format!("{protocol}://{host_part}:{port}"),
            verify_ca,
        ))
    }

    /// The heartbeat loop (IPA `IronicPythonAgentHeartbeater`): first heartbeat at
    /// once, then `heartbeat_timeout × U(0.3, 0.6)`; failures retry after 5-10 s;
    /// `command_finished` forces a heartbeat (no closer than
    /// [`HeartbeatTiming::forced_min_gap`] after the previous one). When Ironic
    /// rejects the token, looks the node up again and resumes with the new token.
    /// Returns when `shutdown` becomes true.
    pub async fn heartbeat(
        mut self,
        startup: Startup,
        agent: Arc<dyn AgentHandle>,
        command_finished: Arc<tokio::sync::Notify>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let macs = match self.inventory(startup.skip_bmc_detect).await {
            Ok(inv) => macs_of(&inv),
            Err(e) => {
                tracing::warn!("{e}");
                Vec::new()
            }
        };
        let mut hb = heartbeat::Heartbeater {
            client: self.client.clone(),
            node_uuid: startup.lookup.node_uuid(),
            callback_url: startup.callback_url,
            token: startup.token,
            verify_ca: startup.verify_ca,
            heartbeat_timeout: startup.lookup.heartbeat_timeout,
            timing: self.timing.clone(),
        };
        hb.run(
            &mut self.lookup_state,
            &macs,
            agent,
            command_finished,
            &mut shutdown,
        )
        .await;
    }
}

/// MACs of all inventory interfaces that have one, in inventory order.
pub fn macs_of(inventory: &Value) -> Vec<String> {
    inventory["interfaces"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["mac_address"].as_str())
                .filter(|m| !m.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// The host for the callback URL (IPA
/// `IronicPythonAgent.set_agent_advertise_addr`): `advertise_host`; else the
/// IPv4 of `network_interface` from the inventory; else the source address the
/// kernel picks for each Ironic URL (a connected UDP socket: no packet sent),
/// `ip_lookup_attempts` rounds `ip_lookup_sleep` apart.
pub async fn advertise_host(
    cfg: &ironic_config::Config,
    inventory: &Value,
    urls: &[String],
    required: bool,
) -> Result<String, Error> {
    if let Some(h) = cfg.non_empty("advertise_host") {
        return Ok(h);
    }
    if let Some(ifname) = cfg.non_empty("network_interface") {
        let ip = inventory["interfaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|i| i["name"].as_str() == Some(ifname.as_str()))
            .and_then(|i| i["ipv4_address"].as_str().map(String::from));
        if let Some(ip) = ip {
            return Ok(ip);
        }
        tracing::warn!(%ifname, "network_interface has no IPv4 address");
    }
    let attempts = cfg.int("ip_lookup_attempts").unwrap_or(6).max(1);
    let sleep = cfg.int("ip_lookup_sleep").unwrap_or(10).max(0) as u64;
    for round in 0..attempts {
        for url in urls {
            if let Some(ip) = source_ip_for(url).await {
                return Ok(ip.to_string());
            }
        }
        if round + 1 < attempts {
            tokio::time::sleep(Duration::from_secs(sleep)).await;
        }
    }
    let msg = format!("no route to any of {urls:?}");
    if required {
        Err(Error::NoAdvertiseAddress(msg))
    } else {
        tracing::warn!("{msg}; advertising 127.0.0.1");
        Ok("127.0.0.1".into())
    }
}

async fn source_ip_for(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let default_port = if url.starts_with("https") { 443 } else { 80 };
    let target = if authority.starts_with('[') || authority.matches(':').count() == 1 {
        authority.to_string()
    } else {
        format!("{authority}:{default_port}")
    };
    let target = if target.starts_with('[') && !target.contains("]:") {
        format!("{target}:{default_port}")
    } else {
        target
    };
    let addrs = tokio::net::lookup_host(&target).await.ok()?;
    for addr in addrs {
        let bind = if addr.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let Ok(sock) = tokio::net::UdpSocket::bind(bind).await else {
            continue;
        };
        if sock.connect(addr).await.is_ok() {
            if let Ok(local) = sock.local_addr() {
                let ip = local.ip();
                let link_local = match ip {
                    IpAddr::V4(v4) => v4.is_link_local(),
                    IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
                };
                if !ip.is_unspecified() && !link_local {
                    return Some(ip);
                }
            }
        }
    }
    None
}
