//! The agent binary's API, as a process: a simulated machine, the generic
//! manager, `--standalone` (no Ironic). Checks what Ironic relies on over a
//! real socket: status, token, step listing, recorded power actions, and that
//! lockdown / finalize_rescue stop the API only after replying.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

use agent_tests::agent::{start, TOKEN};
use serde_json::{json, Value};

fn node() -> Value {
    json!({"uuid": "5062a51c-ec9e-4a8d-844f-5a9dbc462eaf", "properties": {}, "instance_info": {}, "driver_internal_info": {}})
}

#[test]
fn binary_serves_the_ipa_api() {
    let a = start(&[]);
    let status: Value = a
        .http
        .get(a.url("/v1/status"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        status["started_at"].is_f64() && status["version"].is_string(),
        "{status}"
    );
    let root: Value = a.http.get(a.url("/")).send().unwrap().json().unwrap();
    assert_eq!(
        root["default_version"]["links"][0]["href"],
        format!("http://127.0.0.1:{}/v1", a.port)
    );

    let r = a.http.get(a.url("/v1/commands/")).send().unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().unwrap(),
        json!({"faultcode": "Client", "faultstring": "401 Unauthorized: Token invalid."})
    );

    let (status, v) = a.post(
        "clean.get_clean_steps",
        json!({"node": node(), "ports": []}),
        true,
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let res = &v["command_result"];
    assert!(
        res["hardware_manager_version"]["generic_hardware_manager"].is_string(),
        "{res}"
    );
    let steps = res["clean_steps"].as_object().expect("clean_steps map");
    assert!(steps.contains_key("GenericHardwareManager"), "{res}");
    for s in steps
        .values()
        .flat_map(|v| v.as_array().expect("step list"))
    {
        assert!(
            s["step"].is_string() && s["priority"].is_i64() && s["interface"].is_string(),
            "{s}"
        );
    }

    let (status, v) = a.post("poll.get_hardware_info", json!({}), true);
    assert_eq!(
        (status, v["command_status"].as_str()),
        (200, Some("SUCCEEDED")),
        "{v}"
    );
    assert!(v["command_result"]["cpu"].is_object(), "{v}");

    let (_, v) = a.post("log.collect_system_logs", json!({}), true);
    assert!(v["command_result"]["system_logs"].is_string(), "{v}");

    let (_, v) = a.post("standby.power_off", json!({}), true);
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    assert_eq!(a.actions(), ["sync", "power_off"]);

    let list: Value = a
        .http
        .get(a.url(&format!("/v1/commands/?agent_token={TOKEN}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let names: Vec<&str> = list["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["command_name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "get_clean_steps",
            "get_hardware_info",
            "collect_system_logs",
            "power_off"
        ]
    );
}

#[test]
fn lockdown_replies_then_stops_the_api_and_downs_the_network() {
    let mut a = start(&[]);
    let (_, v) = a.post("standby.sync", json!({}), true);
    assert_eq!(v["command_status"], "SUCCEEDED");
    let (status, v) = a.post("system.lockdown", json!({}), false);
    assert_eq!(
        (
            status,
            v["command_name"].as_str(),
            v["command_status"].as_str()
        ),
        (200, Some("lockdown"), Some("SUCCEEDED"))
    );
    assert!(
        a.refused_within(Duration::from_secs(2)),
        "API still reachable after lockdown"
    );
    let t = Instant::now();
    while !a.actions().contains(&"network_down".to_string()) {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "network not brought down: {:?}",
            a.actions()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Like IPA, a locked-down agent idles instead of exiting.
    assert!(a.child().try_wait().unwrap().is_none());
}

#[test]
fn finalize_rescue_replies_then_exits_and_never_serves_again() {
    let mut a = start(&[]);
    let (status, v) = a.post(
        "rescue.finalize_rescue",
        json!({"rescue_password": "$5$abc$def", "hashed": true}),
        false,
    );
    assert_eq!(
        (status, v["command_status"].as_str()),
        (200, Some("SUCCEEDED")),
        "{v}"
    );
    assert!(a.refused_within(Duration::from_secs(2)));
    let t = Instant::now();
    let exit = loop {
        if let Some(s) = a.child().try_wait().unwrap() {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "agent did not exit after rescue"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success());
    let root = a.machine.path();
    assert_eq!(
        std::fs::read_to_string(root.join("etc/ipa-rescue-config/ipa-rescue-password")).unwrap(),
        "$5$abc$def"
    );
    assert!(root.join("etc/.rescued").exists());

    // The ramdisk's rescue step (ramdisk/rescue.sh, run by init once the
    // agent has exited) makes the `rescue` user with the agent's hash.
    let script = agent_tests::workspace_root().join("ramdisk/rescue.sh");
    let out = Command::new("sh")
        .arg(&script)
        .arg(root)
        .output()
        .expect("rescue.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
    assert!(
        shadow.lines().any(|l| l.starts_with("rescue:$5$abc$def:")),
        "{shadow}"
    );
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    assert!(passwd.contains("rescue:x:1000:1000:rescue:/home/rescue:/bin/sh"));
    // Run twice (a second finalize_rescue): still one rescue user.
    assert!(Command::new("sh")
        .arg(&script)
        .arg(root)
        .status()
        .unwrap()
        .success());
    let shadow = std::fs::read_to_string(root.join("etc/shadow")).unwrap();
    assert_eq!(
        shadow.lines().filter(|l| l.starts_with("rescue:")).count(),
        1
    );

    // Restarted on a rescued machine: never serves, idles (so a supervisor
    // that restarts agents does not loop) until it is told to stop.
    let mut idle = Command::new(agent_tests::agent_binary())
        .arg("--standalone")
        .arg("--hardware-root")
        .arg(root)
        .arg("--managers-dir")
        .arg(a.managers.path())
        .args([
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            &a.port.to_string(),
        ])
        .spawn()
        .expect("agent runs");
    std::thread::sleep(Duration::from_secs(1));
    assert!(idle.try_wait().unwrap().is_none(), "the agent exited");
    assert!(a.refused_within(Duration::from_millis(100)));
    let _ = Command::new("kill")
        .args(["-TERM", &idle.id().to_string()])
        .status();
    assert!(idle.wait().unwrap().success());
}
