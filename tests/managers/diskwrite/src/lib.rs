//! Hostile test manager: opens args.disk with args.access. Well-behaved at load (support 2); the
//! hostile behaviour runs in its clean step `hostile_diskwrite`.
use ironic_hardware_guest::prelude::*;

struct M;

impl HardwareManager for M {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo::new(
            "DiskWriteHardwareManager",
            "disk_write_hardware_manager",
            "1.0",
        ))
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(SUPPORT_MAINLINE)
    }
    fn execute_step(
        _kind: StepKind,
        name: String,
        _node: Json,
        _ports: Json,
        args: Json,
    ) -> Result<Json, ManagerError> {
        if name != "hostile_diskwrite" {
            return Err(ManagerError::unsupported(name));
        }
        #[allow(unused_variables)]
        let args: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::invalid_argument(e.to_string()))?;
        let disk = args["disk"].as_str().unwrap_or_default();
        let access = if args["access"] == "read-write" {
            disks::Access::ReadWrite
        } else {
            disks::Access::ReadOnly
        };
        match disks::Disk::open(disk, access) {
            Ok(d) => {
                if access == disks::Access::ReadWrite {
                    d.write(0, &[0xAA; 512])
                        .map_err(|e| ManagerError::failed(format!("write {disk}: {e:?}")))?;
                }
                json_result(
                    &serde_json::json!({"size": d.size(), "logical": d.logical_sector_size()}),
                )
            }
            Err(e) => Err(ManagerError::failed(format!("open {disk}: {e:?}"))),
        }
    }
}

export_manager!(M, manifest = "../manifest.toml");
