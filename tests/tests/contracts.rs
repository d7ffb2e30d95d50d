//! Contract versions side by side: components built against
//! `ironic:hardware@0.1.0` and `@0.2.0` (tests/managers/contract-v010 and
//! contract-v020, wit-bindgen alone) and the generic manager built with the
//! SDK against 0.3.0 load in one host and are dispatched to as one set;
//! validation names the version a component targets and rejects versions
//! the host does not serve.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agent_tests::host::Host;
use agent_tests::sim_host_config;
use agent_tests::{guest_component, workspace_root};
use ironic_host::{Capabilities, ContractVersion, Grants, HostConfig, StepKind};
use ironic_sim::{MachineDescription, SimMachine};
use serde_json::{json, Value};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

/// The default simulated machine with two small disks.
fn small_machine() -> String {
    let mut text = String::new();
    let mut in_disk = false;
    for line in ironic_sim::DEFAULT_MACHINE.lines() {
        if line.starts_with('[') {
            in_disk = line.trim() == "[[disks]]";
        }
        if !in_disk {
            text.push_str(line);
            text.push('\n');
        }
    }
    text.push_str("\n[[disks]]\nname = \"sda\"\nsize = \"32MiB\"\n");
    text.push_str("\n[[disks]]\nname = \"sdb\"\nsize = \"32MiB\"\n");
    text
}

struct Rig {
    _tmp: TempDir,
    sim: SimMachine,
    managers: PathBuf,
    config: HostConfig,
}

/// The generic manager (0.3.0) as `generic.wasm` and the 0.1.0 and 0.2.0
/// test managers as `v010.wasm` and `v020.wasm`, granted what their
/// manifests declare.
fn rig() -> Rig {
    let tmp = tempfile::tempdir().expect("temp dir");
    let desc = MachineDescription::from_toml(&small_machine(), Path::new("contracts.toml"))
        .expect("machine description");
    let sim = ironic_sim::create(&desc, &tmp.path().join("root")).expect("simulated machine");
    let managers = tmp.path().join("managers");
    fs::create_dir_all(&managers).expect("managers dir");
    fs::copy(
        guest_component("generic_manager"),
        managers.join("generic.wasm"),
    )
    .expect("copy generic");
    for (krate, file) in [
        ("test_manager_contract_v010", "v010.wasm"),
        ("test_manager_contract_v020", "v020.wasm"),
    ] {
        fs::copy(guest_component(krate), managers.join(file)).expect("copy a test manager");
    }
    let mut grants = Grants::builtin();
    for (name, manifest) in [
        ("generic", "managers/generic/manifest.toml"),
        ("v010", "tests/managers/contract-v010/manifest.toml"),
        ("v020", "tests/managers/contract-v020/manifest.toml"),
    ] {
        let text = fs::read_to_string(workspace_root().join(manifest)).expect("manifest");
        grants.grant(
            name,
            Capabilities::parse(&text, manifest).expect("manifest parses"),
        );
    }
    let config = HostConfig {
        grants,
        ..sim_host_config(&managers, &sim)
    };
    Rig {
        _tmp: tmp,
        sim,
        managers,
        config,
    }
}

fn run(host: &Host, step: &str, node: Value, args: Value) -> (Result<Value, String>, Vec<String>) {
    let messages = Mutex::new(Vec::new());
    let result = host
        .execute_step(StepKind::Clean, step, &node, &json!([]), &args, &|_, m| {
            messages.lock().expect("lock").push(m.to_string());
        })
        .map_err(|e| e.to_string());
    (result, messages.into_inner().expect("lock"))
}

fn fill(path: &Path, size: u64) {
    fs::write(path, vec![0x77u8; size as usize]).expect("fill disk");
}

fn all_zero(path: &Path) -> bool {
    fs::read(path).expect("read disk").iter().all(|b| *b == 0)
}

