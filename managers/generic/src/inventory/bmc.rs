//! BMC fields (IPA `GenericHardwareManager.get_bmc_address`, `get_bmc_v6address`,
//! `get_bmc_mac`) from `ipmitool lan print` / `lan6 print`.
//!
//! IPA pipes ipmitool through awk in a shell; here the same lines are
//! picked from ipmitool's output natively. Channels 1..=11 are scanned.
//! Without an IPMI device node the BMC is absent: both addresses null and no
//! `bmc_mac`. An ipmitool that cannot run (not granted, not installed,
//! timed out) also gives null, as an execution error does in IPA.

use ironic_hardware_guest::commands::{self, CommandError};
use ironic_hardware_guest::prelude::*;

use super::sysfs;

const CHANNELS: std::ops::RangeInclusive<u32> = 1..=11;
const TIMEOUT_MS: u32 = 60_000;

/// Any of `/dev/ipmi*`, `/dev/ipmi/*`, `/dev/ipmidev/*`.
fn ipmi_device_exists() -> bool {
    use ironic_hardware_guest::machine::EntryKind;
    // The character device; a simulated machine uses a regular file.
    let is_node = |path: &str| {
        matches!(
            sysfs::kind(path),
            Some(EntryKind::CharDevice | EntryKind::File)
        )
    };
    // `/dev` itself is not listed (not declared), so the usual node names
    // are probed; the driver numbers interfaces from 0.
    (0..4).any(|n| is_node(&format!("/dev/ipmi{n}")))
        || ["/dev/ipmi", "/dev/ipmidev"].iter().any(|dir| {
            sysfs::list_opt(dir)
                .ok()
                .flatten()
                .is_some_and(|names| names.iter().any(|n| is_node(&format!("{dir}/{n}"))))
        })
}

/// Output of one ipmitool run.
struct Output {
    stdout: String,
    stderr: String,
}

fn ipmitool(args: &[&str]) -> Result<Output, CommandError> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let out = commands::run("ipmitool", &args, None, Some(TIMEOUT_MS))?;
    Ok(Output {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn command_error(err: &CommandError) -> String {
    match err {
        CommandError::Denied(m) => format!("not allowed: {m}"),
        CommandError::NotFound(m) => format!("not installed: {m}"),
        CommandError::TimedOut(m) => format!("timed out: {m}"),
        CommandError::OutputTooLarge(m) => format!("output too large: {m}"),
        CommandError::Failed(m) => format!("failed: {m}"),
    }
}

fn warn_unusable(what: &str, err: &CommandError) {
    log::log(
        log::Level::Warn,
        &format!("cannot get the {what}: ipmitool {}", command_error(err)),
    );
}

/// awk's `$4` of the lines matching `/<label>[ \t]*:/`, i.e. the value of
/// `<label>   : value` lines (the label followed only by blanks and `:`).
fn awk_field4(text: &str, labels: &[&str]) -> Vec<String> {
    text.lines()
        .filter(|line| {
            labels.iter().any(|label| {
                line.match_indices(label).any(|(i, _)| {
                    line[i + label.len()..]
                        .trim_start_matches([' ', '\t'])
                        .starts_with(':')
                })
            })
        })
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_string))
        .collect()
}

pub(crate) fn get_bmc_address() -> Result<Option<String>, ManagerError> {
    if !ipmi_device_exists() {
        return Ok(None);
    }
    for channel in CHANNELS {
        let out = match ipmitool(&["lan", "print", &channel.to_string()]) {
            Ok(out) => out,
            Err(e) => {
                warn_unusable("BMC address", &e);
                return Ok(None);
            }
        };
        if out.stderr.starts_with("Invalid channel") {
            continue;
        }
        let Some(address) = awk_field4(&out.stdout, &["IP Address"]).into_iter().next() else {
            continue;
        };
        if address.parse::<std::net::IpAddr>().is_err() {
            continue;
        }
        if address != "0.0.0.0" {
            return Ok(Some(address));
        }
    }
    Ok(Some("0.0.0.0".to_string()))
}

pub(crate) fn get_bmc_v6address() -> Result<Option<String>, ManagerError> {
    if !ipmi_device_exists() {
        return Ok(None);
    }
    match bmc_v6address() {
        Ok(address) => Ok(Some(address.unwrap_or_else(|| "::/0".to_string()))),
        Err(e) => {
            warn_unusable("BMC IPv6 address", &e);
            Ok(None)
        }
    }
}

fn bmc_v6address() -> Result<Option<String>, CommandError> {
    for channel in CHANNELS {
        let ch = channel.to_string();
        let out = ipmitool(&["lan6", "print", &ch, "enables"])?;
        if out.stderr.starts_with("Invalid channel") {
            continue;
        }
        // awk `$NF` of the "IPv6/IPv4 Addressing Enables:" line.
        let mode = out
            .stdout
            .lines()
            .find(|l| {
                l.find("IPv6/IPv4 Addressing Enables")
                    .is_some_and(|i| l[i + 28..].trim_start().starts_with(':'))
            })
            .and_then(|l| l.split_whitespace().last())
            .unwrap_or("");
        if mode != "ipv6" && mode != "both" {
            continue;
        }
        let dynamic = ipmitool(&["lan6", "print", &ch, "dynamic_addr"])?;
        for section in lan6_sections(&dynamic.stdout) {
            let source_ok = matches!(section.get("Source/Type"), Some("DHCPv6" | "SLAAC"));
            if source_ok && section.get("Status") == Some("active") {
                if let Some(addr) = usable_v6(section.get("Address")) {
                    return Ok(Some(addr));
                }
            }
        }
        let fixed = ipmitool(&["lan6", "print", &ch, "static_addr"])?;
        for section in lan6_sections(&fixed.stdout) {
            if is_yaml_true(section.get("Enabled")) && section.get("Status") == Some("active") {
                if let Some(addr) = usable_v6(section.get("Address")) {
                    return Ok(Some(addr));
                }
            }
        }
    }
    Ok(None)
}

