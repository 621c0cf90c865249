//! The capture program of vipcheck, in two hooks: XDP (`vipcheck_xdp`), and
//! TC ingress (`vipcheck_tc`) for an interface whose XDP hook another
//! program holds. Both share the maps and every verdict.
//!
//! It sees every frame that reaches the load balancer's interface, so the
//! path is short and bounded: Ethernet (+ one 802.1Q/802.1ad tag) → IPv4 →
//! TCP, UDP or ICMP, IPv6 (+ at most [`MAX_EXT_HEADERS`] hop-by-hop,
//! routing or destination options headers) → TCP, UDP or ICMPv6, an ARP
//! reply; one array lookup of the local port, and only when a check uses
//! that port, one hash lookup of the whole key. A TCP or UDP frame, an echo
//! reply, or an ICMP error quoting a packet of a registered check flow is
//! copied to the ring buffer of its owner's capture slot and dropped, so
//! the kernel never answers it (an RST, an ICMP port unreachable); a
//! registered ARP reply or neighbour advertisement is copied and passed;
//! every other frame (fragments, other ICMP, ICMPv6 and NDP, anything it
//! does not understand) is passed untouched: to the kernel from XDP, to
//! the next TC program from TC.
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext,
    bindings::{
        BPF_F_MMAPABLE,
        xdp_action::{XDP_DROP, XDP_PASS},
    },
    btf_maps::{Array, ArrayOfMaps, HashMap, PerCpuArray, RingBuf},
    helpers::generated::{bpf_skb_load_bytes, bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    macros::{btf_map, classifier, xdp},
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::warn;
use checker_common::{
    COUNTER_COUNT, Counter, FAMILY_ARP, FAMILY_IPV4, FAMILY_IPV6, FAMILY_NDP, FRAME_CLASSES,
    FRAME_HEADER_LEN, FlowKey, FlowOwner, MAX_FLOWS, PORT_COUNT, PROTO_ICMP, PROTO_ICMPV6,
    PROTO_TCP, PROTO_UDP, RING_SIZE, SLOT_COUNT,
};

type SlotRing = RingBuf<u8, { RING_SIZE as usize }>;

#[btf_map]
static FLOWS: HashMap<FlowKey, u32, { MAX_FLOWS as usize }> = HashMap::new();

#[btf_map]
static RINGS: ArrayOfMaps<SlotRing, { SLOT_COUNT as usize }> = ArrayOfMaps::new();

/// Only userspace reads and writes it; declared here so that it is created,
/// and pinned, together with the program.
#[btf_map]
static SLOTS: HashMap<u32, FlowOwner, { SLOT_COUNT as usize }> = HashMap::new();

#[btf_map]
static COUNTERS: PerCpuArray<u64, { COUNTER_COUNT as usize }> = PerCpuArray::new();

/// Local port → flows registered with it (`checker_common::PORTS_MAP`).
#[btf_map]
static PORTS: Array<u64, { PORT_COUNT as usize }, { BPF_F_MMAPABLE as usize }> = Array::new();

/// TC verdicts (linux/pkt_cls.h), as the program returns them.
const TC_ACT_UNSPEC: i32 = -1;
const TC_ACT_SHOT: i32 = 2;
const ETH_HLEN: usize = 14;
const ETH_P_IP: u16 = 0x0800;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const ARP_REPLY: u16 = 2;
const IPV6_HLEN: usize = 40;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_DSTOPTS: u8 = 60;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMP_DEST_UNREACH: u8 = 3;
const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_TIME_EXCEEDED: u8 = 11;
const ICMPV6_DEST_UNREACH: u8 = 1;
const ICMPV6_PACKET_TOO_BIG: u8 = 2;
const ICMPV6_TIME_EXCEEDED: u8 = 3;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;
/// Type, code, checksum, and four bytes (echo identifier and sequence, or
/// unused in an error): the ICMP and ICMPv6 header before what an error quotes.
const ICMP_HLEN: usize = 8;
/// Extension headers skipped before giving up (and passing the frame).
/// Real traffic carries one or two at most; the loop is unrolled.
const MAX_EXT_HEADERS: usize = 4;

#[xdp]
pub fn vipcheck_xdp(ctx: XdpContext) -> u32 {
    let frame = XdpFrame {
        start: ctx.data(),
        end: ctx.data_end(),
        ctx,
    };
    match capture(&frame) {
        Verdict::Drop => XDP_DROP,
        Verdict::Pass => XDP_PASS,
    }
}

/// The same capture at TC ingress (tcx, or a clsact filter in
/// direct-action mode). What is not ours goes on to the next program
/// (`TC_ACT_UNSPEC`: "next" in tcx, the next filter in clsact), which
/// then decides as if vipcheck were not there.
#[classifier]
pub fn vipcheck_tc(ctx: TcContext) -> i32 {
    let frame = SkbFrame {
        start: ctx.data(),
        end: ctx.data_end(),
        ctx,
    };
    match capture(&frame) {
        Verdict::Drop => TC_ACT_SHOT,
        Verdict::Pass => TC_ACT_UNSPEC,
    }
}

enum Verdict {
    /// Ours: copied, and never seen by the kernel.
    Drop,
    /// Not ours (or an ARP reply or advertisement, copied): on its way.
    Pass,
}

/// What both hooks do with a frame.
#[inline(always)]
fn capture<F: Frame>(frame: &F) -> Verdict {
    let key = match flow_key(frame) {
        Ok(key) => key,
        Err(counter) => {
            count(counter);
            return Verdict::Pass;
        }
    };
    // SAFETY: a plain u32 value, read once.
    let Some(&slot) = (unsafe { FLOWS.get(key) }) else {
        count(Counter::PassMiss);
        return Verdict::Pass;
    };
    let counter = match RINGS.get(slot) {
        Some(ring) => copy(frame, ring),
        None => Counter::NoRing,
    };
    if counter == Counter::RingFull {
        // Rare: the owner stopped reading. Not per packet in normal operation.
        warn!(
            frame.ctx(),
            "vipcheck: ring of slot {} full, dropped a frame", slot
        );
    }
    if key.family == FAMILY_ARP || key.family == FAMILY_NDP {
        // ARP replies and neighbour advertisements are the kernel's
        // business too: a copy only.
        count(Counter::CopiedArp);
        return Verdict::Pass;
    }
    count(counter);
    Verdict::Drop
}

/// A frame as a hook sees it: its headers read in place, its whole length
/// copied by the hook's helper.
trait Frame {
    type Ctx: EbpfContext;

    fn ctx(&self) -> &Self::Ctx;

    /// `N` bytes at `offset`, if the frame has them.
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]>;

    /// The frame's whole length (all fragments, or the whole skb).
    fn len(&self) -> usize;

    /// Copies the frame's first `len` bytes to `to`; false if it could not.
    ///
    /// # Safety
    /// `to` must have room for `len` bytes.
    unsafe fn load(&self, to: *mut u8, len: u32) -> bool;
}

