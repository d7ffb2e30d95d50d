//! Writing the hardware root. Layout and file formats follow a Linux 6.x
//! kernel with systemd-udev; comments name the real-world origin where it is
//! not obvious.
//!
//! Longer than most files here: one pass writes the whole hardware root; splitting it by subsystem
//! would hide the cross-links sysfs has (disks under their SCSI hosts, NICs under PCI devices).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::description::{
    letters_index, parse_nvme_name, BootMode, DiskDescription, MachineDescription, NicDescription,
    Transport,
};
use crate::storage::BlockNode;
use crate::{ipmitool, smbios, SimError, SIM_DIR};

/// Top-level entries `create` owns (and removes when rebuilding).
pub(crate) const TOP_LEVEL: [&str; 5] = ["sys", "proc", "run", "dev", SIM_DIR];

/// PCI functions of the disk controllers.
const AHCI_PCI: &str = "0000:00:17.0";
/// SAS HBAs sit on buses 0x18 + host.
const SAS_HBA_BUS: u32 = 0x18;
const XHCI_PCI: &str = "0000:00:14.0";

/// Writes files, directories and relative links under the root.
pub(crate) struct Tree<'a> {
    pub(crate) root: &'a Path,
}

impl Tree<'_> {
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }
    pub(crate) fn dir(&self, rel: &str) -> Result<(), SimError> {
        let path = self.path(rel);
        fs::create_dir_all(&path).map_err(|source| SimError::Io { path, source })
    }
    pub(crate) fn file(&self, rel: &str, contents: impl AsRef<[u8]>) -> Result<(), SimError> {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| SimError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        fs::write(&path, contents).map_err(|source| SimError::Io { path, source })
    }
    /// A sysfs attribute: its value plus the newline the kernel prints.
    pub(crate) fn attr(&self, rel: &str, value: impl std::fmt::Display) -> Result<(), SimError> {
        self.file(rel, format!("{value}\n"))
    }
    /// A symbolic link at `rel` whose target is stored as given (relative,
    /// like sysfs and udev links, so the tree works wherever the root is).
    pub(crate) fn link(&self, rel: &str, target: &str) -> Result<(), SimError> {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|source| SimError::Io {
                path: parent.to_path_buf(),
                source,
            })?;
        }
        std::os::unix::fs::symlink(target, &path).map_err(|source| SimError::Io { path, source })
    }
    /// Like [`Tree::link`], replacing a link of the same name: udev's
    /// `/dev/disk/by-id` links are claimed by the last device (two paths to
    /// one LUN share their WWN and serial).
    pub(crate) fn link_replacing(&self, rel: &str, target: &str) -> Result<(), SimError> {
        let path = self.path(rel);
        if fs::symlink_metadata(&path).is_ok() {
            fs::remove_file(&path).map_err(|source| SimError::Io { path, source })?;
        }
        self.link(rel, target)
    }
    /// A link from `from` to `to` (both root-relative absolute paths),
    /// stored as the relative path between them.
    pub(crate) fn rel_link(&self, from: &str, to: &str) -> Result<(), SimError> {
        self.link(from, &relative(from, to))
    }
}

/// The relative path from the directory containing `from` to `to`, spelled
/// as sysfs spells it: up to the common ancestor of the link's directory and
/// the target's parent, then down, so the target's own name is always the
/// last component (`device -> ../../../0000:04:00.0`, never `../..`).
pub(crate) fn relative(from: &str, to: &str) -> String {
    let from: Vec<&str> = from.split('/').filter(|s| !s.is_empty()).collect();
    let to: Vec<&str> = to.split('/').filter(|s| !s.is_empty()).collect();
    let base = &from[..from.len().saturating_sub(1)];
    let to_parent = &to[..to.len().saturating_sub(1)];
    let common = base
        .iter()
        .zip(to_parent)
        .take_while(|(a, b)| a == b)
        .count();
    let mut parts: Vec<&str> = vec![".."; base.len() - common];
    parts.extend(&to[common..]);
    parts.join("/")
}

