//! Storage under a real Ironic, in virtual machines running the ramdisk:
//! real mdadm, grub-install, mkfs, mount and efibootmgr on virtual disks.
//!
//! SAFETY: every program these tests exercise runs inside a QEMU guest
//! whose only disks are sparse files this test created in its temporary
//! directory; the guest's firmware variables are a copy of OVMF's template
//! in that directory too. Nothing on the host is partitioned, mounted or
//! given to mdadm/grub; the host only reads the disk files afterwards.
//! (docs/testing-storage.md explains why a VM and not the host's kernel.)
//!
//! * `software_raid_under_a_real_ironic` (`raid_interface = agent`): a
//!   RAID-1 root built by manual cleaning, a whole-disk image deployed onto
//!   it after a reboot (the array assembled at start-up, chosen as root by
//!   its `is_root_volume`), GRUB installed on both holders, `raid_config`
//!   stored; undeploy and `delete_configuration` leave both holders clean.
//!   Then RAID-1 + RAID-0 `MAX` (IPA requires the first volume to be
//!   RAID-1), the root chosen by IPA's smallest-disk rule.
//! * `partition_images_and_boot_loaders_under_a_real_ironic`: a partition
//!   image whose root file system carries Debian's signed EFI tree, deployed
//!   in UEFI mode (OVMF): the ESP holds shim and GRUB, the boot entry is in
//!   the VM's NVRAM; then in BIOS mode: grub-install put its boot code in
//!   the MBR and the gap after it, `/boot/grub` exists, and `inject_files`
//!   (a user deploy step) wrote files into partitions chosen by label and by
//!   number.
//!
//! `IRONIC_TESTS=skip` skips them; QEMU comes with `make setup`.
//!
//! A little over the usual size: the two VM cycles share their VM and Ironic setup.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agent_tests::ironic::*;
use agent_tests::storage_vm::*;
use serde_json::{json, Value};

const MIB: u64 = 1 << 20;

/// MD superblock 1.x magic (drivers/md/md.h, MD_SB_MAGIC).
const MD_MAGIC: u32 = 0xa92b_4efc;

struct Rig {
    ironic: Ironic,
    uuid: String,
    ramdisk: PathBuf,
    accel: &'static str,
    work: tempfile::TempDir,
    server: ImageServer,
    http_root: PathBuf,
    timeout: Duration,
    boots: u32,
}

impl Rig {
    fn new(extra_conf: &str) -> Rig {
        let ramdisk = ramdisk();
        let work = tempfile::tempdir().expect("tempdir");
        let accel = accelerator(&ramdisk, work.path());
        let http_root = work.path().join("http");
        std::fs::create_dir_all(&http_root).expect("http root");
        let server = ImageServer::start(&http_root);
        let proxy = ForwardProxy::start();
        std::env::set_var(
            "IRONIC_EXTRA_CONF",
            format!(
                "[agent]\npost_deploy_get_power_state_retries = 2\n\
                 post_deploy_get_power_state_retry_interval = 1\n{extra_conf}"
            ),
        );
        let ironic = Ironic::start(false);
        std::env::remove_var("IRONIC_EXTRA_CONF");
        let uuid = ironic.enroll(VM_MAC);
        ironic.patch(
            &uuid,
            json!([
                {"op": "replace", "path": "/driver_info/deploy_forces_oob_reboot", "value": false},
                {"op": "add", "path": "/driver_info/image_http_proxy",
                 "value": format!("http://10.0.2.2:{}", proxy.port)},
            ]),
        );
        eprintln!("storage VM tests: {accel}");
        Rig {
            ironic,
            uuid,
            ramdisk,
            accel,
            work,
            server,
            http_root,
            timeout: Duration::from_secs(if accel == "kvm" { 240 } else { 900 }),
            boots: 0,
        }
    }

    fn boot(&mut self, disks: &[(PathBuf, String)], uefi_vars: Option<&Path>) -> Vm {
        self.boots += 1;
        Vm::boot(&VmSpec {
            arch: Arch::X86_64,
            ramdisk: &self.ramdisk,
            mac: VM_MAC,
            disks,
            memory_mib: 512,
            accel: self.accel,
            ironic_port: self.ironic.port,
            agent_port: agent_tests::free_port(),
            console: self.work.path().join(format!("console-{}.log", self.boots)),
            uefi_vars: uefi_vars.map(Path::to_path_buf),
            cmdline: String::new(),
        })
    }

