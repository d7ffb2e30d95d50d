//! The `image` extension: `install_bootloader` (async), IPA's
//! `extensions/image.py`: the install device chosen by the managers, then
//! the native boot loader work (`ironic_image::bootloader`): UEFI entries
//! (the image's EFI tree copied onto an empty ESP; a mirrored ESP and
//! entries on every holder for a software RAID root), nothing for a
//! whole-disk image, else the image's GRUB when
//! `enable_bios_bootloader_install` allows it (`InvalidImage` otherwise).
//! Failures are swallowed when `ignore_bootloader_failure` (param, else
//! config) is true. Programs run through the machine's runner: on a
//! simulated machine, its stand-ins.

use serde_json::{Map, Value};

use crate::device::device_in_root;
use crate::engine::{handler, opt, req, CommandDef, CommandFuture, Ctx, Extension, Mode, Param};
use crate::errors::AgentError;
use crate::extensions::standby::image_error;
use ironic_image::bootloader::BootloaderRequest;

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
        native_steps: crate::extensions::inject_files::native_steps(),
    }
}

/// Python truthiness of an optional flag; `None` when null/absent.
pub(crate) fn flag(v: Option<&Value>) -> Option<bool> {
    match v? {
        Value::Null => None,
        Value::Bool(b) => Some(*b),
        Value::String(s) => Some(!s.is_empty()),
        Value::Number(n) => Some(n.as_f64().is_some_and(|f| f != 0.0)),
        Value::Array(a) => Some(!a.is_empty()),
        Value::Object(o) => Some(!o.is_empty()),
    }
}

fn text_param(params: &Map<String, Value>, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn install_bootloader(ctx: Ctx, params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move {
        let settings = ctx.state.config().image.clone().unwrap_or_default();
        let ignore = flag(params.get("ignore_bootloader_failure"))
            .unwrap_or(settings.ignore_bootloader_failure);
        let target_boot_mode = params
            .get("target_boot_mode")
            .and_then(Value::as_str)
            .unwrap_or("bios")
            .to_string();
        let root = ctx.state.config().hardware_root.clone();
        // IPA selects the device with the cached node's hints; a failure
        // here is not a boot loader failure and is never ignored.
        let node = ctx.state.cached_node();
        let device = ctx
            .state
            .managers()
            .os_install_device(node.as_ref())
            .await?;
        let disk = device_in_root(&root, &device)?;
        let request = BootloaderRequest {
            device: device.clone(),
            disk,
            root: root.clone(),
            root_uuid: text_param(&params, "root_uuid"),
            efi_system_part_uuid: text_param(&params, "efi_system_part_uuid"),
            prep_boot_part_uuid: text_param(&params, "prep_boot_part_uuid"),
            target_boot_mode,
            ramdisk_uefi: root.join("sys/firmware/efi").is_dir(),
            legacy_allowed: settings.enable_bios_bootloader_install,
        };
        let runner = ctx.state.config().programs.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            ironic_image::bootloader::install_bootloader(&request, &runner)
        })
        .await
        .map_err(|e| AgentError::command_execution(format!("boot loader task failed: {e}")))?;
        match outcome {
            Ok(done) => {
                tracing::info!(%device, outcome = ?done, "boot loader step done");
                Ok(Value::Null)
            }
            Err(e) if ignore => {
                tracing::warn!(%device, error = %e, "boot loader installation failed; ignored (ignore_bootloader_failure)");
                Ok(Value::Null)
            }
            Err(e) => Err(image_error(e).into()),
        }
    })
}
