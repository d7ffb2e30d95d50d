//! dm-multipath on a simulated machine: one LUN seen through two SCSI paths
//! (sdc, sdd) and assembled as the map dm-0. The inventory lists the map
//! once and not its paths, root device hints match the map by the LUN's
//! identity, and erasing acts on the map once (its bytes are the paths'
//! bytes: the simulator backs all three with one file).

use std::fs;
use std::path::Path;

use agent_tests::host::Host;
use agent_tests::{managers_dir, sim_host_config};
use ironic_host::StepKind;
use ironic_sim::{MachineDescription, SimMachine};
use serde_json::{json, Value};

const MACHINE: &str = r#"
hostname = "mpath-test"
[cpu]
model = "x"
count = 2
[memory]
total_mib = 2048
modules_mib = [2048]
[[disks]]
name = "sda"
size = "8GiB"
serial = "LOCAL-1"
[[disks]]
name = "sdc"
size = "6GiB"
transport = "sas"
hctl = "5:0:0:0"
vendor = "NETAPP"
model = "LUN C-Mode"
wwn = "0x600a098038303053"
serial = "80TNL$LUN7"
[[disks]]
name = "sdd"
size = "6GiB"
transport = "sas"
hctl = "6:0:0:0"
vendor = "NETAPP"
model = "LUN C-Mode"
wwn = "0x600a098038303053"
serial = "80TNL$LUN7"
[[multipath]]
name = "dm-0"
wwid = "3600a098038303053"
paths = ["sdc", "sdd"]
"#;

struct Fixture {
    host: Host,
    sim: SimMachine,
    _root: tempfile::TempDir,
    _managers: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let desc = MachineDescription::from_toml(MACHINE, Path::new("mpath.toml")).expect("machine");
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

fn hints(h: Value) -> Value {
    json!({"uuid": "n", "properties": {"root_device": h}, "instance_info": {}})
}

#[test]
fn the_map_is_one_disk_and_its_paths_are_none() {
    let f = fixture();
    let inventory = f.host.inventory(true).expect("inventory");
    let disks = inventory["disks"].as_array().expect("disks");
    let names: Vec<&str> = disks.iter().filter_map(|d| d["name"].as_str()).collect();
    assert_eq!(names, ["/dev/sda", "/dev/dm-0"], "{}", inventory["disks"]);
    let map = &disks[1];
    assert_eq!(map["size"], 6u64 << 30);
    assert_eq!(map["wwn"], "0x600a098038303053");
    assert_eq!(map["serial"], "3600a098038303053");
}

#[test]
fn hints_select_the_map_by_the_lun_s_identity() {
    let f = fixture();
    for h in [
        json!({"wwn": "0x600a098038303053"}),
        json!({"serial": "3600a098038303053"}),
        json!({"size": 6}),
    ] {
        assert_eq!(
            f.host
                .os_install_device(Some(&hints(h.clone())))
                .expect("found"),
            "/dev/dm-0",
            "{h}"
        );
    }
    // A path's name is no candidate.
    let err = f
        .host
        .os_install_device(Some(&hints(json!({"name": "/dev/sdc"}))))
        .expect_err("paths are not disks");
    assert!(err.to_string().contains("No suitable device"), "{err}");
}

#[test]
fn erasing_acts_on_the_map_once() {
    let f = fixture();
    let lun = f.sim.disk_path("dm-0");
    // Data written through one path is the map's data.
    fs::write(f.sim.disk_path("sdc"), vec![0xA5u8; 1 << 20]).expect("write through a path");
    assert_eq!(fs::read(&lun).expect("map")[..16], [0xA5; 16]);
    let node = json!({
        "uuid": "n",
        "driver_internal_info": {"agent_erase_devices_iterations": 0, "agent_enable_ata_secure_erase": false},
    });
    let result = f
        .host
        .execute_step(
            StepKind::Clean,
            "erase_devices",
            &node,
            &json!([]),
            &json!({}),
            &|_, _| {},
        )
        .expect("erased");
    let erased: Vec<&String> = result.as_object().expect("map of devices").keys().collect();
    assert_eq!(erased, ["/dev/sda", "/dev/dm-0"]);
    assert!(
        fs::read(f.sim.disk_path("sdd")).expect("path")[..1 << 20]
            .iter()
            .all(|b| *b == 0),
        "the LUN is zeroed, as every path sees"
    );
    let result = f
        .host
        .execute_step(
            StepKind::Clean,
            "erase_devices_metadata",
            &node,
            &json!([]),
            &json!({}),
            &|_, _| {},
        )
        .expect("metadata erased");
    assert_eq!(result, Value::Null, "{result}");
}
