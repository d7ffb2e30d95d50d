//! `get_os_install_device` (images.md §8): IPA's rule for a node without
//! root device hints — the smallest disk of at least 4 GiB, ties broken by
//! name. Hints and skip lists are not implemented yet and are refused rather
//! than silently ignored.

use ironic_hardware_guest::prelude::*;

use super::disks;

/// 4 GiB: smaller disks cannot hold an image.
const MIN_ROOT_SIZE: u64 = 4 * 1024 * 1024 * 1024;

pub(crate) fn get_os_install_device(node: Option<&str>) -> Result<String, ManagerError> {
    if let Some(node) = node {
        refuse_hints(node)?;
    }
    let candidates: Vec<(u64, String)> = disks::list_disks()?
        .into_iter()
        .map(|d| (d.device.size, d.device.name))
        .collect();
    pick_default(candidates).ok_or_else(|| {
        ManagerError::failed_as(
            "DeviceNotFound",
            format!(
                "No suitable device was found for deployment - root device hints were not \
                 provided and all found block devices are smaller than {MIN_ROOT_SIZE}B."
            ),
        )
    })
}

/// The smallest `(size, name)` with size ≥ 4 GiB.
fn pick_default(mut candidates: Vec<(u64, String)>) -> Option<String> {
    candidates.sort();
    candidates
        .into_iter()
        .find(|(size, _)| *size >= MIN_ROOT_SIZE)
        .map(|(_, name)| name)
}

/// Fail when the node carries root device hints or a disk skip list.
fn refuse_hints(node: &str) -> Result<(), ManagerError> {
    let node: serde_json::Value = serde_json::from_str(node)
        .map_err(|e| ManagerError::invalid_argument(format!("node is not JSON: {e}")))?;
    let non_empty = |v: Option<&serde_json::Value>| match v {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Object(m)) => !m.is_empty(),
        Some(serde_json::Value::Array(a)) => !a.is_empty(),
        Some(serde_json::Value::String(s)) => !s.trim().is_empty(),
        Some(_) => true,
    };
    for key in ["instance_info", "properties"] {
        if non_empty(node.get(key).and_then(|v| v.get("root_device"))) {
            return Err(ManagerError::failed(format!(
                "root device hints are not supported yet (node {key}.root_device is set)"
            )));
        }
    }
    if non_empty(
        node.get("properties")
            .and_then(|p| p.get("skip_block_devices")),
    ) {
        return Err(ManagerError::failed(
            "skip lists are not supported yet (node properties.skip_block_devices is set)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smallest_disk_of_at_least_4_gib() {
        let gib = 1u64 << 30;
        let disks = vec![
            (16 * gib, "/dev/sdb".to_string()),
            (8 * gib, "/dev/sdc".to_string()),
            (2 * gib, "/dev/sda".to_string()),
            (8 * gib, "/dev/nvme0n1".to_string()),
        ];
        assert_eq!(pick_default(disks).as_deref(), Some("/dev/nvme0n1"));
        assert_eq!(pick_default(vec![(2 * gib, "/dev/sda".into())]), None);
    }

    #[test]
    fn hints_are_refused() {
        assert!(refuse_hints(r#"{"properties": {"root_device": {"name": "/dev/sda"}}}"#).is_err());
        assert!(refuse_hints(r#"{"instance_info": {"root_device": {"size": ">= 10"}}}"#).is_err());
        assert!(
            refuse_hints(r#"{"properties": {"root_device": {}}, "instance_info": {}}"#).is_ok()
        );
        assert!(
            refuse_hints(r#"{"properties": {"skip_block_devices": [{"name": "/dev/sda"}]}}"#)
                .is_err()
        );
    }
}
