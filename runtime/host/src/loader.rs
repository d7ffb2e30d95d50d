//! Turning a component's bytes into a [`LoadedManager`]: manifest and
//! grants, compile (or the artifact cache), contract version, linking,
//! then `info` and `evaluate-hardware-support` in the sandbox, and the
//! checks on what the manager says about itself.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Instant;

use anyhow::Context;
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use crate::artifact::{
    cache_key, cached_component, compile_component, load_component_keyed, LoadedFrom,
};
use crate::bindings::latest::ironic::hardware::types::ManagerError;
use crate::bindings::{self, ContractVersion, EvaluateSupport, Info, ManagerPre};
use crate::capabilities::log::LogBudget;
use crate::capabilities::progress::ProgressSink;
use crate::engine::build_engine;
use crate::error::HostError;
use crate::grants::{GrantSources, Grants};
use crate::manifest::{find_manifest, Capabilities, ManifestSource};
use crate::policy::{grants_verdict, Policy};
use crate::registry::Validation;
use crate::sandbox::{run_call, CallState, Environment, ManagerCtx};
use crate::text::sanitize;
use crate::HostConfig;

/// Components compiled by this process, kept so that the same bytes are
/// never compiled twice even without a cache directory. Bounded: a
/// long-running agent swapping many versions must not grow without limit.
const MEMORY_CACHE_ENTRIES: usize = 32;

/// Managers served from baseline code whose optimised compile may wait at
/// once; past it a manager keeps its baseline code (logged) until it is
/// loaded again. Bounds the component bytes held for the queue.
const OPTIMISE_QUEUE: usize = 32;

/// How a running host compiles a component that arrives without an
/// artifact in the cache (validation and `managers compile` always compile
/// optimised code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tiering {
    /// Serve at once from baseline (Winch) code, replaced by optimised
    /// (Cranelift) code, which is cached, when it is ready.
    #[default]
    BaselineFirst,
    /// Compile optimised code before serving: a slower arrival.
    OptimisedOnly,
    /// Baseline code only, never replaced nor cached: to check that
    /// baseline code is held to the same limits as optimised code.
    BaselineOnly,
}

/// A manager ready to be called.
pub(crate) struct LoadedManager {
    pub file: std::path::PathBuf,
    pub ctx: Arc<ManagerCtx>,
    pub code: Arc<ManagerCode>,
    pub id: String,
    pub manager_name: String,
    pub version: String,
    pub support: u32,
    pub manifest: ManifestSource,
}

/// A manager's compiled code. A manager that arrives without an artifact
/// runs baseline code first, and the optimised code takes its place when
/// ready; each call takes the code of the moment it starts, so calls in
/// flight finish on what they began with. Both are the same component, so
/// nothing the manager said about itself changes.
pub(crate) struct ManagerCode {
    current: RwLock<(ManagerPre, LoadedFrom)>,
    /// How the first code was obtained.
    pub arrived_as: LoadedFrom,
}

