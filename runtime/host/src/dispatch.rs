//! Dispatch: "first one that answers" and "every manager" (IPA's
//! `dispatch_to_managers` / `dispatch_to_all_managers`), step listings
//! checked before they reach Ironic, and steps run by the manager that
//! owns them in the listing.
//!
//! Every-manager calls run concurrently, each under its own deadline, so a
//! slow manager delays a listing by at most the call deadline, not by the
//! sum of every manager's.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::bindings::latest::ironic::hardware::types::{ManagerError, Step};
use crate::bindings::{step_kind_to_wit, ExecuteStep, Export, GetOsInstallDevice, GetSteps};
use crate::capabilities::fallback::FallbackCtx;
use crate::capabilities::progress::{ProgressFn, ProgressSink};
use crate::error::DispatchError;
use crate::loader::LoadedManager;
use crate::registry::{Host, Registry, StepOwners};
use crate::sandbox::run_call;
use crate::text::sanitize;
use crate::{ManagerSteps, StepKind};

/// What a manager call produced when it produced a value or a fall-through.
pub(crate) enum Outcome<R> {
    Answer(R),
    Skip(String),
}

/// The Ironic driver interfaces a step may belong to.
const INTERFACES: [&str; 13] = [
    "bios",
    "boot",
    "console",
    "deploy",
    "firmware",
    "inspect",
    "management",
    "network",
    "power",
    "raid",
    "rescue",
    "storage",
    "vendor",
];

/// Highest step priority accepted (IPA's own go up to 99; operators may
/// raise them in Ironic, not here).
const MAX_PRIORITY: i32 = 1000;

impl Host {
    /// One call on one manager, mapped to dispatch semantics.
    pub(crate) async fn call_manager<E: Export>(
        &self,
        m: &LoadedManager,
        export: &E,
        timeout: Duration,
        progress: Arc<ProgressSink>,
        fallback: Option<FallbackCtx>,
    ) -> Result<Outcome<E::Output>, DispatchError> {
        let call = export.name();
        let pre = m.code.pre();
        let answer = run_call(&pre, &m.ctx, &self.env, export, timeout, progress, fallback)
            .await
            .map_err(|e| DispatchError::Sandbox {
                manager: m.ctx.name.clone(),
                call: call.clone(),
                failure: e.failure,
                details: e.details,
            })?;
        match answer {
            Ok(v) => Ok(Outcome::Answer(v)),
            Err(ManagerError::Unsupported(why)) | Err(ManagerError::Incompatible(why)) => {
                tracing::trace!(manager = %m.ctx.name, call, "skipped: {}", sanitize(&why, 512));
                Ok(Outcome::Skip(sanitize(&why, 512).into_owned()))
            }
            Err(ManagerError::InvalidArgument(details)) => Err(DispatchError::InvalidArgument {
                manager: m.ctx.name.clone(),
                call,
                details: sanitize(&details, 4096).into_owned(),
            }),
            Err(ManagerError::Failed(f)) => Err(DispatchError::Failed {
                manager: m.ctx.name.clone(),
                call,
                error_type: f.error_type.map(|t| sanitize(&t, 128).into_owned()),
                details: sanitize(&f.details, 16 * 1024).into_owned(),
            }),
        }
    }

    fn quiet(&self) -> Arc<ProgressSink> {
        Arc::new(ProgressSink::new(None, &self.env.limits))
    }

    /// First manager of `managers` (of `registry`) that answers; its answer
    /// and the manager.
    async fn first_of<E: Export>(
        &self,
        registry: &Arc<Registry>,
        managers: &[Arc<LoadedManager>],
        export: &E,
        timeout: Duration,
        progress: Arc<ProgressSink>,
    ) -> Result<(E::Output, Arc<LoadedManager>), DispatchError> {
        for m in managers {
            let fallback = FallbackCtx::of(registry, m, &self.env);
            if let Outcome::Answer(v) = self
                .call_manager(m, export, timeout, progress.clone(), fallback)
                .await?
            {
                tracing::debug!(manager = %m.ctx.name, call = export.name(), "answered");
                return Ok((v, m.clone()));
            }
        }
        Err(DispatchError::NoManager {
            call: export.name(),
        })
    }

    /// First manager in dispatch order that answers.
    pub(crate) async fn first_answer<E: Export>(
        &self,
        export: &E,
    ) -> Result<(E::Output, Arc<LoadedManager>), DispatchError> {
        // One snapshot for the whole call: a swap meanwhile does not affect it.
        let registry = self.snapshot();
        self.first_of(
            &registry,
            &registry.managers,
            export,
            self.env.limits.call_timeout,
            self.quiet(),
        )
        .await
    }

