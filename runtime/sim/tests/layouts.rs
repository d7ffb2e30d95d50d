//! Layouts: every description the validator accepts builds (disks sharing
//! SCSI hosts, SAS disks with one target number on several hosts, NVMe
//! namespaces of one controller, duplicated WWNs of multipath paths), and md
//! arrays and multipath maps appear as the kernel and udev show them, with
//! the `mdadm` and `multipath` stand-ins answering for them.

use std::fs;
use std::path::Path;
use std::process::Command;

use ironic_sim::{create, MachineDescription, SimError};

const HEAD: &str = r#"
hostname = "layouts"
[cpu]
model = "x"
count = 1
[memory]
total_mib = 1024
modules_mib = [1024]
"#;

fn parse(body: &str) -> Result<MachineDescription, SimError> {
    MachineDescription::from_toml(&format!("{HEAD}{body}"), Path::new("m.toml"))
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

/// Runs a stand-in as the host does: empty environment, PATH = bin only.
fn stand_in(root: &Path, program: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(root.join(".ironic-sim/bin").join(program))
        .args(args)
        .env_clear()
        .env("PATH", root.join(".ironic-sim/bin"))
        .output()
        .expect("run stand-in");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn disks_sharing_a_scsi_host_and_sas_targets_on_several_hosts_build() {
    let desc = parse(
        r#"
[[disks]]
name = "sda"
size = "1GiB"
hctl = "0:0:0:0"
[[disks]]
name = "sdb"
size = "1GiB"
hctl = "0:0:1:0"
[[disks]]
name = "sdc"
size = "1GiB"
transport = "sas"
hctl = "2:0:1:0"
[[disks]]
name = "sdd"
size = "1GiB"
transport = "sas"
hctl = "3:0:1:0"
[[disks]]
name = "sde"
size = "1GiB"
[[disks]]
name = "nvme0n1"
size = "1GiB"
[[disks]]
name = "nvme0n2"
size = "1GiB"
"#,
    )
    .expect("valid");
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    create(&desc, root).expect("builds");
    assert_eq!(
        read(root, "sys/block/sdb/device/scsi_device/0:0:1:0/device/rev"),
        "1B6Q\n"
    );
    assert!(link(root, "sys/block/sdb").contains("/host0/target0:0:1/0:0:1:0/block/sdb"));
    // One HBA per SAS host: the by-path names differ although the targets agree.
    assert_eq!(
        link(root, "dev/disk/by-path/pci-0000:1a:00.0-sas-phy1-lun-0"),
        "../../sdc"
    );
    assert_eq!(
        link(root, "dev/disk/by-path/pci-0000:1b:00.0-sas-phy1-lun-0"),
        "../../sdd"
    );
    assert!(root.join("sys/class/sas_host/host3").exists());
    // The disk without an address gets a host no other disk names.
    assert!(root
        .join("sys/block/sde/device/scsi_device/4:0:0:0")
        .exists());
    assert_eq!(read(root, "sys/block/nvme0n2/nsid"), "2\n");
}

#[test]
fn scsi_address_conflicts_are_refused_naming_the_disks() {
    let e = parse(
        "[[disks]]\nname = \"sda\"\nsize = \"1GiB\"\nhctl = \"1:0:0:0\"\n\
         [[disks]]\nname = \"sdb\"\nsize = \"1GiB\"\nhctl = \"1:0:0:0\"\n",
    )
    .expect_err("duplicate address");
    assert_eq!(
        e.to_string(),
        "m.toml: disks[1].hctl: 1:0:0:0 is also the address of disks[0] (sda)"
    );
    let e = parse(
        "[[disks]]\nname = \"sda\"\nsize = \"1GiB\"\nhctl = \"1:0:0:0\"\n\
         [[disks]]\nname = \"sdb\"\nsize = \"1GiB\"\ntransport = \"sas\"\nhctl = \"1:0:1:0\"\n",
    )
    .expect_err("mixed transports");
    assert!(e.to_string().contains("one transport per host"), "{e}");
}

/// A small deterministic generator (xorshift) for random layouts.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_layout(rng: &mut Rng) -> String {
    let mut text = String::new();
    let mut sd = 0u8;
    let mut vd = 0u8;
    let mut scsi = Vec::new();
    let mut partitioned = Vec::new();
    for _ in 0..rng.below(7) + 1 {
        let (name, transport) = match rng.below(5) {
            0 => {
                let n = format!("nvme{}n{}", rng.below(2), rng.below(3) + 1);
                (n, "nvme")
            }
            1 => {
                vd += 1;
                (format!("vd{}", char::from(b'a' + vd - 1)), "virtio")
            }
            k => {
                sd += 1;
                let t = ["sata", "sas", "usb"][(k - 2) as usize];
                (format!("sd{}", char::from(b'a' + sd - 1)), t)
            }
        };
        text.push_str(&format!(
            "[[disks]]\nname = \"{name}\"\nsize = \"{}MiB\"\ntransport = \"{transport}\"\n",
            64 * (1 + rng.below(2))
        ));
        if transport != "nvme" && transport != "virtio" {
            if rng.below(2) == 0 {
                text.push_str(&format!(
                    "hctl = \"{}:0:{}:{}\"\n",
                    rng.below(4),
                    rng.below(3),
                    rng.below(2)
                ));
            }
            scsi.push(name.clone());
        }
        if rng.below(3) == 0 {
            text.push_str("partitions = [{ start = \"1MiB\", size = \"32MiB\" }]\n");
            partitioned.push(name.clone());
        }
        if rng.below(3) == 0 {
            text.push_str("wwn = \"0x5000c500a1b2c3d4\"\nserial = \"SAME\"\n");
        }
    }
    if scsi.len() >= 2 && rng.below(2) == 0 {
        text.push_str(&format!(
            "[[multipath]]\nname = \"dm-0\"\nwwid = \"3600508b4\"\npaths = [\"{}\", \"{}\"]\n",
            scsi[0], scsi[1]
        ));
    }
    if partitioned.len() >= 2 && rng.below(2) == 0 {
        let member = |d: &str| {
            if d.ends_with(|c: char| c.is_ascii_digit()) {
                format!("{d}p1")
            } else {
                format!("{d}1")
            }
        };
        text.push_str(&format!(
            "[[md]]\nname = \"md{}\"\nlevel = \"raid{}\"\nmembers = [\"{}\", \"{}\"]\n",
            rng.below(3),
            [0, 1, 10][rng.below(3) as usize],
            member(&partitioned[0]),
            member(&partitioned[1])
        ));
    }
    text
}

#[test]
fn every_layout_the_validator_accepts_builds() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut built, mut refused) = (0, 0);
    for round in 0..60 {
        let body = random_layout(&mut rng);
        match parse(&body) {
            Ok(desc) => {
                let dir = tempfile::tempdir().expect("tmp");
                if let Err(e) = create(&desc, dir.path()) {
                    panic!("round {round}: accepted but does not build: {e}\n{body}");
                }
                built += 1;
            }
            Err(_) => refused += 1,
        }
    }
    // The generator must exercise both sides.
    assert!(
        built > 20 && refused > 5,
        "built {built}, refused {refused}"
    );
}