impl ManagerCode {
    fn new(pre: ManagerPre, from: LoadedFrom) -> Arc<ManagerCode> {
        Arc::new(ManagerCode {
            current: RwLock::new((pre, from)),
            arrived_as: from,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, (ManagerPre, LoadedFrom)> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The code to start a call with.
    pub fn pre(&self) -> ManagerPre {
        self.read().0.clone()
    }

    /// How the code now in use was obtained.
    pub fn loaded_from(&self) -> LoadedFrom {
        self.read().1
    }

    pub fn contract(&self) -> ContractVersion {
        self.read().0.version()
    }

    fn replace(&self, pre: ManagerPre, from: LoadedFrom) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = (pre, from);
    }
}

impl LoadedManager {
    /// The operator lets it write some disk.
    pub(crate) fn may_write_disks(&self) -> bool {
        !self.ctx.policy.granted().disks.write.is_empty()
            && !self.ctx.policy.declared().disks.write.is_empty()
    }
}

/// What loading a component came to.
pub(crate) enum LoadOutcome {
    Loaded(Box<LoadedManager>),
    /// Valid, but `evaluate-hardware-support` answered 0.
    NotForThisHardware,
    /// Not run at all: it declares capabilities not granted.
    WaitingForGrants {
        missing: Vec<String>,
        reason: String,
    },
}

/// Engine, linker and configuration: everything needed to turn bytes into
/// a validated [`LoadedManager`].
pub(crate) struct ComponentLoader {
    engine: Engine,
    linker: Linker<CallState>,
    /// Set when a component without an artifact is served from baseline
    /// code at once (see [`ManagerCode`]).
    baseline: Option<Baseline>,
    /// The optimising worker's queue, started with the first job.
    optimiser: Mutex<Option<SyncSender<OptimiseJob>>>,
    pub config: HostConfig,
    pub(crate) env: Arc<Environment>,
    compiled: Mutex<HashMap<String, Component>>,
    /// Where the grants come from, and what they are now.
    pub(crate) grant_sources: GrantSources,
    grants: std::sync::RwLock<Arc<Grants>>,
}

/// The baseline compiler's engine and its linker (a component links only
/// against a linker of its own engine).
struct Baseline {
    engine: Engine,
    linker: Linker<CallState>,
}

/// A manager running baseline code, to compile optimised code for.
struct OptimiseJob {
    loader: Weak<ComponentLoader>,
    code: Weak<ManagerCode>,
    name: String,
    file: PathBuf,
    bytes: Arc<Vec<u8>>,
    contract: ContractVersion,
}

impl ComponentLoader {
    /// A loader; components without an artifact are compiled as
    /// `config.tiering` says.
    pub fn new(config: HostConfig) -> Result<ComponentLoader, HostError> {
        let engine = build_engine().map_err(|e| HostError::Engine(format!("{e:?}")))?;
        let root =
            cap_std::fs::Dir::open_ambient_dir(&config.hardware_root, cap_std::ambient_authority())
                .map_err(|e| HostError::Io {
                    path: config.hardware_root.clone(),
                    message: format!("opening the hardware root: {e}"),
                })?;
        let http = http_client(config.fetch_tls.clone())
            .map_err(|e| HostError::Engine(format!("the fetch client: {e}")))?;
        let env = Arc::new(Environment {
            root,
            faults_file: config.faults_file.clone(),
            program_dirs: config.program_dirs.clone(),
            network: config.network.clone(),
            limits: config.limits.clone(),
            scratch_dir: config.scratch_dir.clone(),
            http: Some(http),
        });
        let mut linker: Linker<CallState> = Linker::new(&engine);
        bindings::add_to_linker(&mut linker).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let baseline = if config.tiering != Tiering::OptimisedOnly {
            baseline()
        } else {
            None
        };
        let grant_sources = GrantSources {
            base: config.grants.clone(),
            file: config.grants_file.clone(),
            dir: config.grants_dir.clone(),
        };
        let (grants, skipped) = grant_sources.read()?;
        log_skipped_grants(&skipped);
        Ok(ComponentLoader {
            engine,
            linker,
            baseline,
            optimiser: Mutex::new(None),
            config,
            env,
            compiled: Mutex::new(HashMap::new()),
            grant_sources,
            grants: std::sync::RwLock::new(Arc::new(grants)),
        })
    }

    /// The grants now in force.
    pub fn grants(&self) -> Arc<Grants> {
        match self.grants.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Put `grants` in force; returns the previous ones.
    pub fn replace_grants(&self, grants: Grants) -> Arc<Grants> {
        let grants = Arc::new(grants);
        match self.grants.write() {
            Ok(mut g) => std::mem::replace(&mut *g, grants),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), grants),
        }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Every engine code may run on: what the epoch ticker advances.
    pub fn engines(&self) -> Vec<Engine> {
        let mut engines = vec![self.engine.clone()];
        engines.extend(self.baseline.as_ref().map(|b| b.engine.clone()));
        engines
    }

    /// Compile (or fetch from memory or the artifact cache) `bytes`.
    /// Compiling is CPU work of up to seconds: callers on the async runtime
    /// use [`ComponentLoader::component_async`].
    pub fn component(&self, file: &Path, bytes: &[u8]) -> anyhow::Result<(Component, LoadedFrom)> {
        let key = cache_key(&self.engine, bytes);
        if let Some(c) = self.in_memory(&key) {
            return Ok((c, LoadedFrom::Memory));
        }
        let (component, from) = load_component_keyed(
            &self.engine,
            file,
            bytes,
            &key,
            self.config.cache_dir.as_deref(),
            self.config.limits.max_cache_bytes,
        )?;
        self.remember(key, &component);
        Ok((component, from))
    }

    /// The component to serve `bytes` with now: optimised code from memory
    /// or the artifact cache when there is some; else baseline code when
    /// this loader is tiered (the caller queues the optimised compile);
    /// else optimised code compiled now.
    fn component_to_serve(
        &self,
        file: &Path,
        bytes: &[u8],
    ) -> anyhow::Result<(Component, LoadedFrom)> {
        let Some(baseline) = &self.baseline else {
            return self.component(file, bytes);
        };
        if self.config.tiering != Tiering::BaselineOnly {
            let key = cache_key(&self.engine, bytes);
            if let Some(c) = self.in_memory(&key) {
                return Ok((c, LoadedFrom::Memory));
            }
            let cache_dir = self.config.cache_dir.as_deref();
            if let Ok(c) = cached_component(&self.engine, file, &key, cache_dir) {
                self.remember(key, &c);
                return Ok((c, LoadedFrom::Cache));
            }
        }
        match compile_component(&baseline.engine, "winch", file, bytes) {
            Ok(c) => Ok((c, LoadedFrom::Baseline)),
            // Winch does not cover every wasm feature on every
            // architecture: such a component waits for Cranelift.
            Err(e) => {
                tracing::info!(component = %file.display(), "baseline compiler refused the component, compiling optimised code now: {e:#}");
                self.component(file, bytes)
            }
        }
    }

    /// Optimised code this process already compiled or loaded for `key`.
    fn in_memory(&self, key: &str) -> Option<Component> {
        self.compiled.lock().ok()?.get(key).cloned()
    }

    fn remember(&self, key: String, component: &Component) {
        if let Ok(mut map) = self.compiled.lock() {
            if map.len() >= MEMORY_CACHE_ENTRIES {
                map.clear();
            }
            map.insert(key, component.clone());
        }
    }

    /// [`ComponentLoader::component_to_serve`] on the blocking pool.
    async fn component_async(
        self: &Arc<Self>,
        file: &Path,
        bytes: Arc<Vec<u8>>,
    ) -> anyhow::Result<(Component, LoadedFrom)> {
        let loader = self.clone();
        let file = file.to_path_buf();
        tokio::task::spawn_blocking(move || loader.component_to_serve(&file, &bytes))
            .await
            .context("the compile worker failed")?
    }

    /// Link `component` with the linker of the engine that compiled it.
    fn link(&self, component: &Component, contract: ContractVersion) -> anyhow::Result<ManagerPre> {
        let linker = match &self.baseline {
            Some(b) if Engine::same(component.engine(), &b.engine) => &b.linker,
            _ => &self.linker,
        };
        let instance_pre = linker
            .instantiate_pre(component)
            .map_err(|e| anyhow::anyhow!("{e:?}{}", import_hint(component)))
            .with_context(|| format!("linking against contract ironic:hardware@{contract}"))?;
        ManagerPre::new(contract, instance_pre)
    }

    /// Compile the optimised code of a manager served from baseline code,
    /// on a worker thread, one manager at a time; the manager switches to
    /// it when it is ready.
    fn queue_optimise(self: &Arc<Self>, job: OptimiseJob) {
        let mut slot = self.optimiser.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            let (tx, rx) = std::sync::mpsc::sync_channel(OPTIMISE_QUEUE);
            match std::thread::Builder::new()
                .name("wasm-optimise".into())
                .spawn(move || optimise_worker(rx))
            {
                Ok(_) => *slot = Some(tx),
                Err(e) => {
                    tracing::warn!(manager = %job.name, "no thread for compiling optimised code ({e}); the manager keeps its baseline code");
                    return;
                }
            }
        }
        let Some(tx) = slot.as_ref() else { return };
        match tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => {
                tracing::warn!(manager = %job.name, "{OPTIMISE_QUEUE} managers already wait for optimised code; this one keeps its baseline code until it is loaded again")
            }
            Err(TrySendError::Disconnected(job)) => {
                tracing::warn!(manager = %job.name, "the optimising worker has stopped; the manager keeps its baseline code")
            }
        }
    }

