//! The generic clean, deploy and service steps (shared/spec/hardware-managers.md §9).
//!
//! Implemented so far: the erase family (shared/spec/erase.md) and
//! `erase_pstore`. Only implemented steps are advertised.

use ironic_hardware_guest::prelude::*;

mod devices;
mod erase;
mod metadata;
mod node;
mod pstore;
mod secure_erase;
mod skip;

/// hardware-managers.md §9.1/§9.2: clean steps carry `abortable: true`,
/// deploy steps no `abortable` key; none requests a reboot.
pub fn get_steps(kind: StepKind, _node: &str, _ports: &str) -> Result<Vec<Step>, ManagerError> {
    Ok(match kind {
        StepKind::Clean => vec![
            Step::new("erase_devices", 10, "deploy").abortable(true),
            Step::new("erase_devices_metadata", 99, "deploy").abortable(true),
            Step::new("erase_devices_express", 0, "deploy").abortable(true),
            Step::new("erase_pstore", 0, "deploy").abortable(true),
        ],
        StepKind::Deploy => vec![Step::new("erase_devices_metadata", 0, "deploy")],
        // The erase steps are deliberately not service steps (§9.3).
        StepKind::Service => Vec::new(),
    })
}

/// Dispatch by name, as IPA does whatever the step kind.
pub fn execute_step(
    _kind: StepKind,
    name: &str,
    node: &str,
    _ports: &str,
    args: &str,
) -> Result<Json, ManagerError> {
    // None of these steps take arguments; IPA would raise TypeError on an
    // unexpected one, but Ironic never sends any, so they are ignored.
    let _ = StepArgs::parse(args)?;
    match name {
        "erase_devices" => erase::erase_devices(node),
        "erase_devices_metadata" => erase::erase_devices_metadata(node),
        "erase_devices_express" => erase::erase_devices_express(node),
        "erase_pstore" => pstore::erase_pstore(),
        _ => Err(ManagerError::unsupported(name)),
    }
}
