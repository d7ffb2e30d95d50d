//! Host bindings of contract 0.2.0 (`wit/ironic-hardware-0.2.0`).
//!
//! 0.3.0 added `extra` to the inventory records, so 0.2.0's `types` are
//! types of their own: exports are converted to the latest types (`up`),
//! and 0.1.0 shares 0.2.0's types. 0.2.0's imports have instance names of
//! their own (`ironic:hardware/machine@0.2.0`): each is linked under its
//! name and delegates to the 0.3.0 implementation, converting the types its
//! interface defines.

use wasmtime::component::{Linker, Resource};

use super::latest;
use crate::capabilities::disks::DiskHandle;
use crate::capabilities::{
    self as caps, CommandsView, DisksView, LogView, MachineView, ProgressView, TypesView,
};
use crate::sandbox::CallState;

wasmtime::component::bindgen!({
    path: "../../wit/ironic-hardware-0.2.0",
    world: "hardware-manager",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "ironic:hardware/disks.disk": crate::capabilities::disks::DiskHandle,
    },
});

use ironic::hardware as v2;
use latest::ironic::hardware as v3;

/// `From` between two copies of a record whose fields convert with `into`;
/// `+ { field: value }` sets fields the older copy lacks.
macro_rules! record {
    ($($from:ident)::+ => $($to:ident)::+ { $($field:ident),* $(,)? } $(+ { $($new:ident: $value:expr),* })?) => {
        impl From<$($from)::+> for $($to)::+ {
            fn from(v: $($from)::+) -> Self {
                $($to)::+ { $($field: v.$field.into(),)* $($($new: $value,)*)? }
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
pub(super) use {record, variant};

// ------------------------------------------------ exports: 0.2.0 → 0.3.0

variant!(v2::types::ManagerError => v3::types::ManagerError {}
    { Unsupported, Incompatible, InvalidArgument, Failed });
record!(v2::types::Failure => v3::types::Failure { error_type, details });
record!(v2::types::ManagerInfo => v3::types::ManagerInfo { id, name, version });
record!(v2::types::Cpu => v3::types::Cpu {
    model_name, frequency, count, architecture, flags, socket_count
} + { extra: None });
record!(v2::types::Memory => v3::types::Memory { total, physical_mb } + { extra: None });
record!(v2::types::BlockDevice => v3::types::BlockDevice {
    name, model, size, rotational, wwn, serial, vendor, wwn_with_extension,
    wwn_vendor_extension, hctl, by_path, logical_sectors, physical_sectors, tran
} + { extra: None });
record!(v2::types::LldpTlv => v3::types::LldpTlv { tlv_type, value });
record!(v2::types::SystemFirmware => v3::types::SystemFirmware { vendor, version, build_date });
record!(v2::types::SystemVendor => v3::types::SystemVendor {
    product_name, serial_number, manufacturer, firmware
} + { extra: None });
record!(v2::types::BootInfo => v3::types::BootInfo { current_boot_mode, pxe_interface }
    + { extra: None });
record!(v2::types::ArgInfo => v3::types::ArgInfo { name, description, required });
variant!(v3::types::StepKind => v2::types::StepKind { Clean, Deploy, Service } {});

impl From<v2::types::NetworkInterface> for v3::types::NetworkInterface {
    fn from(v: v2::types::NetworkInterface) -> Self {
        v3::types::NetworkInterface {
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
            extra: None,
        }
    }
}

impl From<v2::types::Step> for v3::types::Step {
    fn from(v: v2::types::Step) -> Self {
        v3::types::Step {
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

/// An answer of a 0.2.0 (or 0.1.0) export, in the latest types.
pub(crate) fn up<A, B: From<A>>(
    answer: wasmtime::Result<Result<A, v2::types::ManagerError>>,
) -> super::Answer<B> {
    answer.map(|r| r.map(B::from).map_err(Into::into))
}

/// [`up`] for lists.
pub(crate) fn up_list<A, B: From<A>>(
    answer: wasmtime::Result<Result<Vec<A>, v2::types::ManagerError>>,
) -> super::Answer<Vec<B>> {
    answer.map(|r| {
        r.map(|items| items.into_iter().map(B::from).collect())
            .map_err(Into::into)
    })
}

// ------------------------------------ imports: 0.2.0 calls, 0.3.0 impls

variant!(v2::disks::Access => v3::disks::Access { ReadOnly, ReadWrite } {});
variant!(v2::disks::ZeroPass => v3::disks::ZeroPass { None, Overwrite, Cheapest } {});
variant!(v3::disks::DiskError => v2::disks::DiskError {}
    { Denied, NotFound, OutOfRange, Unsupported, Io });
variant!(v3::machine::MachineError => v2::machine::MachineError {}
    { Denied, NotFound, InvalidPath, Io });
variant!(v3::machine::EntryKind => v2::machine::EntryKind
    { File, Directory, Symlink, BlockDevice, CharDevice, Other } {});
variant!(v3::machine::AddressFamily => v2::machine::AddressFamily { Ipv4, Ipv6 } {});
record!(v3::machine::DirEntry => v2::machine::DirEntry { name, kind });
record!(v3::machine::InterfaceAddress => v2::machine::InterfaceAddress {
    interface, family, address
});
variant!(v3::commands::CommandError => v2::commands::CommandError {}
    { Denied, NotFound, TimedOut, OutputTooLarge, Failed });
record!(v3::commands::CommandOutput => v2::commands::CommandOutput { exit_code, stdout, stderr });
variant!(v2::log::Level => v3::log::Level { Trace, Debug, Info, Warn, Error } {});

/// An answer of the 0.3.0 implementation, in 0.2.0's types.
pub(super) fn down<T, U: From<T>, E, F: From<E>>(
    answer: wasmtime::Result<Result<T, E>>,
) -> wasmtime::Result<Result<U, F>> {
    answer.map(|r| r.map(Into::into).map_err(Into::into))
}

/// [`down`] for lists.
pub(super) fn down_list<T, U: From<T>, E, F: From<E>>(
    answer: wasmtime::Result<Result<Vec<T>, E>>,
) -> wasmtime::Result<Result<Vec<U>, F>> {
    answer.map(|r| {
        r.map(|items| items.into_iter().map(Into::into).collect())
            .map_err(Into::into)
    })
}

/// Links 0.2.0's imports, each with the view the latest version uses.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    use anyhow::Context;
    fn link(what: &str, r: wasmtime::Result<()>) -> anyhow::Result<()> {
        r.map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("linking contract 0.2.0 {what}"))
    }
    link(
        "types",
        v2::types::add_to_linker::<_, caps::Types>(linker, CallState::types_view),
    )?;
    link(
        "machine",
        v2::machine::add_to_linker::<_, caps::Machine>(linker, CallState::machine_view),
    )?;
    link(
        "disks",
        v2::disks::add_to_linker::<_, caps::Disks>(linker, CallState::disks_view),
    )?;
    link(
        "commands",
        v2::commands::add_to_linker::<_, caps::Commands>(linker, CallState::commands_view),
    )?;
    link(
        "log",
        v2::log::add_to_linker::<_, caps::Log>(linker, CallState::log_view),
    )?;
    link(
        "progress",
        v2::progress::add_to_linker::<_, caps::Progress>(linker, CallState::progress_view),
    )
}

impl v2::types::Host for TypesView {}

impl v2::disks::Host for DisksView<'_> {
    async fn erase_many(
        &mut self,
        jobs: Vec<v2::disks::EraseJob>,
        concurrency: u32,
    ) -> wasmtime::Result<Vec<Result<(), v2::disks::DiskError>>> {
        let jobs = jobs
            .into_iter()
            .map(|j| v3::disks::EraseJob {
                disk: j.disk,
                random_passes: j.random_passes,
                zeroes: j.zeroes.into(),
            })
            .collect();
        let results = v3::disks::Host::erase_many(self, jobs, concurrency).await?;
        Ok(results.into_iter().map(|r| r.map_err(Into::into)).collect())
    }
}

impl v2::disks::HostDisk for DisksView<'_> {
    async fn open(
        &mut self,
        name: String,
        access: v2::disks::Access,
    ) -> wasmtime::Result<Result<Resource<DiskHandle>, v2::disks::DiskError>> {
        down(v3::disks::HostDisk::open(self, name, access.into()).await)
    }
    async fn name(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<String> {
        v3::disks::HostDisk::name(self, disk).await
    }
    async fn size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u64> {
        v3::disks::HostDisk::size(self, disk).await
    }
    async fn logical_sector_size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u32> {
        v3::disks::HostDisk::logical_sector_size(self, disk).await
    }
    async fn physical_sector_size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u32> {
        v3::disks::HostDisk::physical_sector_size(self, disk).await
    }
    async fn read(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, v2::disks::DiskError>> {
        down(v3::disks::HostDisk::read(self, disk, offset, len).await)
    }
    async fn write(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v2::disks::DiskError>> {
        down(v3::disks::HostDisk::write(self, disk, offset, data).await)
    }
    async fn write_zeroes(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> wasmtime::Result<Result<(), v2::disks::DiskError>> {
        down(v3::disks::HostDisk::write_zeroes(self, disk, offset, len).await)
    }
    async fn discard(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> wasmtime::Result<Result<(), v2::disks::DiskError>> {
        down(v3::disks::HostDisk::discard(self, disk, offset, len).await)
    }
    async fn flush(
        &mut self,
        disk: Resource<DiskHandle>,
    ) -> wasmtime::Result<Result<(), v2::disks::DiskError>> {
        down(v3::disks::HostDisk::flush(self, disk).await)
    }
    async fn reread_partitions(
        &mut self,
        disk: Resource<DiskHandle>,
    ) -> wasmtime::Result<Result<(), v2::disks::DiskError>> {
        down(v3::disks::HostDisk::reread_partitions(self, disk).await)
    }
    async fn drop(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<()> {
        v3::disks::HostDisk::drop(self, disk).await
    }
}

impl v2::machine::Host for MachineView<'_> {
    async fn read_file(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, v2::machine::MachineError>> {
        down(v3::machine::Host::read_file(self, path).await)
    }
    async fn list_dir(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Vec<v2::machine::DirEntry>, v2::machine::MachineError>> {
        down_list(v3::machine::Host::list_dir(self, path).await)
    }
    async fn read_link(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<String, v2::machine::MachineError>> {
        down(v3::machine::Host::read_link(self, path).await)
    }
    async fn kind(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<v2::machine::EntryKind, v2::machine::MachineError>> {
        down(v3::machine::Host::kind(self, path).await)
    }
    async fn remove_file(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<(), v2::machine::MachineError>> {
        down(v3::machine::Host::remove_file(self, path).await)
    }
    async fn network_addresses(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<v2::machine::InterfaceAddress>, v2::machine::MachineError>>
    {
        down_list(v3::machine::Host::network_addresses(self).await)
    }
}

impl v2::commands::Host for CommandsView<'_> {
    async fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<v2::commands::CommandOutput, v2::commands::CommandError>> {
        down(v3::commands::Host::run(self, program, args, stdin, timeout_ms).await)
    }
}

impl v2::log::Host for LogView<'_> {
    async fn log(&mut self, level: v2::log::Level, message: String) -> wasmtime::Result<()> {
        v3::log::Host::log(self, level.into(), message).await
    }
}

impl v2::progress::Host for ProgressView<'_> {
    async fn report(&mut self, percent: Option<u8>, message: String) -> wasmtime::Result<()> {
        v3::progress::Host::report(self, percent, message).await
    }
    async fn report_device(
        &mut self,
        device: String,
        percent: Option<u8>,
        message: String,
    ) -> wasmtime::Result<()> {
        v3::progress::Host::report_device(self, device, percent, message).await
    }
}