    /// Validate and load one component from `bytes` (read from `file`).
    /// The grants are those in force, or `grants` when given (a manager
    /// validated together with the grants it is installed with). The
    /// grants verdict comes first: a manager waiting for grants is not
    /// compiled, let alone run.
    pub async fn load(
        self: &Arc<Self>,
        file: &Path,
        bytes: Arc<Vec<u8>>,
        grants: Option<&Capabilities>,
        trace: &mut Option<Validation>,
    ) -> anyhow::Result<LoadOutcome> {
        let name = crate::registry::manager_name(file)?;
        let (declared, manifest) = find_manifest(file, &bytes)?;
        let granted = match grants {
            Some(g) => g.union(&self.grants().for_manager(&name)),
            None => self.grants().for_manager(&name),
        };
        let verdict = grants_verdict(&name, &declared, &granted);
        if let Some(v) = trace.as_mut() {
            v.manifest = Some(manifest.clone());
            v.declared = declared.clone();
            v.granted = granted.clone();
            v.ungranted = verdict
                .as_ref()
                .err()
                .map(|e| e.0.clone())
                .unwrap_or_default();
        }
        if let Err((missing, reason)) = verdict {
            return Ok(LoadOutcome::WaitingForGrants { missing, reason });
        }
        let assets = crate::capabilities::assets::load_assets(
            file,
            &declared.assets,
            &self.config.scratch_dir,
        )?;
        let policy = Policy::new(&name, declared, granted)?;
        let (component, loaded_from) = self.component_async(file, bytes.clone()).await?;
        let contract = bindings::detect(&component).map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(v) = trace.as_mut() {
            v.contract = Some(contract);
        }
        let pre = self.link(&component, contract)?;
        let ctx = Arc::new(ManagerCtx {
            name: name.clone(),
            policy,
            log_budget: LogBudget::new(&self.config.limits),
            assets,
            persistent_scratch: Default::default(),
        });
        let timeout = self.config.limits.call_timeout;
        let env = &self.env;
        let quiet = || Arc::new(ProgressSink::new(None, &self.config.limits));

        let info = run_call(&pre, &ctx, env, &Info, timeout, quiet(), None)
            .await
            .map_err(|e| anyhow::anyhow!("info: {}: {}", e.failure, e.details))?
            .map_err(|e| anyhow::anyhow!("info: {}", manager_error_text(&e)))?;
        let id = checked_identifier("id", &info.id)?;
        let manager_name = checked_identifier("name", &info.name)?;
        let version = checked_version(&info.version)?;
        if let Some(v) = trace.as_mut() {
            v.info = Some((id.clone(), manager_name.clone(), version.clone()));
        }
        let support = run_call(&pre, &ctx, env, &EvaluateSupport, timeout, quiet(), None)
            .await
            .map_err(|e| {
                anyhow::anyhow!("evaluate-hardware-support: {}: {}", e.failure, e.details)
            })?
            .map_err(|e| {
                anyhow::anyhow!("evaluate-hardware-support: {}", manager_error_text(&e))
            })?;
        if let Some(v) = trace.as_mut() {
            v.support = Some(support);
        }
        if support == 0 {
            return Ok(LoadOutcome::NotForThisHardware);
        }
        let code = ManagerCode::new(pre, loaded_from);
        if loaded_from == LoadedFrom::Baseline && self.config.tiering == Tiering::BaselineFirst {
            self.queue_optimise(OptimiseJob {
                loader: Arc::downgrade(self),
                code: Arc::downgrade(&code),
                name: name.clone(),
                file: file.to_path_buf(),
                bytes,
                contract,
            });
        }
        Ok(LoadOutcome::Loaded(Box::new(LoadedManager {
            file: file.to_path_buf(),
            ctx,
            code,
            id,
            manager_name,
            version,
            support,
            manifest,
        })))
    }
}

