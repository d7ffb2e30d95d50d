//! The engine's only view of hardware managers, and step deduplication.
//!
//! The host crate (wasm components) is adapted to [`Managers`] outside this
//! crate, so the API can be tested with fakes and never depends on wasmtime.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::errors::AgentError;

/// The three step families Ironic drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKind {
    /// Cleaning (`clean.*`).
    Clean,
    /// Deployment (`deploy.*`).
    Deploy,
    /// Servicing (`service.*`).
    Service,
}

impl StepKind {
    /// `clean`, `deploy` or `service`: the prefix of `<kind>_steps`,
    /// `<kind>_result`, `<kind>_version`...
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::Clean => "clean",
            StepKind::Deploy => "deploy",
            StepKind::Service => "service",
        }
    }

    /// IPA's wrapper error class for unexpected step failures.
    pub fn wrapper_error(self) -> &'static str {
        match self {
            StepKind::Clean => "CleaningError",
            StepKind::Deploy => "DeploymentError",
            StepKind::Service => "ServicingError",
        }
    }

    /// The wrapper error for a non-IPA failure of step `name`, worded as IPA
    /// does: `Unexpected exception performing clean step <name>. <Class>: <text>`.
    pub fn step_failure(self, name: &str, exc_class: &str, text: &str) -> AgentError {
        AgentError::new(
            self.wrapper_error(),
            format!(
                "Unexpected exception performing {} step {name}. {exc_class}: {text}",
                self.as_str()
            ),
        )
    }
}

/// One manager's answer to get-steps.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerSteps {
    /// Class-style id (e.g. `GenericHardwareManager`): the key in `<kind>_steps`.
    pub id: String,
    /// Hardware support level evaluated at start-up (higher wins).
    pub support: u32,
    /// Ironic step dicts as the manager returned them.
    pub steps: Vec<Value>,
}

/// Progress callback handed to a running step: `(percent, message)`.
pub type StepProgressFn<'a> = &'a (dyn Fn(Option<u8>, &str) + Send + Sync);

/// Hardware managers as the command engine sees them.
///
/// All calls are blocking (wasm runs synchronously); the engine always calls
/// them from `tokio::task::spawn_blocking`.
pub trait Managers: Send + Sync + 'static {
    /// Every-manager dispatch of get-steps: one entry per manager that
    /// answered, in support order.
    fn get_steps(
        &self,
        kind: StepKind,
        node: &Value,
        ports: &Value,
    ) -> Result<Vec<ManagerSteps>, AgentError>;

    /// First-answer dispatch of a step; `progress(percent, message)` may be
    /// called while it runs.
    fn execute_step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        ports: &Value,
        args: &Value,
        progress: StepProgressFn<'_>,
    ) -> Result<Value, AgentError>;

    /// Manager name → version (`hardware_manager_version`).
    fn versions(&self) -> Result<BTreeMap<String, String>, AgentError>;

    /// A fresh hardware inventory (Ironic's inventory JSON).
    fn inventory(&self) -> Result<Value, AgentError>;

    /// The device the image is written to (IPA's first-answer
    /// `get_os_install_device(permit_refresh=True)`), e.g. `/dev/sda`, chosen
    /// with the node's root-device hints; a vendor manager may override it.
    /// The path is as seen by the managers: callers map it into the
    /// hardware root ([`crate::native_steps::device_in_root`]).
    ///
    /// The default answers `HardwareManagerMethodNotFound`, as when no
    /// manager implements the call.
    fn os_install_device(&self, node: Option<&Value>) -> Result<String, AgentError> {
        let _ = node;
        Err(AgentError::method_not_found("get_os_install_device"))
    }

    /// Installs `bytes` (an already verified component) as manager `name`
    /// (`<name>.wasm` in the managers directory) and activates it, replacing
    /// a manager of the same name. Validation (contract, grants, support)
    /// comes first: a rejected component leaves the directory and the
    /// running managers unchanged and answers an error naming the reason.
    ///
    /// The default refuses: this agent cannot load managers at run time.
    fn load_manager(
        &self,
        name: &str,
        bytes: &[u8],
    ) -> Result<crate::load_manager::LoadedManagerInfo, AgentError> {
        let _ = bytes;
        Err(AgentError::command_execution(format!(
            "cannot load hardware manager {name}: this agent does not support loading managers"
        )))
    }
}

