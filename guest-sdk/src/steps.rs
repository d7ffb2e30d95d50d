//! Steps declared once: the listing (`get-steps`) and the dispatch
//! (`execute-step`) come from the same table, and arguments are checked
//! against `argsinfo` before the handler runs, as Ironic checks a manual
//! step's arguments (ironic/conductor/steps.py, `_validate_user_step`).

use serde_json::Value;

use crate::helpers::StepArgs;
use crate::{ManagerError, Step, StepKind};

/// A step handler: the call's node, ports and checked arguments in, the
/// step's result (any JSON; `null` for none) out.
pub type StepHandler = fn(&StepCall) -> Result<Value, ManagerError>;

/// One step offered for one kind, and the function that runs it.
#[derive(Clone)]
pub struct StepDef {
    pub kind: StepKind,
    pub step: Step,
    pub handler: StepHandler,
}

impl StepDef {
    /// A clean step.
    pub fn clean(step: Step, handler: StepHandler) -> Self {
        StepDef {
            kind: StepKind::Clean,
            step,
            handler,
        }
    }
    /// A deploy step.
    pub fn deploy(step: Step, handler: StepHandler) -> Self {
        StepDef {
            kind: StepKind::Deploy,
            step,
            handler,
        }
    }
    /// A service step.
    pub fn service(step: Step, handler: StepHandler) -> Self {
        StepDef {
            kind: StepKind::Service,
            step,
            handler,
        }
    }
}

/// What a step handler gets.
pub struct StepCall {
    pub kind: StepKind,
    /// The step name.
    pub name: String,
    /// The node Ironic sent (`{}` when none).
    pub node: Value,
    /// The node's ports (`[]` when none).
    pub ports: Value,
    /// The arguments, already checked against the step's `argsinfo`.
    pub args: StepArgs,
}

fn same_kind(a: StepKind, b: StepKind) -> bool {
    matches!(
        (a, b),
        (StepKind::Clean, StepKind::Clean)
            | (StepKind::Deploy, StepKind::Deploy)
            | (StepKind::Service, StepKind::Service)
    )
}

pub(crate) fn listing(defs: &[StepDef], kind: StepKind) -> Vec<Step> {
    defs.iter()
        .filter(|d| same_kind(d.kind, kind))
        .map(|d| d.step.clone())
        .collect()
}

fn parse_json(what: &str, text: &str, empty: Value) -> Result<Value, ManagerError> {
    if text.trim().is_empty() {
        return Ok(empty);
    }
    serde_json::from_str(text)
        .map_err(|e| ManagerError::invalid_argument(format!("{what} is not JSON: {e}")))
}

/// Every required argument present and every argument declared.
fn check_args(step: &Step, args: &StepArgs) -> Result<(), ManagerError> {
    let declared = step.argsinfo.as_deref().unwrap_or_default();
    for info in declared {
        let present = args.as_map().get(&info.name).is_some_and(|v| !v.is_null());
        if info.required && !present {
            return Err(ManagerError::invalid_argument(format!(
                "step {}: missing required argument {} ({})",
                step.name, info.name, info.description
            )));
        }
    }
    if let Some(unknown) = args
        .as_map()
        .keys()
        .find(|k| !declared.iter().any(|i| &i.name == *k))
    {
        let valid: Vec<&str> = declared.iter().map(|i| i.name.as_str()).collect();
        return Err(ManagerError::invalid_argument(format!(
            "step {}: unknown argument {unknown}; its arguments are: {}",
            step.name,
            if valid.is_empty() {
                "(none)".to_string()
            } else {
                valid.join(", ")
            }
        )));
    }
    Ok(())
}

pub(crate) fn dispatch(
    defs: &[StepDef],
    kind: StepKind,
    name: &str,
    node: &str,
    ports: &str,
    args: &str,
) -> Result<String, ManagerError> {
    let Some(def) = defs
        .iter()
        .find(|d| same_kind(d.kind, kind) && d.step.name == name)
    else {
        return Err(ManagerError::unsupported(name));
    };
    let args = StepArgs::parse(args)?;
    check_args(&def.step, &args)?;
    let call = StepCall {
        kind,
        name: name.to_string(),
        node: parse_json("node", node, Value::Object(Default::default()))?,
        ports: parse_json("ports", ports, Value::Array(Vec::new()))?,
        args,
    };
    let result = (def.handler)(&call)?;
    crate::json_result(&result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn flash(call: &StepCall) -> Result<Value, ManagerError> {
        let version: String = call.args.required("version")?;
        Ok(json!({"flashed": version, "node": call.node["uuid"]}))
    }

    fn table() -> Vec<StepDef> {
        vec![StepDef::clean(
            Step::new("flash", 0, "deploy")
                .arg("version", "firmware version", true)
                .arg("force", "flash even when current", false),
            flash,
        )]
    }

    #[test]
    fn one_table_gives_the_listing_and_the_dispatch() {
        assert_eq!(listing(&table(), StepKind::Clean).len(), 1);
        assert!(listing(&table(), StepKind::Deploy).is_empty());
        let out = dispatch(
            &table(),
            StepKind::Clean,
            "flash",
            r#"{"uuid": "n1"}"#,
            "[]",
            r#"{"version": "2.0"}"#,
        )
        .expect("runs");
        assert_eq!(
            serde_json::from_str::<Value>(&out).expect("json"),
            json!({"flashed": "2.0", "node": "n1"})
        );
    }

    #[test]
    fn arguments_are_checked_against_argsinfo() {
        let run = |args: &str| dispatch(&table(), StepKind::Clean, "flash", "{}", "[]", args);
        match run("{}") {
            Err(ManagerError::InvalidArgument(m)) => {
                assert!(m.contains("missing required argument version"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        match run(r#"{"version": "1", "colour": "red"}"#) {
            Err(ManagerError::InvalidArgument(m)) => assert!(
                m.contains("unknown argument colour") && m.contains("version, force"),
                "{m}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            dispatch(&table(), StepKind::Service, "flash", "{}", "[]", "{}"),
            Err(ManagerError::Unsupported(_))
        ));
    }
}