const STACKED: &str = r#"
[[disks]]
name = "sda"
size = "2GiB"
serial = "A1"
partitions = [{ start = "1MiB", size = "1GiB" }]
[[disks]]
name = "sdb"
size = "2GiB"
rotational = true
serial = "B1"
partitions = [{ start = "1MiB", size = "1GiB" }]
[[disks]]
name = "sdc"
size = "4GiB"
transport = "sas"
hctl = "5:0:0:0"
wwn = "0x600508b400105e21"
serial = "LUN7"
[[disks]]
name = "sdd"
size = "4GiB"
transport = "sas"
hctl = "6:0:0:0"
wwn = "0x600508b400105e21"
serial = "LUN7"
[[md]]
name = "md0"
level = "raid1"
members = ["sda1", "sdb1"]
volume_name = "root"
[[multipath]]
name = "dm-0"
wwid = "3600508b400105e21"
paths = ["sdc", "sdd"]
"#;

#[test]
fn md_arrays_and_multipath_maps_look_like_the_kernel_s() {
    let desc = parse(STACKED).expect("valid");
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path();
    create(&desc, root).expect("builds");

    // md0: a virtual block device over sda1 and sdb1.
    assert_eq!(link(root, "sys/block/md0"), "../devices/virtual/block/md0");
    assert_eq!(read(root, "sys/block/md0/md/level"), "raid1\n");
    assert_eq!(read(root, "sys/block/md0/dev"), "9:0\n");
    assert_eq!(
        read(root, "sys/block/md0/size"),
        format!("{}\n", ((1u64 << 30) - (1 << 20)) / 512)
    );
    assert_eq!(read(root, "sys/block/md0/queue/rotational"), "1\n");
    assert!(root.join("sys/block/md0/slaves/sda1").exists());
    assert!(root.join("sys/block/sda/sda1/holders/md0").exists());
    assert!(read(root, "sys/block/md0/md/dev-sdb1/block/partition").starts_with('1'));
    let md_record = read(root, "run/udev/data/b9:0");
    assert!(
        md_record.contains("E:MD_NAME=layouts:root\n"),
        "{md_record}"
    );
    assert!(read(root, "run/udev/data/b8:1").contains("E:ID_FS_TYPE=linux_raid_member\n"));
    assert_eq!(link(root, "dev/md/root"), "../md0");
    assert_eq!(
        fs::metadata(root.join("dev/md0")).expect("md0").len(),
        (1 << 30) - (1 << 20)
    );
    assert!(read(root, "proc/mdstat").contains("md0 : active raid1 sda1[0] sdb1[1]"));

    // dm-0: one LUN behind two paths; the paths are the map's bytes.
    assert_eq!(
        read(root, "sys/block/dm-0/dm/uuid"),
        "mpath-3600508b400105e21\n"
    );
    assert_eq!(read(root, "sys/block/dm-0/dm/name"), "mpatha\n");
    assert!(root.join("sys/block/sdc/holders/dm-0").exists());
    assert_eq!(link(root, "dev/mapper/mpatha"), "../dm-0");
    use std::os::unix::fs::MetadataExt;
    let ino = |n: &str| fs::metadata(root.join("dev").join(n)).expect(n).ino();
    assert_eq!(ino("dm-0"), ino("sdc"));
    assert_eq!(ino("sdd"), ino("sdc"));
    assert!(read(root, "run/udev/data/b253:0").contains("E:DM_WWN=0x600508b400105e21\n"));

    // The stand-ins answer for them.
    let (code, out, _) = stand_in(root, "mdadm", &["--detail", "/dev/md0"]);
    assert_eq!(code, 0);
    assert!(out.contains("Name : layouts:root"), "{out}");
    assert!(out.contains("active sync   /dev/sdb1"), "{out}");
    let (code, _, err) = stand_in(root, "mdadm", &["--examine", "/dev/sda"]);
    assert_eq!(
        (code, err.trim()),
        (1, "mdadm: No md superblock detected on /dev/sda.")
    );
    let (code, _, _) = stand_in(root, "mdadm", &["--zero-superblock", "/dev/sda1"]);
    assert_eq!(code, 1, "a running array's member cannot be zeroed");
    assert_eq!(stand_in(root, "mdadm", &["--stop", "/dev/md0"]).0, 0);
    assert!(
        !root.join("sys/block/md0").exists(),
        "stopped: gone from /sys/block"
    );
    assert!(!root.join("sys/block/sda/sda1/holders/md0").exists());
    assert_eq!(stand_in(root, "mdadm", &["--examine", "/dev/sda1"]).0, 0);
    assert_eq!(
        stand_in(root, "mdadm", &["--zero-superblock", "/dev/sda1"]).0,
        0
    );
    assert_eq!(stand_in(root, "mdadm", &["--examine", "/dev/sda1"]).0, 1);
    assert!(!read(root, "run/udev/data/b8:1").contains("linux_raid_member"));
    let calls = fs::read_to_string(root.join(".ironic-sim/calls/mdadm")).expect("calls");
    assert!(calls.contains("--stop\t/dev/md0\n"), "{calls}");

    assert_eq!(stand_in(root, "multipath", &["-c", "/dev/sdd"]).0, 0);
    assert_eq!(stand_in(root, "multipath", &["-c", "/dev/sda"]).0, 1);
    let (_, out, _) = stand_in(root, "multipath", &["-ll"]);
    assert!(out.starts_with("mpatha (3600508b400105e21) dm-0"), "{out}");
}

#[test]
fn stacked_storage_errors_name_the_key() {
    let bad = |from: &str, to: &str| parse(&STACKED.replace(from, to)).expect_err(to).to_string();
    assert_eq!(
        bad(
            "members = [\"sda1\", \"sdb1\"]",
            "members = [\"sda1\", \"sdz1\"]"
        ),
        "m.toml: md[0].members[1]: sdz1 is not a disk or partition of this machine"
    );
    assert!(bad(
        "members = [\"sda1\", \"sdb1\"]",
        "members = [\"sda1\", \"sda\"]"
    )
    .starts_with("m.toml: md[0].members[1]: sda and sda1"));
    assert!(bad("level = \"raid1\"", "level = \"raid5\"").contains("raid5 needs at least 3"));
    assert!(
        bad("paths = [\"sdc\", \"sdd\"]", "paths = [\"sdc\", \"sda\"]")
            .starts_with("m.toml: multipath[0].paths[1]: sda has partitions")
    );
    assert!(bad(
        "members = [\"sda1\", \"sdb1\"]",
        "members = [\"sda1\", \"sdc\"]"
    )
    .contains("sdc already belongs to dm-0"));
}
