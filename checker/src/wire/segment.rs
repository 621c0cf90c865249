//! The TCP segment fields the checker looks at, read from an Ethernet
//! frame (what the XDP program hands over, what smoltcp sends).

use std::net::{IpAddr, SocketAddr};

use smoltcp::wire::{
    EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket,
};

/// The fields of a TCP segment (over IPv4 or IPv6) in an Ethernet frame
/// that the checker looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub(crate) src: SocketAddr,
    pub(crate) dst: SocketAddr,
    pub(crate) seq: u32,
    /// Sequence space it occupies (payload, plus one for SYN and FIN).
    pub(crate) len: u32,
    pub(crate) ack: Option<u32>,
    pub(crate) rst: bool,
}

impl Segment {
    pub fn parse(frame: &[u8]) -> Option<Segment> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let (src, dst, payload): (IpAddr, IpAddr, &[u8]) = match eth.ethertype() {
            EthernetProtocol::Ipv4 => {
                let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
                if ip.next_header() != IpProtocol::Tcp {
                    return None;
                }
                (ip.src_addr().into(), ip.dst_addr().into(), ip.payload())
            }
            EthernetProtocol::Ipv6 => {
                // Only TCP right after the fixed header: what smoltcp sends
                // and what the XDP program hands over.
                let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
                if ip.next_header() != IpProtocol::Tcp {
                    return None;
                }
                (ip.src_addr().into(), ip.dst_addr().into(), ip.payload())
            }
            _ => return None,
        };
        let tcp = TcpPacket::new_checked(payload).ok()?;
        Some(Segment {
            src: SocketAddr::new(src, tcp.src_port()),
            dst: SocketAddr::new(dst, tcp.dst_port()),
            seq: tcp.seq_number().0 as u32,
            len: tcp.segment_len() as u32,
            ack: tcp.ack().then(|| tcp.ack_number().0 as u32),
            rst: tcp.rst(),
        })
    }
}
