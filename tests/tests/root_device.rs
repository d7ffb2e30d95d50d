//! Black-box tests of root device selection (IPA `get_os_install_device`,
//! `device_hints.py`) and disk skip lists
//! (`list_block_devices_check_skip_list`) through the host, on the four-disk
//! machine `tests/machines/multi-disk.toml`:
//!
//! | disk    | size   | attributes                                       |
//! |---------|--------|--------------------------------------------------|
//! | sda     | 8 GiB  | SATA SSD, INTEL SSDSC2KB240G8, hctl 0:0:0:0      |
//! | sdb     | 64 GiB | SAS HDD, SEAGATE ST600MM0009, hctl 2:0:1:0, 1 part |
//! | sdc     | 3 GiB  | USB stick, SanDisk Ultra Fit (below 4 GiB)       |
//! | nvme0n1 | 32 GiB | NVMe SSD, SAMSUNG MZQL2960HCJR-00A07             |
//!
//! The default rule picks sda; every hint below picks another disk.

use agent_tests::host::Host;
use agent_tests::sim_host_config;
use agent_tests::{managers_dir, workspace_root};
use ironic_host::DispatchError;
use ironic_sim::{MachineDescription, SimMachine};
use serde_json::{json, Value};

struct Fixture {
    host: Host,
    _sim: SimMachine,
    _root: tempfile::TempDir,
    _managers: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let desc =
        MachineDescription::from_file(&workspace_root().join("tests/machines/multi-disk.toml"))
            .expect("multi-disk machine");
    let managers = managers_dir(&[("generic_manager", "generic")]);
    let root = tempfile::tempdir().expect("machine dir");
    let sim = ironic_sim::create(&desc, root.path()).expect("simulated machine");
    let host = Host::start(sim_host_config(managers.path(), &sim)).expect("host starts");
    Fixture {
        host,
        _sim: sim,
        _root: root,
        _managers: managers,
    }
}

impl Fixture {
    fn install_device(&self, node: &Value) -> Result<String, DispatchError> {
        self.host.os_install_device(Some(node))
    }

    fn with_hints(&self, hints: Value) -> Result<String, DispatchError> {
        self.install_device(&json!({
            "uuid": "1be26c0b-03f2-4d2e-ae87-c02d7f33c123",
            "properties": {"root_device": hints},
            "instance_info": {}
        }))
    }

    /// An inventory attribute of a disk (e.g. its by-path link).
    fn disk_attr(&self, name: &str, attr: &str) -> String {
        let inv = self.host.inventory(true).expect("inventory");
        inv["disks"]
            .as_array()
            .expect("disks")
            .iter()
            .find(|d| d["name"] == name)
            .and_then(|d| d[attr].as_str())
            .unwrap_or_else(|| panic!("{name} has no {attr}: {inv}"))
            .to_string()
    }
}

/// `(error_type, details)` of a manager failure.
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

#[test]
fn default_rule_is_the_smallest_disk_of_4_gib() {
    let f = fixture();
    // sdc (3 GiB) is too small; sda (8 GiB) is the smallest of the rest.
    assert_eq!(f.host.os_install_device(None).expect("device"), "/dev/sda");
    assert_eq!(
        f.install_device(&json!({"properties": {}, "instance_info": {}}))
            .expect("device"),
        "/dev/sda"
    );
}

#[test]
fn each_hint_kind_picks_its_disk() {
    let f = fixture();
    let sdb_by_path = f.disk_attr("/dev/sdb", "by_path");
    let nvme_by_path = f.disk_attr("/dev/nvme0n1", "by_path");
    let cases = [
        // size: GiB; int, string, operators; first match in lsblk order.
        (json!({"size": 64}), "/dev/sdb"),
        (json!({"size": "32"}), "/dev/nvme0n1"),
        (json!({"size": ">= 30"}), "/dev/sdb"),
        (json!({"size": "<=3"}), "/dev/sdc"),
        (json!({"size": "!= 8"}), "/dev/sdb"),
        // Hints ignore the 4 GiB minimum of the default rule.
        (json!({"model": "ultra fit"}), "/dev/sdc"),
        (
            json!({"model": "SAMSUNG MZQL2960HCJR-00A07"}),
            "/dev/nvme0n1",
        ),
        (json!({"model": "<in> st600"}), "/dev/sdb"),
        (json!({"vendor": "seagate"}), "/dev/sdb"),
        (json!({"vendor": "s== SanDisk"}), "/dev/sdc"),
        // serial: lsblk's, or udev's long ID_SERIAL.
        (json!({"serial": "S64FNE0R900789"}), "/dev/nvme0n1"),
        (
            json!({"serial": "SAMSUNG_MZQL2960HCJR-00A07_S64FNE0R900789"}),
            "/dev/nvme0n1",
        ),
        (json!({"serial": "<or> nope <or> waf0sas2"}), "/dev/sdb"),
        (json!({"wwn": "0x5000C500A1B2C3D4"}), "/dev/sdb"),
        (
            json!({"wwn": "eui.36344630529007890025384500000001"}),
            "/dev/nvme0n1",
        ),
        (
            json!({"wwn_with_extension": "0x5000c500a1b2c3d4"}),
            "/dev/sdb",
        ),
        (json!({"name": "/dev/nvme0n1"}), "/dev/nvme0n1"),
        (json!({"hctl": "2:0:1:0"}), "/dev/sdb"),
        (json!({"rotational": true}), "/dev/sdb"),
        (json!({"rotational": "no", "size": "> 20"}), "/dev/nvme0n1"),
        (json!({"by_path": sdb_by_path}), "/dev/sdb"),
        (json!({"by_path": nvme_by_path}), "/dev/nvme0n1"),
        (json!({"tran": "sas"}), "/dev/sdb"),
        (json!({"tran": "USB"}), "/dev/sdc"),
        (json!({"tran": "nvme"}), "/dev/nvme0n1"),
    ];
    for (hints, expected) in cases {
        let got = f
            .with_hints(hints.clone())
            .unwrap_or_else(|e| panic!("{hints}: {e}"));
        assert_eq!(got, expected, "hints {hints}");
    }
}

