//! The XDP program of vipcheck.
//!
//! It sees every frame that reaches the load balancer's interface, so the
//! path is short and bounded: Ethernet (+ one 802.1Q/802.1ad tag) → IPv4 →
//! TCP, IPv6 (+ at most [`MAX_EXT_HEADERS`] hop-by-hop, routing or
//! destination options headers) → TCP, an ARP reply or an IPv6 neighbour
//! advertisement; one hash lookup. A TCP frame of a registered check flow
//! is copied to the ring buffer of its owner's capture slot and dropped, so
//! the kernel never answers it with an RST; a registered ARP reply or
//! neighbour advertisement is copied and passed; every other frame
//! (fragments, other ICMPv6 and NDP, anything it does not understand) is
//! passed untouched.
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
    FRAME_HEADER_LEN, FlowKey, FlowOwner, MAX_FLOWS, RING_SIZE, SLOT_COUNT,
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
const IPPROTO_TCP: u8 = 6;
const ARP_REPLY: u16 = 2;
const IPV6_HLEN: usize = 40;
const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_ICMPV6: u8 = 58;
const ND_NEIGHBOR_ADVERT: u8 = 136;
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

/// The key of an IPv4 TCP segment (not a later fragment).
#[inline(always)]
fn ipv4_key(start: usize, end: usize, l3: usize) -> Option<FlowKey> {
    let ip = bytes::<20>(start, end, l3)?;
    let ihl = ((ip[0] & 0x0f) as usize) * 4;
    // Later fragments carry no TCP header: leave them to the kernel.
    let fragment_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    if ip[0] >> 4 != 4 || ihl < 20 || ip[9] != IPPROTO_TCP || fragment_offset != 0 {
        return None;
    }
    let ports = bytes::<4>(start, end, l3 + ihl)?;
    let mut key = FlowKey {
        family: FAMILY_IPV4,
        remote_port: [ports[0], ports[1]],
        local_port: [ports[2], ports[3]],
        ..FlowKey::default()
    };
    key.remote_addr[..4].copy_from_slice(&ip[12..16]);
    key.local_addr[..4].copy_from_slice(&ip[16..20]);
    Some(key)
}

/// The key of an IPv6 TCP segment, or of a neighbour advertisement (target
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
    let mut key = FlowKey::default();
    if next == IPPROTO_TCP {
        let ports = bytes::<4>(start, end, offset)?;
        key.family = FAMILY_IPV6;
        key.remote_port = [ports[0], ports[1]];
        key.local_port = [ports[2], ports[3]];
        key.remote_addr = bytes::<16>(start, end, l3 + 8)?;
    } else if next == IPPROTO_ICMPV6 {
        // Type, code, checksum, flags, target address.
        let icmp = bytes::<24>(start, end, offset)?;
        if icmp[0] != ND_NEIGHBOR_ADVERT || icmp[1] != 0 {
            return None;
        }
        key.family = FAMILY_NDP;
        key.remote_addr.copy_from_slice(&icmp[8..24]);
    } else {
        return None;
    }
    key.local_addr = bytes::<16>(start, end, l3 + 24)?;
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