    /// Every manager that answers, in dispatch order; the calls run at
    /// once.
    pub(crate) async fn every_manager<E: Export>(
        &self,
        registry: &Arc<Registry>,
        export: &E,
    ) -> Result<Vec<(E::Output, Arc<LoadedManager>)>, DispatchError> {
        let timeout = self.env.limits.call_timeout;
        let answers = futures::future::join_all(registry.managers.iter().map(|m| {
            let fallback = FallbackCtx::of(registry, m, &self.env);
            self.call_manager(m, export, timeout, self.quiet(), fallback)
        }))
        .await;
        let mut out = Vec::new();
        for (answer, m) in answers.into_iter().zip(&registry.managers) {
            if let Outcome::Answer(v) = answer? {
                out.push((v, m.clone()));
            }
        }
        if out.is_empty() {
            return Err(DispatchError::NoManager {
                call: export.name(),
            });
        }
        Ok(out)
    }

    /// Steps of `kind` from every manager (`get_*_steps`), each step as
    /// Ironic's JSON dict, after checking each listing. Also records who
    /// owns each step, which [`Host::execute_step`] follows.
    pub async fn get_steps(
        &self,
        kind: StepKind,
        node: &Value,
        ports: &Value,
    ) -> Result<Vec<ManagerSteps>, DispatchError> {
        let registry = self.snapshot();
        let export = GetSteps {
            kind: step_kind_to_wit(kind),
            node: node.to_string(),
            ports: ports.to_string(),
        };
        let answers = self.every_manager(&registry, &export).await?;
        let mut listings = Vec::with_capacity(answers.len());
        for (steps, m) in &answers {
            self.check_listing(m, &export.name(), steps)?;
            listings.push(ManagerSteps {
                id: m.id.clone(),
                support: m.support,
                steps: steps.iter().map(crate::inventory::step_json).collect(),
                may_write_disks: m.may_write_disks(),
            });
        }
        let owners = record_owners(&registry, kind, &answers, &listings);
        for (step, order) in owners.iter() {
            if order.len() > 1 {
                tracing::debug!(kind = kind.as_str(), step, owner = %order[0], also = ?&order[1..], "step offered by several managers");
            }
        }
        Ok(listings)
    }

