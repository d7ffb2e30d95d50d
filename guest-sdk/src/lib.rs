//! Write an Ironic hardware manager as a WebAssembly component.
//!
//! A manager is a type implementing [`HardwareManager`]. Every method has a
//! default that answers [`ManagerError::Unsupported`], so the agent asks the
//! next manager in support order: implement only what your hardware needs.
//! [`export_manager!`] turns the type into the component's exports and embeds
//! its capability manifest.
//!
//! ```ignore
//! use ironic_hardware_guest::prelude::*;
//!
//! struct Vendor;
//!
//! impl HardwareManager for Vendor {
//!     fn info() -> Result<ManagerInfo, ManagerError> {
//!         Ok(ManagerInfo::new("VendorHardwareManager", "vendor_hardware_manager", "1.0"))
//!     }
//!     fn evaluate_hardware_support() -> Result<u32, ManagerError> {
//!         // Only for our boards: read the DMI vendor through the machine capability.
//!         let vendor = machine::read_text("/sys/class/dmi/id/sys_vendor").unwrap_or_default();
//!         Ok(if vendor.trim() == "Example Corp" { SUPPORT_SERVICE_PROVIDER } else { SUPPORT_NONE })
//!     }
//!     fn get_steps(kind: StepKind, _node: Json, _ports: Json) -> Result<Vec<Step>, ManagerError> {
//!         Ok(match kind {
//!             StepKind::Clean => vec![Step::new("update_firmware", 0, "deploy")
//!                 .abortable(true)
//!                 .arg("version", "firmware version to install", true)],
//!             _ => vec![],
//!         })
//!     }
//!     fn execute_step(_kind: StepKind, name: String, _node: Json, _ports: Json, args: Json) -> Result<Json, ManagerError> {
//!         match name.as_str() {
//!             "update_firmware" => {
//!                 let args = StepArgs::parse(&args)?;
//!                 let version: String = args.required("version")?;
//!                 progress::report(Some(10), "flashing");
//!                 let out = commands::run("vendor-flash", &["--version".into(), version], None, Some(600_000))
//!                     .map_err(|e| ManagerError::failed(format!("vendor-flash: {e:?}")))?;
//!                 if out.exit_code != Some(0) {
//!                     return Err(ManagerError::failed("vendor-flash failed"));
//!                 }
//!                 json_result(&serde_json::json!({"installed": args.get::<String>("version")?}))
//!             }
//!             _ => Err(ManagerError::unsupported(name)),
//!         }
//!     }
//! }
//!
//! export_manager!(Vendor, manifest = "../manifest.toml");
//! ```
//!
//! The manifest (TOML) declares the capabilities the manager needs; the
//! operator must grant each of them too. See docs/managers/README.md and docs/managers/rust.md.
//!
//! Steps can instead be declared once, with their handlers, in
//! [`HardwareManager::steps`]: the SDK then answers `get-steps` and
//! dispatches `execute-step`, checking the arguments against `argsinfo`
//! (a missing required argument or an unknown one is an invalid-argument
//! error naming it).
//!
//! The SDK targets contract `ironic:hardware@0.3.0` ([`CONTRACT_VERSION`]):
//! downloads into a private scratch space ([`fetch`], [`scratch`]), files
//! shipped with the manager ([`assets`]), programs run with an environment
//! and a working directory ([`commands::Command`]), the next manager's
//! answer ([`fallback`]) and `extra` fields on inventory records; and
//! 0.2.0's [`disks::erase_many`], `Disk::reread_partitions` and
//! [`progress::report_device`].

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/ironic-hardware-0.3.0",
        world: "hardware-manager",
        pub_export_macro: true,
        export_macro_name: "__export_raw",
        default_bindings_module: "ironic_hardware_guest::bindings",
        generate_all,
    });
}

mod helpers;

