use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::*;

fn default_desc() -> MachineDescription {
    MachineDescription::from_toml(DEFAULT_MACHINE, Path::new("default.toml"))
        .expect("default machine parses")
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn link(root: &Path, rel: &str) -> String {
    fs::read_link(root.join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .to_string_lossy()
        .into_owned()
}

#[test]
fn shipped_machines_parse() {
    let desc = default_desc();
    assert_eq!(desc.disks.len(), 2);
    assert_eq!(desc.disks[0].size, ByteSize(8 << 30));
    assert!(desc.bmc.is_some());
    let nvme = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/machines/nvme-uefi.toml");
    let desc = MachineDescription::from_file(&nvme).expect("nvme-uefi parses");
    assert_eq!(desc.boot.mode, BootMode::Uefi);
    assert!(desc.bmc.is_none());
}

#[test]
fn block_devices_are_laid_out_like_sysfs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let machine = create(&default_desc(), root).expect("create");

    // /sys/block and /sys/class/block are relative links into /sys/devices.
    let target = link(root, "sys/block/sda");
    assert_eq!(
        target,
        "../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda"
    );
    assert!(link(root, "sys/class/block/sdb")
        .starts_with("../../devices/pci0000:00/0000:00:17.0/ata2/host1/"));
    assert_eq!(
        read(root, "sys/block/sda/size"),
        format!("{}\n", (8u64 << 30) / 512)
    );
    assert_eq!(read(root, "sys/block/sda/dev"), "8:0\n");
    assert_eq!(read(root, "sys/block/sdb/dev"), "8:16\n");
    assert_eq!(read(root, "sys/block/sda/queue/rotational"), "0\n");
    assert_eq!(read(root, "sys/block/sdb/queue/rotational"), "1\n");
    assert_eq!(
        read(root, "sys/block/sda/queue/physical_block_size"),
        "4096\n"
    );
    assert_eq!(read(root, "sys/block/sda/device/vendor"), "ATA     \n");
    // The SCSI model is cut to 16 characters as the INQUIRY data is.
    assert_eq!(
        read(root, "sys/block/sda/device/model"),
        "SAMSUNG MZ7L3480\n"
    );
    assert!(root
        .join("sys/block/sda/device/scsi_device/0:0:0:0")
        .is_dir());
    assert_eq!(read(root, "sys/class/scsi_host/host0/proc_name"), "ahci\n");

    // udev: database record and by-path link.
    let udev = read(root, "run/udev/data/b8:0");
    assert!(
        udev.contains("E:ID_SERIAL_SHORT=S6LPNE0T612345\n"),
        "{udev}"
    );
    assert!(udev.contains("E:ID_WWN=0x5002538f42612345\n"), "{udev}");
    assert!(
        udev.contains("E:ID_MODEL_ENC=SAMSUNG\\x20MZ7L3480HCHQ-00A07\n"),
        "{udev}"
    );
    assert!(
        udev.contains("E:ID_PATH=pci-0000:00:17.0-ata-1.0\n"),
        "{udev}"
    );
    assert_eq!(
        link(root, "dev/disk/by-path/pci-0000:00:17.0-ata-1.0"),
        "../../sda"
    );
    assert_eq!(machine.disk_path("/dev/sda"), root.join("dev/sda"));
}

#[test]
fn disks_are_sparse_files_of_the_full_size() {
    let dir = tempfile::tempdir().expect("tempdir");
    let machine = create(&default_desc(), dir.path()).expect("create");
    for (name, size) in [("sda", 8u64 << 30), ("sdb", 16u64 << 30)] {
        let meta = fs::metadata(machine.disk_path(name)).expect("disk file");
        assert_eq!(meta.len(), size, "{name}");
        // Allocated 512-byte blocks: nothing written.
        assert!(
            meta.blocks() <= 8,
            "{name} has {} blocks allocated",
            meta.blocks()
        );
    }
}

#[test]
fn nvme_readonly_uefi_machine() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/machines/nvme-uefi.toml");
    let desc = MachineDescription::from_file(&path).expect("parse");
    create(&desc, root).expect("create");
    assert!(root.join("sys/firmware/efi").is_dir());
    assert_eq!(
        link(root, "sys/block/nvme0n1"),
        "../devices/pci0000:00/0000:02:00.0/nvme/nvme0/nvme0n1"
    );
    assert_eq!(read(root, "sys/block/nvme0n1/dev"), "259:0\n");
    assert_eq!(
        read(root, "sys/block/nvme0n1/device/serial").trim(),
        "S64FNE0R900456"
    );
    assert!(!root.join("sys/block/nvme0n1/device/scsi_device").exists());
    assert_eq!(read(root, "sys/block/sda/ro"), "1\n");
    assert!(!root.join("dev/ipmi0").exists());
    assert!(!root.join(".ironic-sim/bin/ipmitool").exists());
    assert!(read(root, "proc/cmdline").contains(" BOOTIF=01-3c-ec-ef-00-11-21"));
    assert_eq!(
        read(
            root,
            "sys/devices/system/cpu/cpu7/topology/physical_package_id"
        ),
        "1\n"
    );
}

