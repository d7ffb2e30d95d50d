//! Command semantics: sync/async, busy, wait, versions, args, progress,
//! failures (IPA `extensions/base.py` `ExecuteCommandMixin.execute_command`,
//! `errors.py`, `hardware.py` `check_versions`, the `get_*_steps` commands).

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::*;

async fn clean_steps(a: &TestAgent) -> Value {
    let r = a
        .post_cmd(
            "clean.get_clean_steps",
            json!({"node": node(), "ports": ports()}),
            true,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_result_shape(&v);
    assert_eq!(v["command_name"], "get_clean_steps");
    assert_eq!(v["command_status"], "SUCCEEDED");
    v["command_result"].clone()
}

#[tokio::test]
async fn get_steps_dedups_and_reports_versions() {
    let a = agent();
    let res = clean_steps(&a).await;
    assert_eq!(
        res["hardware_manager_version"],
        json!({"generic_hardware_manager": "1.2", "vendor_hardware_manager": "1.0"})
    );
    let steps = res["clean_steps"].as_object().unwrap();
    // erase_devices: vendor (support 2) beats generic despite lower priority.
    let vendor: Vec<&str> = steps["VendorHardwareManager"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(vendor, ["update_firmware", "erase_devices"]);
    let generic: Vec<&str> = steps["GenericHardwareManager"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        generic,
        [
            "erase_devices_metadata",
            "erase_devices_express",
            "slow_step",
            "fail_step"
        ]
    );
    for s in steps.values().flat_map(|v| v.as_array().unwrap()) {
        for key in ["step", "priority", "interface"] {
            assert!(s.get(key).is_some(), "{s} lacks {key}");
        }
    }
    for (cmd, key) in [
        ("deploy.get_deploy_steps", "deploy_steps"),
        ("service.get_service_steps", "service_steps"),
    ] {
        let r = a
            .post_cmd(cmd, json!({"node": node(), "ports": ports()}), true)
            .await
            .json();
        assert_eq!(r["command_status"], "SUCCEEDED");
        assert!(r["command_result"][key].is_object(), "{r}");
        assert!(r["command_result"]["hardware_manager_version"].is_object());
    }
}

#[tokio::test]
async fn async_step_runs_then_succeeds_with_echoed_step() {
    let a = agent();
    let res = clean_steps(&a).await;
    let step = json!({"step": "erase_devices_metadata", "priority": 99, "interface": "deploy", "reboot_requested": false, "abortable": true, "requires_ramdisk": true});
    let r = a.post_cmd("clean.execute_clean_step", json!({"step": step, "node": node(), "ports": ports(), "clean_version": res["hardware_manager_version"]}), false).await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_result_shape(&v);
    assert_eq!(v["command_name"], "execute_clean_step");
    assert_eq!(v["command_status"], "RUNNING");
    assert_eq!(v["command_error"], Value::Null);
    assert_eq!(v["command_result"], Value::Null);
    let last = a.settle().await;
    assert_result_shape(&last);
    assert_eq!(last["id"], v["id"]);
    assert_eq!(last["command_status"], "SUCCEEDED");
    assert_eq!(
        last["command_result"],
        json!({"clean_result": null, "clean_step": step})
    );
    // Oldest first.
    let list = a.list().await;
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["command_name"], "get_clean_steps");
}

#[tokio::test]
async fn busy_409_while_async_runs_then_result_and_wait() {
    let a = agent();
    let step = json!({"step": "slow_step", "priority": 0, "interface": "deploy"});
    let r = a
        .post_cmd(
            "clean.execute_clean_step",
            json!({"step": step, "node": node(), "ports": ports()}),
            false,
        )
        .await;
    let v = r.json();
    assert_eq!(v["command_status"], "RUNNING");
    let id = v["id"].as_str().unwrap().to_string();

    // Progress reported by the manager shows while RUNNING.
    let mut seen = Value::Null;
    for _ in 0..200 {
        let list = a.list().await;
        if let Some(p) = list.last().and_then(|l| l.get("command_progress")) {
            seen = p.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(seen, json!({"percent": 42, "message": "erasing /dev/sda"}));

    for name in [
        "standby.get_partition_uuids",
        "clean.get_clean_steps",
        "system.lockdown",
    ] {
        a.post_cmd(name, json!({"node": node(), "ports": ports()}), false)
            .await
            .assert_fault(409, "Agent is busy: executing command execute_clean_step");
    }
    // Nothing recorded by the rejected POSTs.
    assert_eq!(a.list().await.len(), 1);

    // GET {id}?wait=true blocks until the step finishes.
    let waiter = {
        let router = a.router.clone();
        let uri = format!("/v1/commands/{id}?wait=true&agent_token={TOKEN}");
        tokio::spawn(async move {
            use tower::ServiceExt;
            let req = axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap();
            let resp = router.oneshot(req).await.unwrap();
            let body = http_body_util::BodyExt::collect(resp.into_body())
                .await
                .unwrap()
                .to_bytes();
            serde_json::from_slice::<Value>(&body).unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    let finished = a.state.engine().finished_notify();
    let notified = finished.notified();
    a.managers.gate.open();
    let done = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), notified)
        .await
        .expect("finished hook fired");
    assert_result_shape(&done);
    assert_eq!(done["command_status"], "SUCCEEDED");
    assert_eq!(
        done["command_result"],
        json!({"clean_result": "done", "clean_step": step})
    );
    // Agent no longer busy.
    assert_eq!(
        a.post_cmd("standby.sync", json!({}), true).await.json()["command_status"],
        "SUCCEEDED"
    );
}

#[tokio::test]
async fn post_wait_true_returns_terminal_result() {
    let a = agent();
    let step = json!({"step": "erase_devices", "priority": 10, "interface": "deploy"});
    let r = a
        .post_cmd(
            "clean.execute_clean_step",
            json!({"step": step, "node": node(), "ports": ports()}),
            true,
        )
        .await;
    let v = r.json();
    assert_result_shape(&v);
    assert_eq!(v["command_status"], "SUCCEEDED");
    assert_eq!(
        v["command_result"]["clean_result"],
        json!({"/dev/loop0": null})
    );
}

#[tokio::test]
async fn version_mismatch_after_manager_versions_change() {
    let a = agent();
    let res = clean_steps(&a).await;
    let old = res["hardware_manager_version"].clone();
    a.managers
        .versions
        .lock()
        .unwrap()
        .insert("generic_hardware_manager".into(), "1.3".into());
    let step = json!({"step": "erase_devices_metadata", "priority": 99, "interface": "deploy"});
    let r = a
        .post_cmd(
            "clean.execute_clean_step",
            json!({"step": step, "node": node(), "ports": ports(), "clean_version": old}),
            false,
        )
        .await;
    assert_eq!(r.json()["command_status"], "RUNNING");
    let last = a.settle().await;
    assert_result_shape(&last);
    assert_eq!(last["command_status"], "CLEAN_VERSION_MISMATCH");
    assert_eq!(last["command_result"], Value::Null);
    assert_eq!(
        last["command_error"],
        json!({
        "type": "VersionMismatch", "code": 409,
        "message": "Hardware managers version mismatch, reload agent with correct version",
        "details": "Current versions: {'generic_hardware_manager': '1.3', 'vendor_hardware_manager': '1.0'}, versions used by ironic: {'generic_hardware_manager': '1.2', 'vendor_hardware_manager': '1.0'}"})
    );
    // The manager was never called; same status for deploy steps.
    assert!(a.managers.calls.lock().unwrap().is_empty());
    let r = a.post_cmd("deploy.execute_deploy_step", json!({"step": step, "node": node(), "ports": ports(), "deploy_version": {"generic_hardware_manager": "1.2"}}), true).await;
    assert_eq!(r.json()["command_status"], "CLEAN_VERSION_MISMATCH");
    // Re-listing gives the new versions, and executing with them works.
    let res = clean_steps(&a).await;
    let r = a.post_cmd("clean.execute_clean_step", json!({"step": step, "node": node(), "ports": ports(), "clean_version": res["hardware_manager_version"]}), true).await;
    assert_eq!(r.json()["command_status"], "SUCCEEDED");
}

#[tokio::test]
async fn step_with_args_from_second_manager() {
    let a = agent();
    let step = json!({"step": "update_firmware", "priority": 0, "interface": "deploy", "args": {"images": [{"url": "http://fw/x.bin"}]}});
    let r = a.post_cmd("service.execute_service_step", json!({"step": step, "node": node(), "ports": ports(), "service_version": null, "extra_kwarg": 7}), true).await;
    let v = r.json();
    assert_result_shape(&v);
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let expected_args = json!({"extra_kwarg": 7, "images": [{"url": "http://fw/x.bin"}]});
    assert_eq!(
        v["command_result"],
        json!({
        "service_result": {"flashed": [{"url": "http://fw/x.bin"}], "args": expected_args},
        "service_step": step})
    );
    let calls = a.managers.calls.lock().unwrap();
    assert_eq!(calls[0].name, "update_firmware");
    assert_eq!(calls[0].args, expected_args);
    assert_eq!(calls[0].node_uuid, node()["uuid"]);
}

#[tokio::test]
async fn step_failures_keep_ipa_error_objects() {
    let a = agent();
    let r = a.post_cmd("clean.execute_clean_step", json!({"step": {"step": "fail_step", "interface": "deploy", "priority": 0}, "node": node(), "ports": ports()}), true).await;
    let v = r.json();
    assert_result_shape(&v);
    assert_eq!(v["command_status"], "FAILED");
    assert_eq!(
        v["command_error"],
        json!({"type": "BlockDeviceEraseError", "code": 500, "message": "Error erasing block device", "details": "disk on fire"})
    );
    assert_eq!(v["command_result"], Value::Null);

    let r = a.post_cmd("clean.execute_clean_step", json!({"step": {"step": "no_such_step", "interface": "deploy", "priority": 0}, "node": node(), "ports": ports()}), true).await;
    assert_eq!(
        r.json()["command_error"]["type"],
        "HardwareManagerMethodNotFound"
    );
    assert_eq!(
        r.json()["command_error"]["details"],
        "Could not find method: no_such_step"
    );

    let r = a
        .post_cmd(
            "clean.execute_clean_step",
            json!({"step": {"interface": "deploy"}, "node": node(), "ports": ports()}),
            true,
        )
        .await;
    assert_eq!(r.json()["command_status"], "FAILED");
    assert_eq!(
        r.json()["command_error"],
        json!({"type": "CommandExecutionError", "code": 500, "message": "Command execution failed",
        "details": "Malformed clean_step, no \"step\" key: {'interface': 'deploy'}"})
    );
}

#[tokio::test]
async fn bad_parameters_fail_cleanly_and_the_list_stays_readable() {
    let a = agent();
    // Sync command with an unexpected keyword: recorded FAILED with TypeError.
    let r = a
        .post_cmd("standby.get_partition_uuids", json!({"bogus": 1}), false)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_result_shape(&v);
    assert_eq!(v["command_status"], "FAILED");
    assert_eq!(
        v["command_error"],
        json!({"type": "TypeError", "code": 500, "message": "Command execution failed",
        "details": "StandbyExtension.get_partition_uuids() got an unexpected keyword argument 'bogus'"})
    );
    // Sync command missing a required argument.
    let v = a
        .post_cmd("clean.get_clean_steps", json!({"node": node()}), true)
        .await
        .json();
    assert_eq!(v["command_error"]["type"], "TypeError");
    assert_eq!(
        v["command_error"]["details"],
        "CleanExtension.get_clean_steps() missing 1 required positional argument: 'ports'"
    );
    // Async command missing arguments: CommandExecutionError, as IPA.
    let v = a
        .post_cmd("clean.execute_clean_step", json!({"node": node()}), true)
        .await
        .json();
    assert_eq!(v["command_status"], "FAILED");
    assert_eq!(v["command_error"]["type"], "CommandExecutionError");
    assert_eq!(v["command_error"]["details"], "CleanExtension.execute_clean_step() missing 2 required positional arguments: 'step' and 'ports'");
    // The list is still served (IPA would answer 500 forever here).
    let list = a.list().await;
    assert_eq!(list.len(), 3);
    list.iter().for_each(assert_result_shape);
}

#[tokio::test]
async fn standby_commands_and_recorded_actions() {
    let a = agent();
    let v = a
        .post_cmd("standby.get_partition_uuids", json!({}), true)
        .await
        .json();
    assert_eq!(v["command_result"], json!({}));
    let v = a.post_cmd("standby.sync", json!({}), true).await.json();
    assert_eq!(
        (
            v["command_name"].as_str(),
            v["command_status"].as_str(),
            &v["command_result"]
        ),
        (Some("sync"), Some("SUCCEEDED"), &Value::Null)
    );
    // write_image reports partition UUIDs → get_partition_uuids answers them.
    let step = json!({"interface": "deploy", "step": "write_image", "args": {"image_info": {"id": "lab-disk.img"}, "configdrive": null}});
    let v = a
        .post_cmd(
            "deploy.execute_deploy_step",
            json!({"step": step, "node": node(), "ports": ports(), "deploy_version": null}),
            true,
        )
        .await
        .json();
    assert_eq!(v["command_status"], "SUCCEEDED");
    assert_eq!(v["command_result"]["deploy_step"], step);
    let v = a
        .post_cmd("standby.get_partition_uuids", json!({}), true)
        .await
        .json();
    assert_eq!(v["command_result"], json!({"root uuid": "0x05197912"}));

    let v = a
        .post_cmd("standby.power_off", json!({}), false)
        .await
        .json();
    assert_eq!(v["command_status"], "RUNNING");
    assert_eq!(a.settle().await["command_status"], "SUCCEEDED");
    let v = a
        .post_cmd("standby.run_image", json!({}), true)
        .await
        .json();
    assert_eq!(v["command_name"], "run_image");
    let actions: Vec<String> = a
        .actions()
        .iter()
        .map(|l| l["action"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(actions, ["sync", "sync", "power_off", "sync", "reboot"]);
}

#[tokio::test]
async fn collect_system_logs_is_a_base64_gzip_tar() {
    use base64::Engine as _;
    use std::io::Read;
    let a = agent();
    let v = a
        .post_cmd("log.collect_system_logs", json!({}), true)
        .await
        .json();
    assert_eq!(v["command_status"], "SUCCEEDED");
    let blob = base64::engine::general_purpose::STANDARD
        .decode(v["command_result"]["system_logs"].as_str().unwrap())
        .unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(blob.as_slice()));
    let mut files = std::collections::BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let mut s = String::new();
        e.read_to_string(&mut s).unwrap();
        files.insert(e.path().unwrap().display().to_string(), s);
    }
    assert_eq!(files["proc/cmdline"], "BOOT_IMAGE=vmlinuz ipa-debug=1\n");
    assert_eq!(files["var/log/messages"], "agent booted\n");
    assert!(files.contains_key("proc/meminfo"));
}

#[tokio::test]
async fn poll_commands() {
    let a = agent();
    let v = a
        .post_cmd("poll.get_hardware_info", json!({}), true)
        .await
        .json();
    assert_eq!(v["command_status"], "SUCCEEDED");
    assert_eq!(v["command_result"]["cpu"]["count"], 2);
    a.post_cmd("poll.set_node_info", json!({"node_info": {"node": node()}}), true).await
        .assert_fault(400, "Invalid command: Node lookup data can only be set when the Ironic Python Agent is running in standalone mode.");

    let a = agent_with(|c| c.standalone = true);
    let mut rx = a.state.node_info();
    let v = a
        .post_cmd(
            "poll.set_node_info",
            json!({"node_info": {"node": node(), "config": {}}}),
            true,
        )
        .await
        .json();
    assert_eq!(v["command_status"], "SUCCEEDED");
    assert!(rx.has_changed().unwrap());
    assert_eq!(rx.borrow_and_update().as_ref().unwrap()["node"], node());
    assert_eq!(a.state.cached_node().unwrap(), node());
}
