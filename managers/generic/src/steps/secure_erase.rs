//! Firmware erase through the device's own command set: NVMe Format NVM
//! (`nvme`, IPA `GenericHardwareManager._nvme_erase`) and ATA Security Erase
//! (`hdparm`, `_ata_erase`).

use ironic_hardware_guest::commands::{self, CommandError, CommandOutput};
use ironic_hardware_guest::prelude::*;

/// A failed secure erase (IPA's `BlockDeviceEraseError`); whether the step
/// falls back to overwriting depends on the node's knobs.
#[derive(Debug)]
pub struct EraseError(pub String);

/// Long enough for a format or security erase of a large spinning disk; the
/// host caps it at the step's remaining time anyway.
const ERASE_TIMEOUT_MS: u32 = u32::MAX;
const QUERY_TIMEOUT_MS: u32 = 60_000;

fn run(program: &str, args: &[&str], timeout_ms: u32) -> Result<CommandOutput, CommandError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    log::log(
        log::Level::Info,
        &format!("running {program} {}", args.join(" ")),
    );
    commands::run(program, &args, None, Some(timeout_ms))
}

fn describe(program: &str, result: &Result<CommandOutput, CommandError>) -> String {
    match result {
        Ok(out) => format!(
            "{program} exited with {}: {}",
            out.exit_code
                .map_or("a signal".to_string(), |c| format!("code {c}")),
            String::from_utf8_lossy(if out.stderr.is_empty() {
                &out.stdout
            } else {
                &out.stderr
            })
            .trim()
        ),
        Err(CommandError::Denied(m)) => format!("{program} is not permitted: {m}"),
        Err(CommandError::NotFound(m)) => format!("{program} is not installed: {m}"),
        Err(CommandError::TimedOut(m)) => format!("{program} timed out: {m}"),
        Err(CommandError::OutputTooLarge(m)) => format!("{program} printed too much: {m}"),
        Err(CommandError::Failed(m)) => format!("{program} could not be started: {m}"),
    }
}

fn succeeded(result: &Result<CommandOutput, CommandError>) -> bool {
    matches!(result, Ok(out) if out.exit_code == Some(0))
}

// ------------------------------------------------------------------- NVMe

/// `nvme format` with crypto erase when the controller supports it, else
/// user-data erase.
pub fn nvme_erase(dev: &str) -> Result<(), EraseError> {
    let id = run("nvme", &["id-ctrl", dev, "-o", "json"], QUERY_TIMEOUT_MS);
    if !succeeded(&id) {
        return Err(EraseError(format!(
            "Error while reading NVMe controller details of {dev}: {}",
            describe("nvme", &id)
        )));
    }
    let stdout = id.map(|o| o.stdout).unwrap_or_default();
    let info: serde_json::Value = serde_json::from_slice(&stdout)
        .map_err(|e| EraseError(format!("nvme id-ctrl {dev} printed no usable JSON: {e}")))?;
    let field = |name: &str| info.get(name).and_then(serde_json::Value::as_u64);
    let (Some(oacs), fna) = (field("oacs"), field("fna").unwrap_or(0)) else {
        return Err(EraseError(format!(
            "nvme id-ctrl {dev}: no `oacs` field in the output"
        )));
    };
    // OACS bit 1: Format NVM supported.
    if oacs & 0b10 == 0 {
        return Err(EraseError(format!(
            "NVMe device {dev} does not support the Format NVM command; no secure erase mode available"
        )));
    }
    // FNA bit 2: cryptographic erase supported → -s 2; else user-data -s 1.
    let mode = if fna & 0b100 != 0 { "2" } else { "1" };
    progress::report(
        None,
        &format!("{dev}: NVMe format (secure erase setting {mode})"),
    );
    let format = run("nvme", &["format", dev, "-s", mode, "-f"], ERASE_TIMEOUT_MS);
    if !succeeded(&format) {
        return Err(EraseError(format!(
            "Failed to format NVMe device {dev} with secure erase setting {mode}: {}",
            describe("nvme", &format)
        )));
    }
    Ok(())
}

// -------------------------------------------------------------------- ATA

/// The lines of `hdparm -I` under `Security:`, stripped, inner tabs turned
/// into single spaces (`\tnot\tfrozen` → `not frozen`).
fn security_lines(dev: &str) -> Vec<String> {
    let out = run("hdparm", &["-I", dev], QUERY_TIMEOUT_MS);
    // IPA lets a failing `hdparm -I` escape as a command error; a device
    // hdparm cannot identify (virtio, NVMe-over-something, a missing hdparm)
    // simply has no ATA security, so treat it as "no lines" → unsupported.
    let Ok(out) = out
        .as_ref()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    else {
        return Vec::new();
    };
    parse_security_lines(&out)
}