pub(crate) fn build(desc: &MachineDescription, root: &Path) -> Result<(), SimError> {
    let t = Tree { root };
    write_proc(&t, desc)?;
    write_cpus(&t, desc)?;
    write_dmi(&t, desc)?;
    if desc.boot.mode == BootMode::Uefi {
        t.attr("/sys/firmware/efi/fw_platform_size", 64)?;
        t.dir("/sys/firmware/efi/efivars")?;
        t.dir("/sys/firmware/efi/runtime")?;
    }
    t.dir("/dev/disk/by-id")?;
    t.dir("/dev/disk/by-path")?;
    t.dir("/run/udev/data")?;
    let mut ctx = DiskContext::default();
    let mut nodes = HashMap::new();
    for (disk, address) in desc.disks.iter().zip(desc.scsi_addresses()) {
        write_disk(&t, &mut ctx, disk, address, &mut nodes)?;
    }
    crate::storage::build(&t, desc, &nodes)?;
    write_loopback(&t)?;
    for (i, nic) in desc.nics.iter().enumerate() {
        write_nic(&t, i, nic)?;
    }
    write_sim_files(&t, desc)
}

fn write_proc(t: &Tree, desc: &MachineDescription) -> Result<(), SimError> {
    let mut cmdline =
        String::from("BOOT_IMAGE=/vmlinuz root=/dev/ram0 ro console=tty0 console=ttyS0,115200n8");
    if let Some(pxe) = &desc.boot.pxe_interface {
        if let Some(nic) = desc.nics.iter().find(|n| &n.name == pxe) {
            // PXELINUX's form: ARP type 01, then the MAC with dashes.
            let _ = write!(
                cmdline,
                " BOOTIF=01-{}",
                nic.mac.to_lowercase().replace(':', "-")
            );
        }
    }
    if let Some(extra) = &desc.boot.cmdline {
        if !extra.trim().is_empty() {
            cmdline.push(' ');
            cmdline.push_str(extra.trim());
        }
    }
    t.attr("/proc/cmdline", cmdline)?;
    t.attr("/proc/sys/kernel/hostname", &desc.hostname)?;
    t.attr("/proc/sys/kernel/arch", &desc.cpu.architecture)?;
    t.attr("/proc/sys/kernel/ostype", "Linux")?;
    t.attr("/proc/sys/kernel/osrelease", "6.8.0-ironic-sim")?;

    let total_kb = desc.memory.total_mib * 1024;
    let free_kb = total_kb * 3 / 4;
    let meminfo = format!(
        "MemTotal:       {total_kb:>8} kB\n\
         MemFree:        {free_kb:>8} kB\n\
         MemAvailable:   {:>8} kB\n\
         Buffers:        {:>8} kB\n\
         Cached:         {:>8} kB\n\
         SwapCached:            0 kB\n\
         Active:         {:>8} kB\n\
         Inactive:       {:>8} kB\n\
         SwapTotal:             0 kB\n\
         SwapFree:              0 kB\n\
         Dirty:                 0 kB\n\
         Shmem:          {:>8} kB\n\
         HugePages_Total:       0\n\
         HugePages_Free:        0\n\
         Hugepagesize:       2048 kB\n",
        total_kb * 4 / 5,
        total_kb / 100,
        total_kb / 10,
        total_kb / 10,
        total_kb / 20,
        total_kb / 50,
    );
    t.file("/proc/meminfo", meminfo)
}

fn write_cpus(t: &Tree, desc: &MachineDescription) -> Result<(), SimError> {
    let cpu = &desc.cpu;
    let per_socket = cpu.count / cpu.sockets;
    let range = if cpu.count == 1 {
        "0".to_string()
    } else {
        format!("0-{}", cpu.count - 1)
    };
    let base = "/sys/devices/system/cpu";
    for file in ["possible", "present", "online"] {
        t.attr(&format!("{base}/{file}"), &range)?;
    }
    t.attr(&format!("{base}/kernel_max"), 8191)?;
    let flags = cpu.flags.join(" ");
    let mhz = cpu.max_mhz.unwrap_or(2000.0);
    let arm = cpu.architecture == "aarch64" || cpu.architecture.starts_with("arm");
    let mut cpuinfo = String::new();
    for n in 0..cpu.count {
        let socket = n / per_socket;
        let core = n % per_socket;
        let dir = format!("{base}/cpu{n}");
        if n > 0 {
            // The boot CPU cannot be offlined, so it has no `online` file.
            t.attr(&format!("{dir}/online"), 1)?;
        }
        t.attr(&format!("{dir}/topology/physical_package_id"), socket)?;
        t.attr(&format!("{dir}/topology/core_id"), core)?;
        t.attr(&format!("{dir}/topology/thread_siblings_list"), n)?;
        t.attr(&format!("{dir}/topology/core_cpus_list"), n)?;
        if let Some(max) = cpu.max_mhz {
            // cpufreq reports kHz.
            let khz = (max * 1000.0).round() as u64;
            t.attr(&format!("{dir}/cpufreq/cpuinfo_max_freq"), khz)?;
            t.attr(&format!("{dir}/cpufreq/cpuinfo_min_freq"), 800_000)?;
            t.attr(&format!("{dir}/cpufreq/scaling_cur_freq"), khz)?;
        }
        if arm {
            let _ = write!(
                cpuinfo,
                "processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: {flags}\n\
                 CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\n\
                 CPU part\t: 0xd0c\nCPU revision\t: 1\n\n"
            );
        } else {
            let _ = write!(
                cpuinfo,
                "processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 167\n\
                 model name\t: {model}\nstepping\t: 1\nmicrocode\t: 0x5d\ncpu MHz\t\t: {mhz:.3}\n\
                 cache size\t: 16384 KB\nphysical id\t: {socket}\nsiblings\t: {per_socket}\n\
                 core id\t\t: {core}\ncpu cores\t: {per_socket}\napicid\t\t: {n}\n\
                 initial apicid\t: {n}\nfpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: 27\n\
                 wp\t\t: yes\nflags\t\t: {flags}\nbogomips\t: {bogo:.2}\nclflush size\t: 64\n\
                 cache_alignment\t: 64\naddress sizes\t: 39 bits physical, 48 bits virtual\n\
                 power management:\n\n",
                model = cpu.model,
                bogo = mhz * 2.0,
            );
        }
    }
    t.file("/proc/cpuinfo", cpuinfo)
}

