//! The agent's native networking, done before inspection and lookup:
//! LLDP on every interface (`collect_lldp`, `lldp_timeout`) and VLAN
//! interfaces (`enable_vlan_interfaces`) through netlink.
//!
//! What is learnt is kept in [`Facts`], which the agent merges into every
//! inventory it produces (`interfaces[].lldp`, the VLAN interfaces) and
//! into the `lldp` inspection collector.
//!
//! [`Scope`] says whether links may be changed: on the real machine, and on
//! a simulated machine whose agent runs in a network namespace of its own
//! (the tests' namespaces with veth pairs), they are; on a simulated
//! machine in this host's namespace nothing is changed or listened to: the
//! VLANs are recorded in the machine's actions file instead.

pub mod clock;
pub mod link;
pub mod lldp;
pub mod mdns;
pub mod network_data;
pub mod vlan;
pub mod vmedia;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::Duration;

use serde_json::{json, Value};

pub use lldp::Tlvs;

/// Errors at the crate boundary, naming the interface or call.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A netlink request was refused.
    #[error("{what}: {message}")]
    Netlink { what: String, message: String },
    /// No interface of that name.
    #[error("no network interface named {name}")]
    NoSuchInterface { name: String },
    /// The clock could not be synced.
    #[error("clock sync with ntp_server {server}: {message}")]
    Clock { server: String, message: String },
    /// Ironic could not be found by mDNS.
    #[error("mDNS: {message}")]
    Mdns { message: String },
    /// Not a usable interface name.
    #[error("{name:?} is not a usable interface name")]
    BadName { name: String },
}

/// Where network changes go.
#[derive(Debug, Clone)]
pub enum Scope {
    /// Performed: this machine, or a namespace of the agent's own.
    Live,
    /// Recorded as JSON lines in a simulated machine's actions file.
    Recorded { actions_file: PathBuf },
}

/// Whether this process runs in a network namespace other than PID 1's,
/// or, where PID 1's cannot be read (containers), in one made by
/// `ip netns add` (`/run/netns/*`). Unknown counts as "no".
pub fn in_own_network_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    let id = |path: &std::path::Path| std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()));
    let Some(me) = id(std::path::Path::new("/proc/self/ns/net")) else {
        return false;
    };
    if let Some(init) = id(std::path::Path::new("/proc/1/ns/net")) {
        return me != init;
    }
    std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .any(|e| id(&e.path()) == Some(me))
}

/// A VLAN interface the agent created (or recorded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VlanInterface {
    /// `<parent>.<vid>`.
    pub name: String,
    /// The interface it runs over.
    pub parent: String,
}

/// What the agent learnt about the network, merged into inventories.
#[derive(Debug, Default)]
pub struct Facts {
    inner: RwLock<FactsInner>,
}

#[derive(Debug, Default)]
struct FactsInner {
    /// `None` unless the agent listened.
    lldp: Option<BTreeMap<String, Tlvs>>,
    /// `collect_lldp`: LLDP belongs in the inventory's interfaces.
    lldp_in_inventory: bool,
    vlans: Vec<VlanInterface>,
}

