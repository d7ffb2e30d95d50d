//! The `standby` extension: `prepare_image` (async, with IPA's synchronous
//! validator), `get_partition_uuids` (sync), `sync`, `power_off`,
//! `run_image` (async, through the system backend); and the native
//! `write_image` deploy step, which runs `prepare_image` as IPA's generic
//! manager does.
//!
//! `prepare_image` drives the native pipeline (`ironic_image`): install
//! device from the managers (root-device hints), mapped into the hardware
//! root; whole-disk images: stream/download + verify + write, GPT fix-up,
//! table re-read, config-drive partition, MBR disk identifier as `root
//! uuid`; partition images: IPA's layout, ESP/swap/ephemeral formatting,
//! config drive and the image in the root partition, with the UUIDs
//! `get_partition_uuids` returns. Both get the partition-table check.
//! `execute_bootc_install` is not registered ("Unknown command").

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ironic_image::{ImageError, ImageInfo};
use serde_json::{json, Map, Value};

use crate::device::device_in_root;
use crate::engine::{
    handler, opt, req, CommandDef, CommandError, CommandFuture, Ctx, Extension, Mode, Param,
};
use crate::errors::AgentError;
use crate::managers::StepKind;
use crate::native_steps::{NativeStep, StepCall};
use crate::system_actions::SystemAction;
use crate::{AgentState, ImageSettings};

const NO_PARAMS: &[Param] = &[];
const PREPARE_PARAMS: &[Param] = &[req("image_info"), opt("configdrive")];

