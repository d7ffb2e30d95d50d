//! Software RAID steps of the generic manager on simulated machines: what
//! reaches the disks (partition tables written into the disk files, checked
//! with sgdisk) and which `mdadm` commands run, recorded by the simulator's
//! `mdadm` stand-in, which also answers for arrays the machine description
//! assembles. Building real arrays needs the kernel's md driver: the VM test
//! `raid_vm.rs` does that under a real Ironic (docs/testing-storage.md).
//!
//! Nothing here touches a real disk: disks are sparse files inside the
//! simulated machine's directory and programs are its stand-ins.

use std::fs;
use std::path::Path;
use std::process::Command;

use agent_tests::host::Host;
use agent_tests::{managers_dir, sim_host_config};
use ironic_host::{DispatchError, StepKind};
use ironic_sim::{MachineDescription, SimMachine};
use serde_json::{json, Value};

const HEAD: &str = r#"
hostname = "raid-test"
[cpu]
model = "x"
count = 2
[memory]
total_mib = 2048
modules_mib = [2048]
"#;

const TWO_DISKS: &str = r#"
[[disks]]
name = "sda"
size = "20GiB"
serial = "RAID-A"
[[disks]]
name = "sdb"
size = "20GiB"
serial = "RAID-B"
[[disks]]
name = "sdc"
size = "30GiB"
serial = "SPARE-C"
"#;

/// An array over sda1/sdb1 named `root`, as after a previous deployment.
const WITH_ARRAY: &str = r#"
[[disks]]
name = "sda"
size = "20GiB"
partitions = [{ start = "1MiB", size = "10GiB" }]
[[disks]]
name = "sdb"
size = "20GiB"
partitions = [{ start = "1MiB", size = "10GiB" }]
[[md]]
name = "md0"
level = "raid1"
members = ["sda1", "sdb1"]
volume_name = "root"
"#;

struct Fixture {
    host: Host,
    sim: SimMachine,
    _root: tempfile::TempDir,
    _managers: tempfile::TempDir,
}

fn fixture(disks: &str, uefi: bool) -> Fixture {
    let boot = if uefi {
        "[boot]\nmode = \"uefi\"\n"
    } else {
        ""
    };
    let desc =
        MachineDescription::from_toml(&format!("{HEAD}{boot}{disks}"), Path::new("raid.toml"))
            .expect("machine");
    let managers = managers_dir(&[("generic_manager", "generic")]);
    let root = tempfile::tempdir().expect("machine dir");
    let sim = ironic_sim::create(&desc, root.path()).expect("simulated machine");
    let host = Host::start(sim_host_config(managers.path(), &sim)).expect("host starts");
    Fixture {
        host,
        sim,
        _root: root,
        _managers: managers,
    }
}

impl Fixture {
    fn step(
        &self,
        kind: StepKind,
        name: &str,
        node: &Value,
        args: Value,
    ) -> Result<Value, DispatchError> {
        self.host
            .execute_step(kind, name, node, &json!([]), &args, &|_, _| {})
    }

    fn mdadm_calls(&self) -> Vec<String> {
        self.sim
            .recorded_calls("mdadm")
            .into_iter()
            .map(|c| c.join(" "))
            .collect()
    }

    fn disk(&self, name: &str) -> std::path::PathBuf {
        self.sim.disk_path(name)
    }
}

fn node(config: Value) -> Value {
    json!({
        "uuid": "6a1c0c4e-raid-test",
        "properties": {},
        "instance_info": {},
        "driver_internal_info": {},
        "target_raid_config": config,
    })
}

fn volume(level: &str, size: Value) -> Value {
    json!({"raid_level": level, "size_gb": size, "controller": "software"})
}

fn failure(err: DispatchError) -> (Option<String>, String) {
    match err {
        DispatchError::Failed {
            error_type,
            details,
            ..
        } => (error_type, details),
        other => panic!("expected a manager failure, got {other}"),
    }
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    fs::File::open(path)
        .expect("open")
        .read_exact_at(&mut buf, offset)
        .expect("read");
    buf
}

/// (start, sectors, type) of the four msdos entries.
fn msdos_entries(path: &Path) -> Vec<(u32, u32, u8)> {
    let mbr = read_at(path, 0, 512);
    assert_eq!(&mbr[510..], &[0x55, 0xAA], "{} has an MBR", path.display());
    (0..4)
        .map(|i| {
            let e = &mbr[446 + i * 16..462 + i * 16];
            (
                u32::from_le_bytes([e[8], e[9], e[10], e[11]]),
                u32::from_le_bytes([e[12], e[13], e[14], e[15]]),
                e[4],
            )
        })
        .filter(|(_, len, _)| *len > 0)
        .collect()
}

