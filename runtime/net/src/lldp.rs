//! LLDP: one frame per interface, heard on raw packet sockets
//! (`AF_PACKET`, ethertype 0x88cc), all interfaces in parallel, bounded by
//! `lldp_timeout` (IPA `netutils.get_lldp_info`). IPA puts each interface
//! into promiscuous mode for the listen; a packet-socket membership for the
//! LLDP multicast address (IEEE 802.1AB nearest-bridge, 01:80:c2:00:00:0e)
//! receives the same frames and ends with the socket.

use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::NetError;

/// LLDP's ethertype.
pub const ETHERTYPE: u16 = 0x88cc;
/// The nearest-bridge group address LLDP frames are sent to.
const NEAREST_BRIDGE: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];
/// The largest frame read (IPA reads 1600 bytes).
const MAX_FRAME: usize = 1600;
/// Ethernet header: destination, source, ethertype.
const ETH_HEADER: usize = 14;

/// TLVs as Ironic receives them: `(type, value as lowercase hex)`.
pub type Tlvs = Vec<(u8, String)>;

/// Splits an LLDPDU into `(type, value)` TLVs: a 7-bit type and 9-bit
/// length, then the value (IEEE 802.1AB §8.4; IPA `_parse_tlv`). A TLV
/// whose length runs past the frame keeps what is there, as IPA does.
pub fn parse_tlvs(mut pdu: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    while pdu.len() >= 2 {
        let header = u16::from_be_bytes([pdu[0], pdu[1]]);
        let kind = (header >> 9) as u8;
        let len = (header & 0x01ff) as usize;
        let end = (2 + len).min(pdu.len());
        out.push((kind, pdu[2..end].to_vec()));
        pdu = &pdu[end..];
    }
    out
}

/// Hex-encodes every TLV value (IPA `collect_lldp_data`).
pub fn to_hex(tlvs: Vec<(u8, Vec<u8>)>) -> Tlvs {
    tlvs.into_iter()
        .map(|(kind, value)| {
            let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
            (kind, hex)
        })
        .collect()
}

/// Listens on every interface at once until each has heard one LLDP frame
/// or `timeout` has passed. Interfaces that heard nothing, or whose socket
/// failed (logged), map to an empty list, as in IPA.
pub async fn collect(interfaces: &[String], timeout: Duration) -> BTreeMap<String, Tlvs> {
    let deadline = Instant::now() + timeout;
    let tasks: Vec<_> = interfaces
        .iter()
        .map(|name| {
            let name = name.clone();
            tokio::task::spawn_blocking(move || {
                let heard = listen(&name, deadline);
                (name, heard)
            })
        })
        .collect();
    let mut out = BTreeMap::new();
    for task in tasks {
        let Ok((name, heard)) = task.await else {
            continue;
        };
        let tlvs = match heard {
            Ok(Some(frame)) => {
                tracing::info!(interface = %name, "LLDP frame received");
                to_hex(parse_tlvs(&frame[ETH_HEADER..]))
            }
            Ok(None) => {
                tracing::warn!(interface = %name, "no LLDP frame within lldp_timeout");
                Vec::new()
            }
            Err(e) => {
                tracing::warn!(interface = %name, error = %e, "cannot listen for LLDP");
                Vec::new()
            }
        };
        out.insert(name, tlvs);
    }
    out
}

/// One LLDP frame heard on `interface` before `deadline`, if any.
fn listen(interface: &str, deadline: Instant) -> Result<Option<Vec<u8>>, NetError> {
    let socket = PacketSocket::bind(interface)?;
    let mut buf = vec![0u8; MAX_FRAME];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        if !socket.readable_within(left)? {
            return Ok(None);
        }
        let n = socket.recv(&mut buf)?;
        // Too short for a header and one TLV: not LLDP, keep listening.
        if n >= ETH_HEADER + 2 {
            buf.truncate(n);
            return Ok(Some(buf));
        }
    }
}

