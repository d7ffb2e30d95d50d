//! The command extensions, one module each (IPA
//! `ironic_python_agent/extensions/`), plus the native `load_manager` step.

pub mod image;
pub mod inject_files;
pub mod load_manager;
pub mod log;
pub mod poll;
pub mod rescue;
pub mod standby;
mod steps;
pub mod system;

use crate::engine::Extension;
use crate::managers::StepKind;

/// Every built-in extension, with the native steps each owns.
pub fn all() -> Vec<Extension> {
    let mut clean = steps::extension(StepKind::Clean);
    clean
        .native_steps
        .push(load_manager::native_step(StepKind::Clean));
    let mut service = steps::extension(StepKind::Service);
    service
        .native_steps
        .push(load_manager::native_step(StepKind::Service));
    vec![
        clean,
        steps::extension(StepKind::Deploy),
        service,
        poll::extension(),
        log::extension(),
        system::extension(),
        rescue::extension(),
        standby::extension(),
        image::extension(),
    ]
}
