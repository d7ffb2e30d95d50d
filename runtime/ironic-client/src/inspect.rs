//! The inspection callback (IPA `inspector.py` `inspect`, `call_inspector`):
//! collectors, the POST with retries, the node UUID for lookup. Failures are
//! logged and never end the process (IPA exits after 5 failed attempts; a
//! restart loop gains nothing, lookup proceeds without the UUID instead).

use std::io::Write;
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};

use crate::client::IronicClient;
use crate::Machine;

/// Collectors this agent implements.
pub const COLLECTORS: &[&str] = &[
    "default",
    "logs",
    "pci-devices",
    "lldp",
    "numa-topology",
    "dmi-decode",
    "usb-devices",
    "extra-hardware",
];

/// Runs `program` from the machine's program directories with a deadline
/// and an output cap; its stdout, or why not.
async fn run_program(
    machine: &dyn Machine,
    program: &str,
    args: &[&str],
) -> Result<Vec<u8>, String> {
    let path = machine
        .program_dirs()
        .into_iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{program} is not installed on this machine"))?;
    let child = tokio::process::Command::new(&path)
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(300), child)
        .await
        .map_err(|_| format!("{program} did not finish within 300 s"))?
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{program} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // A collector's output goes into one JSON document: bound it.
    const MAX_OUTPUT: usize = 16 * 1024 * 1024;
    if out.stdout.len() > MAX_OUTPUT {
        return Err(format!("{program} printed more than {MAX_OUTPUT} bytes"));
    }
    Ok(out.stdout)
}

/// The configured collectors (IPA's default: `default,logs`).
pub fn collector_names(cfg: &ironic_config::Config) -> Vec<String> {
    let l = cfg.list_in("DEFAULT", "inspection_collectors");
    if l.is_empty() {
        vec!["default".to_string(), "logs".to_string()]
    } else {
        l
    }
}

/// Whether inspection will ask for LLDP (the `lldp` collector), so the
/// agent listens at start-up even without `collect_lldp`.
pub fn wants_lldp(cfg: &ironic_config::Config) -> bool {
    enabled(cfg) && collector_names(cfg).iter().any(|c| c == "lldp")
}

/// Inspection runs when `inspection_callback_url` is set, or when both
/// `inspection_collectors` and `api_url` are.
pub fn enabled(cfg: &ironic_config::Config) -> bool {
    cfg.non_empty("inspection_callback_url").is_some()
        || (cfg.non_empty("inspection_collectors").is_some() && !cfg.api_urls().is_empty())
}

/// The POST targets: `inspection_callback_url` items verbatim, else each
/// `api_url` + `/v1/continue_inspection`.
pub fn callback_urls(cfg: &ironic_config::Config) -> Vec<String> {
    match cfg.non_empty("inspection_callback_url") {
        Some(_) => cfg.list_in("DEFAULT", "inspection_callback_url"),
        None => cfg
            .api_urls()
            .into_iter()
            .map(|u| format!("{u}/v1/continue_inspection"))
            .collect(),
    }
}

/// The smallest disk of at least 4 GiB (IPA's no-hints root-disk rule).
pub fn root_disk(inventory: &Value) -> Option<Value> {
    const MIN: u64 = 4 * 1024 * 1024 * 1024;
    inventory["disks"]
        .as_array()?
        .iter()
        .filter(|d| d["size"].as_u64().is_some_and(|s| s >= MIN))
        .min_by_key(|d| d["size"].as_u64().unwrap_or(u64::MAX))
        .cloned()
}