fn write_dmi(t: &Tree, desc: &MachineDescription) -> Result<(), SimError> {
    let dmi = &desc.dmi;
    let base = "/sys/devices/virtual/dmi/id";
    let sku = dmi.sku.clone().unwrap_or_default();
    for (file, value) in [
        ("sys_vendor", &dmi.manufacturer),
        ("product_name", &dmi.product),
        ("product_serial", &dmi.serial),
        ("product_sku", &sku),
        ("board_vendor", &dmi.manufacturer),
        ("chassis_vendor", &dmi.manufacturer),
        ("bios_vendor", &dmi.bios_vendor),
        ("bios_version", &dmi.bios_version),
        ("bios_date", &dmi.bios_date),
    ] {
        t.attr(&format!("{base}/{file}"), value)?;
    }
    t.rel_link("/sys/class/dmi/id", base)?;
    t.file(
        "/sys/firmware/dmi/tables/DMI",
        smbios::table(dmi, &desc.memory),
    )?;
    // The 64-bit entry point (SMBIOS 3.x) in front of the table.
    let mut entry = b"_SM3_".to_vec();
    entry.extend_from_slice(&[0, 0x18, 3, 4, 0, 1, 0]);
    entry.extend_from_slice(&[0; 4]);
    entry.extend_from_slice(&[0; 8]);
    t.file("/sys/firmware/dmi/tables/smbios_entry_point", entry)
}

/// Numbering and objects shared across disks.
#[derive(Default)]
struct DiskContext {
    next_nvme_minor: u32,
    pci_written: Vec<String>,
    /// SCSI hosts and NVMe controllers already written (disks may share them).
    scsi_hosts_written: HashSet<u32>,
    nvme_controllers_written: HashSet<u32>,
}

/// A PCI function directory with its driver link and the bus links.
fn write_pci_function(
    t: &Tree,
    ctx: &mut DiskContext,
    address: &str,
    vendor: &str,
    device: &str,
    class: &str,
    driver: &str,
) -> Result<String, SimError> {
    let dir = format!("/sys/devices/pci0000:00/{address}");
    if ctx.pci_written.iter().any(|a| a == address) {
        return Ok(dir);
    }
    ctx.pci_written.push(address.to_string());
    t.attr(&format!("{dir}/vendor"), vendor)?;
    t.attr(&format!("{dir}/device"), device)?;
    t.attr(&format!("{dir}/class"), class)?;
    t.attr(&format!("{dir}/revision"), "0x01")?;
    t.attr(&format!("{dir}/numa_node"), 0)?;
    let driver_dir = format!("/sys/bus/pci/drivers/{driver}");
    t.dir(&driver_dir)?;
    t.rel_link(&format!("{driver_dir}/{address}"), &dir)?;
    t.rel_link(&format!("{dir}/driver"), &driver_dir)?;
    t.rel_link(&format!("/sys/bus/pci/devices/{address}"), &dir)?;
    Ok(dir)
}

/// Model as `ID_MODEL_ENC` spells it: unsafe bytes (space, `\`) hex-escaped.
fn udev_enc(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            ' ' => out.push_str("\\x20"),
            '\\' => out.push_str("\\x5c"),
            '/' => out.push_str("\\x2f"),
            c => out.push(c),
        }
    }
    out
}

