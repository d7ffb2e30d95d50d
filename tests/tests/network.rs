//! The agent's native networking on real links: a pair of network
//! namespaces made by the test, joined by a veth, with lldpd on the far
//! ("switch") side; the agent runs in the near namespace on a simulated
//! machine whose NIC is the near veth end. A real Ironic (this host's
//! loopback, proxied into the namespace) with the `parse-lldp` and
//! `local-link-connection` hooks inspects the node.
//!
//! Runs as root (CI does); elsewhere the test fails, naming why.
//!
//! Longer than most files here: the tests share the namespace, veth and daemon setup, which is
//! costly and must be torn down in one place.

use std::process::Stdio;
use std::time::Duration;

use agent_tests::ironic::*;
use agent_tests::netns::{self, NetNs};
use serde_json::json;

const NIC: &str = "nic0";
const NIC_MAC: &str = "52:54:00:aa:bb:01";
const SWITCH_MAC: &str = "02:11:22:33:44:55";
const SWITCH_PORT: &str = "swp7";
const SWITCH_NAME: &str = "tor-switch-1";
const VLANS: [u16; 2] = [100, 200];

/// The default simulated machine with one NIC: the near veth end.
fn machine_description() -> String {
    let default = ironic_sim::DEFAULT_MACHINE;
    let nics = default.find("[[nics]]").expect("default machine has NICs");
    let bmc = default.find("[bmc]").expect("default machine has a BMC");
    format!(
        "{}[[nics]]\nname = \"{NIC}\"\nmac = \"{NIC_MAC}\"\npci_address = \"0000:04:00.0\"\n\
         driver = \"igb\"\n\n{}",
        &default[..nics],
        &default[bmc..]
    )
    .replace(
        "pxe_interface = \"eno1\"",
        &format!("pxe_interface = \"{NIC}\""),
    )
}

/// Whether the running kernel can make 802.1Q interfaces (some CI kernels
/// are built without `8021q`).
fn kernel_has_vlans(ns: &NetNs) -> bool {
    let ok = ns.try_ip(&[
        "link",
        "add",
        "link",
        NIC,
        "name",
        "vlanprobe",
        "type",
        "vlan",
        "id",
        "4000",
    ]);
    if ok {
        ns.ip(&["link", "del", "vlanprobe"]);
    }
    ok
}

fn inspection_conf(logs: &std::path::Path) -> String {
    format!(
        "[inspector]\nhooks = $default_hooks,parse-lldp,local-link-connection\n\
         [agent]\ndeploy_logs_collect = always\ndeploy_logs_storage_backend = local\n\
         deploy_logs_local_path = {}\n",
        logs.display()
    )
}

