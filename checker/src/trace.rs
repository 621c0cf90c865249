//! One line per frame, tcpdump-like, in the C checkers' trace format:
//! source MAC first, destination MAC after the addresses.
//!
//! ```text
//! (SRC_MAC) SRC_IP ARP request who has TARGET_IP (ff:ff:ff:ff:ff:ff)
//! (SRC_MAC) SRC_IP ARP reply to DST_IP (DST_MAC)
//! (SRC_MAC) SRC_IP:SPORT > DST_IP:DPORT (DST_MAC) Flags [S], seq N, ack N, length N
//! ```

use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet,
    TcpPacket,
};

use crate::netdev::Mac;

/// Describes one Ethernet frame in one line.
pub fn describe(frame: &[u8]) -> String {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return format!("short frame of {} bytes", frame.len());
    };
    let src = Mac(eth.src_addr().0);
    let dst = Mac(eth.dst_addr().0);
    let body = match eth.ethertype() {
        EthernetProtocol::Arp => describe_arp(eth.payload()),
        EthernetProtocol::Ipv4 => describe_ipv4(eth.payload()),
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

fn describe_ipv4(payload: &[u8]) -> Option<Parts> {
    let ip = Ipv4Packet::new_checked(payload).ok()?;
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    if ip.next_header() != IpProtocol::Tcp {
        return Some((format!("{src} > {dst} {}", ip.next_header()), String::new()));
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
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
    let addrs = format!("{src}:{} > {dst}:{}", tcp.src_port(), tcp.dst_port());
    let mut details = format!(" Flags [{flags}], seq {}", tcp.seq_number().0 as u32);
    if tcp.ack() {
        details += &format!(", ack {}", tcp.ack_number().0 as u32);
    }
    details += &format!(", win {}, length {}", tcp.window_len(), tcp.payload().len());
    Some((addrs, details))
}

/// Prints frame lines on stderr when enabled.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tracer {
    pub frames: bool,
}

impl Tracer {
    pub fn sent(&self, frame: &[u8]) {
        if self.frames {
            eprintln!("> {}", describe(frame));
        }
    }

    pub fn received(&self, frame: &[u8]) {
        if self.frames {
            eprintln!("< {}", describe(frame));
        }
    }
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
    }

    #[test]
    fn never_panics_on_garbage() {
        for len in 0..64 {
            let frame: Vec<u8> = (0..len as u8).collect();
            let _ = describe(&frame);
        }
    }
}
