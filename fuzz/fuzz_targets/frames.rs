//! Every parser of received (and sent) frames on the same bytes: the flow
//! demultiplexer, the TCP segment reader, the ARP reply and neighbour
//! advertisement readers, the egress rule, and the XDP ring record decoder.
//! None may panic; what the resolvers accept the demultiplexer must hand
//! them (a reply the demultiplexer files under another key never reaches
//! the resolver that waits for it).
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use checker_common::FlowKey;
use libfuzzer_sys::fuzz_target;
use vipcheck::sys::netdev::{Ipv4Cidr, Ipv6Cidr, Mac, NetDev};
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

fn at<const N: usize>(data: &[u8], offset: usize) -> Option<[u8; N]> {
    data.get(offset..offset + N)?.try_into().ok()
}

fuzz_target!(|data: &[u8]| {
    let key = key_of(data);
    let _ = Segment::parse(data);
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
        let _ = key_of(frame);
        let _ = Segment::parse(frame);
    }
});
