//! The native `load_manager` step and the boot-time `manager_urls` option,
//! against the agent binary: a simulated machine with only the generic
//! manager, the `override` test component served over HTTP on 127.0.0.1.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

use agent_tests::agent::{start, Agent};
use agent_tests::guest_component;
use serde_json::{json, Value};

/// A tiny HTTP/1.0 file server on 127.0.0.1 serving one directory (GET only).
struct FileServer {
    port: u16,
    dir: tempfile::TempDir,
}

impl FileServer {
    fn start() -> FileServer {
        let dir = tempfile::tempdir().expect("served dir");
        let root = dir.path().to_path_buf();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind file server");
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let root = root.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf);
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let name = path.trim_start_matches('/');
                    let file = (!name.contains('/') && !name.contains(".."))
                        .then(|| std::fs::read(root.join(name)).ok())
                        .flatten();
                    let _ = match file {
                        Some(body) => conn
                            .write_all(
                                format!(
                                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/wasm\r\n\r\n",
                                    body.len()
                                )
                                .as_bytes(),
                            )
                            .and_then(|_| conn.write_all(&body)),
                        None => conn.write_all(
                            b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                        ),
                    };
                });
            }
        });
        FileServer { port, dir }
    }

    /// Serves the `override` test component as `file`; returns its URL and
    /// SHA-256.
    fn serve_override(&self, file: &str) -> (String, String) {
        let to = self.dir.path().join(file);
        std::fs::copy(guest_component("test_manager_override"), &to).unwrap();
        (
            format!("http://127.0.0.1:{}/{file}", self.port),
            sha256_of(&to),
        )
    }
}

