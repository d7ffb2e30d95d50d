//! Simulated machines.
//!
//! [`create`] turns a [`MachineDescription`] into a *hardware root*: a
//! directory holding the `/sys`, `/proc`, `/run/udev` and `/dev` a Linux
//! machine with that hardware would show, laid out as the kernel lays them
//! out (devices under `/sys/devices`, relative links in `/sys/block`,
//! `/sys/class/*` and `/dev/disk/by-path`). The agent's host resolves every
//! path a manager reads inside that root, so the generic manager runs the same
//! code it runs on real hardware.
//!
//! Besides the tree, the root holds `.ironic-sim/`:
//! * `machine.toml`: the description (also the marker [`SimMachine::is_simulated`] checks);
//! * `addresses.json`: the interfaces' IP addresses, which the host's
//!   `network-addresses` capability reads on a simulated machine;
//! * `bin/`: stand-in programs (`ipmitool`; the recorders `mkfs`, `mkswap`,
//!   `efibootmgr`, whose calls land in `calls/<program>`) the host runs
//!   instead of real ones.
//!
//! Disks are sparse files `<root>/dev/<name>`: creating a 1 TiB machine costs
//! no space, and nothing here ever opens a real device.

use std::path::{Path, PathBuf};

mod build;
mod description;
mod ipmitool;
mod smbios;
pub mod standins;
mod storage;

pub use description::{
    partition_name, BmcDescription, BootDescription, BootMode, ByteSize, CpuDescription,
    DiskDescription, DmiDescription, MachineDescription, MemoryDescription, NicDescription,
    PartitionDescription, Transport, MAX_SCSI_HOST,
};
pub use storage::{MdDescription, MultipathDescription};

/// The shipped default machine: a small BIOS server with two SATA disks,
/// two NICs and a BMC.
pub const DEFAULT_MACHINE: &str = include_str!("../machines/default.toml");

/// Directory (inside the root) holding the simulator's own files.
pub const SIM_DIR: &str = ".ironic-sim";

/// Errors of this crate. Each names the file, key or directory at fault.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The description is malformed or inconsistent.
    #[error("{}: {key}: {message}", file.display())]
    Description {
        /// The description file.
        file: PathBuf,
        /// The offending key, e.g. `disks[1].size`.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// The target directory has content and is not a simulated machine.
    #[error("{}: directory is not empty and is not a simulated machine (no {SIM_DIR}/machine.toml); refusing to write into it", .0.display())]
    NotEmpty(PathBuf),
    /// The directory is not a simulated machine.
    #[error("{}: not a simulated machine (no {SIM_DIR}/machine.toml)", .0.display())]
    NotSimulated(PathBuf),
    /// A file-system operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path being created or read.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The description could not be written back as TOML.
    #[error("cannot serialise the machine description: {0}")]
    Serialize(String),
}

/// A simulated machine on disk.
#[derive(Debug, Clone)]
pub struct SimMachine {
    /// The hardware root.
    pub root: PathBuf,
    /// What it simulates.
    pub description: MachineDescription,
}

impl SimMachine {
    /// `true` when `root` holds a simulated machine (its marker
    /// `<root>/.ironic-sim/machine.toml` exists).
    pub fn is_simulated(root: &Path) -> bool {
        marker_path(root).is_file()
    }

    /// Open an existing simulated machine.
    pub fn open(root: &Path) -> Result<Self, SimError> {
        let marker = marker_path(root);
        if !marker.is_file() {
            return Err(SimError::NotSimulated(root.to_path_buf()));
        }
        Ok(SimMachine {
            root: root.to_path_buf(),
            description: MachineDescription::from_file(&marker)?,
        })
    }

    /// The file backing disk `name` (`sda` or `/dev/sda`).
    pub fn disk_path(&self, name: &str) -> PathBuf {
        let name = name.strip_prefix("/dev/").unwrap_or(name);
        self.root.join("dev").join(name)
    }

    /// Directory of stand-in programs: the host's program dir list on this machine.
    pub fn bin_dir(&self) -> PathBuf {
        self.root.join(SIM_DIR).join("bin")
    }

    /// The argument vectors `program` (a recorder stand-in) was called
    /// with, oldest first.
    pub fn recorded_calls(&self, program: &str) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.root.join(SIM_DIR).join("calls").join(program))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(String::from).collect())
            .collect()
    }

    /// The JSON file the host's `network-addresses` capability reads.
    pub fn addresses_file(&self) -> PathBuf {
        self.root.join(SIM_DIR).join("addresses.json")
    }

    /// Where power, network and skipped-program actions are recorded
    /// instead of performed: one JSON object per line.
    pub fn actions_file(&self) -> PathBuf {
        self.root.join(SIM_DIR).join("actions.jsonl")
    }

    /// Faults injected into the disks capability (see the host's
    /// `capabilities::faults`); may be absent.
    pub fn faults_file(&self) -> PathBuf {
        self.root.join(SIM_DIR).join("faults.toml")
    }

    /// The compile cache of managers run on this machine, beside it, so
    /// nothing a simulated machine does writes outside its directory.
    pub fn cache_dir(&self) -> PathBuf {
        self.root.join(SIM_DIR).join("cache")
    }

    /// Every action recorded in [`SimMachine::actions_file`], oldest first.
    pub fn recorded_actions(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.actions_file())
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// `true` when `root` holds a simulated machine (same as
/// [`SimMachine::is_simulated`]).
pub fn is_simulated(root: &Path) -> bool {
    SimMachine::is_simulated(root)
}

fn marker_path(root: &Path) -> PathBuf {
    root.join(SIM_DIR).join("machine.toml")
}

/// Build the hardware root for `desc` in `dir` (created if missing).
///
/// Refuses a non-empty directory unless it already is a simulated machine,
/// in which case the simulator's trees (`sys`, `proc`, `run`, `dev`,
/// `.ironic-sim`) are rebuilt from scratch; anything else in it is left alone.
pub fn create(desc: &MachineDescription, dir: &Path) -> Result<SimMachine, SimError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SimError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let has_content = std::fs::read_dir(dir).map_err(io(dir))?.next().is_some();
    if has_content {
        if !SimMachine::is_simulated(dir) {
            return Err(SimError::NotEmpty(dir.to_path_buf()));
        }
        for top in build::TOP_LEVEL {
            let path = dir.join(top);
            // symlink_metadata: never follow a link out of the root.
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path).map_err(io(&path))?,
                Ok(_) => std::fs::remove_file(&path).map_err(io(&path))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(SimError::Io { path, source: e }),
            }
        }
    }
    build::build(desc, dir)?;
    Ok(SimMachine {
        root: dir.to_path_buf(),
        description: desc.clone(),
    })
}

#[cfg(test)]
mod tests;
