//! Which flow a captured frame belongs to: the [`FlowKey`] the XDP program
//! matched it under, computed again from the frame's bytes.
//!
//! The program hands over only frames of registered keys, but one capture
//! slot carries the frames of every flow of this process (and `--xdp off`
//! captures every frame of the interface), so userspace sorts them again.
//! The parsing mirrors the program's (`checker-ebpf`): Ethernet with at
//! most one 802.1Q tag; IPv4 TCP, UDP, echo replies and ICMP errors; the
//! same over IPv6 behind at most [`MAX_EXT_HEADERS`] extension headers;
//! ARP replies; neighbour advertisements. Remote = the frame's source,
//! local = its destination; an ICMP error has the key of the packet it
//! quotes (remote = the quoted destination).

use checker_common::{FlowKey, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP, PROTO_UDP};

const ETH_HLEN: usize = 14;
const ETH_P_IPV4: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_DSTOPTS: u8 = 60;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ARP_REPLY: u16 = 2;
pub(crate) const ICMP_ECHO_REPLY: u8 = 0;
pub(crate) const ICMP_DEST_UNREACH: u8 = 3;
pub(crate) const ICMP_ECHO_REQUEST: u8 = 8;
pub(crate) const ICMP_TIME_EXCEEDED: u8 = 11;
pub(crate) const ICMPV6_DEST_UNREACH: u8 = 1;
pub(crate) const ICMPV6_PACKET_TOO_BIG: u8 = 2;
pub(crate) const ICMPV6_TIME_EXCEEDED: u8 = 3;
pub(crate) const ICMPV6_ECHO_REQUEST: u8 = 128;
pub(crate) const ICMPV6_ECHO_REPLY: u8 = 129;
/// The ICMP header before what an error quotes.
const ICMP_HLEN: usize = 8;
/// As many as the XDP program skips.
pub(crate) const MAX_EXT_HEADERS: usize = 4;

/// The key of the flow `frame` belongs to, if it is a frame a flow can own.
pub fn key_of(frame: &[u8]) -> Option<FlowKey> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = u16::from_be_bytes(take::<2>(frame, 12)?);
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = u16::from_be_bytes(take::<2>(frame, 16)?);
        l3 += 4;
    }
    match ethertype {
        ETH_P_IPV4 => ipv4(frame, l3),
        ETH_P_IPV6 => ipv6(frame, l3),
        ETH_P_ARP => arp(frame, l3),
        _ => None,
    }
}

fn ipv4(frame: &[u8], l3: usize) -> Option<FlowKey> {
    let ip = take::<20>(frame, l3)?;
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    // A fragment other than the first carries no L4 header.
    let fragment_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    if ip[0] >> 4 != 4 || ihl < 20 || fragment_offset != 0 {
        return None;
    }
    let l4 = l3 + ihl;
    let (remote_port, local_port) = match ip[9] {
        PROTO_TCP | PROTO_UDP => {
            let ports = take::<4>(frame, l4)?;
            (
                u16::from_be_bytes([ports[0], ports[1]]),
                u16::from_be_bytes([ports[2], ports[3]]),
            )
        }
        PROTO_ICMP => {
            let icmp = take::<ICMP_HLEN>(frame, l4)?;
            match icmp[0] {
                ICMP_ECHO_REPLY => (0, u16::from_be_bytes([icmp[4], icmp[5]])),
                ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED => {
                    return quoted_ipv4(frame, l4 + ICMP_HLEN);
                }
                _ => return None,
            }
        }
        _ => return None,
    };
    Some(FlowKey::ipv4(addr4(&ip, 12), remote_port, addr4(&ip, 16), local_port).with_proto(ip[9]))
}

/// The key of the flow whose packet an ICMP error quotes at `l3`.
fn quoted_ipv4(frame: &[u8], l3: usize) -> Option<FlowKey> {
    let ip = take::<20>(frame, l3)?;
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return None;
    }
    let l4 = take::<ICMP_HLEN>(frame, l3 + ihl)?;
    let (local_port, remote_port) = match ip[9] {
        PROTO_TCP | PROTO_UDP => (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        ),
        PROTO_ICMP if l4[0] == ICMP_ECHO_REQUEST => (u16::from_be_bytes([l4[4], l4[5]]), 0),
        _ => return None,
    };
    Some(FlowKey::ipv4(addr4(&ip, 16), remote_port, addr4(&ip, 12), local_port).with_proto(ip[9]))
}

