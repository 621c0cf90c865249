//! The XDP program of vipcheck.
//!
//! It sees every frame that reaches the load balancer's interface, so the
//! path is short and bounded: Ethernet (+ one 802.1Q/802.1ad tag) → IPv4 →
//! TCP, UDP or ICMP, IPv6 (+ at most [`MAX_EXT_HEADERS`] hop-by-hop,
//! routing or destination options headers) → TCP, UDP or ICMPv6, an ARP
//! reply; one hash lookup. A TCP or UDP frame, an echo reply, or an ICMP
//! error quoting a packet of a registered check flow is copied to the ring
//! buffer of its owner's capture slot and dropped, so the kernel never
//! answers it (an RST, an ICMP port unreachable); a registered ARP reply or
//! neighbour advertisement is copied and passed; every other frame
//! (fragments, other ICMP, ICMPv6 and NDP, anything it does not
//! understand) is passed untouched.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_DROP, XDP_PASS},
    btf_maps::{ArrayOfMaps, HashMap, PerCpuArray, RingBuf},
    helpers::generated::{bpf_xdp_get_buff_len, bpf_xdp_load_bytes},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use aya_log_ebpf::warn;
use checker_common::{
    COUNTER_COUNT, Counter, FAMILY_ARP, FAMILY_IPV4, FAMILY_IPV6, FAMILY_NDP, FRAME_CLASSES,
    FRAME_HEADER_LEN, FlowKey, FlowOwner, MAX_FLOWS, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP,
    PROTO_UDP, RING_SIZE, SLOT_COUNT,
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
    let Some(key) = flow_key(&ctx) else {
        count(Counter::PassOther);
        return XDP_PASS;
    };
    // SAFETY: a plain u32 value, read once.
    let Some(&slot) = (unsafe { FLOWS.get(key) }) else {
        count(Counter::PassMiss);
        return XDP_PASS;
    };
    let counter = match RINGS.get(slot) {
        Some(ring) => copy(&ctx, ring),
        None => Counter::NoRing,
    };
    if counter == Counter::RingFull {
        // Rare: the owner stopped reading. Not per packet in normal operation.
        warn!(
            &ctx,
            "vipcheck: ring of slot {} full, dropped a frame", slot
        );
    }
    if key.family == FAMILY_ARP || key.family == FAMILY_NDP {
        // ARP replies and neighbour advertisements are the kernel's
        // business too: a copy only.
        count(Counter::CopiedArp);
        return XDP_PASS;
    }
    count(counter);
    XDP_DROP
}

/// Copies the whole frame into the smallest record class that holds it.
#[inline(always)]
fn copy(ctx: &XdpContext, ring: &SlotRing) -> Counter {
    // SAFETY: the helper only reads the context it is given.
    let len = unsafe { bpf_xdp_get_buff_len(ctx.ctx) } as usize;
    if len <= FRAME_CLASSES[0] {
        copy_into::<{ FRAME_CLASSES[0] }>(ctx, ring, len)
    } else if len <= FRAME_CLASSES[1] {
        copy_into::<{ FRAME_CLASSES[1] }>(ctx, ring, len)
    } else if len <= FRAME_CLASSES[2] {
        copy_into::<{ FRAME_CLASSES[2] }>(ctx, ring, len)
    } else if len <= FRAME_CLASSES[3] {
        copy_into::<{ FRAME_CLASSES[3] }>(ctx, ring, len)
    } else if len <= FRAME_CLASSES[4] {
        copy_into::<{ FRAME_CLASSES[4] }>(ctx, ring, len)
    } else {
        Counter::Oversize
    }
}

/// Copies `len` bytes (at most `MAX`) into a record of
/// `FRAME_HEADER_LEN + MAX` bytes of `ring`.
#[inline(always)]
fn copy_into<const MAX: usize>(ctx: &XdpContext, ring: &SlotRing, len: usize) -> Counter {
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
    // record after the header; the helper checks the source bounds itself.
    let ret = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            0,
            record.as_mut_ptr().add(FRAME_HEADER_LEN).cast(),
            len as u32,
        )
    };
    if ret != 0 {
        record.discard(0);
        return Counter::Oversize;
    }
    record.submit(0);
    Counter::Delivered
}

/// Parses Ethernet (+ one VLAN tag), then IPv4 or IPv6 and TCP (or an ARP
/// reply, or a neighbour advertisement) and returns the key of the flow a
/// reply belongs to: remote = source, local = destination.
#[inline(always)]
fn flow_key(ctx: &XdpContext) -> Option<FlowKey> {
    let start = ctx.data();
    let end = ctx.data_end();
    let mut l3 = ETH_HLEN;
    let mut ethertype = u16::from_be_bytes(bytes::<2>(start, end, 12)?);
    if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        ethertype = u16::from_be_bytes(bytes::<2>(start, end, 16)?);
        l3 += 4;
    }
    match ethertype {
        ETH_P_IP => ipv4_key(start, end, l3),
        ETH_P_IPV6 => ipv6_key(start, end, l3),
        ETH_P_ARP => arp_key(start, end, l3),
        _ => None,
    }
}

