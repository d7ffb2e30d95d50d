//! Per-call sandbox: store data, limits, instantiation and classification
//! of how a call ended.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cap_std::fs::Dir;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store, Trap, UpdateDeadline};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::latest::ironic::hardware::types::ManagerError;
use crate::bindings::{Export, ManagerPre};
use crate::capabilities::fallback::FallbackCtx;
use crate::capabilities::progress::ProgressSink;
use crate::capabilities::scratch::ScratchSpace;
use crate::capabilities::DeadlinePassed;
use crate::error::SandboxFailure;
use crate::policy::Policy;
use crate::text::sanitize;
use crate::{Limits, NetworkSource};

/// Bytes of guest stdout/stderr kept per call (the rest is discarded).
const GUEST_OUTPUT_CAP: usize = 64 * 1024;

/// What every call of every manager shares: the machine and the limits.
#[derive(Debug)]
pub(crate) struct Environment {
    /// The hardware root, opened once; capabilities resolve inside it.
    pub root: Dir,
    /// A simulated machine's faults file (never set for the real machine).
    pub faults_file: Option<PathBuf>,
    pub program_dirs: Vec<PathBuf>,
    pub network: NetworkSource,
    pub limits: Limits,
    /// Where scratch spaces and unpacked assets are made.
    pub scratch_dir: PathBuf,
    /// The client `fetch` downloads with (the agent's TLS settings).
    pub http: Option<reqwest::Client>,
}

/// Per-manager data the calls need.
#[derive(Debug)]
pub(crate) struct ManagerCtx {
    /// File stem: the name grants and errors use.
    pub name: String,
    pub policy: Policy,
    /// The manager's log budget, shared by all its calls.
    pub log_budget: crate::capabilities::log::LogBudget,
    /// Its verified assets.
    pub assets: crate::capabilities::assets::Assets,
    /// Its scratch space when the grant makes it last; wiped with the
    /// manager.
    pub persistent_scratch: std::sync::OnceLock<ScratchSpace>,
}

impl ManagerCtx {
    /// The scratch space that lasts from call to call, made on first use
    /// under `parent`.
    pub(crate) fn persistent_scratch(
        &self,
        parent: &std::path::Path,
    ) -> std::io::Result<&ScratchSpace> {
        if let Some(space) = self.persistent_scratch.get() {
            return Ok(space);
        }
        let cap = self.policy.scratch_bytes().unwrap_or(0);
        let made = ScratchSpace::create(parent, &self.name, cap)?;
        // A racing call may have made one first: that one is kept.
        Ok(self.persistent_scratch.get_or_init(|| made))
    }
}

/// The store's data for one call.
pub(crate) struct CallState {
    pub manager: Arc<ManagerCtx>,
    pub env: Arc<Environment>,
    pub table: ResourceTable,
    wasi: WasiCtx,
    limiter: MemoryLimiter,
    /// When the call's deadline passes (host calls and programs are capped
    /// at it).
    pub deadline: Instant,
    pub progress: Arc<ProgressSink>,
    /// Disks open now (capped by `Limits::max_open_disks`).
    pub open_disks: usize,
    /// The call's scratch space, made on first use and wiped with the call.
    pub scratch: Option<ScratchSpace>,
    /// Where the call stands in the dispatch order (for `fallback`).
    pub fallback: Option<FallbackCtx>,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and remembers that the cap was hit, so a memory bomb
/// is reported as such rather than as whatever trap follows.
struct MemoryLimiter {
    cap: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.hit = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Guest stdout/stderr: kept up to a cap, the rest silently dropped (a
/// chatty guest must not trap because of it).
#[derive(Clone)]
struct CappedOutput {
    buf: Arc<Mutex<Vec<u8>>>,
    cap: usize,
}

impl CappedOutput {
    fn new(cap: usize) -> Self {
        CappedOutput {
            buf: Arc::new(Mutex::new(Vec::new())),
            cap,
        }
    }

    fn text(&self) -> String {
        let buf = self.buf.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&buf).into_owned()
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        if let Ok(mut buf) = self.buf.lock() {
            let room = self.cap.saturating_sub(buf.len());
            buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }
    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

impl wasmtime_wasi::cli::IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        // Only WASIp3 guests use this; they get a discarding sink.
        Box::new(tokio::io::sink())
    }
}

/// A call that the sandbox stopped.
#[derive(Debug)]
pub(crate) struct SandboxError {
    pub failure: SandboxFailure,
    pub details: String,
}

/// Run `export` on a fresh instance of `pre`, with the memory cap, and the
/// deadline applied to everything the call does: wasm code is interrupted
/// at epoch checks, and a call waiting in the host (a sleep, a program, a
/// disk) is dropped when the deadline passes, which also stops what it
/// started (programs are killed, erase workers see the deadline).
pub(crate) async fn run_call<E: Export>(
    pre: &ManagerPre,
    manager: &Arc<ManagerCtx>,
    env: &Arc<Environment>,
    export: &E,
    timeout: Duration,
    progress: Arc<ProgressSink>,
    fallback: Option<FallbackCtx>,
) -> Result<Result<E::Output, ManagerError>, SandboxError> {
    let call = export.name();
    let stdout = CappedOutput::new(GUEST_OUTPUT_CAP);
    let stderr = CappedOutput::new(GUEST_OUTPUT_CAP);
    // Deny by default: no preopens, env, args; no sockets or name lookup.
    let wasi = WasiCtx::builder()
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let started = Instant::now();
    let deadline = started + timeout;
    let state = CallState {
        manager: manager.clone(),
        env: env.clone(),
        table: ResourceTable::new(),
        wasi,
        limiter: MemoryLimiter {
            cap: env.limits.memory_bytes,
            hit: false,
        },
        deadline,
        progress,
        open_disks: 0,
        scratch: None,
        fallback,
    };
    let mut store = Store::new(pre.engine(), state);
    store.limiter(|s| &mut s.limiter);
    // Wasm code yields to the executor every epoch tick, so the deadline
    // below can fire even in a loop that never calls the host; past the
    // deadline the next check traps.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if Instant::now() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    let outcome = {
        let run = async {
            let instance = pre.instantiate(&mut store).await?;
            export.call(&instance, &mut store).await
        };
        tokio::time::timeout_at(deadline.into(), run).await
    };
    let memory_hit = store.data().limiter.hit;
    drop(store);

