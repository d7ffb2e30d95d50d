//! The manager host as the API sees it ([`agent_api::Managers`]): calls
//! dispatched to the host, sandbox and manager failures worded as IPA's
//! error classes, `load_manager` installs, and the boot-time
//! `manager_urls`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use agent_api::errors::{step_failure, step_wrapper_class};
use agent_api::managers::StepProgressFn;
use agent_api::{AgentError, LoadedManagerInfo, ManagerSteps, Managers, StepKind};
use ironic_host::{DispatchError, Host, HostError};
use serde_json::Value;

/// The manager host seen through the API's `Managers` trait.
pub struct HostManagers {
    host: Arc<Host>,
    /// LLDP and VLAN interfaces the agent learnt natively, merged into every
    /// inventory (`poll.get_hardware_info`, inspection, lookup).
    network: Arc<ironic_net::Facts>,
    /// Set from Ironic's lookup answer (`agent_skip_bmc_detect`).
    skip_bmc_detect: AtomicBool,
    /// True once the managers of the directory are loaded: calls that need
    /// managers wait for it (the API serves before they are).
    loaded: tokio::sync::watch::Sender<bool>,
}

impl HostManagers {
    /// The adapter for `host`, whose managers are still loading.
    pub fn new(host: Arc<Host>) -> Self {
        HostManagers {
            host,
            network: Arc::default(),
            skip_bmc_detect: AtomicBool::new(false),
            loaded: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The host itself.
    pub fn host(&self) -> &Arc<Host> {
        &self.host
    }

    /// Loads the managers directory (every component at once, each bounded
    /// by its call deadline). Calls keep waiting until [`Self::open`].
    pub async fn load(&self) {
        match self.host.load_managers().await {
            Ok(report) => {
                for m in self.host.managers() {
                    tracing::info!(manager = %m.name, id = %m.id, version = %m.version, support = m.support, "hardware manager loaded");
                }
                for r in report.rejected {
                    tracing::warn!(file = %r.file.display(), reason = %r.reason, "hardware manager not used");
                }
                if self.host.managers().is_empty() {
                    tracing::error!(dir = %self.host.managers_dir().display(), "HardwareManagerNotFound: no usable hardware manager");
                }
            }
            Err(e) => tracing::error!("loading hardware managers: {e}"),
        }
    }

    /// Lets waiting calls through: the start-up managers (the directory
    /// and `manager_urls`) are in, so a step list or an inventory never
    /// misses one that is merely still arriving.
    pub fn open(&self) {
        self.loaded.send_replace(true);
    }

    /// Waits until the start-up load is over.
    pub async fn ready(&self) {
        let mut rx = self.loaded.subscribe();
        // The sender lives as long as `self`.
        let _ = rx.wait_for(|done| *done).await;
    }

    /// What the agent learnt about the network.
    pub fn network(&self) -> &Arc<ironic_net::Facts> {
        &self.network
    }

    /// The managers' inventory with the native network facts merged in:
    /// the one inventory every path reports.
    pub async fn full_inventory(&self, skip_bmc_detect: bool) -> Result<Value, DispatchError> {
        self.ready().await;
        let mut inventory = self.host.inventory(skip_bmc_detect).await?;
        self.network.decorate(&mut inventory);
        Ok(inventory)
    }

    /// Ironic's `agent_skip_bmc_detect` from the lookup answer.
    pub fn set_skip_bmc_detect(&self, skip: bool) {
        self.skip_bmc_detect.store(skip, Ordering::Relaxed);
    }

    /// Installs a component with its grants and assets (`load_manager`
    /// once the start-up load is over; `manager_urls` during it).
    pub async fn install(
        &self,
        upload: agent_api::ManagerUpload<'_>,
    ) -> Result<LoadedManagerInfo, AgentError> {
        let name = upload.name;
        if !ironic_host::manager_name_is_valid(name) {
            return Err(AgentError::invalid_params(format!(
                "invalid hardware manager name {name:?}"
            )));
        }
        let grants = upload
            .grants
            .map(|g| grants_argument(name, g))
            .transpose()?;
        let request = ironic_host::InstallRequest {
            name,
            component: upload.component,
            grants: grants.as_ref(),
            assets_tar: upload.assets_tar,
        };
        match self.host.install_component(request).await {
            Ok(installed) => Ok(LoadedManagerInfo {
                name: installed.manager.name,
                id: installed.manager.id,
                manager_name: installed.manager.manager_name,
                version: installed.manager.version,
                support: installed.manager.support,
                replaced_version: installed.replaced_version,
            }),
            Err(HostError::Rejected { reason, .. }) => Err(AgentError::new(
                "HardwareManagerRejected",
                format!("hardware manager {name} rejected; {reason}"),
            )),
            Err(e) => Err(AgentError::command_execution(format!(
                "load_manager {name}: {e}"
            ))),
        }
    }
}

/// Fetches, verifies and loads each `manager_urls` entry
/// (`URL#sha256=<hex>[&name=<stem>]`). A failure is logged and that manager
/// skipped: the agent starts with the others.
pub async fn load_boot_managers(config: &ironic_config::Config, managers: &Arc<HostManagers>) {
    let specs = config.list_in("DEFAULT", "manager_urls");
    if specs.is_empty() {
        return;
    }
    let mut fetch = agent_api::extensions::load_manager::FetchOptions::default();
    match crate::settings::image_settings(config) {
        Ok(s) => {
            fetch.tls = s.write.tls;
            fetch.connect_timeout = s.write.connect_timeout;
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "manager_urls: TLS settings unavailable; using the system's CA store")
        }
    }
    for spec in specs {
        let source = match agent_api::extensions::load_manager::ComponentSource::parse_pinned(&spec)
        {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(entry = %spec, error = %e.details, "manager_urls: entry skipped");
                continue;
            }
        };
        let bytes = match agent_api::extensions::load_manager::fetch(&source, &fetch).await {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(url = %source.url, manager = %source.name, error = %e.details, "manager_urls: manager skipped");
                continue;
            }
        };
        let upload = agent_api::ManagerUpload {
            name: &source.name,
            component: &bytes,
            grants: None,
            assets_tar: None,
        };
        match managers.install(upload).await {
            Ok(info) => {
                tracing::info!(url = %source.url, manager = %info.name, id = %info.id, version = %info.version, "manager_urls: hardware manager loaded")
            }
            Err(e) => {
                tracing::error!(url = %source.url, manager = %source.name, error = %e.details, "manager_urls: manager skipped")
            }
        }
    }
}

