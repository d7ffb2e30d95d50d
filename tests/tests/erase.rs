//! Black-box tests of the erase steps (IPA `hardware.py` `erase_devices`,
//! `erase_devices_metadata`, `erase_devices_express`) of the generic
//! manager, run through the host on simulated machines.
//!
//! SAFETY: every disk here is a sparse file inside a temporary hardware
//! root. The only block devices touched are loop devices a test creates
//! itself over its own files (root + working `losetup` only), always
//! detached by a guard. `nvme`, `hdparm` and `smartctl` are the
//! stand-in script tests/fixtures/erase/stand-in.sh; the host's program
//! dirs hold only stand-ins, so no real tool can run against a real device.
//! A failing disk is made with the simulated machine's fault file
//! (`.ironic-sim/faults.toml`), which the host reads only for a hardware
//! root other than `/`.
//!
//! Longer than most files here: the erase tests share one rig (simulated machine, stand-in tools,
//! loop devices) and are grouped by step (metadata, full, secure erase, concurrency) in one file so
//! that one `cargo test --test erase` covers the steps Ironic runs at cleaning.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use agent_tests::host::Host;
use ironic_host::{Capabilities, Grants, HostConfig, StepKind};
use ironic_sim::{MachineDescription, SimMachine};
use serde_json::{json, Value};
use tempfile::TempDir;

const MIB: u64 = 1 << 20;

fn fixtures() -> PathBuf {
    agent_tests::workspace_root().join("tests/fixtures/erase")
}

/// A simulated machine, a host running the generic manager on it, and a
/// directory of stand-in programs with their behaviour files.
struct Rig {
    _tmp: TempDir,
    sim: SimMachine,
    bin: PathBuf,
    host: Host,
}

impl Rig {
    fn new(machine: &str) -> Rig {
        let tmp = tempfile::tempdir().expect("temp dir");
        let desc = MachineDescription::from_toml(machine, Path::new("erase-test.toml"))
            .expect("machine description");
        let sim = ironic_sim::create(&desc, &tmp.path().join("root")).expect("simulated machine");
        let managers = tmp.path().join("managers");
        fs::create_dir_all(&managers).expect("managers dir");
        fs::copy(
            agent_tests::guest_component("generic_manager"),
            managers.join("generic.wasm"),
        )
        .expect("copy generic.wasm");
        let bin = tmp.path().join("bin");
        fs::create_dir_all(&bin).expect("bin dir");
        for program in ["nvme", "hdparm", "smartctl"] {
            fs::copy(fixtures().join("stand-in.sh"), bin.join(program)).expect("install stand-in");
        }
        fs::write(bin.join("root"), sim.root.to_str().expect("utf-8 root")).expect("root file");
        // Grant exactly what the manifest declares, so these tests do not
        // depend on the built-in grants catching up with the manifest.
        let mut grants = Grants::builtin();
        let manifest = fs::read_to_string(
            agent_tests::workspace_root().join("managers/generic/manifest.toml"),
        )
        .expect("manifest");
        grants.grant(
            "generic",
            Capabilities::parse(&manifest, "manifest.toml").expect("manifest parses"),
        );
        let host = Host::start(HostConfig {
            cache_dir: Some(agent_tests::target_dir().join("erase-test-cache")),
            grants,
            program_dirs: vec![bin.clone(), sim.bin_dir()],
            ..agent_tests::sim_host_config(&managers, &sim)
        })
        .expect("host starts");
        Rig {
            _tmp: tmp,
            sim,
            bin,
            host,
        }
    }

    fn disk(&self, name: &str) -> PathBuf {
        self.sim.disk_path(name)
    }

    /// Make `<program> <key>` print a recorded output and/or exit with `rc`.
    fn respond(&self, program: &str, key: &str, output_fixture: Option<&str>, rc: i32) {
        if let Some(fixture) = output_fixture {
            fs::copy(
                fixtures().join(fixture),
                self.bin.join(format!("{program}.{key}.out")),
            )
            .expect("fixture");
        }
        fs::write(self.bin.join(format!("{program}.{key}.rc")), rc.to_string()).expect("rc file");
    }

