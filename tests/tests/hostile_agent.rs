//! The agent as a process against hostile managers and clients: loading
//! never delays serving, a slow manager holds no lock other commands need,
//! manager log lines cannot be forged or flood the log, the results list is
//! bounded, and the HTTP server bounds connections, slow clients and
//! oversized or malformed requests, answering JSON every time.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use agent_tests::agent::{start_with, Agent, AgentOptions, TOKEN};
use serde_json::{json, Value};

fn hostile_agent(stem: &'static str, grants: &str, limits: &str) -> Agent {
    let grants = format!(
        "{}\n{grants}",
        include_str!("../../runtime/host/src/default-grants.toml")
    );
    // The hostile component has no embedded manifest: it declares what the
    // test grants it.
    let parsed = ironic_host::Grants::from_toml(&grants, std::path::Path::new("grants.toml"))
        .expect("grants parse");
    start_with(AgentOptions {
        managers: vec![
            ("generic_manager", "generic"),
            ("test_manager_hostile", stem),
        ],
        manifests: vec![(
            stem,
            agent_tests::hostile::declared_as_granted(&parsed, stem),
        )],
        grants: Some(grants),
        limits: Some(limits.to_string()),
        ..AgentOptions::default()
    })
}

#[test]
fn the_api_serves_while_a_manager_sleeps_in_info() {
    let a = start_with(AgentOptions {
        managers: vec![
            ("generic_manager", "generic"),
            ("test_manager_sleepy_info", "sleepy"),
        ],
        limits: Some("[managers]\ncall_timeout_secs = 20\n".into()),
        wait_for_api: false,
        ..AgentOptions::default()
    });
    // Loading the sleepy component takes its whole 20 s deadline; serving
    // must not wait for it.
    a.wait_for_api(Duration::from_secs(15));
    assert!(
        a.started.elapsed() < Duration::from_secs(15),
        "the API waited for loading: {:?}",
        a.started.elapsed()
    );
    // A command that needs managers waits for the load, then works.
    let (status, v) = a.post(
        "clean.get_clean_steps",
        json!({"node": {}, "ports": []}),
        true,
    );
    assert_eq!(status, 200);
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let versions = &v["command_result"]["hardware_manager_version"];
    assert_eq!(versions, &json!({"generic_hardware_manager": "1.2"}), "{v}");
    let log = a.log();
    assert!(
        log.contains("sleepy") && log.contains("deadline of 20 s exceeded"),
        "{log}"
    );
}

#[test]
fn a_slow_listing_holds_no_lock_other_commands_need() {
    let a = hostile_agent("slow", "", "[managers]\ncall_timeout_secs = 20\n");
    let slow = std::thread::scope(|s| {
        let listing = s.spawn(|| {
            let t = Instant::now();
            let reply = a.post(
                "clean.get_clean_steps",
                json!({"node": {"hostile_listing": "sleep"}, "ports": []}),
                true,
            );
            (reply, t.elapsed())
        });
        std::thread::sleep(Duration::from_secs(1));
        let (status, v) = a.post("poll.get_hardware_info", json!({}), true);
        assert_eq!(
            (status, &v["command_status"]),
            (200, &json!("SUCCEEDED")),
            "{v}"
        );
        assert!(
            !listing.is_finished(),
            "the inventory waited for the sleeping listing"
        );
        listing.join().expect("listing thread")
    });
    let ((status, v), took) = slow;
    assert_eq!(status, 200);
    assert_eq!(v["command_status"], "FAILED", "{v}");
    let details = v["command_error"]["details"].as_str().unwrap_or_default();
    assert!(
        details.contains("slow") && details.contains("deadline of 20 s exceeded"),
        "{details}"
    );
    assert!(took < Duration::from_secs(40), "{took:?}");
}