impl Facts {
    /// LLDP per interface, when collected (the `lldp` collector's
    /// `lldp_raw`).
    pub fn lldp_raw(&self) -> Option<Value> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.lldp.as_ref().map(|m| json!(m))
    }

    /// The VLAN interfaces created.
    pub fn vlans(&self) -> Vec<VlanInterface> {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        inner.vlans.clone()
    }

    /// Sets `interfaces[].lldp` (`[[type, hex], ...]`, as IPA's
    /// `list_network_interfaces`) and adds each VLAN interface the managers
    /// did not list, described from its parent (same MAC; no PCI, driver or
    /// LLDP of its own).
    pub fn decorate(&self, inventory: &mut Value) {
        let inner = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let Some(interfaces) = inventory
            .get_mut("interfaces")
            .and_then(Value::as_array_mut)
        else {
            return;
        };
        if let Some(lldp) = inner.lldp.as_ref().filter(|_| inner.lldp_in_inventory) {
            for iface in interfaces.iter_mut() {
                let Some(name) = iface["name"].as_str() else {
                    continue;
                };
                if let Some(tlvs) = lldp.get(name) {
                    iface["lldp"] = json!(tlvs);
                }
            }
        }
        for vlan in &inner.vlans {
            if interfaces.iter().any(|i| i["name"] == vlan.name.as_str()) {
                continue;
            }
            let Some(parent) = interfaces
                .iter()
                .find(|i| i["name"] == vlan.parent.as_str())
                .cloned()
            else {
                continue;
            };
            let mut entry = parent;
            entry["name"] = json!(vlan.name);
            for field in [
                "lldp",
                "vendor",
                "product",
                "pci_address",
                "driver",
                "speed_mbps",
                "biosdevname",
                "client_id",
                "ipv4_address",
                "ipv6_address",
            ] {
                if entry.get(field).is_some() {
                    entry[field] = Value::Null;
                }
            }
            interfaces.push(entry);
        }
    }

    fn set_lldp(&self, lldp: BTreeMap<String, Tlvs>, in_inventory: bool) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        inner.lldp = Some(lldp);
        inner.lldp_in_inventory = in_inventory;
    }

    fn add_vlan(&self, vlan: VlanInterface) {
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        if !inner.vlans.contains(&vlan) {
            inner.vlans.push(vlan);
        }
    }
}

/// An interface of the inventory: name and MAC.
#[derive(Debug, Clone)]
pub struct Nic {
    pub name: String,
    pub mac: String,
}

/// The NICs of an inventory (`interfaces[]` with a name), loopback excluded.
pub fn nics_of(inventory: &Value) -> Vec<Nic> {
    inventory["interfaces"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            let name = i["name"].as_str()?.to_string();
            (name != "lo").then(|| Nic {
                mac: i["mac_address"].as_str().unwrap_or_default().to_string(),
                name,
            })
        })
        .collect()
}

/// LLDP (`collect_lldp`, for `lldp_timeout` seconds) and then the VLAN
/// interfaces (`enable_vlan_interfaces`), recorded in `facts`. Failures
/// are logged: the agent goes on to lookup as IPA does.
///
/// `lldp_also` asks for the LLDP listen without `collect_lldp` (the `lldp`
/// inspection collector); only `collect_lldp` puts LLDP into the
/// inventory's interfaces and lets `enable_vlan_interfaces` use it.
pub async fn prepare(
    cfg: &ironic_config::Config,
    lldp_also: bool,
    scope: &Scope,
    nics: &[Nic],
    facts: &Facts,
) {
    let collect_lldp = cfg.bool("collect_lldp");
    let timeout =
        Duration::from_secs_f64(cfg.float("lldp_timeout").unwrap_or(30.0).clamp(0.0, 3600.0));
    let netlink = match scope {
        Scope::Live => match link::Netlink::connect() {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(error = %e, "netlink unavailable; links are not changed");
                None
            }
        },
        Scope::Recorded { .. } => None,
    };
    if collect_lldp || lldp_also {
        let names: Vec<String> = nics.iter().map(|n| n.name.clone()).collect();
        let heard = match (scope, &netlink) {
            (Scope::Live, Some(nl)) => {
                // A down interface hears nothing: bring it up for the listen.
                for name in &names {
                    match nl.set_up(name).await {
                        Ok(true) => tracing::info!(interface = %name, "brought up for LLDP"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(interface = %name, error = %e, "cannot bring up for LLDP")
                        }
                    }
                }
                tracing::info!(interfaces = ?names, timeout_s = timeout.as_secs_f64(), "listening for LLDP");
                lldp::collect(&names, timeout).await
            }
            _ => {
                tracing::info!(
                    "simulated machine in this host's network namespace: no LLDP listen"
                );
                names.into_iter().map(|n| (n, Vec::new())).collect()
            }
        };
        facts.set_lldp(heard, collect_lldp);
    }
    let option = cfg.str("enable_vlan_interfaces").unwrap_or_default();
    if option.trim().is_empty() {
        return;
    }
    let lldp = facts.lldp_raw();
    let interfaces: Vec<vlan::Interface> = nics
        .iter()
        .map(|n| vlan::Interface {
            name: n.name.clone(),
            mac: n.mac.clone(),
            lldp: lldp
                .as_ref()
                .and_then(|l| serde_json::from_value(l[&n.name].clone()).ok())
                .unwrap_or_default(),
        })
        .collect();
    let (wanted, warnings) = vlan::plan(&option, collect_lldp, &interfaces);
    for w in warnings {
        tracing::warn!("{w}");
    }
    for (parent, vid) in wanted {
        let created = match (scope, &netlink) {
            (Scope::Live, Some(nl)) => nl.add_vlan(&parent, vid).await,
            (Scope::Recorded { actions_file }, _) => link::vlan_name(&parent, vid).inspect(|name| {
                record(actions_file, &json!({"action": "vlan_add", "interface": name, "parent": parent, "vlan": vid}));
            }),
            (Scope::Live, None) => continue,
        };
        match created {
            Ok(name) => {
                tracing::info!(interface = %name, "VLAN interface up");
                facts.add_vlan(VlanInterface { name, parent });
            }
            Err(e) => tracing::warn!(%parent, vid, error = %e, "cannot add VLAN interface"),
        }
    }
}

