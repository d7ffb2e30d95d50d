//! `get_os_install_device` (IPA `hardware.py` `GenericHardwareManager`): with a
//! node, the candidates are the whole disks minus the skip list;
//! `instance_info.root_device` (else `properties.root_device`) picks the first
//! candidate, in lsblk order, matching every hint; without hints the smallest
//! disk of at least 4 GiB wins, ties broken by name.

use std::collections::BTreeSet;

use ironic_hardware_guest::prelude::*;
use serde_json::Value;

use super::disks;
use crate::hints::{self, DeviceHints, HintDevice, SkipList};

/// 4 GiB: smaller disks cannot hold an image.
const MIN_ROOT_SIZE: u64 = 4 * 1024 * 1024 * 1024;

pub(crate) fn get_os_install_device(node: Option<&str>) -> Result<String, ManagerError> {
    let node = parse_node(node)?;
    let mut devices = hints::disk_devices(&disks::list_disks()?);
    // Software RAID: the root volume of the node's configuration wins over
    // hints; volumes marked not-root take their disks out of the running.
    if let Some(node) = &node {
        let (root, excluded) = crate::raid::root_volume(node)?;
        if let Some(md) = root {
            if hints::root_device_hints(node).ok().flatten().is_some() {
                log::log(
                    log::Level::Warn,
                    &format!(
                        "Both root device hints and a root volume from the target RAID \
                         configuration are defined. The RAID root volume {md} will be used."
                    ),
                );
            }
            log::log(
                log::Level::Info,
                &format!("Root device: {md} (the root volume of the target RAID configuration)"),
            );
            return Ok(md);
        }
        if !excluded.is_empty() {
            log::log(
                log::Level::Info,
                &format!(
                    "excluding RAID volumes that are not root and their devices: {}",
                    excluded.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            );
            devices.retain(|d| !excluded.contains(&d.name));
        }
    }
    let selection = select(node.as_ref(), devices)?;
    hints::log_skipped(&selection.skipped);
    log::log(
        log::Level::Info,
        &format!("Root device: {} ({})", selection.device, selection.reason),
    );
    Ok(selection.device)
}

/// The chosen device and why; kept free of host calls so it is unit-tested
/// natively.
#[derive(Debug)]
struct Selection {
    device: String,
    reason: String,
    /// Disks the skip list removed.
    skipped: BTreeSet<String>,
}

/// The node JSON; `null` is no node.
fn parse_node(node: Option<&str>) -> Result<Option<Value>, ManagerError> {
    let Some(text) = node else {
        return Ok(None);
    };
    match serde_json::from_str(text) {
        Ok(Value::Null) => Ok(None),
        Ok(value @ Value::Object(_)) => Ok(Some(value)),
        Ok(other) => Err(ManagerError::invalid_argument(format!(
            "node must be a JSON object, got {other}"
        ))),
        Err(e) => Err(ManagerError::invalid_argument(format!(
            "node is not JSON: {e}"
        ))),
    }
}

/// The selection proper, on already listed devices (lsblk order).
fn select(node: Option<&Value>, devices: Vec<HintDevice>) -> Result<Selection, ManagerError> {
    let default_rule = |device: String, skipped: BTreeSet<String>| Selection {
        device,
        reason: "smallest disk of at least 4 GiB, no root device hints".to_string(),
        skipped,
    };
    let Some(node) = node else {
        return pick_default(&devices)
            .map(|d| default_rule(d, BTreeSet::new()))
            .ok_or_else(|| no_default_device(&[]));
    };
    // IPA reports hints that fail validation as DeviceNotFound.
    let root_hints = hints::root_device_hints(node).map_err(|e| {
        let hints = node_hints_text(node);
        ManagerError::failed_as(
            "DeviceNotFound",
            format!(
                "No devices could be found using the root device hints {hints} because \
                 they failed to validate. Error: {}",
                error_text(&e)
            ),
        )
    })?;
    let skip = SkipList::from_node(node)?;
    let skipped = skip.skipped_names(&devices);
    let (candidates, excluded): (Vec<HintDevice>, Vec<HintDevice>) = devices
        .into_iter()
        .partition(|d| !skipped.contains(&d.name));
    let excluded: Vec<&str> = excluded.iter().map(|d| d.name.as_str()).collect();
    match root_hints {
        None => match pick_default(&candidates) {
            Some(device) => Ok(default_rule(device, skipped)),
            None => Err(no_default_device(&excluded)),
        },
        Some(root_hints) => {
            let device = match_hints(&root_hints, &candidates, &excluded)?;
            Ok(Selection {
                device,
                reason: format!("matches the root device hints {}", root_hints.describe()),
                skipped,
            })
        }
    }
}

/// The first candidate satisfying every hint, or `DeviceNotFound` listing
/// the candidates so the operator can correct the hints.
fn match_hints(
    root_hints: &DeviceHints,
    candidates: &[HintDevice],
    excluded: &[&str],
) -> Result<String, ManagerError> {
    if let Some(found) = candidates.iter().find(|d| root_hints.matches(d)) {
        return Ok(found.name.clone());
    }
    let listed: Vec<String> = candidates.iter().map(describe_candidate).collect();
    let mut details = format!(
        "No suitable device was found for deployment using these hints {}. Candidates: {}",
        root_hints.describe(),
        if listed.is_empty() {
            "none".to_string()
        } else {
            listed.join("; ")
        }
    );
    if !excluded.is_empty() {
        details.push_str(&format!(
            ". Excluded by properties.skip_block_devices: {}",
            excluded.join(", ")
        ));
    }
    let bare_name = root_hints
        .source
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.trim_start().starts_with('/') && !n.contains("/dev/"));
    if bare_name {
        // IPA compares names verbatim: `sda` never matches `/dev/sda`.
        details.push_str(". Note: the name hint is compared with the full path, e.g. /dev/sda");
    }
    Err(ManagerError::failed_as("DeviceNotFound", details))
}

