//! `fallback`: the same inventory call on the managers after the caller in
//! support order (IPA's `super()`), first answer wins. Each nested call runs
//! in its own sandbox with the time the caller has left; it can fall back in
//! turn, but only further down the order, so the depth is bounded by the
//! number of managers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use super::FallbackView;
use crate::bindings::latest::ironic::hardware::fallback;
use crate::bindings::latest::ironic::hardware::types::{
    BlockDevice, BootInfo, Cpu, Failure, ManagerError, Memory, NetworkInterface, SystemVendor,
};
use crate::bindings::{
    Export, GetBmcAddress, GetBmcMac, GetBmcV6Address, GetBootInfo, GetCpus, GetMemory,
    GetOsInstallDevice, GetSystemVendorInfo, ListBlockDevices, ListNetworkInterfaces,
};
use crate::capabilities::progress::ProgressSink;
use crate::loader::LoadedManager;
use crate::policy::Need;
use crate::registry::Registry;
use crate::sandbox::{run_call, Environment};

/// Where a call stands in the dispatch order, for its fallbacks.
#[derive(Clone)]
pub(crate) struct FallbackCtx {
    /// The call's snapshot of the managers.
    pub registry: Arc<Registry>,
    /// The caller's index in its dispatch order.
    pub position: usize,
    pub env: Arc<Environment>,
}

impl FallbackCtx {
    /// The context of a call on `m`, one of `registry`'s managers.
    pub(crate) fn of(
        registry: &Arc<Registry>,
        m: &Arc<LoadedManager>,
        env: &Arc<Environment>,
    ) -> Option<FallbackCtx> {
        let position = registry.managers.iter().position(|x| Arc::ptr_eq(x, m))?;
        Some(FallbackCtx {
            registry: registry.clone(),
            position,
            env: env.clone(),
        })
    }
}

type Answer<T> = Result<T, ManagerError>;

impl FallbackView<'_> {
    async fn next<E: Export>(&mut self, export: E) -> Answer<E::Output> {
        self.manager
            .policy
            .check(Need::Fallback)
            .map_err(ManagerError::Unsupported)?;
        let Some(ctx) = self.fallback.clone() else {
            return Err(ManagerError::Unsupported(
                "no manager comes after this one here".into(),
            ));
        };
        let deadline = self.deadline;
        for (index, m) in ctx
            .registry
            .managers
            .iter()
            .enumerate()
            .skip(ctx.position + 1)
        {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            let nested = FallbackCtx {
                position: index,
                ..ctx.clone()
            };
            let sink = Arc::new(ProgressSink::new(None, &ctx.env.limits));
            let pre = m.code.pre();
            // Boxed: the nested call's future contains this one's type.
            let call: Pin<Box<dyn Future<Output = _> + Send + '_>> = Box::pin(run_call(
                &pre,
                &m.ctx,
                &ctx.env,
                &export,
                remaining,
                sink,
                Some(nested),
            ));
            match call.await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(ManagerError::Unsupported(_) | ManagerError::Incompatible(_))) => continue,
                Ok(Err(e)) => return Err(e),
                Err(e) => {
                    return Err(ManagerError::Failed(Failure {
                        error_type: None,
                        details: format!(
                            "fallback to manager {}: {}: {}",
                            m.ctx.name, e.failure, e.details
                        ),
                    }))
                }
            }
        }
        Err(ManagerError::Unsupported(format!(
            "no manager after {} answers {}",
            self.manager.name,
            export.name()
        )))
    }
}

impl fallback::Host for FallbackView<'_> {
    async fn get_cpus(&mut self) -> wasmtime::Result<Answer<Cpu>> {
        Ok(self.next(GetCpus).await)
    }
    async fn get_memory(&mut self) -> wasmtime::Result<Answer<Memory>> {
        Ok(self.next(GetMemory).await)
    }
    async fn list_block_devices(&mut self) -> wasmtime::Result<Answer<Vec<BlockDevice>>> {
        Ok(self.next(ListBlockDevices).await)
    }
    async fn list_network_interfaces(&mut self) -> wasmtime::Result<Answer<Vec<NetworkInterface>>> {
        Ok(self.next(ListNetworkInterfaces).await)
    }
    async fn get_bmc_address(&mut self) -> wasmtime::Result<Answer<Option<String>>> {
        Ok(self.next(GetBmcAddress).await)
    }
    async fn get_bmc_v6address(&mut self) -> wasmtime::Result<Answer<Option<String>>> {
        Ok(self.next(GetBmcV6Address).await)
    }
    async fn get_bmc_mac(&mut self) -> wasmtime::Result<Answer<Option<String>>> {
        Ok(self.next(GetBmcMac).await)
    }
    async fn get_system_vendor_info(&mut self) -> wasmtime::Result<Answer<SystemVendor>> {
        Ok(self.next(GetSystemVendorInfo).await)
    }
    async fn get_boot_info(&mut self) -> wasmtime::Result<Answer<BootInfo>> {
        Ok(self.next(GetBootInfo).await)
    }
    async fn get_os_install_device(
        &mut self,
        node: Option<String>,
    ) -> wasmtime::Result<Answer<String>> {
        Ok(self.next(GetOsInstallDevice { node }).await)
    }
}