/// `ID_MODEL`-style: whitespace becomes `_`.
fn udev_safe(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join("_")
}

/// The PCI function of the SAS HBA behind SCSI host `host`: one HBA per
/// host, each on a bus of its own.
fn sas_hba_pci(host: u32) -> String {
    format!("0000:{:02x}:00.0", SAS_HBA_BUS + host)
}

fn write_disk(
    t: &Tree,
    ctx: &mut DiskContext,
    disk: &DiskDescription,
    address: Option<[u32; 4]>,
    nodes: &mut HashMap<String, BlockNode>,
) -> Result<(), SimError> {
    let transport = disk.transport();
    let name = disk.name.as_str();
    let model = disk
        .model
        .clone()
        .unwrap_or_else(|| default_model(transport).to_string());
    let vendor = disk
        .vendor
        .clone()
        .or_else(|| (transport == Transport::Sata).then(|| "ATA".to_string()));

    // Device numbers as the kernel assigns them: sd in 16-minor blocks on
    // majors 8, 65..71; virtio-blk on its dynamic major; NVMe on 259.
    let (major, minor) = match transport {
        Transport::Nvme => {
            let minor = ctx.next_nvme_minor;
            ctx.next_nvme_minor += 1;
            (259, minor)
        }
        Transport::Virtio => (252, letters_index(name, "vd").unwrap_or(0) * 16),
        _ => {
            let index = letters_index(name, "sd").unwrap_or(0);
            if index < 16 {
                (8, index * 16)
            } else {
                (65 + (index - 16) / 16, ((index - 16) % 16) * 16)
            }
        }
    };

    let mut udev = vec![
        "ID_TYPE=disk".to_string(),
        format!("ID_MODEL={}", udev_safe(&model)),
        format!("ID_MODEL_ENC={}", udev_enc(&model)),
    ];
    let serial = disk.serial.clone();
    let by_path: Option<String>;
    let mut block_dir;
    let sector_count = disk.size.0 / 512;

    if let Some([host, channel, target, lun]) = address.filter(|_| transport.is_scsi()) {
        let hctl = format!("{host}:{channel}:{target}:{lun}");
        let (host_parent, proc_name, host_class) = match transport {
            Transport::Sata => {
                let pci =
                    write_pci_function(t, ctx, AHCI_PCI, "0x8086", "0xa352", "0x010601", "ahci")?;
                let port = host + 1;
                // udev's path_id: ata-<port>.<device on the port>.
                by_path = Some(format!("pci-{AHCI_PCI}-ata-{port}.{target}"));
                (format!("{pci}/ata{port}"), "ahci", None)
            }
            Transport::Sas => {
                let hba = sas_hba_pci(host);
                let pci =
                    write_pci_function(t, ctx, &hba, "0x1000", "0x0097", "0x010700", "mpt3sas")?;
                by_path = Some(format!("pci-{hba}-sas-phy{target}-lun-{lun}"));
                (pci, "mpt3sas", Some("sas_host"))
            }
            _ => {
                let pci = write_pci_function(
                    t, ctx, XHCI_PCI, "0x8086", "0xa36d", "0x0c0330", "xhci_hcd",
                )?;
                let port = host + 1;
                by_path = Some(format!(
                    "pci-{XHCI_PCI}-usb-0:{port}:1.0-scsi-0:0:{target}:{lun}"
                ));
                (
                    format!("{pci}/usb2/2-{port}/2-{port}:1.0"),
                    "usb-storage",
                    None,
                )
            }
        };
        let host_dir = format!("{host_parent}/host{host}");
        // Disks may share a host: its objects are written once.
        if ctx.scsi_hosts_written.insert(host) {
            t.attr(
                &format!("{host_dir}/scsi_host/host{host}/proc_name"),
                proc_name,
            )?;
            t.rel_link(
                &format!("/sys/class/scsi_host/host{host}"),
                &format!("{host_dir}/scsi_host/host{host}"),
            )?;
            if let Some(class) = host_class {
                t.dir(&format!("{host_dir}/{class}/host{host}"))?;
                t.rel_link(
                    &format!("/sys/class/{class}/host{host}"),
                    &format!("{host_dir}/{class}/host{host}"),
                )?;
            }
        }
        let sdev = if transport == Transport::Sas {
            // One end device (and port) per target on the host's HBA.
            format!("{host_dir}/port-{host}:{target}/end_device-{host}:{target}/target{host}:{channel}:{target}/{hctl}")
        } else {
            format!("{host_dir}/target{host}:{channel}:{target}/{hctl}")
        };
        // SCSI INQUIRY strings: vendor 8 and model 16 characters, space padded
        // (so long ATA models are cut; udev keeps the full one).
        let vendor_field = vendor.clone().unwrap_or_default();
        t.attr(&format!("{sdev}/vendor"), format!("{:<8.8}", vendor_field))?;
        t.attr(&format!("{sdev}/model"), format!("{:<16.16}", model))?;
        t.attr(&format!("{sdev}/rev"), "1B6Q")?;
        t.attr(&format!("{sdev}/type"), 0)?;
        t.attr(&format!("{sdev}/state"), "running")?;
        t.attr(&format!("{sdev}/queue_depth"), 32)?;
        if let Some(wwn) = &disk.wwn {
            t.attr(&format!("{sdev}/wwid"), sysfs_wwid(wwn))?;
        }
        t.dir(&format!("{sdev}/scsi_device/{hctl}"))?;
        t.rel_link(&format!("{sdev}/scsi_device/{hctl}/device"), &sdev)?;
        t.rel_link(
            &format!("/sys/class/scsi_device/{hctl}"),
            &format!("{sdev}/scsi_device/{hctl}"),
        )?;
        block_dir = format!("{sdev}/block/{name}");
        t.rel_link(&format!("{block_dir}/device"), &sdev)?;
        let bus = match transport {
            Transport::Usb => "usb",
            Transport::Sata => "ata",
            _ => "scsi",
        };
        udev.push(format!("ID_BUS={bus}"));
        if transport == Transport::Sata {
            udev.push("ID_ATA=1".into());
        }
        if let Some(serial) = &serial {
            let long = match transport {
                Transport::Usb => format!(
                    "{}_{}_{}-0:0",
                    udev_safe(vendor_field.as_str()),
                    udev_safe(&model),
                    serial
                ),
                _ => format!("{}_{}", udev_safe(&model), serial),
            };
            udev.push(format!("ID_SERIAL={long}"));
            udev.push(format!("ID_SERIAL_SHORT={serial}"));
            if transport == Transport::Sas {
                udev.push(format!("ID_SCSI_SERIAL={serial}"));
            }
        }
    } else if transport == Transport::Nvme {
        let (ctrl, nsid) = parse_nvme_name(name).unwrap_or((0, 1));
        let pci_addr = format!("0000:{:02x}:00.0", 2 + ctrl);
        let pci = write_pci_function(t, ctx, &pci_addr, "0x144d", "0xa80a", "0x010802", "nvme")?;
        let ctrl_dir = format!("{pci}/nvme/nvme{ctrl}");
        // Namespaces of one controller share it: written once, by the first.
        if ctx.nvme_controllers_written.insert(ctrl) {
            t.attr(&format!("{ctrl_dir}/model"), format!("{model:<40.40}"))?;
            t.attr(
                &format!("{ctrl_dir}/serial"),
                format!("{:<20}", serial.clone().unwrap_or_default()),
            )?;
            t.attr(&format!("{ctrl_dir}/firmware_rev"), "GDC7102Q")?;
            t.attr(&format!("{ctrl_dir}/transport"), "pcie")?;
            t.attr(&format!("{ctrl_dir}/address"), &pci_addr)?;
            t.attr(&format!("{ctrl_dir}/state"), "live")?;
            t.rel_link(&format!("{ctrl_dir}/device"), &pci)?;
            t.rel_link(&format!("/sys/class/nvme/nvme{ctrl}"), &ctrl_dir)?;
        }
        block_dir = format!("{ctrl_dir}/{name}");
        t.rel_link(&format!("{block_dir}/device"), &ctrl_dir)?;
        t.attr(&format!("{block_dir}/nsid"), nsid)?;
        if let Some(wwn) = &disk.wwn {
            t.attr(&format!("{block_dir}/wwid"), wwn)?;
        }
        by_path = Some(format!("pci-{pci_addr}-nvme-{nsid}"));
        if let Some(serial) = &serial {
            udev.push(format!("ID_SERIAL={}_{}", udev_safe(&model), serial));
            udev.push(format!("ID_SERIAL_SHORT={serial}"));
        }
    } else {
        // virtio-blk: no SCSI address, no model; serial from the hypervisor.
        let index = letters_index(name, "vd").unwrap_or(0);
        let pci_addr = format!("0000:00:{:02x}.0", 4 + index);
        let pci = write_pci_function(
            t,
            ctx,
            &pci_addr,
            "0x1af4",
            "0x1001",
            "0x010000",
            "virtio-pci",
        )?;
        let virtio = format!("{pci}/virtio{index}");
        t.attr(&format!("{virtio}/vendor"), "0x1af4")?;
        t.attr(&format!("{virtio}/device"), "0x0002")?;
        block_dir = format!("{virtio}/block/{name}");
        t.rel_link(&format!("{block_dir}/device"), &virtio)?;
        if let Some(serial) = &serial {
            t.attr(&format!("{block_dir}/serial"), serial)?;
            udev.push(format!("ID_SERIAL={serial}"));
        }
        by_path = Some(format!("pci-{pci_addr}"));
        udev.retain(|l| !l.starts_with("ID_MODEL"));
    }
    if let Some(wwn) = &disk.wwn {
        udev.push(format!("ID_WWN={wwn}"));
        // udev's SCSI/ATA rules add the extended identifier; the NVMe rule
        // only copies `wwid` into ID_WWN.
        if transport.is_scsi() {
            udev.push(format!("ID_WWN_WITH_EXTENSION={wwn}"));
        }
    }

    // The block device itself.
    block_dir = block_dir.replace("//", "/");
    t.attr(&format!("{block_dir}/dev"), format!("{major}:{minor}"))?;
    t.attr(&format!("{block_dir}/size"), sector_count)?;
    t.attr(&format!("{block_dir}/ro"), u8::from(disk.read_only))?;
    t.attr(
        &format!("{block_dir}/removable"),
        u8::from(transport == Transport::Usb),
    )?;
    t.attr(&format!("{block_dir}/ext_range"), 256)?;
    t.attr(
        &format!("{block_dir}/uevent"),
        format!("MAJOR={major}\nMINOR={minor}\nDEVNAME={name}\nDEVTYPE=disk"),
    )?;
    let q = format!("{block_dir}/queue");
    t.attr(&format!("{q}/rotational"), u8::from(disk.rotational))?;
    t.attr(&format!("{q}/logical_block_size"), disk.logical_sector_size)?;
    t.attr(
        &format!("{q}/physical_block_size"),
        disk.physical_sector_size,
    )?;
    t.attr(&format!("{q}/hw_sector_size"), disk.logical_sector_size)?;
    t.attr(&format!("{q}/minimum_io_size"), disk.physical_sector_size)?;
    t.attr(&format!("{q}/optimal_io_size"), 0)?;
    t.attr(
        &format!("{q}/discard_granularity"),
        if disk.rotational {
            0
        } else {
            disk.physical_sector_size
        },
    )?;
    t.attr(
        &format!("{q}/discard_max_bytes"),
        if disk.rotational { 0 } else { 2_147_450_880u64 },
    )?;
    t.attr(&format!("{q}/write_zeroes_max_bytes"), 0)?;
    t.rel_link(&format!("/sys/block/{name}"), &block_dir)?;
    t.rel_link(&format!("/sys/class/block/{name}"), &block_dir)?;
    t.rel_link(&format!("/sys/dev/block/{major}:{minor}"), &block_dir)?;

    // udev's view: the database record and the /dev/disk links.
    let mut record = String::new();
    if let Some(path) = &by_path {
        let _ = writeln!(record, "S:disk/by-path/{path}");
        t.link(
            &format!("/dev/disk/by-path/{path}"),
            &format!("../../{name}"),
        )?;
        udev.push(format!("ID_PATH={path}"));
        udev.push(format!("ID_PATH_TAG={}", path.replace([':', '.'], "_")));
    }
    if let Some(wwn) = &disk.wwn {
        let id = format!("wwn-{wwn}");
        let _ = writeln!(record, "S:disk/by-id/{id}");
        t.link_replacing(&format!("/dev/disk/by-id/{id}"), &format!("../../{name}"))?;
    }
    if let Some(long) = udev.iter().find_map(|l| l.strip_prefix("ID_SERIAL=")) {
        let prefix = match transport {
            Transport::Nvme => "nvme",
            Transport::Sata => "ata",
            Transport::Usb => "usb",
            Transport::Sas => "scsi",
            Transport::Virtio => "virtio",
        };
        let id = format!("{prefix}-{long}");
        let _ = writeln!(record, "S:disk/by-id/{id}");
        t.link_replacing(&format!("/dev/disk/by-id/{id}"), &format!("../../{name}"))?;
    }
    record.push_str("I:1700000000\n");
    for line in &udev {
        let _ = writeln!(record, "E:{line}");
    }
    record.push_str("G:systemd\nQ:systemd\nV:1\n");
    t.file(&format!("/run/udev/data/b{major}:{minor}"), record)?;

    for (i, part) in disk.partitions.iter().enumerate() {
        let number = i + 1;
        let pname = crate::description::partition_name(name, number);
        let (pmajor, pminor) = if transport == Transport::Nvme {
            let minor = ctx.next_nvme_minor;
            ctx.next_nvme_minor += 1;
            (259, minor)
        } else {
            (major, minor + u32::try_from(number).unwrap_or(0))
        };
        let pdir = format!("{block_dir}/{pname}");
        nodes.insert(
            pname.clone(),
            BlockNode {
                dir: pdir.clone(),
                major: pmajor,
                minor: pminor,
                bytes: part.size.0,
                rotational: disk.rotational,
                logical: disk.logical_sector_size,
                physical: disk.physical_sector_size,
            },
        );
        t.attr(&format!("{pdir}/partition"), number)?;
        t.attr(&format!("{pdir}/start"), part.start.0 / 512)?;
        t.attr(&format!("{pdir}/size"), part.size.0 / 512)?;
        t.attr(&format!("{pdir}/ro"), u8::from(disk.read_only))?;
        t.attr(&format!("{pdir}/dev"), format!("{pmajor}:{pminor}"))?;
        t.attr(&format!("{pdir}/alignment_offset"), 0)?;
        t.attr(
            &format!("{pdir}/uevent"),
            format!("MAJOR={pmajor}\nMINOR={pminor}\nDEVNAME={pname}\nDEVTYPE=partition\nPARTN={number}"),
        )?;
        t.rel_link(&format!("/sys/class/block/{pname}"), &pdir)?;
        t.rel_link(&format!("/sys/dev/block/{pmajor}:{pminor}"), &pdir)?;
        let mut precord = String::new();
        if let Some(path) = &by_path {
            let link = format!("{path}-part{number}");
            let _ = writeln!(precord, "S:disk/by-path/{link}");
            t.link(
                &format!("/dev/disk/by-path/{link}"),
                &format!("../../{pname}"),
            )?;
        }
        precord.push_str("I:1700000000\nE:DEVTYPE=partition\n");
        let _ = writeln!(precord, "E:ID_PART_ENTRY_NUMBER={number}");
        let _ = writeln!(precord, "E:ID_PART_ENTRY_OFFSET={}", part.start.0 / 512);
        let _ = writeln!(precord, "E:ID_PART_ENTRY_SIZE={}", part.size.0 / 512);
        precord.push_str("G:systemd\nQ:systemd\nV:1\n");
        t.file(&format!("/run/udev/data/b{pmajor}:{pminor}"), precord)?;
    }

    nodes.insert(
        name.to_string(),
        BlockNode {
            dir: block_dir.clone(),
            major,
            minor,
            bytes: disk.size.0,
            rotational: disk.rotational,
            logical: disk.logical_sector_size,
            physical: disk.physical_sector_size,
        },
    );

    // The disk's contents: a sparse file of the full size. Only the length is
    // set; no data block is written.
    let dev = t.path(&format!("/dev/{name}"));
    let file = fs::File::create(&dev).map_err(|source| SimError::Io {
        path: dev.clone(),
        source,
    })?;
    file.set_len(disk.size.0).map_err(|source| SimError::Io {
        path: dev.clone(),
        source,
    })
}

