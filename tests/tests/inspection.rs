//! Inspection against a real Ironic: what the collectors send arrives where
//! Ironic keeps it. The `logs` collector's archive is stored by Ironic
//! (`[agent] deploy_logs_collect = always`, local storage) and must hold
//! the agent's own log and the machine's log sources, not an empty tar.
//! The other collectors' data lands in the node's plugin data, and an
//! unknown collector does not spoil the inspection.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use agent_tests::ironic::*;

/// Ironic stores inspection logs in `<work>/ramdisk-logs`.
fn logs_conf(work_logs: &Path) -> String {
    format!(
        "[agent]\ndeploy_logs_collect = always\ndeploy_logs_storage_backend = local\n\
         deploy_logs_local_path = {}\n",
        work_logs.display()
    )
}

/// Every member of a `.tar.gz`: (name, content).
fn untar(path: &Path) -> Vec<(String, Vec<u8>)> {
    let out = std::process::Command::new("tar")
        .arg("-tzf")
        .arg(path)
        .output()
        .expect("tar -t");
    assert!(out.status.success(), "{} is not a tar.gz", path.display());
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    names
        .into_iter()
        .map(|name| {
            let mut child = std::process::Command::new("tar")
                .arg("-xzOf")
                .arg(path)
                .arg(&name)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("tar -x");
            let mut data = Vec::new();
            child
                .stdout
                .take()
                .expect("stdout")
                .read_to_end(&mut data)
                .expect("read member");
            let _ = child.wait();
            (name, data)
        })
        .collect()
}

/// NUMA and USB sysfs entries and a `dmidecode` stand-in: what the
/// collectors read on a real machine.
fn add_collector_sources(root: &Path) {
    let node = root.join("sys/devices/system/node/node0");
    std::fs::create_dir_all(node.join("cpu0/topology")).expect("numa");
    std::fs::write(node.join("meminfo"), "Node 0 MemTotal:        1998848 kB\n").expect("meminfo");
    std::fs::write(node.join("cpu0/topology/core_id"), "0\n").expect("core_id");
    let usb = root.join("sys/bus/usb/devices/1-1");
    std::fs::create_dir_all(&usb).expect("usb");
    for (f, v) in [
        ("product", "Virtual Keyboard"),
        ("manufacturer", "Aten"),
        ("busnum", "1"),
        ("devnum", "2"),
    ] {
        std::fs::write(usb.join(f), format!("{v}\n")).expect("usb attr");
    }
    agent_tests::stand_in_program(
        &root.join(".ironic-sim/bin"),
        "dmidecode",
        "printf 'Handle 0x0000, DMI type 0, 26 bytes\\nBIOS Information\\n\\tVendor: Dell Inc.\\n'",
    );
}

#[test]
fn inspection_logs_reach_ironic_with_the_agents_log() {
    if skip() {
        return;
    }
    let _one = one_ironic();
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, mac) = sim_machine(dir.path());
    add_collector_sources(&root);
    let logs_dir = dir.path().join("ramdisk-logs");
    let ironic = Ironic::start_with_conf(false, &logs_conf(&logs_dir));
    let uuid = ironic.enroll(&mac);
    ironic.provision(&uuid, "inspect");
    ironic.wait_state(&uuid, &["inspect wait"], Duration::from_secs(60));
    let agent = start_agent(
        &root,
        &ironic,
        agent_tests::free_port(),
        "ipa-advertise-protocol=http \
         ipa-inspection-collectors=default,logs,numa-topology,usb-devices,dmi-decode,no-such-collector",
    );
    ironic.wait_state(&uuid, &["manageable"], Duration::from_secs(120));
    drop(agent);
    let (_, data) = ironic.call(
        reqwest::Method::GET,
        &format!("/v1/nodes/{uuid}/inventory"),
        None,
    );
    let plugin = &data["plugin_data"];
    assert_eq!(
        plugin["numa_topology"],
        serde_json::json!({"ram": [{"numa_node": 0, "size_kb": 1998848}],
                           "cpus": [{"cpu": 0, "numa_node": 0, "thread_siblings": [0]}],
                           "nics": [{"name": "eno1", "numa_node": 0}, {"name": "eno2", "numa_node": 0}]}),
        "{plugin}"
    );
    assert_eq!(
        plugin["usb_devices"],
        serde_json::json!([{"product": "Virtual Keyboard", "vendor": "Aten", "handle": "USB:1:2"}])
    );
    assert_eq!(plugin["dmi"]["bios"]["Vendor"], "Dell Inc.", "{plugin}");

    let stored: Vec<_> = std::fs::read_dir(&logs_dir)
        .expect("Ironic stored inspection logs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().contains("inspect"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let members = untar(&stored[0]);
    let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    let agent_log = members
        .iter()
        .find(|(n, _)| n == "ironic-agent.log")
        .unwrap_or_else(|| panic!("no agent log in {names:?}"));
    let text = String::from_utf8_lossy(&agent_log.1);
    assert!(
        text.contains("hardware manager loaded"),
        "the agent's own log lines: {text}"
    );
    let cmdline = members
        .iter()
        .find(|(n, _)| n == "proc/cmdline")
        .unwrap_or_else(|| panic!("no proc/cmdline in {names:?}"));
    assert!(String::from_utf8_lossy(&cmdline.1).contains("ipa-inspection-collectors=default,logs"));
}
