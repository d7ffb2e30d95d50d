//! OpenStack `network_data.json` (the config drive's network layout, which
//! Ironic puts on the virtual media) applied before lookup, as the
//! ramdisk's network tooling (glean, cloud-init) does for IPA: physical
//! links found by MAC and brought up, VLAN links created, static IPv4 and
//! IPv6 addresses and routes added, DNS servers written. DHCP networks are
//! left to the ramdisk's DHCP clients; bonds are reported as not supported.

use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;

use crate::link::Netlink;
use crate::NetError;

/// One address to configure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// The `links[].id` it belongs to.
    pub link: String,
    pub ip: IpAddr,
    pub prefix: u8,
    /// `(destination, prefix, gateway)`.
    pub routes: Vec<(IpAddr, u8, IpAddr)>,
}

/// A link of the layout, resolved to a kernel interface name later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Physical {
        id: String,
        mac: String,
    },
    Vlan {
        id: String,
        parent: String,
        vid: u16,
    },
    Unsupported {
        id: String,
        kind: String,
    },
}

/// The parsed layout.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub dns: Vec<IpAddr>,
}

/// A dotted or hex netmask (or a prefix length) as a prefix length.
fn prefix_of(netmask: &Value) -> Option<u8> {
    match netmask {
        Value::Number(n) => n.as_u64().and_then(|p| u8::try_from(p).ok()),
        Value::String(s) => match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(m)) => Some(u32::from(m).count_ones() as u8),
            Ok(IpAddr::V6(m)) => Some(u128::from(m).count_ones() as u8),
            Err(_) => s.parse().ok(),
        },
        _ => None,
    }
}

/// `ip_address` (maybe `a/len`) and `netmask` as address and prefix.
fn address_of(net: &Value) -> Option<(IpAddr, u8)> {
    let raw = net["ip_address"].as_str()?;
    let (ip, len) = match raw.split_once('/') {
        Some((ip, len)) => (ip.parse().ok()?, len.parse().ok()?),
        None => {
            let ip: IpAddr = raw.parse().ok()?;
            let default = if ip.is_ipv4() { 32 } else { 128 };
            (ip, prefix_of(&net["netmask"]).unwrap_or(default))
        }
    };
    Some((ip, len))
}

/// Parses the parts of `network_data.json` the agent applies.
pub fn parse(doc: &Value) -> Layout {
    let mut layout = Layout::default();
    for l in doc["links"].as_array().into_iter().flatten() {
        let id = l["id"].as_str().unwrap_or_default().to_string();
        let kind = l["type"].as_str().unwrap_or("phy");
        let link = match kind {
            "vlan" => Link::Vlan {
                id,
                parent: l["vlan_link"].as_str().unwrap_or_default().to_string(),
                vid: l["vlan_id"]
                    .as_u64()
                    .and_then(|v| u16::try_from(v).ok())
                    .unwrap_or(0),
            },
            "bond" => Link::Unsupported {
                id,
                kind: kind.to_string(),
            },
            _ => Link::Physical {
                id,
                mac: l["ethernet_mac_address"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase(),
            },
        };
        layout.links.push(link);
    }
    for n in doc["networks"].as_array().into_iter().flatten() {
        if !matches!(n["type"].as_str(), Some("ipv4") | Some("ipv6")) {
            continue;
        }
        let Some((ip, prefix)) = address_of(n) else {
            tracing::warn!(network = %n["id"], "network_data.json: no usable ip_address");
            continue;
        };
        let routes = n["routes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|r| {
                let dest: IpAddr = r["network"].as_str()?.parse().ok()?;
                let gw: IpAddr = r["gateway"].as_str()?.parse().ok()?;
                Some((dest, prefix_of(&r["netmask"]).unwrap_or(0), gw))
            })
            .collect();
        layout.addresses.push(Address {
            link: n["link"].as_str().unwrap_or_default().to_string(),
            ip,
            prefix,
            routes,
        });
    }
    layout.dns = doc["services"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["type"] == "dns")
        .filter_map(|s| s["address"].as_str()?.parse().ok())
        .collect();
    layout
}

