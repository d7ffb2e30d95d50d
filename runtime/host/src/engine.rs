//! The wasmtime engine: configuration and the epoch ticker that drives call
//! deadlines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(10);

/// Maximum wasm stack per call.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// Native stack of the fiber a call runs on: the wasm stack plus the host
/// functions it calls.
pub const ASYNC_STACK: usize = 2 * 1024 * 1024;

/// Whether this build compiles components itself (cargo feature `compiler`,
/// Cranelift). Without it the agent only loads artifacts precompiled by
/// `ironic-agent managers compile` on an agent built with it.
pub const COMPILER: bool = cfg!(feature = "compiler");

/// Build the engine every manager shares.
pub fn build_engine() -> wasmtime::Result<Engine> {
    Engine::new(&config(COMPILER))
}

/// The engine that serves a manager arriving without an artifact while the
/// optimised code is compiled: Winch, wasmtime's single-pass baseline
/// compiler, compiles a CPython or SpiderMonkey component in about a
/// second where Cranelift takes several (docs/benchmarks.md). Its code is
/// slower and never cached; the same deadlines, stack and async settings
/// apply (only the compiler differs from [`config`]).
#[cfg(feature = "compiler")]
pub fn build_baseline_engine() -> wasmtime::Result<Engine> {
    let mut config = config(false);
    config.enable_compiler(true);
    config.strategy(wasmtime::Strategy::Winch);
    Engine::new(&config)
}

/// The CPU `ironic-agent managers compile --cpu` compiles for when a ramdisk
/// is built: x86-64-v2 (SSE4.2, POPCNT, CMPXCHG16B) is what every x86-64
/// server of the last fifteen years has, and what QEMU's emulated CPUs offer.
pub const PORTABLE_CPU: &str = if cfg!(target_arch = "x86_64") {
    "x86-64-v2"
} else {
    "baseline"
};

/// An engine that compiles for a named CPU of this architecture instead of
/// the CPU it runs on: `baseline` (the architecture's base instruction set)
/// or a Cranelift ISA preset such as `x86-64-v2` or `x86-64-v3`. Its
/// artifacts load on any CPU with those features, so a ramdisk built on a
/// new machine does not recompile its managers on an older or emulated one.
/// The cache key is the default engine's: the key leaves CPU features out,
/// and wasmtime checks an artifact's features against the CPU at load.
#[cfg(feature = "compiler")]
pub fn build_engine_for_cpu(cpu: &str) -> wasmtime::Result<Engine> {
    let mut config = config(true);
    // With an explicit target wasmtime infers no host CPU features
    // (wasmtime `Config::target`); only architecture and OS are compared
    // when the artifact is loaded, so the environment (gnu, musl) is left out.
    config.target(&format!(
        "{}-unknown-{}",
        std::env::consts::ARCH,
        std::env::consts::OS
    ))?;
    if cpu != "baseline" {
        // SAFETY: an ISA preset only enables CPU features; wasmtime refuses
        // the artifact on a CPU without them (`Engine::check_compatible_with_isa_flag`).
        unsafe {
            config.cranelift_flag_enable(cpu);
        }
    }
    Engine::new(&config)
        .map_err(|e| wasmtime::format_err!("CPU {cpu:?} for compiling managers: {e:#}"))
}

/// An engine that never compiles, as in a build without the `compiler`
/// feature, for testing that path in the default build.
#[cfg(all(test, feature = "compiler"))]
pub(crate) fn build_precompiled_only_engine() -> wasmtime::Result<Engine> {
    Engine::new(&config(false))
}

/// Everything here except the compiler settings must be the same with and
/// without the compiler: wasmtime refuses an artifact whose tunables or wasm
/// features differ from the loading engine's.
#[cfg_attr(not(feature = "compiler"), allow(unused_variables))]
pub(crate) fn config(compiler: bool) -> Config {
    let mut config = Config::new();
    #[cfg(feature = "compiler")]
    {
        config.enable_compiler(compiler);
        if compiler {
            config.cranelift_opt_level(wasmtime::OptLevel::Speed);
        }
    }
    config.wasm_component_model(true);
    // Deadlines: cheap checks in loops and function entries.
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.async_stack_size(ASYNC_STACK);
    config
}

/// The engine configuration as the artifact cache key records it. Built
/// from what both builds know (not from the compiler's flags, which only a
/// build with the compiler has), so an artifact made with the compiler is
/// found by an agent built without it. Whether the artifact really fits is
/// still checked by wasmtime when loading it (target, code-generation
/// flags, CPU features, tunables, wasm features).
pub fn profile(engine: &Engine) -> String {
    format!(
        "{}-{};{};epoch-interruption;max-wasm-stack={MAX_WASM_STACK};opt=speed",
        std::env::consts::ARCH,
        std::env::consts::OS,
        if engine.is_pulley() {
            "pulley"
        } else {
            "native"
        },
    )
}

/// Thread incrementing the engines' epochs every [`TICK`]; stops on drop.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Start ticking `engines` (the optimising and the baseline one: a
    /// deadline counts the same ticks whichever compiled the code).
    pub fn start(engines: Vec<Engine>) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // A weak reference would be nicer, but Engine is a cheap Arc clone and
        // the ticker is stopped explicitly when the host goes away.
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // Parked rather than slept so that drop can wake it at once.
                    std::thread::park_timeout(TICK);
                    for engine in &engines {
                        engine.increment_epoch();
                    }
                }
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
