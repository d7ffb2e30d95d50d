//! UEFI boot entries on a simulated UEFI machine: the ESP created by the
//! partition layout, loaders found in place, and the exact `efibootmgr`
//! calls the machine's stand-in recorded.

use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use ironic_image::partition::{LayoutRequest, PartitionPlan};
use ironic_image::programs::ProgramRunner;
use ironic_sim::{BootMode, MachineDescription, SimMachine};

const MIB: u64 = 1 << 20;

fn uefi_machine(dir: &Path) -> SimMachine {
    let mut desc =
        MachineDescription::from_toml(ironic_sim::DEFAULT_MACHINE, Path::new("default.toml"))
            .expect("default machine");
    desc.boot.mode = BootMode::Uefi;
    ironic_sim::create(&desc, &dir.join("machine")).expect("sim create")
}

/// A FAT file system of `mib` MiB holding `files`, written at `offset`.
fn write_esp(disk: &Path, offset: u64, mib: u64, files: &[(&str, &[u8])]) {
    let tmp = tempfile::NamedTempFile::new().expect("tmp");
    tmp.as_file().set_len(mib * MIB).expect("len");
    let f = tmp.reopen().expect("reopen");
    fatfs::format_volume(&f, fatfs::FormatVolumeOptions::new()).expect("format");
    {
        let fs = fatfs::FileSystem::new(&f, fatfs::FsOptions::new()).expect("fs");
        for (path, data) in files {
            let (dir, _) = path.rsplit_once('/').expect("dir");
            let mut d = fs.root_dir();
            for part in dir.split('/') {
                d = d.create_dir(part).expect("mkdir");
            }
            fs.root_dir()
                .create_file(path)
                .expect("create")
                .write_all(data)
                .expect("write");
        }
    }
    let bytes = std::fs::read(tmp.path()).expect("read");
    std::fs::OpenOptions::new()
        .write(true)
        .open(disk)
        .expect("disk")
        .write_all_at(&bytes, offset)
        .expect("write esp");
}

#[test]
fn efibootmgr_gets_the_exact_arguments_and_duplicates_are_replaced() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = uefi_machine(dir.path());
    let disk = sim.disk_path("sda");
    let plan = PartitionPlan::new(&LayoutRequest {
        boot_mode: "uefi".into(),
        cpu_arch: "x86_64".into(),
        root_mb: 64,
        esp_mb: 34,
        ..Default::default()
    })
    .expect("plan");
    let layout = ironic_image::create_partition_table(&disk, &plan).expect("table");
    let esp = layout.get("efi system partition").expect("esp");
    let runner = ProgramRunner::stand_ins(sim.bin_dir(), sim.actions_file());

    // Freshly made ESP without a FAT: nothing to register.
    assert!(!ironic_image::efi::manage_uefi(&runner, "/dev/sda", &disk, None).expect("manage"));
    assert!(sim.recorded_calls("efibootmgr").is_empty());

    write_esp(
        &disk,
        esp.offset,
        34,
        &[
            ("EFI/BOOT/BOOTX64.EFI", b"MZ loader"),
            ("EFI/BOOT/README.txt", b"x"),
        ],
    );
    assert!(ironic_image::efi::manage_uefi(&runner, "/dev/sda", &disk, None).expect("manage"));
    let create = [
        "-v",
        "-c",
        "-d",
        "/dev/sda",
        "-p",
        "1",
        "-w",
        "-L",
        "ironic1",
        "-l",
        "\\EFI\\BOOT\\BOOTX64.EFI",
    ];
    assert_eq!(
        sim.recorded_calls("efibootmgr"),
        vec![
            vec!["-v".to_string()],
            create.iter().map(|s| s.to_string()).collect()
        ]
    );

    // Deploying again: the entry with the same label is deleted first.
    assert!(ironic_image::efi::manage_uefi(&runner, "/dev/sda", &disk, None).expect("again"));
    let calls = sim.recorded_calls("efibootmgr");
    assert_eq!(calls[2], ["-v"]);
    assert_eq!(calls[3], ["-b", "0001", "-B"]);
    assert_eq!(calls[4], create);
    let entries =
        std::fs::read_to_string(sim.root.join(".ironic-sim/efi-boot-entries")).expect("entries");
    assert_eq!(entries.lines().count(), 1, "no duplicate entry: {entries}");
}

#[test]
fn a_boot_csv_names_the_loader_and_the_label() {
    let dir = tempfile::tempdir().expect("tmp");
    let sim = uefi_machine(dir.path());
    let disk = sim.disk_path("sda");
    let plan = PartitionPlan::new(&LayoutRequest {
        boot_mode: "uefi".into(),
        cpu_arch: "x86_64".into(),
        root_mb: 64,
        esp_mb: 34,
        ..Default::default()
    })
    .expect("plan");
    let layout = ironic_image::create_partition_table(&disk, &plan).expect("table");
    let esp = layout.get("efi system partition").expect("esp");
    let mut csv = vec![0xFF, 0xFE];
    for u in "shimx64.efi,centos,,This is the boot entry for centos\n".encode_utf16() {
        csv.extend(u.to_le_bytes());
    }
    write_esp(
        &disk,
        esp.offset,
        34,
        &[
            ("EFI/centos/BOOTX64.CSV", &csv),
            ("EFI/centos/shimx64.efi", b"MZ"),
        ],
    );
    let runner = ProgramRunner::stand_ins(sim.bin_dir(), sim.actions_file());
    // Found through the ESP's PARTUUID as Ironic passes it.
    assert!(
        ironic_image::efi::manage_uefi(&runner, "/dev/sda", &disk, Some(&esp.part_uuid))
            .expect("manage")
    );
    let calls = sim.recorded_calls("efibootmgr");
    assert_eq!(
        calls.last().expect("create"),
        &[
            "-v",
            "-c",
            "-d",
            "/dev/sda",
            "-p",
            "1",
            "-w",
            "-L",
            "centos",
            "-l",
            "\\EFI\\centos\\shimx64.efi"
        ]
    );
}
