//! Loading managers and keeping them in dispatch order; replacing the set on
//! a running agent.
//!
//! The loaded managers form an immutable [`Registry`] behind an
//! `RwLock<Arc<_>>`: every call clones the `Arc` (a snapshot) and runs on
//! it, so a call in flight finishes on the managers it started with while
//! new calls see the new set. Changes (new, replaced, removed components)
//! are compiled and validated first, outside any lock the calls take, and
//! published with one pointer swap; a component that fails validation
//! leaves the running set unchanged and is listed in [`Host::rejected`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use crate::artifact::{cache_key, load_component_keyed, LoadedFrom};
use crate::bindings::latest::ironic::hardware::types::ManagerError;
use crate::bindings::{ContractVersion, ManagerPre};
use crate::engine::{build_engine, EpochTicker};
use crate::error::HostError;
use crate::manifest::{find_manifest, sidecar_path, ManifestSource};
use crate::policy::{ungranted, Policy};
use crate::sandbox::{run_call, CallState, Environment, ManagerCtx};
use crate::{HostConfig, ManagerSummary, RejectedManager};

/// SHA-256 over a component's bytes and its sidecar manifest (if any): two
/// files with the same fingerprint load to the same manager.
pub(crate) type Fingerprint = [u8; 32];

/// Components compiled by this process, kept so that the same bytes are
/// never compiled twice even without a cache directory. Bounded: a
/// long-running agent swapping many versions must not grow without limit.
const MEMORY_CACHE_ENTRIES: usize = 32;

/// A manager ready to be called.
pub(crate) struct LoadedManager {
    pub file: PathBuf,
    pub ctx: Arc<ManagerCtx>,
    pub pre: ManagerPre,
    pub id: String,
    pub manager_name: String,
    pub version: String,
    pub support: u32,
    pub manifest: ManifestSource,
    pub loaded_from: LoadedFrom,
}

/// One immutable set of managers (see the module documentation).
#[derive(Default)]
pub(crate) struct Registry {
    /// Dispatch order.
    pub managers: Vec<Arc<LoadedManager>>,
    pub rejected: Vec<RejectedManager>,
    /// Fingerprint of the content every known file last had when processed
    /// (loaded, not used or rejected), so unchanged files are not reloaded.
    pub seen: BTreeMap<PathBuf, Fingerprint>,
    /// BMC addresses detected by this set of managers (IPA detects them once
    /// per process: each detection runs `ipmitool` up to 33 times). A new
    /// registry, i.e. any manager change, detects again.
    pub bmc: std::sync::OnceLock<BmcAddresses>,
}

/// `bmc_address`, `bmc_v6address`, `bmc_mac` as the managers answered.
pub(crate) type BmcAddresses = (Option<String>, Option<String>, Option<String>);

/// A change to apply to the registry.
pub(crate) enum Change {
    /// A new or replaced component, already read into memory (the host
    /// never maps the `.wasm` file, so it may be rewritten while loaded).
    Upsert {
        file: PathBuf,
        bytes: Vec<u8>,
        fingerprint: Fingerprint,
    },
    /// Drop the manager loaded from `file`. `forget`: the file is gone, so
    /// forget its fingerprint; otherwise (removal by name) remember it, so
    /// that a rescan reloads the file only once its content changes.
    Remove { file: PathBuf, forget: bool },
}

/// What a [`Host::reload`] (or a watcher pass) changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// Managers (file stems) loaded for the first time.
    pub added: Vec<String>,
    /// Managers replaced by a new version: `(name, old version, new version)`.
    pub replaced: Vec<(String, String, String)>,
    /// Managers removed (file gone, removed by name, or now support 0).
    pub removed: Vec<String>,
    /// Components not used, with the reason; the running set kept its
    /// previous version of each.
    pub rejected: Vec<RejectedManager>,
}

impl ReloadReport {
    /// Nothing changed and nothing was rejected.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.replaced.is_empty()
            && self.removed.is_empty()
            && self.rejected.is_empty()
    }
}