/// `load_manager`'s `grants` argument: a capability table as a JSON object
/// or as TOML text; a bad one is an `InvalidCommandParamsError` naming the
/// problem.
fn grants_argument(name: &str, grants: &Value) -> Result<ironic_host::Capabilities, AgentError> {
    let parsed = match grants {
        Value::String(text) => toml::from_str(text).map_err(|e| e.to_string()),
        other => serde_json::from_value(other.clone()).map_err(|e| e.to_string()),
    };
    let caps = parsed.map_err(|e| {
        AgentError::invalid_params(format!("load_manager: grants for manager {name}: {e}"))
    })?;
    ironic_host::grants::check_grant(name, &caps).map_err(|e| {
        AgentError::invalid_params(format!("load_manager: grants for manager {name}: {e}"))
    })?;
    Ok(caps)
}

/// What a failed call was, for wording its error as IPA would.
enum CallSite<'a> {
    /// `execute_<kind>_step` of step `name`.
    Step(StepKind, &'a str),
    /// `get_<kind>_steps`.
    Listing(StepKind),
    /// Any other call (versions, inventory).
    Other(&'a str),
}

/// `DispatchError` → IPA error object.
fn to_agent_error(err: DispatchError, site: CallSite<'_>) -> AgentError {
    tracing::warn!(error = %err, "hardware manager call failed");
    match err {
        DispatchError::NoManager { call } => AgentError::method_not_found(match site {
            CallSite::Step(_, name) => name,
            _ => call.as_str(),
        }),
        DispatchError::StepNotHandled { step, hint, .. } => {
            let mut e = AgentError::method_not_found(&step);
            e.details = format!("{}; {hint}", e.details);
            e
        }
        DispatchError::Failed {
            error_type: Some(t),
            details,
            ..
        } => AgentError::new(t.as_str(), details),
        DispatchError::InvalidArgument { details, .. } => AgentError::invalid_params(details),
        DispatchError::Failed {
            manager,
            error_type: None,
            details,
            ..
        } => wrap(site, "ManagerError", &format!("{manager}: {details}")),
        err @ DispatchError::Sandbox { .. } => wrap(site, "SandboxError", &err.to_string()),
    }
}

fn wrap(site: CallSite<'_>, class: &str, text: &str) -> AgentError {
    match site {
        CallSite::Step(kind, name) => step_failure(kind, name, class, text),
        CallSite::Listing(kind) => {
            AgentError::new(step_wrapper_class(kind), format!("{class}: {text}"))
        }
        CallSite::Other(call) => {
            AgentError::command_execution(format!("{call} failed. {class}: {text}"))
        }
    }
}

#[async_trait::async_trait]
impl Managers for HostManagers {
    async fn get_steps(
        &self,
        kind: StepKind,
        node: &Value,
        ports: &Value,
    ) -> Result<Vec<ManagerSteps>, AgentError> {
        self.ready().await;
        self.host
            .get_steps(kind, node, ports)
            .await
            .map_err(|e| to_agent_error(e, CallSite::Listing(kind)))
    }

    async fn execute_step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        ports: &Value,
        args: &Value,
        progress: StepProgressFn,
    ) -> Result<Value, AgentError> {
        self.ready().await;
        self.host
            .execute_step(kind, name, node, ports, args, progress)
            .await
            .map_err(|e| to_agent_error(e, CallSite::Step(kind, name)))
    }

    fn versions(&self) -> Result<BTreeMap<String, String>, AgentError> {
        self.host
            .versions()
            .map_err(|e| to_agent_error(e, CallSite::Other("get_version")))
    }

    async fn inventory(&self) -> Result<Value, AgentError> {
        self.full_inventory(self.skip_bmc_detect.load(Ordering::Relaxed))
            .await
            .map_err(|e| to_agent_error(e, CallSite::Other("list_hardware_info")))
    }

    async fn os_install_device(&self, node: Option<&Value>) -> Result<String, AgentError> {
        self.ready().await;
        self.host
            .os_install_device(node)
            .await
            .map_err(|e| to_agent_error(e, CallSite::Other("get_os_install_device")))
    }

    async fn load_manager(
        &self,
        upload: agent_api::ManagerUpload<'_>,
    ) -> Result<LoadedManagerInfo, AgentError> {
        self.ready().await;
        self.install(upload).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_errors_map_to_ipa_errors() {
        let e = to_agent_error(
            DispatchError::NoManager {
                call: "execute-step foo".into(),
            },
            CallSite::Step(StepKind::Clean, "foo"),
        );
        assert_eq!(e.error_type, "HardwareManagerMethodNotFound");
        assert_eq!(e.details, "Could not find method: foo");

        let e = to_agent_error(
            DispatchError::Failed {
                manager: "generic".into(),
                call: "execute-step erase_devices".into(),
                error_type: Some("BlockDeviceEraseError".into()),
                details: "disk on fire".into(),
            },
            CallSite::Step(StepKind::Clean, "erase_devices"),
        );
        assert_eq!(
            (e.error_type.name(), e.code, e.details.as_str()),
            ("BlockDeviceEraseError", 500, "disk on fire")
        );

        let e = to_agent_error(
            DispatchError::Failed {
                manager: "generic".into(),
                call: "execute-step erase_devices".into(),
                error_type: None,
                details: "boom".into(),
            },
            CallSite::Step(StepKind::Deploy, "erase_devices"),
        );
        assert_eq!(e.error_type, "DeploymentError");
        assert_eq!(e.details, "Unexpected exception performing deploy step erase_devices. ManagerError: generic: boom");

        let e = to_agent_error(
            DispatchError::Sandbox {
                manager: "loop".into(),
                call: "execute-step spin".into(),
                failure: ironic_host::SandboxFailure::Timeout,
                details: "deadline".into(),
            },
            CallSite::Step(StepKind::Service, "spin"),
        );
        assert_eq!(e.error_type, "ServicingError");
        assert!(
            e.details.contains("loop") && e.details.contains("execute-step spin"),
            "{}",
            e.details
        );

        let e = to_agent_error(
            DispatchError::InvalidArgument {
                manager: "generic".into(),
                call: "execute-step clean_uefi_nvram".into(),
                details: "match_patterns must be a list".into(),
            },
            CallSite::Step(StepKind::Clean, "clean_uefi_nvram"),
        );
        assert_eq!(e.error_type, "InvalidCommandParamsError");
    }
}
