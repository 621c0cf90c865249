//! The userspace TCP/IP stack of one check: smoltcp over a queue of frames.
//!
//! Sans-IO: frames captured by the XDP program go in with [`Stack::receive`],
//! [`Stack::poll`] runs smoltcp, and the frames to send come out of
//! [`Stack::take_outgoing`]. The event loop (in `check`) moves them between
//! the ring buffer, this stack and the AF_PACKET socket.
//!
//! The LVS-DR forwarding decision (destination IP = VIP, destination MAC =
//! the real server's) is made here: the interface gets `local_ip/0`, so every
//! address is on-link, and a synthetic ARP reply "VIP is-at RS_MAC" fills
//! smoltcp's neighbour cache before the first SYN. The egress filter then
//! lets only our flow's TCP segments out, with the real server's MAC.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::Duration;

use checker_common::FRAME_HEADER_LEN;
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, EthernetFrame, EthernetProtocol, HardwareAddress, IpCidr, IpProtocol,
    Ipv4Packet, TcpPacket,
};

use crate::netdev::Mac;
use crate::resolve::reply_frame;

/// The frame inside one ring-buffer record (header + frame bytes).
pub fn record_frame(record: &[u8]) -> Option<&[u8]> {
    let len = u32::from_ne_bytes(record.get(..4)?.try_into().ok()?) as usize;
    record.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN.checked_add(len)?)
}

/// Everything that defines one check flow on the wire.
#[derive(Clone, Copy, Debug)]
pub struct FlowParams {
    pub local_mac: Mac,
    pub local_ip: Ipv4Addr,
    pub local_port: u16,
    pub vip: Ipv4Addr,
    pub port: u16,
    pub real_server_mac: Mac,
    pub mtu: usize,
}

/// Buffer sizes of the TCP socket.
const RX_BUFFER: usize = 64 * 1024;
const TX_BUFFER: usize = 16 * 1024;

pub struct Stack {
    iface: Interface,
    device: FrameQueue,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    params: FlowParams,
}

impl Stack {
    /// A stack with one TCP socket connecting to `params.vip:params.port`.
    pub fn connect(params: FlowParams, now: std::time::Instant) -> Stack {
        let mut device = FrameQueue::new(params.mtu);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(
            params.local_mac.0,
        )));
        config.random_seed = random_seed();
        let now = Instant::from(now);
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|addrs| {
            // Cannot fail: the address list starts empty.
            let _ = addrs.push(IpCidr::new(params.local_ip.into(), 0));
        });
        device.rx.push_back(reply_frame(
            params.real_server_mac,
            params.vip,
            params.local_mac,
            params.local_ip,
        ));

        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; RX_BUFFER]),
            tcp::SocketBuffer::new(vec![0; TX_BUFFER]),
        );
        socket.set_nagle_enabled(false);
        let mut sockets = SocketSet::new(Vec::new());
        // Local port is non-zero (reserved by the kernel), so connect cannot
        // fail for an unspecified port; other errors cannot happen on a fresh socket.
        let _ = socket.connect(
            iface.context(),
            (params.vip, params.port),
            params.local_port,
        );
        let handle = sockets.add(socket);
        Stack {
            iface,
            device,
            sockets,
            handle,
            params,
        }
    }

    /// Queues a frame captured for our flow.
    pub fn receive(&mut self, frame: Vec<u8>) {
        self.device.rx.push_back(frame);
    }

    /// Runs smoltcp: consumes received frames, produces frames to send.
    pub fn poll(&mut self, now: std::time::Instant) {
        self.iface
            .poll(Instant::from(now), &mut self.device, &mut self.sockets);
    }

    /// How long smoltcp can sleep before its next timer (retransmission).
    pub fn poll_delay(&mut self, now: std::time::Instant) -> Option<Duration> {
        self.iface
            .poll_delay(Instant::from(now), &self.sockets)
            .map(Duration::from)
    }

    /// The frames to put on the wire: only TCP segments of our flow, with
    /// the real server's MAC. Anything else smoltcp emits (ARP, RSTs to
    /// unknown flows) must not reach the LB's network.
    pub fn take_outgoing(&mut self) -> Vec<Vec<u8>> {
        let params = self.params;
        self.device
            .tx
            .drain(..)
            .filter_map(|mut frame| {
                if !is_our_segment(&frame, &params) {
                    return None;
                }
                let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
                eth.set_dst_addr(EthernetAddress(params.real_server_mac.0));
                Some(frame)
            })
            .collect()
    }

    pub fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.handle)
    }

    pub fn state(&self) -> tcp::State {
        self.sockets.get::<tcp::Socket>(self.handle).state()
    }
}

