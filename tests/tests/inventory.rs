//! Black-box tests of the generic manager's inventory (IPA
//! `GenericHardwareManager.list_hardware_info`) on simulated machines, through
//! the host: every field Ironic reads is checked for name, type, unit and key
//! order.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use agent_tests::host::Host;
use agent_tests::sim_host_config;
use agent_tests::{managers_dir, workspace_root};
use ironic_sim::{MachineDescription, SimMachine};
use serde_json::{json, Value};

const GIB: u64 = 1 << 30;

struct Fixture {
    host: Host,
    sim: SimMachine,
    _root: tempfile::TempDir,
    _managers: tempfile::TempDir,
}

fn fixture(desc: &MachineDescription) -> Fixture {
    let managers = managers_dir(&[("generic_manager", "generic")]);
    let root = tempfile::tempdir().expect("machine dir");
    let sim = ironic_sim::create(desc, root.path()).expect("simulated machine");
    let host = Host::start(sim_host_config(managers.path(), &sim)).expect("host starts");
    Fixture {
        host,
        sim,
        _root: root,
        _managers: managers,
    }
}

fn default_machine() -> MachineDescription {
    MachineDescription::from_toml(ironic_sim::DEFAULT_MACHINE, Path::new("default.toml"))
        .expect("default machine")
}

