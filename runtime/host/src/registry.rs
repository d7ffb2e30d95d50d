//! Loading managers from a directory and keeping them in dispatch order.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::Engine;

use crate::artifact::{load_component, LoadedFrom};
use crate::bindings::ironic::hardware::types::ManagerError;
use crate::bindings::{HardwareManager, HardwareManagerPre};
use crate::engine::{build_engine, EpochTicker};
use crate::error::HostError;
use crate::manifest::{find_manifest, ManifestSource};
use crate::policy::Policy;
use crate::sandbox::{run_call, CallState, Environment, ManagerCtx};
use crate::{HostConfig, ManagerSummary, RejectedManager};

/// A manager ready to be called.
pub(crate) struct LoadedManager {
    pub file: PathBuf,
    pub ctx: Arc<ManagerCtx>,
    pub pre: HardwareManagerPre<CallState>,
    pub id: String,
    pub manager_name: String,
    pub version: String,
    pub support: u32,
    pub manifest: ManifestSource,
    pub loaded_from: LoadedFrom,
}

/// The manager host. `Send + Sync`; share it through an `Arc`.
pub struct Host {
    pub(crate) env: Arc<Environment>,
    pub(crate) managers: Vec<Arc<LoadedManager>>,
    rejected: Vec<RejectedManager>,
    // Declared last: stops ticking after the managers are gone.
    _ticker: EpochTicker,
    _engine: Engine,
}

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field(
                "managers",
                &self
                    .managers
                    .iter()
                    .map(|m| &m.ctx.name)
                    .collect::<Vec<_>>(),
            )
            .field("rejected", &self.rejected)
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

impl Host {
    /// Load every `*.wasm` in `config.managers_dir` (sorted by file name),
    /// evaluate its hardware support, and keep those with support > 0.
    /// A manager that fails to load is recorded in [`Host::rejected`]; none
    /// usable is [`HostError::HardwareManagerNotFound`].
    pub fn start(config: HostConfig) -> Result<Host, HostError> {
        let engine = build_engine().map_err(|e| HostError::Engine(format!("{e:?}")))?;
        let ticker = EpochTicker::start(&engine)
            .map_err(|e| HostError::Engine(format!("epoch ticker thread: {e}")))?;
        let root =
            cap_std::fs::Dir::open_ambient_dir(&config.hardware_root, cap_std::ambient_authority())
                .map_err(|e| HostError::Io {
                    path: config.hardware_root.clone(),
                    message: format!("opening the hardware root: {e}"),
                })?;
        let env = Arc::new(Environment {
            root,
            program_dirs: config.program_dirs.clone(),
            network: config.network.clone(),
            limits: config.limits.clone(),
        });

        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::Engine(format!("linking WASI: {e:?}")))?;
        HardwareManager::add_to_linker::<CallState, HasSelf<CallState>>(&mut linker, |s| s)
            .map_err(|e| HostError::Engine(format!("linking host capabilities: {e:?}")))?;

        let files = wasm_files(&config.managers_dir)?;
        let mut managers = Vec::new();
        let mut rejected = Vec::new();
        for file in files {
            match load_one(&engine, &linker, &env, &config, &file) {
                Ok(Some(m)) => {
                    tracing::info!(manager = %m.ctx.name, id = %m.id, version = %m.version, support = m.support, from = ?m.loaded_from, "loaded hardware manager");
                    managers.push(Arc::new(m));
                }
                Ok(None) => {
                    let reason = "evaluate-hardware-support returned 0: not used".to_string();
                    tracing::info!(file = %file.display(), "{reason}");
                    rejected.push(RejectedManager { file, reason });
                }
                Err(e) => {
                    let reason = format!("{e:#}");
                    tracing::warn!(file = %file.display(), "rejected hardware manager: {reason}");
                    rejected.push(RejectedManager { file, reason });
                }
            }
        }
        if managers.is_empty() {
            return Err(HostError::HardwareManagerNotFound {
                dir: config.managers_dir,
                rejected,
            });
        }
        managers.sort_by(|a, b| dispatch_order((a.support, &a.id), (b.support, &b.id)));
        Ok(Host {
            env,
            managers,
            rejected,
            _ticker: ticker,
            _engine: engine,
        })
    }

    /// Loaded managers in dispatch order.
    pub fn managers(&self) -> Vec<ManagerSummary> {
        self.managers
            .iter()
            .map(|m| ManagerSummary {
                file: m.file.clone(),
                name: m.ctx.name.clone(),
                id: m.id.clone(),
                manager_name: m.manager_name.clone(),
                version: m.version.clone(),
                support: m.support,
                manifest: m.manifest.clone(),
                loaded_from: m.loaded_from,
                declared: m.ctx.policy.declared().clone(),
                granted: m.ctx.policy.granted().clone(),
            })
            .collect()
    }

    /// Components that were not loaded, with the reason.
    pub fn rejected(&self) -> Vec<RejectedManager> {
        self.rejected.clone()
    }
}

fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, HostError> {
    let entries = std::fs::read_dir(dir).map_err(|e| HostError::Io {
        path: dir.to_path_buf(),
        message: format!("reading the managers directory: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

fn load_one(
    engine: &Engine,
    linker: &Linker<CallState>,
    env: &Arc<Environment>,
    config: &HostConfig,
    file: &Path,
) -> anyhow::Result<Option<LoadedManager>> {
    let name = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .context("file has no name")?;
    let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (declared, manifest) = find_manifest(file, &bytes)?;
    let policy = Policy::new(&name, declared, config.grants.for_manager(&name))?;
    let (component, loaded_from) =
        load_component(engine, file, &bytes, config.cache_dir.as_deref())?;
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("linking (does it target ironic:hardware@0.1.0?)")?;
    let pre = HardwareManagerPre::new(instance_pre)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("component does not export ironic:hardware/manager@0.1.0")?;
    let ctx = Arc::new(ManagerCtx {
        name: name.clone(),
        policy,
    });
    let timeout = config.limits.call_timeout;

    let info = run_call(&pre, &ctx, env, "info", timeout, None, |i, s| {
        i.ironic_hardware_manager().call_info(s)
    })
    .map_err(|e| anyhow::anyhow!("info: {}: {}", e.failure, e.details))?
    .map_err(|e| anyhow::anyhow!("info: {}", manager_error_text(&e)))?;
    let support = run_call(
        &pre,
        &ctx,
        env,
        "evaluate-hardware-support",
        timeout,
        None,
        |i, s| {
            i.ironic_hardware_manager()
                .call_evaluate_hardware_support(s)
        },
    )
    .map_err(|e| anyhow::anyhow!("evaluate-hardware-support: {}: {}", e.failure, e.details))?
    .map_err(|e| anyhow::anyhow!("evaluate-hardware-support: {}", manager_error_text(&e)))?;
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
