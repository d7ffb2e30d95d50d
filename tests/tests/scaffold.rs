//! `ironic-agent managers new`: for each language whose toolchain
//! `make setup` installs, scaffold a manager, build it with the build script
//! it wrote, and check it with `ironic-agent managers validate` on a
//! simulated machine: without its grants it waits for them, with the
//! grants snippet it wrote installed in the grants directory it is accepted
//! and offers its example step.
//!
//! Toolchains: Python and JavaScript from tests/examples-setup.sh (the
//! Python SDK installed in target/py-venv; the JavaScript project installs
//! its own node_modules, from npm's cache that the setup filled),
//! Rust from the workspace's own toolchain, C from tests/c-toolchain-setup.sh.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use agent_tests::host::Host;
use agent_tests::{
    agent_binary, managers_dir, shared_cwasm_cache, sim_host_config, target_dir, workspace_root,
};
use ironic_host::{Capabilities, DispatchError, Grants, HostConfig, StepKind};
use serde_json::json;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run_script(script: &str) {
    let out = Command::new("bash")
        .arg(workspace_root().join(script))
        .output()
        .unwrap();
    assert!(out.status.success(), "{script} failed:\n{}", text(&out));
}

/// The Python and JS SDKs installed (once per test binary).
fn examples_toolchains() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| run_script("tests/examples-setup.sh"));
}

fn c_toolchain() -> PathBuf {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| run_script("tests/c-toolchain-setup.sh"));
    target_dir().join("c-tools")
}

/// `managers new`, then `build.sh` with `env`; returns the project.
fn scaffold_and_build(lang: &str, name: &str, env: &[(&str, PathBuf)]) -> tempfile::TempDir {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join(name);
    let out = Command::new(agent_binary())
        .args(["managers", "new", "--lang", lang, name])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "managers new: {}", text(&out));
    for file in ["manifest.toml", "grants.toml", "build.sh", "README.md"] {
        assert!(dir.join(file).is_file(), "{lang}: no {file}");
    }
    let mut build = Command::new(dir.join("build.sh"));
    prepare(lang, &dir, &mut build);
    for (k, v) in env {
        build.env(k, v);
    }
    let out = build.output().unwrap();
    assert!(out.status.success(), "{lang} build.sh: {}", text(&out));
    assert!(
        dir.join(format!("{name}.wasm")).is_file(),
        "{lang}: no component"
    );
    work
}

/// What a user would do once per project, done from the build tree's
/// caches where one exists (the same pinned versions, no second download).
fn prepare(lang: &str, dir: &Path, build: &mut Command) {
    match lang {
        // The workspace's lock file pins the SDK's dependencies.
        "rust" => {
            std::fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();
        }
        // build.sh runs the project's own `npm install`; npm's cache,
        // filled by tests/examples-setup.sh, serves the packages.
        "js" => {
            build.env("npm_config_prefer_offline", "true");
        }
        _ => {}
    }
}

fn validate(component: &Path, machine: &Path) -> Output {
    Command::new(agent_binary())
        .args(["managers", "validate", "--hardware-root"])
        .arg(machine)
        .arg("--cache-dir")
        .arg(shared_cwasm_cache())
        .arg(component)
        .output()
        .unwrap()
}

