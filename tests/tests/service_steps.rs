//! The step listings Ironic validates against (IPA 13's
//! `get_clean_steps`, `get_deploy_steps`, `get_service_steps` of the
//! generic manager plus the agent's native steps), and `inject_files`'
//! argument checks, through the agent's API on a simulated machine.
//! Writing files into real partitions: `tests/tests/storage_vm.rs`.

use std::collections::BTreeMap;

use agent_tests::sim_agent::SimAgent;
use ironic_sim::BootMode;
use serde_json::{json, Value};

/// `{step name: step}` of a `get_<kind>_steps` answer.
fn steps(agent: &SimAgent, kind: &str) -> BTreeMap<String, Value> {
    let v = agent.run(
        &format!("{kind}.get_{kind}_steps"),
        json!({"node": {"uuid": "n1"}, "ports": []}),
    );
    let by_manager = v["command_result"][format!("{kind}_steps")]
        .as_object()
        .unwrap_or_else(|| panic!("{kind} steps: {v}"))
        .clone();
    by_manager
        .values()
        .flat_map(|l| l.as_array().cloned().unwrap_or_default())
        .map(|s| (s["step"].as_str().unwrap_or_default().to_string(), s))
        .collect()
}

#[test]
fn listings_match_ipa_13() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = SimAgent::start(
        dir.path(),
        BootMode::Bios,
        "[DEFAULT]\ninject_files_priority = 42\n",
    );

    let service = steps(&agent, "service");
    let names: Vec<&str> = service.keys().map(String::as_str).collect();
    for want in [
        "apply_configuration",
        "burnin_cpu",
        "burnin_gpu",
        "burnin_memory",
        "burnin_network",
        "create_configuration",
        "delete_configuration",
        "execute_bootc_install",
        "inject_files",
        "write_image",
    ] {
        assert!(names.contains(&want), "service step {want} in {names:?}");
    }
    for absent in ["burnin_disk", "erase_devices", "erase_devices_metadata"] {
        assert!(
            !names.contains(&absent),
            "{absent} is no service step: {names:?}"
        );
    }
    assert_eq!(service["delete_configuration"]["interface"], "raid");
    assert_eq!(service["delete_configuration"]["abortable"], true);
    assert_eq!(service["inject_files"]["priority"], 42);
    assert_eq!(
        service["apply_configuration"]["argsinfo"]["raid_config"]["required"],
        true
    );

    let deploy = steps(&agent, "deploy");
    assert_eq!(
        deploy["inject_files"]["priority"], 42,
        "inject_files_priority"
    );
    assert_eq!(deploy["inject_files"]["interface"], "deploy");
    assert_eq!(
        deploy["inject_files"]["argsinfo"]["files"]["required"],
        false
    );
    assert!(deploy["inject_files"]["argsinfo"]["verify_ca"].is_object());
    assert!(
        deploy["clean_uefi_nvram"]["argsinfo"]["match_patterns"]["description"]
            .as_str()
            .is_some_and(|d| d.contains("[\"^HD\\(\", \"shim.*\\.efi\", \"grub.*\\.efi\"]"))
    );
    for name in [
        "write_image",
        "apply_configuration",
        "erase_devices_metadata",
        "execute_bootc_install",
    ] {
        assert!(deploy.contains_key(name), "deploy step {name}");
        assert!(
            deploy[name].get("abortable").is_none(),
            "deploy steps carry no abortable"
        );
    }

    let clean = steps(&agent, "clean");
    for name in [
        "erase_devices",
        "erase_devices_metadata",
        "erase_devices_express",
        "erase_pstore",
        "clean_uefi_nvram",
        "delete_configuration",
        "create_configuration",
        "burnin_cpu",
        "burnin_gpu",
        "burnin_disk",
        "burnin_memory",
        "burnin_network",
    ] {
        assert_eq!(clean[name]["abortable"], true, "clean step {name}");
    }
    assert_eq!(clean["create_configuration"]["priority"], 0);
}

#[test]
fn inject_files_refuses_what_would_leave_the_partition() {
    let dir = tempfile::tempdir().expect("tmp");
    let agent = SimAgent::start(dir.path(), BootMode::Bios, "");
    let inject = |files: Value, node: Value| {
        agent.run(
            "deploy.execute_deploy_step",
            json!({"step": {"interface": "deploy", "step": "inject_files", "args": {"files": files}},
                   "node": node, "ports": []}),
        )
    };
    let node = json!({"uuid": "n1", "properties": {}});
    let v = inject(
        json!([{"path": "/etc/../../../etc/shadow", "partition": 1, "content": "eA=="}]),
        node.clone(),
    );
    assert_eq!(
        v["command_error"]["type"], "InvalidCommandParamsError",
        "{v}"
    );
    assert!(
        v["command_error"]["details"]
            .as_str()
            .unwrap_or_default()
            .contains("\"..\""),
        "{v}"
    );
    // Node properties are validated with the arguments (IPA merges them).
    let v = inject(
        json!([]),
        json!({"uuid": "n1", "properties": {"inject_files": [{"path": "/motd"}]}}),
    );
    assert!(
        v["command_error"]["details"]
            .as_str()
            .unwrap_or_default()
            .contains("requires \"partition\""),
        "{v}"
    );
    // Nothing to inject: success, nothing touched.
    let v = inject(json!([]), node.clone());
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    // A label no partition has is named in the error.
    let v = inject(
        json!([{"path": "/etc/motd", "partition": "LABEL=nosuch", "content": "eA=="}]),
        node,
    );
    assert_eq!(v["command_error"]["type"], "CommandExecutionError", "{v}");
    assert!(
        v["command_error"]["details"]
            .as_str()
            .unwrap_or_default()
            .contains("nosuch"),
        "{v}"
    );
}