/// IPA's `deduplicate_steps` (hardware-managers.md §7.2).
///
/// Steps are grouped by name across managers; the winner of each group
/// minimises `(-support, -priority, manager id)`. The result maps manager id
/// → its winning steps; managers without a winner are absent, and a manager's
/// steps follow the first appearance of each step name across all managers.
pub fn deduplicate_steps(candidates: &[ManagerSteps]) -> Map<String, Value> {
    // (step name, [(manager index, step)]) in first-appearance order.
    let mut groups: Vec<(String, Vec<(usize, &Value)>)> = Vec::new();
    for (mi, manager) in candidates.iter().enumerate() {
        for step in &manager.steps {
            let Some(name) = step.get("step").and_then(Value::as_str) else {
                tracing::warn!(manager = %manager.id, "dropping a step without a \"step\" name");
                continue;
            };
            match groups.iter_mut().find(|(n, _)| n == name) {
                Some((_, members)) => members.push((mi, step)),
                None => groups.push((name.to_string(), vec![(mi, step)])),
            }
        }
    }

    let mut out = Map::new();
    for (_, members) in groups {
        let winner = members.into_iter().min_by(|(ma, sa), (mb, sb)| {
            let key = |m: usize, s: &Value| {
                (
                    std::cmp::Reverse(candidates[m].support),
                    std::cmp::Reverse(priority_of(s)),
                    candidates[m].id.clone(),
                )
            };
            key(*ma, sa).cmp(&key(*mb, sb))
        });
        if let Some((mi, step)) = winner {
            let entry = out
                .entry(candidates[mi].id.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(list) = entry {
                list.push(step.clone());
            }
        }
    }
    out
}

/// A step's priority as an integer (missing or non-numeric → 0).
fn priority_of(step: &Value) -> i64 {
    match step.get("priority") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(id: &str, support: u32, steps: Vec<Value>) -> ManagerSteps {
        ManagerSteps {
            id: id.into(),
            support,
            steps,
        }
    }

    #[test]
    fn higher_support_wins_then_priority_then_name() {
        let c = vec![
            ms(
                "Vendor",
                3,
                vec![json!({"step": "erase_devices", "priority": 5})],
            ),
            ms(
                "GenericHardwareManager",
                1,
                vec![
                    json!({"step": "erase_devices", "priority": 10}),
                    json!({"step": "erase_pstore", "priority": 0}),
                ],
            ),
            ms(
                "Alpha",
                1,
                vec![json!({"step": "erase_pstore", "priority": 0})],
            ),
            ms("Zed", 1, vec![json!({"step": "burnin", "priority": 0})]),
            ms("Yak", 1, vec![json!({"step": "burnin", "priority": 7})]),
        ];
        let d = deduplicate_steps(&c);
        assert_eq!(
            d["Vendor"],
            json!([{"step": "erase_devices", "priority": 5}])
        );
        assert_eq!(d["Alpha"], json!([{"step": "erase_pstore", "priority": 0}]));
        assert_eq!(d["Yak"], json!([{"step": "burnin", "priority": 7}]));
        assert!(!d.contains_key("GenericHardwareManager"));
        assert!(!d.contains_key("Zed"));
    }

    #[test]
    fn order_follows_first_appearance() {
        let c = vec![
            ms(
                "B",
                2,
                vec![
                    json!({"step": "x", "priority": 0}),
                    json!({"step": "y", "priority": 0}),
                ],
            ),
            ms("A", 1, vec![json!({"step": "z", "priority": 0})]),
        ];
        let d = deduplicate_steps(&c);
        let names: Vec<_> = d["B"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["step"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["x", "y"]);
        assert_eq!(d.keys().collect::<Vec<_>>(), vec!["B", "A"]);
    }
}
