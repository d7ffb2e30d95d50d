//! The `standby` extension: `sync`, `get_partition_uuids` (sync),
//! `power_off`, `run_image` (async, through the system backend).
//!
//! `prepare_image` / `execute_bootc_install` belong to the image pipeline and
//! are not registered yet (they answer "Unknown command").

use serde_json::{Map, Value};

use crate::engine::{CommandDef, CommandFuture, Ctx, Extension, Mode, Param};
use crate::system_actions::SystemAction;

const NO_PARAMS: &[Param] = &[];

/// The extension's commands.
pub fn extension() -> Extension {
    let cmd = |name, mode, handler| CommandDef {
        name,
        mode,
        params: NO_PARAMS,
        extra_kwargs: false,
        validator: None,
        handler,
    };
    Extension {
        name: "standby",
        class: "StandbyExtension",
        commands: vec![
            cmd("sync", Mode::Sync, sync),
            cmd("get_partition_uuids", Mode::Sync, get_partition_uuids),
            cmd("power_off", Mode::Async, power_off),
            cmd("run_image", Mode::Async, run_image),
        ],
    }
}

async fn perform(
    ctx: &Ctx,
    actions: &'static [SystemAction],
) -> Result<Value, crate::engine::CommandError> {
    let system = ctx.state.system();
    ctx.blocking(move || {
        for action in actions {
            system.perform(*action)?;
        }
        Ok(Value::Null)
    })
    .await
}

fn sync(ctx: Ctx, _params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move { perform(&ctx, &[SystemAction::Sync]).await })
}

fn get_partition_uuids(ctx: Ctx, _params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move { Ok(ctx.state.partition_uuids()) })
}

fn power_off(ctx: Ctx, _params: Map<String, Value>) -> CommandFuture {
    // Flush first, as IPA's full_sync before the shutdown command.
    Box::pin(async move { perform(&ctx, &[SystemAction::Sync, SystemAction::PowerOff]).await })
}

fn run_image(ctx: Ctx, _params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move { perform(&ctx, &[SystemAction::Sync, SystemAction::Reboot]).await })
}
