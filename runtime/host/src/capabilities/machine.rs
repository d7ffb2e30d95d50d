//! `machine`: a read-only view of files under the hardware root.
//!
//! Only regular files are read, and they are opened without blocking: a
//! FIFO or a device node under a granted tree can never hold a call (a
//! sysfs attribute or a procfs file is a regular file).

use std::io::Read;
use std::path::Path;

use cap_std::fs::{FileType, OpenOptions, OpenOptionsExt};
use serde::Deserialize;

use super::{is_escape, rooted, MachineView, RootedPath};
use crate::bindings::latest::ironic::hardware::machine::{
    self, AddressFamily, DirEntry, EntryKind, InterfaceAddress, MachineError,
};
use crate::policy::Need;
use crate::text::sanitize;
use crate::NetworkSource;

/// Largest file `read-file` returns.
pub const MAX_READ: u64 = 16 * 1024 * 1024;

/// Most entries `list-dir` returns.
pub const MAX_ENTRIES: usize = 65_536;

impl MachineView<'_> {
    fn machine_path(&self, path: &str) -> Result<RootedPath, MachineError> {
        let rooted = rooted(path).map_err(|e| {
            let e = sanitize(&e, 512).into_owned();
            tracing::warn!(manager = %self.manager.name, "invalid path: {e}");
            MachineError::InvalidPath(e)
        })?;
        self.manager
            .policy
            .check(Need::Path(&rooted.absolute))
            .map_err(MachineError::Denied)?;
        Ok(rooted)
    }

    fn io_error(&self, path: &RootedPath, e: std::io::Error) -> MachineError {
        let shown = sanitize(&path.absolute, 512);
        if is_escape(&e) {
            tracing::warn!(manager = %self.manager.name, path = %shown, "path resolves outside the hardware root");
            return MachineError::InvalidPath(format!(
                "{shown}: resolves outside the hardware root"
            ));
        }
        match e.kind() {
            std::io::ErrorKind::NotFound => MachineError::NotFound(shown.into_owned()),
            _ => MachineError::Io(format!("{shown}: {e}")),
        }
    }
}

fn kind_of(ft: FileType) -> EntryKind {
    use cap_std::fs::FileTypeExt;
    if ft.is_symlink() {
        EntryKind::Symlink
    } else if ft.is_dir() {
        EntryKind::Directory
    } else if ft.is_file() {
        EntryKind::File
    } else if ft.is_block_device() {
        EntryKind::BlockDevice
    } else if ft.is_char_device() {
        EntryKind::CharDevice
    } else {
        EntryKind::Other
    }
}

impl machine::Host for MachineView<'_> {
    async fn read_file(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, MachineError>> {
        Ok(self.read_regular_file(&path))
    }

    async fn list_dir(
        &mut self,
        path: String,
    ) -> wasmtime::Result<Result<Vec<DirEntry>, MachineError>> {
        Ok(self.list(&path))
    }

    async fn read_link(&mut self, path: String) -> wasmtime::Result<Result<String, MachineError>> {
        Ok((|| {
            let p = self.machine_path(&path)?;
            // `read_link_contents` returns the target as stored, even absolute.
            let target = self
                .env
                .root
                .read_link_contents(&p.relative)
                .map_err(|e| self.io_error(&p, e))?;
            Ok(target.to_string_lossy().into_owned())
        })())
    }

    async fn kind(&mut self, path: String) -> wasmtime::Result<Result<EntryKind, MachineError>> {
        Ok((|| {
            let p = self.machine_path(&path)?;
            let meta = self
                .env
                .root
                .metadata(&p.relative)
                .map_err(|e| self.io_error(&p, e))?;
            Ok(kind_of(meta.file_type()))
        })())
    }

    async fn remove_file(&mut self, path: String) -> wasmtime::Result<Result<(), MachineError>> {
        Ok((|| {
            let rooted = rooted(&path).map_err(MachineError::InvalidPath)?;
            self.manager
                .policy
                .check(Need::Remove(&rooted.absolute))
                .map_err(MachineError::Denied)?;
            // cap-std refuses to follow the path out of the hardware root.
            self.env
                .root
                .remove_file(&rooted.relative)
                .map_err(|e| self.io_error(&rooted, e))?;
            tracing::info!(manager = %self.manager.name, path = %sanitize(&rooted.absolute, 512), "removed file");
            Ok(())
        })())
    }

    async fn network_addresses(
        &mut self,
    ) -> wasmtime::Result<Result<Vec<InterfaceAddress>, MachineError>> {
        Ok((|| {
            self.manager
                .policy
                .check(Need::Network)
                .map_err(MachineError::Denied)?;
            match &self.env.network {
                NetworkSource::Live => live_addresses(),
                NetworkSource::File(path) => file_addresses(path),
                NetworkSource::None => Ok(Vec::new()),
            }
        })())
    }
}

