//! `enable_vlan_interfaces` (IPA `netutils.bring_up_vlan_interfaces`):
//! which VLAN interfaces to create, from the option and the LLDP data.

use crate::lldp::{vlan_ids, Tlvs};

/// An interface as the plan sees it.
#[derive(Debug, Clone)]
pub struct Interface {
    /// Kernel name.
    pub name: String,
    /// MAC address (the option may name the parent by MAC).
    pub mac: String,
    /// LLDP heard on it.
    pub lldp: Tlvs,
}

/// The VLANs to create, `(parent, vid)`, in order and without repeats,
/// and a warning for each item that names nothing usable.
///
/// Items are comma-separated: `<interface or MAC>.<vid>` creates that VLAN;
/// `all` (every interface) or an interface name takes the VLANs that
/// interface's switch announces in LLDP, which needs `collect_lldp`.
pub fn plan(
    option: &str,
    collect_lldp: bool,
    interfaces: &[Interface],
) -> (Vec<(String, u16)>, Vec<String>) {
    let mut wanted: Vec<(String, u16)> = Vec::new();
    let mut warnings = Vec::new();
    let add = |parent: &str, vid: u16, wanted: &mut Vec<(String, u16)>| {
        if !wanted.iter().any(|(p, v)| p == parent && *v == vid) {
            wanted.push((parent.to_string(), vid));
        }
    };
    for item in option.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if let Some((parent, vid)) = item.split_once('.') {
            let Ok(vid) = vid.parse::<u16>() else {
                warnings.push(format!(
                    "enable_vlan_interfaces: {item:?} has no VLAN number"
                ));
                continue;
            };
            match interfaces
                .iter()
                .find(|i| i.name == parent || i.mac.eq_ignore_ascii_case(parent))
            {
                Some(i) => add(&i.name, vid, &mut wanted),
                None => warnings.push(format!(
                    "enable_vlan_interfaces: interface {parent} does not exist"
                )),
            }
        } else if !collect_lldp {
            warnings.push(format!(
                "enable_vlan_interfaces: {item} needs LLDP (collect_lldp) to learn its VLANs"
            ));
        } else if item == "all" {
            for i in interfaces {
                for vid in vlan_ids(&i.lldp) {
                    add(&i.name, vid, &mut wanted);
                }
            }
        } else {
            match interfaces.iter().find(|i| i.name == item) {
                Some(i) => {
                    for vid in vlan_ids(&i.lldp) {
                        add(&i.name, vid, &mut wanted);
                    }
                }
                None => warnings.push(format!(
                    "enable_vlan_interfaces: interface {item} was not found"
                )),
            }
        }
    }
    (wanted, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, mac: &str, vids: &[u16]) -> Interface {
        Interface {
            name: name.into(),
            mac: mac.into(),
            lldp: vids
                .iter()
                .map(|v| (127, format!("0080c203{v:04x}04766c616e")))
                .collect(),
        }
    }

    #[test]
    fn explicit_items_by_name_and_mac() {
        let ifs = [iface("eth0", "52:54:00:00:00:01", &[])];
        let (plan, warnings) = plan("eth0.100, 52:54:00:00:00:01.200,eth9.5", false, &ifs);
        assert_eq!(
            plan,
            vec![("eth0".to_string(), 100), ("eth0".to_string(), 200)]
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("eth9"));
    }

    #[test]
    fn all_takes_lldp_vlans_only_with_collect_lldp() {
        let ifs = [
            iface("eth0", "52:54:00:00:00:01", &[100, 200]),
            iface("eth1", "52:54:00:00:00:02", &[300]),
        ];
        let (p, _) = plan("all", true, &ifs);
        assert_eq!(
            p,
            vec![
                ("eth0".to_string(), 100),
                ("eth0".to_string(), 200),
                ("eth1".to_string(), 300)
            ]
        );
        let (p, w) = plan("all", false, &ifs);
        assert!(p.is_empty());
        assert!(w[0].contains("collect_lldp"));
        let (p, _) = plan("eth1,eth1", true, &ifs);
        assert_eq!(p, vec![("eth1".to_string(), 300)]);
    }
}
