//! Hostile managers: each misbehaves in its own way, fails alone with an
//! error naming the manager and the call, and the same host keeps serving a
//! well-behaved manager afterwards.

use std::path::Path;
use std::time::{Duration, Instant};

use agent_tests::host::Host;
use agent_tests::hostile::{
    assert_host_still_serves, assert_names, fixture, fixture_compiled, fixture_declaring, step,
};
use agent_tests::{managers_dir, stand_in_program};
use ironic_host::{DispatchError, HostConfig, HostError, LoadedFrom, SandboxFailure, Tiering};
use serde_json::json;

#[test]
fn infinite_loop_times_out() {
    let f = fixture(("test_manager_hostile", "loop"), "", |_, _| {});
    let started = Instant::now();
    let err = step(&f.host, "hostile_loop", json!({})).expect_err("loop must be stopped");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "deadline not enforced: {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&err, DispatchError::Sandbox { manager, failure: SandboxFailure::Timeout, .. } if manager == "loop"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("deadline of 2 s exceeded"),
        "{err}"
    );
    assert_names(&err, "loop", "hostile_loop");
    assert_host_still_serves(&f.host);
    // The looping manager itself gets a fresh instance next time.
    assert!(matches!(
        step(&f.host, "hostile_loop", json!({})),
        Err(DispatchError::Sandbox {
            failure: SandboxFailure::Timeout,
            ..
        })
    ));
}

