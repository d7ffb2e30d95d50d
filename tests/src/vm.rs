//! What the VM tests share: the ramdisk under test, the VM's identity
//! (MAC, disk serials), sparse disks, an HTTP forward proxy for the guest,
//! and waits on Ironic that show the VM's console when they fail.
//!
//! Every VM reaches the host only through QEMU's user-mode network: the
//! guest sees the host's loopback at 10.0.2.2, and Ironic reaches the agent
//! through a forwarded 127.0.0.1 port that the agent advertises.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ironic::Ironic;

/// The VM's NIC; Ironic finds the node by it at lookup.
pub const VM_MAC: &str = "52:54:00:49:52:01";
/// Serials of the two virtual disks; the deploy picks the larger one by serial.
pub const SMALL_SERIAL: &str = "VM-SMALL-0001";
pub const TARGET_SERIAL: &str = "VM-TARGET-0002";
pub const GIB: u64 = 1 << 30;
/// OVMF's code and variable store templates (Debian's `ovmf`).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE_4M.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS_4M.fd";
/// The host's loopback as the guest sees it on QEMU's user-mode network.
pub const HOST_FROM_GUEST: &str = "10.0.2.2";

/// `name` on `PATH`, if installed.
pub fn program(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
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

/// The guest's architecture: what differs between the machines QEMU
/// emulates. Everything else (Ironic, disks, network, phases) is shared.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Arch {
    X86_64,
    Aarch64,
}

impl Arch {
    pub fn qemu_name(self) -> &'static str {
        match self {
            Arch::X86_64 => "qemu-system-x86_64",
            Arch::Aarch64 => "qemu-system-aarch64",
        }
    }

    pub fn qemu(self) -> Option<PathBuf> {
        program(self.qemu_name())
    }

    pub fn qemu_command(self) -> Command {
        Command::new(
            self.qemu()
                .unwrap_or_else(|| panic!("{} is not installed", self.qemu_name())),
        )
    }

    /// QEMU's machine: a PC, or the generic Arm `virt` board (PCIe, PL011
    /// serial, booted with a device tree QEMU generates).
    pub fn machine(self) -> &'static str {
        match self {
            Arch::X86_64 => "q35",
            Arch::Aarch64 => "virt",
        }
    }

    /// CPU model under TCG. For aarch64, `max` with QEMU's own pointer
    /// authentication algorithm: the architected one (QARMA) costs TCG a lot
    /// on every function entry and return (QEMU's docs/system/arm/cpu-features.rst).
    pub fn tcg_cpu(self) -> &'static str {
        match self {
            Arch::X86_64 => "max",
            Arch::Aarch64 => "max,pauth-impdef=on",
        }
    }

    /// The kernel's serial console on that machine.
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Aarch64 => "ttyAMA0",
        }
    }

    /// The node's `cpu_arch` in Ironic.
    pub fn ironic_cpu_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
        }
    }

    /// KVM runs only guests of the host's own architecture.
    pub fn is_host(self) -> bool {
        std::env::consts::ARCH == self.ironic_cpu_arch()
    }
}

/// KVM when it can boot the ramdisk's kernel, else TCG (software
/// emulation). An openable /dev/kvm is not enough: some hosts (nested,
/// paravirtualised KVM) expose one that runs only specially built guest
/// kernels, and QEMU then hangs silently. So the probe boots the kernel and
/// waits for its first console line. `VM_ACCEL=kvm|tcg` skips the probe.
pub fn accelerator(arch: Arch, ramdisk: &Path, scratch: &Path) -> &'static str {
    if !arch.is_host() {
        return "tcg";
    }
    match std::env::var("VM_ACCEL").as_deref() {
        Ok("kvm") => return "kvm",
        Ok("tcg") => return "tcg",
        _ => {}
    }
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !usable {
        return "tcg";
    }
    let console = scratch.join("kvm-probe.log");
    let mut child = arch
        .qemu_command()
        .args([
            "-nodefaults",
            "-display",
            "none",
            "-no-reboot",
            "-machine",
            arch.machine(),
        ])
        .args(["-accel", "kvm", "-cpu", "host", "-m", "256", "-kernel"])
        .arg(ramdisk.join("vmlinuz"))
        .args([
            "-append",
            &format!("console={} panic=-1 rdinit=/nonexistent", arch.console()),
        ])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .args(["-monitor", "none"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", arch.qemu_name()));
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
        eprintln!("/dev/kvm does not boot a stock kernel here; using TCG");
        "tcg"
    }
}

