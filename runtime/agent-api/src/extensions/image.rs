//! The `image` extension: `install_bootloader` (async), images.md §7:
//!
//! 1. Ramdisk booted UEFI (`<root>/sys/firmware/efi`) and `efibootmgr`
//!    available: `manage_uefi` (§7.1) — ESP found on the install disk, its
//!    loaders read in place, one boot entry each (same-labelled entries
//!    replaced) through the agent's program runner. On a simulated machine
//!    that is its stand-in `efibootmgr`, which records its arguments.
//!    No loader on the ESP → go on as IPA does.
//! 2. `root_uuid` null or `0x00000000` (whole-disk image) → done.
//! 3. Legacy GRUB: refused with `InvalidImage` unless
//!    `enable_bios_bootloader_install`; when enabled it fails as not
//!    implemented. Failures of 1 and 3 are swallowed when
//!    `ignore_bootloader_failure` (param, else config) is true.

use serde_json::{Map, Value};

use crate::device::device_in_root;
use crate::engine::{handler, opt, req, CommandDef, CommandFuture, Ctx, Extension, Mode, Param};
use crate::errors::{AgentError, ErrorClass};
use ironic_image::programs::ProgramRunner;

const PARAMS: &[Param] = &[
    req("root_uuid"),
    opt("efi_system_part_uuid"),
    opt("prep_boot_part_uuid"),
    opt("target_boot_mode"),
    opt("ignore_bootloader_failure"),
];

/// The extension's commands.
pub fn extension() -> Extension {
    Extension {
        name: "image",
        class: "ImageExtension",
        commands: vec![CommandDef {
            name: "install_bootloader",
            mode: Mode::Async,
            params: PARAMS,
            extra_kwargs: false,
            validator: None,
            handler: handler(install_bootloader),
        }],
        native_steps: Vec::new(),
    }
}

/// Python truthiness of an optional flag; `None` when null/absent.
fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(!s.is_empty()),
        Value::Number(n) => Some(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::Array(a) => Some(!a.is_empty()),
        Value::Object(o) => Some(!o.is_empty()),
    }
}

fn install_bootloader(ctx: Ctx, params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move {
        let settings = ctx.state.config().image.clone().unwrap_or_default();
        let ignore = flag(params.get("ignore_bootloader_failure"))
            .unwrap_or(settings.ignore_bootloader_failure);
        let root_uuid = params.get("root_uuid").cloned().unwrap_or(Value::Null);
        let target_mode = params
            .get("target_boot_mode")
            .and_then(Value::as_str)
            .unwrap_or("bios")
            .to_string();
        let root = ctx.state.config().hardware_root.clone();
        let uefi = root.join("sys/firmware/efi").is_dir();
        if uefi != (target_mode == "uefi") {
            tracing::warn!(ramdisk_uefi = uefi, target_boot_mode = %target_mode,
                "ramdisk boot mode differs from the target boot mode");
        }

        let runner = ctx.state.config().programs.clone();
        if uefi && runner.find("efibootmgr").is_none() {
            tracing::warn!("efibootmgr is not available; UEFI boot entries not managed");
        } else if uefi {
            let esp_uuid = params
                .get("efi_system_part_uuid")
                .and_then(Value::as_str)
                .map(String::from);
            match manage_uefi(&ctx, runner, esp_uuid).await {
                Ok(true) => {
                    tracing::info!(root_uuid = %root_uuid, "UEFI boot entry registered");
                    return Ok(Value::Null);
                }
                Ok(false) => {}
                Err(e) if ignore => {
                    tracing::warn!(error = %e.details, "UEFI boot entry failed; ignored (ignore_bootloader_failure)");
                }
                Err(e) => return Err(e.into()),
            }
        }

        if root_uuid.is_null() || root_uuid.as_str() == Some("0x00000000") {
            // Whole-disk image: it carries its own boot loader.
            return Ok(Value::Null);
        }
        let failure = if settings.enable_bios_bootloader_install {
            AgentError::command_execution(format!(
                "legacy GRUB installation (root uuid {root_uuid}) is not implemented by the native agent"
            ))
        } else {
            AgentError::new(
                ErrorClass::InvalidImage,
                format!(
                    "Legacy bootloader installation is disabled (CVE-2026-43003 mitigation); \
                     cannot install a boot loader for root uuid {root_uuid}. \
                     Set enable_bios_bootloader_install to allow it."
                ),
            )
        };
        if ignore {
            tracing::warn!(error = %failure, "boot loader installation failed; ignored");
            return Ok(Value::Null);
        }
        Err(failure.into())
    })
}

/// §7.1 on the install device (chosen with the cached node's hints, like
/// IPA's `get_os_install_device`).
async fn manage_uefi(
    ctx: &Ctx,
    runner: ProgramRunner,
    esp_uuid: Option<String>,
) -> Result<bool, AgentError> {
    let node = ctx.state.cached_node();
    let device = ctx
        .state
        .managers()
        .os_install_device(node.as_ref())
        .await?;
    let root = ctx.state.config().hardware_root.clone();
    let disk = device_in_root(&root, &device)?;
    tokio::task::spawn_blocking(move || {
        ironic_image::efi::manage_uefi(&runner, &device, &disk, esp_uuid.as_deref())
    })
    .await
    .map_err(|e| AgentError::command_execution(format!("UEFI boot entry task failed: {e}")))?
    .map_err(|e| {
        AgentError::new(
            ErrorClass::CommandExecutionError,
            format!("UEFI boot entry: {e}"),
        )
    })
}
