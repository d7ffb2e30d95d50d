//! Timing of the host's hot paths with the generic manager: cold compile vs
//! precompiled load, one instantiate + call, a full inventory on a simulated
//! machine. Plain `Instant` timing (no criterion): prints medians.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ironic_host::{Host, HostConfig, NetworkSource, StepKind};

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
        cache_dir,
        program_dirs: vec![sim.bin_dir()],
        network: NetworkSource::File(sim.addresses_file()),
        ..HostConfig::new(managers.path(), &sim.root)
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let start = |cache: Option<PathBuf>| rt.block_on(Host::start(config(cache)));
    let cold = time(3, || start(None).map(drop));
    // What a hot swap of a new component pays: compile, write the artifact,
    // `info` + `evaluate` (a fresh cache each run, so it always compiles).
    let cold_cached = time(3, || {
        let fresh = tempfile::tempdir().expect("cache dir");
        start(Some(fresh.path().to_path_buf())).map(drop)
    });
    let breakdown = compile_breakdown(&std::fs::read(&wasm)?)?;
    // Populate the cache once, then time starts that deserialize it.
    drop(start(Some(cache.path().to_path_buf()))?);
    let warm = time(20, || start(Some(cache.path().to_path_buf())).map(drop));
    let host = start(Some(cache.path().to_path_buf()))?;
    let node = serde_json::json!({});
    let call = time(200, || {
        rt.block_on(host.get_steps(StepKind::Clean, &node, &node))
            .map(drop)
    });
    let inventory = time(20, || rt.block_on(host.inventory(false)).map(drop));

    println!(
        "generic_manager.wasm ({} KiB)",
        std::fs::metadata(&wasm)?.len() / 1024
    );
    println!("host start, cold compile (incl. info + evaluate calls): {cold:?}");
    println!("host start, cold compile + artifact written (a hot swap's work): {cold_cached:?}");
    for (what, took) in breakdown {
        println!("  {what}: {took:?}");
    }
    println!("host start, precompiled artifact (incl. info + evaluate calls): {warm:?}");
    println!("instantiate + one call (get-steps clean): {call:?}");
    println!("full inventory on nvme-uefi sim machine: {inventory:?}");
    Ok(())
}

/// Where a cold load's time goes, with an engine configured like the host's
/// (runtime/host/src/engine.rs): compiling on all cores and on one, then
/// serializing and storing the artifact.
fn compile_breakdown(
    bytes: &[u8],
) -> Result<Vec<(&'static str, Duration)>, Box<dyn std::error::Error>> {
    use wasmtime::component::Component;
    use wasmtime::{OptLevel, RegallocAlgorithm};
    let engine = |parallel: bool, opt: OptLevel, regalloc: RegallocAlgorithm| {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        config.epoch_interruption(true);
        config.max_wasm_stack(512 * 1024);
        config.cranelift_opt_level(opt);
        config.cranelift_regalloc_algorithm(regalloc);
        config.parallel_compilation(parallel);
        wasmtime::Engine::new(&config)
    };
    let (speed, backtracking) = (OptLevel::Speed, RegallocAlgorithm::Backtracking);
    let parallel = engine(true, speed, backtracking)?;
    let single = engine(false, speed, backtracking)?;
    let no_opt = engine(true, OptLevel::None, backtracking)?;
    let single_pass = engine(true, speed, RegallocAlgorithm::SinglePass)?;
    let compile = |e: &wasmtime::Engine| Component::from_binary(e, bytes).map(drop);
    let compile_parallel = time(3, || compile(&parallel));
    let compile_single = time(3, || compile(&single));
    let compile_no_opt = time(3, || compile(&no_opt));
    let compile_single_pass = time(3, || compile(&single_pass));
    let component = Component::from_binary(&parallel, bytes)?;
    let serialize = time(5, || component.serialize().map(drop));
    let artifact = component.serialize()?;
    let dir = tempfile::tempdir()?;
    let store = time(5, || {
        use std::io::Write;
        let mut f = tempfile::NamedTempFile::new_in(dir.path())?;
        f.write_all(&artifact)?;
        f.as_file().sync_all()?;
        f.persist(dir.path().join("a.cwasm")).map_err(|e| e.error)
    });
    Ok(vec![
        ("compile, parallel", compile_parallel),
        ("compile, one thread", compile_single),
        (
            "compile, opt-level none (not used: slower code)",
            compile_no_opt,
        ),
        (
            "compile, single-pass regalloc (not used: slower code)",
            compile_single_pass,
        ),
        ("serialize", serialize),
        ("write + fsync + rename the artifact", store),
    ])
}