fn sha256_of(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

/// The listing's result (steps and versions).
fn clean_steps(a: &Agent) -> Value {
    let (status, v) = a.post(
        "clean.get_clean_steps",
        json!({"node": node(), "ports": []}),
        true,
    );
    assert_eq!(
        (status, &v["command_status"]),
        (200, &json!("SUCCEEDED")),
        "{v}"
    );
    v["command_result"].clone()
}

fn node() -> Value {
    json!({"uuid": "0c1f5d0e-8a39-4b6e-9f8c-4f0d5c9b1e11", "properties": {}, "instance_info": {}, "driver_internal_info": {}})
}

fn step_names(listing: &Value) -> Vec<String> {
    listing["clean_steps"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|l| l.as_array().unwrap().iter())
        .map(|s| s["step"].as_str().unwrap().to_string())
        .collect()
}

fn load_step(args: Value) -> Value {
    json!({
        "step": {"step": "load_manager", "interface": "deploy", "priority": 0, "args": args},
        "node": node(),
        "ports": [],
    })
}

#[test]
fn load_manager_step_downloads_verifies_and_activates() {
    let server = FileServer::start();
    let (url, sha) = server.serve_override("override-1.0.wasm");
    let a = start(&[]);

    // Listed as a native clean step with its argsinfo; no override yet.
    let before = clean_steps(&a);
    let names = step_names(&before);
    assert!(names.contains(&"load_manager".to_string()), "{before}");
    assert!(!names.contains(&"vendor_flash".to_string()), "{before}");
    let lm = before["clean_steps"]["GenericHardwareManager"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "load_manager")
        .unwrap()
        .clone();
    assert_eq!(lm["argsinfo"]["url"]["required"], true, "{lm}");
    assert_eq!(lm["argsinfo"]["sha256"]["required"], true, "{lm}");
    assert_eq!(lm["abortable"], false, "{lm}");
    let files_before = a.managers_files();

    // A wrong digest: a clear failure, nothing installed.
    let wrong = "0".repeat(64);
    let v = a.run(
        "clean.execute_clean_step",
        load_step(json!({"url": url, "sha256": wrong, "name": "override"})),
    );
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert_eq!(v["command_error"]["type"], "ImageChecksumError", "{v}");
    let details = v["command_error"]["details"].as_str().unwrap();
    assert!(
        details.contains(&wrong) && details.contains(&sha),
        "{details}"
    );
    assert_eq!(a.managers_files(), files_before);
    assert!(!step_names(&clean_steps(&a)).contains(&"vendor_flash".to_string()));

    // Unpinned: invalid parameters.
    let v = a.run(
        "clean.execute_clean_step",
        load_step(json!({"url": url, "name": "override"})),
    );
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert_eq!(
        v["command_error"]["type"], "InvalidCommandParamsError",
        "{v}"
    );

    // The right digest: loaded and active when the step reports success.
    let v = a.run(
        "clean.execute_clean_step",
        load_step(json!({"url": url, "sha256": sha, "name": "override"})),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", a.log());
    let loaded = &v["command_result"]["clean_result"]["loaded"];
    assert_eq!(loaded["name"], "override", "{v}");
    assert_eq!(loaded["manager_name"], "override_hardware_manager", "{v}");
    assert_eq!(loaded["version"], "1.0", "{v}");
    assert!(a.managers.path().join("override.wasm").is_file());
    // No staging leftovers.
    assert_eq!(a.managers_files().len(), files_before.len() + 1);

    let after = clean_steps(&a);
    assert!(
        step_names(&after).contains(&"vendor_flash".to_string()),
        "{after}"
    );
    assert_eq!(
        after["hardware_manager_version"]["override_hardware_manager"], "1.0",
        "{after}"
    );

    let v = a.run(
        "clean.execute_clean_step",
        json!({
            "step": {"step": "vendor_flash", "interface": "management", "priority": 0, "args": {"version": "2.1"}},
            "node": node(),
            "ports": [],
        }),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    assert_eq!(v["command_result"]["clean_result"]["flashed"], true, "{v}");
    assert_eq!(
        v["command_result"]["clean_result"]["args"]["version"], "2.1",
        "{v}"
    );
}

#[test]
fn a_rejected_component_changes_nothing() {
    let server = FileServer::start();
    // Not a component at all, correctly pinned.
    let bogus = server.dir.path().join("bogus.wasm");
    std::fs::write(&bogus, b"\0asm not really").unwrap();
    let sha = sha256_of(&bogus);
    let url = format!("http://127.0.0.1:{}/bogus.wasm", server.port);
    let a = start(&[]);
    let files_before = a.managers_files();
    let versions_before = clean_steps(&a)["hardware_manager_version"].clone();
    let v = a.run(
        "service.execute_service_step",
        json!({
            "step": {"step": "load_manager", "interface": "deploy", "priority": 0,
                     "args": {"url": url, "sha256": sha, "name": "generic"}},
            "node": node(),
            "ports": [],
        }),
    );
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert_eq!(v["command_error"]["type"], "HardwareManagerRejected", "{v}");
    assert_eq!(a.managers_files(), files_before);
    assert_eq!(
        std::fs::read(a.managers.path().join("generic.wasm")).unwrap(),
        std::fs::read(guest_component("generic_manager")).unwrap()
    );
    assert_eq!(clean_steps(&a)["hardware_manager_version"], versions_before);
}

#[test]
fn boot_time_manager_urls() {
    let server = FileServer::start();
    let (url, sha) = server.serve_override("override.wasm");
    let good = format!("{url}#sha256={sha}");
    // A bad digest and a missing file are skipped; the agent still starts.
    let bad = format!("{url}#sha256={}&name=other", "1".repeat(64));
    let missing = format!("http://127.0.0.1:{}/missing.wasm#sha256={sha}", server.port);
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        config.path(),
        format!("[DEFAULT]\nmanager_urls = {bad},{missing},{good}\n"),
    )
    .unwrap();
    let a = start(&["--config-file", config.path().to_str().unwrap()]);
    let steps = clean_steps(&a);
    assert!(
        step_names(&steps).contains(&"vendor_flash".to_string()),
        "{steps}\n{}",
        a.log()
    );
    assert!(a.managers.path().join("override.wasm").is_file());
    assert!(!a.managers.path().join("other.wasm").exists());
    assert!(!a.managers.path().join("missing.wasm").exists());
    let log = a.log();
    assert!(log.contains("manager_urls: manager skipped"), "{log}");
}

/// The firmware test manager and its assets (a tar archive), served.
fn serve_firmware(server: &FileServer) -> ((String, String), (String, String)) {
    let wasm = server.dir.path().join("firmware.wasm");
    std::fs::copy(guest_component("test_manager_firmware"), &wasm).unwrap();
    let tar = server.dir.path().join("firmware-assets.tar");
    let assets = agent_tests::workspace_root().join("tests/managers/firmware/assets");
    let st = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(&assets)
        .arg("flash.conf")
        .status()
        .unwrap();
    assert!(st.success());
    let url = |f: &str| format!("http://127.0.0.1:{}/{f}", server.port);
    (
        (url("firmware.wasm"), sha256_of(&wasm)),
        (url("firmware-assets.tar"), sha256_of(&tar)),
    )
}

#[test]
fn load_manager_installs_a_manager_with_its_grants_and_assets() {
    let server = FileServer::start();
    let ((url, sha), (assets_url, assets_sha)) = serve_firmware(&server);
    let a = start(&[]);
    let grants_file = a.machine.path().join(".ironic-sim/grants.d/firmware.toml");
    let files_before = a.managers_files();
    let load = |extra: Value| {
        let mut args = json!({"url": url, "sha256": sha,
                              "assets_url": assets_url, "assets_sha256": assets_sha});
        args.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        a.run("clean.execute_clean_step", load_step(args))
    };

    // Without grants it would only wait for them: refused, nothing kept.
    let v = load(json!({}));
    assert_eq!(v["command_status"], "FAILED", "{v}");
    assert_eq!(v["command_error"]["type"], "HardwareManagerRejected", "{v}");
    let details = v["command_error"]["details"].as_str().unwrap();
    assert!(
        details.contains("waiting for grants: manager firmware declares")
            && details.contains("fetch.urls"),
        "{details}"
    );
    assert_eq!(a.managers_files(), files_before);
    assert!(!grants_file.exists());

    // A grant that is not one: invalid parameters naming the problem.
    let v = load(json!({"grants": {"commands": {"programs": ["/bin/sh"]}}}));
    assert_eq!(
        v["command_error"]["type"], "InvalidCommandParamsError",
        "{v}"
    );
    assert!(
        v["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("not a bare program name"),
        "{v}"
    );
    // An argument the step does not take.
    let v = load(json!({"grant": {}}));
    assert_eq!(
        v["command_error"]["type"], "InvalidCommandParamsError",
        "{v}"
    );
    assert!(
        v["command_error"]["details"]
            .as_str()
            .unwrap()
            .contains("valid arguments: url, sha256, name, grants"),
        "{v}"
    );

    // With its grants (TOML text, as an operator pastes it): loaded, the
    // grants kept in the grants directory, the assets beside it.
    let grants = "log = true\nprogress = true\nfallback = true\n\
                  [commands]\nprograms = [\"flash-tool\"]\nenv = [\"FLASH_MODE\"]\n\
                  [fetch]\nurls = [\"http://127.0.0.1:*/**\"]\n[scratch]\nsize_mib = 8\n";
    let v = load(json!({ "grants": grants }));
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}\n{}", a.log());
    assert_eq!(
        v["command_result"]["clean_result"]["loaded"]["name"],
        "firmware"
    );
    assert!(grants_file.is_file());
    assert!(a.managers.path().join("firmware.assets.tar").is_file());
    let v = a.run(
        "clean.execute_clean_step",
        json!({
            "step": {"step": "assets_listing", "interface": "deploy", "priority": 0, "args": {}},
            "node": node(),
            "ports": [],
        }),
    );
    assert_eq!(v["command_status"], "SUCCEEDED", "{v}");
    assert_eq!(
        v["command_result"]["clean_result"]["first_line"],
        "erase_block_size=4096"
    );
}

#[test]
fn sighup_rereads_the_grants_file() {
    use agent_tests::agent::{start_with, AgentOptions};
    let grants = tempfile::NamedTempFile::new().unwrap();
    let builtin = include_str!("../../runtime/host/src/default-grants.toml");
    std::fs::write(grants.path(), builtin).unwrap();
    let mut a = start_with(AgentOptions {
        managers: vec![
            ("generic_manager", "generic"),
            ("test_manager_override", "override"),
        ],
        extra: vec![
            "--grants".into(),
            grants.path().to_str().unwrap().into(),
            "--no-watch-managers".into(),
        ],
        ..AgentOptions::default()
    });
    assert!(step_names(&clean_steps(&a)).contains(&"vendor_flash".to_string()));

    // The operator takes `progress` away from every manager: `override`
    // declares it, so it stops on SIGHUP (and only then: nothing watches).
    std::fs::write(
        grants.path(),
        builtin.replace(
            "[managers.\"*\"]\nlog = true\nprogress = true\n",
            "[managers.\"*\"]\nlog = true\n",
        ),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(step_names(&clean_steps(&a)).contains(&"vendor_flash".to_string()));
    let pid = a.child().id();
    let st = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while step_names(&clean_steps(&a)).contains(&"vendor_flash".to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "override still loaded after SIGHUP\n{}",
            a.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(a
        .log()
        .contains("waiting for grants: manager override declares progress"));
}
