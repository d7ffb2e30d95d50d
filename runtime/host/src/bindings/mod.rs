//! Bindings of every contract version the host serves, one module per
//! version (`since_v0_x_y`), and one version-independent view of a manager
//! for the registry and dispatch.
//!
//! The newest version is `latest`: capabilities are implemented once against
//! it. An older version shares the latest's `types` (bindgen's `with`), so
//! its exports answer in the latest types and dispatch never sees a
//! version; its imports have names of their own (`machine@0.1.0`), so they
//! are linked separately and delegate to the latest implementations. A
//! component's version is read from the name of the manager interface it
//! exports (`ironic:hardware/manager@0.2.0`).
//!
//! Adding a version: a `since_v0_x_y` module with its bindgen, the previous
//! latest's imports re-pointed to delegate to it, a [`ContractVersion`]
//! case, and a [`ManagerPre`]/[`Manager`] case.

pub(crate) mod since_v0_1_0;
pub(crate) mod since_v0_2_0;
pub(crate) mod since_v0_3_0;

pub(crate) use since_v0_3_0 as latest;

use std::future::Future;
use std::pin::Pin;

use anyhow::Context;
use wasmtime::component::{Component, InstancePre, Linker};
use wasmtime::{Engine, Store};

use crate::sandbox::CallState;
use latest::ironic::hardware::types::{
    BlockDevice, BootInfo, Cpu, ManagerError, ManagerInfo, Memory, NetworkInterface, Step,
    StepKind, SystemVendor,
};

/// Ironic's step kind as the contract spells it.
pub(crate) fn step_kind_to_wit(kind: ironic_steps::StepKind) -> StepKind {
    match kind {
        ironic_steps::StepKind::Clean => StepKind::Clean,
        ironic_steps::StepKind::Deploy => StepKind::Deploy,
        ironic_steps::StepKind::Service => StepKind::Service,
    }
}

/// A version of the `ironic:hardware` contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContractVersion {
    /// `ironic:hardware@0.1.0`.
    V0_1_0,
    /// `ironic:hardware@0.2.0`: batched erase, partition re-read,
    /// per-device progress.
    V0_2_0,
    /// `ironic:hardware@0.3.0`: fetch, scratch, assets, fallback, `extra`
    /// on inventory records, `commands.run-with`.
    V0_3_0,
}

impl ContractVersion {
    /// Every version this host serves, oldest first.
    pub const SERVED: [ContractVersion; 3] = [
        ContractVersion::V0_1_0,
        ContractVersion::V0_2_0,
        ContractVersion::V0_3_0,
    ];