/// `/dev/sda (size 8.00 GiB, model "X", serial "Y")`.
fn describe_candidate(device: &HintDevice) -> String {
    let quoted = |v: Option<&String>| v.map_or("null".to_string(), |s| format!("{s:?}"));
    format!(
        "{} (size {:.2} GiB, model {}, serial {})",
        device.name,
        device.size as f64 / (1u64 << 30) as f64,
        quoted(device.model.as_ref()),
        quoted(device.serial.first()),
    )
}

fn no_default_device(excluded: &[&str]) -> ManagerError {
    let mut details = format!(
        "No suitable device was found for deployment - root device hints were not \
         provided and all found block devices are smaller than {MIN_ROOT_SIZE}B."
    );
    if !excluded.is_empty() {
        details.push_str(&format!(
            " Excluded by properties.skip_block_devices: {}",
            excluded.join(", ")
        ));
    }
    ManagerError::failed_as("DeviceNotFound", details)
}

/// The hints the node carries, as given, for the validation message.
fn node_hints_text(node: &Value) -> String {
    let instance = node.get("instance_info").and_then(|i| i.get("root_device"));
    let chosen = if hints::truthy(instance) {
        instance
    } else {
        node.get("properties").and_then(|p| p.get("root_device"))
    };
    chosen.map_or_else(|| "null".to_string(), Value::to_string)
}

fn error_text(err: &ManagerError) -> String {
    match err {
        ManagerError::InvalidArgument(why)
        | ManagerError::Unsupported(why)
        | ManagerError::Incompatible(why) => why.clone(),
        ManagerError::Failed(f) => f.details.clone(),
    }
}