fn sgdisk(args: &[&str], disk: &Path) -> String {
    let out = Command::new("sgdisk")
        .args(args)
        .arg(disk)
        .output()
        .expect("sgdisk (make setup installs gdisk)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const GIB_SECTORS: u32 = 2_097_152;

#[test]
fn bios_raid1_and_max_raid0_are_partitioned_like_parted_and_built_with_mdadm() {
    let f = fixture(TWO_DISKS, false);
    let mut root = volume("1", json!(10));
    root["volume_name"] = json!("root");
    root["physical_disks"] = json!([{"serial": "RAID-A"}, {"serial": "RAID-B"}]);
    let mut data = volume("0", json!("MAX"));
    data["physical_disks"] = json!([{"serial": "RAID-A"}, {"serial": "RAID-B"}]);
    let config = json!({"logical_disks": [root, data]});
    let result = f
        .step(
            StepKind::Clean,
            "create_configuration",
            &node(config.clone()),
            json!({}),
        )
        .expect("created");
    // Ironic stores what comes back as the node's raid_config.
    assert_eq!(result, config);

    // BIOS without disk_label: msdos; the first volume from the first free
    // sector to 10 GiB, the MAX one from there to the end (MiB-aligned).
    for disk in ["sda", "sdb"] {
        let entries = msdos_entries(&f.disk(disk));
        assert_eq!(
            entries,
            vec![
                (2048, 10 * GIB_SECTORS - 2048, 0x83),
                (10 * GIB_SECTORS, 10 * GIB_SECTORS, 0x83)
            ],
            "{disk}"
        );
    }
    // The spare disk outside physical_disks is untouched.
    assert_eq!(read_at(&f.disk("sdc"), 0, 512), vec![0; 512]);
    let calls = f.mdadm_calls();
    assert!(
        calls.contains(
            &"--create /dev/md0 --force --run --metadata=1 --level 1 --name root --raid-devices 2 /dev/sda1 /dev/sdb1"
                .to_string()
        ),
        "{calls:?}"
    );
    // MAX is built last; a volume without a name gets md<position>.
    assert!(
        calls.contains(
            &"--create /dev/md1 --force --run --metadata=1 --level 0 --name md1 --raid-devices 2 /dev/sda2 /dev/sdb2"
                .to_string()
        ),
        "{calls:?}"
    );
}

#[test]
fn uefi_holders_get_gpt_with_room_for_the_esp() {
    let f = fixture(TWO_DISKS, true);
    let mut root = volume("1", json!("MAX"));
    root["physical_disks"] = json!([{"name": "/dev/sda"}, {"name": "/dev/sdb"}]);
    f.step(
        StepKind::Clean,
        "create_configuration",
        &node(json!({"logical_disks": [root]})),
        json!({}),
    )
    .expect("created");
    for disk in ["sda", "sdb"] {
        let path = f.disk(disk);
        let verify = sgdisk(&["-v"], &path);
        assert!(verify.contains("No problems found"), "{disk}: {verify}");
        let info = sgdisk(&["-i", "1"], &path);
        // 551 MiB in, left free for the ESP the bootloader step creates.
        assert!(info.contains("First sector: 1128448"), "{disk}: {info}");
        assert!(
            info.contains("0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
            "{disk}: {info}"
        );
        // sgdisk -F: the ESP's room is the first free space.
        assert_eq!(sgdisk(&["-F"], &path).trim(), "2048", "{disk}");
    }
}

#[test]
fn invalid_configurations_fail_with_ipa_s_messages() {
    let f = fixture(TWO_DISKS, false);
    let (class, details) = failure(
        f.step(
            StepKind::Clean,
            "create_configuration",
            &node(json!({"logical_disks": [volume("0", json!("MAX"))]})),
            json!({}),
        )
        .expect_err("RAID-0 first"),
    );
    assert_eq!(class.as_deref(), Some("SoftwareRAIDError"));
    assert_eq!(
        details,
        "Could not validate Software RAID config for 6a1c0c4e-raid-test: Software RAID \
         Configuration requires RAID-1 for the first logical disk"
    );
    // Partitions on a chosen disk stop the step before anything is written.
    let f = fixture(WITH_ARRAY, false);
    let mut root = volume("1", json!(5));
    root["physical_disks"] = json!([{"name": "/dev/sda"}, {"name": "/dev/sdb"}]);
    // The description's partitions exist in sysfs only: give sda a table.
    fs::write(f.disk("sda"), {
        let mut mbr = vec![0u8; 512];
        mbr[446 + 4] = 0x83;
        mbr[446 + 8..446 + 12].copy_from_slice(&2048u32.to_le_bytes());
        mbr[446 + 12..446 + 16].copy_from_slice(&2048u32.to_le_bytes());
        mbr[510] = 0x55;
        mbr[511] = 0xAA;
        mbr
    })
    .expect("write mbr");
    let (class, details) = failure(
        f.step(
            StepKind::Clean,
            "create_configuration",
            &node(json!({"logical_disks": [root]})),
            json!({}),
        )
        .expect_err("partitions"),
    );
    assert_eq!(class.as_deref(), Some("SoftwareRAIDError"));
    assert_eq!(
        details,
        "Partitions detected on devices /dev/sda during RAID config"
    );
    // No configuration: nothing to do, {} as IPA returns.
    let empty = json!({"uuid": "n", "target_raid_config": {}});
    assert_eq!(
        f.step(StepKind::Clean, "create_configuration", &empty, json!({}))
            .expect("noop"),
        json!({})
    );
}

#[test]
fn delete_configuration_stops_arrays_zeroes_members_and_wipes_holders() {
    let f = fixture(WITH_ARRAY, false);
    for disk in ["sda", "sdb"] {
        // A stale table to be wiped.
        fs::write(f.disk(disk), [0x55u8; 1 << 20]).expect("write");
    }
    let inventory = f.host.inventory(true).expect("inventory");
    assert!(
        inventory["disks"]
            .as_array()
            .expect("disks")
            .iter()
            .any(|d| d["name"] == "/dev/md0" && d["size"] == (10u64 << 30) - (1 << 20)),
        "the array is listed with its size: {}",
        inventory["disks"]
    );
    f.step(
        StepKind::Clean,
        "delete_configuration",
        &node(json!({})),
        json!({}),
    )
    .expect("deleted");
    let calls = f.mdadm_calls();
    let expected = [
        "--assemble --scan",
        "--detail /dev/md0",
        "--stop /dev/md0",
        "--examine /dev/sda1",
        "--zero-superblock /dev/sda1",
        "--examine /dev/sdb1",
        "--zero-superblock /dev/sdb1",
    ];
    let mut at = 0;
    for want in expected {
        let found = calls[at..].iter().position(|c| c == want);
        assert!(found.is_some(), "{want:?} after call {at} in {calls:?}");
        at += found.unwrap_or(0) + 1;
    }
    for disk in ["sda", "sdb"] {
        assert_eq!(
            read_at(&f.disk(disk), 0, 1 << 20),
            vec![0; 1 << 20],
            "{disk} wiped"
        );
    }
    assert!(!f.sim.root.join("sys/block/md0").exists());
    // A second delete finds nothing and succeeds.
    f.step(
        StepKind::Clean,
        "delete_configuration",
        &node(json!({})),
        json!({}),
    )
    .expect("nothing left");
}

#[test]
fn skip_list_keeps_a_named_volume() {
    let f = fixture(WITH_ARRAY, false);
    let mut n = node(json!({}));
    n["properties"]["skip_block_devices"] = json!([{"volume_name": "root"}]);
    f.step(StepKind::Clean, "delete_configuration", &n, json!({}))
        .expect("kept");
    let calls = f.mdadm_calls();
    assert!(!calls.iter().any(|c| c.starts_with("--stop")), "{calls:?}");
    assert!(f.sim.root.join("sys/block/md0").exists());
}

#[test]
fn root_volume_of_the_configuration_is_the_install_device() {
    let f = fixture(WITH_ARRAY, false);
    let mut root = volume("1", json!(10));
    root["volume_name"] = json!("root");
    root["is_root_volume"] = json!(true);
    let mut n = node(json!({"logical_disks": [root.clone()]}));
    // Hints naming a holder disk lose against the RAID root volume.
    n["properties"]["root_device"] = json!({"name": "/dev/sda"});
    assert_eq!(
        f.host.os_install_device(Some(&n)).expect("root"),
        "/dev/md0"
    );
    // is_root_volume false: the array and its holders are not candidates.
    root["is_root_volume"] = json!(false);
    let n = node(json!({"logical_disks": [root]}));
    let err = f
        .host
        .os_install_device(Some(&n))
        .expect_err("nothing left");
    assert!(err.to_string().contains("No suitable device"), "{err}");
}

#[test]
fn raid_steps_are_listed_as_ipa_lists_them() {
    let f = fixture(TWO_DISKS, false);
    let steps = |kind| {
        let listing = f
            .host
            .get_steps(kind, &json!({}), &json!([]))
            .expect("steps");
        Value::Array(listing.into_iter().flat_map(|m| m.steps).collect())
    };
    let clean = steps(StepKind::Clean).to_string();
    assert!(
        clean.contains(r#""step":"create_configuration""#),
        "{clean}"
    );
    let deploy = steps(StepKind::Deploy);
    let text = deploy.to_string();
    assert!(text.contains(r#""step":"apply_configuration""#), "{text}");
    assert!(text.contains(r#""interface":"raid""#), "{text}");
    assert!(text.contains("The RAID configuration to apply."), "{text}");
    let service = steps(StepKind::Service).to_string();
    for name in [
        "delete_configuration",
        "apply_configuration",
        "create_configuration",
    ] {
        assert!(
            service.contains(&format!(r#""step":"{name}""#)),
            "{name}: {service}"
        );
    }
}
