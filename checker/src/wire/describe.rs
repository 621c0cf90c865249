//! One line per Ethernet frame, for the traces of `-v` (the I/O is
//! [`engine::trace`](crate::engine::trace)).
//!
//! Lines are tcpdump-like, in the C checkers' layout: source MAC first,
//! destination MAC after the addresses. The native format adds the window
//! and the length; the C format (under the C checkers' names) is theirs.
//!
//! ```text
//! (SRC_MAC) SRC_IP ARP request who has TARGET_IP (ff:ff:ff:ff:ff:ff)
//! (SRC_MAC) SRC_IP ARP reply to DST_IP (DST_MAC)
//! (SRC_MAC) SRC_IP:SPORT > DST_IP:DPORT (DST_MAC) Flags [S], seq N, win N, length N
//! (SRC_MAC) SRC_IP:SPORT > DST_IP:DPORT (DST_MAC) Flags [S], seq N, ack N      (C)
//! ```

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, Icmpv6Packet, Icmpv6Repr,
    IpProtocol, Ipv4Packet, Ipv6Packet, NdiscRepr, TcpPacket,
};

use crate::sys::netdev::Mac;

#[cfg(test)]
/// Describes one Ethernet frame in one line (native format).
pub(crate) fn describe(frame: &[u8]) -> String {
    describe_as(frame, false)
}

/// Describes one Ethernet frame in one line, in the C checkers' format
/// when `c_format`.
pub(crate) fn describe_as(frame: &[u8], c_format: bool) -> String {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return format!("short frame of {} bytes", frame.len());
    };
    let src = Mac(eth.src_addr().0);
    let dst = Mac(eth.dst_addr().0);
    let body = match eth.ethertype() {
        EthernetProtocol::Arp => describe_arp(eth.payload()),
        EthernetProtocol::Ipv4 => describe_ipv4(eth.payload(), c_format),
        EthernetProtocol::Ipv6 => describe_ipv6(eth.payload(), c_format),
        other => Some((format!("ethertype {other}"), String::new())),
    };
    match body {
        Some((addrs, details)) => format!("({src}) {addrs} ({dst}){details}"),
        None => format!("({src}) malformed {} frame ({dst})", eth.ethertype()),
    }
}

/// The part before the destination MAC and the part after it.
type Parts = (String, String);

fn describe_arp(payload: &[u8]) -> Option<Parts> {
    let packet = ArpPacket::new_checked(payload).ok()?;
    match ArpRepr::parse(&packet).ok()? {
        ArpRepr::EthernetIpv4 {
            operation,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } => Some((
            match operation {
                ArpOperation::Request => {
                    format!("{source_protocol_addr} ARP request who has {target_protocol_addr}")
                }
                ArpOperation::Reply => {
                    format!("{source_protocol_addr} ARP reply to {target_protocol_addr}")
                }
                ArpOperation::Unknown(op) => format!("{source_protocol_addr} ARP operation {op}"),
            },
            String::new(),
        )),
        _ => None,
    }
}

fn describe_ipv4(payload: &[u8], c_format: bool) -> Option<Parts> {
    let ip = Ipv4Packet::new_checked(payload).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if ip.next_header() != IpProtocol::Tcp {
        return Some((format!("{src} > {dst} {}", ip.next_header()), String::new()));
    }
    describe_tcp(src.into(), dst.into(), ip.payload(), c_format)
}

fn describe_ipv6(payload: &[u8], c_format: bool) -> Option<Parts> {
    let ip = Ipv6Packet::new_checked(payload).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    match ip.next_header() {
        IpProtocol::Tcp => describe_tcp(src.into(), dst.into(), ip.payload(), c_format),
        IpProtocol::Icmpv6 => {
            let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
            let what = match Icmpv6Repr::parse(
                &src,
                &dst,
                &icmp,
                &smoltcp::phy::ChecksumCapabilities::ignored(),
            ) {
                Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborSolicit { target_addr, .. })) => {
                    format!("{src} NDP solicitation who has {target_addr}")
                }
                Ok(Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert { target_addr, .. })) => {
                    format!("{src} NDP advertisement of {target_addr} to {dst}")
                }
                _ => format!("{src} > {dst} ICMPv6 type {}", icmp.msg_type()),
            };
            Some((what, String::new()))
        }
        other => Some((format!("{src} > {dst} {other}"), String::new())),
    }
}

/// `SRC:SPORT > DST:DPORT` ([addr]:port for IPv6) and the TCP details.
fn describe_tcp(
    src: std::net::IpAddr,
    dst: std::net::IpAddr,
    segment: &[u8],
    c_format: bool,
) -> Option<Parts> {
    let tcp = TcpPacket::new_checked(segment).ok()?;
    let mut flags = String::new();
    for (set, c) in [
        (tcp.syn(), 'S'),
        (tcp.fin(), 'F'),
        (tcp.rst(), 'R'),
        (tcp.psh(), 'P'),
        (tcp.ack(), '.'),
    ] {
        if set {
            flags.push(c);
        }
    }
    let addrs = format!(
        "{} > {}",
        std::net::SocketAddr::new(src, tcp.src_port()),
        std::net::SocketAddr::new(dst, tcp.dst_port())
    );
    let mut details = format!(" Flags [{flags}], seq {}", tcp.seq_number().0 as u32);
    if c_format {
        // As the C checkers print it: the ack field always, nothing more.
        details += &format!(", ack {}", tcp.ack_number().0 as u32);
        return Some((addrs, details));
    }
    if tcp.ack() {
        details += &format!(", ack {}", tcp.ack_number().0 as u32);
    }
    details += &format!(", win {}, length {}", tcp.window_len(), tcp.payload().len());
    Some((addrs, details))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_a_syn() {
        // Ethernet + IPv4 + TCP SYN, 198.18.0.1:40000 > 198.18.0.100:80.
        let mut frame = vec![
            0x02, 0, 0, 0, 0, 0x0b, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00, // ethernet
            0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 198, 18, 0, 1, 198, 18, 0,
            100, // ipv4
            0x9c, 0x40, 0, 80, 0, 0, 0, 7, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0,
            0, // tcp
        ];
        assert_eq!(
            describe(&frame),
            "(02:00:00:00:00:01) 198.18.0.1:40000 > 198.18.0.100:80 (02:00:00:00:00:0b) \
             Flags [S], seq 7, win 65535, length 0"
        );
        frame[47] = 0x12; // SYN+ACK
        assert!(describe(&frame).contains("Flags [S.], seq 7, ack 0"));
        // The C checkers' layout: ack always, no window or length.
        frame[47] = 0x02;
        assert_eq!(
            describe_as(&frame, true),
            "(02:00:00:00:00:01) 198.18.0.1:40000 > 198.18.0.100:80 (02:00:00:00:00:0b) \
             Flags [S], seq 7, ack 0"
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        for len in 0..64 {
            let frame: Vec<u8> = (0..len as u8).collect();
            let _ = describe(&frame);
        }
    }
}
