//! Dispatch across managers: the `override` test manager (support 3)
//! overrides `get-system-vendor-info`; the generic manager (support 1)
//! answers the rest of the inventory. Every-manager calls merge both.

use std::sync::Mutex;

use agent_tests::host::Host;
use agent_tests::sim_host_config;
use agent_tests::{managers_dir, shared_cwasm_cache, workspace_root};
use ironic_host::{DispatchError, HostConfig, StepKind};
use serde_json::{json, Value};

struct Fixture {
    host: Host,
    _machine: tempfile::TempDir,
    _managers: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let managers = managers_dir(&[
        ("generic_manager", "generic"),
        ("test_manager_override", "override"),
    ]);
    let machine = tempfile::tempdir().expect("machine dir");
    let desc_path = workspace_root().join("tests/machines/nvme-uefi.toml");
    let desc = ironic_sim::MachineDescription::from_file(&desc_path).expect("machine description");
    let sim = ironic_sim::create(&desc, machine.path()).expect("simulated machine");
    let host = Host::start(sim_host_config(managers.path(), &sim)).expect("host starts");
    Fixture {
        host,
        _machine: machine,
        _managers: managers,
    }
}

#[test]
fn managers_are_in_support_order() {
    let f = fixture();
    let ids: Vec<(String, u32, String)> = f
        .host
        .managers()
        .into_iter()
        .map(|m| (m.id, m.support, m.name))
        .collect();
    assert_eq!(
        ids,
        vec![
            (
                "OverrideHardwareManager".to_string(),
                3,
                "override".to_string()
            ),
            (
                "GenericHardwareManager".to_string(),
                1,
                "generic".to_string()
            ),
        ]
    );
    assert!(f.host.rejected().is_empty(), "{:?}", f.host.rejected());
}

#[test]
fn versions_and_steps_merge_every_manager() {
    let f = fixture();
    let versions = f.host.versions().expect("versions");
    assert_eq!(
        versions
            .get("override_hardware_manager")
            .map(String::as_str),
        Some("1.0")
    );
    assert_eq!(
        versions.get("generic_hardware_manager").map(String::as_str),
        Some("1.2")
    );
    assert_eq!(versions.len(), 2);

    let steps = f
        .host
        .get_steps(StepKind::Clean, &json!({"uuid": "n1"}), &json!([]))
        .expect("clean steps");
    let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["OverrideHardwareManager", "GenericHardwareManager"]);
    assert_eq!(steps[0].support, 3);
    assert_eq!(
        steps[0].steps,
        vec![json!({
            "step": "vendor_flash",
            "priority": 0,
            "interface": "management",
            "reboot_requested": false,
            "abortable": false,
            "argsinfo": {"version": {"description": "firmware version to flash", "required": true}},
        })]
    );
    assert!(
        steps[1]
            .steps
            .iter()
            .any(|s| s["step"] == "erase_devices_metadata"),
        "generic's steps are merged: {:?}",
        steps[1].steps
    );
    // Override offers no deploy steps; generic's still come through.
    let deploy = f
        .host
        .get_steps(StepKind::Deploy, &json!({}), &json!([]))
        .expect("deploy steps");
    assert!(deploy
        .iter()
        .any(|m| m.id == "OverrideHardwareManager" && m.steps.is_empty()));
}

#[test]
fn execute_step_reaches_the_manager_that_offers_it() {
    let f = fixture();
    let reports = Mutex::new(Vec::new());
    let sink = |percent: Option<u8>, message: &str| {
        if let Ok(mut r) = reports.lock() {
            r.push((percent, message.to_string()));
        }
    };
    let out = f
        .host
        .execute_step(
            StepKind::Clean,
            "vendor_flash",
            &json!({}),
            &json!([]),
            &json!({"version": "3.1"}),
            &sink,
        )
        .expect("vendor_flash runs");
    assert_eq!(out, json!({"flashed": true, "args": {"version": "3.1"}}));
    assert_eq!(
        reports.lock().map(|r| r.clone()).unwrap_or_default(),
        vec![(Some(50), "flashing".to_string())]
    );

    let err = f
        .host
        .execute_step(
            StepKind::Clean,
            "vendor_flash",
            &json!({}),
            &json!([]),
            &json!({}),
            &|_, _| {},
        )
        .expect_err("missing argument");
    assert!(
        matches!(&err, DispatchError::InvalidArgument { manager, call, .. } if manager == "override" && call == "execute-step clean vendor_flash"),
        "{err:?}"
    );

    let err = f
        .host
        .execute_step(
            StepKind::Clean,
            "no_such_step",
            &json!({}),
            &json!([]),
            &json!({}),
            &|_, _| {},
        )
        .expect_err("nobody offers it");
    // The error names the steps that do exist, so a typo is obvious.
    assert!(
        matches!(&err, DispatchError::StepNotHandled { call, step, hint }
            if call == "execute-step clean no_such_step" && step == "no_such_step"
            && hint.contains("the clean steps are: ")
            && hint.contains(" erase_devices,")
            && hint.contains("vendor_flash")),
        "{err:?}"
    );
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .map(|m| m.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

#[test]
fn inventory_takes_the_override_first_and_the_rest_from_generic() {
    let f = fixture();
    let inv = f.host.inventory(false).expect("inventory");
    // No BMC on this machine: bmc_mac is absent.
    assert_eq!(
        keys(&inv),
        [
            "interfaces",
            "cpu",
            "disks",
            "memory",
            "bmc_address",
            "bmc_v6address",
            "system_vendor",
            "boot",
            "hostname"
        ]
    );
    // From override (support 3)...
    assert_eq!(inv["system_vendor"]["manufacturer"], "Override Corp");
    assert_eq!(inv["system_vendor"]["firmware"]["version"], "9.9.9");
    // ...everything else from generic, reading the simulated machine.
    assert_eq!(inv["cpu"]["model_name"], "AMD EPYC 7313P 16-Core Processor");
    assert_eq!(inv["boot"]["current_boot_mode"], "uefi");
    let disks: Vec<&str> = inv["disks"]
        .as_array()
        .map(|d| d.iter().filter_map(|x| x["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(disks.contains(&"/dev/nvme0n1"), "{disks:?}");
    assert_eq!(inv["hostname"], "sim-nvme");

    let skipped = f
        .host
        .inventory(true)
        .expect("inventory without BMC detection");
    assert_eq!(skipped["bmc_address"], Value::Null);
    assert_eq!(skipped["bmc_v6address"], Value::Null);
    assert!(skipped.get("bmc_mac").is_none());
}

#[test]
fn a_call_nobody_answers_is_named_in_the_error() {
    // Only override: inventory fails (no manager lists interfaces), naming the call.
    let managers = managers_dir(&[("test_manager_override", "override")]);
    let root = tempfile::tempdir().expect("root");
    let host = Host::start(HostConfig {
        cache_dir: Some(shared_cwasm_cache()),
        ..HostConfig::new(managers.path(), root.path())
    })
    .expect("host");
    let err = host
        .inventory(true)
        .expect_err("no manager lists interfaces");
    assert!(
        matches!(&err, DispatchError::NoManager { call } if call == "list-network-interfaces"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "no hardware manager handles list-network-interfaces"
    );
    assert!(host.os_install_device(None).is_err());
}