pub use bindings::exports::ironic::hardware::manager::Guest as RawGuest;
pub use bindings::ironic::hardware::types::{
    ArgInfo, BlockDevice, BootInfo, Cpu, Failure, LldpTlv, ManagerError, ManagerInfo, Memory,
    NetworkInterface, Step, StepKind, SystemFirmware, SystemVendor,
};
pub use helpers::{extra, json_result, StepArgs};
pub use steps::{StepCall, StepDef, StepHandler};

mod steps;

/// The contract version this SDK builds components for.
pub const CONTRACT_VERSION: &str = "0.3.0";

/// JSON text crossing the boundary (node, ports, step args and results).
pub type Json = String;

/// Support levels (IPA's `HardwareSupport`).
pub const SUPPORT_NONE: u32 = 0;
pub const SUPPORT_GENERIC: u32 = 1;
pub const SUPPORT_MAINLINE: u32 = 2;
pub const SUPPORT_SERVICE_PROVIDER: u32 = 3;

/// Host capabilities. Each call is checked against the manifest and the
/// operator's grants; a denial comes back as an error value.
pub mod machine {
    pub use crate::bindings::ironic::hardware::machine::*;

    /// A file's contents as UTF-8 text (lossy).
    pub fn read_text(path: &str) -> Result<String, MachineError> {
        read_file(path).map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
    }

    /// A file's first line, trimmed; `None` when absent, unreadable or empty.
    pub fn read_trimmed(path: &str) -> Option<String> {
        let text = read_text(path).ok()?;
        let line = text.trim();
        (!line.is_empty()).then(|| line.to_string())
    }
}
pub mod disks {
    pub use crate::bindings::ironic::hardware::disks::*;
}
pub mod commands {
    pub use crate::bindings::ironic::hardware::commands::*;
    pub use crate::helpers::Command;
}
pub mod scratch {
    pub use crate::bindings::ironic::hardware::scratch::*;
}
pub mod fetch {
    pub use crate::bindings::ironic::hardware::fetch::*;
}
pub mod assets {
    pub use crate::bindings::ironic::hardware::assets::*;
}
/// The next manager's answer (IPA's `super()` / `dispatch_to_managers`):
/// extend it instead of rebuilding it. Needs `fallback = true` in the
/// manifest (granted to every manager by default).
pub mod fallback {
    pub use crate::bindings::ironic::hardware::fallback::*;
}
pub mod log {
    pub use crate::bindings::ironic::hardware::log::*;
}
pub mod progress {
    pub use crate::bindings::ironic::hardware::progress::*;
}

/// Everything a manager usually needs.
pub mod prelude {
    pub use crate::{
        assets, commands, disks, export_manager, extra, fallback, fetch, json_result, log, machine,
        progress, scratch, ArgInfo, BlockDevice, BootInfo, Cpu, Failure, HardwareManager, Json,
        LldpTlv, ManagerError, ManagerInfo, Memory, NetworkInterface, Step, StepArgs, StepCall,
        StepDef, StepKind, SystemFirmware, SystemVendor, SUPPORT_GENERIC, SUPPORT_MAINLINE,
        SUPPORT_NONE, SUPPORT_SERVICE_PROVIDER,
    };
}

/// A hardware manager. Implement [`HardwareManager::info`] and
/// [`HardwareManager::evaluate_hardware_support`]; everything else defaults
/// to "unsupported", which makes the agent ask the next manager.
pub trait HardwareManager {
    fn info() -> Result<ManagerInfo, ManagerError>;
    fn evaluate_hardware_support() -> Result<u32, ManagerError>;

