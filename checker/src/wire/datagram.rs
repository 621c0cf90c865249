//! The frames of a datagram check (one UDP datagram, or an ICMP or ICMPv6
//! echo request, to the VIP through the real server's MAC) and what comes
//! back for it: a datagram, an echo reply, or an ICMP error quoting ours.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Message, Icmpv4Packet,
    Icmpv4Repr, Icmpv6Message, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Packet, Ipv4Repr,
    Ipv6Packet, Ipv6Repr, UdpPacket, UdpRepr,
};

use crate::sys::netdev::Mac;

/// The ends of a datagram flow on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Ends {
    pub(crate) local_mac: Mac,
    /// The real server's MAC: the LVS-DR forwarding decision.
    pub(crate) remote_mac: Mac,
    pub(crate) local: IpAddr,
    /// The VIP.
    pub(crate) remote: IpAddr,
}

/// What a datagram flow sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Datagram<'a> {
    Udp {
        local_port: u16,
        remote_port: u16,
        payload: &'a [u8],
    },
    Echo {
        ident: u16,
        seq: u16,
        payload: &'a [u8],
    },
}

const HOP_LIMIT: u8 = 64;

/// The Ethernet frame carrying `datagram` between `ends`. `None` if the
/// addresses are of different families (the preflight refuses that).
pub(crate) fn frame(ends: &Ends, datagram: &Datagram<'_>) -> Option<Vec<u8>> {
    let caps = ChecksumCapabilities::default();
    let (l4_len, protocol) = match (datagram, ends.local) {
        (Datagram::Udp { payload, .. }, _) => (8 + payload.len(), IpProtocol::Udp),
        (Datagram::Echo { payload, .. }, IpAddr::V4(_)) => (8 + payload.len(), IpProtocol::Icmp),
        (Datagram::Echo { payload, .. }, IpAddr::V6(_)) => (8 + payload.len(), IpProtocol::Icmpv6),
    };
    let (ethertype, ip_len) = match ends.local {
        IpAddr::V4(_) => (EthernetProtocol::Ipv4, 20),
        IpAddr::V6(_) => (EthernetProtocol::Ipv6, 40),
    };
    let mut buf = vec![0u8; 14 + ip_len + l4_len];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    EthernetRepr {
        src_addr: EthernetAddress(ends.local_mac.0),
        dst_addr: EthernetAddress(ends.remote_mac.0),
        ethertype,
    }
    .emit(&mut eth);
    let l3 = eth.payload_mut();
    let l4 = match (ends.local, ends.remote) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let repr = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: protocol,
                payload_len: l4_len,
                hop_limit: HOP_LIMIT,
            };
            let mut ip = Ipv4Packet::new_unchecked(&mut l3[..]);
            repr.emit(&mut ip, &caps);
            &mut l3[20..]
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let repr = Ipv6Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: protocol,
                payload_len: l4_len,
                hop_limit: HOP_LIMIT,
            };
            let mut ip = Ipv6Packet::new_unchecked(&mut l3[..]);
            repr.emit(&mut ip);
            &mut l3[40..]
        }
        _ => return None,
    };
    match (*datagram, ends.local, ends.remote) {
        (
            Datagram::Udp {
                local_port,
                remote_port,
                payload,
            },
            local,
            remote,
        ) => {
            let repr = UdpRepr {
                src_port: local_port,
                dst_port: remote_port,
            };
            let mut udp = UdpPacket::new_unchecked(l4);
            repr.emit(
                &mut udp,
                &local.into(),
                &remote.into(),
                payload.len(),
                |buf| buf.copy_from_slice(payload),
                &caps,
            );
        }
        (
            Datagram::Echo {
                ident,
                seq,
                payload,
            },
            IpAddr::V4(_),
            _,
        ) => {
            let repr = Icmpv4Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: payload,
            };
            repr.emit(&mut Icmpv4Packet::new_unchecked(l4), &caps);
        }
        (
            Datagram::Echo {
                ident,
                seq,
                payload,
            },
            IpAddr::V6(src),
            IpAddr::V6(dst),
        ) => {
            let repr = Icmpv6Repr::EchoRequest {
                ident,
                seq_no: seq,
                data: payload,
            };
            repr.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(l4), &caps);
        }
        _ => return None,
    }
    Some(buf)
}