    /// `0.1.0`, `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1_0 => "0.1.0",
            ContractVersion::V0_2_0 => "0.2.0",
            ContractVersion::V0_3_0 => "0.3.0",
        }
    }

    fn parse(version: &str) -> Option<ContractVersion> {
        Self::SERVED.into_iter().find(|v| v.as_str() == version)
    }

    /// The versions served, as `0.1.0, 0.2.0, 0.3.0`.
    pub fn served_list() -> String {
        Self::SERVED
            .iter()
            .map(|v| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const MANAGER_INTERFACE: &str = "ironic:hardware/manager";

/// Which contract version a set of export names targets: the version of the
/// exported `ironic:hardware/manager` interface (the newest served one if
/// several are exported).
pub(crate) fn version_of_exports<'a>(
    exports: impl IntoIterator<Item = &'a str>,
) -> Result<ContractVersion, String> {
    let mut found = Vec::new();
    for name in exports {
        let Some(rest) = name.strip_prefix(MANAGER_INTERFACE) else {
            continue;
        };
        match rest.strip_prefix('@') {
            Some(version) => found.push(version.to_string()),
            None if rest.is_empty() => found.push(String::new()),
            None => {}
        }
    }
    if let Some(v) = found.iter().filter_map(|v| ContractVersion::parse(v)).max() {
        return Ok(v);
    }
    let served = ContractVersion::served_list();
    match found.first() {
        None => Err(format!(
            "the component does not export {MANAGER_INTERFACE} (contract versions served: {served})"
        )),
        Some(v) if v.is_empty() => Err(format!(
            "the component exports {MANAGER_INTERFACE} without a version; \
             contract versions served: {served}"
        )),
        Some(v) => Err(format!(
            "the component targets contract version {v} ({MANAGER_INTERFACE}@{v}), \
             which this agent does not serve; contract versions served: {served}"
        )),
    }
}

/// The contract version `component` targets.
pub(crate) fn detect(component: &Component) -> Result<ContractVersion, String> {
    let ty = component.component_type();
    let names: Vec<&str> = ty
        .exports(component.engine())
        .map(|(name, _)| name)
        .collect();
    version_of_exports(names)
}

/// Define every served version's imports (and WASI) in `linker`. Their
/// names carry the version, so the versions live side by side. Each
/// interface is linked with its own view of the call's state.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    use crate::capabilities as caps;
    fn link(what: &str, r: wasmtime::Result<()>) -> anyhow::Result<()> {
        r.map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("linking {what}"))
    }
    link("WASI", wasmtime_wasi::p2::add_to_linker_async(linker))?;
    {
        use latest::ironic::hardware as v3;
        link(
            "types",
            v3::types::add_to_linker::<_, caps::Types>(linker, CallState::types_view),
        )?;
        link(
            "machine",
            v3::machine::add_to_linker::<_, caps::Machine>(linker, CallState::machine_view),
        )?;
        link(
            "disks",
            v3::disks::add_to_linker::<_, caps::Disks>(linker, CallState::disks_view),
        )?;
        link(
            "commands",
            v3::commands::add_to_linker::<_, caps::Commands>(linker, CallState::commands_view),
        )?;
        link(
            "log",
            v3::log::add_to_linker::<_, caps::Log>(linker, CallState::log_view),
        )?;
        link(
            "progress",
            v3::progress::add_to_linker::<_, caps::Progress>(linker, CallState::progress_view),
        )?;
        link(
            "scratch",
            v3::scratch::add_to_linker::<_, caps::Scratch>(linker, CallState::scratch_view),
        )?;
        link(
            "fetch",
            v3::fetch::add_to_linker::<_, caps::Fetch>(linker, CallState::fetch_view),
        )?;
        link(
            "assets",
            v3::assets::add_to_linker::<_, caps::Assets>(linker, CallState::assets_view),
        )?;
        link(
            "fallback",
            v3::fallback::add_to_linker::<_, caps::Fallback>(linker, CallState::fallback_view),
        )?;
    }
    since_v0_2_0::add_to_linker(linker)?;
    since_v0_1_0::add_to_linker(linker)
}

/// A component linked and checked against the version it targets.
#[derive(Clone)]
pub(crate) enum ManagerPre {
    V0_1_0(since_v0_1_0::HardwareManagerPre<CallState>),
    V0_2_0(since_v0_2_0::HardwareManagerPre<CallState>),
    V0_3_0(since_v0_3_0::HardwareManagerPre<CallState>),
}

impl ManagerPre {
    /// Check that `pre` exports the manager interface of `version`.
    pub fn new(version: ContractVersion, pre: InstancePre<CallState>) -> anyhow::Result<Self> {
        let what = || format!("component does not export ironic:hardware/manager@{version}");
        Ok(match version {
            ContractVersion::V0_1_0 => ManagerPre::V0_1_0(
                since_v0_1_0::HardwareManagerPre::new(pre)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
                    .with_context(what)?,
            ),
            ContractVersion::V0_2_0 => ManagerPre::V0_2_0(
                since_v0_2_0::HardwareManagerPre::new(pre)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
                    .with_context(what)?,
            ),
            ContractVersion::V0_3_0 => ManagerPre::V0_3_0(
                since_v0_3_0::HardwareManagerPre::new(pre)
                    .map_err(|e| anyhow::anyhow!("{e:?}"))
                    .with_context(what)?,
            ),
        })
    }