/// The virtual media's `network_data.json`, applied before anything talks
/// to the network: performed in a live scope, recorded otherwise.
/// `resolv_conf` receives the DNS servers (the real machine only).
pub async fn apply_virtual_media_network(
    root: &std::path::Path,
    scope: &Scope,
    resolv_conf: Option<&std::path::Path>,
) {
    let media = {
        let root = root.to_path_buf();
        tokio::task::spawn_blocking(move || vmedia::find(&root))
            .await
            .unwrap_or_default()
    };
    let Some(doc) = vmedia::network_data(&media) else {
        return;
    };
    let layout = network_data::parse(&doc);
    match scope {
        Scope::Live => {
            if let Err(e) = network_data::apply(&layout, resolv_conf).await {
                tracing::warn!(error = %e, "cannot apply network_data.json");
            }
        }
        Scope::Recorded { actions_file } => {
            let addresses: Vec<String> = layout
                .addresses
                .iter()
                .map(|a| format!("{}/{}", a.ip, a.prefix))
                .collect();
            record(
                actions_file,
                &json!({"action": "network_data", "addresses": addresses}),
            );
        }
    }
}

/// Appends one action line to a simulated machine's actions file.
fn record(actions_file: &std::path::Path, line: &Value) {
    let result = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(actions_file)
        .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
    if let Err(e) = result {
        tracing::warn!(file = %actions_file.display(), error = %e, "cannot record a network action");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decorate_sets_lldp_and_adds_vlans() {
        let facts = Facts::default();
        let mut lldp = BTreeMap::new();
        lldp.insert("eth0".to_string(), vec![(1, "04aabbccddeeff".to_string())]);
        facts.set_lldp(lldp, true);
        facts.add_vlan(VlanInterface {
            name: "eth0.100".into(),
            parent: "eth0".into(),
        });
        let mut inv = json!({"interfaces": [
            {"name": "eth0", "mac_address": "52:54:00:00:00:01", "lldp": null,
             "pci_address": "0000:00:03.0", "ipv4_address": "192.0.2.5"},
            {"name": "eth1", "mac_address": "52:54:00:00:00:02", "lldp": null}
        ]});
        facts.decorate(&mut inv);
        assert_eq!(inv["interfaces"][0]["lldp"], json!([[1, "04aabbccddeeff"]]));
        assert_eq!(inv["interfaces"][1]["lldp"], Value::Null);
        let vlan = &inv["interfaces"][2];
        assert_eq!(vlan["name"], "eth0.100");
        assert_eq!(vlan["mac_address"], "52:54:00:00:00:01");
        assert_eq!(vlan["pci_address"], Value::Null);
        assert_eq!(vlan["ipv4_address"], Value::Null);
        // Idempotent: a second pass adds nothing.
        facts.decorate(&mut inv);
        assert_eq!(inv["interfaces"].as_array().map(Vec::len), Some(3));
    }
}