/// The extension's commands.
pub fn extension() -> Extension {
    let cmd = |name, mode, handler_fn: fn(Ctx, Map<String, Value>) -> CommandFuture| CommandDef {
        name,
        mode,
        params: NO_PARAMS,
        extra_kwargs: false,
        validator: None,
        handler: handler(handler_fn),
    };
    Extension {
        name: "standby",
        class: "StandbyExtension",
        // IPA lists write_image as a deploy and a service step.
        native_steps: [StepKind::Deploy, StepKind::Service]
            .into_iter()
            .map(|kind| NativeStep {
                kind,
                name: "write_image",
                priority: 0,
                interface: "deploy",
                handler: write_image_step,
                abortable: false,
                argsinfo: &[],
            })
            .collect(),
        commands: vec![
            CommandDef {
                name: "prepare_image",
                mode: Mode::Async,
                params: PREPARE_PARAMS,
                extra_kwargs: false,
                validator: Some(validate_prepare_image),
                handler: handler(prepare_image),
            },
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

/// `md5_enabled` as the pipeline is configured (IPA's default: allowed).
fn md5_allowed(state: &AgentState) -> bool {
    state
        .config()
        .image
        .as_ref()
        .is_none_or(|s| s.write.md5_allowed)
}

/// `ImageError` → IPA error object, keeping the pipeline's own wording.
pub(crate) fn image_error(e: ImageError) -> AgentError {
    match e {
        // The Display form already starts with the class message; the
        // details are the message alone, as IPA's validator words them.
        ImageError::InvalidParams { message } => AgentError::invalid_params(message),
        e => AgentError::new(e.ipa_type(), e.to_string()),
    }
}

/// IPA's `_validate_image_info` (runs before the command is recorded:
/// failures answer HTTP 400 `InvalidCommandParamsError`).
fn validate_prepare_image(
    state: &AgentState,
    params: &Map<String, Value>,
) -> Result<(), AgentError> {
    // IPA: `image_info = image_info or {}`.
    let empty = Value::Object(Map::new());
    let info = params
        .get("image_info")
        .filter(|v| !v.is_null())
        .unwrap_or(&empty);
    ironic_image::validate(info, md5_allowed(state)).map_err(image_error)
}

fn prepare_image(ctx: Ctx, mut params: Map<String, Value>) -> CommandFuture {
    Box::pin(async move {
        let info = params.remove("image_info").unwrap_or(Value::Null);
        let configdrive = params.remove("configdrive").unwrap_or(Value::Null);
        // IPA selects the install device with the cached node's hints.
        let node = ctx.state.cached_node();
        let message = run_prepare_image(&ctx, node, info, configdrive).await?;
        // A string result becomes {"result": "prepare_image: <message>"}.
        Ok(Value::String(message))
    })
}

/// The native `write_image` deploy step: `write_image(node, ports,
/// image_info, configdrive=None)` runs `prepare_image` and returns its
/// command result, `{"result": "prepare_image: <message>"}`.
fn write_image_step(ctx: Ctx, mut call: StepCall) -> CommandFuture {
    Box::pin(async move {
        let Some(info) = call.kwargs.remove("image_info") else {
            return Err(CommandError::Exception {
                class: "TypeError",
                text: "GenericHardwareManager.write_image() missing 1 required positional argument: 'image_info'".into(),
            });
        };
        let configdrive = call.kwargs.remove("configdrive").unwrap_or(Value::Null);
        // The validator runs as it does when IPA's write_image calls the
        // standby extension; its error propagates unchanged.
        let empty = Value::Object(Map::new());
        ironic_image::validate(
            if info.is_null() { &empty } else { &info },
            md5_allowed(&ctx.state),
        )
        .map_err(image_error)?;
        let message = run_prepare_image(&ctx, Some(call.node), info, configdrive).await?;
        Ok(json!({"result": format!("prepare_image: {message}")}))
    })
}

/// `prepare_image`'s body (IPA `StandbyExtension.prepare_image`): returns the
/// result message `image (<id>) written to device <dev> root_uuid=<u>`.
async fn run_prepare_image(
    ctx: &Ctx,
    node: Option<Value>,
    mut image_info: Value,
    configdrive: Value,
) -> Result<String, CommandError> {
    let settings: ImageSettings = ctx.state.config().image.clone().ok_or_else(|| {
        AgentError::command_execution("the native image pipeline is not enabled in this agent")
    })?;
    // configdrive=None → image_info's own (removed from image_info).
    let from_info = image_info
        .as_object_mut()
        .and_then(|o| o.remove("configdrive"))
        .unwrap_or(Value::Null);
    let configdrive = if configdrive.is_null() {
        from_info
    } else {
        configdrive
    };
    let info =
        ImageInfo::from_value(&image_info, settings.write.md5_allowed).map_err(image_error)?;
    let configdrive = configdrive
        .as_str()
        .filter(|s| !s.is_empty())
        .map(String::from);

    let device = ctx
        .state
        .managers()
        .os_install_device(node.as_ref())
        .await?;
    let root = ctx.state.config().hardware_root.clone();
    let target = device_in_root(&root, &device)?;

    let already = ctx
        .state
        .written_image()
        .is_some_and(|(id, dev)| id == info.id && dev == target);
    if already {
        // The image and its config drive are on the disk: writing again
        // would only add a second config drive partition. Still checked.
        tracing::info!(image = %info.id, %device, "image already written by this agent; not writing it again");
        let (id, dev_name, path) = (info.id.clone(), device.clone(), target.clone());
        ctx.blocking(move || {
            ironic_image::check_partition_table(&id, &dev_name, &path).map_err(image_error)
        })
        .await?;
    } else {
        // A failed or partial write must not be mistaken for this image later.
        ctx.state.set_written_image(None);
        let req = deploy_request(ctx, node.as_ref(), &info, &device, &target, configdrive).await;
        let mut opts = settings.write.clone();
        opts.progress = Some(progress_reporter(ctx, &info.id, &device));
        let runner = ctx.state.config().programs.clone();
        let report = ironic_image::deploy_image(&info, &req, &opts, &runner)
            .await
            .map_err(image_error)?;
        tracing::info!(image = %info.id, %device, bytes = report.write.bytes, root_uuid = %report.root_uuid,
            partition = info.is_partition_image(), "image deployed");
        ctx.state.set_partition_uuids(report.partition_uuids);
    }
    ctx.state.set_written_image(Some((info.id.clone(), target)));
    let uuids = ctx.state.partition_uuids();
    let root_uuid = uuids
        .get("root uuid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut message = format!(
        "image ({}) written to device {device} root_uuid={root_uuid}",
        info.id
    );
    if info.deploy_boot_mode.as_deref() == Some("uefi") {
        if let Some(esp) = uuids
            .get("efi system partition uuid")
            .and_then(Value::as_str)
        {
            message.push_str(&format!(" efi_system_partition_uuid={esp}"));
        }
    }
    Ok(message)
}

/// The deploy request for `info` (IPA `_write_image` inputs): the install
/// device, the config drive, and what a partition layout depends on: boot
/// mode and table type from the node (IPA `get_node_boot_mode`,
/// `get_disk_label`), the CPU architecture from the inventory (asked only
/// for partition images).
async fn deploy_request(
    ctx: &Ctx,
    node: Option<&Value>,
    info: &ImageInfo,
    device: &str,
    target: &Path,
    configdrive: Option<String>,
) -> ironic_image::DeployRequest {
    let root = ctx.state.config().hardware_root.clone();
    let boot_mode = node_boot_mode(node, &root);
    let disk_label = capability(node, "disk_label");
    let inventory_arch = if info.is_partition_image() {
        ctx.state.managers().inventory().await.ok().and_then(|inv| {
            inv.pointer("/cpu/architecture")
                .and_then(Value::as_str)
                .map(String::from)
        })
    } else {
        None
    };
    let cpu_arch = inventory_arch
        .or_else(|| {
            node.and_then(|n| n.pointer("/properties/cpu_arch"))
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    tracing::info!(image = %info.id, %device, %boot_mode, ?disk_label, %cpu_arch, "deploy inputs");
    let settings = ctx.state.config().image.as_ref();
    ironic_image::DeployRequest {
        disk: target.to_path_buf(),
        device: device.to_string(),
        configdrive,
        boot_mode,
        disk_label,
        cpu_arch,
        // [disk_utils]efi_system_partition_size / bios_boot_partition_size.
        esp_mb: settings.map_or(550, |s| if s.esp_mb == 0 { 550 } else { s.esp_mb }),
        bios_boot_mb: settings.map_or(1, |s| {
            if s.bios_boot_mb == 0 {
                1
            } else {
                s.bios_boot_mb
            }
        }),
    }
}

/// A node capability: `instance_info.capabilities` first, then
/// `properties.capabilities`; each a dict, a JSON string or `k:v,k:v`.
fn capability(node: Option<&Value>, key: &str) -> Option<String> {
    let node = node?;
    ["/instance_info/capabilities", "/properties/capabilities"]
        .iter()
        .find_map(|p| node.pointer(p).and_then(|caps| capability_in(caps, key)))
}

fn capability_in(caps: &Value, key: &str) -> Option<String> {
    let as_text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    match caps {
        Value::Object(m) => m.get(key).and_then(as_text),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => capability_in(&v, key),
            _ => s.split(',').find_map(|kv| {
                let (k, v) = kv.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            }),
        },
        _ => None,
    }
}

/// IPA `get_node_boot_mode`: secure boot → uefi; else
/// `instance_info.deploy_boot_mode`, `capabilities.boot_mode`,
/// `driver_internal_info.deploy_boot_mode`; else (or when not uefi/bios)
/// the ramdisk's own mode.
fn node_boot_mode(node: Option<&Value>, root: &Path) -> String {
    let ramdisk = if root.join("sys/firmware/efi").is_dir() {
        "uefi"
    } else {
        "bios"
    };
    if capability(node, "secure_boot").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return "uefi".into();
    }
    let from_node = node.and_then(|n| {
        n.pointer("/instance_info/deploy_boot_mode")
            .and_then(Value::as_str)
            .map(String::from)
            .or_else(|| {
                n.pointer("/properties/capabilities")
                    .and_then(|c| capability_in(c, "boot_mode"))
            })
            .or_else(|| {
                n.pointer("/driver_internal_info/deploy_boot_mode")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
    });
    match from_node.map(|m| m.to_ascii_lowercase()) {
        Some(m) if m == "uefi" || m == "bios" => m,
        _ => ramdisk.into(),
    }
}

/// Command progress from the pipeline's byte counts, reported when the
/// percentage changes (or every 64 MiB when the size is unknown).
fn progress_reporter(ctx: &Ctx, id: &str, device: &str) -> ironic_image::ByteProgressFn {
    let sink = ctx.progress_sink();
    let last = AtomicU64::new(u64::MAX);
    let (id, device) = (id.to_string(), device.to_string());
    Arc::new(move |bytes: u64, total: Option<u64>| {
        let percent = total
            .filter(|t| *t > 0)
            .map(|t| u8::try_from((bytes.saturating_mul(100) / t).min(100)).unwrap_or(100));
        let key = percent.map_or(bytes >> 26, u64::from);
        if last.swap(key, Ordering::Relaxed) != key {
            sink(
                percent,
                &format!("image {id}: {} MiB received for {device}", bytes >> 20),
            );
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_boot_mode_and_disk_label_follow_ipa() {
        let dir = tempfile::tempdir().expect("tmp");
        let bios_root = dir.path();
        // Nothing on the node: the ramdisk's own mode.
        assert_eq!(node_boot_mode(None, bios_root), "bios");
        std::fs::create_dir_all(bios_root.join("sys/firmware/efi")).expect("efi");
        assert_eq!(node_boot_mode(None, bios_root), "uefi");
        let node = json!({
            "instance_info": {"capabilities": "{\"disk_label\": \"gpt\"}"},
            "properties": {"capabilities": "boot_mode:bios,disk_label:msdos"},
        });
        assert_eq!(node_boot_mode(Some(&node), bios_root), "bios");
        assert_eq!(
            capability(Some(&node), "disk_label").as_deref(),
            Some("gpt")
        );
        let node = json!({
            "instance_info": {"deploy_boot_mode": "UEFI"},
            "properties": {"capabilities": {"boot_mode": "bios"}},
        });
        assert_eq!(node_boot_mode(Some(&node), bios_root), "uefi");
        let secure = json!({"properties": {"capabilities": "secure_boot:True,boot_mode:bios"}});
        assert_eq!(node_boot_mode(Some(&secure), bios_root), "uefi");
        // An unknown value falls back to the ramdisk's mode.
        let odd = json!({"instance_info": {"deploy_boot_mode": "legacy"}});
        assert_eq!(node_boot_mode(Some(&odd), bios_root), "uefi");
    }

    #[test]
    fn validator_errors_are_http_400_params_errors() {
        let e = image_error(ImageError::InvalidParams {
            message: "Image is missing 'id' field.".into(),
        });
        assert_eq!(e.error_type, "InvalidCommandParamsError");
        assert!(e.is_invalid_content());
        assert_eq!(e.details, "Image is missing 'id' field.");
        let e = image_error(ImageError::DownloadFatal {
            url: "http://127.0.0.1:1/x".into(),
            status: 404,
        });
        assert_eq!(e.error_type, "ImageDownloadFatalError");
        assert!(e.details.contains("http://127.0.0.1:1/x"), "{}", e.details);
    }
}
