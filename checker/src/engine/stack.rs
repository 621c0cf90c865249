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

// unsafe: smoltcp is handed slices of a mapping the stack owns (see Stack).
#![allow(unsafe_code)]

use std::collections::VecDeque;

use bytes::Bytes;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, EthernetFrame, HardwareAddress, IpCidr};

use crate::sys::buffers::Buffers;
use crate::sys::netdev::Mac;
use crate::wire::arp::reply_frame;
use crate::wire::segment::Segment;

/// Everything that defines one check flow on the wire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FlowParams {
    pub(crate) local_mac: Mac,
    /// IPv4 or IPv6, the family of `vip`.
    pub(crate) local_ip: IpAddr,
    pub(crate) local_port: u16,
    pub(crate) vip: IpAddr,
    pub(crate) port: u16,
    pub(crate) real_server_mac: Mac,
    pub(crate) mtu: usize,
}

pub(crate) struct Stack {
    iface: Interface,
    device: FrameQueue,
    /// Its socket's buffers are slices of `_buffers`, which is dropped
    /// after it (fields are dropped in declaration order).
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    params: FlowParams,
    resend: Resend,
    _buffers: Buffers,
}

impl Stack {
    /// A stack with one TCP socket connecting to `params.vip:params.port`.
    pub(crate) fn connect(params: FlowParams, now: std::time::Instant) -> Stack {
        Stack::connect_seeded(params, now, random_seed(), tsval)
    }

    /// [`Stack::connect`] with smoltcp's random seed (initial sequence
    /// numbers) and the TCP timestamp clock given, so that a simulation
    /// (`crate::sim`) runs the same every time.
    pub(crate) fn connect_seeded(
        params: FlowParams,
        now: std::time::Instant,
        seed: u64,
        tsval: fn() -> u32,
    ) -> Stack {
        let mut device = FrameQueue::new(params.mtu);
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(
            params.local_mac.0,
        )));
        config.random_seed = seed;
        let now = Instant::from(now);
        let mut iface = Interface::new(config, &mut device, now);
        iface.update_ip_addrs(|addrs| {
            // Cannot fail: the address list starts empty.
            let _ = addrs.push(IpCidr::new(params.local_ip.into(), 0));
        });
        // "VIP is at RS_MAC" in smoltcp's neighbour cache: an ARP reply, or
        // for IPv6 a neighbour advertisement from the VIP.
        device
            .rx
            .push_back(Bytes::from(match (params.vip, params.local_ip) {
                (IpAddr::V6(vip), IpAddr::V6(local)) => crate::wire::ndp::advertisement_frame(
                    params.real_server_mac,
                    vip,
                    params.local_mac,
                    local,
                ),
                (IpAddr::V4(vip), IpAddr::V4(local)) => {
                    reply_frame(params.real_server_mac, vip, params.local_mac, local)
                }
                // The preflight refuses mixed families; nothing to inject.
                _ => Vec::new(),
            }));

        let mut buffers = Buffers::take();
        // SAFETY: the slices go only into `sockets`, which `Stack` drops
        // before `_buffers` (field order); taken once.
        let (rx, tx) = unsafe { buffers.slices() };
        let mut socket = tcp::Socket::new(tcp::SocketBuffer::new(rx), tcp::SocketBuffer::new(tx));
        socket.set_nagle_enabled(false);
        // Timestamps let the server take RTT samples from retransmitted
        // segments (RFC 7323), so after a loss its retransmission timeout
        // comes back down instead of staying backed off as it does without
        // them: under loss, a check then finishes as fast as a kernel
        // connection (which uses them).
        socket.set_tsval_generator(Some(tsval));
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
            resend: Resend::default(),
            _buffers: buffers,
        }
    }

    /// Queues a frame captured for our flow.
    pub(crate) fn receive(&mut self, frame: Bytes) {
        if let Some(segment) = Segment::parse(&frame) {
            self.resend.received(&segment);
        }
        self.device.rx.push_back(frame);
    }

    /// Runs smoltcp: consumes received frames, produces frames to send.
    pub(crate) fn poll(&mut self, now: std::time::Instant) {
        self.iface
            .poll(Instant::from(now), &mut self.device, &mut self.sockets);
    }

    /// How long smoltcp can sleep before its next timer (retransmission).
    pub(crate) fn poll_delay(&mut self, now: std::time::Instant) -> Option<Duration> {
        let stack = self
            .iface
            .poll_delay(Instant::from(now), &self.sockets)
            .map(Duration::from);
        let resend = self
            .resend
            .next_due()
            .map(|due| due.saturating_duration_since(now));
        match (stack, resend) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The frames to put on the wire: only TCP segments of our flow, with
    /// the real server's MAC. Anything else smoltcp emits (ARP, RSTs to
    /// unknown flows) must not reach the LB's network.
    ///
    /// Also the early retransmissions that are due at `now` (see [`Resend`]).
    pub(crate) fn take_outgoing(&mut self, now: std::time::Instant) -> Vec<Bytes> {
        let params = self.params;
        let mut out: Vec<Bytes> = self
            .device
            .tx
            .drain(..)
            .filter_map(|mut frame| {
                if !is_our_segment(&frame, &params) {
                    return None;
                }
                let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
                eth.set_dst_addr(EthernetAddress(params.real_server_mac.0));
                Some(Bytes::from(frame))
            })
            .collect();
        for frame in &out {
            self.resend.sent(frame, now);
        }
        out.extend(self.resend.due(now));
        out
    }

    pub(crate) fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.handle)
    }

    pub(crate) fn state(&self) -> tcp::State {
        self.sockets.get::<tcp::Socket>(self.handle).state()
    }
}