/// The result of validating one component against the contract and the
/// grants (`ironic-agent managers validate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validation {
    /// The component file.
    pub file: PathBuf,
    /// File stem: the name grants apply to.
    pub name: String,
    /// Where the manifest came from, when one was found.
    pub manifest: Option<ManifestSource>,
    /// What the manager declares (empty when no valid manifest).
    pub declared: crate::Capabilities,
    /// What the operator grants it.
    pub granted: crate::Capabilities,
    /// Declared capabilities the grants do not cover.
    pub ungranted: Vec<String>,
    /// The contract version the component targets, when it was recognised.
    pub contract: Option<ContractVersion>,
    /// `(id, name, version)` from `info`, when it answered.
    pub info: Option<(String, String, String)>,
    /// `evaluate-hardware-support`, when it answered.
    pub support: Option<u32>,
    /// `Ok` when the component would be loaded; otherwise why not.
    pub verdict: Result<(), String>,
}

/// Engine, linker and configuration: everything needed to turn bytes into
/// a validated [`LoadedManager`].
pub(crate) struct ComponentLoader {
    engine: Engine,
    linker: Linker<CallState>,
    pub config: HostConfig,
    env: Arc<Environment>,
    compiled: Mutex<HashMap<String, Component>>,
}

impl ComponentLoader {
    pub fn new(config: HostConfig) -> Result<ComponentLoader, HostError> {
        let engine = build_engine().map_err(|e| HostError::Engine(format!("{e:?}")))?;
        let root =
            cap_std::fs::Dir::open_ambient_dir(&config.hardware_root, cap_std::ambient_authority())
                .map_err(|e| HostError::Io {
                    path: config.hardware_root.clone(),
                    message: format!("opening the hardware root: {e}"),
                })?;
        let env = Arc::new(Environment {
            root,
            faults_file: config.faults_file.clone(),
            program_dirs: config.program_dirs.clone(),
            network: config.network.clone(),
            limits: config.limits.clone(),
        });
        let mut linker: Linker<CallState> = Linker::new(&engine);
        crate::bindings::add_to_linker(&mut linker)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        Ok(ComponentLoader {
            engine,
            linker,
            config,
            env,
            compiled: Mutex::new(HashMap::new()),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compile (or fetch from memory or the artifact cache) `bytes`.
    pub fn component(&self, file: &Path, bytes: &[u8]) -> anyhow::Result<(Component, LoadedFrom)> {
        let key = cache_key(&self.engine, bytes);
        if let Some(c) = self.compiled.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok((c, LoadedFrom::Memory));
        }
        let (component, from) = load_component_keyed(
            &self.engine,
            file,
            bytes,
            &key,
            self.config.cache_dir.as_deref(),
        )?;
        if let Ok(mut map) = self.compiled.lock() {
            if map.len() >= MEMORY_CACHE_ENTRIES {
                map.clear();
            }
            map.insert(key, component.clone());
        }
        Ok((component, from))
    }

    /// Validate and load one component from `bytes` (read from `file`).
    /// `strict_grants`: reject a manifest declaring capabilities the grants
    /// do not cover (hot loads), rather than loading it and denying those
    /// calls one by one (start-up, IPA-compatible behaviour).
    /// `Ok(None)`: valid, but support 0 (not for this hardware).
    pub fn load(
        &self,
        file: &Path,
        bytes: &[u8],
        strict_grants: bool,
    ) -> anyhow::Result<Option<LoadedManager>> {
        let mut validation = None;
        self.load_inner(file, bytes, strict_grants, &mut validation)
    }

    fn load_inner(
        &self,
        file: &Path,
        bytes: &[u8],
        strict_grants: bool,
        trace: &mut Option<Validation>,
    ) -> anyhow::Result<Option<LoadedManager>> {
        let name = manager_name(file)?;
        let (declared, manifest) = find_manifest(file, bytes)?;
        let granted = self.config.grants.for_manager(&name);
        let missing = ungranted(&declared, &granted);
        if let Some(v) = trace.as_mut() {
            v.manifest = Some(manifest.clone());
            v.declared = declared.clone();
            v.granted = granted.clone();
            v.ungranted = missing.clone();
        }
        if !missing.is_empty() {
            if strict_grants {
                anyhow::bail!(
                    "manifest declares capabilities not granted to manager {name}: {}",
                    missing.join(", ")
                );
            }
            tracing::warn!(manager = %name, ungranted = %missing.join(", "), "manager declares capabilities it is not granted; those calls will be denied");
        }
        let policy = Policy::new(&name, declared, granted)?;
        let (component, loaded_from) = self.component(file, bytes)?;
        let contract = crate::bindings::detect(&self.engine, &component)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if let Some(v) = trace.as_mut() {
            v.contract = Some(contract);
        }
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("linking against contract ironic:hardware@{contract}"))?;
        let pre = ManagerPre::new(contract, instance_pre)?;
        let ctx = Arc::new(ManagerCtx {
            name: name.clone(),
            policy,
        });
        let timeout = self.config.limits.call_timeout;
        let env = &self.env;

        let info = run_call(&pre, &ctx, env, "info", timeout, None, |i, s| {
            i.call_info(s)
        })
        .map_err(|e| anyhow::anyhow!("info: {}: {}", e.failure, e.details))?
        .map_err(|e| anyhow::anyhow!("info: {}", manager_error_text(&e)))?;
        if let Some(v) = trace.as_mut() {
            v.info = Some((info.id.clone(), info.name.clone(), info.version.clone()));
        }
        let support = run_call(
            &pre,
            &ctx,
            env,
            "evaluate-hardware-support",
            timeout,
            None,
            |i, s| i.call_evaluate_hardware_support(s),
        )
        .map_err(|e| anyhow::anyhow!("evaluate-hardware-support: {}: {}", e.failure, e.details))?
        .map_err(|e| anyhow::anyhow!("evaluate-hardware-support: {}", manager_error_text(&e)))?;
        if let Some(v) = trace.as_mut() {
            v.support = Some(support);
        }
        if support == 0 {
            return Ok(None);
        }
        Ok(Some(LoadedManager {
            file: file.to_path_buf(),
            ctx,
            pre,
            id: info.id,
            manager_name: info.name,
            version: info.version,
            support,
            manifest,
            loaded_from,
        }))
    }
}

/// The manager host. `Send + Sync`; share it through an `Arc`.
pub struct Host {
    pub(crate) env: Arc<Environment>,
    current: RwLock<Arc<Registry>>,
    /// Serialises writers (reload, add, remove, the watcher) so that two
    /// changes never build on the same snapshot and lose one another.
    update: Mutex<()>,
    /// Serialises [`Host::install_component`] (one staging and rename at a
    /// time).
    pub(crate) installing: Mutex<()>,
    pub(crate) loader: ComponentLoader,
    // Declared last: stops ticking after the managers are gone.
    _ticker: EpochTicker,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let reg = self.snapshot();
        f.debug_struct("Host")
            .field(
                "managers",
                &reg.managers.iter().map(|m| &m.ctx.name).collect::<Vec<_>>(),
            )
            .field("rejected", &reg.rejected)
            .finish()
    }
}

