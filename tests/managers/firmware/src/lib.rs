//! A vendor firmware-update manager on contract 0.3.0, written with the
//! SDK's step table: what a vendor ships instead of a ramdisk.
//!
//! * support 3 (it claims every machine: a test manager);
//! * `get-system-vendor-info`: the next manager's answer (`fallback`) with
//!   `extra.firmware_channel` added;
//! * clean and service step `update_firmware(url*, sha256*, version*)`:
//!   fetches the image into the scratch space (pinned digest), runs
//!   `flash-tool --image <scratch file> --config <asset> --version V` in the
//!   scratch space with `FLASH_MODE=safe`, and reports progress;
//! * clean step `scratch_roundtrip(name*, text*)`: writes, lists, reads
//!   back and removes a scratch file; and `assets_listing`: the assets and
//!   the first line of `flash.conf`.

use ironic_hardware_guest::prelude::*;
use serde_json::{json, Value};

struct Firmware;

fn update_firmware(call: &StepCall) -> Result<Value, ManagerError> {
    let url: String = call.args.required("url")?;
    let sha256: String = call.args.required("sha256")?;
    let version: String = call.args.required("version")?;
    progress::report(Some(5), &format!("downloading {url}"));
    let got = fetch::get(&url, "firmware.bin", Some(&sha256), None)
        .map_err(|e| ManagerError::failed(format!("fetching {url}: {e:?}")))?;
    progress::report(Some(40), "flashing");
    let image = scratch::file_path(&got.name)
        .map_err(|e| ManagerError::failed(format!("scratch: {e:?}")))?;
    let config = assets::path("flash.conf")
        .map_err(|e| ManagerError::failed(format!("asset flash.conf: {e:?}")))?;
    let out = commands::Command::new("flash-tool")
        .args([
            "--image",
            &image,
            "--config",
            &config,
            "--version",
            &version,
        ])
        .env("FLASH_MODE", "safe")
        .in_scratch()
        .run()?;
    progress::report(Some(100), &format!("firmware {version} flashed"));
    Ok(json!({
        "flashed": version,
        "size": got.size,
        "sha256": got.sha256,
        "tool_output": String::from_utf8_lossy(&out.stdout).trim(),
    }))
}

fn scratch_roundtrip(call: &StepCall) -> Result<Value, ManagerError> {
    let name: String = call.args.required("name")?;
    let text: String = call.args.required("text")?;
    let err = |e: scratch::ScratchError| ManagerError::failed(format!("scratch: {e:?}"));
    scratch::write(&name, 0, text.as_bytes()).map_err(err)?;
    let files = scratch::list_files().map_err(err)?;
    let size = scratch::size(&name).map_err(err)?;
    let back = scratch::read(&name, 0, 1 << 20).map_err(err)?;
    scratch::remove(&name).map_err(err)?;
    let after = scratch::list_files().map_err(err)?;
    Ok(json!({
        "files": files,
        "size": size,
        "read": String::from_utf8_lossy(&back),
        "after_remove": after,
        "path": scratch::path().map_err(err)?,
    }))
}

fn assets_listing(_call: &StepCall) -> Result<Value, ManagerError> {
    let conf = assets::read("flash.conf", 0, 4096)
        .map_err(|e| ManagerError::failed(format!("asset: {e:?}")))?;
    Ok(json!({
        "names": assets::names(),
        "first_line": String::from_utf8_lossy(&conf).lines().next().unwrap_or(""),
    }))
}

impl HardwareManager for Firmware {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "FirmwareHardwareManager",
            "firmware_hardware_manager",
            "3.0",
        ))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_SERVICE_PROVIDER)
    }
    fn get_system_vendor_info() -> Result<SystemVendor, ManagerError> {
        let mut vendor = fallback::get_system_vendor_info()?;
        vendor.extra = extra(json!({"firmware_channel": "stable"}));
        Ok(vendor)
    }
    fn steps() -> Vec<StepDef> {
        let update = || {
            Step::new("update_firmware", 0, "deploy")
                .abortable(false)
                .arg("url", "URL of the firmware image", true)
                .arg("sha256", "SHA-256 of the image", true)
                .arg("version", "firmware version", true)
        };
        vec![
            StepDef::clean(update(), update_firmware),
            StepDef::service(update(), update_firmware),
            StepDef::clean(
                Step::new("scratch_roundtrip", 0, "deploy")
                    .arg("name", "scratch file name", true)
                    .arg("text", "content", true),
                scratch_roundtrip,
            ),
            StepDef::clean(Step::new("assets_listing", 0, "deploy"), assets_listing),
        ]
    }
}

export_manager!(Firmware, manifest = "../manifest.toml");
