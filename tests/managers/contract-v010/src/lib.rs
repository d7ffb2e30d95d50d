//! A manager targeting contract `ironic:hardware@0.1.0`, built with
//! wit-bindgen alone (the SDK targets the latest contract), so the suite
//! keeps a real 0.1.0 component: the host must keep serving it beside 0.2.0
//! components.
//!
//! Support 2 (before the generic manager): answers
//! `get-system-vendor-info` (everything else of the inventory falls through
//! to the next manager) and offers the clean step `v010_zero_disk`, which
//! goes through the 0.1.0 `disks`, `machine`, `log` and `progress` imports.

wit_bindgen::generate!({
    path: "../../../wit/ironic-hardware-0.1.0",
    world: "hardware-manager",
    generate_all,
});

use exports::ironic::hardware::manager::Guest;
use ironic::hardware::disks::{Access, Disk, DiskError};
use ironic::hardware::types::{
    ArgInfo, BlockDevice, BootInfo, Cpu, Failure, ManagerError, ManagerInfo, Memory,
    NetworkInterface, Step, StepKind, SystemFirmware, SystemVendor,
};
use ironic::hardware::{log, machine, progress};

// The manifest, in the custom section the host reads (what the SDK's
// `export_manager!` does for SDK managers).
#[used]
#[unsafe(link_section = "ironic:manifest")]
static MANIFEST: [u8; include_bytes!("../manifest.toml").len()] =
    *include_bytes!("../manifest.toml");

struct V010;

fn unsupported<T>(what: &str) -> Result<T, ManagerError> {
    Err(ManagerError::Unsupported(what.to_string()))
}

fn failed(details: String) -> ManagerError {
    ManagerError::Failed(Failure {
        error_type: None,
        details,
    })
}

fn disk_error(e: DiskError) -> String {
    format!("{e:?}")
}

/// Write a pattern over the first MiB of `disk`, zero it again with
/// write-zeroes, and check it reads back as zeroes.
fn zero_disk(name: &str) -> Result<serde_json::Value, ManagerError> {
    let disk = Disk::open(name, Access::ReadWrite).map_err(|e| failed(disk_error(e)))?;
    let len = disk.size().min(1 << 20);
    progress::report(Some(10), &format!("{name}: writing a pattern"));
    disk.write(0, &vec![0x5a; len as usize])
        .map_err(|e| failed(disk_error(e)))?;
    disk.write_zeroes(0, len)
        .map_err(|e| failed(disk_error(e)))?;
    disk.flush().map_err(|e| failed(disk_error(e)))?;
    let back = disk
        .read(0, len as u32)
        .map_err(|e| failed(disk_error(e)))?;
    progress::report(Some(100), &format!("{name}: zeroed"));
    log::log(
        log::Level::Info,
        &format!("{name}: first {len} bytes zeroed"),
    );
    let vendor = machine::read_file("/sys/class/dmi/id/sys_vendor")
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .map_err(|e| failed(format!("{e:?}")))?;
    Ok(serde_json::json!({
        "zeroed": back.iter().all(|b| *b == 0),
        "bytes": len,
        "vendor": vendor,
    }))
}

impl Guest for V010 {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo {
            id: "ContractV010HardwareManager".into(),
            name: "contract_v010_hardware_manager".into(),
            version: "0.1".into(),
        })
    }
    fn evaluate_hardware_support() -> Result<u32, ManagerError> {
        Ok(2)
    }
    fn get_cpus() -> Result<Cpu, ManagerError> {
        unsupported("get-cpus")
    }
    fn get_memory() -> Result<Memory, ManagerError> {
        unsupported("get-memory")
    }
    fn list_block_devices() -> Result<Vec<BlockDevice>, ManagerError> {
        unsupported("list-block-devices")
    }
    fn list_network_interfaces() -> Result<Vec<NetworkInterface>, ManagerError> {
        unsupported("list-network-interfaces")
    }
    fn get_bmc_address() -> Result<Option<String>, ManagerError> {
        unsupported("get-bmc-address")
    }
    fn get_bmc_v6address() -> Result<Option<String>, ManagerError> {
        unsupported("get-bmc-v6address")
    }
    fn get_bmc_mac() -> Result<Option<String>, ManagerError> {
        unsupported("get-bmc-mac")
    }
    fn get_system_vendor_info() -> Result<SystemVendor, ManagerError> {
        Ok(SystemVendor {
            product_name: "Contract 0.1.0 Server".into(),
            serial_number: "V010".into(),
            manufacturer: "Old Contract Inc.".into(),
            firmware: SystemFirmware {
                vendor: "Old Contract Inc.".into(),
                version: "0.1.0".into(),
                build_date: "2024-01-01".into(),
            },
        })
    }
    fn get_boot_info() -> Result<BootInfo, ManagerError> {
        unsupported("get-boot-info")
    }
    fn get_os_install_device(_node: Option<String>) -> Result<String, ManagerError> {
        unsupported("get-os-install-device")
    }
    fn get_steps(kind: StepKind, _node: String, _ports: String) -> Result<Vec<Step>, ManagerError> {
        Ok(match kind {
            StepKind::Clean => vec![Step {
                name: "v010_zero_disk".into(),
                priority: 0,
                interface: "deploy".into(),
                reboot_requested: false,
                abortable: Some(true),
                argsinfo: Some(vec![ArgInfo {
                    name: "disk".into(),
                    description: "device to zero the first MiB of".into(),
                    required: true,
                }]),
            }],
            _ => Vec::new(),
        })
    }
    fn execute_step(
        _kind: StepKind,
        name: String,
        _node: String,
        _ports: String,
        args: String,
    ) -> Result<String, ManagerError> {
        if name != "v010_zero_disk" {
            return unsupported(&name);
        }
        let args: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::InvalidArgument(format!("args: {e}")))?;
        let disk = args["disk"].as_str().ok_or_else(|| {
            ManagerError::InvalidArgument("missing required argument disk".into())
        })?;
        Ok(zero_disk(disk)?.to_string())
    }
}

export!(V010);
