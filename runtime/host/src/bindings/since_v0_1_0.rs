//! Host bindings of contract 0.1.0 (`wit/ironic-hardware-0.1.0`).
//!
//! 0.1.0 is a subset of 0.2.0 with identical types, so every import here
//! delegates to the 0.2.0 implementation and only converts between the two
//! generated copies of each type; exports are converted to the 0.2.0 types
//! that dispatch uses.

use wasmtime::component::Resource;

use super::latest;
use crate::capabilities::disks::DiskHandle;
use crate::sandbox::CallState;

wasmtime::component::bindgen!({
    path: "../../wit/ironic-hardware-0.1.0",
    world: "hardware-manager",
    with: {
        "ironic:hardware/disks.disk": crate::capabilities::disks::DiskHandle,
    },
});

use ironic::hardware as v1;
use latest::ironic::hardware as v2;

/// `From` between two copies of a record whose fields convert with `into`.
macro_rules! record {
    ($($from:ident)::+ => $($to:ident)::+ { $($field:ident),* $(,)? }) => {
        impl From<$($from)::+> for $($to)::+ {
            fn from(v: $($from)::+) -> Self {
                $($to)::+ { $($field: v.$field.into()),* }
            }
        }
    };
}

/// `From` between two copies of an enum or variant: plain cases, then cases
/// with a payload (converted with `into`).
macro_rules! variant {
    ($($from:ident)::+ => $($to:ident)::+ { $($case:ident),* $(,)? } { $($payload:ident),* $(,)? }) => {
        impl From<$($from)::+> for $($to)::+ {
            fn from(v: $($from)::+) -> Self {
                type F = $($from)::+;
                type T = $($to)::+;
                match v {
                    $(F::$case => T::$case,)*
                    $(F::$payload(x) => T::$payload(x.into()),)*
                }
            }
        }
    };
}

// ------------------------------------------------ exports: 0.1.0 → 0.2.0

variant!(v1::types::ManagerError => v2::types::ManagerError {}
    { Unsupported, Incompatible, InvalidArgument, Failed });
record!(v1::types::Failure => v2::types::Failure { error_type, details });
record!(v1::types::ManagerInfo => v2::types::ManagerInfo { id, name, version });
record!(v1::types::Cpu => v2::types::Cpu {
    model_name, frequency, count, architecture, flags, socket_count
});
record!(v1::types::Memory => v2::types::Memory { total, physical_mb });
record!(v1::types::BlockDevice => v2::types::BlockDevice {
    name, model, size, rotational, wwn, serial, vendor, wwn_with_extension,
    wwn_vendor_extension, hctl, by_path, logical_sectors, physical_sectors, tran
});
record!(v1::types::LldpTlv => v2::types::LldpTlv { tlv_type, value });
record!(v1::types::SystemFirmware => v2::types::SystemFirmware { vendor, version, build_date });
record!(v1::types::SystemVendor => v2::types::SystemVendor {
    product_name, serial_number, manufacturer, firmware
});
record!(v1::types::BootInfo => v2::types::BootInfo { current_boot_mode, pxe_interface });
record!(v1::types::ArgInfo => v2::types::ArgInfo { name, description, required });
variant!(v2::types::StepKind => v1::types::StepKind { Clean, Deploy, Service } {});

impl From<v1::types::NetworkInterface> for v2::types::NetworkInterface {
    fn from(v: v1::types::NetworkInterface) -> Self {
        v2::types::NetworkInterface {
            name: v.name,
            mac_address: v.mac_address,
            ipv4_address: v.ipv4_address,
            ipv6_address: v.ipv6_address,
            has_carrier: v.has_carrier,
            lldp: v
                .lldp
                .map(|tlvs| tlvs.into_iter().map(Into::into).collect()),
            vendor: v.vendor,
            product: v.product,
            client_id: v.client_id,
            biosdevname: v.biosdevname,
            speed_mbps: v.speed_mbps,
            pci_address: v.pci_address,
            driver: v.driver,
        }
    }
}

impl From<v1::types::Step> for v2::types::Step {
    fn from(v: v1::types::Step) -> Self {
        v2::types::Step {
            name: v.name,
            priority: v.priority,
            interface: v.interface,
            reboot_requested: v.reboot_requested,
            abortable: v.abortable,
            argsinfo: v
                .argsinfo
                .map(|args| args.into_iter().map(Into::into).collect()),
        }
    }
}

// ------------------------------------ imports: 0.1.0 calls, 0.2.0 impls

variant!(v1::disks::Access => v2::disks::Access { ReadOnly, ReadWrite } {});
variant!(v2::disks::DiskError => v1::disks::DiskError {}
    { Denied, NotFound, OutOfRange, Unsupported, Io });
variant!(v2::machine::MachineError => v1::machine::MachineError {}
    { Denied, NotFound, InvalidPath, Io });
