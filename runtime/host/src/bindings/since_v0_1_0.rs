//! Host bindings of contract 0.1.0 (`wit/ironic-hardware-0.1.0`).
//!
//! 0.1.0's `types` are 0.2.0's (bindgen `with`), so its exports convert to
//! the latest types as 0.2.0's do. Its imports cannot be shared the same
//! way: their instance names carry the package version
//! (`ironic:hardware/machine@0.1.0`), and a linked interface is named after
//! the bindings that generated it. So each 0.1.0 import is linked under its
//! own name and delegates to the 0.2.0 implementation (which delegates to
//! the latest), converting only the error and record types those
//! interfaces define themselves. 0.1.0 lacks `erase-many`,
//! `reread-partitions` and `report-device`.

use wasmtime::component::{Linker, Resource};

use super::since_v0_2_0::{down, down_list, record, variant};
use crate::capabilities::disks::DiskHandle;
use crate::capabilities::{
    self as caps, CommandsView, DisksView, LogView, MachineView, ProgressView,
};
use crate::sandbox::CallState;

wasmtime::component::bindgen!({
    path: "../../wit/ironic-hardware-0.1.0",
    world: "hardware-manager",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "ironic:hardware/types": super::since_v0_2_0::ironic::hardware::types,
        "ironic:hardware/disks.disk": crate::capabilities::disks::DiskHandle,
    },
});

use super::since_v0_2_0::ironic::hardware as v2;
use ironic::hardware as v1;

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

/// Links 0.1.0's imports, each with the view the latest version uses.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    use anyhow::Context;
    fn link(what: &str, r: wasmtime::Result<()>) -> anyhow::Result<()> {
        r.map_err(|e| anyhow::anyhow!("{e:?}"))
            .with_context(|| format!("linking contract 0.1.0 {what}"))
    }
    // 0.1.0 components import their `types` instance, which defines types
    // only (shared with 0.2.0 through `with`): an empty instance.
    link(
        "types",
        linker.instance("ironic:hardware/types@0.1.0").map(drop),
    )?;
    link(
        "machine",
        v1::machine::add_to_linker::<_, caps::Machine>(linker, CallState::machine_view),
    )?;
    link(
        "disks",
        v1::disks::add_to_linker::<_, caps::Disks>(linker, CallState::disks_view),
    )?;
    link(
        "commands",
        v1::commands::add_to_linker::<_, caps::Commands>(linker, CallState::commands_view),
    )?;
    link(
        "log",
        v1::log::add_to_linker::<_, caps::Log>(linker, CallState::log_view),
    )?;
    link(
        "progress",
        v1::progress::add_to_linker::<_, caps::Progress>(linker, CallState::progress_view),
    )
}

impl v1::disks::Host for DisksView<'_> {}

impl v1::disks::HostDisk for DisksView<'_> {
    async fn open(
        &mut self,
        name: String,
        access: v1::disks::Access,
    ) -> wasmtime::Result<Result<Resource<DiskHandle>, v1::disks::DiskError>> {
        down(v2::disks::HostDisk::open(self, name, access.into()).await)
    }
    async fn name(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<String> {
        v2::disks::HostDisk::name(self, disk).await
    }
    async fn size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u64> {
        v2::disks::HostDisk::size(self, disk).await
    }
    async fn logical_sector_size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u32> {
        v2::disks::HostDisk::logical_sector_size(self, disk).await
    }
    async fn physical_sector_size(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<u32> {
        v2::disks::HostDisk::physical_sector_size(self, disk).await
    }
    async fn read(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, v1::disks::DiskError>> {
        down(v2::disks::HostDisk::read(self, disk, offset, len).await)
    }
    async fn write(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        data: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v1::disks::DiskError>> {
        down(v2::disks::HostDisk::write(self, disk, offset, data).await)
    }
    async fn write_zeroes(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> wasmtime::Result<Result<(), v1::disks::DiskError>> {
        down(v2::disks::HostDisk::write_zeroes(self, disk, offset, len).await)
    }
    async fn discard(
        &mut self,
        disk: Resource<DiskHandle>,
        offset: u64,
        len: u64,
    ) -> wasmtime::Result<Result<(), v1::disks::DiskError>> {
        down(v2::disks::HostDisk::discard(self, disk, offset, len).await)
    }
    async fn flush(
        &mut self,
        disk: Resource<DiskHandle>,
    ) -> wasmtime::Result<Result<(), v1::disks::DiskError>> {
        down(v2::disks::HostDisk::flush(self, disk).await)
    }
    async fn drop(&mut self, disk: Resource<DiskHandle>) -> wasmtime::Result<()> {
        v2::disks::HostDisk::drop(self, disk).await
    }
}

impl v1::machine::Host for MachineView<'_> {
    async fn read_file(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Vec<u8>, v1::machine::MachineError>> {
        down(v2::machine::Host::read_file(self, path).await)
    }
    async fn list_dir(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Vec<v1::machine::DirEntry>, v1::machine::MachineError>> {
        down_list(v2::machine::Host::list_dir(self, path).await)
    }
    async fn read_link(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<String, v1::machine::MachineError>> {
        down(v2::machine::Host::read_link(self, path).await)
    }
    async fn kind(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<v1::machine::EntryKind, v1::machine::MachineError>> {
        down(v2::machine::Host::kind(self, path).await)
    }
    async fn remove_file(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<(), v1::machine::MachineError>> {
        down(v2::machine::Host::remove_file(self, path).await)
    }
    async fn network_addresses(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<v1::machine::InterfaceAddress>, v1::machine::MachineError>>
    {
        down_list(v2::machine::Host::network_addresses(self).await)
    }
}

impl v1::commands::Host for CommandsView<'_> {
    async fn run(
        &mut self,
        program: String,
        args: Vec<String>,
        stdin: Option<Vec<u8>>,
        timeout_ms: Option<u32>,
    ) -> wasmtime::Result<Result<v1::commands::CommandOutput, v1::commands::CommandError>> {
        down(v2::commands::Host::run(self, program, args, stdin, timeout_ms).await)
    }
}

impl v1::log::Host for LogView<'_> {
    async fn log(&mut self, level: v1::log::Level, message: String) -> wasmtime::Result<()> {
        v2::log::Host::log(self, level.into(), message).await
    }
}

impl v1::progress::Host for ProgressView<'_> {
    async fn report(&mut self, percent: Option<u8>, message: String) -> wasmtime::Result<()> {
        v2::progress::Host::report(self, percent, message).await
    }
}