/// The kernel's `wwid` attribute: NAA identifiers as `naa.<hex>`.
fn sysfs_wwid(wwn: &str) -> String {
    match wwn.strip_prefix("0x") {
        Some(hex) => format!("naa.{hex}"),
        None => wwn.to_string(),
    }
}

fn default_model(transport: Transport) -> &'static str {
    match transport {
        Transport::Sata => "QEMU HARDDISK",
        Transport::Sas => "ST600MM0009",
        Transport::Usb => "Flash Drive",
        Transport::Nvme => "QEMU NVMe Ctrl",
        Transport::Virtio => "",
    }
}

/// `lo`: virtual, no `device` link, so inventories must skip it.
fn write_loopback(t: &Tree) -> Result<(), SimError> {
    let dir = "/sys/devices/virtual/net/lo";
    t.attr(&format!("{dir}/address"), "00:00:00:00:00:00")?;
    t.attr(&format!("{dir}/carrier"), 1)?;
    t.attr(&format!("{dir}/operstate"), "unknown")?;
    t.attr(&format!("{dir}/type"), 772)?;
    t.attr(&format!("{dir}/ifindex"), 1)?;
    t.attr(&format!("{dir}/mtu"), 65536)?;
    t.rel_link("/sys/class/net/lo", dir)
}

