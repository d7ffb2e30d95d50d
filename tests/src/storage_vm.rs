//! What the storage VM tests share (`tests/tests/storage_vm.rs`): the
//! ramdisk under test booted by QEMU on disks that are files of the test,
//! optionally under UEFI firmware (OVMF, with a variable store of the
//! test's own), and the images `tests/storage/make-images.sh` builds.
//!
//! Why a VM: these tests run the real mdadm, grub-install, mkfs.vfat and
//! mount on real block devices. This host's kernel (and CI's) need not
//! have md, device-mapper or vfat, and no test may ever hand such tools a
//! device of the host: inside a VM the only disks are the test's files
//! (docs/testing-storage.md).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The VM's NIC; Ironic finds the node by it at lookup.
pub const VM_MAC: &str = "52:54:00:53:54:01";
pub const GIB: u64 = 1 << 30;

/// OVMF's code and variable store templates (Debian's `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";

pub fn qemu() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("qemu-system-x86_64"))
            .find(|p| p.exists())
    })
}

/// An exclusive lock on a file under the target directory, held while the
/// guard lives: parallel test binaries build shared artifacts once.
pub fn build_lock(name: &str) -> std::fs::File {
    let lock = std::fs::File::create(crate::target_dir().join(name)).expect("lock file");
    lock.lock().expect("taking the build lock");
    lock
}

/// The kernel and initramfs: `RAMDISK_DIR`, or one built from the debug
/// agent into `target/ramdisk-test` when the agent, the generic manager or
/// the ramdisk sources are newer.
pub fn ramdisk() -> PathBuf {
    if let Some(dir) = std::env::var_os("RAMDISK_DIR") {
        return crate::workspace_root().join(dir);
    }
    let _lock = build_lock("ramdisk-test.lock");
    let out = crate::target_dir().join("ramdisk-test");
    let agent = crate::agent_binary();
    let generic = crate::guest_component("generic_manager");
    let sources = crate::workspace_root().join("ramdisk");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let built = mtime(&out.join("initramfs.img"));
    let mut inputs = vec![agent.clone(), generic.clone()];
    inputs.extend(
        std::fs::read_dir(&sources)
            .expect("ramdisk/")
            .filter_map(|e| e.ok().map(|e| e.path())),
    );
    if built.is_none_or(|b| inputs.iter().any(|p| mtime(p).is_some_and(|m| m > b))) {
        let st = Command::new("bash")
            .arg(sources.join("build.sh"))
            .arg(&agent)
            .arg(&generic)
            .arg(&out)
            .env("RAMDISK_ZSTD_LEVEL", "3")
            .status()
            .expect("running ramdisk/build.sh");
        assert!(st.success(), "ramdisk/build.sh failed");
    }
    out
}

/// The test images (`root.ext4`, `whole.raw`, `root-uuid`), built once.
pub fn images() -> PathBuf {
    let _lock = build_lock("storage-images.lock");
    let out = crate::target_dir().join("storage-images");
    let script = crate::workspace_root().join("tests/storage/make-images.sh");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = mtime(&out.join("whole.raw")).is_none_or(|b| mtime(&script).is_some_and(|s| s > b));
    if stale {
        let st = Command::new("bash")
            .arg(&script)
            .arg(&out)
            .status()
            .expect("running make-images.sh");
        assert!(st.success(), "tests/storage/make-images.sh failed");
    }
    out
}

