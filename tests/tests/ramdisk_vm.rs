//! The ramdisk booted in a virtual machine and driven by a real Ironic
//! through inspection, cleaning, deploy by root device hint, undeploy, and a
//! manager hot-loaded by manual cleaning, then run: the x86-64 ramdisk, and
//! the aarch64 one (`make ramdisk-aarch64`) in an emulated Arm machine,
//! `#[ignore]`d (`make vm-test-aarch64`) to keep `make test` within its time.
//!
//! QEMU (`qemu-system-x86_64`, KVM when `/dev/kvm` is usable, else TCG;
//! `qemu-system-aarch64 -M virt`, TCG, for aarch64) boots Debian's kernel
//! with the ramdisk `ramdisk/build.sh` makes from the agent under test. The VM's only network is QEMU's user-mode network: the guest
//! reaches the host's loopback at 10.0.2.2 (Ironic's API, the image server)
//! and Ironic reaches the agent through a forwarded 127.0.0.1 port, which the
//! agent advertises. Disks are sparse files. The suite plays Ironic's power
//! driver: it boots the VM when Ironic waits for the agent and stops it when
//! Ironic would power it off; a power-off the agent performs itself ends the
//! QEMU process.
//!
//! `RAMDISK_DIR` points at a ready ramdisk (`make vm-test` uses the static
//! one from `make ramdisk`); otherwise the test builds one from the debug
//! agent into `target/ramdisk-test`. The aarch64 test boots
//! `RAMDISK_DIR_AARCH64` (default `target/ramdisk-aarch64`). `IRONIC_TESTS=skip`
//! skips them with a message; without QEMU (`make setup`, `make
//! ramdisk-aarch64` install it) they fail.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use agent_tests::ironic::*;
use agent_tests::vm::{
    self, accelerator, ramdisk, sparse_disk, Arch, ForwardProxy, Vm, VmSpec, GIB, SMALL_SERIAL,
    TARGET_SERIAL, VM_MAC,
};
use serde_json::json;

/// Polls Ironic until the node is in one of `states`; fails early with the
/// VM's console when the node fails, or when the VM stops and the phase does
/// not end with the agent powering it off.
fn wait_state_vm(ironic: &Ironic, uuid: &str, states: &[&str], vm: &mut Vm, timeout: Duration) {
    let ends_powered_off = states == ["active"];
    let console = vm.console.clone();
    let child = &mut vm.child;
    vm::wait_state_vm(
        ironic,
        uuid,
        states,
        timeout,
        &mut || match (ends_powered_off, child.try_wait()) {
            (false, Ok(Some(status))) => Some(format!("the VM stopped ({status})")),
            _ => None,
        },
        &|| std::fs::read_to_string(&console).unwrap_or_default(),
    );
}

#[test]
fn ramdisk_in_a_vm_through_a_full_ironic_cycle() {
    if skip() {
        return;
    }
    cycle(Arch::X86_64, ramdisk());
}

#[test]
#[ignore = "aarch64 TCG cycle: run with make vm-test-aarch64"]
fn aarch64_ramdisk_in_a_vm_through_a_full_ironic_cycle() {
    if skip() {
        return;
    }
    let dir = agent_tests::workspace_root().join(
        std::env::var_os("RAMDISK_DIR_AARCH64").unwrap_or_else(|| "target/ramdisk-aarch64".into()),
    );
    let sizes = std::fs::read_to_string(dir.join("sizes.txt")).unwrap_or_default();
    assert!(
        sizes.starts_with("kernel: ") && sizes.lines().next().is_some_and(|l| l.contains("-arm64")),
        "{}: no aarch64 ramdisk there (`make ramdisk-aarch64` builds it); sizes.txt: {sizes:?}",
        dir.display()
    );
    cycle(Arch::Aarch64, dir);
}

