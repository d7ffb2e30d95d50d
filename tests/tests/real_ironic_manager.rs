//! `load_manager` driven by a real Ironic (see `agent_tests::ironic`): an
//! operator loads a vendor manager into a running agent with one manual
//! clean, runs its clean step with a second, and a wrong digest fails the
//! clean with a clear `last_error`.
//!
//! How Ironic sees a loaded manager (ironic 39.0.0):
//!
//! * A manual clean's steps are validated against the steps Ironic cached
//!   from the agent (`driver_internal_info.agent_cached_clean_steps`,
//!   refreshed by `refresh_steps` when the clean starts and wiped when it
//!   ends). So the loaded manager's step cannot be in the same manual clean
//!   as the `load_manager` that brings it: it is unknown at validation time.
//!   A second manual clean refreshes the cache and sees it.
//! * Only clean steps on the `deploy` interface are taken from the agent
//!   (`AgentBaseMixin.get_clean_steps`), hence the test manager's interface.
//! * A changed `hardware_manager_version` mid-clean makes the agent answer
//!   the next step with `CLEAN_VERSION_MISMATCH`; for a manual clean Ironic
//!   then refreshes its cached steps and re-runs the current step (it does
//!   not restart the clean, nor re-validate the remaining steps). After a
//!   `load_manager` that was the last step nothing more happens.
//! * Between the cleans the agent must keep running with what it loaded: a
//!   reboot into the ramdisk would start without it. That is Ironic's fast
//!   track (`[deploy]fast_track = True`, the node powered on, the agent
//!   heartbeating while the node is `manageable`), which is how an operator
//!   keeps one agent across several operations.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use agent_tests::ironic::*;
use serde_json::{json, Value};

const MANAGER: &str = "vendor_profile_hardware_manager";

fn load_step(url: &str, sha256: &str, name: &str) -> Value {
    json!([{
        "interface": "deploy",
        "step": "load_manager",
        "args": {"url": url, "sha256": sha256, "name": name},
    }])
}

fn serve(dir: &Path, file: &str) -> String {
    std::fs::copy(
        agent_tests::guest_component("test_manager_vendor_profile"),
        dir.join(file),
    )
    .unwrap();
    sha256_of(&dir.join(file))
}

#[test]
fn operator_loads_a_manager_then_runs_its_step_through_manual_cleaning() {
    if skip() {
        return;
    }
    let _one = one_ironic();
    let dir = tempfile::tempdir().unwrap();
    let (root, mac) = sim_machine(dir.path());
    let served = dir.path().join("served");
    std::fs::create_dir_all(&served).unwrap();
    let sha = serve(&served, "vendor-profile.wasm");
    let server = ImageServer::start(&served);

    let (ironic, uuid, _agent) = fast_track_node(&root, &mac);

    // 1. Load the vendor manager.
    let t = Instant::now();
    let node = ironic.manual_clean(
        &uuid,
        load_step(&server.url("vendor-profile.wasm"), &sha, "vendor-profile"),
    );
    assert_eq!(
        node["provision_state"], "manageable",
        "{}",
        node["last_error"]
    );
    assert!(node["last_error"].is_null(), "{}", node["last_error"]);
    let managers = root.parent().unwrap().join("managers");
    assert!(
        managers.join("vendor-profile.wasm").is_file(),
        "installed under the name the grants know"
    );
    eprintln!(
        "manual clean load_manager: {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // 2. Its step, in a second manual clean: Ironic refreshes the agent's
    //    steps when the clean starts, so it validates and runs it.
    let t = Instant::now();
    let node = ironic.manual_clean(
        &uuid,
        json!([{
            "interface": "deploy",
            "step": "apply_vendor_profile",
            "args": {"profile": "raid10-fast"},
        }]),
    );
    assert_eq!(
        node["provision_state"], "manageable",
        "{}",
        node["last_error"]
    );
    assert_eq!(
        node["driver_internal_info"]["hardware_manager_version"][MANAGER], "1.0",
        "Ironic recorded the loaded manager's version: {}",
        node["driver_internal_info"]["hardware_manager_version"]
    );
    // Ironic logs each finished command (debug), result included: the step
    // ran in the loaded manager with the operator's argument.
    let log = std::fs::read_to_string(ironic.work.join("ironic.log")).unwrap_or_default();
    let ran = log.lines().any(|l| {
        l.contains("apply_vendor_profile")
            && l.contains("'applied': 'raid10-fast'")
            && l.contains(&format!("'by': '{MANAGER} 1.0'"))
    });
    assert!(
        ran,
        "Ironic saw apply_vendor_profile's result (see {})",
        ironic.work.join("ironic.log").display()
    );
    eprintln!(
        "manual clean apply_vendor_profile: {:.1}s",
        t.elapsed().as_secs_f64()
    );

    // 3. A wrong digest: the clean fails, saying why, and nothing is installed.
    let wrong = "0".repeat(64);
    let node = ironic.manual_clean(
        &uuid,
        load_step(&server.url("vendor-profile.wasm"), &wrong, "other-vendor"),
    );
    assert_eq!(node["provision_state"], "clean failed");
    let error = node["last_error"].as_str().unwrap_or_default();
    eprintln!("last_error after a wrong sha256: {error}");
    for part in [
        "load_manager",
        "other-vendor",
        &format!("expected sha256 {wrong}"),
        &format!("got {sha}"),
    ] {
        assert!(error.contains(part), "last_error lacks {part:?}: {error}");
    }
    assert!(!managers.join("other-vendor.wasm").exists());
}
