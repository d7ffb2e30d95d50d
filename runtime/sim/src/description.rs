//! The machine description: a small TOML document saying what the simulated
//! machine has (CPUs, memory, DMI strings, disks, NICs, BMC).
//!
//! Every field is checked when the description is read, so [`crate::create`]
//! never builds a half-consistent tree. Errors name the file and the key
//! (`disks[1].size`).
//!
//! Longer than most files here: the description's types and their validation are one schema; each
//! check sits beside the field it checks so that an error names exactly the key.

use std::collections::HashSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::storage::{MdDescription, MultipathDescription};
use crate::SimError;

/// What a simulated machine has. Mirrors the TOML description
/// (`runtime/sim/machines/default.toml` is a commented example).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MachineDescription {
    /// `/proc/sys/kernel/hostname`.
    pub hostname: String,
    /// Boot mode, PXE NIC and extra kernel parameters.
    #[serde(default)]
    pub boot: BootDescription,
    pub cpu: CpuDescription,
    pub memory: MemoryDescription,
    #[serde(default)]
    pub dmi: DmiDescription,
    #[serde(default)]
    pub disks: Vec<DiskDescription>,
    #[serde(default)]
    pub nics: Vec<NicDescription>,
    /// An IPMI BMC: `/dev/ipmi0` plus a stand-in `ipmitool`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BmcDescription>,
    /// Assembled Linux software RAID arrays over the disks (`[[md]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub md: Vec<MdDescription>,
    /// dm-multipath maps over disks that are paths to one LUN (`[[multipath]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub multipath: Vec<MultipathDescription>,
}

/// Firmware boot mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BootMode {
    /// Legacy BIOS: no `/sys/firmware/efi`.
    #[default]
    Bios,
    /// UEFI: `/sys/firmware/efi` exists.
    Uefi,
}

/// How the machine booted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootDescription {
    #[serde(default)]
    pub mode: BootMode,
    /// Name of the NIC the machine PXE-booted from: `/proc/cmdline` gets
    /// `BOOTIF=01-<mac with dashes>` as PXELINUX writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pxe_interface: Option<String>,
    /// Extra kernel parameters appended to `/proc/cmdline` (e.g.
    /// `ipa-api-url=http://192.0.2.1:6385`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
}

/// Processors. All logical CPUs are identical.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuDescription {
    /// `model name` in `/proc/cpuinfo`.
    pub model: String,
    /// Logical CPUs.
    pub count: u32,
    /// Physical packages; `count` must be a multiple of it.
    #[serde(default = "one")]
    pub sockets: u32,
    /// Maximum frequency in MHz (`cpufreq/cpuinfo_max_freq`); absent like in
    /// most VMs when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_mhz: Option<f64>,
    /// `uname -m`: `x86_64`, `aarch64`, ...
    #[serde(default = "default_arch")]
    pub architecture: String,
    /// CPU feature flags (`flags` in `/proc/cpuinfo`).
    #[serde(default)]
    pub flags: Vec<String>,
}

/// RAM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemoryDescription {
    /// Kernel-visible RAM (`MemTotal` of `/proc/meminfo`), MiB.
    pub total_mib: u64,
    /// Installed memory modules, MiB each, one SMBIOS type-17 device per
    /// entry; `0` is an empty slot.
    pub modules_mib: Vec<u64>,
}

/// SMBIOS strings as `/sys/class/dmi/id` shows them. Absent strings are empty.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DmiDescription {
    pub manufacturer: String,
    pub product: String,
    pub serial: String,
    /// `product_sku`; lshw appends it to the product name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sku: Option<String>,
    pub bios_vendor: String,
    pub bios_version: String,
    /// `MM/DD/YYYY` as SMBIOS stores it.
    pub bios_date: String,
}

/// How a disk is attached; decides its sysfs path, hctl and `tran`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Sata,
    Sas,
    Usb,
    Nvme,
    Virtio,
}

