//! The rule every frame vipcheck puts on the wire obeys, enforced in one
//! place: [`Port::send`](crate::engine::port::Port::send) refuses any frame that
//! breaks it, whatever path built the frame.
//!
//! A frame leaves from IFACE's own MAC, and its sender (ARP) or source
//! (IPv4) address is one of IFACE's own addresses, never the VIP. Why it
//! matters: a broadcast ARP request updates the neighbour entry of its
//! sender IP on every host of the segment that has one, the router
//! included. Sent with the VIP (or another host's address) as sender, it
//! would pull that address's traffic to this LB: an outage caused by a
//! health check.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv6Packet, Icmpv6Repr,
    IpProtocol, Ipv4Packet, Ipv6Packet, NdiscRepr,
};

use crate::sys::netdev::{Mac, NetDev};

/// The addresses a frame sent on one interface may carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    mac: Mac,
    /// IFACE's own addresses, less the VIP (and IPv6 link-local ones).
    sources: Vec<IpAddr>,
}

impl Egress {
    /// The rule for frames sent on `dev` in a check of `vip`.
    pub fn new(dev: &NetDev, vip: IpAddr) -> Egress {
        Egress {
            mac: dev.mac,
            sources: dev
                .ipv4
                .iter()
                .map(|c| IpAddr::V4(c.addr))
                .chain(
                    dev.ipv6
                        .iter()
                        .filter(|c| c.can_source())
                        .map(|c| IpAddr::V6(c.addr)),
                )
                .filter(|&a| a != vip && !a.is_loopback() && !a.is_unspecified())
                .collect(),
        }
    }

    /// Whether `ip` may be the sender or source address of our frames.
    pub(crate) fn allows_source(&self, ip: IpAddr) -> bool {
        self.sources.contains(&ip)
    }

    /// `Ok` if `frame` may be sent, else why not.
    pub fn check(&self, frame: &[u8]) -> Result<(), String> {
        let eth = EthernetFrame::new_checked(frame)
            .map_err(|_| format!("a frame of {} bytes is not Ethernet", frame.len()))?;
        if eth.src_addr() != EthernetAddress(self.mac.0) {
            return Err(format!(
                "source MAC {} is not the interface's {}",
                Mac(eth.src_addr().0),
                self.mac
            ));
        }
        let source = match eth.ethertype() {
            EthernetProtocol::Arp => {
                let arp = ArpPacket::new_checked(eth.payload())
                    .and_then(|p| ArpRepr::parse(&p))
                    .map_err(|_| "malformed ARP frame".to_string())?;
                let ArpRepr::EthernetIpv4 {
                    source_hardware_addr,
                    source_protocol_addr,
                    ..
                } = arp
                else {
                    return Err("ARP frame that is not Ethernet/IPv4".into());
                };
                if source_hardware_addr != EthernetAddress(self.mac.0) {
                    return Err(format!(
                        "ARP sender MAC {} is not the interface's {}",
                        Mac(source_hardware_addr.0),
                        self.mac
                    ));
                }
                IpAddr::V4(source_protocol_addr)
            }
            EthernetProtocol::Ipv4 => IpAddr::V4(
                Ipv4Packet::new_checked(eth.payload())
                    .map_err(|_| "malformed IPv4 frame".to_string())?
                    .src_addr(),
            ),
            EthernetProtocol::Ipv6 => {
                let ip = Ipv6Packet::new_checked(eth.payload())
                    .map_err(|_| "malformed IPv6 frame".to_string())?;
                self.ipv6_kind(&ip)?;
                IpAddr::V6(ip.src_addr())
            }
            other => return Err(format!("ethertype {other} is never sent")),
        };
        if !self.allows_source(source) {
            return Err(format!(
                "sender address {source} is not one of the interface's own addresses (the VIP never is)"
            ));
        }
        Ok(())
    }
}

