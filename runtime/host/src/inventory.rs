//! Ironic's inventory JSON (IPA's `list_hardware_info`), assembled from
//! first-answer dispatch of each inventory method. Key order follows IPA's
//! (`ironic_python_agent/hardware.py`, `list_hardware_info`), which Ironic
//! stores as it is.

use std::io::Read;

use serde_json::{json, Map, Value};

use crate::bindings::latest::ironic::hardware::types::{
    BlockDevice, BootInfo, Cpu, Memory, NetworkInterface, Step, SystemVendor,
};
use crate::bindings::{
    GetBmcAddress, GetBmcMac, GetBmcV6Address, GetBootInfo, GetCpus, GetMemory,
    GetSystemVendorInfo, ListBlockDevices, ListNetworkInterfaces,
};
use crate::error::DispatchError;
use crate::registry::Host;

/// `record` with the keys of `extra` (a JSON object a 0.3.0 manager may
/// add) that it does not already have; an `extra` that is not an object
/// is left out, with a warning.
fn with_extra(mut record: Value, extra: &Option<String>) -> Value {
    let Some(text) = extra else {
        return record;
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(more)) => {
            if let Value::Object(map) = &mut record {
                for (k, v) in more {
                    map.entry(k).or_insert(v);
                }
            }
        }
        _ => tracing::warn!(
            "an inventory record's extra is not a JSON object; left out: {}",
            crate::text::sanitize(text, 256)
        ),
    }
    record
}

pub(crate) fn cpu_json(c: &Cpu) -> Value {
    with_extra(
        json!({
            "model_name": c.model_name,
            "frequency": c.frequency,
            "count": c.count,
            "architecture": c.architecture,
            "flags": c.flags,
            "socket_count": c.socket_count,
        }),
        &c.extra,
    )
}

pub(crate) fn memory_json(m: &Memory) -> Value {
    with_extra(
        json!({ "total": m.total, "physical_mb": m.physical_mb }),
        &m.extra,
    )
}

pub(crate) fn disk_json(d: &BlockDevice) -> Value {
    with_extra(
        json!({
            "name": d.name,
            "model": d.model,
            "size": d.size,
            "rotational": d.rotational,
            "wwn": d.wwn,
            "serial": d.serial,
            "vendor": d.vendor,
            "wwn_with_extension": d.wwn_with_extension,
            "wwn_vendor_extension": d.wwn_vendor_extension,
            "hctl": d.hctl,
            "by_path": d.by_path,
            "logical_sectors": d.logical_sectors,
            "physical_sectors": d.physical_sectors,
            "tran": d.tran,
        }),
        &d.extra,
    )
}

pub(crate) fn interface_json(i: &NetworkInterface) -> Value {
    let lldp = i
        .lldp
        .as_ref()
        .map(|tlvs| Value::Array(tlvs.iter().map(|t| json!([t.tlv_type, t.value])).collect()))
        .unwrap_or(Value::Null);
    with_extra(
        json!({
            "name": i.name,
            "mac_address": i.mac_address,
            "ipv4_address": i.ipv4_address,
            "ipv6_address": i.ipv6_address,
            "has_carrier": i.has_carrier,
            "lldp": lldp,
            "vendor": i.vendor,
            "product": i.product,
            "client_id": i.client_id,
            "biosdevname": i.biosdevname,
            "speed_mbps": i.speed_mbps,
            "pci_address": i.pci_address,
            "driver": i.driver,
        }),
        &i.extra,
    )
}

pub(crate) fn system_vendor_json(v: &SystemVendor) -> Value {
    with_extra(
        json!({
            "product_name": v.product_name,
            "serial_number": v.serial_number,
            "manufacturer": v.manufacturer,
            "firmware": {
                "vendor": v.firmware.vendor,
                "version": v.firmware.version,
                "build_date": v.firmware.build_date,
            },
        }),
        &v.extra,
    )
}

pub(crate) fn boot_json(b: &BootInfo) -> Value {
    with_extra(
        json!({ "current_boot_mode": b.current_boot_mode, "pxe_interface": b.pxe_interface }),
        &b.extra,
    )
}

/// A step as Ironic's dict: `abortable`/`argsinfo` only when given.
pub(crate) fn step_json(s: &Step) -> Value {
    let mut map = Map::new();
    map.insert("step".into(), json!(s.name));
    map.insert("priority".into(), json!(s.priority));
    map.insert("interface".into(), json!(s.interface));
    map.insert("reboot_requested".into(), json!(s.reboot_requested));
    if let Some(abortable) = s.abortable {
        map.insert("abortable".into(), json!(abortable));
    }
    if let Some(args) = &s.argsinfo {
        let info: Map<String, Value> = args
            .iter()
            .map(|a| {
                (
                    a.name.clone(),
                    json!({ "description": a.description, "required": a.required }),
                )
            })
            .collect();
        map.insert("argsinfo".into(), Value::Object(info));
    }
    Value::Object(map)
}

