//! The inspection collectors beyond `default` and `logs`, each producing
//! the key and layout IPA's collector does (IPA `inspector.py`,
//! `numa_inspector.py`, `dmi_inspector.py`). They read the machine's sysfs
//! under its hardware root, so a simulated machine answers from its tree.

use std::path::Path;

use serde_json::{json, Map, Value};

fn read_trim(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn sorted_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `numa-topology` (IPA `collect_numa_topology_info`): per NUMA node its
/// RAM (`MemTotal` of the node's meminfo, in kB), its CPUs (core id with
/// the thread siblings) and the NICs attached to it. `None` on a machine
/// without NUMA information, as IPA logs and skips.
pub fn numa_topology(root: &Path) -> Result<Option<Value>, String> {
    let base = root.join("sys/devices/system/node");
    if !base.is_dir() {
        return Ok(None);
    }
    let nodes: Vec<(u64, std::path::PathBuf)> = sorted_entries(&base)
        .into_iter()
        .filter_map(|n| {
            let id = n.strip_prefix("node")?.parse().ok()?;
            Some((id, base.join(&n)))
        })
        .collect();
    let mut ram = Vec::new();
    let mut cpus: Vec<Value> = Vec::new();
    for (id, dir) in &nodes {
        let meminfo = std::fs::read_to_string(dir.join("meminfo"))
            .map_err(|e| format!("node{id} meminfo: {e}"))?;
        let kb = meminfo
            .lines()
            .find(|l| l.contains("MemTotal"))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| format!("node{id}: no MemTotal"))?;
        ram.push(json!({"numa_node": id, "size_kb": kb}));
        for thread in sorted_entries(dir) {
            let Some(tid) = thread
                .strip_prefix("cpu")
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            let core: u64 = read_trim(&dir.join(&thread).join("topology/core_id"))
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("node{id} cpu{tid}: no core_id"))?;
            match cpus
                .iter_mut()
                .find(|c| c["numa_node"] == json!(id) && c["cpu"] == json!(core))
            {
                Some(c) => {
                    if let Some(s) = c["thread_siblings"].as_array_mut() {
                        s.push(json!(tid));
                    }
                }
                None => cpus.push(json!({"cpu": core, "numa_node": id, "thread_siblings": [tid]})),
            }
        }
    }
    let net = root.join("sys/class/net");
    let nics: Vec<Value> = sorted_entries(&net)
        .into_iter()
        .filter_map(|nic| {
            let node: i64 = read_trim(&net.join(&nic).join("device/numa_node"))?
                .parse()
                .ok()?;
            Some(json!({"name": nic, "numa_node": node}))
        })
        .collect();
    Ok(Some(json!({"ram": ram, "cpus": cpus, "nics": nics})))
}

/// `usb-devices` (IPA `get_usb_devices`, from lshw there): every USB
/// device with a product or vendor string, `handle` as lshw names it
/// (`USB:<bus>:<device>`).
pub fn usb_devices(root: &Path) -> Value {
    let base = root.join("sys/bus/usb/devices");
    let devices: Vec<Value> = sorted_entries(&base)
        .into_iter()
        .filter_map(|d| {
            let dir = base.join(&d);
            let product = read_trim(&dir.join("product"));
            let vendor = read_trim(&dir.join("manufacturer"));
            if product.is_none() && vendor.is_none() {
                return None;
            }
            let bus = read_trim(&dir.join("busnum")).unwrap_or_default();
            let dev = read_trim(&dir.join("devnum")).unwrap_or_default();
            Some(json!({
                "product": product.unwrap_or_default(),
                "vendor": vendor.unwrap_or_default(),
                "handle": format!("USB:{bus}:{dev}"),
            }))
        })
        .collect();
    Value::from(devices)
}