impl Egress {
    /// IPv6 carries only TCP, UDP, echo requests and our neighbour
    /// solicitations, whose source link-layer option (which updates the
    /// receiver's neighbour entry of the source) is IFACE's MAC.
    fn ipv6_kind(&self, ip: &Ipv6Packet<&[u8]>) -> Result<(), String> {
        match ip.next_header() {
            IpProtocol::Tcp | IpProtocol::Udp => Ok(()),
            IpProtocol::Icmpv6 => {
                let icmp = Icmpv6Packet::new_checked(ip.payload())
                    .map_err(|_| "malformed ICMPv6 packet".to_string())?;
                match Icmpv6Repr::parse(
                    &ip.src_addr(),
                    &ip.dst_addr(),
                    &icmp,
                    &ChecksumCapabilities::ignored(),
                ) {
                    Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { lladdr, .. })) => {
                        match lladdr {
                            Some(mac) if mac.as_bytes() != self.mac.0 => Err(format!(
                                "neighbour solicitation's link-layer address {} is not the interface's {}",
                                Mac(mac.as_bytes().try_into().unwrap_or_default()),
                                self.mac
                            )),
                            _ => Ok(()),
                        }
                    }
                    Ok(Icmpv6Repr::EchoRequest { .. }) => Ok(()),
                    _ => Err(
                        "ICMPv6 other than a neighbour solicitation or an echo request is never sent"
                            .into(),
                    ),
                }
            }
            other => Err(format!("IPv6 {other} is never sent")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::netdev::{Ipv4Cidr, Ipv6Cidr};
    use crate::wire::arp::{reply_frame, request_frame};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const OURS: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const OTHER: Mac = Mac([2, 0, 0, 0, 0, 2]);
    const LB: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const RS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

    /// A master LB: the VIP is on the interface too.
    fn egress() -> Egress {
        let dev = NetDev {
            name: "eth0".into(),
            ifindex: 2,
            mac: OURS,
            mtu: 1500,
            ipv4: [(LB, 24), (VIP, 32)]
                .map(|(addr, prefix_len)| Ipv4Cidr { addr, prefix_len })
                .to_vec(),
            ipv6: Vec::new(),
            ethernet: true,
            up: true,
            xdp_seen: None,
        };
        Egress::new(&dev, VIP.into())
    }

    fn syn(src: Ipv4Addr) -> Vec<u8> {
        let mut frame = vec![
            2, 0, 0, 0, 0, 0x0b, 2, 0, 0, 0, 0, 1, 0x08, 0x00, // ethernet
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 0, 0, 0, 0, 198, 18, 0, 100, // ipv4
            0x9c, 0x40, 0, 80, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0,
            0, // tcp
        ];
        frame[26..30].copy_from_slice(&src.octets());
        frame
    }

    #[test]
    fn our_own_address_passes() {
        let e = egress();
        assert_eq!(e.check(&request_frame(OURS, LB, RS)), Ok(()));
        assert_eq!(e.check(&syn(LB)), Ok(()));
    }

    #[test]
    fn the_vip_never_is_a_sender() {
        let e = egress();
        assert!(!e.allows_source(VIP.into()));
        let arp = e.check(&request_frame(OURS, VIP, RS)).unwrap_err();
        assert!(arp.contains("198.18.0.100"), "{arp}");
        assert!(e.check(&syn(VIP)).is_err());
    }

    #[test]
    fn other_hosts_and_loopback_addresses_are_refused() {
        let e = egress();
        for ip in [
            Ipv4Addr::new(198, 18, 0, 55),
            Ipv4Addr::LOCALHOST,
            Ipv4Addr::UNSPECIFIED,
            RS,
        ] {
            assert!(e.check(&request_frame(OURS, ip, RS)).is_err(), "{ip}");
            assert!(e.check(&syn(ip)).is_err(), "{ip}");
        }
    }

    #[test]
    fn ipv6_sources_are_global_addresses_of_the_interface() {
        let global: Ipv6Addr = "fd98:c612:0:1::1".parse().unwrap();
        let link_local: Ipv6Addr = "fe80::1".parse().unwrap();
        let vip6: Ipv6Addr = "fd98:c612:0:1::100".parse().unwrap();
        let rs6: Ipv6Addr = "fd98:c612:0:1::b".parse().unwrap();
        let dev = NetDev {
            name: "eth0".into(),
            ifindex: 2,
            mac: OURS,
            mtu: 1500,
            ipv4: Vec::new(),
            ipv6: [(global, 64), (link_local, 64), (vip6, 128)]
                .map(|(addr, prefix_len)| Ipv6Cidr {
                    addr,
                    prefix_len,
                    ready: true,
                })
                .to_vec(),
            ethernet: true,
            up: true,
            xdp_seen: None,
        };
        let e = Egress::new(&dev, vip6.into());
        let ns = |source| crate::wire::ndp::solicitation_frame(OURS, source, rs6);
        assert_eq!(e.check(&ns(global)), Ok(()));
        for refused in [vip6, link_local, rs6] {
            assert!(e.check(&ns(refused)).is_err(), "{refused}");
        }
        // Our own source, but an advertisement, or a solicitation naming
        // another MAC in its option: never.
        let na = crate::wire::ndp::advertisement_frame(OURS, global, OTHER, rs6);
        assert!(e.check(&na).is_err());
        let mut foreign_option = ns(global);
        let at = foreign_option.len() - 6;
        foreign_option[at..].copy_from_slice(&OTHER.0);
        assert!(e.check(&foreign_option).is_err());
    }

    #[test]
    fn another_mac_is_refused() {
        let e = egress();
        assert!(e.check(&request_frame(OTHER, LB, RS)).is_err());
        let mut frame = syn(LB);
        frame[6..12].copy_from_slice(&OTHER.0);
        assert!(e.check(&frame).is_err());
        // Ethernet source ours, ARP sender hardware address another's.
        let mut arp = request_frame(OURS, LB, RS);
        arp[22..28].copy_from_slice(&OTHER.0);
        assert!(e.check(&arp).is_err());
    }

    #[test]
    fn anything_else_is_refused() {
        let e = egress();
        // An ARP reply from us is fine by address; a frame of another
        // ethertype, a truncated one or garbage never leaves.
        assert_eq!(e.check(&reply_frame(OURS, LB, OTHER, RS)), Ok(()));
        let mut other = syn(LB);
        other[12..14].copy_from_slice(&[0x88, 0xcc]); // LLDP
        assert!(e.check(&other).is_err());
        assert!(e.check(&syn(LB)[..20]).is_err());
        assert!(e.check(&[]).is_err());
    }
}