/// What came back for a datagram flow (the demultiplexer sorted it to
/// the flow: see [`crate::wire::demux`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A UDP datagram from `from` (the VIP, or another address: a service
    /// that answers from the real server's own address).
    Udp { from: SocketAddr, payload: &'a [u8] },
    /// An echo reply from `from`.
    Echo { from: IpAddr, ident: u16, seq: u16 },
    /// An ICMP or ICMPv6 error from `from` about a packet of ours.
    Error { from: IpAddr, error: IcmpError },
}

/// An ICMP or ICMPv6 error, as a verdict names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    PortUnreachable,
    HostUnreachable,
    NetUnreachable,
    ProtocolUnreachable,
    /// Administratively prohibited (a firewall's reject).
    Prohibited,
    /// Fragmentation needed (IPv4) or packet too big (IPv6).
    TooBig,
    TimeExceeded,
    /// Any other code of a destination unreachable: (IPv6?, code).
    Unreachable(bool, u8),
}

impl fmt::Display for IcmpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IcmpError::PortUnreachable => f.write_str("port unreachable"),
            IcmpError::HostUnreachable => f.write_str("host unreachable"),
            IcmpError::NetUnreachable => f.write_str("network unreachable"),
            IcmpError::ProtocolUnreachable => f.write_str("protocol unreachable"),
            IcmpError::Prohibited => f.write_str("administratively prohibited"),
            IcmpError::TooBig => f.write_str("packet too big"),
            IcmpError::TimeExceeded => f.write_str("time exceeded"),
            IcmpError::Unreachable(v6, code) => write!(
                f,
                "destination unreachable ({} code {code})",
                if *v6 { "ICMPv6" } else { "ICMP" }
            ),
        }
    }
}

/// Reads a frame sorted to a datagram flow; `None` for anything else
/// (malformed, a TCP segment, an IPv6 packet with extension headers).
pub fn parse(frame: &[u8]) -> Option<Reply<'_>> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let (ethertype, l3) = match eth.ethertype() {
        // One 802.1Q or 802.1ad tag, as the demultiplexer allows.
        EthernetProtocol::Unknown(0x8100 | 0x88a8) => {
            let tagged = eth.payload();
            let ethertype = u16::from_be_bytes([*tagged.get(2)?, *tagged.get(3)?]);
            (EthernetProtocol::from(ethertype), tagged.get(4..)?)
        }
        other => (other, eth.payload()),
    };
    let (from, protocol, l4) = match ethertype {
        EthernetProtocol::Ipv4 => {
            let ip = Ipv4Packet::new_checked(l3).ok()?;
            let l4 = l3.get(ip.header_len().into()..usize::from(ip.total_len()))?;
            (IpAddr::V4(ip.src_addr()), ip.next_header(), l4)
        }
        EthernetProtocol::Ipv6 => {
            let ip = Ipv6Packet::new_checked(l3).ok()?;
            let l4 = l3.get(40..40 + usize::from(ip.payload_len()))?;
            (IpAddr::V6(ip.src_addr()), ip.next_header(), l4)
        }
        _ => return None,
    };
    match protocol {
        IpProtocol::Udp => udp(from, l4),
        // ICMP belongs to IPv4 and ICMPv6 to IPv6 only: an IPv6 packet
        // saying ICMP is nobody's (the demultiplexer gives it no key).
        IpProtocol::Icmp if from.is_ipv4() => {
            let icmp = Icmpv4Packet::new_checked(l4).ok()?;
            let error = match icmp.msg_type() {
                Icmpv4Message::EchoReply => {
                    return Some(Reply::Echo {
                        from,
                        ident: icmp.echo_ident(),
                        seq: icmp.echo_seq_no(),
                    });
                }
                Icmpv4Message::DstUnreachable => match icmp.msg_code() {
                    0 => IcmpError::NetUnreachable,
                    1 => IcmpError::HostUnreachable,
                    2 => IcmpError::ProtocolUnreachable,
                    3 => IcmpError::PortUnreachable,
                    4 => IcmpError::TooBig,
                    9 | 10 | 13 => IcmpError::Prohibited,
                    code => IcmpError::Unreachable(false, code),
                },
                Icmpv4Message::TimeExceeded => IcmpError::TimeExceeded,
                _ => return None,
            };
            Some(Reply::Error { from, error })
        }
        IpProtocol::Icmpv6 if from.is_ipv6() => {
            let icmp = Icmpv6Packet::new_checked(l4).ok()?;
            let error = match icmp.msg_type() {
                Icmpv6Message::EchoReply => {
                    return Some(Reply::Echo {
                        from,
                        ident: icmp.echo_ident(),
                        seq: icmp.echo_seq_no(),
                    });
                }
                Icmpv6Message::DstUnreachable => match icmp.msg_code() {
                    0 => IcmpError::NetUnreachable,
                    1 | 5 | 6 => IcmpError::Prohibited,
                    3 => IcmpError::HostUnreachable,
                    4 => IcmpError::PortUnreachable,
                    code => IcmpError::Unreachable(true, code),
                },
                Icmpv6Message::PktTooBig => IcmpError::TooBig,
                Icmpv6Message::TimeExceeded => IcmpError::TimeExceeded,
                _ => return None,
            };
            Some(Reply::Error { from, error })
        }
        _ => None,
    }
}

