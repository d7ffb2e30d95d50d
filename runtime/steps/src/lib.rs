//! Ironic's clean, deploy and service steps as the agent's crates share
//! them: the host lists them per manager ([`ManagerSteps`]), the API
//! de-duplicates them as IPA does ([`deduplicate_steps`]) and answers Ironic.

// Tests may unwrap: a panic is the failure report.
#![cfg_attr(test, allow(clippy::unwrap_used))]

use serde_json::{Map, Value};

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
}

/// One manager's answer to get-steps.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagerSteps {
    /// Class-style id (e.g. `GenericHardwareManager`): the key in `<kind>_steps`.
    pub id: String,
    /// Hardware support level evaluated at load (higher wins).
    pub support: u32,
    /// Ironic step dicts as the manager returned them.
    pub steps: Vec<Value>,
    /// The operator lets this manager write disks. A manager without that
    /// grant never takes a step over from one that has it (see
    /// [`step_ownership`]). The agent's own native steps are listed
    /// separately and are not candidates here.
    pub may_write_disks: bool,
}

/// Who runs one step name, as the de-duplication decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    /// The step name.
    pub step: String,
    /// Indices (into the candidates) of the managers that list it and may
    /// run it, the winner first, then the others in the order they would
    /// be asked.
    pub order: Vec<usize>,
    /// Managers that list it but may not take it over: no disk-write
    /// grant while a manager that has one lists the same step.
    pub refused: Vec<usize>,
}

/// How every step name listed by `candidates` is owned, in
/// first-appearance order (IPA's `deduplicate_steps` ordering, see
/// [`deduplicate_steps`]), with one rule of this agent: a manager without
/// disk-write grants cannot take over a step that a manager with them also
/// lists. The winner of each group minimises `(-support, -priority,
/// manager id)` among the eligible managers. Linear in the number of steps.
pub fn step_ownership(candidates: &[ManagerSteps]) -> Vec<Ownership> {
    // (step name, [(manager index, priority)]) in first-appearance order,
    // with an index by name so grouping stays linear.
    let mut groups: Vec<(&str, Vec<(usize, i64)>)> = Vec::new();
    let mut by_name: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (mi, manager) in candidates.iter().enumerate() {
        for step in &manager.steps {
            let Some(name) = step.get("step").and_then(Value::as_str) else {
                tracing::warn!(manager = %manager.id, "dropping a step without a \"step\" name");
                continue;
            };
            let priority = priority_of(step);
            match by_name.get(name) {
                Some(&g) => groups[g].1.push((mi, priority)),
                None => {
                    by_name.insert(name, groups.len());
                    groups.push((name, vec![(mi, priority)]));
                }
            }
        }
    }
    groups
        .into_iter()
        .map(|(step, mut members)| {
            let guarded = members.iter().any(|(m, _)| candidates[*m].may_write_disks);
            let refused: Vec<usize> = if guarded {
                members
                    .iter()
                    .filter(|(m, _)| !candidates[*m].may_write_disks)
                    .map(|(m, _)| *m)
                    .collect()
            } else {
                Vec::new()
            };
            members.retain(|(m, _)| !refused.contains(m));
            members.sort_by(|(ma, pa), (mb, pb)| {
                let key = |m: usize, p: i64| {
                    (
                        std::cmp::Reverse(candidates[m].support),
                        std::cmp::Reverse(p),
                        candidates[m].id.as_str(),
                    )
                };
                key(*ma, *pa).cmp(&key(*mb, *pb))
            });
            Ownership {
                step: step.to_string(),
                order: members.into_iter().map(|(m, _)| m).collect(),
                refused,
            }
        })
        .collect()
}

/// IPA's `deduplicate_steps` (`ironic_python_agent/hardware.py`), with
/// the ownership rule of [`step_ownership`].
///
/// Steps are grouped by name across managers; the winner of each group
/// minimises `(-support, -priority, manager id)`. The result maps manager id
/// → its winning steps; managers without a winner are absent, and a manager's
/// steps follow the first appearance of each step name across all managers.
pub fn deduplicate_steps(candidates: &[ManagerSteps]) -> Map<String, Value> {
    let mut out = Map::new();
    for owned in step_ownership(candidates) {
        let Some(&winner) = owned.order.first() else {
            continue;
        };
        let manager = &candidates[winner];
        let Some(step) = manager
            .steps
            .iter()
            .find(|s| s.get("step").and_then(Value::as_str) == Some(owned.step.as_str()))
        else {
            continue;
        };
        let entry = out
            .entry(manager.id.clone())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = entry {
            list.push(step.clone());
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
            may_write_disks: false,
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

    #[test]
    fn a_manager_without_disk_grants_cannot_take_over_a_granted_managers_step() {
        let mut generic = ms(
            "GenericHardwareManager",
            1,
            vec![json!({"step": "erase_devices", "priority": 10})],
        );
        generic.may_write_disks = true;
        let c = vec![
            ms(
                "Impostor",
                9,
                vec![
                    json!({"step": "erase_devices", "priority": 100}),
                    json!({"step": "own_step", "priority": 1}),
                ],
            ),
            generic,
        ];
        let owned = step_ownership(&c);
        assert_eq!(owned[0].step, "erase_devices");
        assert_eq!(owned[0].order, vec![1]);
        assert_eq!(owned[0].refused, vec![0]);
        assert_eq!(owned[1].order, vec![0], "its own steps stay its own");
        let d = deduplicate_steps(&c);
        assert_eq!(
            d["GenericHardwareManager"],
            json!([{"step": "erase_devices", "priority": 10}])
        );
        assert_eq!(d["Impostor"], json!([{"step": "own_step", "priority": 1}]));
    }

    #[test]
    fn many_distinct_steps_keep_their_order() {
        let steps: Vec<Value> = (0..50_000)
            .map(|i| json!({"step": format!("s{i}"), "priority": 0}))
            .collect();
        let c = vec![ms("M", 1, steps.clone())];
        assert_eq!(deduplicate_steps(&c)["M"], Value::Array(steps));
    }
}
