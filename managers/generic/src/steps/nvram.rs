//! `clean_uefi_nvram(match_patterns=None)` (clean and deploy step, IPA
//! hardware.py `clean_uefi_nvram`, efi_utils.py `clean_boot_records`):
//! every UEFI boot entry whose device path matches one of the patterns
//! (case-insensitive regular expressions) is deleted with `efibootmgr`.

use generic_storage::efiboot;
use ironic_hardware_guest::prelude::*;
use serde_json::Value;

use crate::raid::md;

/// IPA's `DEFAULT_CLEAN_UEFI_NVRAM_MATCH_PATTERNS`.
pub const DEFAULT_PATTERNS: [&str; 3] = [r"^HD\(", r"shim.*\.efi", r"grub.*\.efi"];

/// The step's `argsinfo` description (IPA's wording).
pub fn description() -> String {
    format!(
        "Json blob contains a list of regex patterns where any UEFI NVRAM entry matching that \
         pattern will be deleted. Default value is '[\"{}\"]'",
        DEFAULT_PATTERNS.join("\", \"")
    )
}

fn invalid(given: &Value) -> ManagerError {
    ManagerError::invalid_argument(format!(
        "The match_patterns must be a list of strings: {given}"
    ))
}

/// Patterns from the step's arguments, validated as IPA does
/// (`InvalidCommandParamsError` unless a list of valid expressions).
pub fn patterns(args: &StepArgs) -> Result<Vec<regex_lite::Regex>, ManagerError> {
    let given = args.as_map().get("match_patterns");
    let texts: Vec<String> = match given {
        None | Some(Value::Null) => DEFAULT_PATTERNS.iter().map(|p| p.to_string()).collect(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(String::from)
                    .ok_or_else(|| invalid(given.unwrap_or(&Value::Null)))
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(invalid(other)),
    };
    texts
        .iter()
        .map(|t| {
            regex_lite::RegexBuilder::new(t)
                .case_insensitive(true)
                .build()
                .map_err(|_| invalid(given.unwrap_or(&Value::Null)))
        })
        .collect()
}

/// Deletes the matching entries; returns nothing (IPA returns None).
pub fn clean_uefi_nvram(args: &StepArgs) -> Result<Json, ManagerError> {
    let patterns = patterns(args)?;
    let listing = md::run("efibootmgr", &["-v"]).map_err(|e| {
        ManagerError::failed_as("CommandExecutionError", format!("efibootmgr -v: {e}"))
    })?;
    if !listing.ok() {
        return Err(ManagerError::failed_as(
            "CommandExecutionError",
            format!("efibootmgr -v failed: {}", listing.message()),
        ));
    }
    let text = efiboot::decode(listing.stdout.as_bytes());
    for record in efiboot::parse_boot_records(&text) {
        if let Some(p) = patterns.iter().find(|p| p.is_match(&record.device_path)) {
            log::log(
                log::Level::Info,
                &format!(
                    "Path {} matched pattern {}, entry will be deleted: {}",
                    record.device_path,
                    p.as_str(),
                    record.label
                ),
            );
            let removed = md::run("efibootmgr", &["-b", &record.number, "-B"])
                .map_err(|e| ManagerError::failed_as("CommandExecutionError", e))?;
            if !removed.ok() {
                return Err(ManagerError::failed_as(
                    "CommandExecutionError",
                    format!(
                        "efibootmgr -b {} -B failed: {}",
                        record.number,
                        removed.message()
                    ),
                ));
            }
        }
    }
    json_result(&Value::Null)
}
