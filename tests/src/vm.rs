//! What the VM tests share: the ramdisk under test, the VM's identity
//! (MAC, disk serials), sparse disks, an HTTP forward proxy for the guest,
//! and waits on Ironic that show the VM's console when they fail.
//!
//! Every VM reaches the host only through QEMU's user-mode network: the
//! guest sees the host's loopback at 10.0.2.2, and Ironic reaches the agent
//! through a forwarded 127.0.0.1 port that the agent advertises.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::ironic::Ironic;

/// The VM's NIC; Ironic finds the node by it at lookup.
pub const VM_MAC: &str = "52:54:00:49:52:01";
/// Serials of the two virtual disks; the deploy picks the larger one by serial.
pub const SMALL_SERIAL: &str = "VM-SMALL-0001";
pub const TARGET_SERIAL: &str = "VM-TARGET-0002";
pub const GIB: u64 = 1 << 30;
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
    let lock = std::fs::File::create(crate::target_dir().join("ramdisk-test.lock"))
        .expect("ramdisk lock file");
    lock.lock().expect("locking the ramdisk build");
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