/// The smallest `(size, name)` with size ≥ 4 GiB.
fn pick_default(devices: &[HintDevice]) -> Option<String> {
    let mut candidates: Vec<(u64, &str)> =
        devices.iter().map(|d| (d.size, d.name.as_str())).collect();
    candidates.sort();
    candidates
        .into_iter()
        .find(|(size, _)| *size >= MIN_ROOT_SIZE)
        .map(|(_, name)| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GIB: u64 = 1 << 30;

    fn disk(name: &str, size_gib: u64) -> HintDevice {
        HintDevice {
            name: name.to_string(),
            size: size_gib * GIB,
            ..HintDevice::default()
        }
    }

    fn chosen(node: Option<&Value>, disks: Vec<HintDevice>) -> Result<String, String> {
        select(node, disks)
            .map(|s| s.device)
            .map_err(|e| format!("{e:?}"))
    }

    fn details(err: ManagerError) -> (Option<String>, String) {
        match err {
            ManagerError::Failed(f) => (f.error_type, f.details),
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn smallest_disk_of_at_least_4_gib() {
        let disks = vec![
            disk("/dev/sdb", 16),
            disk("/dev/sdc", 8),
            disk("/dev/sda", 2),
            disk("/dev/nvme0n1", 8),
        ];
        assert_eq!(pick_default(&disks).as_deref(), Some("/dev/nvme0n1"));
        assert_eq!(pick_default(&[disk("/dev/sda", 2)]), None);
    }

    #[test]
    fn hints_pick_the_first_match_in_order() {
        let disks = vec![
            disk("/dev/sda", 8),
            disk("/dev/sdb", 64),
            disk("/dev/sdc", 32),
        ];
        let node = json!({"properties": {"root_device": {"size": ">= 20"}}});
        assert_eq!(
            chosen(Some(&node), disks.clone()).as_deref(),
            Ok("/dev/sdb")
        );
        // instance_info wins over properties.
        let node = json!({
            "properties": {"root_device": {"size": ">= 20"}},
            "instance_info": {"root_device": {"name": "/dev/sdc"}}
        });
        assert_eq!(
            chosen(Some(&node), disks.clone()).as_deref(),
            Ok("/dev/sdc")
        );
        // An empty instance_info.root_device falls back to properties.
        let node = json!({
            "properties": {"root_device": {"size": 32}},
            "instance_info": {"root_device": {}}
        });
        assert_eq!(chosen(Some(&node), disks).as_deref(), Ok("/dev/sdc"));
    }

    #[test]
    fn skip_list_removes_candidates() {
        let disks = vec![
            disk("/dev/sda", 8),
            disk("/dev/sdb", 64),
            disk("/dev/sdc", 32),
        ];
        let node = json!({"properties": {"skip_block_devices": [{"name": "/dev/sda"}]}});
        assert_eq!(
            chosen(Some(&node), disks.clone()).as_deref(),
            Ok("/dev/sdc")
        );
        let node = json!({"properties": {
            "skip_block_devices": [{"size": "< 40"}],
            "root_device": {"size": 32}
        }});
        let (kind, text) = details(select(Some(&node), disks).expect_err("sdc is skipped"));
        assert_eq!(kind.as_deref(), Some("DeviceNotFound"));
        assert!(text.contains("Excluded by properties.skip_block_devices: /dev/sda, /dev/sdc"));
    }

    #[test]
    fn unmatched_hints_list_the_candidates() {
        let mut sda = disk("/dev/sda", 8);
        sda.model = Some("INTEL SSD".into());
        sda.serial = vec!["PHYF0001".into()];
        let node = json!({"properties": {"root_device": {"name": "sdz"}}});
        let (kind, text) = details(select(Some(&node), vec![sda]).expect_err("no match"));
        assert_eq!(kind.as_deref(), Some("DeviceNotFound"));
        assert!(
            text.contains(r#"using these hints {"name":"sdz"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"/dev/sda (size 8.00 GiB, model "INTEL SSD", serial "PHYF0001")"#),
            "{text}"
        );
        assert!(text.contains("full path"), "{text}");
    }

    #[test]
    fn invalid_hints_are_device_not_found() {
        let node = json!({"properties": {"root_device": {"colour": "red"}}});
        let (kind, text) =
            details(select(Some(&node), vec![disk("/dev/sda", 8)]).expect_err("invalid"));
        assert_eq!(kind.as_deref(), Some("DeviceNotFound"));
        assert!(text.contains("failed to validate"), "{text}");
        assert!(text.contains("colour"), "{text}");
        // An invalid skip list entry names the entry.
        let node = json!({"properties": {"skip_block_devices": [{"size": "big"}]}});
        match select(Some(&node), vec![disk("/dev/sda", 8)]) {
            Err(ManagerError::InvalidArgument(why)) => {
                assert!(why.contains("skip_block_devices[0]"), "{why}");
                assert!(why.contains("\"size\""), "{why}");
            }
            other => panic!("expected invalid_argument, got {other:?}"),
        }
    }

    #[test]
    fn no_node_uses_the_default_rule() {
        assert_eq!(
            chosen(None, vec![disk("/dev/sdb", 16), disk("/dev/sda", 8)]).as_deref(),
            Ok("/dev/sda")
        );
        let (kind, _) = details(select(None, vec![disk("/dev/sda", 2)]).expect_err("too small"));
        assert_eq!(kind.as_deref(), Some("DeviceNotFound"));
    }
}
