//! The command extensions (commands.md §2), one module each.

pub mod clean;
pub mod deploy;
pub mod image;
pub mod log;
pub mod poll;
pub mod rescue;
pub mod service;
pub mod standby;
mod steps;
pub mod system;

use crate::engine::Extension;

/// Every built-in extension.
pub fn all() -> Vec<Extension> {
    vec![
        clean::extension(),
        deploy::extension(),
        service::extension(),
        poll::extension(),
        log::extension(),
        system::extension(),
        rescue::extension(),
        standby::extension(),
        image::extension(),
    ]
}
