//! IPv6 neighbour discovery frames (RFC 4861): our own neighbour
//! solicitation for the real server's own address (never the VIP), its
//! advertisement, and the key under which the XDP program copies it to us
//! (the asking is [`engine::resolve`](crate::engine::resolve)).
//!
//! Frames are built and parsed with smoltcp's wire types; the ICMPv6
//! checksum is computed on transmit and verified on receive (the kernel
//! computes ICMPv6 checksums in software, never offloaded, so a captured
//! advertisement always carries a full one).

use std::net::Ipv6Addr;

use checker_common::FlowKey;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv6Packet, Icmpv6Repr,
    IpProtocol, Ipv6Packet, Ipv6Repr, NdiscNeighborFlags, NdiscRepr, RawHardwareAddress,
};

use crate::sys::netdev::Mac;

/// Hop limit of every NDP message: a receiver drops any other (RFC 4861
/// §7.1), which proves the message was not routed.
const HOP_LIMIT: u8 = 255;

/// The key under which the XDP program copies `target`'s advertisements
/// to `source` (the source of our solicitation) into our ring.
pub fn key(source: Ipv6Addr, target: Ipv6Addr) -> FlowKey {
    FlowKey::ndp(target.octets(), source.octets())
}

/// The solicited-node multicast group of `addr`: ff02::1:ffXX:XXXX with
/// its last 24 bits. Every node joins that group for each of its addresses.
pub(crate) fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet address of the IPv6 multicast group `group`: 33:33 and
/// its last 32 bits (RFC 2464 §7).
pub(crate) fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// A neighbour solicitation "who has `target`, tell `source` at `mac`":
/// from `mac` to the solicited-node group of `target` (and its multicast
/// MAC), hop limit 255, with the source link-layer address option.
pub fn solicitation_frame(mac: Mac, source: Ipv6Addr, target: Ipv6Addr) -> Vec<u8> {
    let group = solicited_node(target);
    ndp_frame(
        mac,
        multicast_mac(group),
        source,
        group,
        NdiscRepr::NeighborSolicit {
            target_addr: target,
            lladdr: Some(RawHardwareAddress::from_bytes(&mac.0)),
        },
    )
}

/// A solicited neighbour advertisement "`target` is at `mac`" from
/// `target` (at `mac`) to `dest` at `dest_mac`, with the target link-layer
/// address option: what a real server answers to our solicitation.
pub fn advertisement_frame(mac: Mac, target: Ipv6Addr, dest_mac: Mac, dest: Ipv6Addr) -> Vec<u8> {
    advertisement_with(mac, target, dest_mac, dest, Some(mac))
}

/// An advertisement whose target link-layer option (if any) says `lladdr`.
fn advertisement_with(
    mac: Mac,
    target: Ipv6Addr,
    dest_mac: Mac,
    dest: Ipv6Addr,
    lladdr: Option<Mac>,
) -> Vec<u8> {
    ndp_frame(
        mac,
        dest_mac,
        target,
        dest,
        NdiscRepr::NeighborAdvert {
            flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
            target_addr: target,
            lladdr: lladdr.map(|m| RawHardwareAddress::from_bytes(&m.0)),
        },
    )
}

/// Ethernet + IPv6 (hop limit 255) + ICMPv6 `ndisc` with its checksum.
fn ndp_frame(
    src_mac: Mac,
    dst_mac: Mac,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    ndisc: NdiscRepr,
) -> Vec<u8> {
    let icmp = Icmpv6Repr::Ndisc(ndisc);
    let ip = Ipv6Repr {
        src_addr: src,
        dst_addr: dst,
        next_header: IpProtocol::Icmpv6,
        payload_len: icmp.buffer_len(),
        hop_limit: HOP_LIMIT,
    };
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src_mac.0),
        dst_addr: EthernetAddress(dst_mac.0),
        ethertype: EthernetProtocol::Ipv6,
    };
    let mut frame = vec![0u8; eth.buffer_len() + ip.buffer_len() + icmp.buffer_len()];
    let mut eth_frame = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut eth_frame);
    let mut ip_packet = Ipv6Packet::new_unchecked(eth_frame.payload_mut());
    ip.emit(&mut ip_packet);
    icmp.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(ip_packet.payload_mut()),
        &ChecksumCapabilities::default(),
    );
    frame
}