fn nvme_machine() -> MachineDescription {
    MachineDescription::from_file(&workspace_root().join("tests/machines/nvme-uefi.toml"))
        .expect("nvme-uefi machine")
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

const INTERFACE_KEYS: [&str; 13] = [
    "name",
    "mac_address",
    "ipv4_address",
    "ipv6_address",
    "has_carrier",
    "lldp",
    "vendor",
    "product",
    "client_id",
    "biosdevname",
    "speed_mbps",
    "pci_address",
    "driver",
];

const DISK_KEYS: [&str; 14] = [
    "name",
    "model",
    "size",
    "rotational",
    "wwn",
    "serial",
    "vendor",
    "wwn_with_extension",
    "wwn_vendor_extension",
    "hctl",
    "by_path",
    "logical_sectors",
    "physical_sectors",
    "tran",
];

/// Disk files keep their size and have no data written.
fn assert_disks_untouched(sim: &SimMachine) {
    for disk in &sim.description.disks {
        let meta = std::fs::metadata(sim.disk_path(&disk.name)).expect("disk file");
        assert_eq!(meta.len(), disk.size.0, "{} size", disk.name);
        assert!(
            meta.blocks() <= 8,
            "{} has data blocks: {}",
            disk.name,
            meta.blocks()
        );
    }
}

#[test]
fn default_machine_inventory() {
    let f = fixture(&default_machine());
    let inv = f.host.inventory(false).expect("inventory");
    eprintln!("{inv:#}");

    assert_eq!(
        keys(&inv),
        [
            "interfaces",
            "cpu",
            "disks",
            "memory",
            "bmc_address",
            "bmc_v6address",
            "system_vendor",
            "boot",
            "hostname",
            "bmc_mac"
        ]
    );

    // Interfaces: physical NICs only (`lo` has no device), in sysfs order.
    let interfaces = inv["interfaces"].as_array().expect("interfaces array");
    for i in interfaces {
        assert_eq!(keys(i), INTERFACE_KEYS);
    }
    assert_eq!(
        interfaces[0],
        json!({
            "name": "eno1",
            "mac_address": "b4:96:91:aa:bb:01",
            "ipv4_address": "192.0.2.10",
            "ipv6_address": "fe80::b696:91ff:feaa:bb01%eno1",
            "has_carrier": true,
            "lldp": null,
            "vendor": "0x8086",
            "product": "0x1521",
            "client_id": null,
            "biosdevname": null,
            "speed_mbps": 1000,
            "pci_address": "0000:04:00.0",
            "driver": "igb"
        })
    );
    assert_eq!(
        interfaces[1],
        json!({
            "name": "eno2",
            "mac_address": "b4:96:91:aa:bb:02",
            "ipv4_address": null,
            "ipv6_address": null,
            "has_carrier": false,
            "lldp": null,
            "vendor": "0x8086",
            "product": "0x1521",
            "client_id": null,
            "biosdevname": null,
            // No link: the kernel reports speed -1.
            "speed_mbps": null,
            "pci_address": "0000:04:00.1",
            "driver": "igb"
        })
    );
    assert_eq!(interfaces.len(), 2, "lo must not be listed: {interfaces:?}");

    let cpu = &inv["cpu"];
    assert_eq!(
        keys(cpu),
        [
            "model_name",
            "frequency",
            "count",
            "architecture",
            "flags",
            "socket_count"
        ]
    );
    assert_eq!(cpu["model_name"], "Intel(R) Xeon(R) E-2378 CPU @ 2.60GHz");
    assert_eq!(cpu["frequency"], "4800.0000");
    assert_eq!(cpu["count"], 4);
    assert_eq!(cpu["architecture"], "x86_64");
    assert_eq!(cpu["socket_count"], 1);
    let flags = cpu["flags"].as_array().expect("flags list");
    assert_eq!(flags.len(), 52);
    assert!(flags.contains(&json!("vmx")) && flags.contains(&json!("sse4_2")));

    // Disks: bytes, sorted by major:minor, full udev/sysfs details.
    let disks = inv["disks"].as_array().expect("disks array");
    assert_eq!(disks.len(), 2);
    for d in disks {
        assert_eq!(keys(d), DISK_KEYS);
    }
    assert_eq!(
        disks[0],
        json!({
            "name": "/dev/sda",
            "model": "SAMSUNG MZ7L3480HCHQ-00A07",
            "size": 8 * GIB,
            "rotational": false,
            "wwn": "0x5002538f42612345",
            "serial": "S6LPNE0T612345",
            "vendor": "ATA",
            "wwn_with_extension": "0x5002538f42612345",
            "wwn_vendor_extension": null,
            "hctl": "0:0:0:0",
            "by_path": "/dev/disk/by-path/pci-0000:00:17.0-ata-1.0",
            "logical_sectors": 512,
            "physical_sectors": 4096,
            "tran": "sata"
        })
    );
    assert_eq!(disks[1]["name"], "/dev/sdb");
    assert_eq!(disks[1]["size"], 16 * GIB);
    assert_eq!(disks[1]["rotational"], true);
    assert_eq!(disks[1]["model"], "ST2000NM000B-2TD100");
    assert_eq!(disks[1]["serial"], "ZFL1ABCD");
    assert_eq!(disks[1]["hctl"], "1:0:0:0");
    assert_eq!(disks[1]["physical_sectors"], 512);
    assert_eq!(
        disks[1]["by_path"],
        "/dev/disk/by-path/pci-0000:00:17.0-ata-2.0"
    );

    // Memory: total in bytes (MemTotal), physical_mb from SMBIOS type 17.
    assert_eq!(keys(&inv["memory"]), ["total", "physical_mb"]);
    assert_eq!(inv["memory"]["total"], 1952u64 * 1024 * 1024);
    assert_eq!(inv["memory"]["physical_mb"], 2048);

    // BMC from the stand-in ipmitool (channel 1 only).
    assert_eq!(inv["bmc_address"], "192.0.2.100");
    assert_eq!(inv["bmc_v6address"], "::/0");
    assert_eq!(inv["bmc_mac"], "b4:96:91:aa:bb:03");

    assert_eq!(
        inv["system_vendor"],
        json!({
            "product_name": "PowerEdge R250 (SKU=0A6E;ModelName=PowerEdge R250)",
            "serial_number": "7XK2Q93",
            "manufacturer": "Dell Inc.",
            "firmware": {"vendor": "Dell Inc.", "version": "1.6.2", "build_date": "01/18/2024"}
        })
    );
    assert_eq!(
        keys(&inv["system_vendor"]),
        ["product_name", "serial_number", "manufacturer", "firmware"]
    );
    assert_eq!(
        inv["boot"],
        json!({"current_boot_mode": "bios", "pxe_interface": "01-b4-96-91-aa-bb-01"})
    );
    assert_eq!(keys(&inv["boot"]), ["current_boot_mode", "pxe_interface"]);
    assert_eq!(inv["hostname"], "sim-server");

    assert_disks_untouched(&f.sim);
}

#[test]
fn skip_bmc_detect_leaves_bmc_out() {
    let f = fixture(&default_machine());
    let inv = f.host.inventory(true).expect("inventory");
    assert_eq!(inv["bmc_address"], Value::Null);
    assert_eq!(inv["bmc_v6address"], Value::Null);
    assert!(inv.get("bmc_mac").is_none());
}

#[test]
fn nvme_uefi_machine_inventory() {
    let f = fixture(&nvme_machine());
    let inv = f.host.inventory(false).expect("inventory");

    // No IPMI device: both addresses null, no bmc_mac key.
    assert_eq!(inv["bmc_address"], Value::Null);
    assert_eq!(inv["bmc_v6address"], Value::Null);
    assert!(inv.get("bmc_mac").is_none(), "{inv}");

    assert_eq!(
        inv["boot"],
        json!({"current_boot_mode": "uefi", "pxe_interface": "01-3c-ec-ef-00-11-21"})
    );
    assert_eq!(inv["hostname"], "sim-nvme");

    let cpu = &inv["cpu"];
    assert_eq!(cpu["count"], 8);
    assert_eq!(cpu["socket_count"], 2);
    // 3729.4921 MHz → cpufreq 3729492 kHz → lscpu's 4 decimals.
    assert_eq!(cpu["frequency"], "3729.4920");
    assert_eq!(cpu["model_name"], "AMD EPYC 7313P 16-Core Processor");

    assert_eq!(inv["memory"]["total"], 7936u64 * 1024 * 1024);
    assert_eq!(inv["memory"]["physical_mb"], 8192);

    // lsblk order is major:minor: sda (8:0) before nvme0n1 (259:0). The
    // read-only disk is listed like any other.
    let disks = inv["disks"].as_array().expect("disks array");
    let names: Vec<&str> = disks
        .iter()
        .map(|d| d["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["/dev/sda", "/dev/nvme0n1"]);
    assert_eq!(disks[0]["size"], 6 * GIB);
    assert_eq!(disks[0]["tran"], "sata");
    assert_eq!(disks[0]["model"], "SATADOM-SL 3ME3");
    assert_eq!(
        disks[1],
        json!({
            "name": "/dev/nvme0n1",
            "model": "SAMSUNG MZQL2960HCJR-00A07",
            "size": 20 * GIB,
            "rotational": false,
            "wwn": "eui.36344630529004560025384500000001",
            "serial": "S64FNE0R900456",
            "vendor": null,
            "wwn_with_extension": null,
            "wwn_vendor_extension": null,
            "hctl": null,
            "by_path": "/dev/disk/by-path/pci-0000:02:00.0-nvme-1",
            "logical_sectors": 512,
            "physical_sectors": 512,
            "tran": "nvme"
        })
    );

    let interfaces = inv["interfaces"].as_array().expect("interfaces array");
    let names: Vec<&str> = interfaces
        .iter()
        .map(|i| i["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["enp1s0f0", "enp1s0f1"]);
    assert_eq!(interfaces[0]["ipv4_address"], "198.51.100.20");
    assert_eq!(interfaces[0]["ipv6_address"], "2001:db8::20");
    assert_eq!(interfaces[0]["speed_mbps"], 25000);
    assert_eq!(interfaces[0]["driver"], "mlx5_core");
    assert_eq!(interfaces[0]["vendor"], "0x15b3");
    assert_eq!(interfaces[1]["ipv6_address"], Value::Null);
    assert_eq!(interfaces[1]["pci_address"], "0000:01:00.1");

    assert_eq!(
        inv["system_vendor"]["product_name"], "AS -1114S-WN10RT",
        "no SKU: product name alone"
    );
    assert_disks_untouched(&f.sim);
}

#[test]
fn os_install_device_is_the_smallest_disk_of_4_gib() {
    // Default machine: sda 8 GiB < sdb 16 GiB.
    let f = fixture(&default_machine());
    assert_eq!(
        f.host.os_install_device(None).expect("install device"),
        "/dev/sda"
    );
    let node = json!({"uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123", "properties": {}, "instance_info": {}});
    assert_eq!(
        f.host
            .os_install_device(Some(&node))
            .expect("install device"),
        "/dev/sda"
    );

    // nvme-uefi: sda is 6 GiB (≥ 4 GiB) and smaller than the 20 GiB NVMe.
    let f = fixture(&nvme_machine());
    assert_eq!(
        f.host.os_install_device(None).expect("install device"),
        "/dev/sda"
    );
}

#[test]
fn no_disk_of_4_gib_is_device_not_found() {
    let text = ironic_sim::DEFAULT_MACHINE
        .replace("size = \"8GiB\"", "size = \"2GiB\"")
        .replace("size = \"16GiB\"", "size = \"3GiB\"");
    let desc =
        MachineDescription::from_toml(&text, Path::new("small.toml")).expect("small machine");
    let f = fixture(&desc);
    let err = f
        .host
        .os_install_device(None)
        .expect_err("no suitable disk");
    assert!(
        err.to_string().contains("No suitable device was found"),
        "{err}"
    );
}

#[test]
fn partitions_are_not_disks() {
    let text = ironic_sim::DEFAULT_MACHINE.replace(
        "transport = \"sata\"\n\n[[disks]]",
        "transport = \"sata\"\npartitions = [{ start = \"1MiB\", size = \"1GiB\" }]\n\n[[disks]]",
    );
    let desc = MachineDescription::from_toml(&text, Path::new("parts.toml")).expect("machine");
    assert_eq!(desc.disks[0].partitions.len(), 1);
    let f = fixture(&desc);
    let inv = f.host.inventory(true).expect("inventory");
    let names: Vec<&str> = inv["disks"]
        .as_array()
        .expect("disks")
        .iter()
        .map(|d| d["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["/dev/sda", "/dev/sdb"]);
}

/// IPA detects the BMC once per process: a later inventory must not run
/// `ipmitool` again (each detection is up to 33 runs of it).
#[test]
fn bmc_is_detected_once() {
    let f = fixture(&default_machine());
    let first = f.host.inventory(false).expect("inventory");
    assert_eq!(first["bmc_address"], "192.0.2.100");
    // From now on ipmitool fails; a fresh detection would find no BMC.
    let ipmitool = f.sim.bin_dir().join("ipmitool");
    std::fs::write(&ipmitool, "#!/bin/sh\necho broken >&2\nexit 1\n").expect("replace ipmitool");
    let second = f.host.inventory(false).expect("inventory");
    assert_eq!(second["bmc_address"], first["bmc_address"]);
    assert_eq!(second["bmc_mac"], first["bmc_mac"]);
}
