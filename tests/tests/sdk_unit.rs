//! The Python and JavaScript SDKs' own unit tests (their pure parts: step
//! declarations, argument checks against argsinfo, error variants), run
//! with the interpreters the example managers' toolchains use:
//! `python3 -m unittest` over sdk/python/tests and `node --test` over
//! sdk/js/test. The SDKs' parts that need a component are covered by
//! tests/tests/examples.rs, scaffold.rs and firmware_python.rs.

// Tests may unwrap: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use agent_tests::workspace_root;

fn run(cmd: &mut Command, what: &str) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn python_sdk() {
    let sdk = workspace_root().join("sdk/python");
    run(
        Command::new("python3")
            .args(["-B", "-m", "unittest", "discover", "-s", "tests"])
            .env("PYTHONPATH", sdk.join("src"))
            .current_dir(&sdk),
        "python3 -m unittest (sdk/python/tests)",
    );
}

#[test]
fn javascript_sdk() {
    run(
        Command::new("node")
            .args(["--test", "test/"])
            .current_dir(workspace_root().join("sdk/js")),
        "node --test (sdk/js/test)",
    );
}