fn addr4(ip: &[u8; 20], at: usize) -> [u8; 4] {
    [ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]
}

fn ipv6(frame: &[u8], l3: usize) -> Option<FlowKey> {
    let fixed = take::<40>(frame, l3)?;
    if fixed[0] >> 4 != 6 {
        return None;
    }
    let mut next = fixed[6];
    let mut offset = l3 + 40;
    for _ in 0..MAX_EXT_HEADERS {
        if next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS {
            break;
        }
        let ext = take::<2>(frame, offset)?;
        next = ext[0];
        offset += (usize::from(ext[1]) + 1) * 8;
    }
    let src: [u8; 16] = fixed[8..24].try_into().ok()?;
    let dst: [u8; 16] = fixed[24..40].try_into().ok()?;
    match next {
        PROTO_TCP | PROTO_UDP => {
            let ports = take::<4>(frame, offset)?;
            Some(
                FlowKey::ipv6(
                    src,
                    u16::from_be_bytes([ports[0], ports[1]]),
                    dst,
                    u16::from_be_bytes([ports[2], ports[3]]),
                )
                .with_proto(next),
            )
        }
        PROTO_ICMPV6 => {
            let icmp = take::<ICMP_HLEN>(frame, offset)?;
            match icmp[0] {
                ICMPV6_ECHO_REPLY => Some(
                    FlowKey::ipv6(src, 0, dst, u16::from_be_bytes([icmp[4], icmp[5]]))
                        .with_proto(PROTO_ICMPV6),
                ),
                ICMPV6_DEST_UNREACH | ICMPV6_PACKET_TOO_BIG | ICMPV6_TIME_EXCEEDED => {
                    quoted_ipv6(frame, offset + ICMP_HLEN)
                }
                ND_NEIGHBOR_ADVERT if icmp[1] == 0 => {
                    Some(FlowKey::ndp(take::<16>(frame, offset + 8)?, dst))
                }
                _ => None,
            }
        }
        _ => None,
    }
}

/// The key of the flow whose packet an ICMPv6 error quotes at `l3`.
fn quoted_ipv6(frame: &[u8], l3: usize) -> Option<FlowKey> {
    let fixed = take::<40>(frame, l3)?;
    if fixed[0] >> 4 != 6 {
        return None;
    }
    let l4 = take::<ICMP_HLEN>(frame, l3 + 40)?;
    let (local_port, remote_port) = match fixed[6] {
        PROTO_TCP | PROTO_UDP => (
            u16::from_be_bytes([l4[0], l4[1]]),
            u16::from_be_bytes([l4[2], l4[3]]),
        ),
        PROTO_ICMPV6 if l4[0] == ICMPV6_ECHO_REQUEST => (u16::from_be_bytes([l4[4], l4[5]]), 0),
        _ => return None,
    };
    let src: [u8; 16] = fixed[8..24].try_into().ok()?;
    let dst: [u8; 16] = fixed[24..40].try_into().ok()?;
    Some(FlowKey::ipv6(dst, remote_port, src, local_port).with_proto(fixed[6]))
}

fn arp(frame: &[u8], l3: usize) -> Option<FlowKey> {
    let arp = take::<28>(frame, l3)?;
    if arp[..6] != [0, 1, 0x08, 0x00, 6, 4] || u16::from_be_bytes([arp[6], arp[7]]) != ARP_REPLY {
        return None;
    }
    Some(FlowKey::arp(
        arp[14..18].try_into().ok()?,
        arp[24..28].try_into().ok()?,
    ))
}