impl Transport {
    /// SCSI-attached disks have an `H:C:T:L` address.
    pub fn is_scsi(self) -> bool {
        matches!(self, Transport::Sata | Transport::Sas | Transport::Usb)
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Transport::Sata => "sata",
            Transport::Sas => "sas",
            Transport::Usb => "usb",
            Transport::Nvme => "nvme",
            Transport::Virtio => "virtio",
        })
    }
}

/// A whole disk, backed by a sparse file `<root>/dev/<name>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskDescription {
    /// Kernel name: `sda`, `nvme0n1`, `vda`.
    pub name: String,
    /// Bytes, or a string with a unit: `"8GiB"`, `"500MB"`.
    pub size: ByteSize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// SCSI vendor (`device/vendor`); SATA disks default to `ATA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// `0x5002538f42612345` (SCSI/SATA) or `eui.…`/`nvme.…` (NVMe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
    #[serde(default)]
    pub rotational: bool,
    #[serde(default = "sector_512")]
    pub logical_sector_size: u32,
    #[serde(default = "sector_512")]
    pub physical_sector_size: u32,
    /// Defaults from the name: `nvme*` → nvme, `vd*` → virtio, `sd*` → sata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<Transport>,
    #[serde(default)]
    pub read_only: bool,
    /// `H:C:T:L` for SCSI disks (H at most [`MAX_SCSI_HOST`]); disks may
    /// share a host (one transport per host). When absent the disk gets a
    /// host of its own: one past the highest host of the disks before it,
    /// skipping hosts other disks name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hctl: Option<String>,
    /// Partitions as the kernel lists them (sysfs and udev only: no
    /// partition table is written to the disk file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partitions: Vec<PartitionDescription>,
}

/// A partition, numbered from 1 in description order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionDescription {
    /// Byte offset in the disk.
    pub start: ByteSize,
    /// Bytes.
    pub size: ByteSize,
}

/// Kernel name of partition `number` of `disk`: `sda1`, `nvme0n1p1`.
pub fn partition_name(disk: &str, number: usize) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

impl DiskDescription {
    /// The transport, explicit or derived from the name.
    pub fn transport(&self) -> Transport {
        self.transport.unwrap_or_else(|| {
            if self.name.starts_with("nvme") {
                Transport::Nvme
            } else if self.name.starts_with("vd") {
                Transport::Virtio
            } else {
                Transport::Sata
            }
        })
    }
}

/// A physical NIC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NicDescription {
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff` (stored lowercase).
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(default = "yes")]
    pub carrier: bool,
    /// Defaults to `0000:04:00.<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    /// PCI vendor id as sysfs prints it.
    #[serde(default = "default_nic_vendor")]
    pub vendor: String,
    /// PCI device id as sysfs prints it.
    #[serde(default = "default_nic_product")]
    pub product: String,
    #[serde(default = "default_nic_driver")]
    pub driver: String,
    /// Link speed in Mbit/s; sysfs shows `-1` while there is no carrier.
    #[serde(default = "default_speed")]
    pub speed_mbps: u32,
}

/// An IPMI BMC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BmcDescription {
    /// `0.0.0.0` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    pub mac: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    /// The LAN channel; the others answer "Invalid channel".
    #[serde(default = "one_u8")]
    pub channel: u8,
}

/// A size in bytes, written as an integer or as `"<n><unit>"` with units
/// B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// Parse `"10GiB"`, `"500 MB"`, `"4096"`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(split);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a size such as 4096, \"8GiB\" or \"500MB\""))?;
        let factor: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "TB" => 1_000_000_000_000,
            other => return Err(format!("unknown size unit {other:?} in {text:?}")),
        };
        number
            .checked_mul(factor)
            .map(ByteSize)
            .ok_or_else(|| format!("{text:?} is too large"))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // TOML integers are i64: larger sizes keep their exact value as a string.
        match i64::try_from(self.0) {
            Ok(n) => serializer.serialize_i64(n),
            Err(_) => serializer.serialize_str(&self.0.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(deserializer).map_err(|_| {
            serde::de::Error::custom("expected a size: an integer or a string such as \"8GiB\"")
        })? {
            Raw::Int(n) => u64::try_from(n)
                .map(ByteSize)
                .map_err(|_| serde::de::Error::custom(format!("size {n} is negative"))),
            Raw::Text(text) => ByteSize::parse(&text).map_err(serde::de::Error::custom),
        }
    }
}