pub fn parse_security_lines(output: &str) -> Vec<String> {
    let Some((_, after)) = output.split_once("\nSecurity: \n") else {
        return Vec::new();
    };
    after
        .split('\n')
        .take_while(|line| line.starts_with('\t'))
        .map(|line| {
            line.split('\t')
                .filter(|p| !p.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_string()
        })
        .collect()
}

fn has(lines: &[String], what: &str) -> bool {
    lines.iter().any(|l| l == what)
}

/// `smartctl -d ata <dev> -g security`: `Unavailable` or an unexpected exit
/// means the drive has no ATA security; smartctl missing (or not granted)
/// counts as supported, like IPA with smartctl not installed.
fn smartctl_says_supported(dev: &str) -> bool {
    match run(
        "smartctl",
        &["-d", "ata", dev, "-g", "security"],
        QUERY_TIMEOUT_MS,
    ) {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            matches!(out.exit_code, Some(0) | Some(127)) && !text.contains("Unavailable")
        }
        Err(CommandError::NotFound(_) | CommandError::Denied(_)) => true,
        Err(_) => false,
    }
}

fn unlock(dev: &str, mut lines: Vec<String>) -> Vec<String> {
    for password in ["NULL", ""] {
        if has(&lines, "not locked") {
            break;
        }
        let result = run(
            "hdparm",
            &["--user-master", "u", "--security-unlock", password, dev],
            QUERY_TIMEOUT_MS,
        );
        if !succeeded(&result) {
            log::log(
                log::Level::Warn,
                &format!(
                    "unlocking {dev} with password {password:?} failed: {}",
                    describe("hdparm", &result)
                ),
            );
        }
        lines = security_lines(dev);
    }
    lines
}

/// ATA security erase. `Ok(false)`: the drive does not support it (the caller
/// overwrites instead); `Err`: it does but the erase failed.
pub fn ata_erase(dev: &str) -> Result<bool, EraseError> {
    let lines = security_lines(dev);
    if !smartctl_says_supported(dev) || !has(&lines, "supported") {
        return Ok(false);
    }
    if !has(&lines, "not frozen") {
        return Err(EraseError(format!(
            "Block device {dev} is frozen and cannot be erased with ATA secure erase"
        )));
    }
    let lines = unlock(dev, lines);
    if !has(&lines, "not locked") {
        return Err(EraseError(format!(
            "Block device {dev} already has a security password set and could not be unlocked"
        )));
    }
    if has(&lines, "not enabled") {
        let set = run(
            "hdparm",
            &["--user-master", "u", "--security-set-pass", "NULL", dev],
            QUERY_TIMEOUT_MS,
        );
        if !succeeded(&set) {
            return Err(EraseError(format!(
                "Setting the ATA security password on {dev} failed: {}",
                describe("hdparm", &set)
            )));
        }
    }
    let option = if has(&lines, "not supported: enhanced erase") {
        "--security-erase"
    } else {
        "--security-erase-enhanced"
    };
    progress::report(None, &format!("{dev}: ATA security erase ({option})"));
    let erase = run(
        "hdparm",
        &["--user-master", "u", option, "NULL", dev],
        ERASE_TIMEOUT_MS,
    );
    if !succeeded(&erase) {
        // Leave the drive unlocked so that overwriting can still work.
        unlock(dev, security_lines(dev));
        return Err(EraseError(format!(
            "ATA security erase of {dev} failed: {}",
            describe("hdparm", &erase)
        )));
    }
    if !has(&security_lines(dev), "not enabled") {
        return Err(EraseError(format!(
            "ATA security erase of {dev} reported success but security is still enabled (unknown error)"
        )));
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_lines_are_parsed_like_ipa() {
        let out = "ATA device\n\nSecurity: \n\tMaster password revision code = 65534\n\t\tsupported\n\tnot\tenabled\n\tnot\tlocked\n\tnot\tfrozen\n\tnot\texpired: security count\n\t\tsupported: enhanced erase\nLogical Unit WWN Device Identifier\n";
        let lines = parse_security_lines(out);
        assert!(has(&lines, "supported"));
        assert!(has(&lines, "not enabled"));
        assert!(has(&lines, "not frozen"));
        assert!(has(&lines, "supported: enhanced erase"));
        assert!(!has(&lines, "Logical Unit WWN Device Identifier"));
    }
}