/// Baseline (Winch) code, what a manager arriving without an artifact runs
/// until its optimised code is ready, is held to the same deadline, memory
/// cap and trap handling as optimised code.
#[test]
fn baseline_code_is_held_to_the_same_limits() {
    let f = fixture_compiled(
        ("test_manager_hostile", "hostile"),
        None,
        "",
        |_, _| {},
        Tiering::BaselineOnly,
    );
    for m in f.host.managers() {
        assert_eq!(m.loaded_from, LoadedFrom::Baseline, "{}", m.name);
    }
    for (name, expected) in [
        ("hostile_loop", SandboxFailure::Timeout),
        ("hostile_membomb", SandboxFailure::MemoryLimit),
        ("hostile_panic", SandboxFailure::Trap),
    ] {
        let started = Instant::now();
        let err = step(&f.host, name, json!({})).expect_err(name);
        assert!(
            matches!(&err, DispatchError::Sandbox { failure, .. } if *failure == expected),
            "{name}: {err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{name}: {:?}",
            started.elapsed()
        );
    }
    assert_host_still_serves(&f.host);
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    let f = fixture(("test_manager_hostile", "membomb"), "", |_, _| {});
    let err = step(&f.host, "hostile_membomb", json!({})).expect_err("bomb must be stopped");
    assert!(
        matches!(&err, DispatchError::Sandbox { manager, failure: SandboxFailure::MemoryLimit, .. } if manager == "membomb"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("memory limit of 64 MiB exceeded"),
        "{err}"
    );
    assert_names(&err, "membomb", "hostile_membomb");
    assert_host_still_serves(&f.host);
}

#[test]
fn panic_is_a_trap_with_the_panic_message() {
    let f = fixture(("test_manager_hostile", "panic"), "", |_, _| {});
    let err = step(&f.host, "hostile_panic", json!({})).expect_err("panic must fail the call");
    assert!(
        matches!(&err, DispatchError::Sandbox { manager, failure: SandboxFailure::Trap, .. } if manager == "panic"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("hostile manager panicked on purpose"),
        "{err}"
    );
    assert_names(&err, "panic", "hostile_panic");
    assert_host_still_serves(&f.host);
}

#[test]
fn paths_cannot_escape_the_hardware_root() {
    let grants = "[managers.escape.machine]\npaths = [\"/sys/**\", \"/etc/**\"]\n";
    let f = fixture(("test_manager_hostile", "escape"), grants, |root, _| {
        let sys = root.join("sys");
        std::fs::create_dir_all(sys.join("devices/sda")).expect("mkdir");
        std::fs::write(sys.join("devices/sda/size"), "2048\n").expect("write");
        std::fs::create_dir_all(sys.join("block")).expect("mkdir");
        // sysfs-style relative link inside the root: must work.
        std::os::unix::fs::symlink("../devices/sda", sys.join("block/sda")).expect("symlink");
        // Links leading out of the root: must not.
        std::os::unix::fs::symlink("/etc/shadow", sys.join("escape")).expect("symlink");
        std::os::unix::fs::symlink("../../../../../../etc/shadow", sys.join("escape2"))
            .expect("symlink");
        std::os::unix::fs::symlink("/etc/passwd", sys.join("escape3")).expect("symlink");
    });
    let read = |path: &str| step(&f.host, "hostile_escape", json!({ "path": path }));

    // Control: relative links inside the root resolve, as sysfs needs.
    assert_eq!(
        read("/sys/block/sda/size").expect("in-root link"),
        json!({"content": "2048\n"})
    );

    let host_passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    for (path, expected) in [
        ("/sys/../../etc/shadow", "InvalidPath"),
        ("/sys/escape", "InvalidPath"),
        ("/sys/escape2", "InvalidPath"),
        ("/sys/escape3", "InvalidPath"),
        // Inside the grant, but resolved inside the (empty) root.
        ("/etc/shadow", "NotFound"),
        ("/sys/../etc/passwd", "NotFound"),
        // Outside the grant.
        ("/proc/self/environ", "Denied"),
    ] {
        let err = read(path).expect_err(path);
        let text = err.to_string();
        assert!(
            matches!(&err, DispatchError::Failed { manager, .. } if manager == "escape"),
            "{path}: {err:?}"
        );
        assert!(
            text.contains(expected),
            "{path}: expected {expected}: {text}"
        );
        assert!(
            !text.contains("root:"),
            "{path}: host file contents leaked: {text}"
        );
        if !host_passwd.is_empty() {
            assert!(
                !text.contains(host_passwd.lines().next().unwrap_or("root:x:0:0")),
                "{path}: leak"
            );
        }
    }
    assert_host_still_serves(&f.host);
}

#[test]
fn disk_write_needs_a_write_grant() {
    // Declared and granted read only.
    let grants = "[managers.diskwrite.disks]\nread = [\"/dev/*\"]\n";
    let f = fixture(("test_manager_hostile", "diskwrite"), grants, |root, _| {
        std::fs::create_dir_all(root.join("dev")).expect("mkdir");
        let disk = std::fs::File::create(root.join("dev/sda")).expect("disk");
        disk.set_len(1024 * 1024).expect("size");
    });
    let ok = step(
        &f.host,
        "hostile_diskwrite",
        json!({"disk": "/dev/sda", "access": "read-only"}),
    )
    .expect("read grant");
    assert_eq!(ok, json!({"size": 1048576, "logical": 512}));

    let err = step(
        &f.host,
        "hostile_diskwrite",
        json!({"disk": "/dev/sda", "access": "read-write"}),
    )
    .expect_err("write must be denied");
    let text = err.to_string();
    assert!(
        matches!(&err, DispatchError::Failed { manager, .. } if manager == "diskwrite"),
        "{err:?}"
    );
    assert!(
        text.contains("Denied")
            && text.contains("write access to disk /dev/sda not declared by manager diskwrite"),
        "{text}"
    );
    let contents = std::fs::read(f.root.path().join("dev/sda")).expect("read disk");
    assert!(contents.iter().all(|b| *b == 0), "the disk was written");

    let err = step(
        &f.host,
        "hostile_diskwrite",
        json!({"disk": "/dev/../etc/shadow"}),
    )
    .expect_err("bad name");
    assert!(err.to_string().contains("invalid disk name"), "{err}");
    assert_host_still_serves(&f.host);
}

#[test]
fn programs_must_be_declared_and_granted() {
    // Declares echo-ok; granted echo-ok and sh. (A manager declaring a
    // program it is not granted waits for grants: tests/tests/grants.rs.)
    let grants = "[managers.badprogram.commands]\nprograms = [\"echo-ok\", \"sh\"]\n";
    let f = fixture_declaring(
        ("test_manager_hostile", "badprogram"),
        Some("log = true\n[commands]\nprograms = [\"echo-ok\"]\n"),
        grants,
        |_, programs| {
            stand_in_program(
                programs,
                "echo-ok",
                "echo ok; echo \"PATH=$PATH HOME=${HOME:-unset}\" >&2",
            );
            stand_in_program(programs, "lshw", "echo lshw");
            stand_in_program(programs, "sh", "echo sh");
        },
    );
    let out =
        step(&f.host, "hostile_run", json!({"program": "echo-ok"})).expect("allowed program runs");
    assert_eq!(out, json!({"exit": 0, "stdout": "ok\n"}));

    for (program, why) in [
        ("lshw", "program lshw not declared by manager badprogram"),
        ("sh", "program sh not declared by manager badprogram"),
        ("/bin/sh", "only bare program names"),
    ] {
        let err = step(&f.host, "hostile_run", json!({ "program": program })).expect_err(program);
        let text = err.to_string();
        assert!(
            matches!(&err, DispatchError::Failed { manager, .. } if manager == "badprogram"),
            "{err:?}"
        );
        assert!(
            text.contains("Denied") && text.contains(why),
            "{program}: {text}"
        );
    }
    assert_host_still_serves(&f.host);
}

#[test]
fn a_gigabyte_of_output_is_cut_off() {
    let grants = "[managers.bigoutput.commands]\nprograms = [\"spew\"]\n";
    let f = fixture(
        ("test_manager_hostile", "bigoutput"),
        grants,
        |_, programs| {
            // Programs get PATH = the program dirs only, so name `head` by path.
            let head = ["/usr/bin/head", "/bin/head"]
                .into_iter()
                .find(|p| Path::new(p).exists())
                .expect("head(1)");
            stand_in_program(
                programs,
                "spew",
                &format!("exec {head} -c 1073741824 /dev/zero"),
            );
        },
    );
    let started = Instant::now();
    let err = step(&f.host, "hostile_spew", json!({})).expect_err("output cap");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let text = err.to_string();
    assert!(
        matches!(&err, DispatchError::Failed { manager, .. } if manager == "bigoutput"),
        "{err:?}"
    );
    assert!(
        text.contains("OutputTooLarge") && text.contains("spew") && text.contains("1048576 bytes"),
        "{text}"
    );
    assert_host_still_serves(&f.host);
}

#[test]
fn unusable_components_are_rejected_and_the_rest_load() {
    let managers = managers_dir(&[("test_manager_override", "override")]);
    std::fs::write(managers.path().join("garbage.wasm"), b"not a component").expect("write");
    let root = tempfile::tempdir().expect("root");
    let config = HostConfig::new(managers.path(), root.path());
    let host = Host::start(config.clone()).expect("override loads");
    assert_eq!(host.managers().len(), 1);
    let rejected = host.rejected();
    assert_eq!(rejected.len(), 1);
    assert!(rejected[0].file.ends_with("garbage.wasm"), "{rejected:?}");

    std::fs::remove_file(managers.path().join("override.wasm")).expect("rm");
    match Host::start(config) {
        Err(e @ HostError::HardwareManagerNotFound { .. }) => {
            assert!(e.to_string().contains("garbage.wasm"), "{e}")
        }
        other => panic!("expected HardwareManagerNotFound, got {other:?}"),
    }
}