fn write_nic(t: &Tree, index: usize, nic: &NicDescription) -> Result<(), SimError> {
    let pci_addr = nic
        .pci_address
        .clone()
        .unwrap_or_else(|| format!("0000:04:00.{}", index.min(7)));
    let mut ctx = DiskContext::default();
    let pci = write_pci_function(
        t,
        &mut ctx,
        &pci_addr,
        &nic.vendor,
        &nic.product,
        "0x020000",
        &nic.driver,
    )?;
    let dir = format!("{pci}/net/{}", nic.name);
    t.attr(&format!("{dir}/address"), nic.mac.to_lowercase())?;
    t.attr(&format!("{dir}/perm_addr"), nic.mac.to_lowercase())?;
    t.attr(&format!("{dir}/addr_len"), 6)?;
    t.attr(&format!("{dir}/type"), 1)?;
    t.attr(&format!("{dir}/ifindex"), index + 2)?;
    t.attr(&format!("{dir}/mtu"), 1500)?;
    t.attr(&format!("{dir}/carrier"), u8::from(nic.carrier))?;
    t.attr(
        &format!("{dir}/operstate"),
        if nic.carrier { "up" } else { "down" },
    )?;
    // The kernel reports -1 (unknown) while the link is down.
    let speed = if nic.carrier {
        i64::from(nic.speed_mbps)
    } else {
        -1
    };
    t.attr(&format!("{dir}/speed"), speed)?;
    t.attr(
        &format!("{dir}/duplex"),
        if nic.carrier { "full" } else { "unknown" },
    )?;
    t.rel_link(&format!("{dir}/device"), &pci)?;
    t.rel_link(&format!("/sys/class/net/{}", nic.name), &dir)
}