/// A raw packet socket bound to one interface for LLDP's ethertype.
struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    fn bind(interface: &str) -> Result<PacketSocket, NetError> {
        let os = |what: &str| NetError::Os {
            what: format!("{what} on {interface}"),
            source: std::io::Error::last_os_error(),
        };
        let name = std::ffi::CString::new(interface).map_err(|_| NetError::BadName {
            name: interface.to_string(),
        })?;
        // SAFETY: if_nametoindex reads a NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        if index == 0 {
            return Err(os("if_nametoindex"));
        }
        let protocol = ETHERTYPE.to_be();
        // SAFETY: plain socket(2) call; the descriptor is owned below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                i32::from(protocol),
            )
        };
        if raw < 0 {
            return Err(os("socket(AF_PACKET)"));
        }
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol;
        addr.sll_ifindex = index as i32;
        // SAFETY: addr is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::addr_of!(addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc < 0 {
            return Err(os("bind"));
        }
        // SAFETY: packet_mreq is plain data; zeroed is a valid start.
        let mut mreq: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mreq.mr_ifindex = index as i32;
        mreq.mr_type = libc::PACKET_MR_MULTICAST as u16;
        mreq.mr_alen = 6;
        mreq.mr_address[..6].copy_from_slice(&NEAREST_BRIDGE);
        // SAFETY: mreq is a valid packet_mreq of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                std::ptr::addr_of!(mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as u32,
            )
        };
        if rc < 0 {
            return Err(os("PACKET_ADD_MEMBERSHIP"));
        }
        Ok(PacketSocket { fd })
    }

    fn readable_within(&self, wait: Duration) -> Result<bool, NetError> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = i32::try_from(wait.as_millis().max(1)).unwrap_or(i32::MAX);
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(NetError::Os {
                what: "poll".into(),
                source: err,
            });
        }
        Ok(rc > 0)
    }

    fn recv(&self, buf: &mut [u8]) -> Result<usize, NetError> {
        // SAFETY: buf is valid for buf.len() bytes.
        let n = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            return Err(NetError::Os {
                what: "recv".into(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(n as usize)
    }
}

/// VLAN ids announced in 802.1Q VLAN Name TLVs (organisationally specific,
/// type 127, OUI 00-80-c2, subtype 3; IPA `_add_vlans_from_lldp`).
pub fn vlan_ids(tlvs: &Tlvs) -> Vec<u16> {
    const PREFIX: &str = "0080c203";
    tlvs.iter()
        .filter(|(kind, value)| *kind == 127 && value.starts_with(PREFIX))
        .filter_map(|(_, value)| value.get(PREFIX.len()..PREFIX.len() + 4))
        .filter_map(|id| u16::from_str_radix(id, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tlvs_parse_and_hex() {
        // Chassis id (type 1, len 7: subtype 4 + MAC), port id (type 2,
        // len 5: subtype 5 + "eth1"), end (type 0, len 0).
        let pdu = [
            0x02, 0x07, 0x04, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x04, 0x05, 0x05, b'e', b't',
            b'h', b'1', 0x00, 0x00,
        ];
        let tlvs = to_hex(parse_tlvs(&pdu));
        assert_eq!(
            tlvs,
            vec![
                (1, "04001122334455".to_string()),
                (2, "0565746831".to_string()),
                (0, String::new())
            ]
        );
    }

    #[test]
    fn truncated_tlv_keeps_what_is_there() {
        let tlvs = parse_tlvs(&[0x0a, 0x10, b'a', b'b']);
        assert_eq!(tlvs, vec![(5, b"ab".to_vec())]);
    }

    #[test]
    fn vlan_ids_from_vlan_name_tlvs() {
        let tlvs = vec![
            (127, "0080c203006407766c616e313030".to_string()),
            (127, "0080c20300c807766c616e323030".to_string()),
            (127, "0080c2010064".to_string()),
            (1, "0080c203006407".to_string()),
        ];
        assert_eq!(vlan_ids(&tlvs), vec![100, 200]);
    }
}
