//! Network namespaces for the network tests: created and deleted by the
//! test, never touching this machine's own interfaces. A namespace pair is
//! joined by a veth created directly inside them; daemons (lldpd, mDNS
//! responders) and the agent run inside with `ip netns exec`; a TCP proxy
//! makes a service of this host's loopback (the real Ironic) reachable on
//! a namespace's loopback.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Whether this process may create namespaces (root with `ip`).
pub fn available() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    root && Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A named network namespace, deleted (with everything in it) on drop.
pub struct NetNs {
    pub name: String,
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl NetNs {
    /// `iwa-<tag>-<pid>`, with its loopback up.
    pub fn new(tag: &str) -> NetNs {
        let name = format!("iwa-{tag}-{}", std::process::id());
        // A namespace left by a killed earlier run of the same pid.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run(&["ip", "netns", "add", &name]);
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// `ip -n <ns> ARGS`, panicking on failure.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        run(&full);
    }

    /// `ip -n <ns> ARGS`; whether it succeeded.
    pub fn try_ip(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// A veth pair: `near` in this namespace with `near_mac`, `far` in
    /// `other`; both up.
    pub fn veth_to(&self, near: &str, near_mac: &str, other: &NetNs, far: &str) {
        self.ip(&[
            "link",
            "add",
            near,
            "type",
            "veth",
            "peer",
            "name",
            far,
            "netns",
            &other.name,
        ]);
        self.ip(&["link", "set", near, "address", near_mac]);
        self.ip(&["link", "set", near, "up"]);
        other.ip(&["link", "set", far, "up"]);
    }

    /// Whether `name` exists in the namespace.
    pub fn has_link(&self, name: &str) -> bool {
        self.try_ip(&["link", "show", "dev", name])
    }

    /// Proxies `127.0.0.1:<port>` inside the namespace to
    /// `127.0.0.1:<target>` of this host (the listener is created in the
    /// namespace; connections to the target are made from here). Stops on
    /// drop.
    pub fn proxy_loopback(&self, port: u16, target: u16) -> Proxy {
        self.proxy("127.0.0.1", port, target)
    }

    /// Proxies `<address>:<port>` inside the namespace to
    /// `127.0.0.1:<target>` of this host (see [`NetNs::proxy_loopback`]).
    pub fn proxy(&self, address: &str, port: u16, target: u16) -> Proxy {
        let path = format!("/run/netns/{}", self.name);
        let listener = std::thread::scope(|s| {
            s.spawn(|| {
                let ns = std::fs::File::open(&path).expect("namespace file");
                // SAFETY: setns on this short-lived thread only; the
                // listener keeps the namespace it was created in.
                let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
                TcpListener::bind((address, port)).expect("bind in the namespace")
            })
            .join()
            .expect("namespace thread")
        });
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inside, _)) => {
                        let _ = inside.set_nonblocking(false);
                        if let Ok(outside) = TcpStream::connect(("127.0.0.1", target)) {
                            pipe(inside, outside);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Proxy { stop }
    }
}

/// Copies both ways until either side closes.
fn pipe(a: TcpStream, b: TcpStream) {
    let (Ok(a2), Ok(b2)) = (a.try_clone(), b.try_clone()) else {
        return;
    };
    let copy = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
    };
    copy(a, b2);
    copy(b, a2);
}

/// A running loopback proxy; stops accepting on drop.
pub struct Proxy {
    stop: Arc<AtomicBool>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Processes still inside keep it alive; kill them first.
        if let Ok(out) = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output()
        {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-KILL", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A child killed (and reaped) on drop.
pub struct Daemon {
    pub child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// lldpd in `ns` on `port`, announcing `system_name`, the port by its
/// interface name, and the VLAN Name TLVs (IEEE 802.1Q, OUI 00-80-c2,
/// subtype 3) of `vlans`, once a second. Its files live in `dir`.
pub fn lldpd(
    ns: &NetNs,
    port: &str,
    system_name: &str,
    vlans: &[u16],
    dir: &std::path::Path,
) -> Daemon {
    let mut conf = format!(
        "configure system hostname {system_name}\n\
         configure lldp tx-interval 1\n\
         configure lldp portidsubtype ifname\n"
    );
    for (i, vid) in vlans.iter().enumerate() {
        let name = format!("vlan{vid}");
        let mut info: Vec<String> = vid
            .to_be_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        info.push(format!("{:02x}", name.len()));
        info.extend(name.bytes().map(|b| format!("{b:02x}")));
        let op = if i == 0 { "" } else { "add " };
        conf.push_str(&format!(
            "configure lldp custom-tlv {op}oui 00,80,c2 subtype 3 oui-info {}\n",
            info.join(",")
        ));
    }
    let conf_path = dir.join("lldpd.conf");
    std::fs::write(&conf_path, conf).expect("lldpd.conf");
    let child = ns
        .command("lldpd")
        .args(["-d", "-I", port, "-u"])
        .arg(dir.join("lldpd.socket"))
        .arg("-O")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(
            std::fs::File::create(dir.join("lldpd.log"))
                .map(Stdio::from)
                .unwrap_or(Stdio::null()),
        )
        .spawn()
        .expect("lldpd (tests/setup-tools.sh installs it)");
    Daemon { child }
}
