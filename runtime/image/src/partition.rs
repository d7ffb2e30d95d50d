//! Partition-image layout (IPA `disk_utils.make_partitions`,
//! `partition_index_to_path`): the plan and the exact `parted` command IPA
//! runs (`DiskPartitioner.commit`). Pure functions; the caller executes the
//! command (through the agent's command runner), then writes the image into
//! the `root` partition with [`crate::write_image`].

use crate::error::ImageError;

/// One planned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPartition {
    /// 1-based partition number.
    pub number: u32,
    /// Ironic's role key in `get_partition_uuids` (`root`, `swap`, ...).
    pub role: &'static str,
    pub start_mib: u64,
    pub end_mib: u64,
    /// parted fs-type (empty = none).
    pub fs_type: &'static str,
    pub flags: Vec<&'static str>,
}

/// The layout for a partition image, in IPA's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlan {
    /// `gpt` or `msdos`.
    pub label: String,
    pub partitions: Vec<PlannedPartition>,
}

/// Inputs of the plan (sizes in MiB).
#[derive(Debug, Clone, Default)]
pub struct LayoutRequest {
    /// `uefi` or `bios`.
    pub boot_mode: String,
    /// The node's `disk_label` capability (`gpt`/`msdos`); ignored for UEFI.
    pub disk_label: Option<String>,
    /// CPU architecture (`x86_64`, `ppc64le`, ...).
    pub cpu_arch: String,
    pub root_mb: u64,
    pub swap_mb: u64,
    pub ephemeral_mb: u64,
    pub configdrive_mb: u64,
    /// `[disk_utils]efi_system_partition_size` (550).
    pub esp_mb: u64,
    /// `[disk_utils]bios_boot_partition_size` (1).
    pub bios_boot_mb: u64,
}