/// The address without prefix length, unless it is `::` (unset).
fn usable_v6(address: Option<&str>) -> Option<String> {
    let address = address?.trim();
    let bare = address.split('/').next().unwrap_or(address);
    (!bare.is_empty() && bare != "::").then(|| bare.to_string())
}

/// YAML 1.1 booleans as IPA's `yaml.safe_load` reads `Enabled: yes`.
fn is_yaml_true(value: Option<&str>) -> bool {
    matches!(
        value.map(str::to_ascii_lowercase).as_deref(),
        Some("yes" | "true" | "on" | "y")
    )
}

/// A `IPv6 … Address N:` section of `lan6 print` output: its indented
/// `Key: value` lines.
struct Section {
    header: String,
    fields: Vec<(String, String)>,
}

impl Section {
    fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Sections whose header names a static or dynamic IPv6 address.
fn lan6_sections(text: &str) -> Vec<Section> {
    let mut sections: Vec<Section> = Vec::new();
    for line in text.lines() {
        if !line.starts_with([' ', '\t']) {
            if let Some(header) = line.trim().strip_suffix(':') {
                sections.push(Section {
                    header: header.to_string(),
                    fields: Vec::new(),
                });
            } else {
                sections.push(Section {
                    header: String::new(),
                    fields: Vec::new(),
                });
            }
            continue;
        }
        if let (Some(section), Some((k, v))) = (sections.last_mut(), line.trim().split_once(':')) {
            section
                .fields
                .push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    sections.retain(|s| {
        s.header.starts_with("IPv6 Static Address") || s.header.starts_with("IPv6 Dynamic Address")
    });
    sections
}

pub(crate) fn get_bmc_mac() -> Result<Option<String>, ManagerError> {
    if !ipmi_device_exists() {
        return Err(ManagerError::incompatible(
            "no IPMI device: no BMC MAC address",
        ));
    }
    for channel in CHANNELS {
        let ch = channel.to_string();
        let out = match ipmitool(&["lan", "print", &ch]) {
            Ok(out) => out,
            Err(e) => {
                warn_unusable("BMC MAC address", &e);
                break;
            }
        };
        let fields = awk_field4(&out.stdout, &["IP Address", "MAC Address"]);
        let [ip, mac] = fields.as_slice() else {
            continue;
        };
        if ip == "0.0.0.0" {
            // No IPv4: the channel counts only with a global IPv6 address.
            let Ok(v6) = ipmitool(&["lan6", "print", &ch]) else {
                continue;
            };
            let has_global = lan6_sections(&v6.stdout).iter().any(|s| {
                s.get("Address").is_some_and(|a| {
                    !a.starts_with("::") && !a.to_ascii_lowercase().starts_with("fe80")
                })
            });
            if !has_global {
                continue;
            }
        }
        if is_mac(mac) && mac != "00:00:00:00:00:00" {
            return Ok(Some(mac.to_lowercase()));
        }
    }
    Err(ManagerError::incompatible("no BMC MAC address found"))
}

fn is_mac(text: &str) -> bool {
    let parts: Vec<&str> = text.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAN_PRINT: &str = "Set in Progress         : Set Complete
Auth Type Enable        : Callback : MD2 MD5 PASSWORD
IP Address Source       : Static Address
IP Address              : 192.0.2.100
Subnet Mask             : 255.255.255.0
MAC Address             : B4:96:91:aa:bb:03
Default Gateway IP      : 192.0.2.1
";

    #[test]
    fn picks_lines_like_awk() {
        assert_eq!(awk_field4(LAN_PRINT, &["IP Address"]), vec!["192.0.2.100"]);
        assert_eq!(
            awk_field4(LAN_PRINT, &["IP Address", "MAC Address"]),
            vec!["192.0.2.100", "B4:96:91:aa:bb:03"]
        );
        assert!(is_mac("B4:96:91:aa:bb:03"));
    }

    #[test]
    fn lan6_sections_parse() {
        let text = "IPv6/IPv4 Addressing Enables: both
IPv6 Static Address 0:
    Enabled:        yes
    Address:        2001:db8::10/64
    Status:         active
IPv6 Dynamic Address 0:
    Source/Type:    SLAAC
    Address:        fe80::1/64
    Status:         active
";
        let sections = lan6_sections(text);
        assert_eq!(sections.len(), 2);
        assert!(is_yaml_true(sections[0].get("Enabled")));
        assert_eq!(
            usable_v6(sections[0].get("Address")).as_deref(),
            Some("2001:db8::10")
        );
        assert_eq!(usable_v6(Some("::/0")), None);
    }
}
