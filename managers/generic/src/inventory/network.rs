//! `interfaces` (IPA `GenericHardwareManager.list_network_interfaces`,
//! `get_interface_info`), from `/sys/class/net` and the host's
//! `network-addresses` capability.

use ironic_hardware_guest::machine::{self, AddressFamily, InterfaceAddress};
use ironic_hardware_guest::prelude::*;

use super::sysfs;

const NET: &str = "/sys/class/net";

pub(crate) fn list_network_interfaces() -> Result<Vec<NetworkInterface>, ManagerError> {
    let names = sysfs::list_required(NET)?;
    let addresses = match machine::network_addresses() {
        Ok(list) => list,
        Err(e) => {
            // Addresses are optional in the inventory; the rest is still useful.
            log::log(
                log::Level::Warn,
                &format!("cannot list interface addresses: {}", sysfs::describe(&e)),
            );
            Vec::new()
        }
    };
    let mut interfaces = Vec::new();
    for name in names {
        // Physical NICs have `device`, bonds `bonding`; VLANs go by name.
        // `lo` and other virtual interfaces have none of these.
        let dir = format!("{NET}/{name}");
        let listed = is_vlan_name(&name)
            || sysfs::exists(&format!("{dir}/device"))
            || sysfs::exists(&format!("{dir}/bonding"));
        if !listed {
            continue;
        }
        if let Some(info) = interface_info(&name, &addresses) {
            interfaces.push(info);
        }
    }
    Ok(interfaces)
}

/// `<name>.<digits>`.
pub(crate) fn is_vlan_name(name: &str) -> bool {
    match name.rsplit_once('.') {
        Some((base, vid)) => {
            !base.is_empty() && !vid.is_empty() && vid.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

/// IPA's `get_interface_info`; `None` (the interface is omitted) when there
/// is no usable MAC.
fn interface_info(name: &str, addresses: &[InterfaceAddress]) -> Option<NetworkInterface> {
    let dir = format!("{NET}/{name}");
    // IPA prefers the permanent address (ETHTOOL_GPERMADDR); sysfs only
    // shows the current one, which equals it unless someone changed it.
    let mac = sysfs::read_opt(&format!("{dir}/address"))?.to_lowercase();
    if mac.is_empty() || mac.starts_with("fa:") {
        // `fa:` addresses are virtual functions / generated MACs IPA drops.
        return None;
    }
    let first = |family: AddressFamily| {
        addresses
            .iter()
            .find(|a| a.interface == name && a.family == family)
            .map(|a| a.address.clone())
    };
    // `speed` is the negotiated speed in Mbit/s (-1 with no link). IPA reads
    // lshw's `capacity` (the fastest supported mode), which sysfs does not
    // expose; on a linked NIC the two agree in the common case.
    let speed_mbps = sysfs::read_opt(&format!("{dir}/speed"))
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| u64::try_from(s).ok())
        .filter(|&s| s > 0 && s != u64::from(u32::MAX));
    Some(NetworkInterface {
        name: name.to_string(),
        mac_address: mac,
        ipv4_address: first(AddressFamily::Ipv4),
        ipv6_address: first(AddressFamily::Ipv6),
        // Reading `carrier` fails on an interface that is down: false.
        has_carrier: sysfs::read_opt(&format!("{dir}/carrier")).as_deref() == Some("1"),
        lldp: None,
        vendor: sysfs::read_opt(&format!("{dir}/device/vendor")),
        product: sysfs::read_opt(&format!("{dir}/device/device")),
        client_id: None,
        // biosdevname is not run (it needs raw SMBIOS/PCI access); IPA
        // reports null when it is missing too.
        biosdevname: None,
        speed_mbps,
        pci_address: sysfs::link_basename(&format!("{dir}/device")),
        driver: sysfs::link_basename(&format!("{dir}/device/driver")),
        extra: None,
    })
}

#[cfg(test)]
mod tests {
    use super::is_vlan_name;

    #[test]
    fn vlan_names() {
        assert!(is_vlan_name("eno1.100"));
        assert!(!is_vlan_name("eno1"));
        assert!(!is_vlan_name("eno1."));
        assert!(!is_vlan_name(".5"));
    }
}
