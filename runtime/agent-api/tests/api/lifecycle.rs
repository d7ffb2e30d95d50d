//! The real server: lockdown and rescue stop it only after the reply was
//! fully sent (IPA `IronicPythonAgent.serve_ipa_api`), and external shutdown.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use agent_api::StopReason;
use serde_json::{json, Value};

use crate::common::*;

async fn start(
    a: &TestAgent,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<std::io::Result<Option<StopReason>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = a.state.clone();
    let task = tokio::spawn(agent_api::serve(listener, state, std::future::pending()));
    (addr, task)
}

/// Waits until connecting fails; returns how long it took.
async fn until_refused(addr: SocketAddr) -> Duration {
    let t = Instant::now();
    while tokio::net::TcpStream::connect(addr).await.is_ok() {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "server still accepting"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t.elapsed()
}

#[tokio::test]
async fn lockdown_replies_then_stops_and_downs_network() {
    let a = agent();
    let (addr, task) = start(&a).await;
    // Ironic's sequence: sync (wait=true), lockdown (wait=false), then polls.
    let (status, v) = raw_http(
        addr,
        &post_request(
            &format!("/v1/commands/?wait=true&agent_token={TOKEN}"),
            &json!({"name": "standby.sync", "params": {}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        (status, v["command_status"].as_str()),
        (200, Some("SUCCEEDED"))
    );
    let (status, v) = raw_http(
        addr,
        &post_request(
            &format!("/v1/commands/?wait=false&agent_token={TOKEN}"),
            &json!({"name": "system.lockdown", "params": {}}),
        ),
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["command_name"], "lockdown");
    assert_eq!(v["command_status"], "SUCCEEDED");
    assert_eq!(v["command_result"], Value::Null);
    let took = until_refused(addr).await;
    assert!(took < Duration::from_millis(500), "took {took:?}");
    let reason = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reason, Some(StopReason::Lockdown));
    let actions = a.actions();
    let last = actions.last().unwrap();
    assert_eq!(last["action"], "network_down");
    assert_eq!(last["interfaces"], json!(["eth0"]));
}

#[tokio::test]
async fn finalize_rescue_writes_hash_and_marker_then_stops() {
    let a = agent();
    let (addr, task) = start(&a).await;
    let hashed = "$6$rounds=5000$salt$abcdefg";
    let (status, v) = raw_http(addr, &post_request(&format!("/v1/commands/?wait=false&agent_token={TOKEN}"), &json!({"name": "rescue.finalize_rescue", "params": {"rescue_password": hashed, "hashed": true}}))).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(v["command_name"], "finalize_rescue");
    assert_eq!(v["command_status"], "SUCCEEDED");
    until_refused(addr).await;
    let reason = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reason, Some(StopReason::Rescue));
    assert_eq!(
        read_file(a.root.path(), "etc/ipa-rescue-config/ipa-rescue-password"),
        hashed
    );
    assert!(a.root.path().join("etc/.rescued").exists());
    // No network action for rescue.
    assert!(a.actions().is_empty());
}

#[tokio::test]
async fn finalize_rescue_hashes_plain_passwords() {
    use sha_crypt::{PasswordVerifier, ShaCrypt};
    let a = agent();
    let v = a
        .post_cmd(
            "rescue.finalize_rescue",
            json!({"rescue_password": "letmein"}),
            false,
        )
        .await
        .json();
    assert_eq!(v["command_status"], "SUCCEEDED");
    let hash = read_file(a.root.path(), "etc/ipa-rescue-config/ipa-rescue-password");
    assert!(hash.starts_with("$5$"), "{hash}");
    assert!(ShaCrypt::default()
        .verify_password(b"letmein", hash.as_str())
        .is_ok());
}

#[tokio::test]
async fn external_shutdown_stops_without_reason() {
    let a = agent();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent_api::serve(listener, a.state.clone(), async move {
        let _ = rx.await;
    }));
    let (status, _) = raw_http(
        addr,
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    // A garbage request gets an HTTP error, and the server keeps serving.
    let _ = raw_http(addr, "BLAH\r\n\r\n").await;
    let (status, v) = raw_http(addr, &format!("GET /v1/commands/?agent_token={TOKEN} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")).await.unwrap();
    assert_eq!((status, v), (200, json!({"commands": []})));
    // A 20 MiB body over a real socket: 413, and the agent keeps serving.
    let big = format!(
        "{{\"name\": \"standby.sync\", \"params\": {{\"x\": \"{}\"}}}}",
        "a".repeat(20 * 1024 * 1024)
    );
    let req = format!(
        "POST /v1/commands/?agent_token={TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{big}",
        big.len()
    );
    // The body is drained, so the client reads the 413, not a broken pipe.
    let (status, v) = raw_http(addr, &req).await.unwrap();
    assert_eq!(status, 413);
    assert_eq!(
        v["faultstring"],
        "413 Request Entity Too Large: The data value transmitted exceeds the capacity limit."
    );
    let (status, _) = raw_http(
        addr,
        "GET /v1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    tx.send(()).unwrap();
    let reason = tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reason, None);
}