variant!(v2::machine::EntryKind => v1::machine::EntryKind
    { File, Directory, Symlink, BlockDevice, CharDevice, Other } {});
variant!(v2::machine::AddressFamily => v1::machine::AddressFamily { Ipv4, Ipv6 } {});
record!(v2::machine::DirEntry => v1::machine::DirEntry { name, kind });
record!(v2::machine::InterfaceAddress => v1::machine::InterfaceAddress {
    interface, family, address
});
variant!(v2::commands::CommandError => v1::commands::CommandError {}
    { Denied, NotFound, TimedOut, OutputTooLarge, Failed });
record!(v2::commands::CommandOutput => v1::commands::CommandOutput { exit_code, stdout, stderr });
variant!(v1::log::Level => v2::log::Level { Trace, Debug, Info, Warn, Error } {});

fn list<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(Into::into).collect()
}

impl v1::types::Host for CallState {}

impl v1::disks::Host for CallState {}

impl v1::disks::HostDisk for CallState {
    fn open(
        &mut self,
        name: String,
        access: v1::disks::Access,
    ) -> Result<Resource<DiskHandle>, v1::disks::DiskError> {
        v2::disks::HostDisk::open(self, name, access.into()).map_err(Into::into)
    }
    fn name(&mut self, disk: Resource<DiskHandle>) -> String {
        v2::disks::HostDisk::name(self, disk)
    }
    fn size(&mut self, disk: Resource<DiskHandle>) -> u64 {
        v2::disks::HostDisk::size(self, disk)
    }
    fn logical_sector_size(&mut self, disk: Resource<DiskHandle>) -> u32 {
        v2::disks::HostDisk::logical_sector_size(self, disk)
    }
    fn physical_sector_size(&mut self, disk: Resource<DiskHandle>) -> u32 {
        v2::disks::HostDisk::physical_sector_size(self, disk)
    }
    fn read(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u32,
    ) -> Result<Vec<u8>, v1::disks::DiskError> {
        v2::disks::HostDisk::read(self, disk, offset, len).map_err(Into::into)
    }
    fn write(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), v1::disks::DiskError> {
        v2::disks::HostDisk::write(self, disk, offset, data).map_err(Into::into)
    }
    fn write_zeroes(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> Result<(), v1::disks::DiskError> {
        v2::disks::HostDisk::write_zeroes(self, disk, offset, len).map_err(Into::into)
    }
    fn discard(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> Result<(), v1::disks::DiskError> {
        v2::disks::HostDisk::discard(self, disk, offset, len).map_err(Into::into)
    }
    fn flush(&mut self, disk: Resource<DiskHandle>) -> Result<(), v1::disks::DiskError> {
        v2::disks::HostDisk::flush(self, disk).map_err(Into::into)
    }
    fn drop(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<()> {
        v2::disks::HostDisk::drop(self, disk)
    }
}

impl v1::machine::Host for CallState {
    fn read_file(&mut self, path: String) -> Result<Vec<u8>, v1::machine::MachineError> {
        v2::machine::Host::read_file(self, path).map_err(Into::into)
    }
    fn list_dir(
        &mut self,
        path: String,
    ) -> Result<Vec<v1::machine::DirEntry>, v1::machine::MachineError> {
        v2::machine::Host::list_dir(self, path)
            .map(list)
            .map_err(Into::into)
    }
    fn read_link(&mut self, path: String) -> Result<String, v1::machine::MachineError> {
        v2::machine::Host::read_link(self, path).map_err(Into::into)
    }
    fn kind(&mut self, path: String) -> Result<v1::machine::EntryKind, v1::machine::MachineError> {
        v2::machine::Host::kind(self, path)
            .map(Into::into)
            .map_err(Into::into)
    }
    fn remove_file(&mut self, path: String) -> Result<(), v1::machine::MachineError> {
        v2::machine::Host::remove_file(self, path).map_err(Into::into)
    }
    fn network_addresses(
        &mut self,
    ) -> Result<Vec<v1::machine::InterfaceAddress>, v1::machine::MachineError> {
        v2::machine::Host::network_addresses(self)
            .map(list)
            .map_err(Into::into)
    }
}

impl v1::commands::Host for CallState {
    fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> Result<v1::commands::CommandOutput, v1::commands::CommandError> {
        v2::commands::Host::run(self, program, args, stdin, timeout_ms)
            .map(Into::into)
            .map_err(Into::into)
    }
}

impl v1::log::Host for CallState {
    fn log(&mut self, level: v1::log::Level, message: String) {
        v2::log::Host::log(self, level.into(), message)
    }
}

impl v1::progress::Host for CallState {
    fn report(&mut self, percent: Option<u8>, message: String) {
        v2::progress::Host::report(self, percent, message)
    }
}