/// The baseline engine and its linker, when this build can compile and the
/// baseline compiler serves this architecture.
fn baseline() -> Option<Baseline> {
    #[cfg(feature = "compiler")]
    {
        let engine = match crate::engine::build_baseline_engine() {
            Ok(engine) => engine,
            Err(e) => {
                tracing::info!("no baseline compiler on this machine, managers without an artifact are served once optimised: {e:#}");
                return None;
            }
        };
        let mut linker: Linker<CallState> = Linker::new(&engine);
        match bindings::add_to_linker(&mut linker) {
            Ok(()) => Some(Baseline { engine, linker }),
            Err(e) => {
                tracing::warn!("linking the baseline engine: {e:#}");
                None
            }
        }
    }
    #[cfg(not(feature = "compiler"))]
    None
}

/// Compiles optimised code for the managers queued, one at a time, until
/// the loader goes away. A manager dropped meanwhile is skipped; the
/// artifact is cached as any compile's is, so the next load starts
/// optimised.
fn optimise_worker(jobs: Receiver<OptimiseJob>) {
    while let Ok(job) = jobs.recv() {
        let Some(loader) = job.loader.upgrade() else {
            continue;
        };
        if job.code.strong_count() == 0 {
            continue;
        }
        let start = Instant::now();
        // Usually compiled now; from memory or the cache when the same
        // bytes were optimised meanwhile (another file, or another agent).
        let optimised = loader
            .component(&job.file, &job.bytes)
            .and_then(|(component, from)| Ok((loader.link(&component, job.contract)?, from)));
        match (optimised, job.code.upgrade()) {
            (Ok((pre, from)), Some(code)) => {
                code.replace(pre, from);
                tracing::info!(manager = %job.name, elapsed_ms = start.elapsed().as_millis() as u64, "optimised code replaces the baseline code");
            }
            (Ok(_), None) => {}
            (Err(e), _) => {
                tracing::warn!(manager = %job.name, "compiling optimised code failed; the manager keeps its baseline code: {e:#}")
            }
        }
    }
}

