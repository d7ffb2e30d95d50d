//! What a hostile manager can no longer make the agent do: wait in a host
//! call past the deadline, hold a call on a FIFO, take another manager's
//! identity or its disk steps, exhaust descriptors, threads or memory with
//! handles, jobs or progress, send Ironic listings it cannot use, or keep
//! processes alive after its command. Each test fails on the agent before
//! this work (see docs/security.md).

use std::time::{Duration, Instant};

use agent_tests::host::Host;
use agent_tests::hostile::{assert_host_still_serves, fixture, step};
use agent_tests::{managers_dir, sim_host_config, stand_in_program};
use ironic_host::{DispatchError, Grants, HostConfig, SandboxFailure, StepKind};
use serde_json::json;

fn listing(host: &Host, kind: &str) -> Result<Vec<ironic_host::ManagerSteps>, DispatchError> {
    host.get_steps(
        StepKind::Clean,
        &json!({"hostile_listing": kind}),
        &json!([]),
    )
}

#[test]
fn a_listing_that_sleeps_in_a_host_call_ends_at_its_deadline() {
    let f = fixture(("test_manager_hostile", "sleeper"), "", |_, _| {});
    let started = Instant::now();
    let err = listing(&f.host, "sleep").expect_err("the sleep must be cut");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(
        matches!(&err, DispatchError::Sandbox { manager, failure: SandboxFailure::Timeout, call, .. }
            if manager == "sleeper" && call == "get-steps clean"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("deadline of 2 s exceeded"),
        "{err}"
    );
    assert_host_still_serves(&f.host);
}

#[test]
fn a_step_that_sleeps_in_a_host_call_ends_at_its_deadline() {
    let f = fixture(("test_manager_hostile", "sleeper"), "", |_, _| {});
    let started = Instant::now();
    let err = step(&f.host, "hostile_sleep", json!({})).expect_err("the sleep must be cut");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(
            &err,
            DispatchError::Sandbox {
                failure: SandboxFailure::Timeout,
                ..
            }
        ),
        "{err:?}"
    );
    assert_host_still_serves(&f.host);
}

#[test]
fn a_fifo_under_a_granted_tree_cannot_hold_a_call() {
    let grants = "[managers.reader.machine]\npaths = [\"/sys/**\"]\n";
    let f = fixture(("test_manager_hostile", "reader"), grants, |root, _| {
        std::fs::create_dir_all(root.join("sys")).expect("sys");
        let fifo = root.join("sys/fifo");
        let c = std::ffi::CString::new(fifo.to_str().expect("utf-8")).expect("path");
        // SAFETY: plain syscall on a NUL-terminated path we own.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
    });
    let started = Instant::now();
    let err = step(&f.host, "hostile_read", json!({"path": "/sys/fifo"})).expect_err("refused");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("not a regular file"), "{err}");
}

#[test]
fn a_component_that_sleeps_in_info_is_rejected_and_the_others_load() {
    let managers = managers_dir(&[
        ("test_manager_sleepy_info", "sleepy"),
        ("test_manager_override", "override"),
    ]);
    let root = tempfile::tempdir().expect("root");
    let started = Instant::now();
    let host = Host::start(HostConfig {
        limits: agent_tests::hostile::hostile_limits(),
        ..HostConfig::new(managers.path(), root.path())
    })
    .expect("override loads");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(host.managers().len(), 1);
    let rejected = host.rejected();
    assert!(
        rejected.iter().any(|r| r.file.ends_with("sleepy.wasm")
            && r.reason.contains("info: timeout: deadline of 2 s exceeded")),
        "{rejected:?}"
    );
}

