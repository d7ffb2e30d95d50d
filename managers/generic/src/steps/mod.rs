//! The generic clean, deploy and service steps of IPA's `GenericHardwareManager`.
//!
//! The erase family, `erase_pstore` and the software RAID steps
//! (`crate::raid`). Only implemented steps are advertised; names,
//! priorities, interfaces and `argsinfo` are IPA's
//! (hardware.py `GenericHardwareManager.get_clean_steps`,
//! `get_deploy_steps`, `get_service_steps`).

use ironic_hardware_guest::prelude::*;

mod burnin;
mod devices;
mod erase;
pub(crate) mod metadata;
mod node;
mod nvram;
mod pstore;
mod secure_erase;
mod skip;

/// `apply_configuration`'s `argsinfo` (IPA `RAID_APPLY_CONFIGURATION_ARGSINFO`).
fn apply_configuration() -> Step {
    Step::new("apply_configuration", 0, "raid")
        .arg("raid_config", "The RAID configuration to apply.", true)
        .arg(
            "delete_existing",
            "Setting this to 'True' indicates to delete existing RAID configuration prior to \
             creating the new configuration. Default value is 'True'.",
            false,
        )
}

/// `clean_uefi_nvram` with its `argsinfo`.
fn clean_uefi_nvram() -> Step {
    Step::new("clean_uefi_nvram", 0, "deploy").arg("match_patterns", nvram::description(), false)
}

/// Clean steps carry `abortable: true` (service steps too, where IPA sets
/// it), deploy steps no `abortable` key; none requests a reboot.
pub fn get_steps(kind: StepKind, _node: &str, _ports: &str) -> Result<Vec<Step>, ManagerError> {
    Ok(match kind {
        StepKind::Clean => vec![
            Step::new("erase_devices", 10, "deploy").abortable(true),
            Step::new("erase_devices_metadata", 99, "deploy").abortable(true),
            Step::new("erase_devices_express", 0, "deploy").abortable(true),
            Step::new("erase_pstore", 0, "deploy").abortable(true),
            clean_uefi_nvram().abortable(true),
            Step::new("delete_configuration", 0, "raid").abortable(true),
            Step::new("create_configuration", 0, "raid").abortable(true),
            Step::new("burnin_cpu", 0, "deploy").abortable(true),
            Step::new("burnin_gpu", 0, "deploy").abortable(true),
            Step::new("burnin_disk", 0, "deploy").abortable(true),
            Step::new("burnin_memory", 0, "deploy").abortable(true),
            Step::new("burnin_network", 0, "deploy").abortable(true),
        ],
        // write_image and inject_files are the agent's own (native) steps.
        StepKind::Deploy => vec![
            Step::new("erase_devices_metadata", 0, "deploy"),
            apply_configuration(),
            clean_uefi_nvram(),
            Step::new("execute_bootc_install", 0, "deploy"),
        ],
        // The erase steps are deliberately not service steps (IPA: they
        // would destroy the instance's data).
        // burnin_disk is not a service step: it would destroy the
        // instance's data (IPA's note in get_service_steps).
        StepKind::Service => vec![
            Step::new("delete_configuration", 0, "raid").abortable(true),
            apply_configuration(),
            Step::new("create_configuration", 0, "raid").abortable(true),
            Step::new("burnin_cpu", 0, "deploy").abortable(true),
            Step::new("burnin_gpu", 0, "deploy").abortable(true),
            Step::new("burnin_memory", 0, "deploy").abortable(true),
            Step::new("burnin_network", 0, "deploy").abortable(true),
            Step::new("execute_bootc_install", 0, "deploy"),
        ],
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
    // Only apply_configuration takes arguments; IPA would raise TypeError on
    // an unexpected one, but Ironic never sends any, so they are ignored.
    let parsed = StepArgs::parse(args)?;
    match name {
        "create_configuration" => crate::raid::create_configuration(node),
        "delete_configuration" => crate::raid::delete_configuration(node),
        "apply_configuration" => crate::raid::apply_configuration(node, &parsed),
        "clean_uefi_nvram" => nvram::clean_uefi_nvram(&parsed),
        "burnin_cpu" => burnin::burnin_cpu(node),
        "burnin_memory" => burnin::burnin_memory(node),
        "burnin_disk" => burnin::burnin_disk(node),
        "burnin_network" => burnin::burnin_network(node),
        "burnin_gpu" => burnin::burnin_gpu(node),
        "execute_bootc_install" => burnin::execute_bootc_install(),
        "erase_devices" => erase::erase_devices(node),
        "erase_devices_metadata" => erase::erase_devices_metadata(node),
        "erase_devices_express" => erase::erase_devices_express(node),
        "erase_pstore" => pstore::erase_pstore(),
        _ => Err(ManagerError::unsupported(name)),
    }
}
