//! The hostile-manager fixture: a host with one hostile component (the
//! `test-manager-hostile` crate, installed under the name a test grants)
//! beside the well-behaved `override` manager, with short deadlines.

use std::path::Path;
use std::time::Duration;

use ironic_host::{DispatchError, Grants, HostConfig, Limits, StepKind, Tiering};
use serde_json::{json, Value};

use crate::host::Host;
use crate::{managers_dir, shared_cwasm_cache};

/// The fixture's limits: 64 MiB, 2 s per call and per step, 1 MiB of
/// program output; the rest default.
pub fn hostile_limits() -> Limits {
    Limits {
        memory_bytes: 64 * 1024 * 1024,
        call_timeout: Duration::from_secs(2),
        step_timeout: Duration::from_secs(2),
        output_cap: 1024 * 1024,
        ..Limits::default()
    }
}

/// A host with `hostile` (crate, stem) plus the well-behaved `override`
/// manager, on a temporary hardware root.
pub struct Fixture {
    pub host: Host,
    pub root: tempfile::TempDir,
    _managers: tempfile::TempDir,
    _programs: tempfile::TempDir,
}

/// A manifest declaring exactly what `grants` grant manager `stem`.
pub fn declared_as_granted(grants: &Grants, stem: &str) -> String {
    toml::to_string(&grants.for_manager(stem)).expect("manifest")
}

/// [`fixture_declaring`] with the hostile manager declaring exactly what
/// the test grants it.
pub fn fixture(hostile: (&str, &str), grants: &str, setup: impl FnOnce(&Path, &Path)) -> Fixture {
    fixture_declaring(hostile, None, grants, setup)
}

/// The fixture, the hostile manager declaring `declared` (a manifest;
/// default: what `grants` grants it) in a sidecar manifest. It must be
/// covered by the grants, or the manager waits for them and is not loaded.
pub fn fixture_declaring(
    hostile: (&str, &str),
    declared: Option<&str>,
    grants: &str,
    setup: impl FnOnce(&Path, &Path),
) -> Fixture {
    fixture_compiled(hostile, declared, grants, setup, Tiering::default())
}

/// The fixture with both managers compiled as `tiering` says (e.g. baseline
/// code only).
pub fn fixture_compiled(
    hostile: (&str, &str),
    declared: Option<&str>,
    grants: &str,
    setup: impl FnOnce(&Path, &Path),
    tiering: Tiering,
) -> Fixture {
    let managers = managers_dir(&[hostile, ("test_manager_override", "override")]);
    let root = tempfile::tempdir().expect("hardware root");
    let programs = tempfile::tempdir().expect("program dir");
    setup(root.path(), programs.path());
    let mut text = String::from("[managers.\"*\"]\nlog = true\nprogress = true\n");
    text.push_str(grants);
    let grants = Grants::from_toml(&text, Path::new("hostile-grants.toml")).expect("grants");
    let manifest = match declared {
        Some(m) => m.to_string(),
        None => declared_as_granted(&grants, hostile.1),
    };
    std::fs::write(
        managers.path().join(format!("{}.manifest.toml", hostile.1)),
        manifest,
    )
    .expect("sidecar manifest");
    let host = Host::start(HostConfig {
        cache_dir: Some(shared_cwasm_cache()),
        grants,
        limits: hostile_limits(),
        program_dirs: vec![programs.path().to_path_buf()],
        tiering,
        ..HostConfig::new(managers.path(), root.path())
    })
    .expect("host starts");
    assert_eq!(
        host.managers().len(),
        2,
        "both managers load: {:?}",
        host.rejected()
    );
    Fixture {
        host,
        root,
        _managers: managers,
        _programs: programs,
    }
}

pub fn step(host: &Host, name: &str, args: Value) -> Result<Value, DispatchError> {
    host.execute_step(
        StepKind::Clean,
        name,
        &json!({}),
        &json!([]),
        &args,
        &|_, _| {},
    )
}

/// The well-behaved manager still answers on the same host.
pub fn assert_host_still_serves(host: &Host) {
    let out =
        step(host, "vendor_flash", json!({"version": "2.0"})).expect("override still answers");
    assert_eq!(out, json!({"flashed": true, "args": {"version": "2.0"}}));
}

pub fn assert_names(err: &DispatchError, manager: &str, step_name: &str) {
    let text = err.to_string();
    assert!(
        text.contains(manager),
        "error does not name manager {manager}: {text}"
    );
    assert!(
        text.contains(&format!("execute-step clean {step_name}")),
        "error does not name the call: {text}"
    );
}