    /// A listing goes to Ironic as it is: its names, interfaces and
    /// priorities must be what Ironic can use, and its size bounded.
    fn check_listing(
        &self,
        m: &LoadedManager,
        call: &str,
        steps: &[Step],
    ) -> Result<(), DispatchError> {
        let invalid = |details: String| DispatchError::Failed {
            manager: m.ctx.name.clone(),
            call: call.to_string(),
            error_type: None,
            details: format!("invalid step list: {details}"),
        };
        let max = self.env.limits.max_steps;
        if steps.len() > max {
            return Err(invalid(format!(
                "{} steps, more than the {max} a manager may list",
                steps.len()
            )));
        }
        let mut names = std::collections::HashSet::with_capacity(steps.len());
        for (i, s) in steps.iter().enumerate() {
            let shown = sanitize(&s.name, 64);
            if !is_step_name(&s.name) {
                return Err(invalid(format!(
                    "step #{i} {shown:?}: a step name is an identifier of at most 128 characters"
                )));
            }
            if !names.insert(s.name.as_str()) {
                return Err(invalid(format!("step {shown} is listed twice")));
            }
            if !INTERFACES.contains(&s.interface.as_str()) {
                return Err(invalid(format!(
                    "step {shown}: interface {:?} is not an Ironic driver interface ({})",
                    sanitize(&s.interface, 64),
                    INTERFACES.join(", ")
                )));
            }
            if !(0..=MAX_PRIORITY).contains(&s.priority) {
                return Err(invalid(format!(
                    "step {shown}: priority {} is outside 0..={MAX_PRIORITY}",
                    s.priority
                )));
            }
            for arg in s.argsinfo.iter().flatten() {
                if !is_step_name(&arg.name) || arg.description.len() > 4096 {
                    return Err(invalid(format!(
                        "step {shown}: argument {:?} needs an identifier name and a description of at most 4096 bytes",
                        sanitize(&arg.name, 64)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Run step `name` on the manager that owns it in the latest listing
    /// (asking the others that list it, in order, if it answers
    /// unsupported), or, when no listing names it, on the first manager
    /// that handles it; with the step deadline. `progress` receives the
    /// step's progress reports.
    pub async fn execute_step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        ports: &Value,
        args: &Value,
        progress: ProgressFn,
    ) -> Result<Value, DispatchError> {
        let registry = self.snapshot();
        let export = ExecuteStep {
            kind: step_kind_to_wit(kind),
            step: name.to_string(),
            node: node.to_string(),
            ports: ports.to_string(),
            args: args.to_string(),
        };
        let call = export.name();
        let owners = match self.owners(&registry, kind) {
            Some(owners) => owners,
            None => {
                // No listing yet on this set of managers: list now.
                self.get_steps(kind, node, ports).await?;
                self.owners(&registry, kind).unwrap_or_default()
            }
        };
        let sink = Arc::new(ProgressSink::new(Some(progress), &self.env.limits));
        let timeout = self.env.limits.step_timeout;
        let (text, m) = match owners.get(name) {
            Some(order) => {
                let candidates: Vec<Arc<LoadedManager>> = order
                    .iter()
                    .filter_map(|stem| registry.managers.iter().find(|m| &m.ctx.name == stem))
                    .cloned()
                    .collect();
                let mut answer = None;
                let mut refusals = Vec::new();
                for m in &candidates {
                    let fallback = FallbackCtx::of(&registry, m, &self.env);
                    match self
                        .call_manager(m, &export, timeout, sink.clone(), fallback)
                        .await?
                    {
                        Outcome::Answer(v) => {
                            answer = Some((v, m.clone()));
                            break;
                        }
                        Outcome::Skip(why) => {
                            let refusal = format!(
                                "manager {} advertises step {name} but answered unsupported: {why}",
                                m.ctx.name
                            );
                            tracing::warn!(manager = %m.ctx.name, step = name, "{refusal}");
                            refusals.push(refusal);
                        }
                    }
                }
                answer.ok_or_else(|| DispatchError::StepNotHandled {
                    call: call.clone(),
                    step: name.to_string(),
                    hint: refusals.join("; "),
                })?
            }
            None => {
                match self
                    .first_of(&registry, &registry.managers, &export, timeout, sink)
                    .await
                {
                    Err(DispatchError::NoManager { .. }) => {
                        let mut valid: Vec<&str> = owners.keys().map(String::as_str).collect();
                        valid.sort_unstable();
                        return Err(DispatchError::StepNotHandled {
                            call,
                            step: name.to_string(),
                            hint: format!(
                                "no manager lists a {} step {}; the {} steps are: {}",
                                kind.as_str(),
                                sanitize(name, 128),
                                kind.as_str(),
                                if valid.is_empty() {
                                    "(none)".to_string()
                                } else {
                                    valid.join(", ")
                                }
                            ),
                        });
                    }
                    other => other?,
                }
            }
        };
        let cap = self.env.limits.max_step_result_bytes;
        if text.len() > cap {
            return Err(DispatchError::Failed {
                manager: m.ctx.name.clone(),
                call,
                error_type: None,
                details: format!(
                    "step result of {} bytes exceeds the cap of {cap} bytes",
                    text.len()
                ),
            });
        }
        serde_json::from_str(&text).map_err(|e| DispatchError::Failed {
            manager: m.ctx.name.clone(),
            call,
            error_type: None,
            details: format!("step result is not valid JSON: {e}"),
        })
    }

    fn owners(&self, registry: &Registry, kind: StepKind) -> Option<Arc<StepOwners>> {
        registry
            .owners
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&kind)
            .cloned()
    }

    /// `{manager name: version}` of every manager (`hardware_manager_version`).
    pub fn versions(&self) -> Result<BTreeMap<String, String>, DispatchError> {
        let registry = self.snapshot();
        if registry.managers.is_empty() {
            return Err(DispatchError::NoManager {
                call: "info".into(),
            });
        }
        Ok(registry
            .managers
            .iter()
            .map(|m| (m.manager_name.clone(), m.version.clone()))
            .collect())
    }

    /// The device to install the OS on (`get-os-install-device`).
    pub async fn os_install_device(&self, node: Option<&Value>) -> Result<String, DispatchError> {
        let export = GetOsInstallDevice {
            node: node.map(|n| n.to_string()),
        };
        self.first_answer(&export).await.map(|(dev, _)| dev)
    }
}

/// Who owns each step of this listing (`ironic_steps::step_ownership`),
/// logged when a manager takes a step over or is refused one, and kept on
/// the registry for [`Host::execute_step`].
fn record_owners(
    registry: &Registry,
    kind: StepKind,
    answers: &[(Vec<Step>, Arc<LoadedManager>)],
    listings: &[ManagerSteps],
) -> Arc<StepOwners> {
    let stem = |i: usize| answers[i].1.ctx.name.clone();
    let mut owners = StepOwners::new();
    for owned in ironic_steps::step_ownership(listings) {
        for &refused in &owned.refused {
            tracing::warn!(kind = kind.as_str(), step = %owned.step, manager = %stem(refused),
                "manager {} lists step {} but may not take it over: it has no disk-write grant and a manager with one lists the same step", stem(refused), owned.step);
        }
        if let [winner, others @ ..] = owned.order.as_slice() {
            for &other in others {
                tracing::info!(kind = kind.as_str(), step = %owned.step, owner = %stem(*winner), overridden = %stem(other),
                    "step {} of manager {} overrides manager {}'s", owned.step, stem(*winner), stem(other));
            }
        }
        owners.insert(owned.step, owned.order.iter().map(|&i| stem(i)).collect());
    }
    let owners = Arc::new(owners);
    registry
        .owners
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(kind, owners.clone());
    owners
}

/// A step or argument name: an identifier of at most 128 characters (IPA
/// steps are Python method names).
fn is_step_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::is_step_name;

    #[test]
    fn step_names_are_identifiers() {
        assert!(is_step_name("erase_devices_metadata"));
        for bad in ["", "a b", "x\0", "9x", &"a".repeat(129), "é"] {
            assert!(!is_step_name(bad), "{bad:?}");
        }
    }
}
