//! Host implementations of the manager's imports, one module per
//! interface. Each checks the policy (declared ∩ granted) on every call and
//! returns denials as error values.
//!
//! Each interface is implemented on a *view* of the call's state that holds
//! only what it needs (the `WasiView` pattern): [`MachineView`] reads
//! files, [`DisksView`] owns the open disks, [`CommandsView`] runs
//! programs, [`LogView`] and [`ProgressView`] report. The store's data
//! ([`CallState`]) projects the views; bindings link each interface with
//! its own.

pub(crate) mod assets;
pub mod commands;
pub mod disks;
pub(crate) mod erase;
pub(crate) mod fallback;
pub(crate) mod faults;
pub(crate) mod fetch;
pub mod log;
pub mod machine;
pub(crate) mod process_tree;
pub(crate) mod progress;
pub(crate) mod scratch;

use std::path::{Path, PathBuf};
use std::time::Instant;

use wasmtime::component::{HasData, ResourceTable};

use crate::sandbox::{CallState, Environment, ManagerCtx};
use progress::ProgressSink;

/// A guest path checked, normalised, and made relative to the hardware root.
pub(crate) struct RootedPath {
    /// The normalised absolute path (what the policy matched).
    pub absolute: String,
    /// The same path relative to the hardware root (for cap-std).
    pub relative: PathBuf,
}

/// Normalise `path` and make it relative to the hardware root.
pub(crate) fn rooted(path: &str) -> Result<RootedPath, String> {
    let normal = crate::policy::normalise_path(path)?;
    let relative = normal
        .strip_prefix("/")
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| normal.clone());
    let relative = if relative.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        relative
    };
    Ok(RootedPath {
        absolute: normal.to_string_lossy().into_owned(),
        relative,
    })
}

/// True when cap-std refused a path because it leads outside the root
/// (through `..` or a symbolic link).
pub(crate) fn is_escape(e: &std::io::Error) -> bool {
    e.to_string().contains("outside of the filesystem")
}

/// The error a host call returns when the call's deadline passed while it
/// waited: it traps the guest, and the sandbox reports a timeout.
#[derive(Debug, thiserror::Error)]
#[error("the call's deadline passed during {0}")]
pub(crate) struct DeadlinePassed(pub String);

/// `machine`: files under the hardware root.
pub(crate) struct MachineView<'a> {
    pub manager: &'a ManagerCtx,
    pub env: &'a Environment,
}

/// `disks`: the call's open disks.
pub(crate) struct DisksView<'a> {
    pub manager: &'a ManagerCtx,
    pub env: &'a Environment,
    pub table: &'a mut ResourceTable,
    /// Disks open now in this call (capped by `Limits::max_open_disks`).
    pub open: &'a mut usize,
    pub progress: &'a std::sync::Arc<ProgressSink>,
    pub deadline: Instant,
}

/// `commands`: programs (which may run in the scratch space).
pub(crate) struct CommandsView<'a> {
    pub manager: &'a ManagerCtx,
    pub env: &'a Environment,
    pub deadline: Instant,
    pub space: &'a mut Option<scratch::ScratchSpace>,
}

/// `log`.
pub(crate) struct LogView<'a> {
    pub manager: &'a ManagerCtx,
}

/// `progress`.
pub(crate) struct ProgressView<'a> {
    pub manager: &'a ManagerCtx,
    pub sink: &'a ProgressSink,
}

/// `scratch`: the call's private directory (made on first use).
pub(crate) struct ScratchView<'a> {
    pub manager: &'a ManagerCtx,
    pub env: &'a Environment,
    pub space: &'a mut Option<scratch::ScratchSpace>,
}

/// `fetch`: downloads into the scratch space.
pub(crate) struct FetchView<'a> {
    pub scratch: ScratchView<'a>,
    pub progress: &'a ProgressSink,
}

/// `assets`: the manager's verified files.
pub(crate) struct AssetsView<'a> {
    pub manager: &'a ManagerCtx,
}

/// `fallback`: the managers after this one.
pub(crate) struct FallbackView<'a> {
    pub manager: &'a ManagerCtx,
    pub fallback: &'a Option<fallback::FallbackCtx>,
    pub deadline: Instant,
}

/// `types`: no functions, but the bindings want a host for it.
pub(crate) struct TypesView;

/// A name that is one plain path component: letters, digits, `.`, `_`,
/// `-`, at most 128 characters, not `.` or `..`.
pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The [`HasData`] of each view.
pub(crate) struct Machine;
pub(crate) struct Disks;
pub(crate) struct Commands;
pub(crate) struct Log;
pub(crate) struct Progress;
pub(crate) struct Types;
pub(crate) struct Scratch;
pub(crate) struct Fetch;
pub(crate) struct Assets;
pub(crate) struct Fallback;

impl HasData for Scratch {
    type Data<'a> = ScratchView<'a>;
}
impl HasData for Fetch {
    type Data<'a> = FetchView<'a>;
}
impl HasData for Assets {
    type Data<'a> = AssetsView<'a>;
}
impl HasData for Fallback {
    type Data<'a> = FallbackView<'a>;
}
impl HasData for Machine {
    type Data<'a> = MachineView<'a>;
}
impl HasData for Disks {
    type Data<'a> = DisksView<'a>;
}
impl HasData for Commands {
    type Data<'a> = CommandsView<'a>;
}
impl HasData for Log {
    type Data<'a> = LogView<'a>;
}
impl HasData for Progress {
    type Data<'a> = ProgressView<'a>;
}
impl HasData for Types {
    type Data<'a> = TypesView;
}

impl CallState {
    pub(crate) fn machine_view(&mut self) -> MachineView<'_> {
        MachineView {
            manager: &self.manager,
            env: &self.env,
        }
    }

    pub(crate) fn disks_view(&mut self) -> DisksView<'_> {
        DisksView {
            manager: &self.manager,
            env: &self.env,
            table: &mut self.table,
            open: &mut self.open_disks,
            progress: &self.progress,
            deadline: self.deadline,
        }
    }

    pub(crate) fn commands_view(&mut self) -> CommandsView<'_> {
        CommandsView {
            manager: &self.manager,
            env: &self.env,
            deadline: self.deadline,
            space: &mut self.scratch,
        }
    }

    pub(crate) fn log_view(&mut self) -> LogView<'_> {
        LogView {
            manager: &self.manager,
        }
    }

    pub(crate) fn progress_view(&mut self) -> ProgressView<'_> {
        ProgressView {
            manager: &self.manager,
            sink: &self.progress,
        }
    }

    pub(crate) fn types_view(&mut self) -> TypesView {
        TypesView
    }

    pub(crate) fn scratch_view(&mut self) -> ScratchView<'_> {
        ScratchView {
            manager: &self.manager,
            env: &self.env,
            space: &mut self.scratch,
        }
    }

    pub(crate) fn fetch_view(&mut self) -> FetchView<'_> {
        FetchView {
            scratch: ScratchView {
                manager: &self.manager,
                env: &self.env,
                space: &mut self.scratch,
            },
            progress: &self.progress,
        }
    }

    pub(crate) fn assets_view(&mut self) -> AssetsView<'_> {
        AssetsView {
            manager: &self.manager,
        }
    }

    pub(crate) fn fallback_view(&mut self) -> FallbackView<'_> {
        FallbackView {
            manager: &self.manager,
            fallback: &self.fallback,
            deadline: self.deadline,
        }
    }
}
