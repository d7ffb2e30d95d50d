//! The wasmtime engine: configuration and the epoch ticker that drives call
//! deadlines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances; deadlines are counted in these ticks.
pub const TICK: Duration = Duration::from_millis(10);

/// Maximum wasm stack per call. Kept well under the 2 MiB native stack of
/// tokio's blocking threads, which the call runs on.
pub const MAX_WASM_STACK: usize = 512 * 1024;

/// Build the engine every manager shares.
pub fn build_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Deadlines: cheap checks in loops and function entries.
    config.epoch_interruption(true);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    Engine::new(&config)
}

/// Thread incrementing the engine's epoch every [`TICK`]; stops on drop.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Start ticking `engine`.
    pub fn start(engine: &Engine) -> std::io::Result<EpochTicker> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        // A weak reference would be nicer, but Engine is a cheap Arc clone and
        // the ticker is stopped explicitly when the host goes away.
        let engine = engine.clone();
        let thread = std::thread::Builder::new()
            .name("wasm-epoch".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // Parked rather than slept so that drop can wake it at once.
                    std::thread::park_timeout(TICK);
                    engine.increment_epoch();
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

/// Number of epoch ticks for a timeout (at least one, rounded up).
pub fn ticks_for(timeout: Duration) -> u64 {
    let tick = TICK.as_millis().max(1);
    let ticks = timeout.as_millis().div_ceil(tick);
    u64::try_from(ticks).unwrap_or(u64::MAX).max(1)
}
