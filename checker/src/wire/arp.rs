//! ARP frames: the request vipcheck sends for a real server's MAC, the
//! reply it reads (and the reply it answers for a check's own source
//! address). Built and parsed with smoltcp's wire types; no I/O here (the
//! asking is [`engine::resolve`](crate::engine::resolve)).

use std::net::Ipv4Addr;

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

use crate::sys::netdev::Mac;

/// A broadcast ARP request "who has `target`, tell `source`".
pub(crate) fn request_frame(mac: Mac, source: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        mac,
        EthernetAddress::BROADCAST,
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(mac.0),
            source_protocol_addr: source,
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        },
    )
}

/// An ARP reply "`source` is at `source_mac`" to `target`.
pub(crate) fn reply_frame(
    source_mac: Mac,
    source: Ipv4Addr,
    target_mac: Mac,
    target: Ipv4Addr,
) -> Vec<u8> {
    arp_frame(
        source_mac,
        EthernetAddress(target_mac.0),
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress(source_mac.0),
            source_protocol_addr: source,
            target_hardware_addr: EthernetAddress(target_mac.0),
            target_protocol_addr: target,
        },
    )
}

fn arp_frame(src: Mac, dst: EthernetAddress, arp: ArpRepr) -> Vec<u8> {
    let eth = EthernetRepr {
        src_addr: EthernetAddress(src.0),
        dst_addr: dst,
        ethertype: EthernetProtocol::Arp,
    };
    let mut frame = vec![0u8; eth.buffer_len() + arp.buffer_len()];
    let mut eth_frame = EthernetFrame::new_unchecked(&mut frame[..]);
    eth.emit(&mut eth_frame);
    arp.emit(&mut ArpPacket::new_unchecked(eth_frame.payload_mut()));
    frame
}

/// The sender MAC if `frame` is an ARP reply from `target`. Never panics,
/// whatever the bytes (public for the fuzz targets).
pub fn reply_from(frame: &[u8], target: Ipv4Addr) -> Option<Mac> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Arp {
        return None;
    }
    match ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).ok()?).ok()? {
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr,
            source_protocol_addr,
            ..
        } if source_protocol_addr == target && source_hardware_addr.is_unicast() => {
            Some(Mac(source_hardware_addr.0))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac([2, 0, 0, 0, 0, 1]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 2]);

    #[test]
    fn reply_round_trip() {
        let rs = Ipv4Addr::new(198, 18, 0, 11);
        let lb = Ipv4Addr::new(198, 18, 0, 1);
        let reply = reply_frame(B, rs, A, lb);
        assert_eq!(reply_from(&reply, rs), Some(B));
        assert_eq!(reply_from(&reply, lb), None);
        // A request is not a reply.
        assert_eq!(reply_from(&request_frame(B, rs, lb), rs), None);
        assert_eq!(reply_from(&reply[..20], rs), None);
    }
}
