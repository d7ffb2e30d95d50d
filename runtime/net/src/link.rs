//! Links through rtnetlink: state, bringing up, VLAN creation.

use futures_util::TryStreamExt;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::{LinkUnspec, LinkVlan};

use crate::NetError;

/// A netlink connection (its task runs on the current tokio runtime).
#[derive(Clone)]
pub struct Netlink {
    handle: rtnetlink::Handle,
}

fn nl(what: String) -> impl FnOnce(rtnetlink::Error) -> NetError {
    move |e| NetError::Netlink {
        what,
        message: e.to_string(),
    }
}

impl Netlink {
    /// Opens a netlink route socket.
    pub fn connect() -> Result<Netlink, NetError> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| NetError::Os {
            what: "opening a netlink socket".into(),
            source: e,
        })?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// `(index, up, mac)` of `name`, `None` when it does not exist.
    pub async fn link(&self, name: &str) -> Result<Option<(u32, bool, Option<String>)>, NetError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(msg)) => {
                let up = msg.header.flags.contains(LinkFlags::Up);
                let mac = msg.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Address(bytes) if bytes.len() == 6 => Some(
                        bytes
                            .iter()
                            .map(|b| format!("{b:02x}"))
                            .collect::<Vec<_>>()
                            .join(":"),
                    ),
                    _ => None,
                });
                Ok(Some((msg.header.index, up, mac)))
            }
            Ok(None) => Ok(None),
            // ENODEV answers a name that does not exist.
            Err(rtnetlink::Error::NetlinkError(e)) if e.raw_code() == -libc::ENODEV => Ok(None),
            Err(e) => Err(nl(format!("reading link {name}"))(e)),
        }
    }

    /// Brings `name` up; returns whether it was down.
    pub async fn set_up(&self, name: &str) -> Result<bool, NetError> {
        let (index, up, _) = self
            .link(name)
            .await?
            .ok_or_else(|| NetError::NoSuchInterface {
                name: name.to_string(),
            })?;
        if up {
            return Ok(false);
        }
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(index).up().build())
            .execute()
            .await
            .map_err(nl(format!("bringing {name} up")))?;
        Ok(true)
    }

    /// Creates `<parent>.<vid>` (IPA's naming) and brings it up; an
    /// existing one is only brought up. Returns its name.
    pub async fn add_vlan(&self, parent: &str, vid: u16) -> Result<String, NetError> {
        let name = vlan_name(parent, vid)?;
        if self.link(&name).await?.is_none() {
            let (index, _, _) =
                self.link(parent)
                    .await?
                    .ok_or_else(|| NetError::NoSuchInterface {
                        name: parent.to_string(),
                    })?;
            self.handle
                .link()
                .add(LinkVlan::new(&name, index, vid).up().build())
                .execute()
                .await
                .map_err(nl(format!("adding VLAN interface {name}")))?;
        }
        self.set_up(&name).await?;
        Ok(name)
    }
}

impl Netlink {
    /// Every link's name by its MAC (lowercase).
    pub async fn links_by_mac(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, NetError> {
        let mut links = self.handle.link().get().execute();
        let mut out = std::collections::BTreeMap::new();
        while let Some(msg) = links.try_next().await.map_err(nl("listing links".into()))? {
            let mut name = None;
            let mut mac = None;
            for a in &msg.attributes {
                match a {
                    LinkAttribute::IfName(n) => name = Some(n.clone()),
                    LinkAttribute::Address(b) if b.len() == 6 => {
                        mac = Some(
                            b.iter()
                                .map(|x| format!("{x:02x}"))
                                .collect::<Vec<_>>()
                                .join(":"),
                        )
                    }
                    _ => {}
                }
            }
            if let (Some(n), Some(m)) = (name, mac) {
                out.entry(m).or_insert(n);
            }
        }
        Ok(out)
    }

    /// Adds `ip/prefix` to `name`.
    pub async fn add_address(
        &self,
        name: &str,
        ip: std::net::IpAddr,
        prefix: u8,
    ) -> Result<(), NetError> {
        let (index, _, _) = self
            .link(name)
            .await?
            .ok_or_else(|| NetError::NoSuchInterface {
                name: name.to_string(),
            })?;
        self.handle
            .address()
            .add(index, ip, prefix)
            .execute()
            .await
            .map_err(nl(format!("adding {ip}/{prefix} to {name}")))
    }

    /// Adds a route to `dest/prefix` via `gateway`.
    pub async fn add_route(
        &self,
        dest: std::net::IpAddr,
        prefix: u8,
        gateway: std::net::IpAddr,
    ) -> Result<(), NetError> {
        use rtnetlink::RouteMessageBuilder;
        use std::net::IpAddr;
        let message = match (dest, gateway) {
            (IpAddr::V4(d), IpAddr::V4(g)) => RouteMessageBuilder::<std::net::Ipv4Addr>::new()
                .destination_prefix(d, prefix)
                .gateway(g)
                .build(),
            (IpAddr::V6(d), IpAddr::V6(g)) => RouteMessageBuilder::<std::net::Ipv6Addr>::new()
                .destination_prefix(d, prefix)
                .gateway(g)
                .build(),
            _ => {
                return Err(NetError::Netlink {
                    what: format!("route {dest}/{prefix} via {gateway}"),
                    message: "address families differ".into(),
                })
            }
        };
        self.handle
            .route()
            .add(message)
            .execute()
            .await
            .map_err(nl(format!("adding route {dest}/{prefix} via {gateway}")))
    }
}

/// `<parent>.<vid>`, refused past the kernel's 15-character limit.
pub fn vlan_name(parent: &str, vid: u16) -> Result<String, NetError> {
    let name = format!("{parent}.{vid}");
    if name.len() > 15 || !(1..=4094).contains(&vid) {
        return Err(NetError::BadName { name });
    }
    Ok(name)
}