/// An XDP buffer: its first (linear) part read directly.
struct XdpFrame {
    ctx: XdpContext,
    start: usize,
    end: usize,
}

impl Frame for XdpFrame {
    type Ctx = XdpContext;

    #[inline(always)]
    fn ctx(&self) -> &XdpContext {
        &self.ctx
    }

    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        linear(self.start, self.end, offset)
    }

    #[inline(always)]
    fn len(&self) -> usize {
        // SAFETY: the helper only reads the context it is given.
        (unsafe { bpf_xdp_get_buff_len(self.ctx.ctx) }) as usize
    }

    #[inline(always)]
    unsafe fn load(&self, to: *mut u8, len: u32) -> bool {
        // SAFETY: the caller gives room for `len` bytes; the helper checks
        // the source bounds itself.
        (unsafe { bpf_xdp_load_bytes(self.ctx.ctx, 0, to.cast(), len) }) == 0
    }
}

/// An skb at TC ingress: the headers are read directly where they are in
/// its linear part (they are, unless a driver left them in a fragment),
/// else copied out by `bpf_skb_load_bytes`; nothing else of the skb is
/// touched, so a GRO'd packet is never linearized.
struct SkbFrame {
    ctx: TcContext,
    start: usize,
    end: usize,
}

impl Frame for SkbFrame {
    type Ctx = TcContext;

    #[inline(always)]
    fn ctx(&self) -> &TcContext {
        &self.ctx
    }

    #[inline(always)]
    fn bytes<const N: usize>(&self, offset: usize) -> Option<[u8; N]> {
        match linear(self.start, self.end, offset) {
            Some(bytes) => Some(bytes),
            None => self.ctx.load::<[u8; N]>(offset).ok(),
        }
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.ctx.len() as usize
    }