fn one() -> u32 {
    1
}
fn one_u8() -> u8 {
    1
}
fn yes() -> bool {
    true
}
fn sector_512() -> u32 {
    512
}
fn default_arch() -> String {
    "x86_64".into()
}
fn default_nic_vendor() -> String {
    "0x8086".into()
}
fn default_nic_product() -> String {
    "0x1521".into()
}
fn default_nic_driver() -> String {
    "igb".into()
}
fn default_speed() -> u32 {
    1000
}

impl MachineDescription {
    /// Parse and check a description; `source` names the file in errors.
    pub fn from_toml(text: &str, source: &Path) -> Result<Self, SimError> {
        let deserializer = toml::Deserializer::new(text);
        let desc: MachineDescription =
            serde_path_to_error::deserialize(deserializer).map_err(|e| {
                let key = e.path().to_string();
                SimError::Description {
                    file: source.to_path_buf(),
                    key: if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    message: e.inner().message().trim().to_string(),
                }
            })?;
        desc.validate()
            .map_err(|(key, message)| SimError::Description {
                file: source.to_path_buf(),
                key,
                message,
            })?;
        Ok(desc)
    }

    /// The description as TOML (what `<root>/.ironic-sim/machine.toml` holds).
    pub fn to_toml(&self) -> Result<String, SimError> {
        toml::to_string(self).map_err(|e| SimError::Serialize(e.to_string()))
    }