fn write_sim_files(t: &Tree, desc: &MachineDescription) -> Result<(), SimError> {
    // Addresses as the host's network-addresses capability returns them.
    let mut addresses = vec![
        serde_json::json!({"interface": "lo", "family": "ipv4", "address": "127.0.0.1"}),
        serde_json::json!({"interface": "lo", "family": "ipv6", "address": "::1"}),
    ];
    for nic in &desc.nics {
        if let Some(v4) = &nic.ipv4 {
            addresses
                .push(serde_json::json!({"interface": nic.name, "family": "ipv4", "address": v4}));
        }
        if let Some(v6) = &nic.ipv6 {
            let v6 = if v6.starts_with("fe80") && !v6.contains('%') {
                format!("{v6}%{}", nic.name)
            } else {
                v6.clone()
            };
            addresses
                .push(serde_json::json!({"interface": nic.name, "family": "ipv6", "address": v6}));
        }
    }
    let json =
        serde_json::to_string_pretty(&addresses).map_err(|e| SimError::Serialize(e.to_string()))?;
    t.file(&format!("/{SIM_DIR}/addresses.json"), json + "\n")?;
    t.dir(&format!("/{SIM_DIR}/bin"))?;
    // Deploy-path stand-ins (recorders): see `standins`.
    for program in crate::standins::PROGRAMS {
        let rel = format!("/{SIM_DIR}/bin/{program}");
        t.file(&rel, crate::standins::script(program))?;
        let path = t.path(&rel);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(|source| SimError::Io { path, source })?;
    }
    if let Some(bmc) = &desc.bmc {
        // The IPMI character device; a regular empty file stands in for it.
        t.file("/dev/ipmi0", "")?;
        let path = t.path(&format!("/{SIM_DIR}/bin/ipmitool"));
        t.file(&format!("/{SIM_DIR}/bin/ipmitool"), ipmitool::script(bmc))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
            .map_err(|source| SimError::Io { path, source })?;
    }
    // Written last: the marker says the tree is complete.
    t.file(&format!("/{SIM_DIR}/machine.toml"), desc.to_toml()?)
}

#[cfg(test)]
mod tests {
    use super::relative;

    #[test]
    fn relative_links_match_sysfs() {
        assert_eq!(
            relative("/sys/block/sda", "/sys/devices/pci0000:00/x/block/sda"),
            "../devices/pci0000:00/x/block/sda"
        );
        assert_eq!(
            relative("/sys/class/block/sda", "/sys/devices/y/sda"),
            "../../devices/y/sda"
        );
        assert_eq!(
            relative("/sys/devices/a/b/block/sda/device", "/sys/devices/a/b"),
            "../../../b"
        );
    }
}