/// The kernel and initramfs to boot: `RAMDISK_DIR` (relative to the
/// workspace), or one built now from the debug agent into
/// `target/ramdisk-test` (rebuilt when the agent, the generic manager or the
/// ramdisk sources are newer).
pub fn ramdisk() -> PathBuf {
    if let Some(dir) = std::env::var_os("RAMDISK_DIR") {
        return crate::workspace_root().join(dir);
    }
    let out = crate::target_dir().join("ramdisk-test");
    // Several test binaries may want it at once: one builds, the others wait
    // and then find it fresh.
    let _lock = build_lock("ramdisk-test.lock");
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
    let stale = built.is_none_or(|b| inputs.iter().any(|p| mtime(p).is_some_and(|m| m > b)));
    if stale {
        let st = Command::new("bash")
            .arg(sources.join("build.sh"))
            .arg(&agent)
            .arg(&generic)
            .arg(&out)
            // Fast compression: this ramdisk is booted a few times and thrown away.
            .env("RAMDISK_ZSTD_LEVEL", "3")
            .status()
            .expect("running ramdisk/build.sh");
        assert!(st.success(), "ramdisk/build.sh failed");
    }
    out
}

pub fn sparse_disk(path: &Path, size: u64) {
    let f = std::fs::File::create(path).expect("disk file");
    f.set_len(size).expect("disk size");
}

/// A VM booted directly from our kernel and initramfs, its agent pointed
/// at Ironic on the host.
pub struct VmSpec<'a> {
    pub arch: Arch,
    pub ramdisk: &'a Path,
    /// The NIC's MAC: Ironic finds the node by it at lookup.
    pub mac: &'a str,
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
            "console={console} panic=-1 \
             ipa-api-url=http://10.0.2.2:{ironic} \
             ipa-advertise-host=127.0.0.1 ipa-advertise-port={agent} ipa-advertise-protocol=http \
             {extra}",
            ironic = spec.ironic_port,
            agent = spec.agent_port,
            extra = spec.cmdline,
            console = spec.arch.console(),
        );
        let mut cmd = spec.arch.qemu_command();
        cmd.args(["-nodefaults", "-display", "none", "-no-reboot"])
            .args(["-machine", spec.arch.machine()])
            .args(["-accel", if kvm { "kvm" } else { "tcg" }])
            .args(["-cpu", if kvm { "host" } else { spec.arch.tcg_cpu() }])
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
                &format!("virtio-net-pci,netdev=net0,mac={}", spec.mac),
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
            .unwrap_or_else(|e| panic!("starting {}: {e}", spec.arch.qemu_name()));
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

/// A plain-HTTP forward proxy on 127.0.0.1, as a provisioning network's
/// proxy would be. Ironic checks every image URL itself (a HEAD from the
/// conductor) before the agent gets it, so the URL must name an address both
/// reach: `127.0.0.1` on the host. The agent, in the VM, reaches it through
/// this proxy at 10.0.2.2 (the node's `image_http_proxy`).
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

    /// The proxy's URL as the guest reaches it.
    pub fn guest_url(&self) -> String {
        format!("http://{HOST_FROM_GUEST}:{}", self.port)
    }
}

/// Forwards one request (`GET http://host:port/path HTTP/1.1`) to its
/// origin with `Connection: close`, then relays the response.
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
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
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
    // Requests through this proxy carry no body (GET/HEAD), so the rest is
    // the response.
    std::io::copy(&mut origin, &mut client)?;
    client.shutdown(std::net::Shutdown::Both)
}

/// Polls until Ironic records the agent's first heartbeat (`agent_url`
/// appears in the node's driver_internal_info); returns when it did.
/// `console` is shown when it does not come.
pub fn wait_first_heartbeat(
    ironic: &Ironic,
    uuid: &str,
    timeout: Duration,
    console: &dyn Fn() -> String,
) -> Instant {
    let deadline = Instant::now() + timeout;
    loop {
        let node = ironic.node(uuid);
        if node["driver_internal_info"]["agent_url"].is_string() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "no heartbeat within {timeout:?}; node in {}: {}\nVM console:\n{}",
            node["provision_state"],
            node["last_error"],
            console()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls Ironic until the node is in one of `states`; fails early with the
/// VM's console when the node fails, when `vm_gone` says the VM stopped
/// when it should not have, or at the timeout.
pub fn wait_state_vm(
    ironic: &Ironic,
    uuid: &str,
    states: &[&str],
    timeout: Duration,
    vm_gone: &mut dyn FnMut() -> Option<String>,
    console: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(why) = vm_gone() {
            panic!(
                "{why} while waiting for {states:?}\nVM console:\n{}",
                console()
            );
        }
        let node = ironic.node(uuid);
        let st = node["provision_state"].as_str().unwrap_or_default();
        if states.contains(&st) {
            return;
        }
        assert!(
            !st.ends_with("failed") && Instant::now() < deadline,
            "waiting for {states:?}: node in {st}: {}\nVM console:\n{}",
            node["last_error"],
            console()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The last `max` bytes of a console log (whole lines), for failure messages.
pub fn console_tail(path: &Path, max: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(max);
    let tail = String::from_utf8_lossy(&text[start..]).into_owned();
    match (start, tail.find('\n')) {
        (0, _) | (_, None) => tail,
        (_, Some(i)) => tail[i + 1..].to_string(),
    }
}
