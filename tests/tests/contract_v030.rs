//! Contract 0.3.0 as a vendor uses it (tests/managers/firmware): a
//! firmware image fetched over HTTP from a real server into the scratch
//! space, its pinned digest checked, a granted flashing tool (a stand-in)
//! run on it with a shipped asset and a declared environment variable, the
//! scratch space wiped after the call; `fallback` extending the generic
//! manager's answer with `extra` fields that reach the inventory.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use agent_tests::host::Host;
use agent_tests::ironic::ImageServer;
use agent_tests::{guest_component, sim_host_config, stand_in_program, workspace_root};
use ironic_host::{Capabilities, DispatchError, Grants, HostConfig, StepKind};
use ironic_sim::{MachineDescription, SimMachine};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The stand-in flashing tool: prints what it was given and where it ran,
/// and the image's digest (it must be readable at the path it got). Programs
/// get PATH = the program directories only, hence its own PATH.
const FLASH_TOOL: &str = r#"PATH=/usr/bin:/bin; image=$2; config=$4
echo "mode=${FLASH_MODE:-unset} cwd=$(pwd) version=$6"
echo "image=$(sha256sum "$image" | cut -c1-64) config=$(head -n1 "$config")"
touch "$(dirname "$0")/flash-tool.ran""#;

struct Rig {
    _tmp: TempDir,
    sim: SimMachine,
    config: HostConfig,
    served: TempDir,
    server: ImageServer,
}

fn firmware_manifest() -> Capabilities {
    let text = fs::read_to_string(workspace_root().join("tests/managers/firmware/manifest.toml"))
        .expect("manifest");
    Capabilities::parse(&text, "firmware manifest").expect("manifest parses")
}

/// The generic manager and `firmware` (with its assets directory), the
/// latter granted what it declares; a 1 MiB image served over HTTP.
fn rig() -> Rig {
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut text = ironic_sim::DEFAULT_MACHINE.to_string();
    text.push('\n');
    let desc = MachineDescription::from_toml(&text, Path::new("default.toml")).expect("machine");
    let sim = ironic_sim::create(&desc, &tmp.path().join("root")).expect("simulated machine");
    let managers = tmp.path().join("managers");
    fs::create_dir_all(managers.join("firmware.assets")).expect("managers dir");
    fs::copy(
        guest_component("generic_manager"),
        managers.join("generic.wasm"),
    )
    .expect("copy generic");
    fs::copy(
        guest_component("test_manager_firmware"),
        managers.join("firmware.wasm"),
    )
    .expect("copy firmware");
    fs::copy(
        workspace_root().join("tests/managers/firmware/assets/flash.conf"),
        managers.join("firmware.assets/flash.conf"),
    )
    .expect("copy the asset");
    stand_in_program(&sim.bin_dir(), "flash-tool", FLASH_TOOL);
    let mut grants = Grants::builtin();
    grants.add("firmware", &firmware_manifest());
    let config = HostConfig {
        grants,
        ..sim_host_config(&managers, &sim)
    };
    let served = tempfile::tempdir().expect("served dir");
    fs::write(served.path().join("bios-2.0.bin"), image(1 << 20)).expect("image");
    fs::write(served.path().join("huge.bin"), image(9 << 20)).expect("image");
    let server = ImageServer::start(served.path());
    Rig {
        _tmp: tmp,
        sim,
        config,
        served,
        server,
    }
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

fn sha256_of(path: &Path) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(fs::read(path).expect("read")))
}

fn run(host: &Host, step: &str, args: Value) -> (Result<Value, DispatchError>, Vec<String>) {
    let messages = Mutex::new(Vec::new());
    let result = host.execute_step(
        StepKind::Clean,
        step,
        &json!({}),
        &json!([]),
        &args,
        &|_, m| messages.lock().expect("lock").push(m.to_string()),
    );
    (result, messages.into_inner().expect("lock"))
}

fn scratch_files(rig: &Rig) -> Vec<PathBuf> {
    let dir = &rig.config.scratch_dir;
    let mut found = Vec::new();
    for entry in walk(dir) {
        if entry.is_file() && !entry.starts_with(dir.join("assets")) {
            found.push(entry);
        }
    }
    found
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            }
            out.push(p);
        }
    }
    out
}

#[test]
fn a_firmware_update_is_fetched_verified_flashed_and_its_scratch_wiped() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    assert!(host.rejected().is_empty(), "{:?}", host.rejected());
    let served = rig.served.path().join("bios-2.0.bin");
    let digest = sha256_of(&served);
    let (result, progress) = run(
        &host,
        "update_firmware",
        json!({"url": rig.server.url("bios-2.0.bin"), "sha256": digest, "version": "2.0"}),
    );
    let result = result.expect("the update succeeds");
    assert_eq!(result["flashed"], "2.0");
    assert_eq!(result["size"], 1 << 20);
    assert_eq!(result["sha256"], digest.as_str());
    let output = result["tool_output"].as_str().expect("tool output");
    // The tool ran in the scratch space, with the declared variable, on the
    // fetched image, with the shipped configuration.
    assert!(output.contains("mode=safe"), "{output}");
    assert!(
        output.contains(&format!("cwd={}", rig.config.scratch_dir.display())),
        "{output}"
    );
    assert!(output.contains(&format!("image={digest}")), "{output}");
    assert!(output.contains("config=erase_block_size=4096"), "{output}");
    assert!(
        progress.iter().any(|m| m.contains("downloading")),
        "{progress:?}"
    );
    assert!(
        progress.iter().any(|m| m.contains("fetching")),
        "{progress:?}"
    );
    assert!(
        progress.iter().any(|m| m.contains("firmware 2.0 flashed")),
        "{progress:?}"
    );
    assert_eq!(scratch_files(&rig), Vec::<PathBuf>::new(), "scratch wiped");
}