/// `Ok(None)` when no manager answers (BMC methods become null/absent).
fn optional<T>(r: Result<T, DispatchError>) -> Result<Option<T>, DispatchError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(DispatchError::NoManager { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

impl Host {
    /// IPA's `list_hardware_info`: the inventory Ironic stores. With
    /// `skip_bmc_detect`, no BMC method is called: `bmc_address` and
    /// `bmc_v6address` are null and `bmc_mac` is absent.
    pub async fn inventory(&self, skip_bmc_detect: bool) -> Result<Value, DispatchError> {
        macro_rules! first {
            ($export:expr) => {
                self.first_answer(&$export).await.map(|(v, _)| v)
            };
        }
        let interfaces = first!(ListNetworkInterfaces)?;
        let cpu = first!(GetCpus)?;
        let disks = first!(ListBlockDevices)?;
        let memory = first!(GetMemory)?;
        let (bmc_address, bmc_v6address, bmc_mac) = if skip_bmc_detect {
            (None, None, None)
        } else {
            let registry = self.snapshot();
            match registry.bmc.get() {
                Some(known) => known.clone(),
                None => {
                    let detected = (
                        optional(first!(GetBmcAddress))?.flatten(),
                        optional(first!(GetBmcV6Address))?.flatten(),
                        optional(first!(GetBmcMac))?.flatten(),
                    );
                    // Failures are not remembered: the next inventory retries.
                    registry.bmc.get_or_init(|| detected).clone()
                }
            }
        };
        let system_vendor = first!(GetSystemVendorInfo)?;
        let boot = first!(GetBootInfo)?;

        let mut inv = Map::new();
        inv.insert(
            "interfaces".into(),
            Value::Array(interfaces.iter().map(interface_json).collect()),
        );
        inv.insert("cpu".into(), cpu_json(&cpu));
        inv.insert(
            "disks".into(),
            Value::Array(disks.iter().map(disk_json).collect()),
        );
        inv.insert("memory".into(), memory_json(&memory));
        inv.insert("bmc_address".into(), json!(bmc_address));
        inv.insert("bmc_v6address".into(), json!(bmc_v6address));
        inv.insert("system_vendor".into(), system_vendor_json(&system_vendor));
        inv.insert("boot".into(), boot_json(&boot));
        inv.insert("hostname".into(), json!(self.hostname()));
        if let Some(mac) = bmc_mac {
            inv.insert("bmc_mac".into(), json!(mac));
        }
        Ok(Value::Object(inv))
    }

    /// Trimmed `<root>/proc/sys/kernel/hostname`, else `localhost`.
    pub(crate) fn hostname(&self) -> String {
        let mut text = String::new();
        let read = self
            .env
            .root
            .open("proc/sys/kernel/hostname")
            .and_then(|f| f.take(4096).read_to_string(&mut text));
        match read {
            Ok(_) if !text.trim().is_empty() => text.trim().to_string(),
            _ => "localhost".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::latest::ironic::hardware::types::{ArgInfo, LldpTlv};

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default()
    }

    #[test]
    fn disk_and_interface_key_order() {
        let d = BlockDevice {
            name: "/dev/sda".into(),
            model: None,
            size: 1,
            rotational: true,
            wwn: None,
            serial: None,
            vendor: None,
            wwn_with_extension: None,
            wwn_vendor_extension: None,
            hctl: None,
            by_path: None,
            logical_sectors: 512,
            physical_sectors: 4096,
            tran: Some("sata".into()),
            extra: Some(r#"{"vendor_health": "ok", "name": "not replaced"}"#.into()),
        };
        assert_eq!(
            keys(&disk_json(&d)),
            [
                "name",
                "model",
                "size",
                "rotational",
                "wwn",
                "serial",
                "vendor",
                "wwn_with_extension",
                "wwn_vendor_extension",
                "hctl",
                "by_path",
                "logical_sectors",
                "physical_sectors",
                "tran",
                "vendor_health"
            ]
        );
        assert_eq!(
            disk_json(&d)["name"],
            "/dev/sda",
            "extra never replaces a key"
        );
        let i = NetworkInterface {
            name: "eth0".into(),
            mac_address: "aa:bb:cc:dd:ee:ff".into(),
            ipv4_address: None,
            ipv6_address: None,
            has_carrier: true,
            lldp: Some(vec![LldpTlv {
                tlv_type: 1,
                value: "04aabb".into(),
            }]),
            vendor: None,
            product: None,
            client_id: None,
            biosdevname: None,
            speed_mbps: Some(1000),
            pci_address: None,
            driver: None,
            extra: Some("[1, 2]".into()),
        };
        // An extra that is not an object is left out.
        let v = interface_json(&i);
        assert_eq!(
            keys(&v),
            [
                "name",
                "mac_address",
                "ipv4_address",
                "ipv6_address",
                "has_carrier",
                "lldp",
                "vendor",
                "product",
                "client_id",
                "biosdevname",
                "speed_mbps",
                "pci_address",
                "driver"
            ]
        );
        assert_eq!(v["lldp"], json!([[1, "04aabb"]]));
    }

    #[test]
    fn step_dict_omits_absent_keys() {
        let mut s = Step {
            name: "erase_devices".into(),
            priority: 10,
            interface: "deploy".into(),
            reboot_requested: false,
            abortable: None,
            argsinfo: None,
        };
        assert_eq!(
            keys(&step_json(&s)),
            ["step", "priority", "interface", "reboot_requested"]
        );
        s.abortable = Some(true);
        s.argsinfo = Some(vec![ArgInfo {
            name: "version".into(),
            description: "v".into(),
            required: true,
        }]);
        let v = step_json(&s);
        assert_eq!(v["abortable"], json!(true));
        assert_eq!(
            v["argsinfo"],
            json!({"version": {"description": "v", "required": true}})
        );
    }
}