/// Early retransmission of our segments.
///
/// smoltcp's retransmission timeout is at least one second and doubles from
/// there, so within a check's deadline it retries far less often than the
/// kernel (whose minimum is 200 ms): under loss a check would fail where a
/// kernel connection succeeds. So each segment that occupies sequence space
/// (SYN, data, FIN) is sent again, unchanged, if no ACK has covered it after
/// 200 ms, then 400 ms, then every 800 ms until one does (the check's
/// deadline bounds it); smoltcp's own retransmission restarts that schedule. A duplicate segment is ordinary TCP for the peer, and
/// smoltcp's state is not touched. The SYN too: a check knows its peer is
/// one LAN hop away, where the kernel's one second for an unknown path only
/// makes a lost SYN cost a second of the check's deadline.
#[derive(Debug, Default)]
struct Resend {
    pending: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    /// Shared with the frame sent: a resend copies nothing.
    frame: Bytes,
    seq: u32,
    /// Sequence number just after the segment.
    end: u32,
    due: std::time::Instant,
    interval: Duration,
}

const FIRST_RESEND: Duration = Duration::from_millis(200);
/// The interval stops doubling here: a check has one peer one LAN hop away
/// and a deadline of seconds, not a path to probe for minutes.
const MAX_RESEND: Duration = Duration::from_millis(800);

impl Resend {
    fn sent(&mut self, frame: &Bytes, now: std::time::Instant) {
        let Some(segment) = Segment::parse(frame) else {
            return;
        };
        if segment.len == 0 {
            return;
        }
        // smoltcp's own retransmission of a segment restarts our schedule.
        self.pending.retain(|p| p.seq != segment.seq);
        self.pending.push(Pending {
            frame: frame.clone(),
            seq: segment.seq,
            end: segment.seq.wrapping_add(segment.len),
            due: now + FIRST_RESEND,
            interval: FIRST_RESEND,
        });
    }

    fn received(&mut self, segment: &Segment) {
        if segment.rst {
            self.pending.clear();
        } else if let Some(ack) = segment.ack {
            // Covered when end <= ack, in sequence-number arithmetic.
            self.pending
                .retain(|p| (ack.wrapping_sub(p.end) as i32) < 0);
        }
    }

    fn due(&mut self, now: std::time::Instant) -> Vec<Bytes> {
        let mut out = Vec::new();
        for p in &mut self.pending {
            if p.due <= now {
                out.push(p.frame.clone());
                p.interval = (p.interval * 2).min(MAX_RESEND);
                p.due = now + p.interval;
            }
        }
        out
    }

    fn next_due(&self) -> Option<std::time::Instant> {
        self.pending.iter().map(|p| p.due).min()
    }
}

/// Whether smoltcp's `frame` is a segment of our flow.
fn is_our_segment(frame: &[u8], params: &FlowParams) -> bool {
    Segment::parse(frame).is_some_and(|s| {
        s.src == SocketAddr::new(params.local_ip, params.local_port)
            && s.dst == SocketAddr::new(params.vip, params.port)
    })
}

/// TCP timestamp clock: milliseconds since first use, from 1 (the value
/// only has to advance monotonically during this one connection).
fn tsval() -> u32 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let ms = START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis();
    (ms as u32).wrapping_add(1)
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
    rx: VecDeque<Bytes>,
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