    /// Consistency checks serde cannot express: `Err((key, message))`.
    fn validate(&self) -> Result<(), (String, String)> {
        let err = |key: &str, message: String| Err((key.to_string(), message));
        if self.hostname.trim().is_empty() || self.hostname.contains(char::is_whitespace) {
            return err("hostname", format!("{:?} is not a hostname", self.hostname));
        }
        let cpu = &self.cpu;
        if cpu.count == 0 {
            return err("cpu.count", "must be at least 1".into());
        }
        if cpu.sockets == 0 || !cpu.count.is_multiple_of(cpu.sockets) {
            return err(
                "cpu.sockets",
                format!("must be at least 1 and divide cpu.count ({})", cpu.count),
            );
        }
        if let Some(mhz) = cpu.max_mhz {
            if !(mhz.is_finite() && mhz > 0.0) {
                return err("cpu.max_mhz", format!("{mhz} is not a frequency"));
            }
        }
        if cpu.architecture.trim().is_empty() {
            return err("cpu.architecture", "must not be empty".into());
        }
        if let Some(i) = cpu
            .flags
            .iter()
            .position(|f| f.is_empty() || f.contains(char::is_whitespace))
        {
            return err(
                &format!("cpu.flags[{i}]"),
                format!("{:?} is not a flag", cpu.flags[i]),
            );
        }
        if self.memory.total_mib == 0 {
            return err("memory.total_mib", "must be at least 1".into());
        }
        if self
            .memory
            .modules_mib
            .iter()
            .any(|&m| m > u64::from(u32::MAX >> 1))
        {
            return err(
                "memory.modules_mib",
                "a module larger than SMBIOS can describe".into(),
            );
        }

        let mut names = HashSet::new();
        for (i, disk) in self.disks.iter().enumerate() {
            let key = |field: &str| format!("disks[{i}].{field}");
            let transport = disk.transport();
            let family_ok = match transport {
                Transport::Nvme => parse_nvme_name(&disk.name).is_some(),
                Transport::Virtio => letters_index(&disk.name, "vd").is_some(),
                _ => letters_index(&disk.name, "sd").is_some(),
            };
            if !family_ok {
                return err(
                    &key("name"),
                    format!(
                        "{:?} is not a kernel name for a {transport} disk (sdX for sata/sas/usb, nvmeXnY, vdX)",
                        disk.name
                    ),
                );
            }
            if !names.insert(disk.name.as_str()) {
                return err(&key("name"), format!("disk {} is listed twice", disk.name));
            }
            // The sd majors (8, 65-71) hold 256 disks; past them the kernel
            // moves to dynamic numbers this simulator does not model.
            let index = letters_index(&disk.name, "sd").or_else(|| letters_index(&disk.name, "vd"));
            if index.is_some_and(|i| i >= 256) {
                return err(
                    &key("name"),
                    format!(
                        "{}: at most 256 disks per family (sda … sdiv, vda … vdiv)",
                        disk.name
                    ),
                );
            }
            for (field, value) in [
                ("logical_sector_size", disk.logical_sector_size),
                ("physical_sector_size", disk.physical_sector_size),
            ] {
                if value < 512 || !value.is_power_of_two() {
                    return err(&key(field), format!("{value} is not a power of two ≥ 512"));
                }
            }
            if disk.physical_sector_size < disk.logical_sector_size {
                return err(
                    &key("physical_sector_size"),
                    "smaller than logical_sector_size".into(),
                );
            }
            let size = disk.size.0;
            if size == 0 || !size.is_multiple_of(u64::from(disk.logical_sector_size)) {
                return err(
                    &key("size"),
                    format!(
                        "{size} bytes is not a positive multiple of the {}-byte logical sector",
                        disk.logical_sector_size
                    ),
                );
            }
            match (&disk.hctl, transport.is_scsi()) {
                (Some(_), false) => {
                    return err(
                        &key("hctl"),
                        format!("a {transport} disk has no SCSI address"),
                    )
                }
                (Some(hctl), true) if parse_hctl(hctl).is_none() => {
                    return err(&key("hctl"), format!("{hctl:?} is not H:C:T:L"))
                }
                _ => {}
            }
            if disk.partitions.len() > 15 {
                return err(&key("partitions"), "at most 15 partitions per disk".into());
            }
            let mut end_of_previous = 0u64;
            for (j, part) in disk.partitions.iter().enumerate() {
                let pkey = |field: &str| format!("disks[{i}].partitions[{j}].{field}");
                let sector = u64::from(disk.logical_sector_size);
                for (field, value) in [("start", part.start.0), ("size", part.size.0)] {
                    if !value.is_multiple_of(sector) {
                        return err(
                            &pkey(field),
                            format!("{value} is not a multiple of the {sector}-byte sector"),
                        );
                    }
                }
                if part.size.0 == 0 || part.start.0 < end_of_previous || part.start.0 == 0 {
                    return err(&pkey("start"), "partitions must be non-empty, in order, after sector 0 and must not overlap".into());
                }
                end_of_previous = part.start.0.saturating_add(part.size.0);
                if end_of_previous > size {
                    return err(
                        &pkey("size"),
                        format!("the partition ends past the end of the {size}-byte disk"),
                    );
                }
            }
            for (field, value) in [
                ("model", &disk.model),
                ("vendor", &disk.vendor),
                ("serial", &disk.serial),
                ("wwn", &disk.wwn),
            ] {
                if let Some(v) = value {
                    if v.trim().is_empty() || v.contains(['\n', '\0']) {
                        return err(
                            &key(field),
                            format!("{v:?} must be a non-empty single line"),
                        );
                    }
                }
            }
        }

        self.validate_scsi_hosts()?;
        crate::storage::validate(self)?;

        let mut nic_names = HashSet::new();
        for (i, nic) in self.nics.iter().enumerate() {
            let key = |field: &str| format!("nics[{i}].{field}");
            if nic.name.is_empty()
                || nic.name == "lo"
                || nic.name.len() > 15
                || nic.name.contains(['/', ' ', ':'])
            {
                return err(
                    &key("name"),
                    format!("{:?} is not a usable interface name", nic.name),
                );
            }
            if !nic_names.insert(nic.name.as_str()) {
                return err(
                    &key("name"),
                    format!("interface {} is listed twice", nic.name),
                );
            }
            if !is_mac(&nic.mac) {
                return err(&key("mac"), format!("{:?} is not a MAC address", nic.mac));
            }
            check_ipv4(&nic.ipv4).map_err(|m| (key("ipv4"), m))?;
            check_ipv6(&nic.ipv6).map_err(|m| (key("ipv6"), m))?;
            if let Some(pci) = &nic.pci_address {
                if !is_pci_address(pci) {
                    return err(&key("pci_address"), format!("{pci:?} is not DDDD:BB:DD.F"));
                }
            }
            if nic.driver.is_empty() || nic.driver.contains('/') {
                return err(
                    &key("driver"),
                    format!("{:?} is not a driver name", nic.driver),
                );
            }
        }
        if let Some(pxe) = &self.boot.pxe_interface {
            if !nic_names.contains(pxe.as_str()) {
                return err(
                    "boot.pxe_interface",
                    format!("no NIC named {pxe:?} in nics"),
                );
            }
        }
        if let Some(line) = &self.boot.cmdline {
            if line.contains('\n') {
                return err("boot.cmdline", "must be a single line".into());
            }
        }
        if let Some(bmc) = &self.bmc {
            if !is_mac(&bmc.mac) {
                return err("bmc.mac", format!("{:?} is not a MAC address", bmc.mac));
            }
            check_ipv4(&bmc.ipv4).map_err(|m| ("bmc.ipv4".to_string(), m))?;
            check_ipv6(&bmc.ipv6).map_err(|m| ("bmc.ipv6".to_string(), m))?;
            if !(1..=11).contains(&bmc.channel) {
                return err(
                    "bmc.channel",
                    format!("{} is not a LAN channel 1..=11", bmc.channel),
                );
            }
        }
        Ok(())
    }