/// Advice for imports the host never provides. Toolchains for Python and
/// JavaScript add `wasi:http` by default; a manager downloads with the
/// contract's `fetch` instead (docs/managers/README.md).
fn import_hint(component: &Component) -> String {
    let http = component
        .component_type()
        .imports(component.engine())
        .any(|(name, _)| name.starts_with("wasi:http/"));
    if http {
        "; hint: the component imports wasi:http, which managers do not get: use the \
         contract's fetch interface and rebuild without wasi:http (componentize-js: \
         --disable http; jco componentize: -d http; componentize-py: do not import \
         wasi:http bindings)"
            .to_string()
    } else {
        String::new()
    }
}

/// Grants-directory files that were skipped, each named with the reason.
pub(crate) fn log_skipped_grants(skipped: &[(std::path::PathBuf, String)]) {
    for (file, reason) in skipped {
        tracing::error!(file = %file.display(), "grants file skipped: {reason}");
    }
}

/// The client `fetch` uses: the agent's TLS settings when given (without
/// them, `https://` URLs fail with a clear error).
fn http_client(tls: Option<Arc<rustls::ClientConfig>>) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(30))
        .read_timeout(std::time::Duration::from_secs(60))
        .user_agent(concat!("ironic-wasm-agent/", env!("CARGO_PKG_VERSION")));
    match tls {
        Some(tls) => builder.use_preconfigured_tls(tls.as_ref().clone()).build(),
        None => builder.https_only(false).build(),
    }
}

/// A manager's id (IPA's class name) or name (its key in
/// `hardware_manager_version`): an identifier, since Ironic and operators
/// read it in logs and step listings.
fn checked_identifier(what: &str, value: &str) -> anyhow::Result<String> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !ok {
        anyhow::bail!(
            "info: {what} {:?} is not an identifier (letters, digits, `_`, `-`, `.`; at most 128)",
            sanitize(value, 160)
        );
    }
    Ok(value.to_string())
}

/// A version string: printable, at most 64 characters.
fn checked_version(value: &str) -> anyhow::Result<String> {
    if value.is_empty() || value.len() > 64 || value.chars().any(|c| c.is_control() || c == ' ') {
        anyhow::bail!(
            "info: version {:?} is not a version (printable, no spaces, at most 64)",
            sanitize(value, 80)
        );
    }
    Ok(value.to_string())
}

pub(crate) fn manager_error_text(e: &ManagerError) -> String {
    let text = match e {
        ManagerError::Unsupported(m) => format!("unsupported: {m}"),
        ManagerError::Incompatible(m) => format!("incompatible: {m}"),
        ManagerError::InvalidArgument(m) => format!("invalid argument: {m}"),
        ManagerError::Failed(f) => match &f.error_type {
            Some(t) => format!("{t}: {}", f.details),
            None => f.details.clone(),
        },
    };
    sanitize(&text, 4096).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_must_be_identifiers() {
        assert!(checked_identifier("id", "GenericHardwareManager").is_ok());
        assert!(checked_identifier("name", "generic_hardware_manager").is_ok());
        for bad in ["", "9lives", "a b", "x\ny", &"a".repeat(129)] {
            assert!(checked_identifier("id", bad).is_err(), "{bad:?}");
        }
        assert!(checked_version("1.2.3").is_ok());
        assert!(checked_version("9.9\nINFO forged").is_err());
    }
}
