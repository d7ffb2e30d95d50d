//! The proof of contract 0.3.0 and the Python SDK: a firmware-update
//! manager written in Python (managers/examples/firmware-python, built by
//! tests/examples-setup.sh) fetches a firmware image by URL and SHA-256
//! from a local HTTP server into its scratch space, runs a granted flashing
//! tool (a stand-in on the simulated machine) with the image's path and a
//! declared environment variable, and reports progress.
//!
//! * `fetches_checks_and_flashes_with_progress`: in the host, every
//!   progress report and failure checked;
//! * `hot_loaded_with_its_grants_through_ironic_manual_cleaning`: under a
//!   real Ironic (see `agent_tests::ironic`, fast track as in
//!   real_ironic_manager.rs): a manual clean running `load_manager` without
//!   grants fails naming the missing grants; one with `grants` loads it into
//!   the running agent; a second manual clean runs `flash_firmware`. No
//!   ramdisk rebuild, no agent restart.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use agent_tests::host::Host;
use agent_tests::ironic::*;
use agent_tests::{managers_dir, sim_host_config, target_dir, workspace_root};
use ironic_host::{Capabilities, DispatchError, Grants, HostConfig, StepKind};
use serde_json::{json, Value};

const STEM: &str = "example-firmware-python";
const MANAGER: &str = "example_firmware_python";
const EXAMPLE: &str = "managers/examples/firmware-python";

/// The built component (tests/examples-setup.sh, once per test binary).
fn component() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(workspace_root().join("tests/examples-setup.sh"))
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "examples-setup.sh: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            target_dir().join(format!("examples/{STEM}.wasm"))
        })
        .clone()
}

fn grants_table() -> Capabilities {
    let path = workspace_root().join(EXAMPLE).join("grants.toml");
    Capabilities::parse(&std::fs::read_to_string(path).unwrap(), "grants.toml").unwrap()
}

/// A firmware image of `len` pseudo-random bytes in `dir`; its SHA-256.
fn firmware(dir: &Path, name: &str, len: usize) -> String {
    let data: Vec<u8> = (0..len).map(|i| (i * 31 % 253) as u8).collect();
    std::fs::write(dir.join(name), &data).unwrap();
    sha256_of(&dir.join(name))
}

fn install_tool(bin: &Path) {
    std::fs::copy(
        workspace_root().join(EXAMPLE).join("flash-tool"),
        bin.join("flash-tool"),
    )
    .unwrap();
}