    /// The SCSI address of each disk (`None` for NVMe and virtio disks):
    /// the described `hctl`, else `H:0:0:0` with H one past the highest host
    /// of the disks before it, skipping hosts any disk names. The builder
    /// and the validator both use this, so what validates builds.
    pub(crate) fn scsi_addresses(&self) -> Vec<Option<[u32; 4]>> {
        let named: HashSet<u32> = self
            .disks
            .iter()
            .filter_map(|d| d.hctl.as_deref().and_then(parse_hctl))
            .map(|a| a[0])
            .collect();
        let mut next = 0u32;
        self.disks
            .iter()
            .map(|disk| {
                if !disk.transport().is_scsi() {
                    return None;
                }
                let address = match disk.hctl.as_deref().and_then(parse_hctl) {
                    Some(a) => a,
                    None => {
                        while named.contains(&next) {
                            next += 1;
                        }
                        [next, 0, 0, 0]
                    }
                };
                next = next.max(address[0] + 1);
                Some(address)
            })
            .collect()
    }

    /// SCSI addresses are unique; a host holds disks of one transport and
    /// host numbers stay small enough for a PCI bus per SAS host.
    fn validate_scsi_hosts(&self) -> Result<(), (String, String)> {
        let mut seen: std::collections::HashMap<[u32; 4], usize> = Default::default();
        let mut host_transport: std::collections::HashMap<u32, (Transport, usize)> =
            Default::default();
        for (i, address) in self.scsi_addresses().into_iter().enumerate() {
            let Some(address) = address else { continue };
            let key = format!("disks[{i}].hctl");
            let text = address.map(|n| n.to_string()).join(":");
            if address[0] > MAX_SCSI_HOST {
                return Err((
                    key,
                    format!("{text}: SCSI host numbers go up to {MAX_SCSI_HOST}"),
                ));
            }
            if let Some(other) = seen.insert(address, i) {
                return Err((
                    key,
                    format!(
                        "{text} is also the address of disks[{other}] ({})",
                        self.disks[other].name
                    ),
                ));
            }
            let transport = self.disks[i].transport();
            match host_transport.get(&address[0]) {
                Some((t, other)) if *t != transport => {
                    return Err((
                        key,
                        format!(
                            "SCSI host {} already holds {} disk disks[{other}] ({}); one transport per host",
                            address[0], t, self.disks[*other].name
                        ),
                    ))
                }
                Some(_) => {}
                None => {
                    host_transport.insert(address[0], (transport, i));
                }
            }
        }
        Ok(())
    }