    pub fn version(&self) -> ContractVersion {
        match self {
            ManagerPre::V0_1_0(_) => ContractVersion::V0_1_0,
            ManagerPre::V0_2_0(_) => ContractVersion::V0_2_0,
            ManagerPre::V0_3_0(_) => ContractVersion::V0_3_0,
        }
    }

    pub fn engine(&self) -> &Engine {
        match self {
            ManagerPre::V0_1_0(p) => p.engine(),
            ManagerPre::V0_2_0(p) => p.engine(),
            ManagerPre::V0_3_0(p) => p.engine(),
        }
    }

    pub async fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Manager> {
        Ok(match self {
            ManagerPre::V0_1_0(p) => Manager::V0_1_0(p.instantiate_async(&mut *store).await?),
            ManagerPre::V0_2_0(p) => Manager::V0_2_0(p.instantiate_async(&mut *store).await?),
            ManagerPre::V0_3_0(p) => Manager::V0_3_0(p.instantiate_async(&mut *store).await?),
        })
    }
}

/// An instance of a manager, whatever contract version it targets; every
/// call answers in the latest types (older answers are converted).
pub(crate) enum Manager {
    V0_1_0(since_v0_1_0::HardwareManager),
    V0_2_0(since_v0_2_0::HardwareManager),
    V0_3_0(since_v0_3_0::HardwareManager),
}

/// What a manager export returns: a trap or the manager's own answer.
pub(crate) type Answer<T> = wasmtime::Result<Result<T, ManagerError>>;

/// A future borrowing the instance and its store.
pub(crate) type CallFuture<'a, T> = Pin<Box<dyn Future<Output = Answer<T>> + Send + 'a>>;

/// One export of the manager interface with its arguments: what the
/// sandbox runs ([`crate::sandbox::run_call`]).
pub(crate) trait Export: Sync {
    /// What the export answers.
    type Output: Send;
    /// The call as logs and errors name it (`get-cpus`, `execute-step
    /// clean erase_devices`).
    fn name(&self) -> String;
    /// Calls it on `instance`.
    fn call<'a>(
        &'a self,
        instance: &'a Manager,
        store: &'a mut Store<CallState>,
    ) -> CallFuture<'a, Self::Output>;
}

/// The struct of one export: unit without arguments.
macro_rules! export_struct {
    ($export:ident) => {
        pub(crate) struct $export;
    };
    ($export:ident { $($field:ident: $ty:ty),* }) => {
        pub(crate) struct $export {
            $(pub $field: $ty),*
        }
    };
}

/// One [`Export`] per function of the manager interface: a unit struct for
/// those without arguments, a struct of the arguments otherwise. Older
/// versions take `$older` arguments and their answers go through `$up`
/// (`since_v0_2_0::up` or `up_list`) into the latest types.
macro_rules! exports {
    ($(
        $export:ident $({ $($field:ident : $ty:ty),* })? => $method:ident ( $($arg:expr),* )
            [ $($older:expr),* ] -> $ret:ty, $up:ident, $name:expr;
    )*) => {
        $(
            export_struct!($export $({ $($field: $ty),* })?);

            impl Export for $export {
                type Output = $ret;
                #[allow(unused_variables)]
                fn name(&self) -> String {
                    $(let $export { $($field),* } = self;)?
                    $name
                }
                #[allow(unused_variables)]
                fn call<'a>(
                    &'a self,
                    instance: &'a Manager,
                    store: &'a mut Store<CallState>,
                ) -> CallFuture<'a, $ret> {
                    $(let $export { $($field),* } = self;)?
                    Box::pin(async move {
                        match instance {
                            Manager::V0_1_0(m) => since_v0_2_0::$up(
                                m.ironic_hardware_manager()
                                    .$method(&mut *store, $($older),*)
                                    .await,
                            ),
                            Manager::V0_2_0(m) => since_v0_2_0::$up(
                                m.ironic_hardware_manager()
                                    .$method(&mut *store, $($older),*)
                                    .await,
                            ),
                            Manager::V0_3_0(m) => {
                                m.ironic_hardware_manager()
                                    .$method(&mut *store, $($arg),*)
                                    .await
                            }
                        }
                    })
                }
            }
        )*
    };
}

