//! The `system` extension: `lockdown` (sync). The reply is sent in full,
//! then the API stops and the network is brought down ([`crate::serve`]).

use serde_json::{Map, Value};

use crate::engine::{handler, CommandDef, CommandFuture, Ctx, Extension, Mode, Param};
use crate::StopReason;

const NO_PARAMS: &[Param] = &[];

/// The extension's commands.
pub fn extension() -> Extension {
    Extension {
        name: "system",
        class: "SystemExtension",
        commands: vec![CommandDef {
            name: "lockdown",
            mode: Mode::Sync,
            params: NO_PARAMS,
            extra_kwargs: false,
            validator: None,
            handler: handler(lockdown),
        }],
        native_steps: Vec::new(),
    }
}

fn lockdown(ctx: Ctx, _params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move {
        tracing::warn!("lockdown requested: API and network go down after this reply");
        ctx.state.request_stop(StopReason::Lockdown);
        Ok(Value::Null)
    })
}
