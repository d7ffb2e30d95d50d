//! The loop against a scripted fake Ironic on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use ironic_client::{AgentHandle, IronicLoop, Machine};
use serde_json::{json, Value};

#[derive(Default)]
struct Fake {
    log: Vec<(String, Option<String>, Value, Instant)>,
    lookups: u32,
    heartbeats: u32,
    token: String,
}

type S = Arc<Mutex<Fake>>;

const TOKEN1: &str = "token-one-0123456789012345678901234567890";
const TOKEN2: &str = "token-two-0123456789012345678901234567890";

async fn root() -> Json<Value> {
    Json(json!({"default_version": {"version": "1.99"}}))
}

async fn lookup(
    State(s): State<S>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> (StatusCode, Json<Value>) {
    let mut f = s.lock().expect("lock");
    f.lookups += 1;
    let v = headers
        .get("X-OpenStack-Ironic-API-Version")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    f.log.push(("lookup".into(), v, json!(q), Instant::now()));
    if f.lookups == 1 {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error_message": "{\"faultstring\": \"Node not found\"}"})),
        );
    }
    f.token = if f.lookups == 2 {
        TOKEN1.into()
    } else {
        TOKEN2.into()
    };
    let token = f.token.clone();
    (
        StatusCode::OK,
        Json(
            json!({"node": {"uuid": "n-1"}, "config": {"heartbeat_timeout": 300, "agent_token": token, "tls_min_version": "1.3"}}),
        ),
    )
}

async fn heartbeat(
    State(s): State<S>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, String) {
    let mut f = s.lock().expect("lock");
    f.heartbeats += 1;
    let v = headers
        .get("X-OpenStack-Ironic-API-Version")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    f.log
        .push((format!("heartbeat {uuid}"), v, body.clone(), Instant::now()));
    // The third heartbeat: pretend the node was power-cycled (token wiped).
    if f.heartbeats == 3 {
        f.token = String::new();
        return (StatusCode::BAD_REQUEST, json!({"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Invalid or missing agent token received.\"}"}).to_string());
    }
    if body["agent_token"].as_str() != Some(f.token.as_str()) {
        return (StatusCode::BAD_REQUEST, "{}".into());
    }
    (StatusCode::ACCEPTED, String::new())
}

struct M;
#[async_trait::async_trait]
impl Machine for M {
    async fn inventory(&self, _skip: bool) -> anyhow::Result<Value> {
        Ok(
            json!({"interfaces": [{"name": "eth0", "mac_address": "52:54:00:12:34:56"}, {"name": "eth1", "mac_address": "52:54:00:12:34:57"}], "hostname": "sim"}),
        )
    }
    fn managers(&self) -> Vec<(String, String)> {
        vec![("generic_hardware_manager".into(), "1.2".into())]
    }
    fn program_dirs(&self) -> Vec<std::path::PathBuf> {
        Vec::new()
    }
    fn lldp_raw(&self) -> Option<Value> {
        None
    }
    fn system_logs(&self) -> Vec<(String, Vec<u8>)> {
        vec![("dmesg".into(), b"[0.0] Linux version".to_vec())]
    }
}

#[derive(Default)]
struct Agent(Mutex<Vec<String>>);
impl AgentHandle for Agent {
    fn set_token(&self, token: &str) {
        self.0.lock().expect("lock").push(token.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_heartbeat_forced_and_token_recovery() {
    let state: S = Arc::default();
    let app = Router::new()
        .route("/", get(root))
        .route("/v1/lookup", get(lookup))
        .route("/v1/heartbeat/{uuid}", post(heartbeat))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });

    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("proc")).expect("mkdir");
    std::fs::write(
        dir.path().join("proc/cmdline"),
        format!("ipa-api-url=http://{addr} ipa-lookup-interval=0"),
    )
    .expect("write");
    let cfg = ironic_config::load(&ironic_config::LoadOptions {
        hardware_root: dir.path().into(),
        ..Default::default()
    })
    .expect("config");
    let mut lp = IronicLoop::new(cfg, Arc::new(M)).expect("loop");
    lp.timing.forced_min_gap = Duration::from_millis(300);
    lp.timing.failure_wait = (0.1, 0.2);
    let t0 = Instant::now();
    let startup = lp.startup().await.expect("startup");
    assert_eq!(startup.token.as_deref(), Some(TOKEN1));
    assert!(!startup.dead);
    assert!(startup.server_tls.is_some(), "auto-TLS with Ironic 1.99");
    assert_eq!(startup.callback_url, "https://127.0.0.1:9999");
    let ca = startup.verify_ca.clone().expect("cert");
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"));
    assert_eq!(
        lp.config.str("tls_min_version").as_deref(),
        Some("1.3"),
        "Ironic's layer applied"
    );