/// Applies `layout` through netlink; `resolv_conf` (the real machine's
/// `/etc/resolv.conf`) gets the DNS servers. Every step that fails is
/// logged and skipped: a partial network may still reach Ironic.
pub async fn apply(layout: &Layout, resolv_conf: Option<&Path>) -> Result<(), NetError> {
    let nl = Netlink::connect()?;
    let by_mac = nl.links_by_mac().await?;
    let mut names: std::collections::BTreeMap<String, String> = Default::default();
    for link in &layout.links {
        match link {
            Link::Physical { id, mac } => match by_mac.get(mac) {
                Some(name) => {
                    if let Err(e) = nl.set_up(name).await {
                        tracing::warn!(interface = %name, error = %e, "network_data: cannot bring up");
                    }
                    names.insert(id.clone(), name.clone());
                }
                None => tracing::warn!(%id, %mac, "network_data: no interface has this MAC"),
            },
            Link::Vlan { id, parent, vid } => {
                let Some(parent_name) = names.get(parent).cloned() else {
                    tracing::warn!(%id, %parent, "network_data: VLAN on an unknown link");
                    continue;
                };
                match nl.add_vlan(&parent_name, *vid).await {
                    Ok(name) => {
                        names.insert(id.clone(), name);
                    }
                    Err(e) => tracing::warn!(%id, error = %e, "network_data: cannot add VLAN"),
                }
            }
            Link::Unsupported { id, kind } => {
                tracing::warn!(%id, %kind, "network_data: link type not supported by this agent")
            }
        }
    }
    for a in &layout.addresses {
        let Some(name) = names.get(&a.link) else {
            tracing::warn!(link = %a.link, "network_data: address for an unknown link");
            continue;
        };
        match nl.add_address(name, a.ip, a.prefix).await {
            Ok(()) => {
                tracing::info!(interface = %name, ip = %a.ip, prefix = a.prefix, "static address from network_data")
            }
            Err(e) => {
                tracing::warn!(interface = %name, error = %e, "network_data: cannot add address")
            }
        }
        for (dest, prefix, gw) in &a.routes {
            if let Err(e) = nl.add_route(*dest, *prefix, *gw).await {
                tracing::warn!(%dest, %gw, error = %e, "network_data: cannot add route");
            }
        }
    }
    if let (Some(path), false) = (resolv_conf, layout.dns.is_empty()) {
        let text: String = layout
            .dns
            .iter()
            .map(|d| format!("nameserver {d}\n"))
            .collect();
        if let Err(e) = std::fs::write(path, text) {
            tracing::warn!(file = %path.display(), error = %e, "network_data: cannot write DNS servers");
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_links_networks_routes_and_dns() {
        let doc = json!({
            "links": [
                {"id": "eth0", "type": "phy", "ethernet_mac_address": "52:54:00:AA:BB:01"},
                {"id": "vlan100", "type": "vlan", "vlan_link": "eth0", "vlan_id": 100},
                {"id": "bond0", "type": "bond", "bond_links": ["eth0"]}
            ],
            "networks": [
                {"id": "n4", "type": "ipv4", "link": "eth0", "ip_address": "192.0.2.2",
                 "netmask": "255.255.255.0",
                 "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"}]},
                {"id": "n6", "type": "ipv6", "link": "vlan100", "ip_address": "2001:db8::2/64"},
                {"id": "d", "type": "ipv4_dhcp", "link": "eth0"}
            ],
            "services": [{"type": "dns", "address": "192.0.2.53"}]
        });
        let l = parse(&doc);
        assert_eq!(
            l.links[0],
            Link::Physical {
                id: "eth0".into(),
                mac: "52:54:00:aa:bb:01".into()
            }
        );
        assert_eq!(
            l.links[1],
            Link::Vlan {
                id: "vlan100".into(),
                parent: "eth0".into(),
                vid: 100
            }
        );
        assert!(matches!(l.links[2], Link::Unsupported { .. }));
        assert_eq!(l.addresses.len(), 2);
        assert_eq!(l.addresses[0].prefix, 24);
        assert_eq!(
            l.addresses[0].routes,
            vec![("0.0.0.0".parse().unwrap(), 0, "192.0.2.1".parse().unwrap())]
        );
        assert_eq!(l.addresses[1].prefix, 64);
        assert_eq!(l.dns, vec!["192.0.2.53".parse::<IpAddr>().unwrap()]);
    }
}
