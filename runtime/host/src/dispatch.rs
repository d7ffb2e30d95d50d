//! Dispatch: "first one that answers" and "every manager" (IPA's
//! `dispatch_to_managers` / `dispatch_to_all_managers`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use wasmtime::Store;

use crate::bindings::latest::ironic::hardware::types::ManagerError;
use crate::bindings::Manager;
use crate::error::DispatchError;
use crate::registry::{Host, LoadedManager};
use crate::sandbox::{run_call, CallState, ProgressSender};
use crate::{ManagerSteps, StepKind};

/// Native stack of the thread running a step (wasm stack + host frames).
const STEP_THREAD_STACK: usize = 8 * 1024 * 1024;

/// What a manager call produced when it produced a value or a fall-through.
pub(crate) enum Outcome<R> {
    Answer(R),
    Skip,
}

impl Host {
    /// One call on one manager, mapped to dispatch semantics.
    pub(crate) fn call_manager<R>(
        &self,
        m: &LoadedManager,
        call: &str,
        timeout: Duration,
        progress: Option<ProgressSender>,
        f: impl FnOnce(&Manager, &mut Store<CallState>) -> wasmtime::Result<Result<R, ManagerError>>,
    ) -> Result<Outcome<R>, DispatchError> {
        let result =
            run_call(&m.pre, &m.ctx, &self.env, call, timeout, progress, f).map_err(|e| {
                DispatchError::Sandbox {
                    manager: m.ctx.name.clone(),
                    call: call.to_string(),
                    failure: e.failure,
                    details: e.details,
                }
            })?;
        match result {
            Ok(v) => Ok(Outcome::Answer(v)),
            Err(ManagerError::Unsupported(why)) | Err(ManagerError::Incompatible(why)) => {
                tracing::trace!(manager = %m.ctx.name, call, "skipped: {why}");
                Ok(Outcome::Skip)
            }
            Err(ManagerError::InvalidArgument(details)) => Err(DispatchError::InvalidArgument {
                manager: m.ctx.name.clone(),
                call: call.to_string(),
                details,
            }),
            Err(ManagerError::Failed(f)) => Err(DispatchError::Failed {
                manager: m.ctx.name.clone(),
                call: call.to_string(),
                error_type: f.error_type,
                details: f.details,
            }),
        }
    }

    /// First manager in order that answers; its answer and the manager.
    pub(crate) fn first_answer<R>(
        &self,
        call: &str,
        timeout: Duration,
        progress: Option<&ProgressSender>,
        f: impl Fn(&Manager, &mut Store<CallState>) -> wasmtime::Result<Result<R, ManagerError>>,
    ) -> Result<(R, Arc<LoadedManager>), DispatchError> {
        // One snapshot for the whole call: a swap meanwhile does not affect it.
        let registry = self.snapshot();
        for m in &registry.managers {
            if let Outcome::Answer(v) =
                self.call_manager(m, call, timeout, progress.cloned(), &f)?
            {
                tracing::debug!(manager = %m.ctx.name, call, "answered");
                return Ok((v, m.clone()));
            }
        }
        Err(DispatchError::NoManager {
            call: call.to_string(),
        })
    }

    /// Every manager that answers, in order.
    pub(crate) fn every_manager<R>(
        &self,
        call: &str,
        timeout: Duration,
        f: impl Fn(&Manager, &mut Store<CallState>) -> wasmtime::Result<Result<R, ManagerError>>,
    ) -> Result<Vec<(R, Arc<LoadedManager>)>, DispatchError> {
        let mut out = Vec::new();
        let registry = self.snapshot();
        for m in &registry.managers {
            if let Outcome::Answer(v) = self.call_manager(m, call, timeout, None, &f)? {
                out.push((v, m.clone()));
            }
        }
        if out.is_empty() {
            return Err(DispatchError::NoManager {
                call: call.to_string(),
            });
        }
        Ok(out)
    }

    /// Steps of `kind` from every manager (`get_*_steps`), each step as
    /// Ironic's JSON dict.
    pub fn get_steps(
        &self,
        kind: StepKind,
        node: &Value,
        ports: &Value,
    ) -> Result<Vec<ManagerSteps>, DispatchError> {
        let (node, ports) = (node.to_string(), ports.to_string());
        let call = format!("get-steps {}", kind.as_str());
        let answers = self.every_manager(&call, self.env.limits.call_timeout, |i, s| {
            i.call_get_steps(s, crate::bindings::step_kind_to_wit(kind), &node, &ports)
        })?;
        Ok(answers
            .into_iter()
            .map(|(steps, m)| ManagerSteps {
                id: m.id.clone(),
                support: m.support,
                steps: steps.iter().map(crate::inventory::step_json).collect(),
            })
            .collect())
    }

    /// Run step `name` on the first manager that handles it, with the step
    /// deadline; `progress` receives the step's progress reports.
    pub fn execute_step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        ports: &Value,
        args: &Value,
        progress: &(dyn Fn(Option<u8>, &str) + Send + Sync),
    ) -> Result<Value, DispatchError> {
        let (node, ports, args) = (node.to_string(), ports.to_string(), args.to_string());
        let call = format!("execute-step {} {name}", kind.as_str());
        let timeout = self.env.limits.step_timeout;
        let (tx, rx) = std::sync::mpsc::channel::<(Option<u8>, String)>();
        let run_step = |tx: ProgressSender| {
            self.first_answer(&call, timeout, Some(&tx), |i, s| {
                i.call_execute_step(
                    s,
                    crate::bindings::step_kind_to_wit(kind),
                    name,
                    &node,
                    &ports,
                    &args,
                )
            })
        };
        let run = &run_step;
        // The store needs 'static data, so progress crosses a channel: the
        // step runs on a scoped thread while this thread forwards reports.
        let answer = std::thread::scope(|scope| {
            let worker = std::thread::Builder::new()
                .name("manager-step".into())
                .stack_size(STEP_THREAD_STACK)
                .spawn_scoped(scope, move || run(tx));
            match worker {
                Ok(handle) => {
                    for (percent, message) in rx {
                        progress(percent, &message);
                    }
                    handle.join().map_err(|_| DispatchError::Failed {
                        manager: "host".into(),
                        call: call.clone(),
                        error_type: None,
                        details: "the step thread panicked".into(),
                    })?
                }
                Err(e) => {
                    tracing::warn!("cannot spawn step thread ({e}); running without progress");
                    let (tx, _rx) = std::sync::mpsc::channel();
                    run(tx)
                }
            }
        })?;
        let (text, m) = answer;
        serde_json::from_str(&text).map_err(|e| DispatchError::Failed {
            manager: m.ctx.name.clone(),
            call,
            error_type: None,
            details: format!("step result is not valid JSON: {e}"),
        })
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
    pub fn os_install_device(&self, node: Option<&Value>) -> Result<String, DispatchError> {
        let node = node.map(|n| n.to_string());
        self.first_answer(
            "get-os-install-device",
            self.env.limits.call_timeout,
            None,
            |i, s| i.call_get_os_install_device(s, node.as_ref()),
        )
        .map(|(dev, _)| dev)
    }
}