    /// Invocations of the stand-ins, in order.
    fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.bin.join("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Run a step; returns the result (or the error text) and the progress messages.
    fn run(&self, kind: StepKind, step: &str, node: Value) -> (Result<Value, String>, Vec<String>) {
        let messages = Mutex::new(Vec::new());
        let result = self
            .host
            .execute_step(kind, step, &node, &json!([]), &json!({}), &|_, m| {
                messages.lock().expect("progress lock").push(m.to_string());
            });
        let messages = messages.into_inner().expect("progress lock");
        (result.map_err(|e| e.to_string()), messages)
    }

    /// Add a partition to the simulated sysfs (the simulator has no
    /// partitions yet): `/sys/class/block/<disk>/<part>/{partition,start,size,ro}`.
    fn add_partition(&self, disk: &str, number: u32, start_sector: u64, sectors: u64) {
        let part = if disk.ends_with(|c: char| c.is_ascii_digit()) {
            format!("{disk}p{number}")
        } else {
            format!("{disk}{number}")
        };
        let link = self.sim.root.join("sys/class/block").join(disk);
        let dir = fs::canonicalize(&link).expect("disk sysfs dir").join(&part);
        fs::create_dir_all(&dir).expect("partition dir");
        for (attr, value) in [
            ("partition", number.to_string()),
            ("start", start_sector.to_string()),
            ("size", sectors.to_string()),
            ("ro", "0".to_string()),
        ] {
            fs::write(dir.join(attr), format!("{value}\n")).expect("partition attr");
        }
        let target = fs::read_link(&link).expect("class link");
        std::os::unix::fs::symlink(
            target.join(&part),
            self.sim.root.join("sys/class/block").join(&part),
        )
        .expect("partition class link");
    }
}

/// The simulator's default machine with its disks replaced by `disks`:
/// (name, size, extra TOML lines).
fn machine(disks: &[(&str, &str, &str)]) -> String {
    let mut text = String::new();
    let mut in_disk = false;
    for line in ironic_sim::DEFAULT_MACHINE.lines() {
        if line.starts_with('[') {
            in_disk = line.trim() == "[[disks]]";
        }
        if !in_disk {
            text.push_str(line);
            text.push('\n');
        }
    }
    for (name, size, extra) in disks {
        text.push_str(&format!(
            "\n[[disks]]\nname = \"{name}\"\nsize = \"{size}\"\n{extra}\n"
        ));
    }
    text
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A tool the disk layouts are built with; `make setup` installs it.
fn require(tool: &str) {
    assert!(
        have(tool),
        "{tool} is not installed (`make setup` installs it)"
    );
}

fn sh(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    fs::File::open(path)
        .expect("open disk file")
        .read_exact_at(&mut buf, offset)
        .expect("read");
    buf
}

fn write_at(path: &Path, offset: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open disk file")
        .write_all_at(data, offset)
        .expect("write");
}

/// A recognisable, non-zero 1 MiB pattern.
fn marker(seed: u8) -> Vec<u8> {
    (0..MIB as usize)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

fn all_zero(path: &Path) -> bool {
    let mut file = fs::File::open(path).expect("open disk file");
    let mut buf = vec![0u8; 4 * MIB as usize];
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            return true;
        }
        if buf[..n].iter().any(|b| *b != 0) {
            return false;
        }
    }
}

/// Scatter markers over a disk so that "all zero" proves a full erase.
fn fill_markers(path: &Path, size: u64) {
    let mut offset = 0;
    while offset < size {
        write_at(path, offset, &marker((offset / MIB) as u8));
        offset += 7 * MIB;
    }
    write_at(path, size - MIB, &marker(0xee));
}

// ------------------------------------------------------------ listing

#[test]
fn steps_are_advertised_with_the_spec_fields() {
    let rig = Rig::new(&machine(&[("sda", "64MiB", "")]));
    let clean = rig
        .host
        .get_steps(StepKind::Clean, &json!({}), &json!([]))
        .expect("clean steps");
    let generic = clean
        .iter()
        .find(|m| m.id == "GenericHardwareManager")
        .expect("generic listed");
    let by_name = |name: &str| generic.steps.iter().find(|s| s["step"] == name).cloned();
    for (name, priority) in [
        ("erase_devices", 10),
        ("erase_devices_metadata", 99),
        ("erase_devices_express", 0),
        ("erase_pstore", 0),
    ] {
        assert_eq!(
            by_name(name),
            Some(
                json!({"step": name, "priority": priority, "interface": "deploy",
                        "reboot_requested": false, "abortable": true})
            ),
            "clean step {name}"
        );
    }
    let deploy = rig
        .host
        .get_steps(StepKind::Deploy, &json!({}), &json!([]))
        .expect("deploy steps");
    let generic = deploy
        .iter()
        .find(|m| m.id == "GenericHardwareManager")
        .expect("generic listed");
    let metadata: Vec<&Value> = generic
        .steps
        .iter()
        .filter(|s| s["step"] == "erase_devices_metadata")
        .collect();
    assert_eq!(
        metadata,
        vec![
            &json!({"step": "erase_devices_metadata", "priority": 0, "interface": "deploy",
                     "reboot_requested": false})
        ],
        "deploy step has no abortable key"
    );
    assert!(
        !generic.steps.iter().any(|s| s["step"] == "erase_devices"),
        "erase_devices is not a deploy step"
    );
    let (result, _) = rig.run(StepKind::Clean, "no_such_step", json!({}));
    assert!(result.is_err(), "unknown steps are not handled: {result:?}");
}

// ----------------------------------------------------------- metadata

const EXT4_MAGIC_OFFSET: u64 = 1080;

fn has_ext4_at(path: &Path, start: u64) -> bool {
    read_at(path, start + EXT4_MAGIC_OFFSET, 2) == [0x53, 0xEF]
}

fn has_gpt_header_at(path: &Path, offset: u64) -> bool {
    read_at(path, offset, 8) == b"EFI PART"
}

#[test]
fn metadata_erase_removes_gpt_and_signatures_and_keeps_data() {
    require("sgdisk");
    require("mkfs.ext4");
    let size = 256 * MIB;
    let rig = Rig::new(&machine(&[("sda", "256MiB", "")]));
    let disk = rig.disk("sda");
    let file = disk.to_str().expect("utf-8 path");
    // GPT with two partitions, ext4 in both, data markers in the middle.
    sh("sgdisk", &["-n", "1:2048:+64M", "-n", "2:0:+128M", file]);
    let (p1, p2) = (2048 * 512, (2048 + 64 * 2048) * 512);
    sh(
        "mkfs.ext4",
        &["-q", "-F", "-E", &format!("offset={p1}"), file, "64M"],
    );
    sh(
        "mkfs.ext4",
        &["-q", "-F", "-E", &format!("offset={p2}"), file, "128M"],
    );
    rig.add_partition("sda", 1, 2048, 64 * 2048);
    rig.add_partition("sda", 2, 2048 + 64 * 2048, 128 * 2048);
    let middle = [
        (p1 + 40 * MIB, marker(1)),
        (p2 + 60 * MIB, marker(2)),
        (220 * MIB, marker(3)),
    ];
    for (offset, data) in &middle {
        write_at(&disk, *offset, data);
    }
    assert!(
        has_gpt_header_at(&disk, 512) && has_gpt_header_at(&disk, size - 512),
        "setup: GPT present"
    );
    assert!(
        has_ext4_at(&disk, p1) && has_ext4_at(&disk, p2),
        "setup: ext4 present"
    );

    let (result, progress) = rig.run(
        StepKind::Clean,
        "erase_devices_metadata",
        json!({"uuid": "n1"}),
    );
    assert_eq!(result, Ok(Value::Null));
    assert!(!progress.is_empty(), "progress reported");

    assert!(!has_gpt_header_at(&disk, 512), "primary GPT header gone");
    assert!(
        !has_gpt_header_at(&disk, size - 512),
        "backup GPT header gone"
    );
    assert!(
        read_at(&disk, 0, 34 * 512).iter().all(|b| *b == 0),
        "PMBR + primary entries zeroed"
    );
    assert!(
        read_at(&disk, size - 33 * 512, 33 * 512)
            .iter()
            .all(|b| *b == 0),
        "backup entries zeroed"
    );
    assert!(
        !has_ext4_at(&disk, p1) && !has_ext4_at(&disk, p2),
        "filesystem signatures gone"
    );
    for (offset, data) in &middle {
        assert_eq!(
            &read_at(&disk, *offset, data.len()),
            data,
            "data at {offset} intact"
        );
    }
    require("wipefs");
    assert_eq!(
        sh("wipefs", &[file]).trim(),
        "",
        "wipefs finds no signature on the disk"
    );
    // Same step as a deploy step.
    let (result, _) = rig.run(
        StepKind::Deploy,
        "erase_devices_metadata",
        json!({"uuid": "n1"}),
    );
    assert_eq!(result, Ok(Value::Null));
}

/// A GPT made for a smaller disk keeps its backup in the middle of a larger
/// one; `sgdisk -Z` removes it through the primary header's pointer, and so
/// must we.
#[test]
fn metadata_erase_removes_a_backup_gpt_left_mid_disk() {
    require("sgdisk");
    let rig = Rig::new(&machine(&[("sda", "128MiB", "")]));
    let disk = rig.disk("sda");
    let image = rig.sim.root.join("image");
    fs::File::create(&image)
        .expect("image")
        .set_len(48 * MIB)
        .expect("size");
    sh(
        "sgdisk",
        &["-n", "1:2048:+20M", image.to_str().expect("utf-8")],
    );
    write_at(&disk, 0, &fs::read(&image).expect("read image"));
    assert!(
        has_gpt_header_at(&disk, 48 * MIB - 512),
        "setup: old backup header mid-disk"
    );
    write_at(&disk, 40 * MIB, &marker(9));

    let (result, _) = rig.run(StepKind::Clean, "erase_devices_metadata", json!({}));
    assert_eq!(result, Ok(Value::Null));
    assert!(
        !has_gpt_header_at(&disk, 48 * MIB - 512),
        "stale backup GPT header removed"
    );
    assert!(
        read_at(&disk, 48 * MIB - 33 * 512, 32 * 512)
            .iter()
            .all(|b| *b == 0),
        "stale backup entries removed"
    );
    assert_eq!(
        read_at(&disk, 40 * MIB, MIB as usize),
        marker(9),
        "data intact"
    );
}

fn write_fake_gpt(path: &Path) {
    let mut header = b"EFI PART".to_vec();
    header.resize(512, 0x42);
    write_at(path, 512, &header);
}

#[test]
fn metadata_erase_leaves_read_only_skipped_and_raid_member_disks_alone() {
    let rig = Rig::new(&machine(&[
        ("sda", "64MiB", ""),
        ("sdb", "64MiB", "read_only = true"),
        ("sdc", "64MiB", "serial = \"KEEPME01\""),
        ("sdd", "64MiB", ""),
        ("sde", "64MiB", ""),
    ]));
    for name in ["sda", "sdb", "sdc", "sdd", "sde"] {
        write_fake_gpt(&rig.disk(name));
    }
    // md 1.2 superblock magic at 4 KiB: a Linux RAID member.
    write_at(&rig.disk("sdd"), 4096, &0xa92b_4efc_u32.to_le_bytes());
    let node = json!({"properties": {"skip_block_devices": [{"serial": "keepme01"}, {"name": "/dev/sde"}]}});
    let (result, _) = rig.run(StepKind::Clean, "erase_devices_metadata", node);
    assert_eq!(result, Ok(Value::Null));
    assert!(!has_gpt_header_at(&rig.disk("sda"), 512), "sda wiped");
    assert!(
        has_gpt_header_at(&rig.disk("sdb"), 512),
        "read-only sdb untouched"
    );
    assert!(
        has_gpt_header_at(&rig.disk("sdc"), 512),
        "sdc (serial hint, case-insensitive) untouched"
    );
    assert!(
        has_gpt_header_at(&rig.disk("sdd"), 512),
        "RAID member sdd untouched"
    );
    assert!(
        has_gpt_header_at(&rig.disk("sde"), 512),
        "sde (name hint) untouched"
    );
}

/// Hints apply to partitions on their own; a skipped disk takes its
/// partitions with it (IPA would still wipe them: see steps/erase.rs); and
/// wiping a disk never reaches into a partition that is kept, even one
/// lying inside the disk's 8 MiB head zone.
#[test]
fn metadata_erase_honours_partition_hints_and_skipped_disks_keep_partitions() {
    let rig = Rig::new(&machine(&[("sda", "64MiB", ""), ("sdb", "64MiB", "")]));
    // sda1: 1-3 MiB, sda2: 3-19 MiB.
    for disk in ["sda", "sdb"] {
        write_fake_gpt(&rig.disk(disk));
        rig.add_partition(disk, 1, 2048, 2 * 2048);
        rig.add_partition(disk, 2, 3 * 2048, 16 * 2048);
        for start in [MIB, 3 * MIB] {
            write_at(&rig.disk(disk), start + EXT4_MAGIC_OFFSET, &[0x53, 0xEF]);
        }
    }
    write_at(&rig.disk("sda"), 5 * MIB, &marker(7));
    let node = json!({"properties": {"skip_block_devices": [{"name": "/dev/sda2"}, {"name": "/dev/sdb"}]}});
    let (result, _) = rig.run(StepKind::Clean, "erase_devices_metadata", node);
    assert_eq!(result, Ok(Value::Null));
    let sda = rig.disk("sda");
    assert!(!has_ext4_at(&sda, MIB), "sda1 wiped");
    assert!(has_ext4_at(&sda, 3 * MIB), "sda2 (name hint) kept");
    assert_eq!(
        read_at(&sda, 5 * MIB, MIB as usize),
        marker(7),
        "sda2's data kept"
    );
    assert!(!has_gpt_header_at(&sda, 512), "sda's own table wiped");
    assert!(
        read_at(&sda, 0, MIB as usize).iter().all(|b| *b == 0),
        "sda's area before sda1 zeroed"
    );
    assert!(has_gpt_header_at(&rig.disk("sdb"), 512), "skipped sdb kept");
    assert!(
        has_ext4_at(&rig.disk("sdb"), MIB) && has_ext4_at(&rig.disk("sdb"), 3 * MIB),
        "sdb's partitions kept"
    );
}

#[test]
fn shared_filesystem_guard_aborts_unless_disabled() {
    require("sgdisk");
    let rig = Rig::new(&machine(&[("sda", "64MiB", "")]));
    let disk = rig.disk("sda");
    // VMFS partition type, written in lowercase as lsblk would print it.
    sh(
        "sgdisk",
        &[
            "-n",
            "1:2048:+20M",
            "-t",
            "1:aa31e02a-400f-11db-9590-000c2911d1b8",
            disk.to_str().expect("utf-8"),
        ],
    );
    rig.add_partition("sda", 1, 2048, 20 * 2048);
    let (result, _) = rig.run(StepKind::Clean, "erase_devices_metadata", json!({}));
    let err = result.expect_err("protected device aborts");
    assert!(
        err.contains("ProtectedDeviceError") && err.contains("VMFS"),
        "{err}"
    );
    assert!(has_gpt_header_at(&disk, 512), "nothing wiped");
    let (result, _) = rig.run(StepKind::Clean, "erase_devices", json!({}));
    assert!(result
        .expect_err("full erase aborts too")
        .contains("ProtectedDeviceError"));

    let node = json!({"driver_internal_info": {"wipe_special_filesystems": false}});
    let (result, _) = rig.run(StepKind::Clean, "erase_devices_metadata", node);
    assert_eq!(result, Ok(Value::Null));
    assert!(
        !has_gpt_header_at(&disk, 512),
        "wiped once the guard is off"
    );
}

// ---------------------------------------------------------- full erase

#[test]
fn full_erase_overwrites_and_zeroes_every_byte_when_no_secure_erase() {
    let size = 64 * MIB;
    let rig = Rig::new(&machine(&[("sda", "64MiB", ""), ("vda", "32MiB", "")]));
    fill_markers(&rig.disk("sda"), size);
    fill_markers(&rig.disk("vda"), 32 * MIB);
    rig.respond("hdparm", "I", Some("hdparm-I-not-supported.txt"), 0);
    let (result, progress) = rig.run(StepKind::Clean, "erase_devices", json!({}));
    assert_eq!(result, Ok(json!({"/dev/sda": null, "/dev/vda": null})));
    assert!(
        all_zero(&rig.disk("sda")) && all_zero(&rig.disk("vda")),
        "every byte zero"
    );
    assert!(
        progress
            .iter()
            .any(|m| m.contains("/dev/sda") && m.contains("random pass")),
        "{progress:?}"
    );
    assert!(
        progress.iter().any(|m| m.contains("zero pass")),
        "{progress:?}"
    );
    assert!(
        !rig.calls().iter().any(|c| c.contains("security-erase")),
        "no ATA erase attempted"
    );
}

#[test]
fn full_erase_with_no_zeroize_leaves_random_data() {
    let rig = Rig::new(&machine(&[("sda", "16MiB", "")]));
    let node = json!({"driver_internal_info": {"agent_erase_devices_zeroize": false,
                                               "agent_enable_ata_secure_erase": false}});
    let (result, _) = rig.run(StepKind::Clean, "erase_devices", node);
    assert_eq!(result, Ok(json!({"/dev/sda": null})));
    let data = read_at(&rig.disk("sda"), 0, 16 * MIB as usize);
    let zeros = data.iter().filter(|b| **b == 0).count();
    assert!(
        zeros < data.len() / 100,
        "random pass written, no zero pass ({zeros} zero bytes)"
    );
    assert!(
        rig.calls().is_empty(),
        "ATA secure erase disabled: hdparm never runs: {:?}",
        rig.calls()
    );
}

#[test]
fn nvme_format_is_used_with_crypto_or_user_data_erase() {
    for (fixture, mode) in [
        ("nvme-id-ctrl-crypto.json", "2"),
        ("nvme-id-ctrl-user-data.json", "1"),
    ] {
        let rig = Rig::new(&machine(&[("nvme0n1", "32MiB", "")]));
        fill_markers(&rig.disk("nvme0n1"), 32 * MIB);
        rig.respond("nvme", "id-ctrl", Some(fixture), 0);
        let (result, progress) = rig.run(StepKind::Clean, "erase_devices", json!({}));
        assert_eq!(result, Ok(json!({"/dev/nvme0n1": null})));
        assert_eq!(
            rig.calls(),
            vec![
                "nvme id-ctrl /dev/nvme0n1 -o json".to_string(),
                format!("nvme format /dev/nvme0n1 -s {mode} -f")
            ]
        );
        assert!(
            !progress.iter().any(|m| m.contains("random pass")),
            "no overwrite after format"
        );
        assert!(
            all_zero(&rig.disk("nvme0n1")),
            "format erased the namespace"
        );
    }
}

#[test]
fn nvme_failure_fails_without_fallback_and_overwrites_with_it() {
    let rig = Rig::new(&machine(&[("nvme0n1", "16MiB", ""), ("sda", "16MiB", "")]));
    rig.respond("nvme", "id-ctrl", Some("nvme-id-ctrl-no-format.json"), 0);
    rig.respond("hdparm", "I", Some("hdparm-I-not-supported.txt"), 0);
    fill_markers(&rig.disk("nvme0n1"), 16 * MIB);
    fill_markers(&rig.disk("sda"), 16 * MIB);

    // No fallback: the NVMe disk fails by name, the SATA disk is still erased.
    let (result, _) = rig.run(StepKind::Clean, "erase_devices", json!({}));
    let err = result.expect_err("no fallback → failure");
    assert!(
        err.contains("/dev/nvme0n1") && err.contains("fallback to shred is not enabled"),
        "{err}"
    );
    assert!(!err.contains("\"/dev/sda\""), "{err}");
    assert!(
        !all_zero(&rig.disk("nvme0n1")),
        "failed device not overwritten"
    );
    assert!(
        all_zero(&rig.disk("sda")),
        "the other device still finished"
    );

    // The legacy key counts only when the new one is absent.
    let node = json!({"driver_internal_info": {"agent_continue_if_secure_erase_failed": false,
                                               "agent_continue_if_ata_erase_failed": true}});
    assert!(rig.run(StepKind::Clean, "erase_devices", node).0.is_err());
    let node = json!({"driver_internal_info": {"agent_continue_if_ata_erase_failed": true}});
    assert_eq!(
        rig.run(StepKind::Clean, "erase_devices", node).0,
        Ok(json!({"/dev/nvme0n1": null, "/dev/sda": null}))
    );
    assert!(
        all_zero(&rig.disk("nvme0n1")),
        "fallback overwrote the NVMe disk"
    );

    // Format command failing, fallback via the current key.
    fill_markers(&rig.disk("nvme0n1"), 16 * MIB);
    rig.respond("nvme", "id-ctrl", Some("nvme-id-ctrl-crypto.json"), 0);
    rig.respond("nvme", "format", None, 1);
    let node = json!({"driver_internal_info": {"agent_continue_if_secure_erase_failed": true}});
    assert!(rig.run(StepKind::Clean, "erase_devices", node).0.is_ok());
    assert!(all_zero(&rig.disk("nvme0n1")));
    assert!(rig
        .calls()
        .iter()
        .any(|c| c == "nvme format /dev/nvme0n1 -s 2 -f"));
}

#[test]
fn ata_secure_erase_sets_a_password_and_erases() {
    for (fixture, option) in [
        ("hdparm-I-supported.txt", "--security-erase-enhanced"),
        ("hdparm-I-no-enhanced.txt", "--security-erase"),
    ] {
        let rig = Rig::new(&machine(&[("sda", "16MiB", "")]));
        fill_markers(&rig.disk("sda"), 16 * MIB);
        rig.respond("hdparm", "I", Some(fixture), 0);
        let (result, progress) = rig.run(StepKind::Clean, "erase_devices", json!({}));
        assert_eq!(result, Ok(json!({"/dev/sda": null})));
        let calls = rig.calls();
        let expected = [
            "hdparm -I /dev/sda".to_string(),
            "smartctl -d ata /dev/sda -g security".to_string(),
            "hdparm --user-master u --security-set-pass NULL /dev/sda".to_string(),
            format!("hdparm --user-master u {option} NULL /dev/sda"),
            "hdparm -I /dev/sda".to_string(),
        ];
        assert_eq!(calls, expected);
        assert!(
            !progress.iter().any(|m| m.contains("random pass")),
            "no overwrite after ATA erase"
        );
        assert!(all_zero(&rig.disk("sda")));
    }
}

#[test]
fn frozen_or_failing_ata_erase_follows_the_fallback_knob() {
    let rig = Rig::new(&machine(&[("sda", "16MiB", "")]));
    fill_markers(&rig.disk("sda"), 16 * MIB);
    rig.respond("hdparm", "I", Some("hdparm-I-frozen.txt"), 0);
    let err = rig
        .run(StepKind::Clean, "erase_devices", json!({}))
        .0
        .expect_err("frozen, no fallback");
    assert!(err.contains("/dev/sda") && err.contains("frozen"), "{err}");
    assert!(!all_zero(&rig.disk("sda")));

    rig.respond("hdparm", "I", Some("hdparm-I-supported.txt"), 0);
    rig.respond("hdparm", "security-erase-enhanced", None, 5);
    let node = json!({"driver_internal_info": {"agent_continue_if_secure_erase_failed": true}});
    assert_eq!(
        rig.run(StepKind::Clean, "erase_devices", node).0,
        Ok(json!({"/dev/sda": null}))
    );
    assert!(
        all_zero(&rig.disk("sda")),
        "overwritten after the failed security erase"
    );
}

#[test]
fn read_only_device_fails_by_name_or_is_skipped_and_others_finish() {
    let rig = Rig::new(&machine(&[
        ("sda", "16MiB", ""),
        ("sdb", "16MiB", "read_only = true"),
    ]));
    fill_markers(&rig.disk("sda"), 16 * MIB);
    fill_markers(&rig.disk("sdb"), 16 * MIB);
    let node = json!({"driver_internal_info": {"agent_enable_ata_secure_erase": false}});
    let err = rig
        .run(StepKind::Clean, "erase_devices", node)
        .0
        .expect_err("read-only fails");
    assert!(
        err.contains("BlockDeviceEraseError")
            && err.contains("/dev/sdb")
            && err.contains("read-only"),
        "{err}"
    );
    assert!(all_zero(&rig.disk("sda")), "sda still erased");
    assert!(!all_zero(&rig.disk("sdb")), "sdb untouched");

    fill_markers(&rig.disk("sda"), 16 * MIB);
    let node = json!({"driver_internal_info": {"agent_enable_ata_secure_erase": false,
                                               "agent_erase_skip_read_only": true}});
    assert_eq!(
        rig.run(StepKind::Clean, "erase_devices", node).0,
        Ok(json!({"/dev/sda": null, "/dev/sdb": null}))
    );
    assert!(all_zero(&rig.disk("sda")));
    assert!(
        !all_zero(&rig.disk("sdb")),
        "skipped read-only disk untouched"
    );
}

// ------------------------------------------------------------- express

#[test]
fn express_erase_formats_nvme_and_wipes_metadata_elsewhere() {
    let rig = Rig::new(&machine(&[("nvme0n1", "16MiB", ""), ("sda", "64MiB", "")]));
    rig.respond("nvme", "id-ctrl", Some("nvme-id-ctrl-crypto.json"), 0);
    fill_markers(&rig.disk("nvme0n1"), 16 * MIB);
    write_fake_gpt(&rig.disk("sda"));
    write_at(&rig.disk("sda"), 30 * MIB, &marker(5));
    let (result, _) = rig.run(StepKind::Clean, "erase_devices_express", json!({}));
    assert_eq!(result, Ok(Value::Null));
    assert!(all_zero(&rig.disk("nvme0n1")), "NVMe formatted");
    assert!(
        !has_gpt_header_at(&rig.disk("sda"), 512),
        "SATA metadata wiped"
    );
    assert_eq!(
        read_at(&rig.disk("sda"), 30 * MIB, MIB as usize),
        marker(5),
        "SATA data kept"
    );
    assert!(
        !rig.calls().iter().any(|c| c.starts_with("hdparm")),
        "express never uses ATA erase"
    );
}

// -------------------------------------------------------------- pstore

#[test]
fn erase_pstore_empties_the_pstore_mount() {
    let rig = Rig::new(&machine(&[("sda", "16MiB", "")]));
    let root = &rig.sim.root;
    let mounts = root.join("proc/mounts");
    let mut text = fs::read_to_string(&mounts).unwrap_or_default();
    text.push_str("pstore /sys/fs/pstore pstore rw,nosuid,nodev,noexec,relatime 0 0\n");
    fs::write(&mounts, text).expect("mounts");
    let pstore = root.join("sys/fs/pstore");
    fs::create_dir_all(&pstore).expect("pstore dir");
    fs::write(pstore.join("dmesg-efi-170000000001"), "oops").expect("entry");
    fs::write(pstore.join("dmesg-efi-170000000002"), "oops").expect("entry");
    let (result, _) = rig.run(StepKind::Clean, "erase_pstore", json!({}));
    assert_eq!(result, Ok(Value::Null));
    assert_eq!(
        fs::read_dir(&pstore).expect("pstore dir").count(),
        0,
        "pstore emptied"
    );
    assert!(rig.calls().is_empty(), "no program runs: {:?}", rig.calls());
}

// ------------------------------------------------------ loop devices

/// A loop device over a file in a temp dir, detached on drop.
struct Loop {
    dev: String,
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}

fn loop_device(file: &Path) -> Option<Loop> {
    // SAFETY: only as root, only over our own file; anything else skips.
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" || !have("losetup") {
        return None;
    }
    let out = Command::new("losetup")
        .args(["--find", "--show", file.to_str()?])
        .output()
        .ok()?;
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && dev.starts_with("/dev/loop")).then_some(Loop { dev })
}