/// A simulated machine with the generic manager and `extra` components.
fn generic_with(
    extra: &[(&str, &str)],
    grants: Grants,
) -> (Host, ironic_sim::SimMachine, Vec<tempfile::TempDir>) {
    let mut components = vec![("generic_manager", "generic")];
    components.extend_from_slice(extra);
    let managers = managers_dir(&components);
    let dir = tempfile::tempdir().expect("machine");
    let desc = ironic_sim::MachineDescription::from_toml(
        ironic_sim::DEFAULT_MACHINE,
        std::path::Path::new("default.toml"),
    )
    .expect("default machine");
    let sim = ironic_sim::create(&desc, &dir.path().join("m")).expect("sim");
    let host = Host::start(HostConfig {
        grants,
        ..sim_host_config(managers.path(), &sim)
    })
    .expect("host starts");
    (host, sim, vec![managers, dir])
}

#[test]
fn an_impostor_cannot_take_the_generic_managers_identity() {
    // `aaa` sorts first: the file name must not decide.
    let (host, _sim, _dirs) = generic_with(&[("test_manager_impostor", "aaa")], Grants::builtin());
    let managers = host.managers();
    assert_eq!(managers.len(), 1, "{managers:?}");
    assert_eq!(managers[0].name, "generic");
    let versions = host.versions().expect("versions");
    assert_eq!(versions["generic_hardware_manager"], "1.2");
    let rejected = host.rejected();
    assert!(
        rejected.iter().any(|r| r.file.ends_with("aaa.wasm")
            && r.reason.contains("id GenericHardwareManager")
            && r.reason.contains("generic.wasm")),
        "{rejected:?}"
    );
}

#[test]
fn a_manager_without_disk_grants_cannot_take_over_erase_devices() {
    let (host, sim, _dirs) = generic_with(&[("test_manager_hostile", "taker")], Grants::builtin());
    // One cheap zero pass (no random pass): the sparse disks stay sparse.
    let node = json!({
        "hostile_listing": "takeover",
        "driver_internal_info": {
            "agent_erase_devices_iterations": 0,
            "agent_erase_devices_zeroize": true,
        },
        "properties": {},
    });
    let listings = host
        .get_steps(StepKind::Clean, &node, &json!([]))
        .expect("listing");
    let owners = ironic_steps::deduplicate_steps(&listings);
    let erase_owner: Vec<&String> = owners
        .iter()
        .filter(|(_, steps)| {
            steps
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["step"] == "erase_devices"))
        })
        .map(|(id, _)| id)
        .collect();
    assert_eq!(erase_owner, ["GenericHardwareManager"], "{owners:?}");
    // Execution follows the listing: the generic manager erases for real.
    std::fs::write(sim.disk_path("sda"), vec![0xA5u8; 4096]).expect("dirty the disk head");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(sim.disk_path("sda"))
        .expect("open");
    file.set_len(sim.description.disks[0].size.0).expect("size");
    let out = host
        .execute_step(
            StepKind::Clean,
            "erase_devices",
            &node,
            &json!([]),
            &json!({}),
            &|_, _| {},
        )
        .expect("erase runs");
    assert_ne!(out, json!("erased"), "the impostor's no-op ran");
    let head = std::fs::read(sim.disk_path("sda")).expect("read");
    assert!(head[..4096].iter().all(|b| *b == 0), "sda was not erased");
}

#[test]
fn disk_handles_per_call_are_capped() {
    let grants = "[managers.opener.disks]\nread = [\"/dev/*\"]\n";
    let f = fixture(("test_manager_hostile", "opener"), grants, |root, _| {
        std::fs::create_dir_all(root.join("dev")).expect("dev");
        std::fs::write(root.join("dev/sda"), vec![0u8; 4096]).expect("disk");
    });
    let out = step(&f.host, "hostile_open_disks", json!({"disk": "/dev/sda"})).expect("answers");
    assert_eq!(out["opened"], 64, "{out}");
    assert!(
        out["refused"]
            .as_str()
            .is_some_and(|r| r.contains("64 open disks")),
        "{out}"
    );
    assert_host_still_serves(&f.host);
}

