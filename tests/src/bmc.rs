//! A virtual BMC for the VM tests: a libvirt daemon of the test's own (session
//! mode, unprivileged, state under the test's directory) and sushy-tools'
//! Redfish emulator in front of it, started by `tests/vm/start-bmc.sh` and
//! stopped on drop by `tests/vm/stop-bmc.sh`. Ironic's `redfish` hardware
//! type drives the VM through it, power and virtual media included.
//!
//! QEMU runs as the user `nobody` under TCG with user-mode networking: no
//! bridge, no firewall rule, nothing in the host's network configuration.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The unprivileged user (and group) libvirtd, sushy-tools and QEMU run as.
const NOBODY: u32 = 65534;

pub struct VirtualBmc {
    /// Redfish on `http://127.0.0.1:port`.
    pub port: u16,
    work: PathBuf,
    /// `setpriv ... env ...`: runs a command as libvirt's session user.
    as_nobody: Vec<String>,
}

/// A VM for [`VirtualBmc::define`]: q35, TCG, an emulated CPU with every
/// feature QEMU has, the BIOS (and iPXE) on the serial console too, virtio
/// disks with serials, one virtio NIC on QEMU's
/// user-mode network with `agent_port` on the host's 127.0.0.1 forwarded to
/// the agent's 9999, and the serial console appended to `console`.
///
/// With `pxe_bootfile` the user-mode network's DHCP hands that URL out as
/// the boot file (the firmware's iPXE fetches it). sushy-tools sets the
/// boot device as libvirt boot order on libvirt's own `<interface>` and
/// `<disk>` elements, and libvirt's user-mode interface can neither forward
/// a port nor name a boot file; so the NIC is libvirt's interface (which
/// takes part in the boot order) whose device is connected, through a
/// `qemu:override` of its `netdev` property, to the user-mode network given
/// on QEMU's command line.
pub struct DomainSpec<'a> {
    pub name: &'a str,
    pub memory_mib: u32,
    pub disks: &'a [(PathBuf, &'a str)],
    pub mac: &'a str,
    pub agent_port: u16,
    pub console: &'a Path,
    pub pxe_bootfile: Option<&'a str>,
}

impl VirtualBmc {
    /// Starts libvirtd and sushy-tools for a test whose scratch directory is
    /// `work` (which becomes traversable by `nobody`).
    pub fn start(work: &Path) -> VirtualBmc {
        let port = crate::free_port();
        let script = crate::workspace_root().join("tests/vm/start-bmc.sh");
        let out = Command::new("bash")
            .arg(script)
            .arg(work)
            .arg(port.to_string())
            .stderr(Stdio::inherit())
            .output()
            .expect("running tests/vm/start-bmc.sh");
        let mut bmc = VirtualBmc {
            port,
            work: work.to_path_buf(),
            as_nobody: Vec::new(),
        };
        assert!(
            out.status.success(),
            "the virtual BMC did not start; see {}/bmc",
            work.display()
        );
        // The script prints the command prefix, shell-quoted; the paths in
        // it are the test's own (no spaces), so splitting on blanks is exact.
        bmc.as_nobody = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect();
        bmc
    }

    pub fn redfish_address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Gives `path` to the VM's user (QEMU opens disks and writes the console as it).
    pub fn hand_over(&self, path: &Path) {
        std::os::unix::fs::chown(path, Some(NOBODY), Some(NOBODY))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }

    /// `virsh ARGS` against this libvirt; its stdout, or a panic with stderr.
    pub fn virsh(&self, args: &[&str]) -> String {
        let (program, prefix) = self.as_nobody.split_first().expect("setpriv prefix");
        let out = Command::new(program)
            .args(prefix)
            .args(["virsh", "-q", "-c", "qemu:///session"])
            .args(args)
            .current_dir(self.work.join("bmc"))
            .output()
            .expect("running virsh");
        assert!(
            out.status.success(),
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Defines (does not start) the VM; returns its UUID, which is its
    /// Redfish system id.
    pub fn define(&self, spec: &DomainSpec) -> String {
        let mut disks = String::new();
        for (i, (file, serial)) in spec.disks.iter().enumerate() {
            self.hand_over(file);
            disks.push_str(&format!(
                "<disk type='file' device='disk'><driver name='qemu' type='raw' discard='unmap'/>\
                 <source file='{}'/><target dev='vd{}' bus='virtio'/><serial>{serial}</serial></disk>\n",
                file.display(),
                char::from(b'a' + i as u8),
            ));
        }
        std::fs::write(spec.console, b"").expect("console file");
        self.hand_over(spec.console);
        // The NIC is given to QEMU directly: libvirt's user-mode interface
        // forwards ports only with the passt backend. It sits on a fixed
        // root-bus slot libvirt does not hand out, and its network's name is
        // not one of libvirt's (`net0` is the alias of libvirt's first
        // interface, and setting that one's link down would take ours).
        // Boot order: per device when the NIC boots (sushy-tools moves it),
        // else the first disk.
        let (bootfile, os_boot, nic, nic_override, nic_args) = match spec.pxe_bootfile {
            Some(url) => (
                format!(",bootfile={url}"),
                "",
                format!(
                    "<interface type='user'><mac address='{}'/><model type='virtio'/>\
                     <alias name='ua-nic'/><boot order='1'/></interface>",
                    spec.mac
                ),
                "<qemu:override><qemu:device alias='ua-nic'><qemu:frontend>\
                 <qemu:property name='netdev' type='string' value='agentnet'/>\
                 </qemu:frontend></qemu:device></qemu:override>",
                String::new(),
            ),
            None => (
                String::new(),
                "<boot dev='hd'/>",
                String::new(),
                "",
                format!(
                    "<qemu:arg value='-device'/>\
                     <qemu:arg value='virtio-net-pci,netdev=agentnet,mac={},bus=pcie.0,addr=0x10'/>",
                    spec.mac
                ),
            ),
        };
        let xml = format!(
            "<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>{name}</name>
  <memory unit='MiB'>{memory}</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type>{os_boot}<bios useserial='yes'/></os>
  <features><acpi/></features>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    {disks}
    <controller type='sata' index='0'/>
    {nic}
    <serial type='file'><source path='{console}' append='on'/><target port='0'/></serial>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=agentnet,hostfwd=tcp:127.0.0.1:{agent_port}-:9999{bootfile}'/>
    {nic_args}
  </qemu:commandline>
  {nic_override}
</domain>
",
            name = spec.name,
            memory = spec.memory_mib,
            console = spec.console.display(),
            agent_port = spec.agent_port,
        );
        let file = self.work.join("bmc").join(format!("{}.xml", spec.name));
        std::fs::write(&file, xml).expect("domain XML");
        self.hand_over(&file);
        self.virsh(&["define", &file.to_string_lossy()]);
        self.virsh(&["domuuid", spec.name])
    }

    /// Whether the VM is running (libvirt's view: QEMU is up).
    pub fn running(&self, name: &str) -> bool {
        self.virsh(&["domstate", name]) == "running"
    }
}

impl Drop for VirtualBmc {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(crate::workspace_root().join("tests/vm/stop-bmc.sh"))
            .arg(&self.work)
            .status();
    }
}
