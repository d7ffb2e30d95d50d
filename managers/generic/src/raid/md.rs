//! Software RAID (md) arrays as the kernel shows them, and `mdadm`.
//!
//! Arrays and their members come from sysfs (`/sys/block/md*`, its
//! `slaves/`), the kernel's own view, where IPA parses `mdadm --detail` and
//! `--examine` of every device (hardware.py `get_component_devices`,
//! `get_holder_disks`); the array's name comes from `mdadm --detail`
//! (raid_utils.py `get_volume_name_of_raid_device`), udev's `MD_NAME` when
//! mdadm cannot say.

use std::collections::BTreeMap;

use ironic_hardware_guest::commands::{self, CommandError, CommandOutput};
use ironic_hardware_guest::prelude::*;

use crate::inventory::{disks, sysfs};

/// IPA's error class for everything software RAID.
pub const RAID_ERROR: &str = "SoftwareRAIDError";

pub fn raid_error(details: impl Into<String>) -> ManagerError {
    ManagerError::failed_as(RAID_ERROR, details)
}

/// An md array.
#[derive(Debug, Clone, PartialEq)]
pub struct MdArray {
    /// `/dev/md0`.
    pub name: String,
    /// `md0`.
    pub kname: String,
    /// Member devices, `/dev/sda1`, in slave order.
    pub members: Vec<String>,
    /// The disks the members are on (a whole-disk member is its own).
    pub holders: Vec<String>,
    /// The array's name (`mdadm --name`), without the host prefix.
    pub volume_name: Option<String>,
}

/// What a program run gave: exit code and outputs, or why it did not run.
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    /// `stderr`, else `stdout`, trimmed: for messages.
    pub fn message(&self) -> String {
        let text = if self.stderr.trim().is_empty() {
            &self.stdout
        } else {
            &self.stderr
        };
        text.trim().to_string()
    }
}

/// Runs `program args…` (logged). A program that cannot run at all (not
/// granted, not installed, timed out) is an error naming it.
pub fn run(program: &str, args: &[&str]) -> Result<Ran, String> {
    let owned: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    log::log(
        log::Level::Info,
        &format!("running {program} {}", owned.join(" ")),
    );
    match commands::run(program, &owned, None, None) {
        Ok(CommandOutput {
            exit_code,
            stdout,
            stderr,
        }) => Ok(Ran {
            code: exit_code,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }),
        Err(e) => Err(match e {
            CommandError::NotFound(m) => format!("{program} is not installed: {m}"),
            CommandError::Denied(m) => format!("{program} is not permitted: {m}"),
            CommandError::TimedOut(m) => format!("{program} timed out: {m}"),
            CommandError::OutputTooLarge(m) => format!("{program} printed too much: {m}"),
            CommandError::Failed(m) => format!("{program} could not run: {m}"),
        }),
    }
}

/// Runs `mdadm args…` and requires success.
pub fn mdadm(args: &[&str]) -> Result<Ran, String> {
    let ran = run("mdadm", args)?;
    if ran.ok() {
        Ok(ran)
    } else {
        Err(format!(
            "mdadm {} failed ({}): {}",
            args.join(" "),
            ran.code
                .map_or("signal".into(), |c| format!("exit code {c}")),
            ran.message()
        ))
    }
}

/// The disk holding `kname` (`sda1` → `sda`; a disk is its own): the parent
/// directory of the device in sysfs.
pub fn holder_of(kname: &str) -> String {
    let is_partition = sysfs::exists(&format!("/sys/class/block/{kname}/partition"));
    if is_partition {
        if let Some(target) = sysfs::read_link(&format!("/sys/class/block/{kname}")) {
            let mut parts = target.trim_end_matches('/').rsplit('/');
            parts.next();
            if let Some(parent) = parts.next() {
                return parent.to_string();
            }
        }
    }
    kname.to_string()
}

/// Every md array in `/sys/block`, named (see the module documentation).
pub fn arrays() -> Result<Vec<MdArray>, ManagerError> {
    let mut found = Vec::new();
    for kname in sysfs::list_required("/sys/block")? {
        if !kname.starts_with("md") {
            continue;
        }
        let base = format!("/sys/block/{kname}");
        let mut members = sysfs::list_opt(&format!("{base}/slaves"))?.unwrap_or_default();
        members.sort();
        let mut holders: Vec<String> = Vec::new();
        for m in &members {
            let h = format!("/dev/{}", holder_of(m));
            if !holders.contains(&h) {
                holders.push(h);
            }
        }
        let name = format!("/dev/{kname}");
        let volume_name = volume_name(&name).or_else(|| {
            let dev = sysfs::read_opt(&format!("{base}/dev"))?;
            let (major, minor) = disks::parse_dev(&dev)?;
            let set = disks::udev_properties(major, minor).remove("MD_NAME")?;
            Some(set.rsplit(':').next().unwrap_or(&set).to_string())
        });
        found.push(MdArray {
            name,
            kname,
            members: members.iter().map(|m| format!("/dev/{m}")).collect(),
            holders,
            volume_name,
        });
    }
    Ok(found)
}

/// `mdadm --detail` of an array, parsed for its name.
pub fn volume_name(md: &str) -> Option<String> {
    let ran = run("mdadm", &["--detail", md]).ok()?;
    if !ran.ok() {
        return None;
    }
    generic_storage::mdadm::volume_name(&ran.stdout)
}

/// What the skip list means for an array (IPA hardware.py
/// `_handle_raid_skip_list`): keep it, keep it but wipe its data (it shares
/// a holder disk with a kept one), or delete it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Delete,
    Wipe,
    Keep,
}

/// Per array (by md name): its fate and, for `Wipe`, the kept volume that
/// caused it. The ESP array (named `esp`) is kept rather than wiped, so
/// the bootloader installation finds it again.
pub fn fates(
    arrays: &[MdArray],
    skip_volume_names: &[String],
) -> BTreeMap<String, (Fate, Option<String>)> {
    let mut fate: BTreeMap<String, (Fate, Option<String>)> = arrays
        .iter()
        .map(|a| (a.name.clone(), (Fate::Delete, None)))
        .collect();
    for kept in arrays.iter().filter(|a| {
        a.volume_name
            .as_ref()
            .is_some_and(|v| skip_volume_names.contains(v))
    }) {
        fate.insert(kept.name.clone(), (Fate::Keep, None));
        for neighbour in arrays
            .iter()
            .filter(|a| a.name != kept.name && a.holders.iter().any(|h| kept.holders.contains(h)))
        {
            if fate.get(&neighbour.name).map(|f| f.0) == Some(Fate::Delete) {
                fate.insert(
                    neighbour.name.clone(),
                    (Fate::Wipe, kept.volume_name.clone()),
                );
            }
        }
    }
    for esp in arrays
        .iter()
        .filter(|a| a.volume_name.as_deref() == Some("esp"))
    {
        if let Some(f) = fate.get_mut(&esp.name) {
            if f.0 == Fate::Wipe {
                f.0 = Fate::Keep;
            }
        }
    }
    fate
}
