//! Shared helpers for the black-box tests: where the built agent and the
//! built guest components are.
//!
//! `make test` builds both before running the suite; running `cargo test`
//! alone after `make build` works too.

pub mod agent;
pub mod host;
pub mod hostile;
pub mod netns;

use std::path::{Path, PathBuf};

use ironic_host::{HostConfig, NetworkSource};
use ironic_sim::SimMachine;

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Cargo's target directory (honours `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("target"),
    }
}

/// The `ironic-agent` binary (`IRONIC_AGENT_BIN` overrides).
pub fn agent_binary() -> PathBuf {
    let path = match std::env::var_os("IRONIC_AGENT_BIN") {
        Some(bin) => PathBuf::from(bin),
        None => target_dir().join("debug").join("ironic-agent"),
    };
    assert!(
        path.exists(),
        "{} is missing: run `make build` (or `make test`) first",
        path.display()
    );
    path
}

/// A guest component built by `make managers`, by crate name with `-`
/// spelled `_` (e.g. `generic_manager`).
pub fn guest_component(crate_name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2")
        .join("guest")
        .join(format!("{crate_name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: run `make managers` (or `make test`) first",
        path.display()
    );
    path
}

/// A temporary managers directory holding built guest components, each
/// copied as `<stem>.wasm` (the stem is the manager's name for grants):
/// `managers_dir(&[("test_manager_loop", "loop")])`.
pub fn managers_dir(components: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp managers dir");
    for (crate_name, stem) in components {
        let to = dir.path().join(format!("{stem}.wasm"));
        std::fs::copy(guest_component(crate_name), &to)
            .unwrap_or_else(|e| panic!("copying {crate_name} to {}: {e}", to.display()));
    }
    dir
}

/// A compile cache shared by the test processes (artifacts are written
/// atomically, so parallel tests may share it).
pub fn shared_cwasm_cache() -> PathBuf {
    target_dir().join("test-cwasm-cache")
}

/// Write an executable shell script `name` into `dir` (a stand-in program).
pub fn stand_in_program(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write stand-in program");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .expect("chmod stand-in program");
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for agents and
/// servers the tests start).
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}
pub mod bmc;
pub mod ironic;
pub mod sim_agent;
pub mod storage_vm;
pub mod vm;

/// gzip + base64 of `data`, as Ironic carries a config drive; `wrap` is
/// base64's line length (0: one line).
pub fn gzip_base64(data: &[u8], scratch: &Path, wrap: u32) -> String {
    let raw = scratch.join("configdrive.raw");
    std::fs::write(&raw, data).expect("write config drive");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("gzip -c \"$1\" | base64 -w \"$2\"")
        .arg("sh")
        .arg(&raw)
        .arg(wrap.to_string())
        .output()
        .expect("gzip | base64");
    assert!(out.status.success());
    String::from_utf8(out.stdout).expect("base64 is ASCII")
}

/// What the agent binary configures for the managers in `managers_dir` on
/// the simulated machine `sim` (its stand-ins, addresses and faults), with
/// the compile cache the test processes share.
pub fn sim_host_config(managers_dir: &Path, sim: &SimMachine) -> HostConfig {
    HostConfig {
        cache_dir: Some(shared_cwasm_cache()),
        program_dirs: vec![sim.bin_dir()],
        network: NetworkSource::File(sim.addresses_file()),
        faults_file: Some(sim.faults_file()),
        scratch_dir: sim.root.join(ironic_sim::SIM_DIR).join("scratch"),
        ..HostConfig::new(managers_dir, &sim.root)
    }
}