fn is_our_segment(frame: &[u8], params: &FlowParams) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else {
        return false;
    };
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return false;
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
        return false;
    };
    if ip.next_header() != IpProtocol::Tcp
        || ip.src_addr() != params.local_ip
        || ip.dst_addr() != params.vip
    {
        return false;
    }
    TcpPacket::new_checked(ip.payload())
        .is_ok_and(|tcp| tcp.src_port() == params.local_port && tcp.dst_port() == params.port)
}

/// smoltcp must not reuse initial sequence numbers across runs.
fn random_seed() -> u64 {
    let mut seed = [0u8; 8];
    // SAFETY: seed is a valid writable buffer of 8 bytes.
    let n = unsafe { libc::getrandom(seed.as_mut_ptr().cast(), seed.len(), 0) };
    if n != 8 {
        // Fall back to the clock and pid: unpredictability is not needed,
        // only difference between runs.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
    }
    u64::from_ne_bytes(seed)
}

/// The smoltcp device: two queues of frames.
struct FrameQueue {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    mtu: usize,
}

impl FrameQueue {
    fn new(mtu: usize) -> Self {
        FrameQueue {
            rx: VecDeque::new(),
            tx: Vec::new(),
            mtu,
        }
    }
}

impl phy::Device for FrameQueue {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: Instant) -> Option<(RxToken, TxToken<'_>)> {
        let frame = self.rx.pop_front()?;
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.mtu + 14;
        // Frames handed over by XDP in skb mode can be GRO super-frames whose
        // checksums the kernel already validated piecewise and left partial:
        // do not verify on receive; do compute on transmit.
        let mut checksum = ChecksumCapabilities::default();
        checksum.ipv4 = Checksum::Tx;
        checksum.tcp = Checksum::Tx;
        caps.checksum = checksum;
        caps
    }
}

struct RxToken(Vec<u8>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct TxToken<'a>(&'a mut Vec<Vec<u8>>);

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        self.0.push(frame);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> FlowParams {
        FlowParams {
            local_mac: Mac([2, 0, 0, 0, 0, 1]),
            local_ip: Ipv4Addr::new(198, 18, 0, 1),
            local_port: 40000,
            vip: Ipv4Addr::new(198, 18, 0, 100),
            port: 80,
            real_server_mac: Mac([2, 0, 0, 0, 0, 0x0b]),
            mtu: 1500,
        }
    }

    #[test]
    fn first_poll_sends_one_syn_to_the_vip_via_the_real_server_mac() {
        let p = params();
        let mut stack = Stack::connect(p, std::time::Instant::now());
        stack.poll(std::time::Instant::now());
        let out = stack.take_outgoing();
        assert_eq!(out.len(), 1, "exactly the SYN, no ARP: {out:?}");
        let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
        assert_eq!(eth.dst_addr().0, p.real_server_mac.0);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(ip.dst_addr(), p.vip);
        assert_eq!(ip.src_addr(), p.local_ip);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!((tcp.src_port(), tcp.dst_port()), (40000, 80));
        assert_eq!(stack.state(), tcp::State::SynSent);
    }

    #[test]
    fn records_are_bounded() {
        let mut record = vec![0u8; FRAME_HEADER_LEN + 4];
        record[..4].copy_from_slice(&4u32.to_ne_bytes());
        assert_eq!(record_frame(&record).map(<[u8]>::len), Some(4));
        record[..4].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(record_frame(&record), None);
        record[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(record_frame(&record), None);
        assert_eq!(record_frame(&[1, 2]), None);
    }

    #[test]
    fn egress_filter_drops_foreign_frames() {
        let p = params();
        let arp = crate::resolve::request_frame(p.local_mac, p.local_ip, p.vip);
        assert!(!is_our_segment(&arp, &p));
    }
}
