//! Every parser of received (and sent) frames on the same bytes: the flow
//! demultiplexer, the TCP segment reader, the ARP reply and neighbour
//! advertisement readers, the datagram reply reader (UDP, echo replies,
//! ICMP and ICMPv6 errors), the egress rule, and the XDP ring record
//! decoder. None may panic; what the resolvers accept the demultiplexer
//! must hand them (a reply the demultiplexer files under another key never
//! reaches the resolver that waits for it), and what the datagram reader
//! makes of a frame agrees with the key the demultiplexer files it under.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use checker_common::{
    FAMILY_IPV4, FAMILY_IPV6, FlowKey, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP,
};
use libfuzzer_sys::fuzz_target;
use vipcheck::sys::netdev::{Ipv4Cidr, Ipv6Cidr, Mac, NetDev};
use vipcheck::wire::datagram::{self, Reply};
use vipcheck::wire::demux::key_of;
use vipcheck::wire::egress::Egress;
use vipcheck::wire::segment::Segment;

/// The interface of the seeds: MAC 02:00:00:00:00:01, 198.18.0.1/24 and
/// fd98:c612:0:1::1/64, the VIP 198.18.0.100 on it too (a master LB).
fn egress() -> Egress {
    let vip = Ipv4Addr::new(198, 18, 0, 100);
    let dev = NetDev {
        name: "eth0".into(),
        ifindex: 2,
        mac: Mac([2, 0, 0, 0, 0, 1]),
        mtu: 1500,
        ipv4: vec![
            Ipv4Cidr {
                addr: Ipv4Addr::new(198, 18, 0, 1),
                prefix_len: 24,
            },
            Ipv4Cidr {
                addr: vip,
                prefix_len: 32,
            },
        ],
        ipv6: vec![Ipv6Cidr {
            addr: "fd98:c612:0:1::1".parse().unwrap(),
            prefix_len: 64,
            ready: true,
        }],
        ethernet: true,
        up: true,
        xdp_seen: None,
    };
    Egress::new(&dev, IpAddr::V4(vip))
}

/// The key's remote address as the datagram reader names a sender.
fn remote(key: &FlowKey) -> Option<IpAddr> {
    match key.family {
        FAMILY_IPV4 => Some(IpAddr::from(<[u8; 4]>::try_from(&key.remote_addr[..4]).ok()?)),
        FAMILY_IPV6 => Some(IpAddr::from(key.remote_addr)),
        _ => None,
    }
}

/// The IP header (behind at most one VLAN tag) is of its ethertype's
/// version, and not a later IPv4 fragment: what the demultiplexer
/// requires, and the datagram reader (which only ever reads what the
/// demultiplexer filed) does not check again.
fn plain(data: &[u8]) -> bool {
    let (ethertype, l3) = match at::<2>(data, 12).map(u16::from_be_bytes) {
        Some(0x8100 | 0x88a8) => (at::<2>(data, 16).map(u16::from_be_bytes), 18),
        other => (other, 14),
    };
    match (ethertype, data.get(l3)) {
        (Some(0x0800), Some(v)) => {
            v >> 4 == 4 && at::<2>(data, l3 + 6).is_some_and(|f| u16::from_be_bytes(f) & 0x1fff == 0)
        }
        (Some(0x86dd), Some(v)) => v >> 4 == 6,
        _ => false,
    }
}

/// What the datagram reader reads agrees with the key the demultiplexer
/// files the frame under: a datagram under the UDP key of its sender and
/// port, an echo reply under the echo key of its identifier, an error
/// under a key of the protocol of the packet it quotes. A datagram or an
/// echo reply of a plain frame always has a key.
fn datagram_agrees(data: &[u8], key: Option<FlowKey>) {
    let Some(reply) = datagram::parse(data) else {
        return;
    };
    if let Reply::Error { error, .. } = &reply {
        assert!(!error.to_string().is_empty());
    }
    let Some(key) = key else {
        assert!(
            matches!(reply, Reply::Error { .. }) || !plain(data),
            "{reply:?} of a plain frame without a key"
        );
        return;
    };
    match reply {
        Reply::Udp { from, payload } => {
            assert_eq!(key.proto, PROTO_UDP, "{reply:?} {key:?}");
            assert_eq!(remote(&key), Some(from.ip()));
            assert_eq!(key.remote_port, from.port().to_be_bytes());
            assert!(payload.len() < data.len());
        }
        Reply::Echo { from, ident, .. } => {
            assert!(key.proto == PROTO_ICMP || key.proto == PROTO_ICMPV6, "{key:?}");
            assert_eq!(remote(&key), Some(from));
            assert_eq!(key.local_port, ident.to_be_bytes());
            assert_eq!(key.remote_port, [0, 0]);
        }
        Reply::Error { .. } => {
            assert!(
                [PROTO_TCP, PROTO_UDP, PROTO_ICMP, PROTO_ICMPV6].contains(&key.proto),
                "{key:?}"
            );
            assert!(key.family == FAMILY_IPV4 || key.family == FAMILY_IPV6);
        }
    }
}

fn at<const N: usize>(data: &[u8], offset: usize) -> Option<[u8; N]> {
    data.get(offset..offset + N)?.try_into().ok()
}

fuzz_target!(|data: &[u8]| {
    let key = key_of(data);
    let _ = Segment::parse(data);
    datagram_agrees(data, key);
    if let Err(why) = egress().check(data) {
        assert!(!why.is_empty());
    }

    // The ARP reply reader, asked for the sender the frame names: if it
    // takes the reply, the demultiplexer files it under the ARP key of
    // (sender, target).
    if let (Some(spa), Some(tpa)) = (at::<4>(data, 28), at::<4>(data, 38)) {
        if vipcheck::wire::arp::reply_from(data, Ipv4Addr::from(spa)).is_some() {
            assert_eq!(
                key,
                Some(FlowKey::arp(spa, tpa)),
                "ARP reply filed elsewhere"
            );
        }
    }
    // The advertisement reader, asked for the target the frame names (an
    // advertisement without extension headers: target at 14 + 40 + 8).
    if let (Some(dst), Some(target)) = (at::<16>(data, 38), at::<16>(data, 62)) {
        if vipcheck::wire::ndp::advertisement_from(data, Ipv6Addr::from(target)).is_some() {
            assert_eq!(
                key,
                Some(FlowKey::ndp(target, dst)),
                "advertisement filed elsewhere"
            );
        }
    }

    // The same bytes as a ring record: header, then the frame.
    if let Some(frame) = vipcheck::xdp::record_frame(data) {
        let len = u32::from_ne_bytes(data[..4].try_into().unwrap()) as usize;
        assert_eq!(frame.len(), len);
        datagram_agrees(frame, key_of(frame));
        let _ = Segment::parse(frame);
    }
});