/// The key of an IPv4 TCP segment or UDP datagram (not a later fragment),
/// an echo reply, or an ICMP error quoting one of ours.
#[inline(always)]
fn ipv4_key(start: usize, end: usize, l3: usize) -> Option<FlowKey> {
    let ip = bytes::<20>(start, end, l3)?;
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    // Later fragments carry no L4 header: leave them to the kernel.
    let fragment_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    if ip[0] >> 4 != 4 || ihl < 20 || fragment_offset != 0 {
        return None;
    }
    let l4 = l3 + ihl;
    let mut key = FlowKey {
        family: FAMILY_IPV4,
        proto: ip[9],
        ..FlowKey::default()
    };
    match ip[9] {
        PROTO_TCP | PROTO_UDP => {
            let ports = bytes::<4>(start, end, l4)?;
            key.remote_port = [ports[0], ports[1]];
            key.local_port = [ports[2], ports[3]];
        }
        PROTO_ICMP => {
            let icmp = bytes::<ICMP_HLEN>(start, end, l4)?;
            match icmp[0] {
                ICMP_ECHO_REPLY => key.local_port = [icmp[4], icmp[5]],
                ICMP_DEST_UNREACH | ICMP_TIME_EXCEEDED => {
                    return quoted_ipv4(start, end, l4 + ICMP_HLEN);
                }
                _ => return None,
            }
        }
        _ => return None,
    }
    key.remote_addr[..4].copy_from_slice(&ip[12..16]);
    key.local_addr[..4].copy_from_slice(&ip[16..20]);
    Some(key)
}

/// The key of the flow whose packet an ICMP error quotes at `l3`: ours
/// went from the local end to the remote one, so the quoted source is
/// local and the quoted destination remote.
#[inline(always)]
fn quoted_ipv4(start: usize, end: usize, l3: usize) -> Option<FlowKey> {
    let ip = bytes::<20>(start, end, l3)?;
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    if ip[0] >> 4 != 4 || ihl < 20 {
        return None;
    }
    let l4 = bytes::<ICMP_HLEN>(start, end, l3 + ihl)?;
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
        _ => return None,
    }
    key.local_addr[..4].copy_from_slice(&ip[12..16]);
    key.remote_addr[..4].copy_from_slice(&ip[16..20]);
    Some(key)
}

/// The key of an IPv6 TCP segment or UDP datagram, an echo reply, an
/// ICMPv6 error quoting one of ours, or a neighbour advertisement (target
/// → destination), behind at most [`MAX_EXT_HEADERS`] hop-by-hop, routing
/// or destination options headers. A fragment header (even a first
/// fragment's), AH, ESP, no next header, anything else: `None`.
#[inline(always)]
fn ipv6_key(start: usize, end: usize, l3: usize) -> Option<FlowKey> {
    // Version, traffic class, flow label, payload length, next header, hop limit.
    let fixed = bytes::<8>(start, end, l3)?;
    if fixed[0] >> 4 != 6 {
        return None;
    }
    let mut next = fixed[6];
    let mut offset = l3 + IPV6_HLEN;
    for _ in 0..MAX_EXT_HEADERS {
        if next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS {
            break;
        }
        // Next header, then the length in 8-byte units, not counting the first 8.
        let ext = bytes::<2>(start, end, offset)?;
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
            let ports = bytes::<4>(start, end, offset)?;
            key.remote_port = [ports[0], ports[1]];
            key.local_port = [ports[2], ports[3]];
            key.remote_addr = bytes::<16>(start, end, l3 + 8)?;
        }
        PROTO_ICMPV6 => {
            let icmp = bytes::<ICMP_HLEN>(start, end, offset)?;
            match icmp[0] {
                ICMPV6_ECHO_REPLY => {
                    key.local_port = [icmp[4], icmp[5]];
                    key.remote_addr = bytes::<16>(start, end, l3 + 8)?;
                }
                ICMPV6_DEST_UNREACH | ICMPV6_PACKET_TOO_BIG | ICMPV6_TIME_EXCEEDED => {
                    return quoted_ipv6(start, end, offset + ICMP_HLEN);
                }
                ND_NEIGHBOR_ADVERT if icmp[1] == 0 => {
                    key.family = FAMILY_NDP;
                    key.proto = 0;
                    // The target address follows type, code, checksum, flags.
                    key.remote_addr = bytes::<16>(start, end, offset + 8)?;
                }
                _ => return None,
            }
        }
        _ => return None,
    }
    key.local_addr = bytes::<16>(start, end, l3 + 24)?;
    Some(key)
}

/// The key of the flow whose packet an ICMPv6 error quotes at `l3` (see
/// [`quoted_ipv4`]); the quoted packet's L4 header must follow its fixed
/// header directly, as ours do.
#[inline(always)]
fn quoted_ipv6(start: usize, end: usize, l3: usize) -> Option<FlowKey> {
    // The fixed header and the L4 header's first 8 bytes in one read: at a
    // variable offset, a second read of bytes inside the first could be
    // merged by LLVM into a pointer the verifier no longer knows is in
    // bounds.
    let q = bytes::<{ IPV6_HLEN + ICMP_HLEN }>(start, end, l3)?;
    if q[0] >> 4 != 6 {
        return None;
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
        _ => return None,
    }
    key.local_addr.copy_from_slice(&q[8..24]);
    key.remote_addr.copy_from_slice(&q[24..40]);
    Some(key)
}

/// The key of an Ethernet/IPv4 ARP reply: sender → target.
#[inline(always)]
fn arp_key(start: usize, end: usize, l3: usize) -> Option<FlowKey> {
    let arp = bytes::<28>(start, end, l3)?;
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4, operation reply.
    if arp[..6] != [0, 1, 0x08, 0x00, 6, 4] || u16::from_be_bytes([arp[6], arp[7]]) != ARP_REPLY {
        return None;
    }
    let mut key = FlowKey {
        family: FAMILY_ARP,
        ..FlowKey::default()
    };
    key.remote_addr[..4].copy_from_slice(&arp[14..18]);
    key.local_addr[..4].copy_from_slice(&arp[24..28]);
    Some(key)
}

/// `N` bytes at `offset` of the frame, if the frame is long enough.
#[inline(always)]
fn bytes<const N: usize>(start: usize, end: usize, offset: usize) -> Option<[u8; N]> {
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