exports! {
    Info => call_info() [] -> ManagerInfo, up, "info".into();
    EvaluateSupport => call_evaluate_hardware_support() [] -> u32, up,
        "evaluate-hardware-support".into();
    GetCpus => call_get_cpus() [] -> Cpu, up, "get-cpus".into();
    GetMemory => call_get_memory() [] -> Memory, up, "get-memory".into();
    ListBlockDevices => call_list_block_devices() [] -> Vec<BlockDevice>, up_list,
        "list-block-devices".into();
    ListNetworkInterfaces => call_list_network_interfaces() [] -> Vec<NetworkInterface>, up_list,
        "list-network-interfaces".into();
    GetBmcAddress => call_get_bmc_address() [] -> Option<String>, up, "get-bmc-address".into();
    GetBmcV6Address => call_get_bmc_v6address() [] -> Option<String>, up,
        "get-bmc-v6address".into();
    GetBmcMac => call_get_bmc_mac() [] -> Option<String>, up, "get-bmc-mac".into();
    GetSystemVendorInfo => call_get_system_vendor_info() [] -> SystemVendor, up,
        "get-system-vendor-info".into();
    GetBootInfo => call_get_boot_info() [] -> BootInfo, up, "get-boot-info".into();
    GetOsInstallDevice { node: Option<String> } => call_get_os_install_device(node.as_ref())
        [node.as_ref()] -> String, up, "get-os-install-device".into();
    GetSteps { kind: StepKind, node: String, ports: String } => call_get_steps(*kind, node, ports)
        [(*kind).into(), node, ports] -> Vec<Step>, up_list,
        format!("get-steps {}", step_kind_name(*kind));
    ExecuteStep { kind: StepKind, step: String, node: String, ports: String, args: String }
        => call_execute_step(*kind, step, node, ports, args)
        [(*kind).into(), step, node, ports, args] -> String, up,
        format!("execute-step {} {step}", step_kind_name(*kind));
}

fn step_kind_name(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Clean => "clean",
        StepKind::Deploy => "deploy",
        StepKind::Service => "service",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_from_the_exported_manager_interface() {
        let v = |names: &[&str]| version_of_exports(names.iter().copied());
        assert_eq!(
            v(&["ironic:hardware/manager@0.1.0"]),
            Ok(ContractVersion::V0_1_0)
        );
        assert_eq!(
            v(&["wasi:cli/run@0.2.0", "ironic:hardware/manager@0.2.0"]),
            Ok(ContractVersion::V0_2_0)
        );
        assert_eq!(
            v(&[
                "ironic:hardware/manager@0.1.0",
                "ironic:hardware/manager@0.2.0"
            ]),
            Ok(ContractVersion::V0_2_0)
        );
        let err = v(&["ironic:hardware/manager@0.9.0"]).expect_err("unknown version");
        assert!(
            err.contains("0.9.0") && err.contains("0.1.0, 0.2.0"),
            "{err}"
        );
        let err = v(&["ironic:hardware/manager"]).expect_err("no version");
        assert!(err.contains("without a version"), "{err}");
        let err = v(&["ironic:hardware/managerx@0.1.0", "other:pkg/manager@0.1.0"])
            .expect_err("no manager");
        assert!(err.contains("does not export"), "{err}");
    }
}