impl PartitionPlan {
    /// The partitions and order of IPA's `make_partitions`.
    pub fn new(req: &LayoutRequest) -> Result<PartitionPlan, ImageError> {
        if req.root_mb == 0 {
            return Err(ImageError::InvalidParams {
                message: "root_mb must be greater than 0".into(),
            });
        }
        let uefi = req.boot_mode == "uefi";
        let ppc = req.cpu_arch.starts_with("ppc64");
        let label = if uefi {
            "gpt".to_string()
        } else {
            match req.disk_label.as_deref() {
                Some("gpt") => "gpt".into(),
                Some("msdos") | None => "msdos".into(),
                Some(other) => {
                    return Err(ImageError::InvalidParams {
                        message: format!("unknown disk_label {other}"),
                    })
                }
            }
        };
        let mut wanted: Vec<(&'static str, u64, &'static str, Vec<&'static str>)> = Vec::new();
        if uefi {
            wanted.push(("efi system partition", req.esp_mb, "fat32", vec!["boot"]));
        } else if label == "gpt" && !ppc {
            wanted.push((
                "BIOS Boot partition",
                req.bios_boot_mb,
                "",
                vec!["bios_grub"],
            ));
        }
        if ppc && !uefi {
            let flags = if label == "msdos" {
                vec!["boot", "prep"]
            } else {
                vec!["prep"]
            };
            wanted.push(("PReP Boot partition", 8, "", flags));
        }
        if req.ephemeral_mb > 0 {
            wanted.push(("ephemeral", req.ephemeral_mb, "", vec![]));
        }
        if req.swap_mb > 0 {
            wanted.push(("swap", req.swap_mb, "linux-swap", vec![]));
        }
        if req.configdrive_mb > 0 {
            wanted.push(("configdrive", req.configdrive_mb, "", vec![]));
        }
        // Root last, so it can be grown on first boot.
        let root_flags = if !uefi && label == "msdos" && !ppc {
            vec!["boot"]
        } else {
            vec![]
        };
        wanted.push(("root", req.root_mb, "", root_flags));

        let mut start = 1;
        let partitions = wanted
            .into_iter()
            .enumerate()
            .map(|(i, (role, size, fs_type, flags))| {
                let p = PlannedPartition {
                    number: i as u32 + 1,
                    role,
                    start_mib: start,
                    end_mib: start + size,
                    fs_type,
                    flags,
                };
                start += size;
                p
            })
            .collect();
        Ok(PartitionPlan { label, partitions })
    }

    /// `parted -a optimal -s <dev> -- unit MiB mklabel <label> mkpart primary <fs> <start> <end> [set <n> <flag> on]…`
    pub fn parted_args(&self, device: &str) -> Vec<String> {
        let mut a: Vec<String> = [
            "-a",
            "optimal",
            "-s",
            device,
            "--",
            "unit",
            "MiB",
            "mklabel",
            &self.label,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for p in &self.partitions {
            a.extend(["mkpart".into(), "primary".into(), p.fs_type.to_string()]);
            a.extend([p.start_mib.to_string(), p.end_mib.to_string()]);
            for f in &p.flags {
                a.extend([
                    "set".into(),
                    p.number.to_string(),
                    f.to_string(),
                    "on".into(),
                ]);
            }
        }
        a
    }

    /// The partition with `role`.
    pub fn get(&self, role: &str) -> Option<&PlannedPartition> {
        self.partitions.iter().find(|p| p.role == role)
    }
}

/// `<dev><n>`, or `<dev>p<n>` when the device name ends in a digit
/// (`/dev/nvme0n1p1`, `/dev/md0p1`).
pub fn partition_path(device: &str, number: u32) -> String {
    if device.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{device}p{number}")
    } else {
        format!("{device}{number}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(boot: &str, label: Option<&str>, arch: &str) -> LayoutRequest {
        LayoutRequest {
            boot_mode: boot.into(),
            disk_label: label.map(String::from),
            cpu_arch: arch.into(),
            root_mb: 10240,
            swap_mb: 512,
            ephemeral_mb: 1024,
            configdrive_mb: 2,
            esp_mb: 550,
            bios_boot_mb: 1,
        }
    }

    #[test]
    fn uefi_layout() {
        let p = PartitionPlan::new(&req("uefi", Some("msdos"), "x86_64")).expect("plan");
        assert_eq!(p.label, "gpt");
        let roles: Vec<_> = p.partitions.iter().map(|p| p.role).collect();
        assert_eq!(
            roles,
            [
                "efi system partition",
                "ephemeral",
                "swap",
                "configdrive",
                "root"
            ]
        );
        let root = p.get("root").expect("root");
        assert_eq!(
            (root.number, root.start_mib, root.end_mib),
            (5, 1 + 550 + 1024 + 512 + 2, 12329)
        );
        let args = p.parted_args("/dev/sda");
        assert_eq!(
            args[..13].join(" "),
            "-a optimal -s /dev/sda -- unit MiB mklabel gpt mkpart primary fat32 1"
        );
        assert!(args
            .join(" ")
            .contains("551 set 1 boot on mkpart primary  551 1575"));
    }

    #[test]
    fn bios_layouts() {
        let p = PartitionPlan::new(&req("bios", None, "x86_64")).expect("plan");
        assert_eq!(p.label, "msdos");
        assert_eq!(p.partitions[0].role, "ephemeral");
        assert_eq!(p.get("root").expect("root").flags, ["boot"]);
        let g = PartitionPlan::new(&req("bios", Some("gpt"), "x86_64")).expect("plan");
        assert_eq!(g.partitions[0].role, "BIOS Boot partition");
        assert_eq!(g.partitions[0].flags, ["bios_grub"]);
        assert!(g.get("root").expect("root").flags.is_empty());
        let ppc = PartitionPlan::new(&req("bios", None, "ppc64le")).expect("plan");
        assert_eq!(ppc.partitions[0].role, "PReP Boot partition");
        assert_eq!(ppc.partitions[0].flags, ["boot", "prep"]);
        assert_eq!(partition_path("/dev/nvme0n1", 2), "/dev/nvme0n1p2");
        assert_eq!(partition_path("/dev/sda", 2), "/dev/sda2");
    }
}
