//! Finding Ironic by multicast DNS (IPA `mdns.get_endpoint('baremetal')`,
//! used by `agent.py` when `api_url` is `mdns`, or unset with
//! `[mdns] use_mdns`): the `baremetal._openstack._tcp.local.` service gives
//! the API URL, and its `ipa_*` TXT properties override the options listed
//! in `[mdns] allowed_overrides`. mDNS answers are not authenticated, which
//! is why both the lookup and the overrides are opt-in.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use ironic_config::{Config, Source};

use crate::NetError;

/// The OpenStack services' mDNS domain.
const DOMAIN: &str = "_openstack._tcp.local.";
/// How long one attempt waits for the service (zeroconf's default for
/// `get_service_info`).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);

/// A service found by mDNS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `protocol://host:port/path`.
    pub url: String,
    /// TXT properties other than `path` and `protocol`.
    pub params: BTreeMap<String, String>,
}

/// Applies IPA's mDNS rules to `cfg` before anything uses `api_url`.
/// `Err` when `api_url` is `mdns` and no service answered: the agent
/// cannot do anything useful then.
pub async fn resolve_api_url(cfg: &mut Config, standalone: bool) -> Result<(), NetError> {
    if standalone {
        return Ok(());
    }
    let api_url = cfg.non_empty("api_url");
    let requested = api_url.as_deref() == Some("mdns");
    if api_url.is_some() && !requested {
        return Ok(());
    }
    if !requested && !cfg.bool_in("mdns", "use_mdns") {
        if api_url.is_none() {
            tracing::warn!(
                "no api_url and [mdns] use_mdns is false: Ironic is not looked up by mDNS"
            );
        }
        return Ok(());
    }
    let interfaces: Vec<IpAddr> = cfg
        .list_in("mdns", "interfaces")
        .iter()
        .filter_map(|a| match a.parse() {
            Ok(ip) => Some(ip),
            Err(_) => {
                tracing::warn!(address = %a, "[mdns] interfaces: not an IP address; ignored");
                None
            }
        })
        .collect();
    let attempts = cfg
        .get("mdns", "lookup_attempts")
        .and_then(|e| e.value.to_string().parse::<u32>().ok())
        .unwrap_or(3)
        .max(1);
    match lookup("baremetal", &interfaces, attempts).await {
        Ok(endpoint) => {
            tracing::info!(url = %endpoint.url, "Ironic found by mDNS");
            cfg.set_override(
                "DEFAULT",
                "api_url",
                &endpoint.url,
                Source::Computed("mDNS".into()),
            )
            .map_err(|e| NetError::Mdns {
                message: format!("the URL it announced is unusable: {e}"),
            })?;
            apply_overrides(cfg, &endpoint.params);
            Ok(())
        }
        Err(e) if requested => Err(e),
        Err(e) => {
            tracing::warn!(error = %e, "could not find Ironic by mDNS; no lookup or heartbeats");
            Ok(())
        }
    }
}

/// IPA `config.override`: `ipa_<option>` properties whose option is in
/// `[mdns] allowed_overrides`; anything else is skipped with a warning.
pub fn apply_overrides(cfg: &mut Config, params: &BTreeMap<String, String>) {
    let allowed = cfg.list_in("mdns", "allowed_overrides");
    for (key, value) in params {
        let Some(option) = key.strip_prefix("ipa_") else {
            tracing::warn!(%key, "mDNS: skipping a property that is not ipa_*");
            continue;
        };
        if !allowed.iter().any(|a| a == option) {
            tracing::warn!(%option, "mDNS: not in [mdns] allowed_overrides; skipped");
            continue;
        }
        let source = Source::Computed(format!("mDNS property {key}"));
        match cfg.set_override("DEFAULT", option, value, source) {
            Ok(()) => tracing::info!(%option, "configuration overridden by mDNS"),
            Err(e) => tracing::warn!(%option, error = %e, "mDNS: cannot override"),
        }
    }
}