/// `N` bytes at `offset`, if the frame is that long.
fn take<const N: usize>(frame: &[u8], offset: usize) -> Option<[u8; N]> {
    frame.get(offset..offset.checked_add(N)?)?.try_into().ok()
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;
    use crate::sys::netdev::Mac;

    const RS_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
    const LB_MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);

    /// A TCP/IPv4 frame from `vip:port` to `local:lport`.
    fn tcp4(vip: [u8; 4], port: u16, local: [u8; 4], lport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[12..14].copy_from_slice(&ETH_P_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[23] = PROTO_TCP;
        f[26..30].copy_from_slice(&vip);
        f[30..34].copy_from_slice(&local);
        f[34..36].copy_from_slice(&port.to_be_bytes());
        f[36..38].copy_from_slice(&lport.to_be_bytes());
        f
    }

    #[test]
    fn ipv4_tcp_plain_and_tagged() {
        let f = tcp4([198, 18, 0, 100], 80, [198, 18, 0, 1], 40000);
        let want = FlowKey::ipv4([198, 18, 0, 100], 80, [198, 18, 0, 1], 40000);
        assert_eq!(key_of(&f), Some(want));
        let mut tagged = f[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        tagged.extend_from_slice(&f[12..]);
        assert_eq!(key_of(&tagged), Some(want));
    }

    #[test]
    fn ipv4_options_fragments_and_truncation() {
        let mut f = tcp4([198, 18, 0, 100], 80, [198, 18, 0, 1], 40000);
        // A later fragment: no TCP header in it.
        f[20] = 0x00;
        f[21] = 0x10;
        assert_eq!(key_of(&f), None);
        let f = tcp4([198, 18, 0, 100], 80, [198, 18, 0, 1], 40000);
        for len in 0..f.len() - 16 {
            assert_eq!(key_of(&f[..len]), None, "truncated at {len}");
        }
        // With 4 bytes of options the ports move on.
        let mut opt = f[..34].to_vec();
        opt[14] = 0x46;
        opt.extend_from_slice(&[1, 1, 1, 0]);
        opt.extend_from_slice(&f[34..]);
        assert_eq!(
            key_of(&opt),
            Some(FlowKey::ipv4([198, 18, 0, 100], 80, [198, 18, 0, 1], 40000))
        );
    }

    #[test]
    fn arp_reply_and_not_a_request() {
        let rs = Ipv4Addr::new(198, 18, 0, 11);
        let lb = Ipv4Addr::new(198, 18, 0, 1);
        let reply = crate::wire::arp::reply_frame(RS_MAC, rs, LB_MAC, lb);
        assert_eq!(key_of(&reply), Some(FlowKey::arp(rs.octets(), lb.octets())));
        let request = crate::wire::arp::request_frame(LB_MAC, lb, rs);
        assert_eq!(key_of(&request), None);
    }

    #[test]
    fn neighbour_advertisement_and_the_ndp_module_agree() {
        let rs: Ipv6Addr = "fd98:c612:0:1::11".parse().unwrap();
        let lb: Ipv6Addr = "fd98:c612:0:1::1".parse().unwrap();
        let na = crate::wire::ndp::advertisement_frame(RS_MAC, rs, LB_MAC, lb);
        assert_eq!(key_of(&na), Some(crate::wire::ndp::key(lb, rs)));
        let ns = crate::wire::ndp::solicitation_frame(LB_MAC, lb, rs);
        assert_eq!(key_of(&ns), None);
    }

    #[test]
    fn ipv6_tcp_behind_extension_headers() {
        let vip: Ipv6Addr = "fd98:c612:0:1::100".parse().unwrap();
        let lb: Ipv6Addr = "fd98:c612:0:1::1".parse().unwrap();
        let build = |exts: usize| {
            let mut f = vec![0u8; 14];
            f[12..14].copy_from_slice(&ETH_P_IPV6.to_be_bytes());
            let mut ip = vec![0u8; 40];
            ip[0] = 0x60;
            ip[6] = if exts > 0 { IPPROTO_DSTOPTS } else { PROTO_TCP };
            ip[8..24].copy_from_slice(&vip.octets());
            ip[24..40].copy_from_slice(&lb.octets());
            f.extend_from_slice(&ip);
            for i in 0..exts {
                let next = if i + 1 == exts {
                    PROTO_TCP
                } else {
                    IPPROTO_DSTOPTS
                };
                f.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]);
            }
            let mut tcp = [0u8; 20];
            tcp[0..2].copy_from_slice(&443u16.to_be_bytes());
            tcp[2..4].copy_from_slice(&41000u16.to_be_bytes());
            f.extend_from_slice(&tcp);
            f
        };
        let want = FlowKey::ipv6(vip.octets(), 443, lb.octets(), 41000);
        for exts in 0..=MAX_EXT_HEADERS {
            assert_eq!(key_of(&build(exts)), Some(want), "{exts} headers");
        }
        assert_eq!(key_of(&build(MAX_EXT_HEADERS + 1)), None);
    }

    #[test]
    fn garbage_is_nobody_s() {
        assert_eq!(key_of(&[]), None);
        assert_eq!(key_of(&[0xff; 13]), None);
        let mut f = vec![0u8; 60];
        f[12..14].copy_from_slice(&0x88ccu16.to_be_bytes());
        assert_eq!(key_of(&f), None);
    }
}
