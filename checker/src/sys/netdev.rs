//! What the check needs to know about the local interface: index, type,
//! state, MAC, IPv4 addresses and MTU, read from the kernel of the current
//! network namespace (never from /sys, which `nsenter --net` does not switch).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::sys::rtnl::XdpProgram;

/// An Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Mac(pub [u8; 6]);

impl std::fmt::Display for Mac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// One IPv4 address of an interface with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    pub addr: Ipv4Addr,
    pub prefix_len: u8,
}

impl Ipv4Cidr {
    pub(crate) fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX
            .checked_shl(32 - u32::from(self.prefix_len))
            .unwrap_or(0);
        u32::from(self.addr) & mask == u32::from(ip) & mask
    }
}

/// One IPv6 address of an interface with its prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Cidr {
    pub addr: Ipv6Addr,
    pub prefix_len: u8,
    /// Past duplicate address detection (not tentative, not dadfailed).
    pub ready: bool,
}

impl Ipv6Cidr {
    pub(crate) fn contains(&self, ip: Ipv6Addr) -> bool {
        let mask = u128::MAX
            .checked_shl(128 - u32::from(self.prefix_len))
            .unwrap_or(0);
        u128::from(self.addr) & mask == u128::from(ip) & mask
    }

    /// Not link-local (fe80::/10).
    pub(crate) fn is_global(&self) -> bool {
        self.addr.segments()[0] & 0xffc0 != 0xfe80
    }

    /// An address that can source a check: global and past DAD.
    pub fn can_source(&self) -> bool {
        self.is_global() && self.ready
    }
}

#[derive(Clone, Debug)]
pub struct NetDev {
    pub name: String,
    pub ifindex: u32,
    pub mac: Mac,
    pub mtu: usize,
    pub ipv4: Vec<Ipv4Cidr>,
    pub ipv6: Vec<Ipv6Cidr>,
    /// Ethernet framing: ARP, MACs (not loopback, tunnels or raw IP links).
    pub ethernet: bool,
    /// Administratively up.
    pub up: bool,
    /// What the kernel said of its XDP program, and when (none for an
    /// interface not read from the kernel).
    pub xdp_seen: Option<XdpSeen>,
}

/// The XDP program an interface had when it was read.
#[derive(Clone, Copy, Debug)]
pub struct XdpSeen {
    pub at: Instant,
    pub program: Option<XdpProgram>,
}

impl NetDev {
    /// Looks the interface up in the current network namespace: two
    /// rtnetlink requests (the link, its addresses).
    pub fn lookup(name: &str) -> Result<NetDev> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
            return Err(Error::NoInterface(name.to_string()));
        }
        let link = crate::sys::rtnl::link_named(name).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NoInterface(name.to_string()),
            _ => Error::io(format!("reading the state of {name}"), e),
        })?;
        let read = Instant::now();
        let ifindex = link.ifindex;
        let addresses = crate::sys::rtnl::addresses(ifindex)
            .map_err(|e| Error::io(format!("reading the addresses of {name}"), e))?;
        let mut dev = NetDev {
            name: name.to_string(),
            ifindex,
            mac: Mac(link.mac.unwrap_or_default()),
            mtu: link.mtu as usize,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
            ethernet: link.ethernet && link.mac.is_some(),
            up: link.up,
            xdp_seen: Some(XdpSeen {
                at: read,
                program: link.xdp,
            }),
        };
        for address in addresses {
            match address.ip {
                IpAddr::V4(addr) => dev.ipv4.push(Ipv4Cidr {
                    addr,
                    prefix_len: address.prefix_len,
                }),
                IpAddr::V6(addr) => dev.ipv6.push(Ipv6Cidr {
                    addr,
                    prefix_len: address.prefix_len,
                    ready: !address.unready,
                }),
            }
        }
        Ok(dev)
    }

    /// The XDP program the interface had when it was read, if that was
    /// within `fresh`: a caller about to open it need not ask again.
    pub(crate) fn xdp_seen_within(&self, fresh: Duration) -> Option<Option<XdpProgram>> {
        self.xdp_seen
            .filter(|seen| seen.at.elapsed() < fresh)
            .map(|seen| seen.program)
    }

    /// The source address for a check of `real_server` through `vip`: the
    /// address whose subnet holds the real server, else the first one; never
    /// the VIP itself (a master LB carries it on this interface too), and
    /// for IPv6 never a link-local address.
    pub(crate) fn source_for(&self, real_server: IpAddr, vip: IpAddr) -> Result<IpAddr> {
        let found = match real_server {
            IpAddr::V4(rs) => {
                let candidates = || self.ipv4.iter().filter(|c| IpAddr::V4(c.addr) != vip);
                candidates()
                    .find(|c| c.contains(rs))
                    .or_else(|| candidates().next())
                    .map(|c| IpAddr::V4(c.addr))
            }
            IpAddr::V6(rs) => {
                let candidates = || {
                    self.ipv6
                        .iter()
                        .filter(|c| c.can_source() && IpAddr::V6(c.addr) != vip)
                };
                candidates()
                    .find(|c| c.contains(rs))
                    .or_else(|| candidates().next())
                    .map(|c| IpAddr::V6(c.addr))
            }
        };
        found.ok_or_else(|| {
            Error::Interface(format!(
                "{} has no {} address to send from; give it one or use --source",
                self.name,
                if real_server.is_ipv4() {
                    "IPv4"
                } else {
                    "global IPv6 (past duplicate address detection)"
                }
            ))
        })
    }
}

/// Inode of the current network namespace: with the ifindex it names an
/// interface uniquely on this host (names and indexes repeat across namespaces).
pub(crate) fn netns_inode() -> Result<u64> {
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .map_err(|e| Error::io("reading /proc/self/ns/net", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_contains() {
        let c = Ipv4Cidr {
            addr: Ipv4Addr::new(198, 18, 0, 1),
            prefix_len: 24,
        };
        assert!(c.contains(Ipv4Addr::new(198, 18, 0, 200)));
        assert!(!c.contains(Ipv4Addr::new(198, 18, 1, 1)));
        let all = Ipv4Cidr { prefix_len: 0, ..c };
        assert!(all.contains(Ipv4Addr::new(1, 2, 3, 4)));
    }

    #[test]
    fn source_skips_the_vip() {
        let dev = NetDev {
            name: "eth0".into(),
            ifindex: 2,
            mac: Mac::default(),
            mtu: 1500,
            ethernet: true,
            up: true,
            xdp_seen: None,
            ipv6: Vec::new(),
            ipv4: vec![
                Ipv4Cidr {
                    addr: Ipv4Addr::new(198, 18, 0, 100),
                    prefix_len: 32,
                },
                Ipv4Cidr {
                    addr: Ipv4Addr::new(198, 18, 0, 1),
                    prefix_len: 24,
                },
            ],
        };
        let rs = Ipv4Addr::new(198, 18, 0, 11).into();
        let vip = Ipv4Addr::new(198, 18, 0, 100).into();
        assert_eq!(
            dev.source_for(rs, vip).unwrap(),
            IpAddr::from(Ipv4Addr::new(198, 18, 0, 1))
        );
    }

    #[test]
    fn mac_display() {
        assert_eq!(
            Mac([0, 0x1b, 2, 3, 4, 0xff]).to_string(),
            "00:1b:02:03:04:ff"
        );
    }
}