    #[inline(always)]
    unsafe fn load(&self, to: *mut u8, len: u32) -> bool {
        // SAFETY: the caller gives room for `len` bytes; the helper checks
        // the source bounds itself.
        (unsafe { bpf_skb_load_bytes(self.ctx.as_ptr(), 0, to.cast(), len) }) == 0
    }
}

/// Copies the whole frame into the smallest record class that holds it.
#[inline(always)]
fn copy<F: Frame>(frame: &F, ring: &SlotRing) -> Counter {
    let len = frame.len();
    if len <= FRAME_CLASSES[0] {
        copy_into::<F, { FRAME_CLASSES[0] }>(frame, ring, len)
    } else if len <= FRAME_CLASSES[1] {
        copy_into::<F, { FRAME_CLASSES[1] }>(frame, ring, len)
    } else if len <= FRAME_CLASSES[2] {
        copy_into::<F, { FRAME_CLASSES[2] }>(frame, ring, len)
    } else if len <= FRAME_CLASSES[3] {
        copy_into::<F, { FRAME_CLASSES[3] }>(frame, ring, len)
    } else if len <= FRAME_CLASSES[4] {
        copy_into::<F, { FRAME_CLASSES[4] }>(frame, ring, len)
    } else {
        Counter::Oversize
    }
}

/// Copies `len` bytes (at most `MAX`) into a record of
/// `FRAME_HEADER_LEN + MAX` bytes of `ring`.
#[inline(always)]
fn copy_into<F: Frame, const MAX: usize>(frame: &F, ring: &SlotRing, len: usize) -> Counter {
    let Some(mut record) = ring.reserve_bytes(FRAME_HEADER_LEN + MAX, 0) else {
        return Counter::RingFull;
    };
    // The verifier must see the copy length in [1, MAX]. LLVM turns a
    // two-sided range check into arithmetic on a copy of the register, so
    // read the length back through a volatile load, check the upper bound
    // once, and clamp with a mask (MAX is a power of two; len >= 1 because a
    // frame with a header was parsed).
    // SAFETY: reading a local through a valid pointer.
    let len = unsafe { core::ptr::read_volatile(&len) };
    if len > MAX {
        record.discard(0);
        return Counter::Oversize;
    }
    let len = ((len.wrapping_sub(1)) & (MAX - 1)) + 1;
    record[..4].copy_from_slice(&(len as u32).to_ne_bytes());
    record[4..FRAME_HEADER_LEN].copy_from_slice(&[0; 4]);
    // SAFETY: the destination is `len` <= MAX bytes inside the reserved
    // record after the header.
    let loaded =
        unsafe { frame.load(record.as_mut_ptr().add(FRAME_HEADER_LEN).cast(), len as u32) };
    if !loaded {
        record.discard(0);
        return Counter::Oversize;
    }
    record.submit(0);
    Counter::Delivered
}

/// Whether a check has a flow with this local port (network byte order):
/// if not, the frame cannot be ours, whatever its addresses.
#[inline(always)]
fn port_used(port: [u8; 2]) -> bool {
    PORTS
        .get(u16::from_be_bytes(port) as u32)
        .is_some_and(|&flows| flows != 0)
}

/// A miss told by the port alone, or the key.
#[inline(always)]
fn if_port_used(port: [u8; 2]) -> Result<(), Counter> {
    if port_used(port) {
        Ok(())
    } else {
        Err(Counter::PassMiss)
    }
}

/// Parses Ethernet (+ one VLAN tag), then IPv4 or IPv6 and TCP (or an ARP
/// reply, or a neighbour advertisement) and returns the key of the flow a
/// reply belongs to: remote = source, local = destination. Not a frame a
/// flow can own: `PassOther`; one whose local port no check uses: `PassMiss`.
#[inline(always)]
fn flow_key<F: Frame>(f: &F) -> Result<FlowKey, Counter> {
    let mut l3 = ETH_HLEN;
    let mut ethertype = u16::from_be_bytes(get::<F, 2>(f, 12)?);
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = u16::from_be_bytes(get::<F, 2>(f, 16)?);
        l3 += 4;
    }
    match ethertype {
        ETH_P_IP => ipv4_key(f, l3),
        ETH_P_IPV6 => ipv6_key(f, l3),
        ETH_P_ARP => arp_key(f, l3),
        _ => Err(Counter::PassOther),
    }
}

