//! Burn-in steps (IPA `burnin.py`): `burnin_cpu` and `burnin_memory`
//! (stress-ng), `burnin_disk` (fio, optionally a SMART long test),
//! `burnin_network` (fio's network engine between two nodes), `burnin_gpu`
//! (gpu_burn). Knobs are IPA's `driver_info.agent_burnin_*` with IPA's
//! defaults.
//!
//! A missing program or partner fails at once, naming it. Differences from
//! IPA, each to avoid a hang:
//! * a run longer than the agent's step deadline is refused before it
//!   starts (IPA's defaults are 24 h; the agent stops any step at 6 h);
//! * the network reader retries a refused connection only until
//!   `agent_burnin_fio_network_pairing_timeout` (IPA retries forever), and
//!   the writer waits for its reader as long;
//! * dynamic pairing through a tooz coordination backend is not available:
//!   the static `agent_burnin_fio_network_config` is required;
//! * gpu_burn is run as a granted program by name (IPA runs
//!   `./gpu_burn` in `agent_burnin_gpu_install_dir`).

use ironic_hardware_guest::commands::{self, CommandError};
use ironic_hardware_guest::prelude::*;
use serde_json::Value;

use crate::inventory::disks;

/// The agent's deadline for one step (runtime/host `Limits::step_timeout`).
const STEP_DEADLINE_S: u64 = 6 * 3600;
/// IPA's network reader retry period (`NETWORK_READER_CYCLE`).
const READER_CYCLE_S: u64 = 30;

fn exec_error(details: impl Into<String>) -> ManagerError {
    ManagerError::failed_as("CommandExecutionError", details)
}

fn cleaning_error(details: impl Into<String>) -> ManagerError {
    ManagerError::failed_as("CleaningError", details)
}

fn driver_info(node: &str) -> Result<serde_json::Map<String, Value>, ManagerError> {
    let v: Value = serde_json::from_str(node)
        .map_err(|e| ManagerError::invalid_argument(format!("node is not JSON: {e}")))?;
    Ok(v.get("driver_info")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default())
}

