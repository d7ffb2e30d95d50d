//! The generic clean, deploy and service steps (shared/spec/hardware-managers.md §9).

use ironic_hardware_guest::prelude::*;

/// Only steps that are implemented are advertised.
pub fn get_steps(_kind: StepKind, _node: &str, _ports: &str) -> Result<Vec<Step>, ManagerError> {
    Ok(Vec::new())
}

pub fn execute_step(
    _kind: StepKind,
    name: &str,
    _node: &str,
    _ports: &str,
    _args: &str,
) -> Result<Json, ManagerError> {
    Err(ManagerError::unsupported(name))
}