    let (out, err) = (stdout.text(), stderr.text());
    if !out.is_empty() {
        tracing::debug!(manager = %manager.name, call, "guest stdout: {}", sanitize(out.trim_end(), 4096));
    }
    if !err.is_empty() {
        tracing::debug!(manager = %manager.name, call, "guest stderr: {}", sanitize(err.trim_end(), 4096));
    }
    let timed_out = || {
        (
            SandboxFailure::Timeout,
            format!("deadline of {} exceeded", human_duration(timeout)),
        )
    };
    let (failure, mut details) = match outcome {
        Ok(Ok(value)) => {
            tracing::trace!(manager = %manager.name, call, elapsed_us = started.elapsed().as_micros() as u64, "call finished");
            return Ok(value);
        }
        Err(_elapsed) => timed_out(),
        Ok(Err(error)) => {
            let trap = error.downcast_ref::<Trap>().copied();
            if memory_hit {
                (
                    SandboxFailure::MemoryLimit,
                    format!(
                        "memory limit of {} MiB exceeded",
                        env.limits.memory_bytes / (1024 * 1024)
                    ),
                )
            } else if trap == Some(Trap::Interrupt)
                || error.downcast_ref::<DeadlinePassed>().is_some()
            {
                timed_out()
            } else if trap.is_some() {
                (SandboxFailure::Trap, format!("{}", error.root_cause()))
            } else {
                (SandboxFailure::Contract, format!("{error:?}"))
            }
        }
    };
    // A Rust guest prints its panic message on stderr before trapping.
    let err_tail = tail(err.trim(), 2048);
    if !err_tail.is_empty() {
        details.push_str("; guest stderr: ");
        details.push_str(err_tail);
    }
    let details = sanitize(&details, 8192).into_owned();
    tracing::warn!(manager = %manager.name, call, failure = %failure, "sandbox stopped the call: {details}");
    Err(SandboxError { failure, details })
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

fn human_duration(d: Duration) -> String {
    if d.as_secs() >= 1 && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
impl CallState {
    /// A call state outside any instance, for testing capabilities directly.
    pub(crate) fn for_test(
        root: &std::path::Path,
        declared_and_granted: crate::Capabilities,
    ) -> CallState {
        let policy = Policy::new("test", declared_and_granted.clone(), declared_and_granted)
            .expect("policy");
        let limits = Limits::default();
        let env = Environment {
            root: Dir::open_ambient_dir(root, cap_std::ambient_authority()).expect("root"),
            faults_file: Some(root.join("faults.toml")),
            program_dirs: vec![],
            network: NetworkSource::File(root.join("addresses.json")),
            limits: limits.clone(),
            scratch_dir: root.join("scratch"),
            http: None,
        };
        CallState {
            manager: Arc::new(ManagerCtx {
                name: "test".into(),
                policy,
                log_budget: crate::capabilities::log::LogBudget::new(&limits),
                assets: Default::default(),
                persistent_scratch: Default::default(),
            }),
            env: Arc::new(env),
            table: ResourceTable::new(),
            wasi: WasiCtx::builder().build(),
            limiter: MemoryLimiter {
                cap: usize::MAX,
                hit: false,
            },
            deadline: Instant::now() + Duration::from_secs(60),
            progress: Arc::new(ProgressSink::new(None, &limits)),
            open_disks: 0,
            scratch: None,
            fallback: None,
        }
    }
}