/// `N` bytes at `offset`, or `PassOther` (a truncated frame is not ours).
#[inline(always)]
fn get<F: Frame, const N: usize>(f: &F, offset: usize) -> Result<[u8; N], Counter> {
    f.bytes::<N>(offset).ok_or(Counter::PassOther)
}

/// The key of an IPv4 TCP segment or UDP datagram (not a later fragment),
/// an echo reply, or an ICMP error quoting one of ours.
#[inline(always)]
fn ipv4_key<F: Frame>(f: &F, l3: usize) -> Result<FlowKey, Counter> {
    let ip = get::<F, 20>(f, l3)?;
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    // Later fragments carry no L4 header: leave them to the kernel.
    let fragment_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    if ip[0] >> 4 != 4 || ihl < 20 || fragment_offset != 0 {
        return Err(Counter::PassOther);
    }
    let l4 = l3 + ihl;
    let mut key = FlowKey {
        family: FAMILY_IPV4,
        proto: ip[9],
        ..FlowKey::default()
    };
    match ip[9] {
        PROTO_TCP | PROTO_UDP => {
            let ports = get::<F, 4>(f, l4)?;
            key.local_port = [ports[2], ports[3]];
            if_port_used(key.local_port)?;
            key.remote_port = [ports[0], ports[1]];
        }
        PROTO_ICMP => {
            let icmp = get::<F, ICMP_HLEN>(f, l4)?;
            match icmp[0] {
                ICMP_ECHO_REPLY => {
                    key.local_port = [icmp[4], icmp[5]];
                    if_port_used(key.local_port)?;
                }
                ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED => {
                    return quoted_ipv4(f, l4 + ICMP_HLEN);
                }
                _ => return Err(Counter::PassOther),
            }
        }
        _ => return Err(Counter::PassOther),
    }
    key.remote_addr[..4].copy_from_slice(&ip[12..16]);
    key.local_addr[..4].copy_from_slice(&ip[16..20]);
    Ok(key)
}

/// The key of the flow whose packet an ICMP error quotes at `l3`: ours
/// went from the local end to the remote one, so the quoted source is
/// local and the quoted destination remote.
#[inline(always)]
fn quoted_ipv4<F: Frame>(f: &F, l3: usize) -> Result<FlowKey, Counter> {
    let ip = get::<F, 20>(f, l3)?;
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return Err(Counter::PassOther);
    }
    let l4 = get::<F, ICMP_HLEN>(f, l3 + ihl)?;
    let mut key = FlowKey {
        family: FAMILY_IPV4,
        proto: ip[9],
        ..FlowKey::default()
    };
    match ip[9] {
        PROTO_TCP | PROTO_UDP => {
            key.local_port = [l4[0], l4[1]];
            key.remote_port = [l4[2], l4[3]];
        }
        PROTO_ICMP if l4[0] == ICMP_ECHO_REQUEST => key.local_port = [l4[4], l4[5]],
        _ => return Err(Counter::PassOther),
    }
    if_port_used(key.local_port)?;
    key.local_addr[..4].copy_from_slice(&ip[12..16]);
    key.remote_addr[..4].copy_from_slice(&ip[16..20]);
    Ok(key)
}