#[test]
fn ten_thousand_erase_jobs_run_once_per_disk() {
    let grants = "[managers.eraser.disks]\nread = [\"/dev/*\"]\nwrite = [\"/dev/*\"]\n";
    let f = fixture(("test_manager_hostile", "eraser"), grants, |root, _| {
        std::fs::create_dir_all(root.join("dev")).expect("dev");
        std::fs::write(root.join("dev/sda"), vec![0xA5u8; 1 << 20]).expect("disk");
    });
    let out = step(&f.host, "hostile_erase_flood", json!({"disk": "/dev/sda"})).expect("answers");
    assert_eq!(out, json!({"jobs": 10_000, "ok": 1}));
    let disk = std::fs::read(f.root.path().join("dev/sda")).expect("read");
    assert!(disk.iter().all(|b| *b == 0));
}

#[test]
fn progress_floods_are_bounded() {
    let f = fixture(("test_manager_hostile", "reporter"), "", |_, _| {});
    let reports = std::sync::Mutex::new(Vec::<(Option<u8>, usize)>::new());
    f.host
        .execute_step(
            StepKind::Clean,
            "hostile_progress_flood",
            // 1 MiB messages: far past the cap, yet quick on a loaded CI
            // machine (the bench floods 8 MiB ones).
            &json!({"mib": 1}),
            &json!([]),
            &json!({}),
            &|p, m| reports.lock().expect("lock").push((p, m.len())),
        )
        .expect("answers");
    let reports = reports.into_inner().expect("lock");
    assert!(!reports.is_empty());
    let longest = reports.iter().map(|(_, len)| *len).max().unwrap_or(0);
    assert!(
        longest <= 4096 + 64,
        "a progress message of {longest} bytes reached the agent"
    );
}

#[test]
fn unusable_listings_fail_naming_the_manager() {
    let f = fixture(("test_manager_hostile", "lister"), "", |_, _| {});
    for (kind, why) in [
        ("many", "more than the 1000"),
        ("bad_name", "a step name is an identifier"),
        ("bad_interface", "not an Ironic driver interface"),
        ("bad_priority", "outside 0..=1000"),
    ] {
        let err = listing(&f.host, kind).expect_err(kind);
        assert!(
            matches!(&err, DispatchError::Failed { manager, .. } if manager == "lister"),
            "{kind}: {err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains("invalid step list") && text.contains(why),
            "{kind}: {text}"
        );
    }
    assert_host_still_serves(&f.host);
}

#[test]
fn step_results_are_capped() {
    let f = fixture(("test_manager_hostile", "big"), "", |_, _| {});
    let err = step(&f.host, "hostile_huge_result", json!({"mib": 8})).expect_err("capped");
    assert!(
        err.to_string().contains("exceeds the cap of 4194304 bytes"),
        "{err}"
    );
    assert_host_still_serves(&f.host);
}

#[test]
fn a_command_times_out_with_every_process_it_started() {
    let grants = "[managers.tree.commands]\nprograms = [\"detach\"]\n";
    let pid_dir = tempfile::tempdir().expect("pid dir");
    let pid_file = pid_dir.path().join("child.pid");
    let f = fixture(("test_manager_hostile", "tree"), grants, |_, programs| {
        // A child in a session of its own that keeps stdout open, then the
        // program itself exits at once.
        let setsid = ["/usr/bin/setsid", "/bin/setsid"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .expect("setsid(1)");
        stand_in_program(
            programs,
            "detach",
            &format!(
                "{setsid} /bin/sh -c 'echo $$ > {}; exec /bin/sleep 30' &\nexit 0",
                pid_file.display()
            ),
        );
    });
    let started = Instant::now();
    let err = step(
        &f.host,
        "hostile_run",
        json!({"program": "detach", "timeout_ms": 1000}),
    )
    .expect_err("times out");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("TimedOut"), "{err}");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("the child wrote its pid")
        .trim()
        .parse()
        .expect("pid");
    // Give the kernel a moment to reap it.
    let deadline = Instant::now() + Duration::from_secs(5);
    // SAFETY: signal 0 only checks for existence.
    while unsafe { libc::kill(pid, 0) } == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let alive = unsafe { libc::kill(pid, 0) } == 0
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    assert!(!alive, "the detached child {pid} outlived its command");
}