    fn get_cpus() -> Result<Cpu, ManagerError> {
        Err(ManagerError::unsupported("get-cpus"))
    }
    fn get_memory() -> Result<Memory, ManagerError> {
        Err(ManagerError::unsupported("get-memory"))
    }
    fn list_block_devices() -> Result<Vec<BlockDevice>, ManagerError> {
        Err(ManagerError::unsupported("list-block-devices"))
    }
    fn list_network_interfaces() -> Result<Vec<NetworkInterface>, ManagerError> {
        Err(ManagerError::unsupported("list-network-interfaces"))
    }
    fn get_bmc_address() -> Result<Option<String>, ManagerError> {
        Err(ManagerError::unsupported("get-bmc-address"))
    }
    fn get_bmc_v6address() -> Result<Option<String>, ManagerError> {
        Err(ManagerError::unsupported("get-bmc-v6address"))
    }
    fn get_bmc_mac() -> Result<Option<String>, ManagerError> {
        Err(ManagerError::unsupported("get-bmc-mac"))
    }
    fn get_system_vendor_info() -> Result<SystemVendor, ManagerError> {
        Err(ManagerError::unsupported("get-system-vendor-info"))
    }
    fn get_boot_info() -> Result<BootInfo, ManagerError> {
        Err(ManagerError::unsupported("get-boot-info"))
    }
    fn get_os_install_device(_node: Option<Json>) -> Result<String, ManagerError> {
        Err(ManagerError::unsupported("get-os-install-device"))
    }
    /// The steps this manager offers, with their handlers. The default
    /// `get_steps` and `execute_step` are built from it.
    fn steps() -> Vec<StepDef> {
        Vec::new()
    }
    fn get_steps(kind: StepKind, _node: Json, _ports: Json) -> Result<Vec<Step>, ManagerError> {
        Ok(steps::listing(&Self::steps(), kind))
    }
    fn execute_step(
        kind: StepKind,
        name: String,
        node: Json,
        ports: Json,
        args: Json,
    ) -> Result<Json, ManagerError> {
        steps::dispatch(&Self::steps(), kind, &name, &node, &ports, &args)
    }
}

/// Export a [`HardwareManager`] as the component's `manager` interface and
/// embed its manifest (a TOML file, path relative to the invoking source
/// file) in the custom section `ironic:manifest`.
#[macro_export]
macro_rules! export_manager {
    ($ty:ty, manifest = $manifest:literal) => {
        #[doc(hidden)]
        #[used]
        #[unsafe(link_section = "ironic:manifest")]
        static __IRONIC_MANAGER_MANIFEST: [u8; include_bytes!($manifest).len()] = *include_bytes!($manifest);

        $crate::export_manager!($ty);
    };
    ($ty:ty) => {
        #[doc(hidden)]
        struct __IronicManagerExport;

        impl $crate::RawGuest for __IronicManagerExport {
            fn info() -> Result<$crate::ManagerInfo, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::info()
            }
            fn evaluate_hardware_support() -> Result<u32, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::evaluate_hardware_support()
            }
            fn get_cpus() -> Result<$crate::Cpu, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_cpus()
            }
            fn get_memory() -> Result<$crate::Memory, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_memory()
            }
            fn list_block_devices() -> Result<Vec<$crate::BlockDevice>, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::list_block_devices()
            }
            fn list_network_interfaces() -> Result<Vec<$crate::NetworkInterface>, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::list_network_interfaces()
            }
            fn get_bmc_address() -> Result<Option<String>, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_bmc_address()
            }
            fn get_bmc_v6address() -> Result<Option<String>, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_bmc_v6address()
            }
            fn get_bmc_mac() -> Result<Option<String>, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_bmc_mac()
            }
            fn get_system_vendor_info() -> Result<$crate::SystemVendor, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_system_vendor_info()
            }
            fn get_boot_info() -> Result<$crate::BootInfo, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_boot_info()
            }
            fn get_os_install_device(node: Option<$crate::Json>) -> Result<String, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_os_install_device(node)
            }
            fn get_steps(kind: $crate::StepKind, node: $crate::Json, ports: $crate::Json) -> Result<Vec<$crate::Step>, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::get_steps(kind, node, ports)
            }
            fn execute_step(kind: $crate::StepKind, name: String, node: $crate::Json, ports: $crate::Json, args: $crate::Json) -> Result<$crate::Json, $crate::ManagerError> {
                <$ty as $crate::HardwareManager>::execute_step(kind, name, node, ports, args)
            }
        }

        $crate::bindings::__export_raw!(__IronicManagerExport with_types_in $crate::bindings);
    };
}
