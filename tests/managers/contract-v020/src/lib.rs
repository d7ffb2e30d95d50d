//! A manager targeting contract `ironic:hardware@0.2.0`, built with
//! wit-bindgen alone (the SDK targets the latest contract), so the suite
//! keeps a real 0.2.0 component: the host must keep serving it beside 0.1.0
//! and 0.3.0 components.
//!
//! Support 2: answers nothing of the inventory (every call falls through)
//! and offers the clean step `v020_erase`, which zeroes the given disks with
//! 0.2.0's `erase-many` (progress per device through the host).

wit_bindgen::generate!({
    path: "../../../wit/ironic-hardware-0.2.0",
    world: "hardware-manager",
    generate_all,
});

use exports::ironic::hardware::manager::Guest;
use ironic::hardware::disks::{erase_many, Access, Disk, EraseJob, ZeroPass};
use ironic::hardware::types::{
    ArgInfo, BlockDevice, BootInfo, Cpu, Failure, ManagerError, ManagerInfo, Memory,
    NetworkInterface, Step, StepKind, SystemVendor,
};

#[used]
#[unsafe(link_section = "ironic:manifest")]
static MANIFEST: [u8; include_bytes!("../manifest.toml").len()] =
    *include_bytes!("../manifest.toml");

struct V020;

fn unsupported<T>(what: &str) -> Result<T, ManagerError> {
    Err(ManagerError::Unsupported(what.to_string()))
}

fn failed(details: String) -> ManagerError {
    ManagerError::Failed(Failure {
        error_type: None,
        details,
    })
}

/// Zero every disk of `names` at once; `{disk: null | error}`.
fn erase(names: &[String]) -> Result<serde_json::Value, ManagerError> {
    let disks = names
        .iter()
        .map(|n| Disk::open(n, Access::ReadWrite).map_err(|e| failed(format!("{n}: {e:?}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let jobs: Vec<EraseJob> = disks
        .iter()
        .map(|d| EraseJob {
            disk: d,
            random_passes: 0,
            zeroes: ZeroPass::Overwrite,
        })
        .collect();
    let results = erase_many(&jobs, 2);
    let mut out = serde_json::Map::new();
    for (name, result) in names.iter().zip(results) {
        out.insert(
            name.clone(),
            match result {
                Ok(()) => serde_json::Value::Null,
                Err(e) => format!("{e:?}").into(),
            },
        );
    }
    Ok(out.into())
}

impl Guest for V020 {
    fn info() -> Result<ManagerInfo, ManagerError> {
        Ok(ManagerInfo {
            id: "ContractV020HardwareManager".into(),
            name: "contract_v020_hardware_manager".into(),
            version: "0.2".into(),
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
        unsupported("get-system-vendor-info")
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
                name: "v020_erase".into(),
                priority: 0,
                interface: "deploy".into(),
                reboot_requested: false,
                abortable: Some(false),
                argsinfo: Some(vec![ArgInfo {
                    name: "disks".into(),
                    description: "devices to zero, all at once".into(),
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
        if name != "v020_erase" {
            return unsupported(&name);
        }
        let args: serde_json::Value = serde_json::from_str(&args)
            .map_err(|e| ManagerError::InvalidArgument(format!("args: {e}")))?;
        let disks: Vec<String> = serde_json::from_value(args["disks"].clone()).map_err(|e| {
            ManagerError::InvalidArgument(format!("argument disks (a list of devices): {e}"))
        })?;
        Ok(erase(&disks)?.to_string())
    }
}

export!(V020);