/// The MAC `target` advertises if `frame` is a valid neighbour
/// advertisement for it (RFC 4861 §7.1.2: hop limit 255, code 0, a correct
/// checksum, not solicited when sent to a multicast group): the address of
/// its target link-layer option, or else the frame's Ethernet source. Only
/// a unicast MAC. Never panics, whatever the bytes.
pub fn advertisement_from(frame: &[u8], target: Ipv6Addr) -> Option<Mac> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv6 {
        return None;
    }
    let ip_packet = Ipv6Packet::new_checked(eth.payload()).ok()?;
    let ip = Ipv6Repr::parse(&ip_packet).ok()?;
    if ip.next_header != IpProtocol::Icmpv6 || ip.hop_limit != HOP_LIMIT {
        return None;
    }
    let icmp_packet = Icmpv6Packet::new_checked(ip_packet.payload()).ok()?;
    let icmp = Icmpv6Repr::parse(
        &ip.src_addr,
        &ip.dst_addr,
        &icmp_packet,
        &ChecksumCapabilities::default(),
    )
    .ok()?;
    let Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
        flags,
        target_addr,
        lladdr,
    }) = icmp
    else {
        return None;
    };
    if target_addr != target
        || (ip.dst_addr.is_multicast() && flags.contains(NdiscNeighborFlags::SOLICITED))
    {
        return None;
    }
    let mac = match lladdr {
        Some(lladdr) => EthernetAddress::from_bytes(lladdr.as_bytes().get(..6)?),
        None => eth.src_addr(),
    };
    mac.is_unicast().then_some(Mac(mac.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LB_MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const RS_MAC: Mac = Mac([2, 0, 0, 0, 0, 2]);
    const LB: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0, 1);
    const RS: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x18, 0, 0, 0, 0, 0xab, 0xcdef);

    /// The IPv6 and ICMPv6 layers of `frame`, checked by smoltcp.
    fn parse(frame: &[u8]) -> (EthernetRepr, Ipv6Repr, NdiscRepr<'_>) {
        let eth = EthernetFrame::new_checked(frame).expect("ethernet");
        let eth_repr = EthernetRepr::parse(&eth).expect("ethernet repr");
        let frame_payload: &[u8] = &frame[14..];
        let ip_packet = Ipv6Packet::new_checked(frame_payload).expect("ipv6");
        let ip = Ipv6Repr::parse(&ip_packet).expect("ipv6 repr");
        let icmp_packet = Icmpv6Packet::new_checked(ip_packet.payload()).expect("icmpv6");
        assert!(
            icmp_packet.verify_checksum(&ip.src_addr, &ip.dst_addr),
            "checksum"
        );
        let repr = Icmpv6Repr::parse(
            &ip.src_addr,
            &ip.dst_addr,
            &icmp_packet,
            &ChecksumCapabilities::default(),
        )
        .expect("icmpv6 repr (checksum verified)");
        let Icmpv6Repr::Ndisc(ndisc) = repr else {
            panic!("not NDP: {repr:?}");
        };
        (eth_repr, ip, ndisc)
    }

    #[test]
    fn solicitation_goes_to_the_solicited_node_group() {
        let frame = solicitation_frame(LB_MAC, LB, RS);
        assert_eq!(frame.len(), 14 + 40 + 24 + 8);
        let (eth, ip, ndisc) = parse(&frame);
        assert_eq!(eth.src_addr, EthernetAddress(LB_MAC.0));
        assert_eq!(
            eth.dst_addr,
            EthernetAddress([0x33, 0x33, 0xff, 0xab, 0xcd, 0xef])
        );
        assert_eq!(eth.ethertype, EthernetProtocol::Ipv6);
        assert_eq!(ip.src_addr, LB);
        assert_eq!(
            ip.dst_addr,
            "ff02::1:ffab:cdef".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(ip.hop_limit, 255);
        assert_eq!(ip.next_header, IpProtocol::Icmpv6);
        assert_eq!(ip.payload_len, 32);
        assert_eq!(
            ndisc,
            NdiscRepr::NeighborSolicit {
                target_addr: RS,
                lladdr: Some(RawHardwareAddress::from_bytes(&LB_MAC.0)),
            }
        );
        // RFC 4291 §2.7.1's own example of the group and RFC 2464's MAC.
        let rfc: Ipv6Addr = "4037::01:800:200e:8c6c".parse().unwrap();
        assert_eq!(
            solicited_node(rfc),
            "ff02::1:ff0e:8c6c".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            multicast_mac(solicited_node(rfc)),
            Mac([0x33, 0x33, 0xff, 0x0e, 0x8c, 0x6c])
        );
        // A solicitation is not an advertisement.
        assert_eq!(advertisement_from(&frame, RS), None);
        assert_eq!(advertisement_from(&frame, LB), None);
    }

    #[test]
    fn advertisement_round_trip() {
        let frame = advertisement_frame(RS_MAC, RS, LB_MAC, LB);
        let (eth, ip, ndisc) = parse(&frame);
        assert_eq!(
            (eth.src_addr, eth.dst_addr),
            (EthernetAddress(RS_MAC.0), EthernetAddress(LB_MAC.0))
        );
        assert_eq!((ip.src_addr, ip.dst_addr, ip.hop_limit), (RS, LB, 255));
        assert!(matches!(
            ndisc,
            NdiscRepr::NeighborAdvert { target_addr: RS, lladdr: Some(l), flags }
                if l.as_bytes() == RS_MAC.0 && flags.contains(NdiscNeighborFlags::SOLICITED)
        ));
        assert_eq!(advertisement_from(&frame, RS), Some(RS_MAC));
        // For another target, nothing.
        assert_eq!(advertisement_from(&frame, LB), None);
        // The key the XDP program builds from it: target → destination.
        assert_eq!(
            key(LB, RS),
            FlowKey::ndp(ip_target(&frame), ip.dst_addr.octets())
        );
    }

    /// The target address field of an advertisement frame.
    fn ip_target(frame: &[u8]) -> [u8; 16] {
        frame[14 + 40 + 8..14 + 40 + 24].try_into().unwrap()
    }

    #[test]
    fn the_option_wins_over_the_ethernet_source() {
        // A proxy (or a bond) may send from another MAC: the option says
        // where the target is.
        let other = Mac([2, 0, 0, 0, 0, 9]);
        let frame = advertisement_with(other, RS, LB_MAC, LB, Some(RS_MAC));
        assert_eq!(advertisement_from(&frame, RS), Some(RS_MAC));
        // Without the option, the Ethernet source.
        let frame = advertisement_with(RS_MAC, RS, LB_MAC, LB, None);
        assert_eq!(frame.len(), 14 + 40 + 24);
        assert_eq!(advertisement_from(&frame, RS), Some(RS_MAC));
        // A multicast MAC is never a neighbour's.
        let frame = advertisement_with(RS_MAC, RS, LB_MAC, LB, Some(Mac([0x33, 0x33, 0, 0, 0, 1])));
        assert_eq!(advertisement_from(&frame, RS), None);
    }

    #[test]
    fn invalid_advertisements_are_refused() {
        let good = advertisement_frame(RS_MAC, RS, LB_MAC, LB);
        let icmp = 14 + 40;
        // A wrong checksum.
        let mut bad = good.clone();
        bad[icmp + 2] ^= 1;
        assert_eq!(advertisement_from(&bad, RS), None);
        // A routed one (hop limit below 255).
        let mut bad = good.clone();
        bad[14 + 7] = 254;
        assert_eq!(advertisement_from(&bad, RS), None);
        // A code other than 0 (checksum fixed up: only the code is wrong).
        let mut bad = good.clone();
        bad[icmp + 1] = 1;
        fix_checksum(&mut bad);
        assert_eq!(advertisement_from(&bad, RS), None);
        // Solicited, to a multicast group.
        let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
        let bad = advertisement_frame(RS_MAC, RS, Mac([0x33, 0x33, 0, 0, 0, 1]), all_nodes);
        assert_eq!(advertisement_from(&bad, RS), None);
        // Not IPv6, or not ICMPv6.
        let mut bad = good.clone();
        bad[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(advertisement_from(&bad, RS), None);
        let mut bad = good.clone();
        bad[14 + 6] = 17;
        assert_eq!(advertisement_from(&bad, RS), None);
        // Truncated anywhere.
        for len in 0..good.len() {
            assert_eq!(advertisement_from(&good[..len], RS), None, "{len}");
        }
        // Trailing Ethernet padding is fine (the IPv6 length bounds it).
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 10]);
        assert_eq!(advertisement_from(&padded, RS), Some(RS_MAC));
    }

    fn fix_checksum(frame: &mut [u8]) {
        let src = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[22..38]).unwrap());
        let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&frame[38..54]).unwrap());
        let mut icmp = Icmpv6Packet::new_unchecked(&mut frame[54..]);
        icmp.fill_checksum(&src, &dst);
    }

    #[test]
    fn garbage_never_panics() {
        // Every single-byte change of a valid advertisement and of a
        // solicitation, every length of each, and pseudo-random frames.
        let frames = [
            advertisement_frame(RS_MAC, RS, LB_MAC, LB),
            advertisement_with(RS_MAC, RS, LB_MAC, LB, None),
            solicitation_frame(LB_MAC, LB, RS),
        ];
        for frame in &frames {
            for i in 0..frame.len() {
                for value in [0u8, 1, 2, 7, 0x3a, 0x80, 0x88, 0xff] {
                    let mut f = frame.clone();
                    f[i] = value;
                    let _ = advertisement_from(&f, RS);
                    fix_checksum_if_whole(&mut f);
                    let _ = advertisement_from(&f, RS);
                }
            }
        }
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 128) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            // Often a plausible prefix, so that the deeper parsers run.
            if len >= 58 && next() % 2 == 0 {
                f[..14 + 8].copy_from_slice(&frames[0][..14 + 8]);
                f[14 + 4..14 + 6].copy_from_slice(&((len - 54) as u16).to_be_bytes());
                f[54] = 136;
                f[55] = 0;
                fix_checksum_if_whole(&mut f);
            }
            let _ = advertisement_from(&f, RS);
        }
    }

    fn fix_checksum_if_whole(frame: &mut [u8]) {
        if frame.len() >= 14 + 40 + 4 {
            fix_checksum(frame);
        }
    }
}
