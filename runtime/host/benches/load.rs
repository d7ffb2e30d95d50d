//! Timing of the host's hot paths with the generic manager: cold compile vs
//! precompiled load, one instantiate + call, a full inventory on a simulated
//! machine. Plain `Instant` timing (no criterion): prints medians.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironic_host::{Grants, Host, HostConfig, Limits, NetworkSource, StepKind};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time<R>(runs: usize, mut f: impl FnMut() -> R) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(f());
                t.elapsed()
            })
            .collect(),
    )
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"));
    let wasm = target.join("wasm32-wasip2/guest/generic_manager.wasm");
    if !wasm.exists() {
        return Err(format!(
            "{} missing: build the generic manager first",
            wasm.display()
        )
        .into());
    }
    let managers = tempfile::tempdir()?;
    std::fs::copy(&wasm, managers.path().join("generic.wasm"))?;
    let machine = tempfile::tempdir()?;
    let desc = ironic_sim::MachineDescription::from_file(
        &workspace().join("tests/machines/nvme-uefi.toml"),
    )?;
    let sim = ironic_sim::create(&desc, machine.path())?;
    let cache = tempfile::tempdir()?;
    let config = |cache_dir: Option<PathBuf>| HostConfig {
        managers_dir: managers.path().to_path_buf(),
        cache_dir,
        hardware_root: sim.root.clone(),
        grants: Grants::builtin(),
        limits: Limits::default(),
        program_dirs: vec![sim.bin_dir()],
        network: NetworkSource::File(sim.addresses_file()),
    };

    let cold = time(3, || Host::start(config(None)).map(drop));
    // Populate the cache once, then time starts that deserialize it.
    drop(Host::start(config(Some(cache.path().to_path_buf())))?);
    let warm = time(20, || {
        Host::start(config(Some(cache.path().to_path_buf()))).map(drop)
    });
    let host = Host::start(config(Some(cache.path().to_path_buf())))?;
    let node = serde_json::json!({});
    let call = time(200, || {
        host.get_steps(StepKind::Clean, &node, &node).map(drop)
    });
    let inventory = time(20, || host.inventory(false).map(drop));

    println!(
        "generic_manager.wasm ({} KiB)",
        std::fs::metadata(&wasm)?.len() / 1024
    );
    println!("host start, cold compile (incl. info + evaluate calls): {cold:?}");
    println!("host start, precompiled artifact (incl. info + evaluate calls): {warm:?}");
    println!("instantiate + one call (get-steps clean): {call:?}");
    println!("full inventory on nvme-uefi sim machine: {inventory:?}");
    Ok(())
}