/// Order: support descending, then id ascending (deterministic ties).
pub(crate) fn dispatch_order(a: (u32, &str), b: (u32, &str)) -> std::cmp::Ordering {
    b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1))
}

fn manager_error_text(e: &ManagerError) -> String {
    match e {
        ManagerError::Unsupported(m) => format!("unsupported: {m}"),
        ManagerError::Incompatible(m) => format!("incompatible: {m}"),
        ManagerError::InvalidArgument(m) => format!("invalid argument: {m}"),
        ManagerError::Failed(f) => match &f.error_type {
            Some(t) => format!("{t}: {}", f.details),
            None => f.details.clone(),
        },
    }
}

/// A manager name that is safe as a file stem: letters, digits, `_`, `-`
/// (not first), at most 64 characters.
pub fn manager_name_is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn manager_name(file: &Path) -> anyhow::Result<String> {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .context("file has no name")
}

/// Read a component (and its sidecar manifest) once, into memory, and
/// fingerprint both.
pub(crate) fn read_component(file: &Path) -> std::io::Result<(Vec<u8>, Fingerprint)> {
    let bytes = std::fs::read(file)?;
    let mut h = Sha256::new();
    h.update(Sha256::digest(&bytes));
    match std::fs::read(sidecar_path(file)) {
        Ok(side) => {
            h.update(b"sidecar");
            h.update(&side);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok((bytes, h.finalize().into()))
}

fn summary(m: &LoadedManager) -> ManagerSummary {
    ManagerSummary {
        file: m.file.clone(),
        name: m.ctx.name.clone(),
        id: m.id.clone(),
        manager_name: m.manager_name.clone(),
        version: m.version.clone(),
        support: m.support,
        contract: m.pre.version(),
        manifest: m.manifest.clone(),
        loaded_from: m.loaded_from,
        declared: m.ctx.policy.declared().clone(),
        granted: m.ctx.policy.granted().clone(),
    }
}

impl Host {
    /// Load every `*.wasm` in `config.managers_dir` (sorted by file name),
    /// evaluate its hardware support, and keep those with support > 0.
    /// A manager that fails to load is recorded in [`Host::rejected`]; none
    /// usable is [`HostError::HardwareManagerNotFound`].
    pub fn start(config: HostConfig) -> Result<Host, HostError> {
        let loader = ComponentLoader::new(config)?;
        let ticker = EpochTicker::start(loader.engine())
            .map_err(|e| HostError::Engine(format!("epoch ticker thread: {e}")))?;
        let dir = loader.config.managers_dir.clone();
        let mut changes = Vec::new();
        let mut unreadable = Vec::new();
        for file in wasm_files(&dir)? {
            match read_component(&file) {
                Ok((bytes, fingerprint)) => changes.push(Change::Upsert {
                    file,
                    bytes,
                    fingerprint,
                }),
                Err(e) => unreadable.push(RejectedManager {
                    reason: format!("reading {}: {e}", file.display()),
                    file,
                }),
            }
        }
        let host = Host {
            env: loader.env.clone(),
            current: RwLock::new(Arc::new(Registry::default())),
            update: Mutex::new(()),
            installing: Mutex::new(()),
            loader,
            _ticker: ticker,
        };
        // Start-up keeps IPA's behaviour for ungranted declarations: the
        // manager loads and those calls are denied (and logged).
        host.apply(changes, false);
        let reg = host.snapshot();
        if reg.managers.is_empty() {
            let mut rejected = unreadable;
            rejected.extend(reg.rejected.iter().cloned());
            return Err(HostError::HardwareManagerNotFound { dir, rejected });
        }
        if !unreadable.is_empty() {
            let mut next = Registry {
                managers: reg.managers.clone(),
                rejected: reg.rejected.clone(),
                seen: reg.seen.clone(),
                bmc: Default::default(),
            };
            next.rejected.extend(unreadable);
            host.publish(next);
        }
        Ok(host)
    }

    /// The current set of managers. Cheap (an `Arc` clone); a call holds
    /// its snapshot for its whole duration.
    pub(crate) fn snapshot(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(g) => g.clone(),
            // A panic while holding the lock cannot leave a torn pointer.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn publish(&self, next: Registry) {
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }

    /// The directory the host loads managers from.
    pub fn managers_dir(&self) -> &Path {
        &self.loader.config.managers_dir
    }

    /// Fingerprint of the content `file` had when last processed.
    pub(crate) fn fingerprint_of(&self, file: &Path) -> Option<Fingerprint> {
        self.snapshot().seen.get(file).copied()
    }

    /// Files the current set was built from.
    pub(crate) fn known_files(&self) -> Vec<PathBuf> {
        self.snapshot().seen.keys().cloned().collect()
    }

    /// Apply `changes` as one atomic swap. Every new or replaced component
    /// is compiled and validated before anything is replaced; one that
    /// fails leaves its running predecessor (if any) in place.
    pub(crate) fn apply(&self, changes: Vec<Change>, strict_grants: bool) -> ReloadReport {
        let _writer = self.update.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.snapshot();
        let mut managers = cur.managers.clone();
        let mut rejected = cur.rejected.clone();
        let mut seen = cur.seen.clone();
        let mut report = ReloadReport::default();
        for change in changes {
            match change {
                Change::Upsert {
                    file,
                    bytes,
                    fingerprint,
                } => {
                    if seen.get(&file) == Some(&fingerprint) {
                        continue;
                    }
                    seen.insert(file.clone(), fingerprint);
                    rejected.retain(|r| r.file != file);
                    let name = manager_name(&file).unwrap_or_default();
                    let old = managers.iter().position(|m| m.ctx.name == name);
                    let started = Instant::now();
                    match self.loader.load(&file, &bytes, strict_grants) {
                        Ok(Some(m)) => {
                            tracing::info!(manager = %name, id = %m.id, version = %m.version, support = m.support, from = ?m.loaded_from, elapsed_ms = started.elapsed().as_millis() as u64, "loaded hardware manager");
                            let m = Arc::new(m);
                            match old {
                                Some(i) => {
                                    let prev = std::mem::replace(&mut managers[i], m.clone());
                                    report.replaced.push((
                                        name,
                                        prev.version.clone(),
                                        m.version.clone(),
                                    ));
                                }
                                None => {
                                    managers.push(m);
                                    report.added.push(name);
                                }
                            }
                        }
                        Ok(None) => {
                            let reason =
                                "evaluate-hardware-support returned 0: not used".to_string();
                            tracing::info!(file = %file.display(), "{reason}");
                            if let Some(i) = old {
                                // The new content is valid and says "not this
                                // hardware": it supersedes the old version.
                                managers.remove(i);
                                report.removed.push(name);
                            }
                            let r = RejectedManager { file, reason };
                            report.rejected.push(r.clone());
                            rejected.push(r);
                        }
                        Err(e) => {
                            let mut reason = format!("{e:#}");
                            if let Some(i) = old {
                                reason.push_str(&format!(
                                    " (version {} of manager {name} keeps running)",
                                    managers[i].version
                                ));
                            }
                            tracing::warn!(manager = %name, file = %file.display(), "rejected hardware manager: {reason}");
                            let r = RejectedManager { file, reason };
                            report.rejected.push(r.clone());
                            rejected.push(r);
                        }
                    }
                }
                Change::Remove { file, forget } => {
                    if forget {
                        seen.remove(&file);
                    }
                    rejected.retain(|r| r.file != file);
                    let before = managers.len();
                    managers.retain(|m| {
                        if m.file == file {
                            report.removed.push(m.ctx.name.clone());
                            false
                        } else {
                            true
                        }
                    });
                    if managers.len() != before {
                        tracing::info!(file = %file.display(), "hardware manager removed");
                    }
                }
            }
        }
        if managers.is_empty() && !cur.managers.is_empty() {
            tracing::warn!("no hardware manager left: calls fail until one is added");
        }
        managers.sort_by(|a, b| dispatch_order((a.support, &a.id), (b.support, &b.id)));
        self.publish(Registry {
            managers,
            rejected,
            seen,
            bmc: Default::default(),
        });
        report
    }

    /// Rescan the managers directory: new and changed components are
    /// loaded (validated first, grants checked strictly), components whose
    /// file is gone are removed. One atomic swap.
    pub fn reload(&self) -> Result<ReloadReport, HostError> {
        let dir = self.loader.config.managers_dir.clone();
        let files = wasm_files(&dir)?;
        let mut changes = Vec::new();
        let mut unreadable = Vec::new();
        for file in &files {
            match read_component(file) {
                Ok((bytes, fingerprint)) => changes.push(Change::Upsert {
                    file: file.clone(),
                    bytes,
                    fingerprint,
                }),
                Err(e) => unreadable.push(RejectedManager {
                    file: file.clone(),
                    reason: format!("reading {}: {e}", file.display()),
                }),
            }
        }
        for known in self.known_files() {
            if known.parent() == Some(dir.as_path()) && !files.contains(&known) {
                changes.push(Change::Remove {
                    file: known,
                    forget: true,
                });
            }
        }
        let mut report = self.apply(changes, true);
        report.rejected.extend(unreadable);
        Ok(report)
    }

    /// Load (or replace, by file stem) the component at `path`, validated
    /// first; on failure the running set is unchanged.
    pub fn add_component(&self, path: &Path) -> Result<ManagerSummary, HostError> {
        let name = manager_name(path).map_err(|e| HostError::Rejected {
            manager: path.display().to_string(),
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let (bytes, fingerprint) = read_component(path).map_err(|e| HostError::Io {
            path: path.to_path_buf(),
            message: format!("reading component of manager {name}: {e}"),
        })?;
        let report = self.apply(
            vec![Change::Upsert {
                file: path.to_path_buf(),
                bytes,
                fingerprint,
            }],
            true,
        );
        if let Some(r) = report.rejected.into_iter().next() {
            return Err(HostError::Rejected {
                manager: name,
                file: r.file,
                reason: r.reason,
            });
        }
        self.managers()
            .into_iter()
            .find(|m| m.name == name && m.file == path)
            .ok_or_else(|| HostError::Rejected {
                manager: name,
                file: path.to_path_buf(),
                reason: "unchanged content was rejected before (see rejected())".into(),
            })
    }

    /// Remove the manager named `name` (file stem). Its calls in flight
    /// finish. Its file, if still there, is loaded again only once its
    /// content changes.
    pub fn remove(&self, name: &str) -> Result<(), HostError> {
        let file = self
            .snapshot()
            .managers
            .iter()
            .find(|m| m.ctx.name == name)
            .map(|m| m.file.clone())
            .ok_or_else(|| HostError::NotLoaded {
                manager: name.to_string(),
            })?;
        self.apply(
            vec![Change::Remove {
                file,
                forget: false,
            }],
            true,
        );
        Ok(())
    }

    /// Loaded managers in dispatch order.
    pub fn managers(&self) -> Vec<ManagerSummary> {
        self.snapshot()
            .managers
            .iter()
            .map(|m| summary(m))
            .collect()
    }

    /// Components that are not used, with the reason.
    pub fn rejected(&self) -> Vec<RejectedManager> {
        self.snapshot().rejected.clone()
    }
}

/// Check one component against the contract (instantiate with the host's
/// linker, call `info` and `evaluate-hardware-support`) and the grants,
/// without starting a host.
pub fn validate(config: &HostConfig, file: &Path) -> Result<Validation, HostError> {
    let loader = ComponentLoader::new(config.clone())?;
    // Deadlines need the epoch to advance.
    let _ticker = EpochTicker::start(loader.engine())
        .map_err(|e| HostError::Engine(format!("epoch ticker thread: {e}")))?;
    let name = manager_name(file).unwrap_or_default();
    let mut v = Some(Validation {
        file: file.to_path_buf(),
        name: name.clone(),
        manifest: None,
        declared: Default::default(),
        granted: config.grants.for_manager(&name),
        ungranted: Vec::new(),
        contract: None,
        info: None,
        support: None,
        verdict: Ok(()),
    });
    let outcome = std::fs::read(file)
        .with_context(|| format!("reading {}", file.display()))
        .and_then(|bytes| loader.load_inner(file, &bytes, true, &mut v));
    let mut v = v.ok_or_else(|| HostError::Engine("validation state lost".into()))?;
    v.verdict = match outcome {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err("evaluate-hardware-support returned 0: not used on this machine".into()),
        Err(e) => Err(format!("manager {name}: {e:#}")),
    };
    Ok(v)
}

/// One component handled by [`precompile`].
#[derive(Debug, Clone)]
pub struct Precompiled {
    /// The component file.
    pub file: PathBuf,
    /// Cache key (the artifact is `<cache_dir>/<key>.cwasm`).
    pub key: String,
    /// `Compiled` now, or already in the cache.
    pub from: LoadedFrom,
    /// Time spent.
    pub elapsed: std::time::Duration,
}

/// Compile every `*.wasm` in `config.managers_dir` into `cache_dir` for this
/// exact engine (a present artifact is reused, never compiled again).
/// Per-file errors are returned, not fatal.
pub fn precompile(
    config: &HostConfig,
    cache_dir: &Path,
) -> Result<Vec<Result<Precompiled, RejectedManager>>, HostError> {
    let mut config = config.clone();
    config.cache_dir = Some(cache_dir.to_path_buf());
    let loader = ComponentLoader::new(config)?;
    let mut out = Vec::new();
    for file in wasm_files(&loader.config.managers_dir)? {
        let started = Instant::now();
        let result = std::fs::read(&file)
            .with_context(|| format!("reading {}", file.display()))
            .and_then(|bytes| {
                let key = cache_key(loader.engine(), &bytes);
                let (_, from) = loader.component(&file, &bytes)?;
                Ok((key, from))
            });
        out.push(match result {
            Ok((key, from)) => Ok(Precompiled {
                file,
                key,
                from,
                elapsed: started.elapsed(),
            }),
            Err(e) => Err(RejectedManager {
                file,
                reason: format!("{e:#}"),
            }),
        });
    }
    Ok(out)
}

/// `*.wasm` regular files in `dir`, sorted; hidden files (temporaries of a
/// write-then-rename) are ignored.
pub(crate) fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, HostError> {
    let entries = std::fs::read_dir(dir).map_err(|e| HostError::Io {
        path: dir.to_path_buf(),
        message: format!("reading the managers directory: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "wasm")
                && !p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                && p.is_file()
        })
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::dispatch_order;

    #[test]
    fn order_is_support_desc_then_id_asc() {
        let mut v = vec![
            (1, "GenericHardwareManager"),
            (3, "Zed"),
            (3, "Alpha"),
            (2, "Mlnx"),
        ];
        v.sort_by(|a, b| dispatch_order(*a, *b));
        assert_eq!(
            v,
            vec![
                (3, "Alpha"),
                (3, "Zed"),
                (2, "Mlnx"),
                (1, "GenericHardwareManager")
            ]
        );
    }

    #[test]
    fn host_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<super::Host>();
    }
}