    let agent = Arc::new(Agent::default());
    let notify = Arc::new(tokio::sync::Notify::new());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let hb = tokio::spawn(lp.heartbeat(startup, agent.clone(), notify.clone(), rx));
    // First heartbeat at once; then a "command finished" forces another
    // well before the 90-180 s interval.
    tokio::time::sleep(Duration::from_millis(500)).await;
    notify.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Keep "finishing commands" so each next heartbeat is a forced one.
    while state.lock().expect("lock").heartbeats < 5 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(400)).await;
        notify.notify_one();
    }
    tx.send(true).expect("shutdown");
    hb.await.expect("join");

    let f = state.lock().expect("lock");
    let kinds: Vec<&str> = f.log.iter().map(|e| e.0.as_str()).collect();
    let expected = [
        "lookup",
        "lookup",
        "heartbeat n-1",
        "heartbeat n-1",
        "heartbeat n-1",
        "lookup",
        "heartbeat n-1",
        "heartbeat n-1",
    ];
    // A forced heartbeat may land between the last count check and the
    // shutdown, so the log can run past the script: only heartbeats may.
    let scripted = kinds.len().min(expected.len());
    assert_eq!(kinds[..scripted], expected[..scripted], "log: {kinds:?}");
    assert!(
        kinds[scripted..].iter().all(|k| *k == "heartbeat n-1"),
        "log: {kinds:?}"
    );
    assert!(f.heartbeats >= 5, "heartbeats: {}", f.heartbeats);
    assert_eq!(f.log[0].1.as_deref(), Some("1.62"));
    assert_eq!(
        f.log[0].2,
        json!("addresses=52%3A54%3A00%3A12%3A34%3A56%2C52%3A54%3A00%3A12%3A34%3A57")
    );
    let hb1 = &f.log[2];
    assert_eq!(hb1.1.as_deref(), Some("1.68"));
    assert_eq!(hb1.2["callback_url"], json!("https://127.0.0.1:9999"));
    assert_eq!(hb1.2["agent_token"], json!(TOKEN1));
    assert_eq!(hb1.2["agent_version"], json!("13.0.0"));
    assert_eq!(hb1.2["agent_verify_ca"], json!(ca));
    assert!(
        f.log[3].3 - hb1.3 < Duration::from_secs(2),
        "forced heartbeat came promptly"
    );
    // After the rejected token: a new lookup (with node_uuid), the new token
    // reaches the API, and heartbeats carry it.
    assert!(f.log[5]
        .2
        .as_str()
        .is_some_and(|q| q.ends_with("&node_uuid=n-1")));
    assert_eq!(f.log[6].2["agent_token"], json!(TOKEN2));
    assert_eq!(*agent.0.lock().expect("lock"), vec![TOKEN2.to_string()]);
    assert!(t0.elapsed() < Duration::from_secs(15));
}

#[test]
fn auto_cert_is_usable_by_a_verifying_client() {
    let cert = ironic_client::tls::generate_auto_cert(
        "sim-host",
        "127.0.0.1".parse().expect("ip"),
        ironic_client::tls::Curve::P384,
        Duration::from_secs(3600),
    )
    .expect("cert");
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &cert.cert_pem).expect("write");
    let server = ironic_client::tls::server_config_from_pem(&cert.cert_pem, &cert.key_pem, "1.3")
        .expect("server");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let tls = ironic_client::tls::TlsListener::new(listener, server).expect("tls");
        let app = Router::new().route("/", get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(tls, app).await });
        let client_cfg = ironic_client::tls::client_config(&ironic_client::tls::ClientTls {
            cafile: Some(ca.to_string_lossy().into_owned()),
            min_version: "1.2".into(),
            ..Default::default()
        })
        .expect("client");
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(client_cfg)
            .build()
            .expect("http");
        let body = http
            .get(format!("https://{addr}/"))
            .send()
            .await
            .expect("https")
            .text()
            .await
            .expect("body");
        assert_eq!(body, "ok");
        // Verification really happens: another self-signed cert is refused.
        let other = ironic_client::tls::generate_auto_cert(
            "x",
            "127.0.0.1".parse().expect("ip"),
            ironic_client::tls::Curve::P256,
            Duration::ZERO,
        )
        .expect("cert");
        std::fs::write(&ca, &other.cert_pem).expect("write");
        let strict = ironic_client::tls::client_config(&ironic_client::tls::ClientTls {
            cafile: Some(ca.to_string_lossy().into_owned()),
            min_version: "1.2".into(),
            ..Default::default()
        })
        .expect("client");
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(strict)
            .build()
            .expect("http");
        assert!(http.get(format!("https://{addr}/")).send().await.is_err());
    });
    let pem_path = dir.path().join("c.pem");
    std::fs::write(&pem_path, &cert.cert_pem).expect("write");
    if let Ok(out) = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&pem_path)
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        if out.status.success() {
            assert!(
                text.contains("Subject: CN = sim-host") || text.contains("Subject: CN=sim-host"),
                "{text}"
            );
            assert!(
                text.contains("X509v3 Subject Alternative Name: critical"),
                "{text}"
            );
            assert!(text.contains("IP Address:127.0.0.1"), "{text}");
            assert!(
                text.contains("NIST CURVE: P-384") || text.contains("secp384r1"),
                "{text}"
            );
            assert!(
                !text.contains("Basic Constraints") && !text.contains("Key Usage"),
                "{text}"
            );
        }
    }
}