    /// Waits for one of `states`; fails with the VM's console when the node
    /// fails, the time is up, or the VM stops unless `vm_may_stop`.
    fn wait(&self, states: &[&str], vm: &mut Vm, vm_may_stop: bool) {
        let deadline = Instant::now() + self.timeout;
        loop {
            if !vm_may_stop && !vm.running() {
                panic!(
                    "the VM stopped while waiting for {states:?}; node: {}\nVM console:\n{}",
                    self.ironic.node(&self.uuid)["last_error"],
                    vm.console_tail()
                );
            }
            let node = self.ironic.node(&self.uuid);
            let st = node["provision_state"].as_str().unwrap_or_default();
            if states.contains(&st) {
                return;
            }
            assert!(
                !st.ends_with("failed") && Instant::now() < deadline,
                "waiting for {states:?}: node in {st}: {}\nVM console:\n{}",
                node["last_error"],
                vm.console_tail()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn clean(&self, steps: Value) {
        self.ironic
            .provision_with(&self.uuid, "clean", json!({"clean_steps": steps}));
    }

    fn serve(&self, image: &Path, name: &str) -> String {
        std::fs::copy(image, self.http_root.join(name)).expect("copy image");
        self.server.url(name)
    }
}

/// The four msdos entries: (bootable, type, first sector, sectors).
impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Keep the consoles and disks of a failed run for inspection.
            let kept = std::mem::replace(&mut self.work, tempfile::tempdir().expect("tempdir"));
            eprintln!(
                "storage VM test failed; its files are kept in {}",
                kept.keep().display()
            );
        }
    }
}

fn mbr_entries(disk: &Path) -> Vec<(bool, u8, u64, u64)> {
    let mbr = read_at(disk, 0, 512);
    (0..4)
        .map(|i| {
            let e = &mbr[446 + i * 16..462 + i * 16];
            let le = |a: usize| u64::from(u32::from_le_bytes([e[a], e[a + 1], e[a + 2], e[a + 3]]));
            (e[0] == 0x80, e[4], le(8), le(12))
        })
        .filter(|(_, t, _, n)| *t != 0 && *n > 0)
        .collect()
}