/// The host opens `<root>/dev/<name>`; a block-device node there with the
/// loop device's numbers makes the simulated disk a real block device
/// (BLKZEROOUT path) while the root stays a temp dir.
fn replace_with_block_node(node: &Path, loopdev: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(loopdev) else {
        return false;
    };
    let rdev = meta.rdev();
    let (major, minor) = (
        (rdev >> 8) & 0xfff,
        (rdev & 0xff) | ((rdev >> 12) & 0xfff00),
    );
    let _ = fs::remove_file(node);
    Command::new("mknod")
        .args([
            node.to_str().unwrap_or_default(),
            "b",
            &major.to_string(),
            &minor.to_string(),
        ])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn full_erase_of_a_loop_block_device_zeroes_it() {
    let rig = Rig::new(&machine(&[("sda", "32MiB", "")]));
    let backing = rig.sim.root.join("loop-backing.img");
    fs::File::create(&backing)
        .expect("backing")
        .set_len(32 * MIB)
        .expect("size");
    fill_markers(&backing, 32 * MIB);
    let lo = loop_device(&backing).expect("a loop device over a file (needs root and losetup)");
    assert!(
        replace_with_block_node(&rig.disk("sda"), &lo.dev),
        "cannot create a block-device node (mknod needs root)"
    );
    write_fake_gpt(&rig.disk("sda"));
    let node = json!({"driver_internal_info": {"agent_enable_ata_secure_erase": false,
                                               "agent_erase_devices_iterations": 0}});
    let (result, _) = rig.run(StepKind::Clean, "erase_devices", node);
    assert_eq!(result, Ok(json!({"/dev/sda": null})));
    drop(lo);
    assert!(
        all_zero(&backing),
        "loop device's backing file zeroed through BLKZEROOUT"
    );
}

// ------------------------------------------------- failing mid-erase

/// Devices being overwritten in a combined progress message (the host shows
/// every device of an `erase-many` in one line: `/dev/sda: random pass 1/1
/// 40%; /dev/sdb: waiting; ...`).
fn in_flight(message: &str) -> usize {
    message
        .split("; ")
        .filter(|part| part.contains(" pass "))
        .count()
}

/// A device whose writes fail part-way, through the simulated machine's
/// fault file (no root needed): the step fails naming that device only, the
/// others are fully erased, with one device at a time or all at once.
#[test]
fn a_device_failing_mid_erase_fails_the_step_by_name_and_the_others_finish() {
    for concurrency in [1, 4] {
        let rig = Rig::new(&machine(&[
            ("sda", "16MiB", ""),
            ("sdb", "32MiB", ""),
            ("sdc", "16MiB", ""),
            ("sdd", "16MiB", ""),
        ]));
        for (name, size) in [("sda", 16), ("sdb", 32), ("sdc", 16), ("sdd", 16)] {
            fill_markers(&rig.disk(name), size * MIB);
        }
        fs::write(
            rig.sim.root.join(".ironic-sim/faults.toml"),
            "[[write-error]]\ndevice = \"/dev/sdb\"\nafter-bytes = 8388608\n",
        )
        .expect("faults file");
        let node = json!({"driver_internal_info": {"agent_enable_ata_secure_erase": false,
                                                   "disk_erasure_concurrency": concurrency}});
        let (result, progress) = rig.run(StepKind::Clean, "erase_devices", node);
        let err = result.expect_err("the failing disk fails the step");
        assert!(
            err.contains("BlockDeviceEraseError") && err.contains("\"/dev/sdb\""),
            "{err}"
        );
        assert!(
            err.contains("Unable to erase block device /dev/sdb") && err.contains("offset"),
            "{err}"
        );
        for other in ["sda", "sdc", "sdd"] {
            assert!(!err.contains(&format!("\"/dev/{other}\"")), "{err}");
            assert!(
                all_zero(&rig.disk(other)),
                "concurrency {concurrency}: {other} finished"
            );
        }
        assert_eq!(
            read_at(&rig.disk("sdb"), 31 * MIB, MIB as usize),
            marker(0xee),
            "nothing written past the fault"
        );
        assert!(
            progress.iter().any(|m| m.contains("/dev/sdb failed")),
            "{progress:?}"
        );
    }
}

/// `disk_erasure_concurrency` devices are overwritten at the same time (by
/// the host, for the single-threaded guest), and never more.
#[test]
fn devices_are_overwritten_up_to_the_erasure_concurrency_at_once() {
    let names = ["sda", "sdb", "sdc", "sdd"];
    let disks: Vec<(&str, &str, &str)> = names.iter().map(|n| (*n, "64MiB", "")).collect();
    let rig = Rig::new(&machine(&disks));
    for (concurrency, expect_parallel) in [(1, false), (4, true)] {
        for name in names {
            fill_markers(&rig.disk(name), 64 * MIB);
        }
        let node = json!({"driver_internal_info": {"agent_enable_ata_secure_erase": false,
                                                   "disk_erasure_concurrency": concurrency}});
        let (result, progress) = rig.run(StepKind::Clean, "erase_devices", node);
        assert_eq!(
            result,
            Ok(json!({"/dev/sda": null, "/dev/sdb": null, "/dev/sdc": null, "/dev/sdd": null}))
        );
        for name in names {
            assert!(all_zero(&rig.disk(name)), "{name} erased");
        }
        let most = progress.iter().map(|m| in_flight(m)).max().unwrap_or(0);
        if expect_parallel {
            assert!(most >= 2, "several devices in flight: {progress:?}");
        } else {
            assert_eq!(most, 1, "one device at a time: {progress:?}");
        }
        assert!(most <= concurrency, "{progress:?}");
        let last_board = progress
            .iter()
            .rev()
            .find(|m| m.contains("/dev/sda: "))
            .expect("per-device progress");
        for name in names {
            assert!(
                last_board.contains(&format!("/dev/{name}: erased")),
                "{last_board}"
            );
        }
    }
}

// ------------------------------------------------------- measurements

fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let start = std::time::Instant::now();
    let value = f();
    (value, start.elapsed().as_secs_f64())
}

