//! The manager host as the black-box tests drive it: blocking calls on a
//! runtime of its own, so the tests read as sequences of calls and
//! assertions. Each method is the async host's method of the same name.

use std::path::Path;
use std::sync::Arc;

use ironic_host::{
    DispatchError, HostConfig, HostError, ManagerSteps, ManagerSummary, RejectedManager,
    ReloadReport, StepKind, WatchHandle, WatchOptions,
};
use serde_json::Value;

/// A started host and the runtime its calls run on.
#[derive(Debug)]
pub struct Host {
    runtime: tokio::runtime::Runtime,
    inner: Arc<ironic_host::Host>,
}

impl Host {
    /// [`ironic_host::Host::start`].
    pub fn start(config: HostConfig) -> Result<Host, HostError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("test runtime");
        let inner = Arc::new(runtime.block_on(ironic_host::Host::start(config))?);
        Ok(Host { runtime, inner })
    }

    /// The async host.
    pub fn inner(&self) -> &Arc<ironic_host::Host> {
        &self.inner
    }

    /// Runs `work` on the host's runtime.
    pub fn block_on<T>(&self, work: impl std::future::Future<Output = T>) -> T {
        self.runtime.block_on(work)
    }

    pub fn inventory(&self, skip_bmc_detect: bool) -> Result<Value, DispatchError> {
        self.block_on(self.inner.inventory(skip_bmc_detect))
    }

    pub fn versions(&self) -> Result<std::collections::BTreeMap<String, String>, DispatchError> {
        self.inner.versions()
    }

    pub fn managers(&self) -> Vec<ManagerSummary> {
        self.inner.managers()
    }

    pub fn rejected(&self) -> Vec<RejectedManager> {
        self.inner.rejected()
    }

    pub fn os_install_device(&self, node: Option<&Value>) -> Result<String, DispatchError> {
        self.block_on(self.inner.os_install_device(node))
    }

    pub fn get_steps(
        &self,
        kind: StepKind,
        node: &Value,
        ports: &Value,
    ) -> Result<Vec<ManagerSteps>, DispatchError> {
        self.block_on(self.inner.get_steps(kind, node, ports))
    }

    /// Runs the step; `progress` sees each report as it comes.
    pub fn execute_step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        ports: &Value,
        args: &Value,
        progress: &(dyn Fn(Option<u8>, &str) + Send + Sync),
    ) -> Result<Value, DispatchError> {
        let (tx, rx) = std::sync::mpsc::channel::<(Option<u8>, String)>();
        let report: ironic_host::ProgressFn = Arc::new(move |p, m| {
            let _ = tx.send((p, m.to_string()));
        });
        let call = {
            let (inner, name, node, ports, args) = (
                self.inner.clone(),
                name.to_string(),
                node.clone(),
                ports.clone(),
                args.clone(),
            );
            self.runtime.spawn(async move {
                inner
                    .execute_step(kind, &name, &node, &ports, &args, report)
                    .await
            })
        };
        // The reports end when the step does (its sender is dropped then).
        for (percent, message) in rx {
            progress(percent, &message);
        }
        self.block_on(call).expect("the step task panicked")
    }

    pub fn reload(&self) -> Result<ReloadReport, HostError> {
        self.block_on(self.inner.reload())
    }

    pub fn reload_grants(&self) -> Result<ReloadReport, HostError> {
        self.block_on(self.inner.reload_grants())
    }

    pub fn add_component(&self, path: &Path) -> Result<ManagerSummary, HostError> {
        self.block_on(self.inner.add_component(path))
    }

    pub fn remove(&self, name: &str) -> Result<(), HostError> {
        self.inner.remove(name)
    }

    pub fn watch(&self, options: WatchOptions) -> Result<WatchHandle, HostError> {
        self.inner.watch(options)
    }
}

/// [`ironic_host::validate`], blocking.
pub fn validate(config: &HostConfig, file: &Path) -> Result<ironic_host::Validation, HostError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("test runtime")
        .block_on(ironic_host::validate(config, file))
}
