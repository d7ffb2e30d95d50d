//! Bindings of every contract version the host serves, one module per
//! version (`since_v0_x_y`), and one version-independent view of a manager
//! for the registry and dispatch.
//!
//! The newest version is `latest`: capabilities are implemented once against
//! it, and older versions' imports delegate to those implementations,
//! converting between the generated copies of identical types. Exports of
//! older versions are converted to the latest types, so dispatch never sees
//! a version. A component's version is read from the name of the manager
//! interface it exports (`ironic:hardware/manager@0.2.0`).
//!
//! Adding a version: a `since_v0_x_y` module with its bindgen, the previous
//! latest's imports re-pointed to delegate to it, a [`ContractVersion`]
//! case, and a [`ManagerPre`]/[`Manager`] case.

pub(crate) mod since_v0_1_0;
pub(crate) mod since_v0_2_0;

pub(crate) use since_v0_2_0 as latest;

use anyhow::Context;
use wasmtime::component::{Component, HasSelf, InstancePre, Linker};
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
}

impl ContractVersion {
    /// Every version this host serves, oldest first.
    pub const SERVED: [ContractVersion; 2] = [ContractVersion::V0_1_0, ContractVersion::V0_2_0];

    /// `0.1.0`, `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            ContractVersion::V0_1_0 => "0.1.0",
            ContractVersion::V0_2_0 => "0.2.0",
        }
    }

    fn parse(version: &str) -> Option<ContractVersion> {
        Self::SERVED.into_iter().find(|v| v.as_str() == version)
    }

    /// The versions served, as `0.1.0, 0.2.0`.
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
pub(crate) fn detect(engine: &Engine, component: &Component) -> Result<ContractVersion, String> {
    let ty = component.component_type();
    let names: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    version_of_exports(names)
}

/// Define every served version's imports (and WASI) in `linker`. Their
/// names carry the version, so the versions live side by side.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    wasmtime_wasi::p2::add_to_linker_sync(linker)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("linking WASI")?;
    since_v0_1_0::HardwareManager::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("linking contract 0.1.0")?;
    since_v0_2_0::HardwareManager::add_to_linker::<CallState, HasSelf<CallState>>(linker, |s| s)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("linking contract 0.2.0")?;
    Ok(())
}

/// A component linked and checked against the version it targets.
#[derive(Clone)]
pub(crate) enum ManagerPre {
    V0_1_0(since_v0_1_0::HardwareManagerPre<CallState>),
    V0_2_0(since_v0_2_0::HardwareManagerPre<CallState>),
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
        })
    }

    pub fn version(&self) -> ContractVersion {
        match self {
            ManagerPre::V0_1_0(_) => ContractVersion::V0_1_0,
            ManagerPre::V0_2_0(_) => ContractVersion::V0_2_0,
        }
    }

    pub fn engine(&self) -> &Engine {
        match self {
            ManagerPre::V0_1_0(p) => p.engine(),
            ManagerPre::V0_2_0(p) => p.engine(),
        }
    }

    pub fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Manager> {
        Ok(match self {
            ManagerPre::V0_1_0(p) => Manager::V0_1_0(p.instantiate(&mut *store)?),
            ManagerPre::V0_2_0(p) => Manager::V0_2_0(p.instantiate(&mut *store)?),
        })
    }
}

/// An instance of a manager, whatever contract version it targets; every
/// call answers in the latest types.
pub(crate) enum Manager {
    V0_1_0(since_v0_1_0::HardwareManager),
    V0_2_0(since_v0_2_0::HardwareManager),
}

/// What a manager export returns: a trap or the manager's own answer.
pub(crate) type Answer<T> = wasmtime::Result<Result<T, ManagerError>>;

/// Convert an older version's answer to the latest types.
fn up<A, B: From<A>, EA>(answer: wasmtime::Result<Result<A, EA>>) -> Answer<B>
where
    ManagerError: From<EA>,
{
    answer.map(|r| r.map(B::from).map_err(ManagerError::from))
}

fn up_list<A, B: From<A>, EA>(answer: wasmtime::Result<Result<Vec<A>, EA>>) -> Answer<Vec<B>>
where
    ManagerError: From<EA>,
{
    answer.map(|r| {
        r.map(|items| items.into_iter().map(B::from).collect())
            .map_err(ManagerError::from)
    })
}

/// One method per export: the latest version calls through, older ones
/// convert.
macro_rules! exports {
    ($( $method:ident ( $($arg:ident : $ty:ty),* ) -> $ret:ty, $conv:ident; )*) => {
        impl Manager {
            $(
                pub fn $method(&self, store: &mut Store<CallState>, $($arg: $ty),*) -> Answer<$ret> {
                    match self {
                        Manager::V0_1_0(m) => $conv(m.ironic_hardware_manager().$method(store, $($arg.older()),*)),
                        Manager::V0_2_0(m) => m.ironic_hardware_manager().$method(store, $($arg),*),
                    }
                }
            )*
        }
    };
}

/// An argument as an older version's export takes it (the same value).
trait Older<T> {
    fn older(self) -> T;
}

impl<T> Older<T> for T {
    fn older(self) -> T {
        self
    }
}

impl Older<since_v0_1_0::ironic::hardware::types::StepKind> for StepKind {
    fn older(self) -> since_v0_1_0::ironic::hardware::types::StepKind {
        self.into()
    }
}

exports! {
    call_info() -> ManagerInfo, up;
    call_evaluate_hardware_support() -> u32, up;
    call_get_cpus() -> Cpu, up;
    call_get_memory() -> Memory, up;
    call_list_block_devices() -> Vec<BlockDevice>, up_list;
    call_list_network_interfaces() -> Vec<NetworkInterface>, up_list;
    call_get_bmc_address() -> Option<String>, up;
    call_get_bmc_v6address() -> Option<String>, up;
    call_get_bmc_mac() -> Option<String>, up;
    call_get_system_vendor_info() -> SystemVendor, up;
    call_get_boot_info() -> BootInfo, up;
    call_get_os_install_device(node: Option<&String>) -> String, up;
    call_get_steps(kind: StepKind, node: &String, ports: &String) -> Vec<Step>, up_list;
    call_execute_step(kind: StepKind, name: &str, node: &String, ports: &String, args: &String) -> String, up;
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
