//! The engine's only view of hardware managers.
//!
//! The host crate (wasm components) is adapted to [`Managers`] outside this
//! crate, so the API can be tested with fakes and never depends on wasmtime.

use std::collections::BTreeMap;
use std::sync::Arc;

pub use ironic_steps::{deduplicate_steps, ManagerSteps, StepKind};
use serde::Serialize;
use serde_json::Value;

use crate::errors::AgentError;

/// A manager to install at run time (`load_manager`, `manager_urls`).
#[derive(Debug, Clone, Copy)]
pub struct ManagerUpload<'a> {
    /// File stem: `<name>.wasm`, the name grants know.
    pub name: &'a str,
    /// The component, already verified against its pinned digest.
    pub component: &'a [u8],
    /// Grants to install with it: a capability table (the manifest's
    /// schema) as a JSON object, or TOML text as a JSON string.
    pub grants: Option<&'a Value>,
    /// Its assets as a tar archive, already verified.
    pub assets_tar: Option<&'a [u8]>,
}

/// What a successful load reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoadedManagerInfo {
    /// File stem (grants name).
    pub name: String,
    /// Manager id (`OverrideHardwareManager`).
    pub id: String,
    /// Name in `hardware_manager_version`.
    pub manager_name: String,
    /// Version in `hardware_manager_version`.
    pub version: String,
    /// Hardware support level.
    pub support: u32,
    /// Version of the manager it replaced, if any.
    pub replaced_version: Option<String>,
}

/// Progress callback handed to a running step: `(percent, message)`.
pub type StepProgressFn = Arc<dyn Fn(Option<u8>, &str) + Send + Sync>;

/// Hardware managers as the command engine sees them. Calls that reach a
/// manager are async: the managers' host bounds each by its deadline.
#[async_trait::async_trait]
pub trait Managers: Send + Sync + 'static {
    /// Every-manager dispatch of get-steps: one entry per manager that
    /// answered, in support order.
    async fn get_steps(
        &self,
        kind: StepKind,
        node: &Value,
        ports: &Value,
    ) -> Result<Vec<ManagerSteps>, AgentError>;

    /// First-answer dispatch of a step; `progress(percent, message)` may be
    /// called while it runs.
    async fn execute_step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        ports: &Value,
        args: &Value,
        progress: StepProgressFn,
    ) -> Result<Value, AgentError>;

    /// Manager name → version (`hardware_manager_version`).
    fn versions(&self) -> Result<BTreeMap<String, String>, AgentError>;

    /// A fresh hardware inventory (Ironic's inventory JSON).
    async fn inventory(&self) -> Result<Value, AgentError>;

    /// The device the image is written to (IPA's first-answer
    /// `get_os_install_device(permit_refresh=True)`), e.g. `/dev/sda`, chosen
    /// with the node's root-device hints; a vendor manager may override it.
    /// The path is as seen by the managers: callers map it into the
    /// hardware root ([`crate::device::device_in_root`]).
    ///
    /// The default answers `HardwareManagerMethodNotFound`, as when no
    /// manager implements the call.
    async fn os_install_device(&self, node: Option<&Value>) -> Result<String, AgentError> {
        let _ = node;
        Err(AgentError::method_not_found("get_os_install_device"))
    }

    /// Installs `upload.component` (already verified) as manager
    /// `upload.name` (`<name>.wasm` in the managers directory), with its
    /// grants and assets, and activates it, replacing a manager of the same
    /// name. Validation (contract, grants, assets, support) comes first: a
    /// rejected component leaves the directories and the running managers
    /// unchanged and answers an error naming the reason.
    ///
    /// The default refuses: this agent cannot load managers at run time.
    async fn load_manager(
        &self,
        upload: ManagerUpload<'_>,
    ) -> Result<LoadedManagerInfo, AgentError> {
        Err(AgentError::command_execution(format!(
            "cannot load hardware manager {}: this agent does not support loading managers",
            upload.name
        )))
    }
}