#[test]
fn manager_log_lines_are_escaped_tagged_and_rate_limited() {
    let a = hostile_agent(
        "flood",
        "",
        "[managers]\nlog_burst = 100\nlog_lines_per_second = 10\n",
    );
    let node = json!({});
    let v = a.clean_step("hostile_forge_log", json!({}), node.clone());
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let log = a.log();
    assert!(
        !log.lines().any(|l| l.starts_with("2026-12-05T00:00:00Z")),
        "a manager forged a log line:\n{log}"
    );
    let forged = log
        .lines()
        .find(|l| l.contains("innocent"))
        .expect("the message is logged");
    assert!(
        forged.contains("innocent\\n2026-12-05T00:00:00Z"),
        "{forged}"
    );
    assert!(
        forged.contains("manager") && forged.contains("flood"),
        "{forged}"
    );

    let v = a.clean_step("hostile_log_flood", json!({"lines": 100_000}), node);
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    let log = a.log();
    let kept = log.lines().filter(|l| l.contains("flood line")).count();
    assert!(kept < 2_000, "{kept} of 100,000 flood lines were logged");
    assert!(
        log.contains("log rate limit reached: dropping messages of manager flood"),
        "drops are not reported; log tail:\n{}",
        log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
}

#[test]
fn the_results_list_is_bounded() {
    let a = start_with(AgentOptions {
        limits: Some("[history]\nmax_results = 5\nmax_result_bytes = 2000\n".into()),
        ..AgentOptions::default()
    });
    for _ in 0..8 {
        let (status, v) = a.post("standby.get_partition_uuids", json!({}), true);
        assert_eq!(
            (status, &v["command_status"]),
            (200, &json!("SUCCEEDED")),
            "{v}"
        );
    }
    // The inventory is over 2000 bytes: recorded as a failure saying so.
    let (_, v) = a.post("poll.get_hardware_info", json!({}), true);
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert!(
        v["command_error"]["details"]
            .as_str()
            .is_some_and(|d| d.contains("over the cap of 2000 bytes")),
        "{v}"
    );
    let list: Value = a
        .http
        .get(a.url(&format!("/v1/commands/?agent_token={TOKEN}")))
        .send()
        .expect("GET")
        .json()
        .expect("JSON");
    let names: Vec<&str> = list["commands"]
        .as_array()
        .expect("commands")
        .iter()
        .filter_map(|c| c["command_name"].as_str())
        .collect();
    // The oldest went first; the newest of each name is kept.
    assert_eq!(
        names,
        [
            "get_partition_uuids",
            "get_partition_uuids",
            "get_partition_uuids",
            "get_partition_uuids",
            "get_hardware_info"
        ],
        "{list}"
    );
}

fn limited_agent() -> Agent {
    start_with(AgentOptions {
        limits: Some(
            "[api]\nmax_connections = 8\nheader_read_timeout_secs = 1\nmax_head_bytes = 8192\n"
                .into(),
        ),
        ..AgentOptions::default()
    })
}

/// Sends `request` on a new connection; the reply's status and body.
fn raw(a: &Agent, request: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", a.port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(request).expect("send");
    let mut reply = Vec::new();
    let _ = s.read_to_end(&mut reply);
    let text = String::from_utf8_lossy(&reply).to_string();
    let status = text
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let json =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{status}: body {body:?}: {e}"));
    (status, json)
}

#[test]
fn half_sent_requests_are_closed() {
    let a = limited_agent();
    let mut s = TcpStream::connect(("127.0.0.1", a.port)).expect("connect");
    s.write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    let closed = matches!(s.read(&mut buf), Ok(0) | Err(_));
    assert!(closed, "the server kept a half-sent request open");
    assert!(started.elapsed() < Duration::from_secs(9));
}

#[test]
fn connections_over_the_cap_get_a_json_503() {
    let a = limited_agent();
    let idle: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(("127.0.0.1", a.port)).expect("connect"))
        .collect();
    // Let the agent accept them all.
    std::thread::sleep(Duration::from_millis(200));
    let (status, body) = raw(&a, b"GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["faultcode"], "Server");
    drop(idle);
    // Freed slots serve again.
    a.wait_for_api(Duration::from_secs(10));
}

#[test]
fn oversized_and_malformed_requests_get_json_errors() {
    let a = limited_agent();
    let mut big = b"GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100 * 1024));
    big.extend_from_slice(b"\r\n\r\n");
    let (status, body) = raw(&a, &big);
    assert_eq!(status, 431, "{body}");
    assert_eq!(body["faultcode"], "Client");
    let (status, body) = raw(&a, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["faultcode"], "Client");
    a.wait_for_api(Duration::from_secs(5));
}