#[test]
fn components_of_every_contract_load_side_by_side_and_all_dispatch() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    let loaded: Vec<(String, ContractVersion, u32)> = host
        .managers()
        .into_iter()
        .map(|m| (m.name, m.contract, m.support))
        .collect();
    assert_eq!(
        loaded,
        vec![
            ("v010".to_string(), ContractVersion::V0_1_0, 2),
            ("v020".to_string(), ContractVersion::V0_2_0, 2),
            ("generic".to_string(), ContractVersion::V0_3_0, 1),
        ]
    );
    assert!(host.rejected().is_empty(), "{:?}", host.rejected());

    // Inventory: the 0.1.0 manager answers the vendor, the 0.2.0 one the rest.
    let inventory = host.inventory(true).expect("inventory");
    assert_eq!(
        inventory["system_vendor"],
        json!({"product_name": "Contract 0.1.0 Server", "serial_number": "V010",
               "manufacturer": "Old Contract Inc.",
               "firmware": {"vendor": "Old Contract Inc.", "version": "0.1.0",
                            "build_date": "2024-01-01"}})
    );
    let disks: Vec<&str> = inventory["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(disks, ["/dev/sda", "/dev/sdb"], "from the generic manager");
    assert!(inventory["cpu"]["count"].as_u64().unwrap_or(0) > 0);

    // Steps of both, converted to the same dicts.
    let steps = host
        .get_steps(StepKind::Clean, &json!({}), &json!([]))
        .expect("clean steps");
    let v010 = steps
        .iter()
        .find(|m| m.id == "ContractV010HardwareManager")
        .expect("0.1.0 manager lists steps");
    assert_eq!(
        v010.steps,
        vec![
            json!({"step": "v010_zero_disk", "priority": 0, "interface": "deploy",
                     "reboot_requested": false, "abortable": true,
                     "argsinfo": {"disk": {"description": "device to zero the first MiB of",
                                           "required": true}}})
        ]
    );
    assert!(steps.iter().any(|m| m.id == "GenericHardwareManager"
        && m.steps.iter().any(|s| s["step"] == "erase_devices")));
    let versions = host.versions().expect("versions");
    assert_eq!(
        versions
            .get("contract_v010_hardware_manager")
            .map(String::as_str),
        Some("0.1")
    );

    // A 0.1.0 step through the 0.1.0 imports (disks, machine, progress).
    let sda = rig.sim.disk_path("sda");
    fill(&sda, 32 * MIB);
    let (result, progress) = run(
        &host,
        "v010_zero_disk",
        json!({}),
        json!({"disk": "/dev/sda"}),
    );
    assert_eq!(
        result,
        Ok(json!({"zeroed": true, "bytes": MIB, "vendor": "Dell Inc."}))
    );
    let data = fs::read(&sda).expect("read sda");
    assert!(
        data[..MIB as usize].iter().all(|b| *b == 0),
        "first MiB zeroed"
    );
    assert!(data[MIB as usize..].iter().all(|b| *b == 0x77), "rest kept");
    assert!(
        progress.iter().any(|m| m == "/dev/sda: zeroed"),
        "{progress:?}"
    );

    // A 0.2.0 step (erase-many through the 0.2.0 imports).
    fill(&sda, 32 * MIB);
    fill(&rig.sim.disk_path("sdb"), 32 * MIB);
    let (result, progress) = run(
        &host,
        "v020_erase",
        json!({}),
        json!({"disks": ["/dev/sda", "/dev/sdb"]}),
    );
    assert_eq!(result, Ok(json!({"/dev/sda": null, "/dev/sdb": null})));
    assert!(
        all_zero(&sda) && all_zero(&rig.sim.disk_path("sdb")),
        "zeroed by the 0.2.0 erase-many"
    );
    assert!(
        progress.iter().any(|m| m.starts_with("/dev/sda")),
        "per-device progress through 0.2.0: {progress:?}"
    );

    // A 0.3.0 step (erase-many) in the same host.
    fill(&sda, 32 * MIB);
    fill(&rig.sim.disk_path("sdb"), 32 * MIB);
    let node = json!({"driver_internal_info": {"agent_enable_ata_secure_erase": false,
                                               "disk_erasure_concurrency": 2}});
    let (result, _) = run(&host, "erase_devices", node, json!({}));
    assert_eq!(result, Ok(json!({"/dev/sda": null, "/dev/sdb": null})));
    assert!(all_zero(&sda) && all_zero(&rig.sim.disk_path("sdb")));
}

/// Replace every occurrence of `from` with `to` (same length).
fn patched(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    assert_eq!(from.len(), to.len());
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i + from.len() <= out.len() {
        if &out[i..i + from.len()] == from {
            out[i..i + from.len()].copy_from_slice(to);
            i += from.len();
        } else {
            i += 1;
        }
    }
    out
}

#[test]
fn validation_names_the_contract_version_and_rejects_unknown_ones() {
    let rig = rig();
    for (file, version) in [
        ("v010.wasm", ContractVersion::V0_1_0),
        ("v020.wasm", ContractVersion::V0_2_0),
        ("generic.wasm", ContractVersion::V0_3_0),
    ] {
        let v =
            agent_tests::host::validate(&rig.config, &rig.managers.join(file)).expect("validate");
        assert_eq!(v.verdict, Ok(()), "{file}");
        assert_eq!(v.contract, Some(version), "{file}");
    }

    // The same 0.1.0 component, renamed to claim a version nobody serves.
    let bytes = fs::read(rig.managers.join("v010.wasm")).expect("read");
    let future = patched(
        &bytes,
        b"ironic:hardware/manager@0.1.0",
        b"ironic:hardware/manager@0.9.0",
    );
    assert_ne!(bytes, future, "the export name was found and changed");
    let file = rig.managers.join("future.wasm");
    fs::write(&file, &future).expect("write");
    let mut config = rig.config.clone();
    let text =
        fs::read_to_string(workspace_root().join("tests/managers/contract-v010/manifest.toml"))
            .expect("manifest");
    config.grants.grant(
        "future",
        Capabilities::parse(&text, "manifest.toml").expect("manifest parses"),
    );
    let v = agent_tests::host::validate(&config, &file).expect("validate");
    assert_eq!(v.contract, None);
    let reason = v.verdict.expect_err("unknown version rejected");
    assert!(
        reason.contains("future") && reason.contains("0.9.0") && reason.contains("0.1.0, 0.2.0"),
        "{reason}"
    );

    // A host started with it loads the others and reports it.
    let host = Host::start(config).expect("host starts");
    assert_eq!(host.managers().len(), 3);
    let rejected = host.rejected();
    assert!(
        rejected
            .iter()
            .any(|r| r.file == file && r.reason.contains("0.9.0")),
        "{rejected:?}"
    );
}
