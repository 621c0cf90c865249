//! Learns the real server's MAC by ARP on the interface. Always the real
//! server's own IP, never the VIP: real servers must not answer ARP for the
//! VIP (arp_ignore=1), and the LB may own it.

use std::net::Ipv4Addr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use checker_common::FlowKey;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr,
};

use crate::egress::Egress;
use crate::engine::port::Port;
use crate::engine::stop::Stop;
use crate::error::Result;
use crate::netdev::Mac;

/// How often the request is repeated while no reply has come.
const RETRY: Duration = Duration::from_millis(200);

/// Asks for `target`'s MAC from `source` until `deadline`; `None` if nobody
/// answered. The reply is captured like our TCP frames (the XDP program
/// copies registered ARP replies and still passes them to the kernel).
pub async fn arp(
    port: &Rc<Port>,
    stop: &Stop,
    egress: &Egress,
    source: Ipv4Addr,
    target: Ipv4Addr,
    deadline: Instant,
) -> Result<Option<Mac>> {
    let key = FlowKey::arp(target.octets(), source.octets());
    let request = request_frame(port.dev.mac, source, target);
    ask(port, stop, egress, key, &request, deadline, |frame| {
        reply_from(frame, target)
    })
    .await
}

/// Registers `key` (waiting while another process resolving the same real
/// server from the same address holds it), sends `request` every
/// [`RETRY`] until `answer` finds the MAC in a captured frame or
/// `deadline`; the key is unregistered on the way out. Shared by ARP and
/// neighbour discovery.
pub(crate) async fn ask(
    port: &Rc<Port>,
    stop: &Stop,
    egress: &Egress,
    key: FlowKey,
    request: &[u8],
    deadline: Instant,
    answer: impl Fn(&[u8]) -> Option<Mac>,
) -> Result<Option<Mac>> {
    let registration = loop {
        if let Some(registration) = port.register(key)? {
            break registration;
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::select! {
            e = stop.stopped() => return Err(e),
            _ = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        port.send(request, egress)?;
        let retry_at = (now + RETRY).min(deadline);
        loop {
            for frame in registration.inbox.take() {
                if let Some(mac) = answer(&frame) {
                    return Ok(Some(mac));
                }
            }
            if Instant::now() >= retry_at {
                break;
            }
            port.wait(&registration.inbox, stop, retry_at).await?;
        }
    }
}

/// A broadcast ARP request "who has `target`, tell `source`".
pub fn request_frame(mac: Mac, source: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
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
pub fn reply_frame(
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