/// The key of an IPv6 TCP segment or UDP datagram, an echo reply, an
/// ICMPv6 error quoting one of ours, or a neighbour advertisement (target
/// → destination), behind at most [`MAX_EXT_HEADERS`] hop-by-hop, routing
/// or destination options headers. A fragment header (even a first
/// fragment's), AH, ESP, no next header, anything else: `PassOther`.
#[inline(always)]
fn ipv6_key<F: Frame>(f: &F, l3: usize) -> Result<FlowKey, Counter> {
    // Version, traffic class, flow label, payload length, next header, hop limit.
    let fixed = get::<F, 8>(f, l3)?;
    if fixed[0] >> 4 != 6 {
        return Err(Counter::PassOther);
    }
    let mut next = fixed[6];
    let mut offset = l3 + IPV6_HLEN;
    for _ in 0..MAX_EXT_HEADERS {
        if next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS {
            break;
        }
        // Next header, then the length in 8-byte units, not counting the first 8.
        let ext = get::<F, 2>(f, offset)?;
        next = ext[0];
        offset += (ext[1] as usize + 1) * 8;
    }
    let mut key = FlowKey {
        family: FAMILY_IPV6,
        proto: next,
        ..FlowKey::default()
    };
    match next {
        PROTO_TCP | PROTO_UDP => {
            let ports = get::<F, 4>(f, offset)?;
            key.local_port = [ports[2], ports[3]];
            if_port_used(key.local_port)?;
            key.remote_port = [ports[0], ports[1]];
            key.remote_addr = get::<F, 16>(f, l3 + 8)?;
        }
        PROTO_ICMPV6 => {
            let icmp = get::<F, ICMP_HLEN>(f, offset)?;
            match icmp[0] {
                ICMPV6_ECHO_REPLY => {
                    key.local_port = [icmp[4], icmp[5]];
                    if_port_used(key.local_port)?;
                    key.remote_addr = get::<F, 16>(f, l3 + 8)?;
                }
                ICMPV6_DEST_UNREACH | ICMPV6_PACKET_TOO_BIG | ICMPV6_TIME_EXCEEDED => {
                    return quoted_ipv6(f, offset + ICMP_HLEN);
                }
                ND_NEIGHBOR_ADVERT if icmp[1] == 0 => {
                    if_port_used([0, 0])?;
                    key.family = FAMILY_NDP;
                    key.proto = 0;
                    // The target address follows type, code, checksum, flags.
                    key.remote_addr = get::<F, 16>(f, offset + 8)?;
                }
                _ => return Err(Counter::PassOther),
            }
        }
        _ => return Err(Counter::PassOther),
    }
    key.local_addr = get::<F, 16>(f, l3 + 24)?;
    Ok(key)
}

/// The key of the flow whose packet an ICMPv6 error quotes at `l3` (see
/// [`quoted_ipv4`]); the quoted packet's L4 header must follow its fixed
/// header directly, as ours do.
#[inline(always)]
fn quoted_ipv6<F: Frame>(f: &F, l3: usize) -> Result<FlowKey, Counter> {
    // The fixed header and the L4 header's first 8 bytes in one read: at a
    // variable offset, a second read of bytes inside the first could be
    // merged by LLVM into a pointer the verifier no longer knows is in
    // bounds.
    let q = get::<F, { IPV6_HLEN + ICMP_HLEN }>(f, l3)?;
    if q[0] >> 4 != 6 {
        return Err(Counter::PassOther);
    }
    let l4 = IPV6_HLEN;
    let mut key = FlowKey {
        family: FAMILY_IPV6,
        proto: q[6],
        ..FlowKey::default()
    };
    match q[6] {
        PROTO_TCP | PROTO_UDP => {
            key.local_port = [q[l4], q[l4 + 1]];
            key.remote_port = [q[l4 + 2], q[l4 + 3]];
        }
        PROTO_ICMPV6 if q[l4] == ICMPV6_ECHO_REQUEST => key.local_port = [q[l4 + 4], q[l4 + 5]],
        _ => return Err(Counter::PassOther),
    }
    if_port_used(key.local_port)?;
    key.local_addr.copy_from_slice(&q[8..24]);
    key.remote_addr.copy_from_slice(&q[24..40]);
    Ok(key)
}

/// The key of an Ethernet/IPv4 ARP reply: sender → target.
#[inline(always)]
fn arp_key<F: Frame>(f: &F, l3: usize) -> Result<FlowKey, Counter> {
    let arp = get::<F, 28>(f, l3)?;
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, operation reply.
    if arp[..6] != [0, 1, 0x08, 0x00, 6, 4] || u16::from_be_bytes([arp[6], arp[7]]) != ARP_REPLY {
        return Err(Counter::PassOther);
    }
    if_port_used([0, 0])?;
    let mut key = FlowKey {
        family: FAMILY_ARP,
        ..FlowKey::default()
    };
    key.remote_addr[..4].copy_from_slice(&arp[14..18]);
    key.local_addr[..4].copy_from_slice(&arp[24..28]);
    Ok(key)
}

/// `N` bytes at `offset` of a frame's linear part `start..end`, if it is
/// long enough.
#[inline(always)]
fn linear<const N: usize>(start: usize, end: usize, offset: usize) -> Option<[u8; N]> {
    if start + offset + N > end {
        return None;
    }
    // SAFETY: bounds checked against data_end just above.
    Some(unsafe { core::ptr::read_unaligned((start + offset) as *const [u8; N]) })
}

#[inline(always)]
fn count(counter: Counter) {
    if let Some(value) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *value += 1 };
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