fn cycle(arch: Arch, ramdisk: PathBuf) {
    assert!(
        arch.qemu().is_some(),
        "{} is not installed (`make setup`, or `make ramdisk-aarch64` for aarch64, installs it)",
        arch.qemu_name()
    );
    let _one = one_ironic();
    let memory_mib: u32 = std::env::var("VM_MEMORY_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path();
    let accel = accelerator(arch, &ramdisk, work);
    let timeout = Duration::from_secs(if accel == "kvm" { 180 } else { 900 });
    eprintln!("VM: {arch:?}, {memory_mib} MiB, {accel}");
    // One HTTP server for images and managers on the host's loopback, which
    // the guest sees at 10.0.2.2; image URLs go through the proxy there.
    let http_root = work.join("http");
    std::fs::create_dir_all(http_root.join("src")).expect("http root");
    let server = ImageServer::start(&http_root);
    let guest_http = format!("http://10.0.2.2:{}", server.port);
    let proxy = ForwardProxy::start();
    std::env::set_var(
        "IRONIC_EXTRA_CONF",
        // Ironic polls the power state after asking the agent to power off;
        // the fake power driver never reports it, so keep that wait short.
        "[agent]\npost_deploy_get_power_state_retries = 2\n\
         post_deploy_get_power_state_retry_interval = 1\n",
    );
    let ironic = Ironic::start(false);
    std::env::remove_var("IRONIC_EXTRA_CONF");
    let uuid = ironic.enroll(VM_MAC);
    ironic.patch(
        &uuid,
        json!([{"op": "replace", "path": "/properties/cpu_arch", "value": arch.ironic_cpu_arch()}]),
    );
    // The agent powers the VM off itself after the deploy (no out-of-band
    // reboot), so the suite can see the guest end; images come through the
    // proxy.
    ironic.patch(
        &uuid,
        json!([
            {"op": "replace", "path": "/driver_info/deploy_forces_oob_reboot", "value": false},
            {"op": "add", "path": "/driver_info/image_http_proxy",
             "value": format!("http://10.0.2.2:{}", proxy.port)},
        ]),
    );

    let small = work.join("small.img");
    let target = work.join("target.img");
    sparse_disk(&small, 5 * GIB);
    sparse_disk(&target, 8 * GIB);
    let disks = [
        (small.clone(), SMALL_SERIAL.to_string()),
        (target.clone(), TARGET_SERIAL.to_string()),
    ];
    let mut boots = 0;
    let mut boot = || {
        boots += 1;
        Vm::boot(&VmSpec {
            arch,
            ramdisk: &ramdisk,
            mac: VM_MAC,
            disks: &disks,
            memory_mib,
            accel,
            ironic_port: ironic.port,
            agent_port: agent_tests::free_port(),
            console: work.join(format!("console-{boots}.log")),
            uefi_vars: None,
            cmdline: "ipa-inspection-collectors=default,logs".into(),
        })
    };

    // Inspection: the inventory the agent posts from inside the VM.
    let t = Instant::now();
    ironic.provision(&uuid, "inspect");
    ironic.wait_state(&uuid, &["inspect wait"], Duration::from_secs(60));
    let mut vm = boot();
    wait_state_vm(&ironic, &uuid, &["manageable"], &mut vm, timeout);
    let inspect_s = t.elapsed().as_secs_f64();
    drop(vm);
    let (s, inventory) = ironic.call(
        reqwest::Method::GET,
        &format!("/v1/nodes/{uuid}/inventory"),
        None,
    );
    assert_eq!(s, 200, "{inventory}");
    let disks_seen = &inventory["inventory"]["disks"];
    for (serial, size) in [(SMALL_SERIAL, 5 * GIB), (TARGET_SERIAL, 8 * GIB)] {
        assert!(
            disks_seen
                .as_array()
                .is_some_and(|d| d.iter().any(|d| d["serial"] == serial && d["size"] == size)),
            "disk {serial} of {size} bytes in {disks_seen}"
        );
    }
    assert_eq!(
        inventory["inventory"]["cpu"]["architecture"],
        arch.ironic_cpu_arch(),
        "the agent ran on the emulated CPU"
    );
    assert!(
        inventory["inventory"]["interfaces"]
            .as_array()
            .is_some_and(|i| i.iter().any(|i| i["mac_address"] == VM_MAC)),
        "the VM's NIC in {}",
        inventory["inventory"]["interfaces"]
    );

    // Cleaning (provide): a GPT-like signature on the target disk is erased.
    write_at(&target, 512, b"EFI PART");
    let t = Instant::now();
    ironic.provision(&uuid, "provide");
    ironic.wait_state(&uuid, &["clean wait"], Duration::from_secs(60));
    let mut vm = boot();
    let first_heartbeat_s =
        vm::wait_first_heartbeat(&ironic, &uuid, timeout, &|| vm.console_text())
            .duration_since(vm.started)
            .as_secs_f64();
    wait_state_vm(&ironic, &uuid, &["available"], &mut vm, timeout);
    let provide_s = t.elapsed().as_secs_f64();
    // The generic manager precompiled at build time (for another
    // architecture too) loads as it is: no compile at boot.
    let console = vm.console_text();
    assert!(
        console
            .lines()
            .any(|l| l.contains("loaded hardware manager manager=generic")
                && l.contains("from=Cache")),
        "the generic manager came precompiled from the ramdisk's cache:\n{console}"
    );
    drop(vm);
    assert_eq!(
        read_at(&target, 512, 8),
        vec![0; 8],
        "cleaning erased the signature"
    );

    // Deploy a raw whole-disk image onto the disk named by a serial hint
    // (not the smallest disk, which is the default choice).
    let image = http_root.join("src/disk.raw");
    build_image(&image);
    ironic.patch(
        &uuid,
        json!([
            {"op": "add", "path": "/properties/root_device", "value": {"serial": TARGET_SERIAL}},
            {"op": "add", "path": "/instance_info", "value": {
                "image_source": server.url("src/disk.raw"),
                "image_os_hash_algo": "sha256",
                "image_os_hash_value": sha256_of(&image),
                "image_disk_format": "raw",
            }},
        ]),
    );
    let small_head = read_at(&small, 0, 1 << 20);
    let t = Instant::now();
    ironic.provision(&uuid, "active");
    ironic.wait_state(&uuid, &["wait call-back"], Duration::from_secs(120));
    let mut vm = boot();
    wait_state_vm(&ironic, &uuid, &["active"], &mut vm, timeout);
    let deploy_s = t.elapsed().as_secs_f64();
    assert!(
        vm.wait_powered_off(Duration::from_secs(60)),
        "the agent powered the VM off at the end of the deploy\nVM console:\n{}",
        vm.console_text()
    );
    drop(vm);
    assert!(
        disk_starts_with(&target, &image),
        "the target disk holds the image"
    );
    assert_eq!(
        read_at(&small, 0, 1 << 20),
        small_head,
        "the other disk is untouched"
    );

    // Undeploy: cleaning again wipes the deployed partition table.
    let t = Instant::now();
    ironic.provision(&uuid, "deleted");
    ironic.wait_state(&uuid, &["clean wait"], Duration::from_secs(60));
    let mut vm = boot();
    wait_state_vm(&ironic, &uuid, &["available"], &mut vm, timeout);
    let undeploy_s = t.elapsed().as_secs_f64();
    drop(vm);
    assert_eq!(
        read_at(&target, 510, 2),
        vec![0; 2],
        "the MBR signature is gone"
    );

    // A manager hot-loaded through manual cleaning, then its step run by a
    // second manual clean on the same running agent: no ramdisk rebuild.
    // VM_HOTLOAD_COMPONENT: another component with the same clean step (e.g.
    // one built for a RAMDISK_DIR made from another checkout).
    let component = std::env::var_os("VM_HOTLOAD_COMPONENT")
        .map(PathBuf::from)
        .unwrap_or_else(|| agent_tests::guest_component("test_manager_vendor_profile"));
    std::fs::create_dir_all(http_root.join("managers")).expect("managers dir");
    std::fs::copy(&component, http_root.join("managers/vendor_profile.wasm"))
        .expect("copy manager");
    let digest = sha256_of(&component);
    ironic.provision(&uuid, "manage");
    ironic.wait_state(&uuid, &["manageable"], Duration::from_secs(60));
    let t = Instant::now();
    ironic.provision_with(
        &uuid,
        "clean",
        json!({"clean_steps": [{"interface": "deploy", "step": "load_manager", "args": {
            "url": format!("{guest_http}/managers/vendor_profile.wasm"), "sha256": digest,
        }}]}),
    );
    let mut vm = boot();
    wait_state_vm(&ironic, &uuid, &["manageable"], &mut vm, timeout);
    ironic.provision_with(
        &uuid,
        "clean",
        json!({"clean_steps": [{"interface": "deploy", "step": "apply_vendor_profile", "args": {"profile": "vm-test"}}]}),
    );
    wait_state_vm(&ironic, &uuid, &["manageable"], &mut vm, timeout);
    let hot_load_s = t.elapsed().as_secs_f64();
    let console = vm.console_text();
    assert!(
        console.contains("hardware manager loaded by load_manager")
            && console.contains("step=apply_vendor_profile"),
        "the loaded manager's step ran in the VM:\n{console}"
    );
    drop(vm);

    eprintln!(
        "VM ({arch:?}, {memory_mib} MiB, {accel}): first heartbeat {first_heartbeat_s:.1}s after \
         VM start; inspect {inspect_s:.1}s, provide {provide_s:.1}s, deploy {deploy_s:.1}s, \
         undeploy {undeploy_s:.1}s, load_manager + its step {hot_load_s:.1}s"
    );
}