fn report(what: &str, secs: f64, bytes: u64) {
    let mib_s = bytes as f64 / MIB as f64 / secs.max(1e-9);
    println!("BENCH {what}: {secs:.3} s ({mib_s:.0} MiB/s)");
}

/// `dd if=/dev/zero of=<target> bs=4M oflag=direct conv=fsync` over each
/// target at the same time; the time until all finished.
fn dd_zero_all(targets: &[String], size: u64) -> f64 {
    let count = format!("count={}", size / (4 * MIB));
    let (_, t) = timed(|| {
        let children: Vec<_> = targets
            .iter()
            .map(|target| {
                Command::new("dd")
                    .args([
                        "if=/dev/zero",
                        &format!("of={target}"),
                        "bs=4M",
                        &count,
                        "oflag=direct",
                        "conv=fsync,notrunc",
                    ])
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .expect("dd")
            })
            .collect();
        for mut child in children {
            assert!(child.wait().expect("dd").success(), "dd failed");
        }
    });
    t
}

/// `blkdiscard -z <dev>` on each device at the same time.
fn blkdiscard_all(devices: &[String]) -> f64 {
    let (_, t) = timed(|| {
        let children: Vec<_> = devices
            .iter()
            .map(|dev| {
                Command::new("blkdiscard")
                    .args(["-z", dev])
                    .spawn()
                    .expect("blkdiscard")
            })
            .collect();
        for mut child in children {
            assert!(
                child.wait().expect("blkdiscard").success(),
                "blkdiscard failed"
            );
        }
    });
    t
}