fn logs_archive(cfg: &ironic_config::Config, machine: &dyn Machine) -> anyhow::Result<String> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    let mut add = |name: &str, data: &[u8]| -> anyhow::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        h.set_cksum();
        tar.append_data(&mut h, name, data)?;
        Ok(())
    };
    if let Some(f) = cfg.log_file_path() {
        if let Ok(data) = std::fs::read(&f) {
            let name = f.to_string_lossy().trim_start_matches('/').to_string();
            add(&name, &data)?;
        }
    }
    for (name, data) in machine.system_logs() {
        add(&name, &data)?;
    }
    let gz = tar.into_inner()?;
    let mut gz = gz;
    gz.flush()?;
    let bytes = gz.finish()?;
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// `pci-devices`: every `/sys/bus/pci/devices/*` of the inventory's machine.
fn pci_devices(root: &std::path::Path) -> Vec<Value> {
    let dir = root.join("sys/bus/pci/devices");
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<_> = rd
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let read = |dev: &str, f: &str| {
        std::fs::read_to_string(dir.join(dev).join(f))
            .ok()
            .map(|s| s.trim().to_string())
    };
    let hex =
        |s: Option<String>| s.map(|v| v.split_once('x').map_or(v.clone(), |(_, h)| h.to_string()));
    names
        .iter()
        .filter_map(|d| {
            Some(json!({
                "vendor_id": hex(read(d, "vendor"))?,
                "product_id": hex(read(d, "device"))?,
                "class": hex(read(d, "class"))?,
                "revision": hex(read(d, "revision")),
                "bus": d,
                "numa_node_id": read(d, "numa_node"),
            }))
        })
        .collect()
}

