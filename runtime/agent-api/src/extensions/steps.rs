//! The step extensions `clean`, `deploy` and `service`, one definition
//! for the three kinds: `get_<kind>_steps` (sync: every manager's steps,
//! de-duplicated, with the agent's native steps) and `execute_<kind>_step`
//! (async: the hardware-manager version check, then the native step or the
//! first manager that handles it). IPA: `extensions/clean.py`,
//! `deploy.py`, `service.py`.

use serde_json::{json, Map, Value};

use crate::engine::{handler, opt, req, CommandDef, CommandError, Ctx, Extension, Mode, Param};
use crate::errors::{py_repr, AgentError, ErrorClass};
use crate::managers::{deduplicate_steps, StepKind};
use crate::native_steps::{self, StepCall};

const GET_PARAMS: &[Param] = &[req("node"), req("ports")];
const CLEAN_PARAMS: &[Param] = &[req("step"), req("node"), req("ports"), opt("clean_version")];
const DEPLOY_PARAMS: &[Param] = &[
    req("step"),
    req("node"),
    req("ports"),
    opt("deploy_version"),
];
const SERVICE_PARAMS: &[Param] = &[
    req("step"),
    req("node"),
    req("ports"),
    opt("service_version"),
];

/// The extension serving steps of `kind`.
pub fn extension(kind: StepKind) -> Extension {
    let (name, class, get, execute, exec_params) = match kind {
        StepKind::Clean => (
            "clean",
            "CleanExtension",
            "get_clean_steps",
            "execute_clean_step",
            CLEAN_PARAMS,
        ),
        StepKind::Deploy => (
            "deploy",
            "DeployExtension",
            "get_deploy_steps",
            "execute_deploy_step",
            DEPLOY_PARAMS,
        ),
        StepKind::Service => (
            "service",
            "ServiceExtension",
            "get_service_steps",
            "execute_service_step",
            SERVICE_PARAMS,
        ),
    };
    Extension {
        name,
        class,
        commands: vec![
            CommandDef {
                name: get,
                mode: Mode::Sync,
                params: GET_PARAMS,
                extra_kwargs: false,
                validator: None,
                handler: handler(move |ctx, params| Box::pin(get_steps(ctx, kind, params))),
            },
            CommandDef {
                name: execute,
                mode: Mode::Async,
                params: exec_params,
                extra_kwargs: true,
                validator: None,
                handler: handler(move |ctx, params| Box::pin(execute_step(ctx, kind, params))),
            },
        ],
        native_steps: Vec::new(),
    }
}

/// `get_<kind>_steps(node, ports)`.
async fn get_steps(
    ctx: Ctx,
    kind: StepKind,
    params: Map<String, Value>,
) -> Result<Value, CommandError> {
    let node = params.get("node").cloned().unwrap_or(Value::Null);
    let ports = params.get("ports").cloned().unwrap_or(Value::Null);
    ctx.state.cache_node(&node);
    let managers = ctx.state.managers();
    let candidates = managers.get_steps(kind, &node, &ports).await?;
    let versions = managers.versions()?;
    let mut steps = deduplicate_steps(&candidates);
    ctx.state.native_steps().merge_listing(kind, &mut steps);
    Ok(json!({
        format!("{}_steps", kind.as_str()): steps,
        "hardware_manager_version": versions,
    }))
}

/// `execute_<kind>_step(step, node, ports, <kind>_version=None, **kwargs)`.
async fn execute_step(
    ctx: Ctx,
    kind: StepKind,
    mut params: Map<String, Value>,
) -> Result<Value, CommandError> {
    let k = kind.as_str();
    let step = params.remove("step").unwrap_or(Value::Null);
    let node = params.remove("node").unwrap_or(Value::Null);
    let ports = params.remove("ports").unwrap_or(Value::Null);
    let provided = params
        .remove(&format!("{k}_version"))
        .unwrap_or(Value::Null);
    ctx.state.cache_node(&node);

    let managers = ctx.state.managers();
    if !provided.is_null() {
        let current = json!(managers.versions()?);
        if current != provided {
            return Err(AgentError::new(
                ErrorClass::VersionMismatch,
                format!(
                    "Current versions: {}, versions used by ironic: {}",
                    py_repr(&current),
                    py_repr(&provided)
                ),
            )
            .into());
        }
    }

    let Some(name) = step.get("step").and_then(Value::as_str).map(str::to_string) else {
        return Err(CommandError::Exception {
            class: "ValueError",
            text: format!("Malformed {k}_step, no \"step\" key: {}", py_repr(&step)),
        });
    };
    // kwargs = extra top-level params, then the step's own args on top.
    let mut kwargs = params;
    if let Some(Value::Object(args)) = step.get("args") {
        kwargs.extend(args.clone());
    }
    // Agent-native steps (the image pipeline) run here, never in a manager.
    if let Some(native) = ctx.state.native_steps().find(kind, &name).cloned() {
        tracing::info!(kind = k, step = %name, "executing native step");
        let call = StepCall {
            name: name.clone(),
            node,
            ports,
            kwargs,
        };
        let result = native_steps::execute(ctx.clone(), kind, &native, call).await?;
        return Ok(json!({
            format!("{k}_result"): result,
            format!("{k}_step"): step,
        }));
    }
    let kwargs = Value::Object(kwargs);
    let progress = ctx.progress_sink();
    tracing::info!(kind = k, step = %name, "executing step");
    let result = managers
        .execute_step(kind, &name, &node, &ports, &kwargs, progress)
        .await?;
    if kind == StepKind::Deploy && name == "write_image" {
        record_partition_uuids(&ctx, &result);
    }
    Ok(json!({
        format!("{k}_result"): result,
        format!("{k}_step"): step,
    }))
}

/// A `write_image` step may report the partition UUIDs it created (the keys
/// of `standby.get_partition_uuids`); keep them for that command.
fn record_partition_uuids(ctx: &Ctx, result: &Value) {
    if let Some(uuids) = result.get("partition_uuids").filter(|v| v.is_object()) {
        ctx.state.set_partition_uuids(uuids.clone());
    } else if let Some(obj) = result.as_object() {
        if obj.contains_key("root uuid") {
            ctx.state.set_partition_uuids(result.clone());
        }
    }
}