#[test]
fn cpu_memory_dmi_and_boot_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    create(&default_desc(), root).expect("create");
    let cmdline = read(root, "proc/cmdline");
    assert!(
        cmdline.contains(" BOOTIF=01-b4-96-91-aa-bb-01 ipa-insecure=1\n"),
        "{cmdline}"
    );
    assert!(
        read(root, "proc/meminfo").starts_with(&format!("MemTotal:       {:>8} kB\n", 1952 * 1024))
    );
    let cpuinfo = read(root, "proc/cpuinfo");
    assert_eq!(cpuinfo.matches("processor\t:").count(), 4);
    assert!(cpuinfo.contains("model name\t: Intel(R) Xeon(R) E-2378 CPU @ 2.60GHz\n"));
    assert_eq!(
        read(root, "sys/devices/system/cpu/cpu3/cpufreq/cpuinfo_max_freq"),
        "4800000\n"
    );
    assert_eq!(read(root, "sys/devices/system/cpu/present"), "0-3\n");
    assert_eq!(read(root, "sys/class/dmi/id/sys_vendor"), "Dell Inc.\n");
    assert_eq!(
        link(root, "sys/class/dmi/id"),
        "../../devices/virtual/dmi/id"
    );
    assert!(!root.join("sys/firmware/efi").exists());
    let dmi = fs::read(root.join("sys/firmware/dmi/tables/DMI")).expect("DMI table");
    assert_eq!(dmi[0], 0, "starts with the BIOS structure");
    assert_eq!(
        &dmi[dmi.len() - 6..],
        &[127, 4, 0xFF, 0xFE, 0, 0],
        "ends with type 127"
    );
}