#[test]
fn fetches_checks_and_flashes_with_progress() {
    let wasm = component();
    let machine = tempfile::tempdir().unwrap();
    let desc = ironic_sim::MachineDescription::from_toml(
        ironic_sim::DEFAULT_MACHINE,
        Path::new("default.toml"),
    )
    .unwrap();
    let sim = ironic_sim::create(&desc, machine.path()).unwrap();
    install_tool(&sim.bin_dir());
    let managers = managers_dir(&[("generic_manager", "generic")]);
    std::fs::copy(&wasm, managers.path().join(format!("{STEM}.wasm"))).unwrap();
    let mut grants = Grants::builtin();
    grants.add(STEM, &grants_table());
    let config = HostConfig {
        grants,
        ..sim_host_config(managers.path(), &sim)
    };
    let scratch = config.scratch_dir.clone();
    let host = Host::start(config).unwrap();
    assert_eq!(host.managers()[0].name, STEM, "{:?}", host.rejected());

    let served = tempfile::tempdir().unwrap();
    let sha = firmware(served.path(), "bios-2.0.1.bin", 3 << 20);
    let server = ImageServer::start(served.path());
    let flash = |args: Value| {
        let reports = Mutex::new(Vec::new());
        let out = host.execute_step(
            StepKind::Clean,
            "flash_firmware",
            &json!({"uuid": "node-1"}),
            &json!([]),
            &args,
            &|p, m| reports.lock().unwrap().push((p, m.to_string())),
        );
        (out, reports.into_inner().unwrap())
    };
    let url = server.url("bios-2.0.1.bin");

    let (out, progress) = flash(json!({"url": url, "sha256": sha, "version": "2.0.1"}));
    assert_eq!(
        out.unwrap(),
        json!({"flashed": "2.0.1", "size": 3 << 20, "sha256": sha, "tool_output": "flashed 2.0.1"})
    );
    // The tool read the downloaded image (by its scratch path) with the
    // declared environment variable.
    let flashed = std::fs::read_to_string(sim.bin_dir().join("flash-tool.flashed")).unwrap();
    assert!(flashed.starts_with(&sha), "{flashed}");
    let log = std::fs::read_to_string(sim.bin_dir().join("flash-tool.log")).unwrap();
    assert!(
        log.starts_with("mode=safe version=2.0.1 image=")
            && log.trim_end().ends_with("/firmware.bin"),
        "{log}"
    );
    let image_path = log.trim_end().rsplit("image=").next().unwrap().to_string();
    assert!(
        image_path.starts_with(&scratch.display().to_string()),
        "{image_path} not in {}",
        scratch.display()
    );
    assert!(
        !Path::new(&image_path).exists(),
        "scratch space wiped after the call"
    );
    // Progress: the manager's milestones, around the host's own download
    // reports.
    let ours: Vec<&(Option<u8>, String)> = progress
        .iter()
        .filter(|(_, m)| !m.contains("MiB") && !m.contains("bytes of"))
        .collect();
    assert_eq!(
        ours.first().map(|(p, m)| (*p, m.as_str())),
        Some((Some(0), format!("downloading {url}").as_str())),
        "{progress:?}"
    );
    assert!(
        progress.contains(&(
            Some(50),
            format!("downloaded {} bytes; flashing 2.0.1", 3 << 20)
        )),
        "{progress:?}"
    );
    assert_eq!(
        progress.last(),
        Some(&(Some(100), "firmware 2.0.1 flashed".to_string())),
        "{progress:?}"
    );

    // A wrong digest: the host refuses the download; the tool never runs.
    std::fs::remove_file(sim.bin_dir().join("flash-tool.log")).unwrap();
    let wrong = "ab".repeat(32);
    let (out, _) = flash(json!({"url": url, "sha256": wrong, "version": "2.0.1"}));
    match out {
        Err(DispatchError::Failed {
            manager, details, ..
        }) => {
            assert_eq!(manager, STEM);
            assert!(
                details.contains("checksum-mismatch") && details.contains(&url),
                "{details}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(!sim.bin_dir().join("flash-tool.log").exists());

    // Arguments checked before anything runs.
    for (args, why) in [
        (
            json!({"url": url, "version": "2.0.1"}),
            "missing required argument sha256",
        ),
        (
            json!({"url": url, "sha256": "xyz", "version": "2.0.1"}),
            "is not 64 hex digits",
        ),
        (
            json!({"url": url, "sha256": sha, "version": "2.0.1", "force": true}),
            "unknown argument force",
        ),
    ] {
        match flash(args.clone()).0 {
            Err(DispatchError::InvalidArgument { details, .. }) => {
                assert!(details.contains(why), "{args}: {details}")
            }
            other => panic!("{args}: expected invalid argument, got {other:?}"),
        }
    }
    // A URL outside the granted ones.
    let (out, _) =
        flash(json!({"url": "http://192.0.2.1/x.bin", "sha256": sha, "version": "2.0.1"}));
    let err = format!("{:?}", out.unwrap_err());
    assert!(err.contains("denied"), "{err}");
}

#[test]
fn hot_loaded_with_its_grants_through_ironic_manual_cleaning() {
    if skip() {
        return;
    }
    let wasm = component();
    let _one = one_ironic();
    let dir = tempfile::tempdir().unwrap();
    let (root, mac) = sim_machine(dir.path());
    install_tool(&root.join(".ironic-sim/bin"));
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    std::fs::copy(&wasm, served.join(format!("{STEM}.wasm"))).unwrap();
    let wasm_sha = sha256_of(&served.join(format!("{STEM}.wasm")));
    let fw_sha = firmware(&served, "bmc-7.1.bin", 1 << 20);
    let server = ImageServer::start(&served);

    let (ironic, uuid, _agent) = fast_track_node(&root, &mac);
    let load = |grants: Option<Value>| {
        let mut args = json!({"url": server.url(&format!("{STEM}.wasm")), "sha256": wasm_sha});
        if let Some(g) = grants {
            args["grants"] = g;
        }
        json!([{"interface": "deploy", "step": "load_manager", "args": args}])
    };

    // 1. Without grants: refused, naming what is missing; nothing installed.
    let node = ironic.manual_clean(&uuid, load(None));
    assert_eq!(node["provision_state"], "clean failed");
    let error = node["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("waiting for grants") && error.contains("commands.programs=flash-tool"),
        "{error}"
    );
    let managers = root.parent().unwrap().join("managers");
    assert!(!managers.join(format!("{STEM}.wasm")).exists());
    // A failed clean puts the node in maintenance: the operator takes it
    // out and back to manageable for the next manual clean.
    let (s, body) = ironic.call(
        reqwest::Method::DELETE,
        &format!("/v1/nodes/{uuid}/maintenance"),
        None,
    );
    assert_eq!(s, 202, "{body}");
    ironic.provision(&uuid, "manage");
    ironic.wait_state(&uuid, &["manageable"], Duration::from_secs(120));

    // 2. With its grants (the operator's table, as JSON): loaded.
    let grants = serde_json::to_value(grants_table()).unwrap();
    let t = Instant::now();
    let node = ironic.manual_clean(&uuid, load(Some(grants)));
    assert_eq!(
        node["provision_state"], "manageable",
        "{}",
        node["last_error"]
    );
    assert!(managers.join(format!("{STEM}.wasm")).is_file());
    assert!(
        root.join(format!(".ironic-sim/grants.d/{STEM}.toml"))
            .is_file(),
        "grants kept in the grants directory"
    );
    eprintln!(
        "manual clean load_manager (with grants): {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // 3. Its step, in a second manual clean.
    let t = Instant::now();
    let node = ironic.manual_clean(
        &uuid,
        json!([{
            "interface": "deploy",
            "step": "flash_firmware",
            "args": {"url": server.url("bmc-7.1.bin"), "sha256": fw_sha, "version": "7.1"},
        }]),
    );
    assert_eq!(
        node["provision_state"], "manageable",
        "{}",
        node["last_error"]
    );
    assert_eq!(
        node["driver_internal_info"]["hardware_manager_version"][MANAGER], "1.0",
        "{}",
        node["driver_internal_info"]["hardware_manager_version"]
    );
    eprintln!(
        "manual clean flash_firmware: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let flashed = std::fs::read_to_string(root.join(".ironic-sim/bin/flash-tool.flashed")).unwrap();
    assert!(
        flashed.starts_with(&fw_sha),
        "the tool flashed the fetched image: {flashed}"
    );
    // Ironic logged the step's result.
    let log = std::fs::read_to_string(ironic.work.join("ironic.log")).unwrap_or_default();
    assert!(
        log.lines().any(|l| l.contains("flash_firmware")
            && l.contains("'flashed': '7.1'")
            && l.contains(&fw_sha)),
        "Ironic saw flash_firmware's result (see {})",
        ironic.work.join("ironic.log").display()
    );
}