/// A knob as the program argument IPA passes (`str()` of the value).
fn arg(info: &serde_json::Map<String, Value>, key: &str, default: &str) -> String {
    match info.get(key) {
        None | Some(Value::Null) => default.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn seconds(
    info: &serde_json::Map<String, Value>,
    key: &str,
    default: u64,
) -> Result<u64, ManagerError> {
    match info.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .ok_or_else(|| {
                ManagerError::invalid_argument(format!(
                    "driver_info.{key} must be a number of seconds, got {v}"
                ))
            }),
    }
}

fn within_deadline(key: &str, secs: u64) -> Result<(), ManagerError> {
    if secs > STEP_DEADLINE_S {
        return Err(exec_error(format!(
            "driver_info.{key} is {secs} s, longer than the {STEP_DEADLINE_S} s this agent allows \
             one step; set it to at most {STEP_DEADLINE_S}"
        )));
    }
    Ok(())
}

/// Runs a program for up to `timeout_s`; stdout and stderr on success.
fn run(
    program: &str,
    args: &[String],
    timeout_s: u64,
    what: &str,
) -> Result<(i32, String, String), ManagerError> {
    log::log(
        log::Level::Info,
        &format!("Burn-in {what} command: {program} {}", args.join(" ")),
    );
    let ms = u32::try_from(timeout_s.saturating_mul(1000)).unwrap_or(u32::MAX);
    match commands::run(program, args, None, Some(ms)) {
        Ok(out) => Ok((
            out.exit_code.unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )),
        Err(CommandError::NotFound(m)) => Err(exec_error(format!(
            "{what}: {program} is not installed in this ramdisk ({m})"
        ))),
        Err(CommandError::Denied(m)) => Err(exec_error(format!(
            "{what}: {program} is not permitted: {m}"
        ))),
        Err(CommandError::TimedOut(m)) => {
            Err(exec_error(format!("{what}: {program} timed out: {m}")))
        }
        Err(e) => Err(exec_error(format!("{what}: {program}: {e:?}"))),
    }
}

/// IPA `stress_ng`: `--cpu N` or `--vm N --vm-bytes B`, for a time.
fn stress_ng(node: &str, stressor: &str) -> Result<Json, ManagerError> {
    let info = driver_info(node)?;
    let (count_key, bytes_key) = match stressor {
        "vm" => ("agent_burnin_vm_vm", Some("agent_burnin_vm_vm-bytes")),
        _ => ("agent_burnin_cpu_cpu", None),
    };
    let timeout_key = format!("agent_burnin_{stressor}_timeout");
    let timeout = seconds(&info, &timeout_key, 86400)?;
    within_deadline(&timeout_key, timeout)?;
    let mut args = vec![
        format!("--{stressor}"),
        arg(&info, count_key, "0"),
        "--timeout".into(),
        timeout.to_string(),
    ];
    if let Some(key) = bytes_key {
        args.extend(["--vm-bytes".into(), arg(&info, key, "98%")]);
    }
    args.push("--metrics-brief".into());
    if let Some(file) = info
        .get(&format!("agent_burnin_{stressor}_outputfile"))
        .and_then(Value::as_str)
    {
        args.extend(["--log-file".into(), file.to_string()]);
    }
    let what = format!("stress-ng ({stressor})");
    let (code, _, err) = run("stress-ng", &args, timeout + 60, &what)?;
    // stress-ng reports on stderr only.
    log::log(log::Level::Info, err.trim());
    if code != 0 {
        return Err(exec_error(format!(
            "stress-ng ({stressor}) failed with error: exit code {code}: {}",
            err.trim()
        )));
    }
    json_result(&Value::Null)
}

pub fn burnin_cpu(node: &str) -> Result<Json, ManagerError> {
    stress_ng(node, "cpu")
}

pub fn burnin_memory(node: &str) -> Result<Json, ManagerError> {
    stress_ng(node, "vm")
}

/// IPA `fio_disk`: a verified read/write job over every disk, then (if
/// asked) a SMART long self-test whose result decides.
pub fn burnin_disk(node: &str) -> Result<Json, ManagerError> {
    let info = driver_info(node)?;
    let runtime = seconds(&info, "agent_burnin_fio_disk_runtime", 0)?;
    within_deadline("agent_burnin_fio_disk_runtime", runtime)?;
    let mut args: Vec<String> = [
        "--rw",
        "readwrite",
        "--bs",
        "4k",
        "--direct",
        "1",
        "--ioengine",
        "libaio",
        "--iodepth",
        "32",
        "--verify",
        "crc32c",
        "--verify_dump",
        "1",
        "--continue_on_error",
        "verify",
        "--loops",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(arg(&info, "agent_burnin_fio_disk_loops", "4"));
    args.extend([
        "--runtime".into(),
        runtime.to_string(),
        "--time_based".into(),
    ]);
    if let Some(file) = info
        .get("agent_burnin_fio_disk_outputfile")
        .and_then(Value::as_str)
    {
        args.extend([
            "--output-format".into(),
            "json".into(),
            "--output".into(),
            file.to_string(),
        ]);
    }
    let devices: Vec<String> = disks::list_disks()?
        .into_iter()
        .map(|d| d.device.name)
        .collect();
    for d in &devices {
        args.extend(["--name".into(), d.clone()]);
    }
    // `--loops` with runtime 0 has no time bound of its own: the step's.
    let (code, out, err) = run("fio", &args, STEP_DEADLINE_S, "fio (disk)")?;
    log::log(log::Level::Info, out.trim());
    if code != 0 {
        return Err(exec_error(format!(
            "fio (disk) failed with error: exit code {code}: {}",
            err.trim()
        )));
    }
    let smart = match info.get("agent_burnin_fio_disk_smart_test") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => {
            matches!(s.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on")
        }
        _ => false,
    };
    if smart {
        smart_tests(&devices)?;
    }
    json_result(&Value::Null)
}

/// IPA `_run_smart_test`: start a long self-test everywhere, then poll each
/// device's status (smartctl's JSON) every 30 s until all are done.
fn smart_tests(devices: &[String]) -> Result<(), ManagerError> {
    let mut failed = Vec::new();
    for d in devices {
        let (code, _, err) = run(
            "smartctl",
            &["-t".into(), "long".into(), d.clone()],
            60,
            "SMART self test",
        )?;
        if code != 0 {
            log::log(
                log::Level::Error,
                &format!("Starting SMART test on {d} failed with: {}", err.trim()),
            );
            failed.push(d.clone());
        }
    }
    if !failed.is_empty() {
        return Err(cleaning_error(format!(
            "fio (disk) failed to start SMART self test on {}",
            failed.join(", ")
        )));
    }
    let mut pending: Vec<String> = devices.to_vec();
    let mut rounds = 0u64;
    while !pending.is_empty() {
        let mut still = Vec::new();
        for d in pending {
            let (_, out, _) = run("smartctl", &["-ja".into(), d.clone()], 60, "SMART status")?;
            let status = serde_json::from_str::<Value>(&out).ok().and_then(|v| {
                v.pointer("/ata_smart_data/self_test/status/string")
                    .and_then(Value::as_str)
                    .map(String::from)
            });
            match status {
                None => {}
                Some(s) if s.contains("in progress") => still.push(d),
                Some(s) if s.contains("completed without error") => {
                    log::log(log::Level::Info, &format!("{d} passed SMART test"));
                }
                Some(s) => {
                    log::log(
                        log::Level::Warn,
                        &format!("{d} failed SMART test with: {s}"),
                    );
                    failed.push(d);
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        rounds += 1;
        if rounds * 30 > STEP_DEADLINE_S {
            return Err(cleaning_error(format!(
                "SMART tests still running on {} at the step deadline",
                pending.join(", ")
            )));
        }
        // smartctl has no wait of its own; `sleep` is not a granted program,
        // so the wait is a status query that takes its time: 30 s apart.
        std::thread::sleep(std::time::Duration::from_secs(30));
    }
    if !failed.is_empty() {
        return Err(cleaning_error(format!(
            "fio (disk) SMART test failed for {}",
            failed.join(" ")
        )));
    }
    Ok(())
}

/// IPA `fio_network`: as writer then reader (or the other way round) with
/// the partner of the static `agent_burnin_fio_network_config`.
pub fn burnin_network(node: &str) -> Result<Json, ManagerError> {
    let info = driver_info(node)?;
    let runtime = seconds(&info, "agent_burnin_fio_network_runtime", 21600)?;
    let pairing = seconds(&info, "agent_burnin_fio_network_pairing_timeout", 900)?;
    let Some(config) = info
        .get("agent_burnin_fio_network_config")
        .and_then(Value::as_object)
    else {
        return Err(cleaning_error(
            "fio (network): driver_info.agent_burnin_fio_network_config ({\"role\": \"writer\"|\"reader\", \
             \"partner\": <host>}) is required: pairing through a coordination backend \
             (agent_burnin_fio_network_pairing_backend_url) is not available in this agent",
        ));
    };
    let role = config
        .get("role")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let partner = config
        .get("partner")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if role != "writer" && role != "reader" {
        return Err(cleaning_error(format!(
            "fio (network) found an unknown role: {role}"
        )));
    }
    if partner.is_empty() {
        return Err(cleaning_error("fio (network) failed to find partner"));
    }
    // Both directions, each waiting for the partner at most `pairing`.
    within_deadline("agent_burnin_fio_network_runtime", 2 * (runtime + pairing))?;
    let output = info
        .get("agent_burnin_fio_network_outputfile")
        .and_then(Value::as_str);
    let writer_first = role == "writer";
    for writer in [writer_first, !writer_first] {
        let file = output.map(|o| format!("{o}.{}", if writer { "writer" } else { "reader" }));
        fio_network(writer, runtime, pairing, &partner, file.as_deref())?;
    }
    json_result(&Value::Null)
}

fn fio_network(
    writer: bool,
    runtime: u64,
    pairing: u64,
    partner: &str,
    output: Option<&str>,
) -> Result<(), ManagerError> {
    let mut args: Vec<String> = [
        "--ioengine",
        "net",
        "--port",
        "9000",
        "--fill_device",
        "1",
        "--group_reporting",
        "--gtod_reduce",
        "1",
        "--numjobs",
        "16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if writer {
        args.extend(["--name", "writer", "--rw", "write", "--runtime"].map(String::from));
        args.extend([
            runtime.to_string(),
            "--time_based".into(),
            "--listen".into(),
        ]);
    } else {
        args.extend(["--name", "reader", "--rw", "read", "--hostname", partner].map(String::from));
    }
    if let Some(file) = output {
        args.extend([
            "--output-format".into(),
            "json".into(),
            "--output".into(),
            file.to_string(),
        ]);
    }
    let mut waited = 0;
    loop {
        // The writer listens until its reader comes (at most the pairing
        // time) and then runs for `runtime`.
        let (code, out, err) = run("fio", &args, runtime + pairing + 60, "fio (network)")?;
        if code == 0 {
            log::log(log::Level::Info, out.trim());
            return Ok(());
        }
        // A reader whose partner is not listening yet gets exit code 16.
        if !writer && code == 16 && waited + READER_CYCLE_S <= pairing {
            log::log(
                log::Level::Info,
                &format!("fio (network): reader retrying in {READER_CYCLE_S} seconds ..."),
            );
            std::thread::sleep(std::time::Duration::from_secs(READER_CYCLE_S));
            waited += READER_CYCLE_S;
            continue;
        }
        return Err(exec_error(format!(
            "fio (network) failed with error: exit code {code}: {}{}",
            err.trim(),
            if code == 16 {
                format!(" (no partner {partner} within {pairing} s)")
            } else {
                String::new()
            }
        )));
    }
}

/// IPA `gpu_burn`: the GPU count check (when `agent_burnin_gpu_count` > 0),
/// then the burn for `agent_burnin_gpu_timeout`.
pub fn burnin_gpu(node: &str) -> Result<Json, ManagerError> {
    let info = driver_info(node)?;
    let timeout = seconds(&info, "agent_burnin_gpu_timeout", 86400)?;
    within_deadline("agent_burnin_gpu_timeout", timeout)?;
    let count = seconds(&info, "agent_burnin_gpu_count", 0)?;
    if count > 0 {
        let (code, out, err) = run("gpu_burn", &["-l".into()], 120, "gpu count")?;
        if code != 0 {
            return Err(exec_error(format!(
                "gpu-burn failed with error: {}",
                err.trim()
            )));
        }
        let found = out.lines().filter(|l| l.starts_with("ID")).count() as u64;
        if found != count {
            return Err(cleaning_error(format!(
                "gpu-burn failed to find the correct number of gpus. {found} found but {count} expected."
            )));
        }
    }
    let memory = arg(&info, "agent_burnin_gpu_memory", "95%");
    let (code, _, err) = run(
        "gpu_burn",
        &["-m".into(), memory, timeout.to_string()],
        timeout + 60,
        "gpu",
    )?;
    if code != 0 {
        return Err(exec_error(format!(
            "gpu-burn failed with error: {}",
            err.trim()
        )));
    }
    json_result(&Value::Null)
}

/// `execute_bootc_install` (deploy and service step in IPA): a bootc
/// deployment runs a container runtime in the ramdisk, which this agent
/// does not carry. Refused at once instead of hanging or half-deploying.
pub fn execute_bootc_install() -> Result<Json, ManagerError> {
    Err(exec_error(
        "execute_bootc_install is not supported by this agent: bootc deployments need a \
         container runtime (podman) in the ramdisk; deploy an image with write_image instead",
    ))
}
