//! The `clean` extension: `get_clean_steps` (sync) and
//! `execute_clean_step` (async).

use serde_json::{Map, Value};

use super::steps;
use crate::engine::{opt, req, CommandDef, CommandFuture, Ctx, Extension, Mode, Param};
use crate::managers::StepKind;

const GET_PARAMS: &[Param] = &[req("node"), req("ports")];
const EXEC_PARAMS: &[Param] = &[req("step"), req("node"), req("ports"), opt("clean_version")];

/// The extension's commands.
pub fn extension() -> Extension {
    Extension {
        name: "clean",
        class: "CleanExtension",
        commands: vec![
            CommandDef {
                name: "get_clean_steps",
                mode: Mode::Sync,
                params: GET_PARAMS,
                extra_kwargs: false,
                validator: None,
                handler: get_steps,
            },
            CommandDef {
                name: "execute_clean_step",
                mode: Mode::Async,
                params: EXEC_PARAMS,
                extra_kwargs: true,
                validator: None,
                handler: execute_step,
            },
        ],
    }
}

fn get_steps(ctx: Ctx, params: Map<String, Value>) -> CommandFuture {
    Box::pin(steps::get_steps(ctx, StepKind::Clean, params))
}

fn execute_step(ctx: Ctx, params: Map<String, Value>) -> CommandFuture {
    Box::pin(steps::execute_step(ctx, StepKind::Clean, params))
}