#[test]
fn instance_info_beats_properties() {
    let f = fixture();
    let node = json!({
        "properties": {"root_device": {"tran": "sas"}},
        "instance_info": {"root_device": {"tran": "nvme"}}
    });
    assert_eq!(f.install_device(&node).expect("device"), "/dev/nvme0n1");
    // An empty instance_info.root_device falls back to properties.
    let node = json!({
        "properties": {"root_device": {"tran": "sas"}},
        "instance_info": {"root_device": {}}
    });
    assert_eq!(f.install_device(&node).expect("device"), "/dev/sdb");
}

#[test]
fn skip_list_excludes_disks() {
    let f = fixture();
    // Without sda the default rule moves to the next smallest: nvme0n1
    // (32 GiB) before sdb (64 GiB).
    let node = json!({"properties": {"skip_block_devices": [{"serial": "PHYF0001240G"}]}});
    assert_eq!(f.install_device(&node).expect("device"), "/dev/nvme0n1");
    // A RAID volume entry skips no disk.
    let node = json!({"properties": {"skip_block_devices": [{"volume_name": "root"}]}});
    assert_eq!(f.install_device(&node).expect("device"), "/dev/sda");

    // Hints never pick a skipped disk.
    let node = json!({"properties": {
        "root_device": {"rotational": true},
        "skip_block_devices": [{"name": "/dev/sda"}, {"hctl": "2:0:1:0"}]
    }});
    let (kind, details) = failure(f.install_device(&node).expect_err("sdb is skipped"));
    assert_eq!(kind.as_deref(), Some("DeviceNotFound"));
    assert!(
        details.contains("Excluded by properties.skip_block_devices: /dev/sda, /dev/sdb"),
        "{details}"
    );

    // An invalid entry is refused with its index.
    let node = json!({"properties": {"skip_block_devices": [{"size": "huge"}]}});
    match f.install_device(&node) {
        Err(DispatchError::InvalidArgument { details, .. }) => {
            assert!(details.contains("skip_block_devices[0]"), "{details}")
        }
        other => panic!("expected invalid arguments, got {other:?}"),
    }
}

#[test]
fn unsatisfiable_hints_list_the_candidates() {
    let f = fixture();
    let (kind, details) = failure(
        f.with_hints(json!({"model": "<in> toshiba", "size": ">= 100"}))
            .expect_err("no disk matches"),
    );
    eprintln!("{details}");
    assert_eq!(kind.as_deref(), Some("DeviceNotFound"));
    assert!(
        details.contains("No suitable device was found"),
        "{details}"
    );
    assert!(
        details.contains("toshiba"),
        "the hints are quoted: {details}"
    );
    for candidate in [
        r#"/dev/sda (size 8.00 GiB, model "INTEL SSDSC2KB240G8", serial "PHYF0001240G")"#,
        r#"/dev/sdb (size 64.00 GiB, model "ST600MM0009", serial "WAF0SAS2")"#,
        r#"/dev/sdc (size 3.00 GiB, model "Ultra Fit", serial "4C530001220")"#,
        r#"/dev/nvme0n1 (size 32.00 GiB, model "SAMSUNG MZQL2960HCJR-00A07", serial "S64FNE0R900789")"#,
    ] {
        assert!(
            details.contains(candidate),
            "missing {candidate}: {details}"
        );
    }

    // A name without /dev/ never matches (IPA compares it verbatim); the
    // error says so.
    let (_, details) = failure(f.with_hints(json!({"name": "sdb"})).expect_err("bare name"));
    assert!(details.contains("full path"), "{details}");
}

#[test]
fn invalid_hints_fail_validation() {
    let f = fixture();
    for (hints, needle) in [
        (json!({"colour": "red"}), "colour"),
        (json!({"size": 64.5}), "size"),
        (json!({"size": 0}), "positive"),
        (json!({"rotational": "sometimes"}), "Boolean"),
        (json!({"serial": 12345}), "not a string"),
    ] {
        let (kind, details) = failure(f.with_hints(hints.clone()).expect_err("invalid"));
        assert_eq!(kind.as_deref(), Some("DeviceNotFound"), "{hints}");
        assert!(details.contains("failed to validate"), "{hints}: {details}");
        assert!(details.contains(needle), "{hints}: {details}");
    }
}