/// The agent's log as Ironic stored it with the inspection logs.
fn stored_agent_log(logs: &std::path::Path) -> String {
    let stored = std::fs::read_dir(logs)
        .expect("Ironic stored inspection logs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .next()
        .expect("one inspection log archive");
    let out = std::process::Command::new("tar")
        .arg("-xzOf")
        .arg(&stored)
        .arg("ironic-agent.log")
        .output()
        .expect("tar");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lldp_reaches_ironic_local_link_connection_and_vlans_follow() {
    if skip() {
        return;
    }
    assert!(
        netns::available(),
        "this test creates network namespaces: run it as root with iproute2"
    );
    let _one = one_ironic();
    let dir = tempfile::tempdir().expect("tempdir");
    let agent_ns = NetNs::new("agent");
    let switch_ns = NetNs::new("switch");
    agent_ns.veth_to(NIC, NIC_MAC, &switch_ns, SWITCH_PORT);
    switch_ns.ip(&["link", "set", SWITCH_PORT, "address", SWITCH_MAC]);
    let vlans_supported = kernel_has_vlans(&agent_ns);
    // The agent brings its NIC up itself, as for a NIC that booted down.
    agent_ns.ip(&["link", "set", NIC, "down"]);
    let _lldpd = netns::lldpd(&switch_ns, SWITCH_PORT, SWITCH_NAME, &VLANS, dir.path());

    let (root, mac) = sim_machine_described(dir.path(), Some(&machine_description()));
    assert_eq!(mac, NIC_MAC);
    let logs = dir.path().join("ramdisk-logs");
    let ironic = Ironic::start_with_conf(false, &inspection_conf(&logs));
    let _proxy = agent_ns.proxy_loopback(ironic.port, ironic.port);
    let uuid = ironic.enroll(&mac);
    ironic.provision(&uuid, "inspect");
    ironic.wait_state(&uuid, &["inspect wait"], Duration::from_secs(60));

    std::fs::write(
        root.join("proc/cmdline"),
        format!(
            "ipa-api-url={} ipa-inspection-collectors=default,logs,lldp ipa-collect-lldp=1 \
             ipa-lldp-timeout=15 ipa-enable-vlan-interfaces=all ipa-advertise-protocol=http",
            ironic.url()
        ),
    )
    .expect("cmdline");
    let port = agent_tests::free_port();
    let agent = agent_ns
        .command(agent_tests::agent_binary())
        .arg("--hardware-root")
        .arg(&root)
        .arg("--managers-dir")
        .arg(dir.path().join("managers"))
        .args([
            "--listen_host",
            "127.0.0.1",
            "--listen_port",
            &port.to_string(),
        ])
        .args(["--advertise_host", "127.0.0.1"])
        .stderr(Stdio::inherit())
        .spawn()
        .expect("agent in the namespace");
    let _agent = netns::Daemon { child: agent };
    ironic.wait_state(&uuid, &["manageable"], Duration::from_secs(120));

    // Ironic's local-link-connection hook filled the port from LLDP.
    let (_, ports) = ironic.call(
        reqwest::Method::GET,
        &format!("/v1/ports?node_uuid={uuid}&fields=address,local_link_connection"),
        None,
    );
    assert_eq!(
        ports["ports"][0]["local_link_connection"],
        json!({"switch_id": SWITCH_MAC, "port_id": SWITCH_PORT, "switch_info": SWITCH_NAME}),
        "{ports}"
    );
    let (_, data) = ironic.call(
        reqwest::Method::GET,
        &format!("/v1/nodes/{uuid}/inventory"),
        None,
    );
    let interfaces = data["inventory"]["interfaces"]
        .as_array()
        .expect("interfaces");
    let nic = interfaces
        .iter()
        .find(|i| i["name"] == NIC)
        .expect("the NIC in the inventory");
    let tlvs = nic["lldp"].as_array().expect("interfaces[].lldp");
    assert!(
        tlvs.contains(&json!([5, hex(SWITCH_NAME)])),
        "system name TLV in {tlvs:?}"
    );
    // parse-lldp's view of the same frame.
    let parsed = &data["plugin_data"]["parsed_lldp"][NIC];
    assert_eq!(parsed["switch_system_name"], SWITCH_NAME, "{parsed}");
    assert_eq!(parsed["switch_port_id"], SWITCH_PORT, "{parsed}");
    // The lldp collector's raw data.
    assert_eq!(data["plugin_data"]["lldp_raw"][NIC], nic["lldp"]);

    let vlan_names: Vec<String> = VLANS.iter().map(|v| format!("{NIC}.{v}")).collect();
    if vlans_supported {
        for name in &vlan_names {
            assert!(agent_ns.has_link(name), "{name} exists in the namespace");
            assert!(
                interfaces.iter().any(|i| i["name"] == name.as_str()),
                "{name} is in the inventory: {interfaces:?}"
            );
        }
    } else {
        // This kernel has no 802.1Q: the agent must have tried each VLAN
        // the switch announced and said why it could not.
        let log = stored_agent_log(&logs);
        for vid in VLANS {
            assert!(
                log.contains("cannot add VLAN interface") && log.contains(&format!("vid={vid}")),
                "the agent reports VLAN {vid}: {log}"
            );
        }
        eprintln!("kernel without 802.1Q: VLAN creation checked through the agent's report");
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// On a simulated machine in this host's namespace nothing real changes:
/// the VLANs `enable_vlan_interfaces` names are recorded in the machine's
/// actions file and reported in the inventory the API serves.
#[test]
fn vlans_on_a_simulated_machine_are_recorded_and_in_the_inventory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, _) = sim_machine(dir.path());
    std::fs::write(
        root.join("proc/cmdline"),
        "ipa-enable-vlan-interfaces=eno1.100,b4:96:91:aa:bb:02.200,nosuch.5",
    )
    .expect("cmdline");
    let port = agent_tests::free_port();
    let child = std::process::Command::new(agent_tests::agent_binary())
        .arg("--standalone")
        .arg("--hardware-root")
        .arg(&root)
        .arg("--managers-dir")
        .arg(dir.path().join("managers"))
        .args([
            "--listen_host",
            "127.0.0.1",
            "--listen_port",
            &port.to_string(),
        ])
        .args(["--agent_token", "vlan-test-token"])
        .stderr(Stdio::inherit())
        .spawn()
        .expect("agent");
    let _agent = netns::Daemon { child };
    let http = reqwest::blocking::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/commands/?wait=true&agent_token=vlan-test-token");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let answer: serde_json::Value = loop {
        let sent = http
            .post(&url)
            .json(&json!({"name": "poll.get_hardware_info", "params": {}}))
            .send();
        if let Ok(r) = sent {
            break r.json().expect("JSON answer");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent API did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let interfaces = answer["command_result"]["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("{answer}"));
    let by_name = |n: &str| interfaces.iter().find(|i| i["name"] == n).cloned();
    let vlan = by_name("eno1.100").unwrap_or_else(|| panic!("eno1.100 in {interfaces:?}"));
    assert_eq!(vlan["mac_address"], "b4:96:91:aa:bb:01");
    assert_eq!(vlan["pci_address"], serde_json::Value::Null);
    assert!(
        by_name("eno2.200").is_some(),
        "named by MAC: {interfaces:?}"
    );
    assert!(by_name("nosuch.5").is_none());
    let actions = std::fs::read_to_string(root.join(".ironic-sim/actions.jsonl")).expect("actions");
    let recorded: Vec<serde_json::Value> = actions
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|a: &serde_json::Value| a["action"] == "vlan_add")
        .collect();
    assert_eq!(
        recorded
            .iter()
            .map(|a| a["interface"].as_str().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["eno1.100", "eno2.200"]
    );
}

/// chronyd (unpacked by tests/setup-tools.sh) serving its local clock on
/// the namespace's loopback; `-x`: it never touches a clock.
fn chronyd(ns: &NetNs, dir: &std::path::Path) -> netns::Daemon {
    let chronyd = agent_tests::target_dir().join("test-tools/chrony/usr/sbin/chronyd");
    assert!(
        chronyd.exists(),
        "{} missing: run tests/setup-tools.sh",
        chronyd.display()
    );
    let conf = dir.join("chrony.conf");
    std::fs::write(
        &conf,
        format!(
            "local stratum 8\nallow all\nport 123\ncmdport 0\npidfile {}\n",
            dir.join("chronyd.pid").display()
        ),
    )
    .expect("chrony.conf");
    let child = ns
        .command(chronyd)
        .args(["-x", "-d", "-u", "root", "-f"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chronyd");
    netns::Daemon { child }
}

/// `ntp_server`: the agent asks the server before anything else (a
/// simulated machine records the offset instead of stepping the clock);
/// with `fail_if_clock_not_set` an unreachable server stops the agent.
#[test]
fn clock_is_synced_from_ntp_server_first() {
    assert!(
        netns::available(),
        "this test creates network namespaces: run it as root with iproute2"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = NetNs::new("ntp");
    let _chronyd = chronyd(&ns, dir.path());
    let (root, _) = sim_machine(dir.path());
    let log = dir.path().join("agent.log");
    let agent = |cmdline: &str, flags: &[&str]| {
        std::fs::write(root.join("proc/cmdline"), cmdline).expect("cmdline");
        ns.command(agent_tests::agent_binary())
            .arg("--standalone")
            .arg("--hardware-root")
            .arg(&root)
            .arg("--managers-dir")
            .arg(dir.path().join("managers"))
            .args(["--listen_host", "127.0.0.1", "--listen_port", "9999"])
            .args(flags)
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("agent")
    };
    let actions = root.join(".ironic-sim/actions.jsonl");
    let synced = || {
        std::fs::read_to_string(&actions)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|a| a["action"] == "clock_set")
    };
    let running = netns::Daemon {
        child: agent("ipa-ntp-server=127.0.0.1", &[]),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let record = loop {
        if let Some(r) = synced() {
            break r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no clock_set recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(running);
    assert_eq!(record["server"], "127.0.0.1");
    // Both clocks are this machine's: the offset is tiny.
    let offset = record["offset_us"].as_i64().expect("offset");
    assert!(offset.abs() < 1_000_000, "offset {offset} µs");

    // No route to the server in the namespace: the agent gives up and, as
    // told (IPA has no kernel parameter for it: a flag), stops with an
    // error naming the setting.
    std::fs::remove_file(&actions).expect("reset actions");
    let mut failing = netns::Daemon {
        child: agent("ipa-ntp-server=192.0.2.1", &["--fail_if_clock_not_set"]),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = failing.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = std::fs::read_to_string(&log).expect("agent log");
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("fail_if_clock_not_set"), "{stderr}");
    assert!(stderr.contains("192.0.2.1"), "{stderr}");
    assert!(synced().is_none());
}

/// Announces Ironic as `baremetal._openstack._tcp.local.` with python
/// zeroconf (the library Ironic registers itself with; from Ironic's venv).
fn mdns_responder(ns: &NetNs, address: &str, port: u16, props: &[(&str, &str)]) -> netns::Daemon {
    let python = agent_tests::target_dir().join("ironic-venv/bin/python");
    let props: String = props
        .iter()
        .map(|(k, v)| format!("{k:?}: {v:?}, "))
        .collect();
    let script = format!(
        "import socket, time, zeroconf\n\
         info = zeroconf.ServiceInfo('_openstack._tcp.local.', 'baremetal._openstack._tcp.local.',\n\
             addresses=[socket.inet_aton({address:?})], port={port}, properties={{{props}}},\n\
             server='ironic-test.local.')\n\
         zc = zeroconf.Zeroconf(interfaces=[{address:?}])\n\
         zc.register_service(info)\n\
         while True:\n    time.sleep(1)\n"
    );
    let child = ns
        .command(python)
        .args(["-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("zeroconf responder");
    netns::Daemon { child }
}

/// `ipa-api-url=mdns`: a real mDNS responder in the "switch" namespace
/// announces Ironic; the agent finds it, inspects through it, and takes
/// the announced `ipa_ntp_server` (allowed by default) but not a setting
/// outside `[mdns] allowed_overrides`.
#[test]
fn mdns_finds_ironic() {
    if skip() {
        return;
    }
    assert!(
        netns::available(),
        "this test creates network namespaces: run it as root with iproute2"
    );
    let _one = one_ironic();
    let dir = tempfile::tempdir().expect("tempdir");
    let agent_ns = NetNs::new("mdnsagent");
    let ironic_ns = NetNs::new("mdnsironic");
    agent_ns.veth_to(NIC, NIC_MAC, &ironic_ns, "ironic0");
    agent_ns.ip(&["addr", "add", "192.0.2.2/24", "dev", NIC]);
    ironic_ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ironic0"]);

    let ironic = Ironic::start(false);
    let _proxy = ironic_ns.proxy("192.0.2.1", ironic.port, ironic.port);
    let _chronyd = chronyd(&ironic_ns, dir.path());
    let _responder = mdns_responder(
        &ironic_ns,
        "192.0.2.1",
        ironic.port,
        &[
            ("protocol", "http"),
            ("ipa_ntp_server", "192.0.2.1"),
            ("ipa_lookup_timeout", "1"),
        ],
    );
    let (root, mac) = sim_machine_described(dir.path(), Some(&machine_description()));
    let uuid = ironic.enroll(&mac);
    ironic.provision(&uuid, "inspect");
    ironic.wait_state(&uuid, &["inspect wait"], Duration::from_secs(60));
    std::fs::write(
        root.join("proc/cmdline"),
        "ipa-api-url=mdns ipa-inspection-collectors=default ipa-advertise-protocol=http",
    )
    .expect("cmdline");
    let log = dir.path().join("agent.log");
    let agent = agent_ns
        .command(agent_tests::agent_binary())
        .arg("--hardware-root")
        .arg(&root)
        .arg("--managers-dir")
        .arg(dir.path().join("managers"))
        .args([
            "--listen_host",
            "192.0.2.2",
            "--advertise_host",
            "192.0.2.2",
        ])
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("agent");
    let _agent = netns::Daemon { child: agent };
    ironic.wait_state(&uuid, &["manageable"], Duration::from_secs(120));
    let text = std::fs::read_to_string(&log).expect("agent log");
    assert!(text.contains("Ironic found by mDNS"), "{text}");
    assert!(
        text.contains("not in [mdns] allowed_overrides") && text.contains("lookup_timeout"),
        "{text}"
    );
    let actions =
        std::fs::read_to_string(root.join(".ironic-sim/actions.jsonl")).unwrap_or_default();
    assert!(
        actions.contains(r#""action":"clock_set""#) && actions.contains(r#""server":"192.0.2.1""#),
        "ntp_server from the announcement: {actions}"
    );
}

/// Writes a FAT file system labelled `label` holding `files` over the disk
/// file `disk` (dosfstools and mtools, as a BMC's virtual floppy would
/// carry them).
fn fat_image(
    disk: &std::path::Path,
    label: &str,
    files: &[(&str, &str)],
    scratch: &std::path::Path,
) {
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().expect("run");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(std::process::Command::new("mkfs.vfat")
        .args(["-n", label])
        .arg(disk));
    for (path, content) in files {
        let local = scratch.join(path.replace('/', "_"));
        std::fs::write(&local, content).expect("file");
        let mut dir = String::new();
        for part in path
            .split('/')
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, d)| d.to_vec())
            .unwrap_or_default()
        {
            dir = if dir.is_empty() {
                part.to_string()
            } else {
                format!("{dir}/{part}")
            };
            let _ = std::process::Command::new("mmd")
                .arg("-i")
                .arg(disk)
                .arg(format!("::{dir}"))
                .output();
        }
        run(std::process::Command::new("mcopy")
            .arg("-i")
            .arg(disk)
            .arg(&local)
            .arg(format!("::{path}")));
    }
}

/// Virtual media: `boot_method=vmedia` and nothing else on the command
/// line; a 64 MiB FAT disk labelled `ir-vfd-dev` carries parameters.txt
/// (Ironic's URL) and network_data.json (a static address and a default
/// route). No DHCP anywhere: the agent applies the address and inspects.
#[test]
fn virtual_media_parameters_and_static_network() {
    if skip() {
        return;
    }
    assert!(
        netns::available(),
        "this test creates network namespaces: run it as root with iproute2"
    );
    let _one = one_ironic();
    let dir = tempfile::tempdir().expect("tempdir");
    let agent_ns = NetNs::new("vmagent");
    let ironic_ns = NetNs::new("vmironic");
    agent_ns.veth_to(NIC, NIC_MAC, &ironic_ns, "ironic0");
    ironic_ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "ironic0"]);
    let ironic = Ironic::start(false);
    let _proxy = ironic_ns.proxy("192.0.2.1", ironic.port, ironic.port);

    let description = machine_description().replacen(
        "[[nics]]",
        "[[disks]]\nname = \"sdc\"\nsize = \"64MiB\"\nmodel = \"Virtual Floppy\"\nserial = \"VF1\"\n\
         transport = \"usb\"\n\n[[nics]]",
        1,
    );
    let (root, mac) = sim_machine_described(dir.path(), Some(&description));
    let network_data = json!({
        "links": [{"id": "port0", "type": "phy", "ethernet_mac_address": NIC_MAC}],
        "networks": [{"id": "net0", "type": "ipv4", "link": "port0", "ip_address": "192.0.2.2",
                      "netmask": "255.255.255.0",
                      "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "192.0.2.1"}]}],
        "services": [{"type": "dns", "address": "192.0.2.53"}]
    });
    let parameters = format!(
        "ipa-api-url=http://192.0.2.1:{} ipa-inspection-collectors=default ipa-advertise-protocol=http\n",
        ironic.port
    );
    fat_image(
        &root.join("dev/sdc"),
        "ir-vfd-dev",
        &[
            ("parameters.txt", &parameters),
            (
                "openstack/latest/network_data.json",
                &network_data.to_string(),
            ),
        ],
        dir.path(),
    );
    std::fs::write(root.join("proc/cmdline"), "boot_method=vmedia").expect("cmdline");

    // The configuration layer as `ironic-agent config` shows it.
    let shown = std::process::Command::new(agent_tests::agent_binary())
        .args(["config", "--hardware-root"])
        .arg(&root)
        .output()
        .expect("config");
    let shown = String::from_utf8_lossy(&shown.stdout);
    let api_line = shown
        .lines()
        .find(|l| l.starts_with("api_url = "))
        .expect("api_url line");
    assert!(
        api_line.contains("192.0.2.1") && api_line.contains("/dev/sdc:parameters.txt"),
        "{api_line}"
    );

    let uuid = ironic.enroll(&mac);
    ironic.provision(&uuid, "inspect");
    ironic.wait_state(&uuid, &["inspect wait"], Duration::from_secs(60));
    let agent = agent_ns
        .command(agent_tests::agent_binary())
        .arg("--hardware-root")
        .arg(&root)
        .arg("--managers-dir")
        .arg(dir.path().join("managers"))
        .stderr(Stdio::inherit())
        .spawn()
        .expect("agent");
    let _agent = netns::Daemon { child: agent };
    ironic.wait_state(&uuid, &["manageable"], Duration::from_secs(120));
    let out = agent_ns
        .command("ip")
        .args(["-4", "-o", "addr", "show", "dev", NIC])
        .output()
        .expect("ip addr");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("192.0.2.2/24"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = agent_ns
        .command("ip")
        .args(["-4", "route", "show", "default"])
        .output()
        .expect("ip route");
    assert!(String::from_utf8_lossy(&out.stdout).contains("via 192.0.2.1"));
}