/// Looks `<service>._openstack._tcp.local.` up, `attempts` times with
/// doubling pauses from 0.1 s.
pub async fn lookup(
    service: &str,
    interfaces: &[IpAddr],
    attempts: u32,
) -> Result<Endpoint, NetError> {
    let fullname = format!("{service}.{DOMAIN}");
    let interfaces = interfaces.to_vec();
    tokio::task::spawn_blocking(move || lookup_blocking(&fullname, &interfaces, attempts))
        .await
        .map_err(|e| NetError::Mdns {
            message: format!("lookup task: {e}"),
        })?
}

fn lookup_blocking(
    fullname: &str,
    interfaces: &[IpAddr],
    attempts: u32,
) -> Result<Endpoint, NetError> {
    let err = |message: String| NetError::Mdns { message };
    let daemon = mdns_sd::ServiceDaemon::new().map_err(|e| err(format!("starting mDNS: {e}")))?;
    if !interfaces.is_empty() {
        let _ = daemon.disable_interface(mdns_sd::IfKind::All);
        for ip in interfaces {
            let _ = daemon.enable_interface(mdns_sd::IfKind::Addr(*ip));
        }
    }
    let mut delay = Duration::from_millis(100);
    let mut found = None;
    for attempt in 1..=attempts {
        let events = daemon
            .browse(DOMAIN)
            .map_err(|e| err(format!("browsing {DOMAIN}: {e}")))?;
        let deadline = std::time::Instant::now() + ATTEMPT_TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match events.recv_timeout(left) {
                Ok(mdns_sd::ServiceEvent::ServiceResolved(info)) if info.fullname == fullname => {
                    found = Some(info);
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = daemon.stop_browse(DOMAIN);
        if found.is_some() {
            break;
        }
        if attempt < attempts {
            std::thread::sleep(delay);
            delay *= 2;
        }
    }
    let _ = daemon.shutdown();
    let info = found.ok_or_else(|| {
        err(format!(
            "no answer for {fullname} after {attempts} attempts"
        ))
    })?;
    endpoint_of(
        &info.host,
        info.port,
        info.addresses.iter().map(|a| a.to_ip_addr()).collect(),
        info.txt_properties
            .iter()
            .map(|p| (p.key().to_string(), p.val_str().to_string()))
            .collect(),
    )
}

/// IPA's URL rules: `protocol` and `path` properties (protocol defaults to
/// http on port 80, https elsewhere); a `.local.` host is replaced by its
/// first non-loopback address, another host name is kept.
pub fn endpoint_of(
    host: &str,
    port: u16,
    mut addresses: Vec<IpAddr>,
    mut params: BTreeMap<String, String>,
) -> Result<Endpoint, NetError> {
    let path = params.remove("path").unwrap_or_default();
    let protocol = params
        .remove("protocol")
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| if port == 80 { "http" } else { "https" }.to_string());
    let host = if host.ends_with(".local.") || host.is_empty() {
        addresses.sort();
        let ip = addresses
            .iter()
            .find(|a| !a.is_loopback())
            .or_else(|| addresses.first())
            .ok_or_else(|| NetError::Mdns {
                message: format!("service on {host} has no address"),
            })?;
        match ip {
            IpAddr::V6(v6) => format!("[{v6}]"),
            IpAddr::V4(v4) => v4.to_string(),
        }
    } else {
        host.trim_end_matches('.').to_string()
    };
    Ok(Endpoint {
        url: format!("{protocol}://{host}:{port}{path}"),
        params,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_follow_ipa_rules() {
        let props = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        let e = endpoint_of(
            "ironic.local.",
            6385,
            vec!["127.0.0.1".parse().unwrap(), "192.0.2.1".parse().unwrap()],
            props(&[("protocol", "http"), ("ipa_ntp_server", "192.0.2.9")]),
        )
        .unwrap();
        assert_eq!(e.url, "http://192.0.2.1:6385");
        assert_eq!(e.params, props(&[("ipa_ntp_server", "192.0.2.9")]));
        let e = endpoint_of(
            "api.example.org.",
            443,
            vec![],
            props(&[("path", "/baremetal")]),
        )
        .unwrap();
        assert_eq!(e.url, "https://api.example.org:443/baremetal");
        let e = endpoint_of(
            "x.local.",
            80,
            vec!["2001:db8::5".parse().unwrap()],
            props(&[]),
        )
        .unwrap();
        assert_eq!(e.url, "http://[2001:db8::5]:80");
    }
}