#[test]
fn nics_loopback_addresses_and_bmc() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    create(&default_desc(), root).expect("create");
    assert_eq!(
        link(root, "sys/class/net/eno1"),
        "../../devices/pci0000:00/0000:04:00.0/net/eno1"
    );
    assert_eq!(
        read(root, "sys/class/net/eno1/address"),
        "b4:96:91:aa:bb:01\n"
    );
    assert_eq!(read(root, "sys/class/net/eno1/device/vendor"), "0x8086\n");
    assert_eq!(
        link(root, "sys/class/net/eno1/device/driver"),
        "../../../bus/pci/drivers/igb"
    );
    assert!(root.join("sys/class/net/eno1/device/driver").is_dir());
    assert_eq!(read(root, "sys/class/net/eno2/carrier"), "0\n");
    assert_eq!(read(root, "sys/class/net/eno2/speed"), "-1\n");
    assert!(root.join("sys/class/net/lo").exists());
    assert!(!root.join("sys/class/net/lo/device").exists());

    let addresses: serde_json::Value =
        serde_json::from_str(&read(root, ".ironic-sim/addresses.json")).expect("json");
    assert!(addresses.as_array().expect("array").contains(
        &serde_json::json!({"interface": "eno1", "family": "ipv4", "address": "192.0.2.10"})
    ));
    assert!(addresses.as_array().expect("array").contains(
        &serde_json::json!({"interface": "eno1", "family": "ipv6", "address": "fe80::b696:91ff:feaa:bb01%eno1"})
    ));

    assert!(root.join("dev/ipmi0").exists());
    let ipmitool = root.join(".ironic-sim/bin/ipmitool");
    // As the host runs it: empty environment, PATH = the program dirs only.
    let run = |args: &[&str]| {
        std::process::Command::new(&ipmitool)
            .args(args)
            .env_clear()
            .env("PATH", root.join(".ironic-sim/bin"))
            .env("LC_ALL", "C")
            .output()
            .expect("run ipmitool")
    };
    let out = run(&["lan", "print", "1"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("IP Address              : 192.0.2.100\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("MAC Address             : b4:96:91:aa:bb:03\n"),
        "{stdout}"
    );
    let out = run(&["lan", "print", "2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("Invalid channel"));
    let out = run(&["lan6", "print", "1", "enables"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "IPv6/IPv4 Addressing Enables: ipv4\n"
    );
}

#[test]
fn marker_and_recreate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    assert!(!SimMachine::is_simulated(root));
    create(&default_desc(), root).expect("create");
    assert!(SimMachine::is_simulated(root));
    let reopened = SimMachine::open(root).expect("open");
    assert_eq!(reopened.description, default_desc());
    // A sim machine can be rebuilt in place; user files stay.
    fs::write(root.join("notes.txt"), "mine").expect("write");
    create(&default_desc(), root).expect("recreate");
    assert_eq!(read(root, "notes.txt"), "mine");
}

#[test]
fn refuses_a_non_empty_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("precious"), "data").expect("write");
    let err = create(&default_desc(), dir.path()).expect_err("must refuse");
    assert!(matches!(err, SimError::NotEmpty(_)), "{err}");
    assert_eq!(read(dir.path(), "precious"), "data");
}

fn parse_err(text: &str) -> String {
    MachineDescription::from_toml(text, Path::new("/tmp/m.toml"))
        .expect_err("must fail")
        .to_string()
}

const MINIMAL: &str = r#"
hostname = "h"
[cpu]
model = "x"
count = 2
[memory]
total_mib = 1024
modules_mib = [1024]
"#;

#[test]
fn description_errors_name_file_and_key() {
    assert!(MachineDescription::from_toml(MINIMAL, Path::new("m.toml")).is_ok());

    let e = parse_err(&format!(
        "{MINIMAL}\n[[disks]]\nname = \"sda\"\nsize = \"8 parsecs\"\n"
    ));
    assert!(e.starts_with("/tmp/m.toml: disks[0].size: "), "{e}");
    assert!(e.contains("parsecs"), "{e}");

    let e = parse_err(&format!(
        "{MINIMAL}\n[[disks]]\nname = \"sda\"\nsize = 1000\n"
    ));
    assert!(e.starts_with("/tmp/m.toml: disks[0].size: "), "{e}");

    let e = parse_err(&format!(
        "{MINIMAL}\n[[nics]]\nname = \"eth0\"\nmac = \"aa:bb\"\n"
    ));
    assert!(e.starts_with("/tmp/m.toml: nics[0].mac: "), "{e}");

    let e = parse_err(&MINIMAL.replace("model = \"x\"", "model = \"x\"\ncolour = \"red\""));
    assert!(e.starts_with("/tmp/m.toml: cpu.colour: "), "{e}");
    assert!(e.contains("unknown field"), "{e}");

    let e = parse_err(&MINIMAL.replace("count = 2", "count = 3\nsockets = 2"));
    assert!(e.starts_with("/tmp/m.toml: cpu.sockets: "), "{e}");

    let e = parse_err(&format!("{MINIMAL}\n[boot]\npxe_interface = \"eth9\"\n"));
    assert!(e.starts_with("/tmp/m.toml: boot.pxe_interface: "), "{e}");

    let e = parse_err(&format!(
        "{MINIMAL}\n[[disks]]\nname = \"nvme0n1\"\nsize = 4096\nhctl = \"0:0:0:0\"\n"
    ));
    assert!(e.starts_with("/tmp/m.toml: disks[0].hctl: "), "{e}");

    let e = parse_err(&MINIMAL.replace("hostname = \"h\"\n", ""));
    assert!(e.contains("hostname"), "{e}");
}

#[test]
fn byte_sizes() {
    assert_eq!(ByteSize::parse("4096"), Ok(ByteSize(4096)));
    assert_eq!(ByteSize::parse("10GiB"), Ok(ByteSize(10 << 30)));
    assert_eq!(ByteSize::parse("500 MB"), Ok(ByteSize(500_000_000)));
    assert!(ByteSize::parse("1ZiB").is_err());
    assert!(ByteSize::parse("GiB").is_err());
}

#[test]
fn partitions_appear_in_sysfs_and_udev() {
    let text = DEFAULT_MACHINE.replace(
        "transport = \"sata\"\n\n[[disks]]",
        "transport = \"sata\"\npartitions = [{ start = \"1MiB\", size = \"512MiB\" }, { start = 537919488, size = \"1GiB\" }]\n\n[[disks]]",
    );
    let desc = MachineDescription::from_toml(&text, Path::new("parts.toml")).expect("parse");
    assert_eq!(desc.disks[0].partitions.len(), 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    create(&desc, root).expect("create");
    assert_eq!(read(root, "sys/block/sda/sda1/partition"), "1\n");
    assert_eq!(read(root, "sys/block/sda/sda1/start"), "2048\n");
    assert_eq!(
        read(root, "sys/class/block/sda2/size"),
        format!("{}\n", (1u64 << 30) / 512)
    );
    assert_eq!(read(root, "sys/class/block/sda2/dev"), "8:2\n");
    assert!(
        !root.join("sys/block/sda1").exists(),
        "/sys/block lists whole disks only"
    );
    assert_eq!(
        link(root, "dev/disk/by-path/pci-0000:00:17.0-ata-1.0-part1"),
        "../../sda1"
    );
    assert!(read(root, "run/udev/data/b8:1").contains("E:ID_PART_ENTRY_NUMBER=1\n"));
    assert_eq!(partition_name("nvme0n1", 2), "nvme0n1p2");

    let overlapping = DEFAULT_MACHINE.replace(
        "transport = \"sata\"\n\n[[disks]]",
        "transport = \"sata\"\npartitions = [{ start = \"1MiB\", size = \"1GiB\" }, { start = \"2MiB\", size = \"1MiB\" }]\n\n[[disks]]",
    );
    let e = MachineDescription::from_toml(&overlapping, Path::new("p.toml")).expect_err("overlap");
    assert!(
        e.to_string()
            .starts_with("p.toml: disks[0].partitions[1].start: "),
        "{e}"
    );
}