fn check(lang: &str, env: &[(&str, PathBuf)]) {
    let name = format!("scaffold-{lang}");
    let project = scaffold_and_build(lang, &name, env);
    let dir = project.path().join(&name);
    let component = dir.join(format!("{name}.wasm"));

    let machine = tempfile::tempdir().unwrap();
    let sim = ironic_sim::create(
        &ironic_sim::MachineDescription::from_toml(
            ironic_sim::DEFAULT_MACHINE,
            Path::new("default.toml"),
        )
        .unwrap(),
        machine.path(),
    )
    .unwrap();

    // Its manifest declares DMI reads, which nothing grants yet.
    let out = validate(&component, machine.path());
    let listing = text(&out);
    assert!(!out.status.success(), "{lang}: {listing}");
    assert!(
        listing.contains("waiting for grants")
            && listing.contains("machine.paths=/sys/class/dmi/id/*"),
        "{lang}: {listing}"
    );

    // The grants snippet it wrote, installed as the README says.
    let grants_dir = sim.root.join(".ironic-sim/grants.d");
    std::fs::create_dir_all(&grants_dir).unwrap();
    std::fs::copy(
        dir.join("grants.toml"),
        grants_dir.join(format!("{name}.toml")),
    )
    .unwrap();
    let out = validate(&component, machine.path());
    let listing = text(&out);
    assert!(out.status.success(), "{lang}: {listing}");
    let snake = name.replace('-', "_");
    for expected in [
        "manifest:  Embedded".to_string(),
        "contract:  ironic:hardware@0.3.0".to_string(),
        "support:   3".to_string(),
        format!("version:   {snake}_hardware_manager 1.0"),
        "example_step (priority 0, interface deploy) args: message*".to_string(),
        "verdict: OK".to_string(),
    ] {
        assert!(
            listing.contains(&expected),
            "{lang}: no {expected:?} in\n{listing}"
        );
    }

    // Loaded beside the generic manager, its step runs, its arguments
    // checked against its argsinfo.
    let managers = managers_dir(&[("generic_manager", "generic")]);
    std::fs::copy(&component, managers.path().join(format!("{name}.wasm"))).unwrap();
    let snippet = std::fs::read_to_string(dir.join("grants.toml")).unwrap();
    let mut grants = Grants::builtin();
    let caps = Capabilities::parse(&snippet, "grants.toml").unwrap();
    grants.grant(&name, caps.union(&Grants::builtin().for_manager(&name)));
    let host = Host::start(HostConfig {
        cache_dir: Some(shared_cwasm_cache()),
        grants,
        ..sim_host_config(managers.path(), &sim)
    })
    .unwrap();
    let reports = std::sync::Mutex::new(Vec::new());
    let sink = |percent: Option<u8>, message: &str| {
        reports.lock().unwrap().push((percent, message.to_string()));
    };
    let run = |args: serde_json::Value| {
        host.execute_step(
            StepKind::Clean,
            "example_step",
            &json!({"uuid": "node-1"}),
            &json!([]),
            &args,
            &sink,
        )
    };
    assert_eq!(
        run(json!({"message": "hello \"there\""})).unwrap(),
        json!({"message": "hello \"there\"", "sys_vendor": "Dell Inc."}),
        "{lang}"
    );
    assert_eq!(
        reports.lock().unwrap().as_slice(),
        [(Some(50), "example_step: hello \"there\"".to_string())],
        "{lang}"
    );
    // Escapes and non-ASCII text come back as sent.
    let text = "caf\u{e9} \u{1F600} \\ \"/\"\n\u{1}";
    assert_eq!(
        run(json!({ "message": text })).unwrap(),
        json!({"message": text, "sys_vendor": "Dell Inc."}),
        "{lang}"
    );
    if lang == "c" {
        // The SDKs refuse arguments outside argsinfo; the C template reads
        // only its own, and a field of the same name nested in another is
        // not it.
        let args =
            json!({"options": {"message": "decoy", "list": [1, {"a": null}]}, "message": text});
        assert_eq!(run(args).unwrap()["message"], json!(text));
        match run(json!({"message": 42})) {
            Err(DispatchError::InvalidArgument { details, .. }) => {
                assert!(details.contains("message must be a string"), "{details}")
            }
            other => panic!("expected invalid argument, got {other:?}"),
        }
    }
    match run(json!({})) {
        Err(DispatchError::InvalidArgument {
            manager, details, ..
        }) => {
            assert_eq!(manager, name);
            assert!(
                details.contains("missing required argument message"),
                "{lang}: {details}"
            );
        }
        other => panic!("{lang}: expected invalid argument, got {other:?}"),
    }
}

#[test]
fn python() {
    examples_toolchains();
    check(
        "python",
        &[("PYTHON", target_dir().join("py-venv/bin/python"))],
    );
}

#[test]
fn javascript() {
    examples_toolchains();
    check("js", &[]);
}

#[test]
fn rust() {
    // Its own target directory, kept between runs (the SDK's dependencies
    // compile once).
    check(
        "rust",
        &[("CARGO_TARGET_DIR", target_dir().join("scaffold-rust"))],
    );
}

#[test]
fn c() {
    let tools = c_toolchain();
    let path = format!(
        "{}:{}",
        tools.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    check(
        "c",
        &[
            ("PATH", PathBuf::from(path)),
            ("ADAPTER", tools.join("wasi_snapshot_preview1.reactor.wasm")),
        ],
    );
}
