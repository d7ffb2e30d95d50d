//! The set of loaded managers, and changing it on a running agent.
//!
//! The loaded managers form an immutable [`Registry`] behind an
//! `RwLock<Arc<_>>`: every call clones the `Arc` (a snapshot) and runs on
//! it, so a call in flight finishes on the managers it started with while
//! new calls see the new set. Changes (new, replaced, removed components)
//! are compiled and validated first, concurrently and outside any lock, so
//! a component that hangs in `info` (until its deadline) holds up neither
//! the other loads nor the watcher; then they are merged into the set of
//! that moment and published with one pointer swap. A component that fails
//! validation leaves the running set unchanged and is listed in
//! [`Host::rejected`].
//!
//! Identity is checked, not trusted: an id or a name (the key in
//! `hardware_manager_version`) is held by one manager at a time. When two
//! components claim the same one, the one the operator lets write disks
//! keeps it (then the one already loaded, then file-name order), and the
//! other is rejected naming both files.
//!
//! Longer than most files here: `Host`'s one `impl` is the registry's whole life cycle (load,
//! change, publish, reject), which reads best in one place; validation without a host (`validate`)
//! and precompiling sit beside it because they run the same checks.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::engine::EpochTicker;
use crate::error::HostError;
use crate::loader::{log_skipped_grants, ComponentLoader, LoadOutcome, LoadedManager};
use crate::manifest::sidecar_path;
use crate::sandbox::Environment;
use crate::{
    ContractVersion, HostConfig, ManagerSummary, ManifestSource, RejectedManager, StepKind, Unused,
};

/// SHA-256 over a component's bytes and its sidecar manifest (if any): two
/// files with the same fingerprint load to the same manager.
pub(crate) type Fingerprint = [u8; 32];

/// Who runs each step name of one kind, from the managers' latest listing:
/// `(step name, managers (file stems) in the order they are asked)`.
pub(crate) type StepOwners = HashMap<String, Vec<String>>;

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
    /// Step owners per kind, from the last `get-steps` on this set.
    pub owners: Mutex<HashMap<StepKind, Arc<StepOwners>>>,
}

impl Registry {
    fn next(&self) -> Registry {
        Registry {
            managers: self.managers.clone(),
            rejected: self.rejected.clone(),
            seen: self.seen.clone(),
            ..Registry::default()
        }
    }
}

/// `bmc_address`, `bmc_v6address`, `bmc_mac` as the managers answered.
pub(crate) type BmcAddresses = (Option<String>, Option<String>, Option<String>);

/// A change to apply to the registry.
pub(crate) enum Change {
    /// A new or replaced component, already read into memory (the host
    /// never maps the `.wasm` file, so it may be rewritten while loaded).
    /// `force`: load even when the content is the one last processed
    /// (its grants changed).
    Upsert {
        file: PathBuf,
        bytes: Vec<u8>,
        fingerprint: Fingerprint,
        force: bool,
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
    /// `Ok` when the component would be loaded; otherwise why not, in the
    /// words the agent and `managers list` use.
    pub verdict: Result<(), String>,
    /// Which kind of "not used", when it would not be.
    pub unused: Option<Unused>,
    /// The steps it offers per kind (for an empty node), as Ironic sees
    /// them; a listing that fails is the error text.
    pub steps: Vec<(StepKind, Result<Vec<serde_json::Value>, String>)>,
}

/// The manager host. `Send + Sync`; share it through an `Arc`.
pub struct Host {
    pub(crate) env: Arc<Environment>,
    current: RwLock<Arc<Registry>>,
    /// Serialises merging changes into the set (never held while loading),
    /// so two changes never build on the same snapshot and lose one another.
    update: Mutex<()>,
    /// Serialises [`Host::install_component`] (one staging and rename at a
    /// time).
    pub(crate) installing: tokio::sync::Mutex<()>,
    pub(crate) loader: Arc<ComponentLoader>,
    /// The runtime the host was made on: threads outside it (the
    /// directory watcher) run the host's async work there.
    pub(crate) runtime: tokio::runtime::Handle,
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

pub(crate) fn manager_name(file: &Path) -> anyhow::Result<String> {
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
        contract: m.code.contract(),
        manifest: m.manifest.clone(),
        loaded_from: m.code.loaded_from(),
        arrived_as: m.code.arrived_as,
        declared: m.ctx.policy.declared().clone(),
        granted: m.ctx.policy.granted().clone(),
        log_lines_dropped: m.ctx.log_budget.dropped_total(),
    }
}

/// What loading one upsert gave.
struct Loaded {
    file: PathBuf,
    fingerprint: Fingerprint,
    outcome: anyhow::Result<LoadOutcome>,
    elapsed: Duration,
}

impl Host {
    /// A host with no manager loaded yet: the engine, the linker and the
    /// epoch ticker. Must be called on a tokio runtime (the host's async
    /// work runs there). Load with [`Host::load_managers`].
    pub fn new(config: HostConfig) -> Result<Host, HostError> {
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|e| HostError::Engine(format!("the host needs a tokio runtime: {e}")))?;
        let loader = ComponentLoader::new(config)?;
        let ticker = EpochTicker::start(loader.engines())
            .map_err(|e| HostError::Engine(format!("epoch ticker thread: {e}")))?;
        Ok(Host {
            env: loader.env.clone(),
            current: RwLock::new(Arc::new(Registry::default())),
            update: Mutex::new(()),
            installing: tokio::sync::Mutex::new(()),
            loader: Arc::new(loader),
            runtime,
            _ticker: ticker,
        })
    }