impl MachineView<'_> {
    fn read_regular_file(&self, path: &str) -> Result<Vec<u8>, MachineError> {
        let p = self.machine_path(path)?;
        let mut options = OpenOptions::new();
        // A FIFO would block `open` itself until a writer appears.
        options.read(true).custom_flags(libc::O_NONBLOCK);
        let file = self
            .env
            .root
            .open_with(&p.relative, &options)
            .map_err(|e| self.io_error(&p, e))?;
        let meta = file.metadata().map_err(|e| self.io_error(&p, e))?;
        if !meta.is_file() {
            return Err(MachineError::Io(format!(
                "{}: not a regular file",
                sanitize(&p.absolute, 512)
            )));
        }
        let mut data = Vec::new();
        file.take(MAX_READ + 1)
            .read_to_end(&mut data)
            .map_err(|e| self.io_error(&p, e))?;
        if data.len() as u64 > MAX_READ {
            return Err(MachineError::Io(format!(
                "{}: larger than the 16 MiB read limit",
                p.absolute
            )));
        }
        Ok(data)
    }

    fn list(&self, path: &str) -> Result<Vec<DirEntry>, MachineError> {
        let p = self.machine_path(path)?;
        let entries = self
            .env
            .root
            .read_dir(&p.relative)
            .map_err(|e| self.io_error(&p, e))?;
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io_error(&p, e))?;
            if out.len() == MAX_ENTRIES {
                return Err(MachineError::Io(format!(
                    "{}: more than {MAX_ENTRIES} entries",
                    p.absolute
                )));
            }
            let kind = entry.file_type().map(kind_of).unwrap_or(EntryKind::Other);
            out.push(DirEntry {
                name: entry.file_name().to_string_lossy().into_owned(),
                kind,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

#[derive(Deserialize)]
struct FileAddress {
    interface: String,
    family: String,
    address: String,
}

/// Addresses from a JSON file (the simulated machine's); missing → none.
fn file_addresses(path: &Path) -> Result<Vec<InterfaceAddress>, MachineError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(MachineError::Io(format!("{}: {e}", path.display()))),
    };
    let entries: Vec<FileAddress> = serde_json::from_str(&text)
        .map_err(|e| MachineError::Io(format!("{}: invalid address list: {e}", path.display())))?;
    entries
        .into_iter()
        .map(|a| {
            let family = match a.family.as_str() {
                "ipv4" => AddressFamily::Ipv4,
                "ipv6" => AddressFamily::Ipv6,
                other => {
                    return Err(MachineError::Io(format!(
                        "{}: unknown address family {other:?}",
                        path.display()
                    )))
                }
            };
            Ok(InterfaceAddress {
                interface: a.interface,
                family,
                address: a.address,
            })
        })
        .collect()
}

/// The machine's real interface addresses (getifaddrs).
fn live_addresses() -> Result<Vec<InterfaceAddress>, MachineError> {
    let interfaces =
        if_addrs::get_if_addrs().map_err(|e| MachineError::Io(format!("getifaddrs: {e}")))?;
    Ok(interfaces
        .into_iter()
        .map(|i| match i.addr {
            if_addrs::IfAddr::V4(v4) => InterfaceAddress {
                family: AddressFamily::Ipv4,
                address: v4.ip.to_string(),
                interface: i.name,
            },
            if_addrs::IfAddr::V6(v6) => {
                // Link-local addresses carry their scope, as IPA reports them.
                let link_local = (v6.ip.segments()[0] & 0xffc0) == 0xfe80;
                let address = if link_local {
                    format!("{}%{}", v6.ip, i.name)
                } else {
                    v6.ip.to_string()
                };
                InterfaceAddress {
                    family: AddressFamily::Ipv6,
                    address,
                    interface: i.name,
                }
            }
        })
        .collect())
}