fn udp(from: IpAddr, l4: &[u8]) -> Option<Reply<'_>> {
    let udp = UdpPacket::new_checked(l4).ok()?;
    let port = udp.src_port();
    // The datagram's own length, not the frame's (Ethernet pads short ones).
    let len = usize::from(udp.len()).checked_sub(8)?;
    Some(Reply::Udp {
        from: SocketAddr::new(from, port),
        payload: udp.payload().get(..len)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::demux::key_of;
    use checker_common::{FlowKey, PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const LB_MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const RS_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
    const LB: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
    const RS: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);

    fn ends(local: IpAddr, remote: IpAddr) -> Ends {
        Ends {
            local_mac: LB_MAC,
            remote_mac: RS_MAC,
            local,
            remote,
        }
    }

    /// The frame `ends` would receive back: the same datagram, turned round.
    fn back(ends: &Ends, datagram: &Datagram<'_>) -> Vec<u8> {
        let turned = Ends {
            local_mac: ends.remote_mac,
            remote_mac: ends.local_mac,
            local: ends.remote,
            remote: ends.local,
        };
        frame(&turned, datagram).unwrap()
    }

    /// The ICMP error a host at `from` sends for the frame `ours` (the
    /// quote: the IP header and the first 8 bytes of what it carried, as
    /// RFC 792 asks; Linux quotes more).
    fn error_for(ours: &[u8], from: IpAddr, kind: u8, code: u8) -> Vec<u8> {
        let quoted_len = match from {
            IpAddr::V4(_) => 20 + 8,
            IpAddr::V6(_) => 40 + 8,
        };
        let quote = &ours[14..14 + quoted_len];
        let (src, dst) = match from {
            IpAddr::V4(_) => (
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&ours[30..34]).unwrap())),
                IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&ours[26..30]).unwrap())),
            ),
            IpAddr::V6(_) => (
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&ours[38..54]).unwrap())),
                IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&ours[22..38]).unwrap())),
            ),
        };
        let _ = src;
        // An echo request as a stand-in, then its type and code rewritten:
        // the checksum is not checked on the way in.
        let mut f = frame(
            &ends(from, dst),
            &Datagram::Echo {
                ident: 0,
                seq: 0,
                payload: quote,
            },
        )
        .unwrap();
        let l4 = if from.is_ipv4() { 34 } else { 54 };
        f[l4] = kind;
        f[l4 + 1] = code;
        f[l4 + 4..l4 + 8].fill(0);
        f
    }

    #[test]
    fn udp_datagram_there_and_back() {
        let e = ends(LB.into(), VIP.into());
        let ours = Datagram::Udp {
            local_port: 40000,
            remote_port: 53,
            payload: b"query",
        };
        let f = frame(&e, &ours).unwrap();
        let key = FlowKey::ipv4(VIP.octets(), 53, LB.octets(), 40000).with_proto(PROTO_UDP);
        let reply = back(
            &e,
            &Datagram::Udp {
                local_port: 53,
                remote_port: 40000,
                payload: b"answer",
            },
        );
        assert_eq!(key_of(&reply), Some(key));
        assert_eq!(
            parse(&reply),
            Some(Reply::Udp {
                from: SocketAddr::new(VIP.into(), 53),
                payload: b"answer"
            })
        );
        // Port unreachable from the VIP: the real server carries it.
        let unreachable = error_for(&f, VIP.into(), 3, 3);
        assert_eq!(key_of(&unreachable), Some(key));
        assert_eq!(
            parse(&unreachable),
            Some(Reply::Error {
                from: VIP.into(),
                error: IcmpError::PortUnreachable
            })
        );
        // From the real server's own address: a service bound to 0.0.0.0.
        let mut wrong = reply.clone();
        wrong[26..30].copy_from_slice(&RS.octets());
        assert_eq!(
            key_of(&wrong),
            Some(FlowKey::ipv4(RS.octets(), 53, LB.octets(), 40000).with_proto(PROTO_UDP))
        );
    }

    #[test]
    fn echo_there_and_back_and_errors_v4_v6() {
        let v6 = |s: &str| IpAddr::V6(s.parse().unwrap());
        for (local, vip, proto) in [
            (IpAddr::V4(LB), IpAddr::V4(VIP), PROTO_ICMP),
            (
                v6("fd98:c612:0:1::1"),
                v6("fd98:c612:0:1::100"),
                PROTO_ICMPV6,
            ),
        ] {
            let e = ends(local, vip);
            let f = frame(
                &e,
                &Datagram::Echo {
                    ident: 0x1234,
                    seq: 1,
                    payload: b"vipcheck",
                },
            )
            .unwrap();
            let key = match (vip, local) {
                (IpAddr::V4(r), IpAddr::V4(l)) => FlowKey::ipv4(r.octets(), 0, l.octets(), 0x1234),
                (IpAddr::V6(r), IpAddr::V6(l)) => FlowKey::ipv6(r.octets(), 0, l.octets(), 0x1234),
                _ => unreachable!(),
            }
            .with_proto(proto);
            // The reply: the request turned round, type rewritten.
            let mut reply = back(
                &e,
                &Datagram::Echo {
                    ident: 0x1234,
                    seq: 1,
                    payload: b"vipcheck",
                },
            );
            let l4 = if local.is_ipv4() { 34 } else { 54 };
            reply[l4] = if local.is_ipv4() { 0 } else { 129 };
            assert_eq!(key_of(&reply), Some(key), "{local}");
            assert_eq!(
                parse(&reply),
                Some(Reply::Echo {
                    from: vip,
                    ident: 0x1234,
                    seq: 1
                })
            );
            // Our request itself is nobody's (it goes the other way).
            assert_eq!(key_of(&f).map(|k| k.proto), None);
            let (kind, code) = if local.is_ipv4() { (3, 1) } else { (1, 3) };
            let err = error_for(&f, vip, kind, code);
            assert_eq!(key_of(&err), Some(key), "{local}");
            assert_eq!(
                parse(&err),
                Some(Reply::Error {
                    from: vip,
                    error: IcmpError::HostUnreachable
                })
            );
        }
    }

    #[test]
    fn icmp_only_over_its_own_ip_version() {
        // An IPv6 packet whose next header says ICMP (IPv4's): nobody's,
        // as the demultiplexer judges it (a fuzzer's find).
        let frame = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/corpus/frames/ipv6_saying_icmp"
        ))
        .unwrap();
        assert_eq!(key_of(&frame), None);
        assert_eq!(parse(&frame), None);
    }

    #[test]
    fn truncated_and_garbage_frames_are_nothing() {
        let e = ends(LB.into(), VIP.into());
        let reply = back(
            &e,
            &Datagram::Udp {
                local_port: 53,
                remote_port: 40000,
                payload: b"answer",
            },
        );
        for len in 0..reply.len() - 6 {
            assert_eq!(parse(&reply[..len]), None, "{len}");
        }
        // A UDP length beyond the frame.
        let mut long = reply.clone();
        long[38..40].copy_from_slice(&100u16.to_be_bytes());
        assert_eq!(parse(&long), None);
        // Ethernet padding is not payload.
        let mut padded = reply.clone();
        padded.extend_from_slice(&[0; 10]);
        let Some(Reply::Udp { payload, .. }) = parse(&padded) else {
            panic!("not parsed");
        };
        assert_eq!(payload, b"answer");
    }
}
