//! The `poll` extension: `get_hardware_info` (sync, fresh inventory) and
//! `set_node_info` (sync, standalone mode only).

use serde_json::{Map, Value};

use crate::engine::{handler, opt, CommandDef, CommandFuture, Ctx, Extension, Mode, Param};
use crate::errors::AgentError;

const NO_PARAMS: &[Param] = &[];
const SET_PARAMS: &[Param] = &[opt("node_info")];

/// The extension's commands.
pub fn extension() -> Extension {
    Extension {
        name: "poll",
        class: "PollExtension",
        commands: vec![
            CommandDef {
                name: "get_hardware_info",
                mode: Mode::Sync,
                params: NO_PARAMS,
                extra_kwargs: false,
                validator: None,
                handler: handler(get_hardware_info),
            },
            CommandDef {
                name: "set_node_info",
                mode: Mode::Sync,
                params: SET_PARAMS,
                extra_kwargs: false,
                validator: None,
                handler: handler(set_node_info),
            },
        ],
        native_steps: Vec::new(),
    }
}

fn get_hardware_info(ctx: Ctx, _params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move {
        // Bypasses any inventory cache, as IPA's command does.
        Ok(ctx.state.managers().inventory().await?)
    })
}

fn set_node_info(ctx: Ctx, mut params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move {
        if !ctx.state.config().standalone {
            // InvalidCommandError: answered as HTTP 400, nothing recorded.
            return Err(AgentError::invalid_command(
                "Node lookup data can only be set when the Ironic Python Agent is running in standalone mode.",
            )
            .into());
        }
        let info = params.remove("node_info").unwrap_or(Value::Null);
        if let Some(node) = info.get("node") {
            ctx.state.cache_node(node);
        }
        ctx.state.set_node_info(info);
        Ok(Value::Null)
    })
}