/// IPA `dmi_inspector.parse_dmi`: `dmidecode -t bios -t processor -t
/// memory` output as `{"bios": {...}, "cpu": [...], "memory": {...,
/// "devices": [...]}}`.
pub fn parse_dmi(text: &str) -> Value {
    let mut bios = Map::new();
    let mut cpu = Vec::new();
    let mut arrays = Vec::new();
    let mut devices = Vec::new();
    for block in text.split("\n\n") {
        if !block.starts_with("Handle 0x") {
            continue;
        }
        let Some(kind) = block
            .split(',')
            .nth(1)
            .and_then(|t| t.trim().strip_prefix("DMI type"))
            .and_then(|t| t.trim().parse::<u32>().ok())
        else {
            continue;
        };
        let rows = handle_block(block);
        match kind {
            0 => bios = rows,
            4 => cpu.push(Value::Object(rows)),
            16 => arrays.push(rows),
            17 => devices.push(Value::Object(rows)),
            _ => {}
        }
    }
    let mut memory = Map::new();
    if let Some(first) = arrays.first() {
        let count: u64 = arrays
            .iter()
            .filter_map(|a| a.get("Number Of Devices")?.as_str()?.parse::<u64>().ok())
            .sum();
        memory = first.clone();
        memory.insert("Number Of Devices".into(), json!(count));
        memory.remove("Handle");
    }
    memory.insert("devices".into(), Value::from(devices));
    json!({"bios": bios, "cpu": cpu, "memory": memory})
}

fn handle_block(block: &str) -> Map<String, Value> {
    let mut rows = Map::new();
    let mut list_key: Option<String> = None;
    for line in block.lines().map(str::trim) {
        if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim().to_string(), v.trim());
            if v.is_empty() {
                rows.insert(k.clone(), json!([]));
                list_key = Some(k);
            } else {
                rows.insert(k, json!(v));
                list_key = None;
            }
        } else if line.contains("Handle 0x") {
            rows.insert("Handle".into(), json!(line));
        } else if let Some(k) = &list_key {
            if let Some(list) = rows.get_mut(k).and_then(Value::as_array_mut) {
                list.push(json!(line));
            }
        }
    }
    rows
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn numa_from_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for (node, mem, threads) in [(0, 1024, [(0, 0), (2, 0)]), (1, 2048, [(1, 0), (3, 1)])] {
            let n = r.join(format!("sys/devices/system/node/node{node}"));
            std::fs::create_dir_all(&n).unwrap();
            std::fs::write(
                n.join("meminfo"),
                format!("Node {node} MemTotal:       {mem} kB\n"),
            )
            .unwrap();
            for (t, core) in threads {
                let c = n.join(format!("cpu{t}/topology"));
                std::fs::create_dir_all(&c).unwrap();
                std::fs::write(c.join("core_id"), format!("{core}\n")).unwrap();
            }
        }
        std::fs::create_dir_all(r.join("sys/class/net/eth0/device")).unwrap();
        std::fs::write(r.join("sys/class/net/eth0/device/numa_node"), "1\n").unwrap();
        let t = numa_topology(r).unwrap().unwrap();
        assert_eq!(
            t["ram"],
            json!([{"numa_node": 0, "size_kb": 1024}, {"numa_node": 1, "size_kb": 2048}])
        );
        assert_eq!(
            t["cpus"],
            json!([
                {"cpu": 0, "numa_node": 0, "thread_siblings": [0, 2]},
                {"cpu": 0, "numa_node": 1, "thread_siblings": [1]},
                {"cpu": 1, "numa_node": 1, "thread_siblings": [3]}
            ])
        );
        assert_eq!(t["nics"], json!([{"name": "eth0", "numa_node": 1}]));
        assert!(numa_topology(&r.join("nowhere")).unwrap().is_none());
    }

    #[test]
    fn dmi_as_ipa_parses_it() {
        let text = "# dmidecode 3.4\n\nHandle 0x0000, DMI type 0, 26 bytes\nBIOS Information\n\tVendor: Dell Inc.\n\tVersion: 1.6.2\n\tCharacteristics:\n\t\tPCI is supported\n\t\tPNP is supported\n\nHandle 0x0400, DMI type 4, 48 bytes\nProcessor Information\n\tSocket Designation: CPU1\n\nHandle 0x1000, DMI type 16, 23 bytes\nPhysical Memory Array\n\tMaximum Capacity: 64 GB\n\tNumber Of Devices: 2\n\nHandle 0x1100, DMI type 17, 84 bytes\nMemory Device\n\tSize: 2 GB\n";
        let d = parse_dmi(text);
        assert_eq!(d["bios"]["Vendor"], "Dell Inc.");
        assert_eq!(
            d["bios"]["Characteristics"],
            json!(["PCI is supported", "PNP is supported"])
        );
        assert_eq!(d["cpu"][0]["Socket Designation"], "CPU1");
        assert_eq!(d["memory"]["Number Of Devices"], 2);
        assert!(d["memory"].get("Handle").is_none());
        assert_eq!(d["memory"]["devices"][0]["Size"], "2 GB");
    }
}
