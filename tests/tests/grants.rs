//! Grants that change without a restart, and one verdict everywhere: a
//! manager declaring capabilities the operator has not granted waits (it
//! is never run with calls failing one by one) and starts when its grants
//! arrive in the grants directory; taking them away stops it. The agent,
//! `managers list` and `managers validate` say the same thing in the same
//! words.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use agent_tests::host::Host;
use agent_tests::{agent_binary, guest_component, sim_host_config, workspace_root};
use ironic_host::{HostConfig, Unused, WatchOptions};
use ironic_sim::{MachineDescription, SimMachine};
use tempfile::TempDir;

struct Rig {
    _tmp: TempDir,
    sim: SimMachine,
    managers: PathBuf,
    grants_dir: PathBuf,
    config: HostConfig,
}

/// The generic manager and the firmware test manager (with its assets);
/// the built-in grants, and an empty grants directory.
fn rig() -> Rig {
    let tmp = tempfile::tempdir().expect("temp dir");
    let desc = MachineDescription::from_toml(ironic_sim::DEFAULT_MACHINE, Path::new("m.toml"))
        .expect("machine");
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
    let grants_dir = tmp.path().join("grants.d");
    fs::create_dir_all(&grants_dir).expect("grants dir");
    let config = HostConfig {
        grants_dir: Some(grants_dir.clone()),
        ..sim_host_config(&managers, &sim)
    };
    Rig {
        _tmp: tmp,
        sim,
        managers,
        grants_dir,
        config,
    }
}

/// What the firmware manager declares, as the operator grants it (its
/// manifest without `[assets]`, which are listed, not granted).
fn firmware_grant() -> String {
    let manifest =
        fs::read_to_string(workspace_root().join("tests/managers/firmware/manifest.toml"))
            .expect("manifest");
    manifest
        .split("[assets]")
        .next()
        .expect("text before [assets]")
        .to_string()
}

fn waiting_reason(host: &Host) -> Option<(Vec<String>, String)> {
    host.rejected().into_iter().find_map(|r| match r.kind {
        Unused::WaitingForGrants(missing) if r.file.ends_with("firmware.wasm") => {
            Some((missing, r.reason))
        }
        _ => None,
    })
}

fn loaded(host: &Host, name: &str) -> bool {
    host.managers().iter().any(|m| m.name == name)
}

fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn a_manager_waits_for_its_grants_and_starts_when_they_arrive() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    assert!(!loaded(&host, "firmware"));
    let (missing, reason) = waiting_reason(&host).expect("firmware waits for grants");
    for capability in [
        "commands.programs=flash-tool",
        "commands.env=FLASH_MODE",
        "fetch.urls=http://127.0.0.1:*/**",
        "scratch.size_mib=8",
    ] {
        assert!(
            missing.iter().any(|m| m == capability),
            "{capability} in {missing:?}"
        );
    }
    assert!(
        reason.starts_with("waiting for grants: manager firmware declares")
            && reason.contains("firmware.toml"),
        "{reason}"
    );

    // The grants arrive in the watched directory: it starts.
    let _watch = host
        .inner()
        .watch(WatchOptions {
            settle: Duration::from_millis(10),
            rescan: Duration::from_millis(200),
        })
        .expect("watch");
    fs::write(rig.grants_dir.join("firmware.toml"), firmware_grant()).expect("grant");
    assert!(
        wait_until(Duration::from_secs(20), || loaded(&host, "firmware")),
        "firmware loaded once granted: {:?}",
        host.rejected()
    );
    assert!(waiting_reason(&host).is_none());

    // Taken away: it stops, and waits again.
    fs::remove_file(rig.grants_dir.join("firmware.toml")).expect("revoke");
    assert!(
        wait_until(Duration::from_secs(20), || !loaded(&host, "firmware")),
        "firmware stopped once its grants were revoked"
    );
    assert!(waiting_reason(&host).is_some());
    assert!(loaded(&host, "generic"), "the others are untouched");
}

#[test]
fn a_bad_grants_file_is_named_and_takes_nothing_else_away() {
    let rig = rig();
    fs::write(rig.grants_dir.join("firmware.toml"), firmware_grant()).expect("grant");
    fs::write(rig.grants_dir.join("other.toml"), "[commands\n").expect("broken");
    let host = Host::start(rig.config.clone()).expect("host starts");
    assert!(loaded(&host, "firmware"), "{:?}", host.rejected());

    // Reloading with a broken grants *file* keeps what is in force.
    let mut config = rig.config.clone();
    let file = rig.grants_dir.parent().expect("parent").join("grants.toml");
    fs::write(&file, "[managers.generic\n").expect("broken file");
    config.grants_file = Some(file);
    assert!(
        Host::start(config).is_err(),
        "a broken grants file stops the start, naming it"
    );
    let report = host.reload_grants().expect("reload");
    assert!(report.is_empty(), "nothing changed: {report:?}");
}

fn run_cli(rig: &Rig, args: &[&str]) -> (bool, String) {
    let out = Command::new(agent_binary())
        .args(args)
        .arg("--hardware-root")
        .arg(&rig.sim.root)
        .arg("--managers-dir")
        .arg(&rig.managers)
        .arg("--grants-dir")
        .arg(&rig.grants_dir)
        .output()
        .expect("ironic-agent");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_agent_list_and_validate_give_one_verdict_in_the_same_words() {
    let rig = rig();
    let host = Host::start(rig.config.clone()).expect("host starts");
    let (_, reason) = waiting_reason(&host).expect("waits");

    let (_, list) = run_cli(&rig, &["managers", "list"]);
    assert!(
        list.contains(&format!(
            "waiting for grants {}: {reason}",
            rig.managers.join("firmware.wasm").display()
        )),
        "{list}"
    );
    let firmware = rig.managers.join("firmware.wasm");
    let firmware = firmware.to_str().expect("utf-8 path");
    let (ok, validate) = run_cli(&rig, &["managers", "validate", firmware]);
    assert!(!ok, "validate fails on a manager that would not run");
    assert!(
        validate.contains(&format!("verdict: WAITING FOR GRANTS: {reason}")),
        "{validate}"
    );

    // Granted: validate passes and shows the steps it offers.
    fs::write(rig.grants_dir.join("firmware.toml"), firmware_grant()).expect("grant");
    let (ok, validate) = run_cli(&rig, &["managers", "validate", firmware]);
    assert!(ok, "{validate}");
    assert!(validate.contains("verdict: OK"), "{validate}");
    assert!(
        validate.contains("contract:  ironic:hardware@0.3.0"),
        "{validate}"
    );
    assert!(
        validate.contains(
            "update_firmware (priority 0, interface deploy) args: url*, sha256*, version*"
        ),
        "{validate}"
    );
    assert!(validate.contains("service steps:"), "{validate}");
}