    /// Loads every `*.wasm` of the managers directory, all at once (each
    /// bounded by its own deadline), and keeps those with support > 0. A
    /// component that fails is recorded in [`Host::rejected`]; one that
    /// declares capabilities not granted waits for them there (see
    /// [`crate::policy::grants_verdict`]).
    pub async fn load_managers(&self) -> Result<ReloadReport, HostError> {
        let dir = self.managers_dir().to_path_buf();
        let (changes, unreadable) = read_dir_changes(&dir)?;
        let mut report = self.apply(changes).await;
        self.add_rejected(&unreadable);
        report.rejected.extend(unreadable);
        Ok(report)
    }

    /// [`Host::new`] and [`Host::load_managers`]; no usable manager is
    /// [`HostError::HardwareManagerNotFound`].
    pub async fn start(config: HostConfig) -> Result<Host, HostError> {
        let host = Host::new(config)?;
        host.load_managers().await?;
        let reg = host.snapshot();
        if reg.managers.is_empty() {
            return Err(HostError::HardwareManagerNotFound {
                dir: host.managers_dir().to_path_buf(),
                rejected: reg.rejected.clone(),
            });
        }
        Ok(host)
    }

    fn add_rejected(&self, rejected: &[RejectedManager]) {
        if rejected.is_empty() {
            return;
        }
        let _writer = self.update.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.snapshot().next();
        next.rejected.extend(rejected.iter().cloned());
        self.publish(next);
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
    /// is compiled and validated first, all of them at once and outside any
    /// lock; one that fails leaves its running predecessor (if any) in
    /// place.
    pub(crate) async fn apply(&self, changes: Vec<Change>) -> ReloadReport {
        let before = self.snapshot();
        let mut upserts = Vec::new();
        let mut removals = Vec::new();
        for change in changes {
            match change {
                Change::Upsert {
                    file,
                    bytes,
                    fingerprint,
                    force,
                } => {
                    if force || before.seen.get(&file) != Some(&fingerprint) {
                        upserts.push((file, Arc::new(bytes), fingerprint));
                    }
                }
                Change::Remove { file, forget } => removals.push((file, forget)),
            }
        }
        drop(before);
        let loads = futures::future::join_all(upserts.into_iter().map(
            |(file, bytes, fingerprint)| async move {
                let started = Instant::now();
                let outcome = self.loader.load(&file, bytes, None, &mut None).await;
                Loaded {
                    file,
                    fingerprint,
                    outcome,
                    elapsed: started.elapsed(),
                }
            },
        ))
        .await;
        self.merge(loads, removals)
    }

    /// Merges finished loads and removals into the set of this moment.
    fn merge(&self, mut loads: Vec<Loaded>, removals: Vec<(PathBuf, bool)>) -> ReloadReport {
        let _writer = self.update.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.snapshot().next();
        let mut report = ReloadReport::default();
        // Identity claims are settled in this order: disk-write grants
        // first, then file names.
        loads.sort_by(|a, b| {
            let writes = |l: &Loaded| {
                matches!(&l.outcome, Ok(LoadOutcome::Loaded(m)) if m.may_write_disks())
            };
            writes(b).cmp(&writes(a)).then_with(|| a.file.cmp(&b.file))
        });
        for loaded in loads {
            let Loaded {
                file,
                fingerprint,
                outcome,
                elapsed,
            } = loaded;
            next.seen.insert(file.clone(), fingerprint);
            next.rejected.retain(|r| r.file != file);
            let name = manager_name(&file).unwrap_or_default();
            let old = next.managers.iter().position(|m| m.ctx.name == name);
            let mut reject = |next: &mut Registry, reason: String| {
                tracing::warn!(manager = %name, file = %file.display(), "rejected hardware manager: {reason}");
                let r = RejectedManager {
                    file: file.clone(),
                    reason,
                    kind: Unused::Rejected,
                };
                report.rejected.push(r.clone());
                next.rejected.push(r);
            };
            match outcome {
                Ok(LoadOutcome::Loaded(m)) => {
                    if let Some(holder) = next.managers.iter().find(|other| {
                        other.ctx.name != name
                            && (other.id == m.id || other.manager_name == m.manager_name)
                    }) {
                        let what = if holder.id == m.id {
                            format!("id {}", m.id)
                        } else {
                            format!("name {}", m.manager_name)
                        };
                        let mut reason = format!(
                            "claims the {what}, which manager {} ({}) already holds;                              ids and names must be unique",
                            holder.ctx.name,
                            holder.file.display()
                        );
                        if let Some(i) = old {
                            reason.push_str(&format!(
                                " (version {} of manager {name} keeps running)",
                                next.managers[i].version
                            ));
                        }
                        reject(&mut next, reason);
                        continue;
                    }
                    tracing::info!(manager = %name, id = %m.id, version = %m.version, support = m.support, from = ?m.code.loaded_from(), elapsed_ms = elapsed.as_millis() as u64, "loaded hardware manager");
                    let m: Arc<LoadedManager> = Arc::from(m);
                    match old {
                        Some(i) => {
                            let prev = std::mem::replace(&mut next.managers[i], m.clone());
                            report
                                .replaced
                                .push((name, prev.version.clone(), m.version.clone()));
                        }
                        None => {
                            next.managers.push(m);
                            report.added.push(name);
                        }
                    }
                }
                Ok(LoadOutcome::NotForThisHardware) => {
                    let reason = NOT_FOR_THIS_HARDWARE.to_string();
                    tracing::info!(file = %file.display(), "{reason}");
                    if let Some(i) = old {
                        // The new content is valid and says "not this
                        // hardware": it supersedes the old version.
                        next.managers.remove(i);
                        report.removed.push(name.clone());
                    }
                    let r = RejectedManager {
                        file: file.clone(),
                        reason,
                        kind: Unused::NotForThisHardware,
                    };
                    report.rejected.push(r.clone());
                    next.rejected.push(r);
                }
                Ok(LoadOutcome::WaitingForGrants {
                    missing,
                    mut reason,
                }) => {
                    // A new version needing more than its predecessor's
                    // grants leaves the predecessor running while it
                    // waits; a manager whose own grants were taken away
                    // stops.
                    let grants = self.loader.grants();
                    match old {
                        Some(i)
                            if crate::policy::grants_verdict(
                                &name,
                                next.managers[i].ctx.policy.declared(),
                                &grants.for_manager(&name),
                            )
                            .is_ok() =>
                        {
                            reason.push_str(&format!(
                                " (version {} of manager {name} keeps running)",
                                next.managers[i].version
                            ));
                        }
                        Some(i) => {
                            next.managers.remove(i);
                            report.removed.push(name.clone());
                        }
                        None => {}
                    }
                    tracing::warn!(manager = %name, file = %file.display(), "{reason}");
                    let r = RejectedManager {
                        file: file.clone(),
                        reason,
                        kind: Unused::WaitingForGrants(missing),
                    };
                    report.rejected.push(r.clone());
                    next.rejected.push(r);
                }
                Err(e) => {
                    let mut reason = format!("{e:#}");
                    if let Some(i) = old {
                        reason.push_str(&format!(
                            " (version {} of manager {name} keeps running)",
                            next.managers[i].version
                        ));
                    }
                    reject(&mut next, reason);
                }
            }
        }
        for (file, forget) in removals {
            if forget {
                next.seen.remove(&file);
            }
            next.rejected.retain(|r| r.file != file);
            let before = next.managers.len();
            next.managers.retain(|m| {
                if m.file == file {
                    report.removed.push(m.ctx.name.clone());
                    false
                } else {
                    true
                }
            });
            if next.managers.len() != before {
                tracing::info!(file = %file.display(), "hardware manager removed");
            }
        }
        if next.managers.is_empty() && !self.snapshot().managers.is_empty() {
            tracing::warn!("no hardware manager left: calls fail until one is added");
        }
        next.managers
            .sort_by(|a, b| dispatch_order((a.support, &a.id), (b.support, &b.id)));
        if !report.is_empty() {
            log_ties(&next.managers);
        }
        self.publish(next);
        report
    }

    /// Rescan the managers directory: new and changed components are
    /// loaded (validated first, grants checked strictly), components whose
    /// file is gone are removed. One atomic swap.
    pub async fn reload(&self) -> Result<ReloadReport, HostError> {
        let dir = self.managers_dir().to_path_buf();
        let (mut changes, unreadable) = read_dir_changes(&dir)?;
        let files: Vec<PathBuf> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Upsert { file, .. } => Some(file.clone()),
                Change::Remove { .. } => None,
            })
            .chain(unreadable.iter().map(|r| r.file.clone()))
            .collect();
        for known in self.known_files() {
            if known.parent() == Some(dir.as_path()) && !files.contains(&known) {
                changes.push(Change::Remove {
                    file: known,
                    forget: true,
                });
            }
        }
        let mut report = self.apply(changes).await;
        report.rejected.extend(unreadable);
        Ok(report)
    }

    /// Read the grants again (grants file and directory) and put them in
    /// force: every manager whose grants changed is loaded again under the
    /// new ones. A manager waiting for grants starts when they arrive; one
    /// whose grants were taken away stops. A grants file that does not
    /// parse changes nothing (the error says why).
    pub async fn reload_grants(&self) -> Result<ReloadReport, HostError> {
        let (grants, skipped) = self.loader.grant_sources.read()?;
        log_skipped_grants(&skipped);
        Ok(self.set_grants(grants).await)
    }

    /// Put `grants` in force (see [`Host::reload_grants`]).
    pub(crate) async fn set_grants(&self, grants: crate::Grants) -> ReloadReport {
        let old = self.loader.replace_grants(grants);
        let new = self.loader.grants();
        if *old == *new {
            return ReloadReport::default();
        }
        let mut changes = Vec::new();
        let mut unreadable = Vec::new();
        for file in self.known_files() {
            let Ok(name) = manager_name(&file) else {
                continue;
            };
            if old.for_manager(&name) == new.for_manager(&name) {
                continue;
            }
            match read_component(&file) {
                Ok((bytes, fingerprint)) => changes.push(Change::Upsert {
                    file,
                    bytes,
                    fingerprint,
                    force: true,
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => unreadable.push(RejectedManager {
                    reason: format!("reading {}: {e}", file.display()),
                    file,
                    kind: Unused::Rejected,
                }),
            }
        }
        let mut report = self.apply(changes).await;
        report.rejected.extend(unreadable);
        if !report.is_empty() {
            tracing::info!(added = ?report.added, replaced = ?report.replaced, removed = ?report.removed, waiting = ?report.rejected.iter().filter(|r| matches!(r.kind, Unused::WaitingForGrants(_))).map(|r| r.file.display().to_string()).collect::<Vec<_>>(), "grants changed");
        }
        report
    }

    /// Load (or replace, by file stem) the component at `path`, validated
    /// first; on failure the running set is unchanged.
    pub async fn add_component(&self, path: &Path) -> Result<ManagerSummary, HostError> {
        let name = manager_name(path).map_err(|e| HostError::Rejected {
            manager: path.display().to_string(),
            file: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let (bytes, fingerprint) = read_component(path).map_err(|e| HostError::Io {
            path: path.to_path_buf(),
            message: format!("reading component of manager {name}: {e}"),
        })?;
        let report = self
            .apply(vec![Change::Upsert {
                file: path.to_path_buf(),
                bytes,
                fingerprint,
                force: false,
            }])
            .await;
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
        self.merge(Vec::new(), vec![(file, false)]);
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

/// Says which manager of equal support is asked first: support ties are
/// decided by id, and an operator should see that decision.
fn log_ties(managers: &[Arc<LoadedManager>]) {
    for pair in managers.windows(2) {
        if pair[0].support == pair[1].support {
            tracing::info!(
                support = pair[0].support,
                first = %pair[0].ctx.name,
                then = %pair[1].ctx.name,
                "managers {} and {} have the same support {}: {} (id {}) is asked first, by id order",
                pair[0].ctx.name,
                pair[1].ctx.name,
                pair[0].support,
                pair[0].ctx.name,
                pair[0].id
            );
        }
    }
}

/// The verdict on a manager answering support 0, worded once.
pub(crate) const NOT_FOR_THIS_HARDWARE: &str =
    "evaluate-hardware-support returned 0: not used on this machine";

/// One upsert per readable component of `dir`, and the unreadable ones.
fn read_dir_changes(dir: &Path) -> Result<(Vec<Change>, Vec<RejectedManager>), HostError> {
    let mut changes = Vec::new();
    let mut unreadable = Vec::new();
    for file in wasm_files(dir)? {
        match read_component(&file) {
            Ok((bytes, fingerprint)) => changes.push(Change::Upsert {
                file,
                bytes,
                fingerprint,
                force: false,
            }),
            Err(e) => unreadable.push(RejectedManager {
                reason: format!("reading {}: {e}", file.display()),
                file,
                kind: Unused::Rejected,
            }),
        }
    }
    Ok((changes, unreadable))
}

/// Check one component against the contract (instantiate with the host's
/// linker, call `info` and `evaluate-hardware-support`) and the grants,
/// without starting a host. Must be called on a tokio runtime.
pub async fn validate(config: &HostConfig, file: &Path) -> Result<Validation, HostError> {
    // The verdict is all it gives: optimised code, which reaches the cache.
    let loader = Arc::new(ComponentLoader::new(HostConfig {
        tiering: crate::Tiering::OptimisedOnly,
        ..config.clone()
    })?);
    // Deadlines need the epoch to advance.
    let _ticker = EpochTicker::start(loader.engines())
        .map_err(|e| HostError::Engine(format!("epoch ticker thread: {e}")))?;
    let name = manager_name(file).unwrap_or_default();
    let mut v = Some(Validation {
        file: file.to_path_buf(),
        name: name.clone(),
        manifest: None,
        declared: Default::default(),
        granted: loader.grants().for_manager(&name),
        ungranted: Vec::new(),
        contract: None,
        info: None,
        support: None,
        verdict: Ok(()),
        unused: None,
        steps: Vec::new(),
    });
    let outcome = match std::fs::read(file).with_context(|| format!("reading {}", file.display())) {
        Ok(bytes) => loader.load(file, Arc::new(bytes), None, &mut v).await,
        Err(e) => Err(e),
    };
    let mut v = v.ok_or_else(|| HostError::Engine("validation state lost".into()))?;
    let (verdict, unused) = match outcome {
        Ok(LoadOutcome::Loaded(m)) => {
            v.steps = listed_steps(&loader, &m).await;
            (Ok(()), None)
        }
        Ok(LoadOutcome::NotForThisHardware) => (
            Err(NOT_FOR_THIS_HARDWARE.into()),
            Some(Unused::NotForThisHardware),
        ),
        Ok(LoadOutcome::WaitingForGrants { reason, missing }) => {
            (Err(reason), Some(Unused::WaitingForGrants(missing)))
        }
        Err(e) => (
            Err(format!("manager {name}: {e:#}")),
            Some(Unused::Rejected),
        ),
    };
    v.verdict = verdict;
    v.unused = unused;
    Ok(v)
}

/// `get-steps` of every kind on one manager, for `managers validate`.
async fn listed_steps(
    loader: &Arc<ComponentLoader>,
    m: &LoadedManager,
) -> Vec<(StepKind, Result<Vec<serde_json::Value>, String>)> {
    let mut out = Vec::new();
    for kind in [StepKind::Clean, StepKind::Deploy, StepKind::Service] {
        let export = crate::bindings::GetSteps {
            kind: crate::bindings::step_kind_to_wit(kind),
            node: "{}".into(),
            ports: "[]".into(),
        };
        let progress = Arc::new(crate::capabilities::progress::ProgressSink::new(
            None,
            &loader.config.limits,
        ));
        let pre = m.code.pre();
        let answer = crate::sandbox::run_call(
            &pre,
            &m.ctx,
            &loader.env,
            &export,
            loader.config.limits.call_timeout,
            progress,
            None,
        )
        .await;
        out.push((
            kind,
            match answer {
                Ok(Ok(steps)) => Ok(steps.iter().map(crate::inventory::step_json).collect()),
                Ok(Err(e)) => Err(crate::loader::manager_error_text(&e)),
                Err(e) => Err(format!("{}: {}", e.failure, e.details)),
            },
        ));
    }
    out
}

/// One component handled by [`precompile`].
#[derive(Debug, Clone)]
pub struct Precompiled {
    /// The component file.
    pub file: PathBuf,
    /// Cache key (the artifact is `<cache_dir>/<key>.cwasm`).
    pub key: String,
    /// `Compiled` now, or already in the cache.
    pub from: crate::LoadedFrom,
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
    config.tiering = crate::Tiering::OptimisedOnly;
    let loader = ComponentLoader::new(config)?;
    let mut out = Vec::new();
    for file in wasm_files(&loader.config.managers_dir)? {
        let started = Instant::now();
        let result = std::fs::read(&file)
            .with_context(|| format!("reading {}", file.display()))
            .and_then(|bytes| {
                let key = crate::artifact::cache_key(loader.engine(), &bytes);
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
                kind: Unused::Rejected,
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