/// `erase_devices` with the IPA defaults (1 random pass + zero pass) or the
/// zero pass only, at concurrency 1 and 4; reported per line.
/// `targets` are rewritten (untimed) before each run, so that no run
/// profits from the previous one's unwritten or zeroed extents.
fn bench_erase_devices(rig: &Rig, what: &str, targets: &[String], size: u64) {
    let disks = targets.len();
    for (label, iterations) in [
        ("IPA default: 1 random pass + zero pass", 1),
        ("zero pass only", 0),
    ] {
        for concurrency in [1, 4] {
            let node = json!({"driver_internal_info": {"agent_enable_ata_secure_erase": false,
                                                       "agent_erase_devices_iterations": iterations,
                                                       "disk_erasure_concurrency": concurrency}});
            let ((result, _), t) = timed(|| rig.run(StepKind::Clean, "erase_devices", node));
            assert!(result.is_ok(), "{result:?}");
            report(
                &format!(
                    "{what}: erase_devices ({label}), concurrency {concurrency}, {disks} disks"
                ),
                t,
                disks as u64 * size,
            );
        }
    }
}

/// Numbers for the lead: `tests/bench/erase.sh` runs this. Four disks of
/// `ERASE_BENCH_GIB` (default 2) GiB each, file-backed and (as root) loop
/// devices: erase_devices at concurrency 1 and 4 beside dd and
/// blkdiscard -z on one disk and on all four at once. MiB/s count every
/// disk's bytes once.
#[test]
#[ignore = "measurement, not a test: run tests/bench/erase.sh"]
fn bench_erase() {
    let gib: u64 = std::env::var("ERASE_BENCH_GIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let size = gib << 30;
    let size_text = format!("{gib}GiB");
    let names = ["sda", "sdb", "sdc", "sdd"];
    let four: Vec<(&str, &str, &str)> =
        names.iter().map(|n| (*n, size_text.as_str(), "")).collect();

    // File-backed disks.
    let rig = Rig::new(&machine(&four));
    let files: Vec<String> = names
        .iter()
        .map(|n| rig.disk(n).display().to_string())
        .collect();
    let t = dd_zero_all(&files[..1], size);
    report(
        &format!("file {gib} GiB: dd if=/dev/zero bs=4M oflag=direct conv=fsync, 1 disk"),
        t,
        size,
    );
    let t = dd_zero_all(&files, size);
    report(
        &format!("file {gib} GiB: dd ..., 4 disks at once"),
        t,
        4 * size,
    );
    println!("BENCH file {gib} GiB: blkdiscard -z: n/a (needs a block device)");
    if have("shred") {
        let (_, t) = timed(|| {
            sh(
                "shred",
                &["--force", "--zero", "--iterations", "1", &files[0]],
            )
        });
        report(
            &format!("file {gib} GiB: shred --force --zero --iterations 1 (IPA's command), 1 disk"),
            t,
            size,
        );
    }
    bench_erase_devices(&rig, &format!("file {gib} GiB"), &files, size);
    for file in &files {
        assert!(all_zero(Path::new(file)));
    }
    drop(rig);

    // Loop devices over files (root only).
    'loops: {
        let rig = Rig::new(&machine(&four));
        let mut loops = Vec::new();
        for name in names {
            let backing = rig.sim.root.join(format!("loop-{name}.img"));
            fs::File::create(&backing)
                .expect("backing")
                .set_len(size)
                .expect("size");
            let Some(lo) = loop_device(&backing) else {
                println!("BENCH loop devices: SKIPPED (needs root and losetup)");
                break 'loops;
            };
            if !replace_with_block_node(&rig.disk(name), &lo.dev) {
                println!("BENCH loop devices: SKIPPED (needs mknod)");
                break 'loops;
            }
            loops.push(lo);
        }
        let devs: Vec<String> = loops.iter().map(|l| l.dev.clone()).collect();
        // Fully allocated backing files first, so no run profits from holes.
        dd_zero_all(&devs, size);
        let t = dd_zero_all(&devs[..1], size);
        report(
            &format!("loop {gib} GiB: dd if=/dev/zero bs=4M oflag=direct conv=fsync, 1 disk"),
            t,
            size,
        );
        let t = dd_zero_all(&devs, size);
        report(
            &format!("loop {gib} GiB: dd ..., 4 disks at once"),
            t,
            4 * size,
        );
        if have("blkdiscard") {
            let t = blkdiscard_all(&devs[..1]);
            report(&format!("loop {gib} GiB: blkdiscard -z, 1 disk"), t, size);
            let t = blkdiscard_all(&devs);
            report(
                &format!("loop {gib} GiB: blkdiscard -z, 4 disks at once"),
                t,
                4 * size,
            );
        }
        bench_erase_devices(&rig, &format!("loop {gib} GiB"), &devs, size);
        drop(loops);
        drop(rig);
    }

    // Metadata erase of 8 disks with GPT + 2 partitions each.
    let names = ["sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg", "sdh"];
    let disks: Vec<(&str, &str, &str)> =
        names.iter().map(|n| (*n, size_text.as_str(), "")).collect();
    let rig = Rig::new(&machine(&disks));
    let with_layout = have("sgdisk");
    for name in names {
        if with_layout {
            let path = rig.disk(name);
            sh(
                "sgdisk",
                &[
                    "-n",
                    "1:2048:+512M",
                    "-n",
                    "2:0:0",
                    path.to_str().expect("utf-8"),
                ],
            );
            rig.add_partition(name, 1, 2048, 512 * 2048);
            let end = size / 512 - 34;
            rig.add_partition(name, 2, 2048 + 512 * 2048, end - (2048 + 512 * 2048) + 1);
        } else {
            write_fake_gpt(&rig.disk(name));
        }
    }
    let ((result, _), t) = timed(|| rig.run(StepKind::Clean, "erase_devices_metadata", json!({})));
    assert_eq!(result, Ok(Value::Null));
    println!(
        "BENCH metadata: erase_devices_metadata of 8 x {gib} GiB disks{}: {t:.3} s",
        if with_layout {
            " (GPT, 2 partitions each = 24 entries)"
        } else {
            ""
        }
    );
}