    /// Where a description file came from, for error messages of callers
    /// that read it themselves.
    pub fn from_file(path: &Path) -> Result<Self, SimError> {
        let text = std::fs::read_to_string(path).map_err(|source| SimError::Io {
            path: PathBuf::from(path),
            source,
        })?;
        Self::from_toml(&text, path)
    }
}

fn check_ipv4(value: &Option<String>) -> Result<(), String> {
    match value {
        Some(v) if v.parse::<Ipv4Addr>().is_err() => Err(format!("{v:?} is not an IPv4 address")),
        _ => Ok(()),
    }
}

fn check_ipv6(value: &Option<String>) -> Result<(), String> {
    match value {
        // A link-local address may carry its `%scope`.
        Some(v)
            if v.split('%')
                .next()
                .unwrap_or(v)
                .parse::<Ipv6Addr>()
                .is_err() =>
        {
            Err(format!("{v:?} is not an IPv6 address"))
        }
        _ => Ok(()),
    }
}

/// `aa:bb:cc:dd:ee:ff`, either case.
pub(crate) fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `0000:04:00.0`.
pub(crate) fn is_pci_address(text: &str) -> bool {
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let mut parts = text.split(':');
    let (Some(domain), Some(bus), Some(rest), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let Some((dev, func)) = rest.split_once('.') else {
        return false;
    };
    hex(domain, 4)
        && hex(bus, 2)
        && hex(dev, 2)
        && func.len() == 1
        && func.chars().all(|c| ('0'..='7').contains(&c))
}

/// The highest SCSI host number a description may use (each SAS host gets a
/// PCI bus of its own above 0x18).
pub const MAX_SCSI_HOST: u32 = 200;

/// `H:C:T:L` → numbers.
pub(crate) fn parse_hctl(text: &str) -> Option<[u32; 4]> {
    let mut out = [0u32; 4];
    let mut parts = text.split(':');
    for slot in &mut out {
        *slot = parts.next()?.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// `sdab` with prefix `sd` → 27 (a=0 … z=25, aa=26).
pub(crate) fn letters_index(name: &str, prefix: &str) -> Option<u32> {
    let letters = name.strip_prefix(prefix)?;
    if letters.is_empty() || letters.len() > 3 || !letters.chars().all(|c| c.is_ascii_lowercase()) {
        return None;
    }
    let mut index: u32 = 0;
    for c in letters.chars() {
        index = index * 26 + (c as u32 - 'a' as u32 + 1);
    }
    Some(index - 1)
}

/// `nvme0n1` → (controller 0, namespace 1).
pub(crate) fn parse_nvme_name(name: &str) -> Option<(u32, u32)> {
    let rest = name.strip_prefix("nvme")?;
    let (ctrl, ns) = rest.split_once('n')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if !digits(ctrl) || !digits(ns) {
        return None;
    }
    let ns: u32 = ns.parse().ok()?;
    (ns >= 1).then_some((ctrl.parse().ok()?, ns))
}