/// KVM when it boots the ramdisk's kernel, else TCG (some hosts expose a
/// /dev/kvm that runs only specially built guests). `VM_ACCEL=kvm|tcg`
/// skips the probe.
pub fn accelerator(ramdisk: &Path, scratch: &Path) -> &'static str {
    match std::env::var("VM_ACCEL").as_deref() {
        Ok("kvm") => return "kvm",
        Ok("tcg") => return "tcg",
        _ => {}
    }
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_err()
    {
        return "tcg";
    }
    let console = scratch.join("kvm-probe.log");
    let mut child = Command::new(qemu().expect("qemu-system-x86_64"))
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-machine",
            "q35",
        ])
        .args(["-accel", "kvm", "-cpu", "host", "-m", "256", "-kernel"])
        .arg(ramdisk.join("vmlinuz"))
        .args(["-append", "console=ttyS0 panic=-1 rdinit=/nonexistent"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(["-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting qemu-system-x86_64");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut booted = false;
    while Instant::now() < deadline && !booted {
        booted = std::fs::read_to_string(&console).is_ok_and(|c| c.contains("Linux version"));
        if matches!(child.try_wait(), Ok(Some(_))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    if booted {
        "kvm"
    } else {
        "tcg"
    }
}

/// A VM definition.
pub struct VmSpec<'a> {
    pub ramdisk: &'a Path,
    /// Disk files and their serials (virtio-blk).
    pub disks: &'a [(PathBuf, String)],
    pub memory_mib: u32,
    pub accel: &'static str,
    pub ironic_port: u16,
    pub agent_port: u16,
    pub console: PathBuf,
    /// UEFI firmware with this variable store (a copy of OVMF_VARS the test
    /// owns), else legacy BIOS.
    pub uefi_vars: Option<PathBuf>,
    /// More kernel parameters.
    pub cmdline: String,
}

/// A running VM; killed (power cut) on drop.
pub struct Vm {
    pub child: Child,
    pub started: Instant,
    pub console: PathBuf,
}

impl Vm {
    pub fn boot(spec: &VmSpec) -> Vm {
        let kvm = spec.accel == "kvm";
        let cmdline = format!(
            "console=ttyS0 panic=-1 \
             ipa-api-url=http://10.0.2.2:{ironic} \
             ipa-advertise-host=127.0.0.1 ipa-advertise-port={agent} ipa-advertise-protocol=http \
             {extra}",
            ironic = spec.ironic_port,
            agent = spec.agent_port,
            extra = spec.cmdline,
        );
        let mut cmd = Command::new(qemu().expect("qemu-system-x86_64"));
        cmd.args(["-nodefaults", "-display", "none", "-no-reboot"])
            .args(["-machine", "q35"])
            .args(["-accel", if kvm { "kvm" } else { "tcg" }])
            .args(["-cpu", if kvm { "host" } else { "max" }])
            .args(["-smp", "2", "-m", &spec.memory_mib.to_string()]);
        if let Some(vars) = &spec.uefi_vars {
            cmd.args([
                "-drive",
                &format!("if=pflash,format=raw,unit=0,readonly=on,file={OVMF_CODE}"),
                "-drive",
                &format!("if=pflash,format=raw,unit=1,file={}", vars.display()),
            ]);
        }
        cmd.arg("-kernel")
            .arg(spec.ramdisk.join("vmlinuz"))
            .arg("-initrd")
            .arg(spec.ramdisk.join("initramfs.img"))
            .args(["-append", &cmdline])
            .arg("-serial")
            .arg(format!("file:{}", spec.console.display()))
            .args(["-monitor", "none"])
            .args([
                "-netdev",
                &format!(
                    "user,id=net0,hostfwd=tcp:127.0.0.1:{}-:9999",
                    spec.agent_port
                ),
                "-device",
                &format!("virtio-net-pci,netdev=net0,mac={VM_MAC}"),
            ]);
        for (i, (file, serial)) in spec.disks.iter().enumerate() {
            cmd.args([
                "-drive",
                &format!(
                    "file={},format=raw,if=none,id=disk{i},discard=unmap,detect-zeroes=unmap",
                    file.display()
                ),
                "-device",
                &format!("virtio-blk-pci,drive=disk{i},serial={serial}"),
            ]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting qemu-system-x86_64");
        Vm {
            child,
            started: Instant::now(),
            console: spec.console.clone(),
        }
    }

    /// Whether QEMU is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the guest to power itself off (QEMU exits).
    pub fn wait_powered_off(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        false
    }

    /// The last 12 KiB of the console, for failure messages.
    pub fn console_tail(&self) -> String {
        let text = std::fs::read(&self.console).unwrap_or_default();
        let start = text.len().saturating_sub(12 << 10);
        String::from_utf8_lossy(&text[start..]).into_owned()
    }

    pub fn console_text(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain-HTTP forward proxy on 127.0.0.1: Ironic checks image URLs
/// itself, so they name 127.0.0.1; the guest fetches them through this
/// proxy at 10.0.2.2 (the node's `image_http_proxy`).
pub struct ForwardProxy {
    pub port: u16,
}

impl ForwardProxy {
    pub fn start() -> ForwardProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("proxy address").port();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    if let Err(e) = proxy_one(client) {
                        eprintln!("proxy: {e}");
                    }
                });
            }
        });
        ForwardProxy { port }
    }
}

fn proxy_one(mut client: std::net::TcpStream) -> std::io::Result<()> {
    use std::io::{Read, Write};
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 || head.len() > 64 << 10 {
            return Err(bad("incomplete request head"));
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8(head).map_err(|_| bad("request head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let mut parts = lines.next().unwrap_or_default().split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v)) => (m, t, v),
        _ => return Err(bad("malformed request line")),
    };
    let rest = target
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// targets"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut forwarded = format!("{method} {path} {version}\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "keep-alive"
        ) {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("Connection: close\r\n\r\n");
    let mut origin = std::net::TcpStream::connect(authority)?;
    origin.write_all(forwarded.as_bytes())?;
    std::io::copy(&mut origin, &mut client)?;
    client.shutdown(std::net::Shutdown::Both)
}

pub fn sparse_disk(path: &Path, size: u64) {
    let f = std::fs::File::create(path).expect("disk file");
    f.set_len(size).expect("disk size");
}