struct RxToken(Bytes);

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
    use smoltcp::wire::{Ipv4Packet, TcpPacket};

    fn params() -> FlowParams {
        FlowParams {
            local_mac: Mac([2, 0, 0, 0, 0, 1]),
            local_ip: std::net::Ipv4Addr::new(198, 18, 0, 1).into(),
            local_port: 40000,
            vip: std::net::Ipv4Addr::new(198, 18, 0, 100).into(),
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
        let out = stack.take_outgoing(std::time::Instant::now());
        assert_eq!(out.len(), 1, "exactly the SYN, no ARP: {out:?}");
        let eth = EthernetFrame::new_checked(&out[0][..]).unwrap();
        assert_eq!(eth.dst_addr().0, p.real_server_mac.0);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(IpAddr::from(ip.dst_addr()), p.vip);
        assert_eq!(IpAddr::from(ip.src_addr()), p.local_ip);
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.syn() && !tcp.ack());
        assert_eq!((tcp.src_port(), tcp.dst_port()), (40000, 80));
        assert_eq!(stack.state(), tcp::State::SynSent);
    }

    #[test]
    fn unacknowledged_data_is_sent_again_early_until_acknowledged() {
        let p = params();
        let t0 = std::time::Instant::now();
        let mut stack = Stack::connect(p, t0);
        stack.poll(t0);
        let syn = stack.take_outgoing(t0).remove(0);
        let syn_seq = Segment::parse(&syn).unwrap().seq;
        // The server's SYN-ACK, as the XDP program would hand it over.
        let mut synack = syn.to_vec();
        {
            let mut eth = EthernetFrame::new_unchecked(&mut synack[..]);
            eth.set_src_addr(EthernetAddress(p.real_server_mac.0));
            eth.set_dst_addr(EthernetAddress(p.local_mac.0));
            let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
            let (IpAddr::V4(vip), IpAddr::V4(local)) = (p.vip, p.local_ip) else {
                unreachable!()
            };
            ip.set_src_addr(vip);
            ip.set_dst_addr(local);
            let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
            tcp.set_src_port(p.port);
            tcp.set_dst_port(p.local_port);
            tcp.set_seq_number(smoltcp::wire::TcpSeqNumber(1000));
            tcp.set_ack_number(smoltcp::wire::TcpSeqNumber(syn_seq.wrapping_add(1) as i32));
            tcp.set_ack(true);
        }
        stack.receive(Bytes::from(synack.clone()));
        stack.poll(t0);
        assert_eq!(stack.state(), tcp::State::Established);
        stack
            .socket()
            .send_slice(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        stack.poll(t0);
        let sent = stack.take_outgoing(t0);
        let data: Vec<_> = sent
            .iter()
            .filter(|f| Segment::parse(f).unwrap().len > 0)
            .collect();
        assert_eq!(data.len(), 1, "{sent:?}");
        let data = data[0].clone();
        assert!(stack.poll_delay(t0).unwrap() <= FIRST_RESEND);

        // Nothing acknowledged it: the same segment again after 200 ms, not 1 s.
        let t1 = t0 + FIRST_RESEND;
        stack.poll(t1);
        let again = stack.take_outgoing(t1);
        assert_eq!(again, vec![data.clone()]);

        // An ACK covering it ends the early retransmissions.
        let end = Segment::parse(&data).unwrap();
        let mut ack = synack;
        {
            let mut eth = EthernetFrame::new_unchecked(&mut ack[..]);
            let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
            let mut tcp = TcpPacket::new_unchecked(ip.payload_mut());
            tcp.set_syn(false);
            tcp.set_seq_number(smoltcp::wire::TcpSeqNumber(1001));
            tcp.set_ack_number(smoltcp::wire::TcpSeqNumber(
                end.seq.wrapping_add(end.len) as i32
            ));
        }
        stack.receive(Bytes::from(ack));
        let t2 = t1 + Duration::from_secs(5);
        stack.poll(t2);
        assert!(
            stack
                .take_outgoing(t2)
                .iter()
                .all(|f| Segment::parse(f).unwrap().len == 0)
        );
    }

    #[test]
    fn egress_filter_drops_foreign_frames() {
        let p = params();
        let (IpAddr::V4(local), IpAddr::V4(vip)) = (p.local_ip, p.vip) else {
            unreachable!()
        };
        let arp = crate::wire::arp::request_frame(p.local_mac, local, vip);
        assert!(!is_our_segment(&arp, &p));
    }
}
