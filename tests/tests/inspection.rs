//! Inspection against a real Ironic: what the collectors send arrives where
//! Ironic keeps it. The `logs` collector's archive is stored by Ironic
//! (`[agent] deploy_logs_collect = always`, local storage) and must hold
//! the agent's own log and the machine's log sources, not an empty tar.

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

#[test]
fn inspection_logs_reach_ironic_with_the_agents_log() {
    if skip() {
        return;
    }
    let _one = one_ironic();
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, mac) = sim_machine(dir.path());
    let logs_dir = dir.path().join("ramdisk-logs");
    let ironic = Ironic::start_with_conf(false, &logs_conf(&logs_dir));
    let uuid = ironic.enroll(&mac);
    ironic.provision(&uuid, "inspect");
    ironic.wait_state(&uuid, &["inspect wait"], Duration::from_secs(60));
    let agent = start_agent(
        &root,
        &ironic,
        agent_tests::free_port(),
        "ipa-advertise-protocol=http",
    );
    ironic.wait_state(&uuid, &["manageable"], Duration::from_secs(120));
    drop(agent);

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