/// An md 1.2 superblock 4 KiB into the partition at `offset`: its data
/// offset in bytes and its array name.
fn md_superblock(disk: &Path, offset: u64) -> Option<(u64, String)> {
    let sb = read_at(disk, offset + 4096, 256);
    if u32::from_le_bytes([sb[0], sb[1], sb[2], sb[3]]) != MD_MAGIC {
        return None;
    }
    let name = String::from_utf8_lossy(&sb[32..64])
        .trim_end_matches('\0')
        .to_string();
    let data_offset = u64::from_le_bytes(sb[128..136].try_into().ok()?);
    Some((data_offset * 512, name))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// One RAID cycle: build by manual cleaning, deploy `whole.raw`, check,
/// undeploy, delete. Returns (create, deploy) seconds.
fn raid_cycle(
    rig: &mut Rig,
    disks: &[(PathBuf, String)],
    config: Value,
    image_url: &str,
    image: &Path,
    root_uuid: &str,
) -> (f64, f64) {
    let (s, body) = rig.ironic.call(
        reqwest::Method::PUT,
        &format!("/v1/nodes/{}/states/raid", rig.uuid),
        Some(config.clone()),
    );
    assert_eq!(s, 204, "target_raid_config: {body}");

    // Manual cleaning builds the arrays.
    let t = Instant::now();
    rig.clean(json!([{"interface": "raid", "step": "create_configuration"}]));
    rig.ironic
        .wait_state(&rig.uuid, &["clean wait"], Duration::from_secs(60));
    let mut vm = rig.boot(disks, None);
    rig.wait(&["manageable"], &mut vm, false);
    let create_s = t.elapsed().as_secs_f64();
    let node = rig.ironic.node(&rig.uuid);
    assert_eq!(
        node["raid_config"]["logical_disks"], config["logical_disks"],
        "Ironic stored the configuration the agent built: {}",
        node["raid_config"]
    );
    assert!(node["raid_config"]["last_updated"].is_string());
    for (disk, _) in disks {
        let parts = mbr_entries(disk);
        let volumes = config["logical_disks"].as_array().map_or(0, Vec::len);
        assert_eq!(parts.len(), volumes, "{}: {parts:?}", disk.display());
        let (_, name) = md_superblock(disk, parts[0].2 * 512)
            .unwrap_or_else(|| panic!("{}: no md superblock in partition 1", disk.display()));
        assert!(name.ends_with(":root"), "array name {name:?}");
    }
    // provide: automated cleaning by the same running agent.
    rig.ironic.provision(&rig.uuid, "provide");
    rig.wait(&["available"], &mut vm, false);
    drop(vm);

    // The deploy boots the ramdisk again (as Ironic powers the node on):
    // the arrays are assembled at start-up and the root volume found anew.
    let t = Instant::now();
    rig.ironic.patch(
        &rig.uuid,
        json!([{"op": "add", "path": "/instance_info", "value": {
            "image_source": image_url,
            "image_os_hash_algo": "sha256",
            "image_os_hash_value": sha256_of(image),
            "image_disk_format": "raw",
        }}]),
    );
    rig.ironic.provision(&rig.uuid, "active");
    rig.ironic
        .wait_state(&rig.uuid, &["wait call-back"], Duration::from_secs(120));
    let mut vm = rig.boot(disks, None);
    rig.wait(&["active"], &mut vm, true);
    let deploy_s = t.elapsed().as_secs_f64();
    assert!(
        vm.wait_powered_off(Duration::from_secs(120)),
        "the agent powers the VM off after the deploy\n{}",
        vm.console_tail()
    );
    drop(vm);
    let head = read_at(image, 0, 512);
    for (disk, _) in disks {
        let parts = mbr_entries(disk);
        let part = parts[0].2 * 512;
        let (data, _) = md_superblock(disk, part).expect("superblock");
        // RAID-1: each holder has the whole image inside the array.
        assert_eq!(
            read_at(disk, part + data, 512),
            head,
            "{}: the image's MBR in the array",
            disk.display()
        );
        let sb = read_at(disk, part + data + MIB + 1024, 256);
        assert_eq!(
            uuid_text(&sb[104..120]),
            root_uuid,
            "{}: the image's root file system in the array",
            disk.display()
        );
        // grub-install ran on every holder: boot code in the MBR, its core
        // image in the gap before the first partition.
        let mbr = read_at(disk, 0, 512);
        assert!(
            contains(&mbr[..440], b"GRUB"),
            "{}: GRUB boot code in the MBR",
            disk.display()
        );
        assert!(
            read_at(disk, 512, 512).iter().any(|b| *b != 0),
            "{}: core image",
            disk.display()
        );
    }

    // Undeploy (automated cleaning), then delete_configuration.
    rig.ironic.provision(&rig.uuid, "deleted");
    rig.ironic
        .wait_state(&rig.uuid, &["clean wait"], Duration::from_secs(60));
    let mut vm = rig.boot(disks, None);
    rig.wait(&["available"], &mut vm, false);
    rig.ironic.provision(&rig.uuid, "manage");
    rig.ironic
        .wait_state(&rig.uuid, &["manageable"], Duration::from_secs(60));
    rig.clean(json!([{"interface": "raid", "step": "delete_configuration"}]));
    rig.wait(&["manageable"], &mut vm, false);
    drop(vm);
    let node = rig.ironic.node(&rig.uuid);
    assert_eq!(
        node["raid_config"],
        json!({}),
        "Ironic dropped the RAID configuration"
    );
    for (disk, _) in disks {
        assert_eq!(
            read_at(disk, 510, 2),
            vec![0, 0],
            "{}: no partition table left",
            disk.display()
        );
        for offset in [MIB, 5 * GIB] {
            assert!(
                md_superblock(disk, offset).is_none(),
                "{}: no md superblock at {offset}",
                disk.display()
            );
        }
        assert!(mbr_entries(disk).is_empty());
    }
    (create_s, deploy_s)
}

fn uuid_text(b: &[u8]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[test]
fn software_raid_under_a_real_ironic() {
    if skip() {
        return;
    }
    assert!(
        Arch::X86_64.qemu().is_some(),
        "qemu-system-x86_64 is missing: run `make setup`"
    );
    let _one = one_ironic();
    let images = images();
    let root_uuid = std::fs::read_to_string(images.join("root-uuid"))
        .expect("root uuid")
        .trim()
        .to_string();
    let mut rig = Rig::new(
        "[DEFAULT]\nenabled_raid_interfaces = agent,no-raid\n\
         [agent]\nenable_bios_bootloader_install = True\n\
         [deploy]\nerase_devices_priority = 0\n",
    );
    rig.ironic.patch(
        &rig.uuid,
        json!([{"op": "replace", "path": "/raid_interface", "value": "agent"}]),
    );
    let image = images.join("whole.raw");
    let url = rig.serve(&image, "whole.raw");
    let disks: Vec<(PathBuf, String)> = ["RAID-A", "RAID-B"]
        .iter()
        .map(|serial| {
            let path = rig.work.path().join(format!("{serial}.img"));
            sparse_disk(&path, 8 * GIB);
            (path, serial.to_string())
        })
        .collect();

    let raid1 = json!({"logical_disks": [{
        "raid_level": "1", "size_gb": 6, "controller": "software",
        "volume_name": "root", "is_root_volume": true,
    }]});
    let (create1, deploy1) = raid_cycle(&mut rig, &disks, raid1, &url, &image, &root_uuid);

    let raid0 = json!({"logical_disks": [
        {"raid_level": "1", "size_gb": 5, "controller": "software", "volume_name": "root"},
        {"raid_level": "0", "size_gb": "MAX", "controller": "software", "volume_name": "data"},
    ]});
    let (create2, deploy2) = raid_cycle(&mut rig, &disks, raid0, &url, &image, &root_uuid);
    eprintln!(
        "RAID under a real Ironic ({}): RAID-1 create {create1:.1}s, deploy {deploy1:.1}s; \
         RAID-1 + RAID-0 MAX create {create2:.1}s, deploy {deploy2:.1}s",
        rig.accel
    );
}

/// The bytes of file `path` in the ext4 file system at `offset` of `disk`
/// (debugfs on a copy of the partition: nothing is mounted).
fn ext4_file(disk: &Path, offset: u64, len: u64, path: &str, scratch: &Path) -> Option<Vec<u8>> {
    let part = scratch.join("partition.ext4");
    std::fs::write(&part, read_at(disk, offset, len as usize)).expect("partition copy");
    let out = std::process::Command::new("debugfs")
        .args(["-R", &format!("cat {path}")])
        .arg(&part)
        .output()
        .expect("debugfs (e2fsprogs)");
    let _ = std::fs::remove_file(&part);
    (out.status.success() && !out.stdout.is_empty()).then_some(out.stdout)
}

fn utf16(text: &str) -> Vec<u8> {
    text.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

fn b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[test]
fn partition_images_and_boot_loaders_under_a_real_ironic() {
    if skip() {
        return;
    }
    assert!(
        Arch::X86_64.qemu().is_some(),
        "qemu-system-x86_64 is missing: run `make setup`"
    );
    assert!(
        Path::new(OVMF_CODE).exists(),
        "OVMF is missing: run `make setup`"
    );
    let _one = one_ironic();
    let images = images();
    let root_uuid = std::fs::read_to_string(images.join("root-uuid"))
        .expect("root uuid")
        .trim()
        .to_string();
    let mut rig = Rig::new("[agent]\nenable_bios_bootloader_install = True\n");
    // No cleaning between the deployments: each boot here is a deploy.
    rig.ironic.patch(
        &rig.uuid,
        json!([{"op": "replace", "path": "/automated_clean", "value": false}]),
    );
    rig.ironic.provision(&rig.uuid, "provide");
    rig.ironic
        .wait_state(&rig.uuid, &["available"], Duration::from_secs(60));
    let image = images.join("root.ext4");
    let url = rig.serve(&image, "root.ext4");
    let instance_info = json!({
        "image_source": url,
        "image_os_hash_algo": "sha256",
        "image_os_hash_value": sha256_of(&image),
        "image_disk_format": "raw",
        "image_type": "partition",
        "root_gb": 1,
    });

    // BIOS: GRUB from the image, and files injected by label and number.
    let disk = rig.work.path().join("bios.img");
    sparse_disk(&disk, 8 * GIB);
    let disks = vec![(disk.clone(), "PART-BIOS".to_string())];
    rig.ironic.patch(
        &rig.uuid,
        json!([{"op": "add", "path": "/instance_info", "value": instance_info.clone()}]),
    );
    let t = Instant::now();
    rig.ironic.provision_with(
        &rig.uuid,
        "active",
        json!({"deploy_steps": [{
            "interface": "deploy", "step": "inject_files", "priority": 70,
            "args": {"files": [
                {"path": "/etc/injected-by-label", "partition": "LABEL=root",
                 "content": b64(b"found by label\n"), "mode": 384},
                {"path": "/etc/deep/injected-by-number", "partition": 1,
                 "content": b64(b"found by number\n"), "dirmode": 448},
            ]},
        }]}),
    );
    rig.ironic
        .wait_state(&rig.uuid, &["wait call-back"], Duration::from_secs(120));
    let mut vm = rig.boot(&disks, None);
    rig.wait(&["active"], &mut vm, true);
    let bios_s = t.elapsed().as_secs_f64();
    assert!(
        vm.wait_powered_off(Duration::from_secs(120)),
        "{}",
        vm.console_tail()
    );
    drop(vm);
    let node = rig.ironic.node(&rig.uuid);
    assert_eq!(
        node["driver_internal_info"]["root_uuid_or_disk_id"],
        root_uuid
    );
    // msdos, root alone at 1 MiB and bootable; GRUB's boot code in the MBR
    // and its core image in the gap before the partition.
    let parts = mbr_entries(&disk);
    assert_eq!(
        parts,
        vec![(true, 0x83, 2048, 2 * 1024 * 1024)],
        "{parts:?}"
    );
    let mbr = read_at(&disk, 0, 512);
    assert!(contains(&mbr[..440], b"GRUB"), "GRUB boot code in the MBR");
    assert!(
        read_at(&disk, 512, 512).iter().any(|b| *b != 0),
        "core image after the MBR"
    );
    let scratch_dir = rig.work.path().to_path_buf();
    let scratch = scratch_dir.as_path();
    let part = |path: &str| ext4_file(&disk, MIB, GIB, path, scratch);
    assert!(
        part("/boot/grub/grub.cfg")
            .is_some_and(|c| contains(&c, b"### BEGIN /etc/grub.d/00_header ###")),
        "grub-mkconfig wrote /boot/grub/grub.cfg"
    );
    assert_eq!(
        part("/etc/injected-by-label").as_deref(),
        Some(&b"found by label\n"[..])
    );
    assert_eq!(
        part("/etc/deep/injected-by-number").as_deref(),
        Some(&b"found by number\n"[..])
    );

    // UEFI (OVMF): the image's signed EFI tree onto the new ESP, a boot
    // entry in the VM's NVRAM. Nothing of the image runs.
    rig.ironic.provision(&rig.uuid, "deleted");
    rig.ironic
        .wait_state(&rig.uuid, &["available"], Duration::from_secs(120));
    let disk = rig.work.path().join("uefi.img");
    sparse_disk(&disk, 8 * GIB);
    let disks = vec![(disk.clone(), "PART-UEFI".to_string())];
    let vars = rig.work.path().join("OVMF_VARS.fd");
    std::fs::copy(OVMF_VARS, &vars).expect("OVMF variable store");
    let mut info = instance_info;
    info["capabilities"] = json!({"boot_mode": "uefi"});
    rig.ironic.patch(
        &rig.uuid,
        json!([
            {"op": "add", "path": "/instance_info", "value": info},
            {"op": "add", "path": "/properties/capabilities", "value": "boot_mode:uefi"},
        ]),
    );
    let t = Instant::now();
    rig.ironic.provision(&rig.uuid, "active");
    rig.ironic
        .wait_state(&rig.uuid, &["wait call-back"], Duration::from_secs(120));
    let mut vm = rig.boot(&disks, Some(&vars));
    rig.wait(&["active"], &mut vm, true);
    let uefi_s = t.elapsed().as_secs_f64();
    assert!(
        vm.wait_powered_off(Duration::from_secs(120)),
        "{}",
        vm.console_tail()
    );
    drop(vm);
    let shim = ext4_file(
        &images.join("root.ext4"),
        0,
        96 * MIB,
        "/boot/efi/EFI/debian/shimx64.efi",
        scratch,
    )
    .expect("shim in the image");
    // GPT: the ESP first (1 MiB .. 551 MiB), FAT with the image's loaders.
    let esp = read_at(&disk, MIB, 550 * MIB as usize);
    let fs = fatfs::FileSystem::new(std::io::Cursor::new(esp), fatfs::FsOptions::new())
        .expect("the ESP is FAT");
    let read = |path: &str| {
        use std::io::Read;
        let mut data = Vec::new();
        fs.root_dir()
            .open_file(path)
            .ok()?
            .read_to_end(&mut data)
            .ok()?;
        Some(data)
    };
    assert_eq!(
        read("EFI/debian/shimx64.efi").as_deref(),
        Some(&shim[..]),
        "shim on the ESP"
    );
    assert!(
        read("EFI/debian/grubx64.efi").is_some_and(|g| g.len() > 100_000),
        "signed GRUB on the ESP"
    );
    assert!(read("EFI/BOOT/BOOTX64.EFI").is_some());
    // The boot entry (label from BOOTX64.CSV, loader shim) in the NVRAM.
    let nvram = std::fs::read(&vars).expect("variable store");
    assert!(
        contains(&nvram, &utf16("debian")),
        "a boot entry labelled debian"
    );
    assert!(
        contains(&nvram, &utf16("\\EFI\\debian\\shimx64.efi")),
        "pointing at shim"
    );
    eprintln!(
        "partition images under a real Ironic ({}): BIOS deploy with GRUB and inject_files {bios_s:.1}s, \
         UEFI deploy {uefi_s:.1}s",
        rig.accel
    );
}
