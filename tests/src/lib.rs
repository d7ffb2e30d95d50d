//! Shared helpers for the black-box tests: where the built agent and the
//! built guest components are.
//!
//! `make test` builds both before running the suite; running `cargo test`
//! alone after `make build` works too.

use std::path::{Path, PathBuf};

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