#[test]
fn a_wrong_digest_fails_before_the_tool_runs_and_leaves_nothing() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    let (result, _) = run(
        &host,
        "update_firmware",
        json!({"url": rig.server.url("bios-2.0.bin"), "sha256": "0".repeat(64), "version": "2.0"}),
    );
    let err = result.expect_err("digest mismatch").to_string();
    assert!(
        err.contains("ChecksumMismatch") && err.contains("expected SHA-256 0000"),
        "{err}"
    );
    assert!(
        !rig.sim.bin_dir().join("flash-tool.ran").exists(),
        "the tool never ran"
    );
    assert_eq!(scratch_files(&rig), Vec::<PathBuf>::new());
}

#[test]
fn fetches_outside_the_grant_or_past_the_cap_are_refused() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    // `localhost` is not the granted 127.0.0.1.
    let url = format!("http://localhost:{}/bios-2.0.bin", rig.server.port);
    let (result, _) = run(
        &host,
        "update_firmware",
        json!({"url": url, "sha256": "0".repeat(64), "version": "2.0"}),
    );
    let err = result.expect_err("denied").to_string();
    assert!(err.contains("Denied") && err.contains("localhost"), "{err}");

    // 9 MiB into an 8 MiB scratch space.
    let digest = sha256_of(&rig.served.path().join("huge.bin"));
    let (result, _) = run(
        &host,
        "update_firmware",
        json!({"url": rig.server.url("huge.bin"), "sha256": digest, "version": "9"}),
    );
    let err = result.expect_err("too large").to_string();
    assert!(err.contains("TooLarge"), "{err}");
    assert_eq!(scratch_files(&rig), Vec::<PathBuf>::new());

    // A missing file is an HTTP error naming the status.
    let (result, _) = run(
        &host,
        "update_firmware",
        json!({"url": rig.server.url("nope.bin"), "sha256": digest, "version": "9"}),
    );
    let err = result.expect_err("404").to_string();
    assert!(err.contains("Http") && err.contains("404"), "{err}");
}

#[test]
fn scratch_files_are_private_named_and_gone_after_the_call() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    let (result, _) = run(
        &host,
        "scratch_roundtrip",
        json!({"name": "notes.txt", "text": "hello"}),
    );
    let out = result.expect("roundtrip");
    assert_eq!(out["files"], json!(["notes.txt"]));
    assert_eq!(out["size"], 5);
    assert_eq!(out["read"], "hello");
    assert_eq!(out["after_remove"], json!([]));
    let path = PathBuf::from(out["path"].as_str().expect("path"));
    assert!(path.starts_with(&rig.config.scratch_dir), "{path:?}");
    assert!(!path.exists(), "removed after the call");

    let (result, _) = run(
        &host,
        "scratch_roundtrip",
        json!({"name": "../escape", "text": "x"}),
    );
    let err = result.expect_err("bad name").to_string();
    assert!(err.contains("InvalidName"), "{err}");

    // Arguments are checked against argsinfo by the SDK's step table.
    let (result, _) = run(&host, "scratch_roundtrip", json!({"name": "a"}));
    let err = result.expect_err("missing argument");
    assert!(
        matches!(&err, DispatchError::InvalidArgument { manager, details, .. }
            if manager == "firmware" && details.contains("missing required argument text")),
        "{err:?}"
    );
}

#[test]
fn assets_are_verified_when_the_manager_loads() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    let (result, _) = run(&host, "assets_listing", json!({}));
    assert_eq!(
        result.expect("assets"),
        json!({"names": ["flash.conf"], "first_line": "erase_block_size=4096"})
    );
    drop(host);

    // A tampered asset: the manager is not loaded, and the reason says why.
    fs::write(
        rig.config.managers_dir.join("firmware.assets/flash.conf"),
        "erase_block_size=1\n",
    )
    .expect("tamper");
    let host = Host::start(rig.config.clone()).expect("host starts");
    let rejected = host.rejected();
    assert_eq!(host.managers().len(), 1, "only generic: {rejected:?}");
    assert!(
        rejected.iter().any(|r| r.reason.contains("flash.conf")
            && r.reason.to_lowercase().contains("sha-256")),
        "{rejected:?}"
    );
}

#[test]
fn fallback_extends_the_next_managers_answer_into_the_inventory() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    let inventory = host.inventory(true).expect("inventory");
    let vendor = &inventory["system_vendor"];
    // The generic manager's DMI answer, extended.
    assert_eq!(vendor["manufacturer"], "Dell Inc.", "{vendor}");
    assert_eq!(vendor["firmware_channel"], "stable", "{vendor}");
    assert!(vendor["firmware"]["version"].is_string(), "{vendor}");
}