/// Waits (inside `default`) until the PXE NIC (or all NICs) has an IPv4.
async fn dhcp_wait(
    cfg: &ironic_config::Config,
    machine: &std::sync::Arc<dyn Machine>,
) -> Option<Value> {
    let timeout = cfg.int("inspection_dhcp_wait_timeout").unwrap_or(60);
    let all = cfg.bool("inspection_dhcp_all_interfaces");
    let pxe = cfg.bootif().map(ironic_config::normalize_bootif);
    if timeout <= 0 || (pxe.is_none() && !all) {
        return None;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout as u64);
    loop {
        let inv = machine.inventory(false).await.ok()?;
        let ready = inv["interfaces"].as_array().is_some_and(|ifs| {
            ifs.iter()
                .filter(|i| all || i["mac_address"].as_str().map(str::to_ascii_lowercase) == pxe)
                .all(|i| i["ipv4_address"].as_str().is_some_and(|a| !a.is_empty()))
        });
        if ready {
            return Some(inv);
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("inspection: timed out waiting for DHCP; inspecting anyway");
            return Some(inv);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Collects the data of the configured collectors; returns it with failures.
pub async fn collect(
    cfg: &ironic_config::Config,
    machine: std::sync::Arc<dyn Machine>,
    mut inventory: Value,
    hardware_root: &std::path::Path,
) -> (Value, Vec<String>) {
    let names = collector_names(cfg);
    let mut data = serde_json::Map::new();
    let mut failures: Vec<String> = Vec::new();
    for name in &names {
        match name.as_str() {
            "default" => {
                if let Some(fresh) = dhcp_wait(cfg, &machine).await {
                    inventory = fresh;
                }
                if let Some(rd) = root_disk(&inventory) {
                    data.insert("root_disk".into(), rd);
                }
                data.insert(
                    "boot_interface".into(),
                    inventory["boot"]["pxe_interface"].clone(),
                );
                let managers: Vec<Value> = machine
                    .managers()
                    .into_iter()
                    .map(|(n, v)| json!({"name": n, "version": v}))
                    .collect();
                data.insert(
                    "configuration".into(),
                    json!({"collectors": names, "managers": managers}),
                );
                data.insert("inventory".into(), inventory.clone());
            }
            "logs" => match logs_archive(cfg, machine.as_ref()) {
                Ok(b64) => {
                    data.insert("logs".into(), Value::from(b64));
                }
                // IPA's `logs` collector fails silently.
                Err(e) => tracing::warn!("inspection: collecting logs: {e:#}"),
            },
            "pci-devices" => {
                data.insert(
                    "pci_devices".into(),
                    Value::from(pci_devices(hardware_root)),
                );
            }
            // IPA: hardware.dispatch_to_managers('collect_lldp_data').
            "lldp" => {
                data.insert(
                    "lldp_raw".into(),
                    machine.lldp_raw().unwrap_or_else(|| json!({})),
                );
            }
            // IPA logs and skips a machine without NUMA data.
            "numa-topology" => match crate::collectors::numa_topology(hardware_root) {
                Ok(Some(t)) => {
                    data.insert("numa_topology".into(), t);
                }
                Ok(None) => tracing::warn!("inspection: no NUMA information on this machine"),
                Err(e) => tracing::warn!("inspection: NUMA information unusable: {e}"),
            },
            "usb-devices" => {
                data.insert(
                    "usb_devices".into(),
                    crate::collectors::usb_devices(hardware_root),
                );
            }
            "dmi-decode" => {
                match run_program(
                    machine.as_ref(),
                    "dmidecode",
                    &["-t", "bios", "-t", "processor", "-t", "memory"],
                )
                .await
                {
                    Ok(out) => {
                        data.insert(
                            "dmi".into(),
                            crate::collectors::parse_dmi(&String::from_utf8_lossy(&out)),
                        );
                    }
                    Err(e) => failures.push(format!("failed to run dmidecode: {e}")),
                }
            }
            // The `hardware` package's hardware-detect, as IPA runs it; its
            // JSON goes under `data` for Ironic's extra_hardware hook.
            "extra-hardware" => {
                let benchmarks = cfg
                    .kernel_params()
                    .get("ipa-inspection-benchmarks")
                    .cloned()
                    .unwrap_or_default();
                let mut args: Vec<&str> = Vec::new();
                if !benchmarks.is_empty() {
                    args.push("--benchmark");
                    args.extend(benchmarks.split(','));
                }
                match run_program(machine.as_ref(), "hardware-detect", &args).await {
                    Ok(out) => match serde_json::from_slice::<Value>(&out) {
                        Ok(v) => {
                            data.insert("data".into(), v);
                        }
                        Err(e) => failures.push(format!(
                            "JSON returned from hardware-detect cannot be decoded: {e}"
                        )),
                    },
                    Err(e) => failures.push(format!("failed to run hardware-detect utility: {e}")),
                }
            }
            // IPA refuses to inspect with an unknown collector; a warning
            // keeps inspection (and the node UUID) useful.
            other => tracing::warn!(
                collector = %other,
                known = ?COLLECTORS,
                "inspection collector {other} does not exist in this agent; skipped"
            ),
        }
    }
    let error = if failures.is_empty() {
        Value::Null
    } else {
        let mut s = String::from("The following errors were encountered:");
        for f in &failures {
            s.push_str("\n* ");
            s.push_str(f);
        }
        Value::from(s)
    };
    data.insert("error".into(), error);
    (Value::Object(data), failures)
}

/// Runs inspection once: collect, POST with up to 5 attempts (waits
/// `max(5, min(1.5·2^(n-1), 30))` s on connection errors, 409 and ≥500),
/// and returns the node UUID from a 2xx answer when no collector failed.
pub async fn run(
    client: &IronicClient,
    cfg: &ironic_config::Config,
    machine: std::sync::Arc<dyn Machine>,
    inventory: Value,
    hardware_root: &std::path::Path,
) -> Option<String> {
    let (data, failures) = collect(cfg, machine, inventory, hardware_root).await;
    let urls = callback_urls(cfg);
    for attempt in 1..=5u32 {
        let mut answer = None;
        for url in &urls {
            match client
                .send(reqwest::Method::POST, url, None, Some(&data))
                .await
            {
                Ok(r) => {
                    answer = Some(r);
                    break;
                }
                Err(e) => tracing::warn!(%url, "inspection: {}", crate::client::error_chain(&e)),
            }
        }
        match answer {
            Some(r) if (200..300).contains(&r.status) => {
                let uuid = r.json["uuid"].as_str().map(String::from);
                tracing::info!(node = ?uuid, "inspection data accepted");
                if !failures.is_empty() {
                    tracing::error!(
                        ?failures,
                        "inspection collectors failed; not using the node UUID"
                    );
                    return None;
                }
                return uuid;
            }
            Some(r) if r.status != 409 && r.status < 500 => {
                tracing::error!(
                    status = r.status,
                    "inspection rejected: {}; continuing with lookup",
                    r.fault()
                );
                return None;
            }
            Some(r) => tracing::warn!(
                status = r.status,
                attempt,
                "inspection failed: {}",
                r.fault()
            ),
            None => tracing::warn!(attempt, "inspection: no callback URL answered"),
        }
        if attempt < 5 {
            let wait = (1.5 * 2f64.powi(attempt as i32 - 1)).clamp(5.0, 30.0);
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
    tracing::error!("inspection failed 5 times; continuing with lookup");
    None
}
