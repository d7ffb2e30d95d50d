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
}

/// IPA's `deduplicate_steps` (`ironic_python_agent/hardware.py`).
///
/// Steps are grouped by name across managers; the winner of each group
/// minimises `(-support, -priority, manager id)`. The result maps manager id
/// → its winning steps; managers without a winner are absent, and a manager's
/// steps follow the first appearance of each step name across all managers.
/// Linear in the number of steps.
pub fn deduplicate_steps(candidates: &[ManagerSteps]) -> Map<String, Value> {
    // (step name, [(manager index, step)]) in first-appearance order, with
    // an index by name so grouping stays linear.
    let mut groups: Vec<Vec<(usize, &Value)>> = Vec::new();
    let mut by_name: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (mi, manager) in candidates.iter().enumerate() {
        for step in &manager.steps {
            let Some(name) = step.get("step").and_then(Value::as_str) else {
                tracing::warn!(manager = %manager.id, "dropping a step without a \"step\" name");
                continue;
            };
            match by_name.get(name) {
                Some(&g) => groups[g].push((mi, step)),
                None => {
                    by_name.insert(name, groups.len());
                    groups.push(vec![(mi, step)]);
                }
            }
        }
    }

    let mut out = Map::new();
    for members in groups {
        let winner = members.into_iter().min_by(|(ma, sa), (mb, sb)| {
            let key = |m: usize, s: &Value| {
                (
                    std::cmp::Reverse(candidates[m].support),
                    std::cmp::Reverse(priority_of(s)),
                    candidates[m].id.as_str(),
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
