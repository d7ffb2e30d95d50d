//! Hostile test manager. Well-behaved at load (support 2); each misbehaviour
//! is a clean step of its own, and the step listing misbehaves when the
//! node asks it to (`{"hostile_listing": ...}`), so one component serves
//! every test of tests/tests/hostile.rs and tests/tests/hostile_limits.rs.
use ironic_hardware_guest::prelude::*;
use serde_json::{json, Value};

struct Hostile;

fn args_of(args: &Json) -> Result<Value, ManagerError> {
    serde_json::from_str(args).map_err(|e| ManagerError::invalid_argument(e.to_string()))
}

fn step(name: &str) -> Step {
    Step::new(name, 0, "deploy")
}

impl HardwareManager for Hostile {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "HostileHardwareManager",
            "hostile_hardware_manager",
            "1.0",
        ))
    }

    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_MAINLINE)
    }

    fn get_steps(kind: StepKind, node: Json, _ports: Json) -> Result<Vec<Step>, ManagerError> {
        if kind != StepKind::Clean {
            return Ok(Vec::new());
        }
        let node: Value = serde_json::from_str(&node).unwrap_or(Value::Null);
        match node["hostile_listing"].as_str().unwrap_or_default() {
            // Sleeps in a host call for as long as the host lets it.
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(Vec::new())
            }
            "many" => Ok((0..200_000).map(|i| step(&format!("s{i}"))).collect()),
            "bad_name" => Ok(vec![step("ok_step"), step("bad\nname")]),
            "bad_interface" => Ok(vec![Step::new("x", 0, "teleport")]),
            "bad_priority" => Ok(vec![Step::new("x", i32::MAX, "deploy")]),
            "takeover" => Ok(vec![Step::new("erase_devices", 100, "deploy")]),
            _ => Ok(vec![step("hostile_loop")]),
        }
    }

    fn execute_step(
        _kind: StepKind,
        name: String,
        _node: Json,
        _ports: Json,
        args: Json,
    ) -> Result<Json, ManagerError> {
        let args = args_of(&args)?;
        match name.as_str() {
            "hostile_loop" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "hostile_membomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    let mut chunk = vec![0u8; 16 * 1024 * 1024];
                    chunk[0] = 1;
                    hoard.push(std::hint::black_box(chunk));
                }
            }
            "hostile_panic" => panic!("hostile manager panicked on purpose"),
            "hostile_sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                json_result(&json!("woke up"))
            }
            "hostile_escape" | "hostile_read" => {
                let path = args["path"].as_str().unwrap_or_default();
                match machine::read_file(path) {
                    Ok(bytes) => json_result(&json!({"content": String::from_utf8_lossy(&bytes)})),
                    Err(e) => Err(ManagerError::failed(format!("read-file {path}: {e:?}"))),
                }
            }
            "hostile_diskwrite" => {
                let disk = args["disk"].as_str().unwrap_or_default();
                let access = if args["access"] == "read-write" {
                    disks::Access::ReadWrite
                } else {
                    disks::Access::ReadOnly
                };
                match disks::Disk::open(disk, access) {
                    Ok(d) => {
                        if access == disks::Access::ReadWrite {
                            d.write(0, &[0xAA; 512]).map_err(|e| {
                                ManagerError::failed(format!("write {disk}: {e:?}"))
                            })?;
                        }
                        json_result(&json!({"size": d.size(), "logical": d.logical_sector_size()}))
                    }
                    Err(e) => Err(ManagerError::failed(format!("open {disk}: {e:?}"))),
                }
            }
            "hostile_open_disks" => {
                // Holds every handle it gets, then says how far it came.
                let disk = args["disk"].as_str().unwrap_or("/dev/sda");
                let mut held = Vec::new();
                let mut refused = None;
                for _ in 0..20_000 {
                    match disks::Disk::open(disk, disks::Access::ReadOnly) {
                        Ok(d) => held.push(d),
                        Err(e) => {
                            refused = Some(format!("{e:?}"));
                            break;
                        }
                    }
                }
                json_result(&json!({"opened": held.len(), "refused": refused}))
            }
            "hostile_erase_flood" => {
                let disk = args["disk"].as_str().unwrap_or("/dev/sda");
                let d = disks::Disk::open(disk, disks::Access::ReadWrite)
                    .map_err(|e| ManagerError::failed(format!("open {disk}: {e:?}")))?;
                let jobs: Vec<disks::EraseJob<'_>> = (0..10_000)
                    .map(|_| disks::EraseJob {
                        disk: &d,
                        random_passes: 0,
                        zeroes: disks::ZeroPass::Cheapest,
                    })
                    .collect();
                let results = disks::erase_many(&jobs, 10_000);
                let ok = results.iter().filter(|r| r.is_ok()).count();
                json_result(&json!({"jobs": results.len(), "ok": ok}))
            }
            "hostile_progress_flood" => {
                let mib = args["mib"].as_u64().unwrap_or(8) as usize;
                let big = "x".repeat(mib << 20);
                for round in 0..4 {
                    for dev in 0..64 {
                        progress::report_device(&format!("/dev/sd{dev}"), Some(round * 25), &big);
                    }
                    progress::report(Some(round * 25), &big);
                }
                json_result(&json!("flooded"))
            }
            "hostile_log_flood" => {
                let lines = args["lines"].as_u64().unwrap_or(1_000_000);
                for i in 0..lines {
                    log::log(log::Level::Info, &format!("flood line {i}"));
                }
                json_result(&json!({"logged": lines}))
            }
            "hostile_forge_log" => {
                log::log(
                    log::Level::Info,
                    "innocent\n2026-12-05T00:00:00Z INFO ironic_host::registry: loaded hardware manager manager=generic version=9.9",
                );
                json_result(&json!("forged"))
            }
            "hostile_huge_result" => {
                let mib = args["mib"].as_u64().unwrap_or(100) as usize;
                json_result(&json!({"blob": "y".repeat(mib << 20)}))
            }
            "hostile_run" => {
                let program = args["program"].as_str().unwrap_or_default();
                let timeout = args["timeout_ms"]
                    .as_u64()
                    .map(|t| t as u32)
                    .or(Some(5_000));
                match commands::run(program, &[], None, timeout) {
                    Ok(out) => json_result(
                        &json!({"exit": out.exit_code, "stdout": String::from_utf8_lossy(&out.stdout)}),
                    ),
                    Err(e) => Err(ManagerError::failed(format!("run {program}: {e:?}"))),
                }
            }
            // Lists itself as owning erase_devices (see "takeover") and
            // claims success without touching a disk.
            "erase_devices" => json_result(&json!("erased")),
            "hostile_spew" => match commands::run("spew", &[], None, None) {
                Ok(out) => {
                    json_result(&json!({"exit": out.exit_code, "stdout_len": out.stdout.len()}))
                }
                Err(e) => Err(ManagerError::failed(format!("run spew: {e:?}"))),
            },
            _ => Err(ManagerError::unsupported(name)),
        }
    }
}

// No embedded manifest: each test declares, in a sidecar manifest, what it
// grants (tests/src/hostile.rs).
export_manager!(Hostile);
