//! Types shared by the XDP program (`checker-ebpf`) and userspace (`checker`).
//!
//! Everything here is `#[repr(C)]` plain data: the kernel side reads and
//! writes these bytes through BPF maps and the ring buffer, userspace through
//! aya. Addresses and ports are kept in network byte order, exactly as they
//! appear on the wire, so the XDP fast path copies bytes and never swaps.
#![no_std]

/// Name of the XDP program in the object and in the kernel (at most 15 bytes).
pub const PROGRAM_NAME: &str = "vipcheck_xdp";
/// Name of the TC ingress program (the same capture, for an interface
/// whose XDP hook another program holds): same maps, same verdicts.
pub const TC_PROGRAM_NAME: &str = "vipcheck_tc";

/// Hash map: [`FlowKey`] → capture slot (`u32`) of the process that owns the flow.
pub const FLOWS_MAP: &str = "FLOWS";
/// Array of maps: capture slot → ring buffer. Rings are created on demand by
/// the first process that takes a slot and stay for later processes, so a
/// warm check changes no map-in-map entry (each such change makes the kernel
/// wait for an RCU grace period, several milliseconds).
pub const RINGS_MAP: &str = "RINGS";
/// Hash map: capture slot (`u32`) → [`FlowOwner`]: who holds the slot. Only
/// userspace uses it: taking a slot is an insert that fails if it exists.
pub const SLOTS_MAP: &str = "SLOTS";
/// Per-CPU array of `u64`, indexed by [`Counter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Array of `u64`, indexed by a local port in host order
/// ([`FlowKey::port_index`]): how many registered flows have that local
/// port (ARP and NDP keys count at 0). The program looks here before it
/// builds and hashes a key, so a frame to a port no check uses costs an
/// array lookup, not a hash of 40 bytes. Memory-mapped (BPF_F_MMAPABLE):
/// every process adds and subtracts with atomic operations on the shared
/// page, and only after it added does it insert its flow (and only after
/// it removed a flow does it subtract), so a count is never below the
/// flows it covers. A process killed between the two leaves a count one
/// too high: that port is hashed for nothing, never missed.
pub const PORTS_MAP: &str = "PORTS";
/// Entries of [`PORTS_MAP`]: every port.
pub const PORT_COUNT: u32 = 1 << 16;

/// Most flows registered at once on one interface (all processes
/// together): a daemon's `--parallel` flows beside hundreds of one-shot
/// checks, with room to spare (~2 MiB of kernel memory, preallocated).
pub const MAX_FLOWS: u32 = 16384;

/// Capture slots per interface: processes that check at the same time.
/// A slot's ring is created only when that many checks first run at once.
pub const SLOT_COUNT: u32 = 256;

/// Size in bytes of a slot's ring buffer (a power of two, page aligned),
/// and of the map-in-map template: a check's receive window is a fraction
/// of it.
pub const RING_SIZE: u32 = 1 << 18;

/// The slots from this index on have a ring of [`SMALL_RING_SIZE`]: a
/// one-shot tcp check (a handshake: a SYN-ACK, an ACK, a FIN) takes one of
/// them first. Mapping a ring's pages into a process and out again is
/// work in proportion to its size, paid by every one-shot check: 130 page
/// table entries for a ring of [`RING_SIZE`], 10 for a small one. The
/// kernel takes rings of any size in the map of rings (the template's
/// size binds only an array map).
pub const SMALL_RING_FIRST: u32 = 192;

/// Size in bytes of the rings of the slots from [`SMALL_RING_FIRST`] on:
/// room for sixty frames without payload at once.
pub const SMALL_RING_SIZE: u32 = 1 << 14;

/// Record size classes: a frame is copied into the smallest record that
/// holds it (the verifier needs a constant size per reservation). In generic
/// (skb) mode XDP runs after GRO, so a frame can be a merged super-frame of
/// up to 64 KiB; larger ones cannot be copied whole and count as `Oversize`.
/// The first class holds a frame without payload (SYN-ACK, ACK, FIN, RST,
/// ARP, NDP), the most frequent by far: one engine runs hundreds of flows
/// over one ring, and their handshakes must fit it at once (a 2 KiB record
/// each would fill a ring with about 127 SYN-ACKs).
pub const FRAME_CLASSES: [usize; 5] = [256, 2048, 8192, 32768, 65536];

/// Kind of a [`FlowKey`]: ARP replies from `remote_addr` to `local_addr`
/// (ports zero). They are copied to the owner and still passed to the kernel.
pub const FAMILY_ARP: u8 = 1;
/// Kind of a [`FlowKey`]: IPv6 neighbour advertisements whose target is
/// `remote_addr` (the real server's own address) sent to `local_addr` (ours,
/// the source of our solicitation); ports zero. Like ARP replies, they are
/// copied to the owner and still passed to the kernel.
pub const FAMILY_NDP: u8 = 2;
/// Address family of a [`FlowKey`].
pub const FAMILY_IPV4: u8 = 4;
/// Address family of a [`FlowKey`].
pub const FAMILY_IPV6: u8 = 6;

/// [`FlowKey::proto`] of a TCP flow.
pub const PROTO_TCP: u8 = 6;
/// [`FlowKey::proto`] of a UDP flow.
pub const PROTO_UDP: u8 = 17;
/// [`FlowKey::proto`] of an ICMP echo flow (IPv4): the local port is the
/// echo identifier, the remote port zero.
pub const PROTO_ICMP: u8 = 1;
/// [`FlowKey::proto`] of an ICMPv6 echo flow, as [`PROTO_ICMP`].
pub const PROTO_ICMPV6: u8 = 58;

/// One check flow, as seen in the real server's reply: the remote end is the
/// VIP and the service port, the local end our address and reserved port
/// (for an ICMP echo flow: the echo identifier), and the L4 protocol, so
/// that a UDP flow and a TCP flow on the same ports never collide.
///
/// An ICMP or ICMPv6 error (destination unreachable, time exceeded, packet
/// too big) has the key of the flow whose packet it quotes, read from the
/// quoted header: it goes to that flow.
///
/// IPv4 addresses occupy the first four bytes of the 16-byte fields, the rest
/// is zero; IPv6 addresses fill them.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub remote_addr: [u8; 16],
    pub local_addr: [u8; 16],
    /// Network byte order.
    pub remote_port: [u8; 2],
    /// Network byte order.
    pub local_port: [u8; 2],
    pub family: u8,
    /// [`PROTO_TCP`], [`PROTO_UDP`], [`PROTO_ICMP`] or [`PROTO_ICMPV6`];
    /// zero for ARP and NDP keys.
    pub proto: u8,
    pub _pad: [u8; 2],
}

impl FlowKey {
    /// Key of an IPv4 TCP flow; addresses as octets, ports in host order.
    pub fn ipv4(remote: [u8; 4], remote_port: u16, local: [u8; 4], local_port: u16) -> Self {
        let mut key = FlowKey {
            family: FAMILY_IPV4,
            proto: PROTO_TCP,
            remote_port: remote_port.to_be_bytes(),
            local_port: local_port.to_be_bytes(),
            ..FlowKey::default()
        };
        key.remote_addr[..4].copy_from_slice(&remote);
        key.local_addr[..4].copy_from_slice(&local);
        key
    }

    /// Key of an IPv6 TCP flow; addresses as octets, ports in host order.
    pub fn ipv6(remote: [u8; 16], remote_port: u16, local: [u8; 16], local_port: u16) -> Self {
        FlowKey {
            remote_addr: remote,
            local_addr: local,
            remote_port: remote_port.to_be_bytes(),
            local_port: local_port.to_be_bytes(),
            family: FAMILY_IPV6,
            proto: PROTO_TCP,
            _pad: [0; 2],
        }
    }

    /// The entry of [`PORTS_MAP`] that counts this key: its local port in
    /// host order (0 for ARP and NDP keys; the echo identifier of an echo
    /// flow).
    pub fn port_index(&self) -> u32 {
        u16::from_be_bytes(self.local_port) as u32
    }

    /// The same flow over another L4 protocol ([`PROTO_UDP`], ...).
    #[must_use]
    pub fn with_proto(self, proto: u8) -> Self {
        FlowKey { proto, ..self }
    }

    /// Key of the ARP replies of `remote` to `local`.
    pub fn arp(remote: [u8; 4], local: [u8; 4]) -> Self {
        FlowKey {
            family: FAMILY_ARP,
            proto: 0,
            ..FlowKey::ipv4(remote, 0, local, 0)
        }
    }

    /// Key of the neighbour advertisements for `remote` (their target
    /// address: the real server's own) sent to `local` (ours).
    pub fn ndp(remote: [u8; 16], local: [u8; 16]) -> Self {
        FlowKey {
            family: FAMILY_NDP,
            proto: 0,
            ..FlowKey::ipv6(remote, 0, local, 0)
        }
    }
}

// The layout both sides agree on: 16 + 16 + 2 + 2 + 1 + 1 + 2 bytes, no hidden padding.
const _: () = assert!(core::mem::size_of::<FlowKey>() == 40);

/// Who holds a capture slot, so that a later process can tell a live owner
/// from a dead one and free the slot and flows of processes that were killed.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowOwner {
    /// Process id (in the initial PID namespace view of the registering process).
    pub pid: u32,
    pub _pad: u32,
    /// Start time of that process in clock ticks since boot (field 22 of
    /// `/proc/PID/stat`): tells a reused pid from the original owner.
    pub start_time: u64,
    /// `CLOCK_BOOTTIME` in nanoseconds after which the entry is stale even if
    /// its owner still runs (an owner in another PID namespace cannot be seen).
    pub expires_ns: u64,
    /// Inode of the owner's PID namespace: `pid` means something only there.
    pub pid_ns: u64,
}

/// Header of each ring-buffer record; the frame's bytes follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of the frame copied after this header.
    pub len: u32,
    pub _pad: u32,
}

/// Size of [`FrameHeader`] in a record.
pub const FRAME_HEADER_LEN: usize = core::mem::size_of::<FrameHeader>();

/// The XDP program's verdict counters (indices into [`COUNTERS_MAP`]).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Nothing a flow can own: not TCP, UDP, an ICMP or ICMPv6 echo reply
    /// or error, an ARP reply or a neighbour advertisement (ARP requests,
    /// other ICMP, ICMPv6 and NDP, fragments, IPv6 behind an extension
    /// header it does not skip, anything malformed or truncated): passed
    /// to the kernel.
    PassOther = 0,
    /// TCP or UDP (IPv4 or IPv6), an echo reply, an ICMP error, an ARP
    /// reply or a neighbour advertisement, but not of a registered flow
    /// (most of them told by the local port alone, see [`PORTS_MAP`]):
    /// passed to the kernel.
    PassMiss = 1,
    /// A registered flow's frame, copied to its owner and dropped.
    Delivered = 2,
    /// A registered flow's frame, dropped because its owner's ring was full.
    RingFull = 3,
    /// A registered flow's frame, dropped because it exceeds the largest
    /// record (or could not be copied).
    Oversize = 4,
    /// A registered ARP reply or neighbour advertisement (IPv6), copied to
    /// its owner and passed to the kernel. (Named `pass_copied_arp` for
    /// both: NDP is IPv6's ARP.)
    CopiedArp = 5,
    /// A registered flow whose slot has no ring: dropped.
    NoRing = 6,
}

/// Number of [`Counter`]s.
pub const COUNTER_COUNT: u32 = 7;

impl Counter {
    pub const ALL: [Counter; COUNTER_COUNT as usize] = [
        Counter::PassOther,
        Counter::PassMiss,
        Counter::Delivered,
        Counter::RingFull,
        Counter::Oversize,
        Counter::CopiedArp,
        Counter::NoRing,
    ];

    /// Name used by `vipcheck xdp status`.
    pub fn name(self) -> &'static str {
        match self {
            Counter::PassOther => "pass_other",
            Counter::PassMiss => "pass_miss",
            Counter::Delivered => "drop_delivered",
            Counter::RingFull => "drop_ring_full",
            Counter::Oversize => "drop_oversize",
            Counter::CopiedArp => "pass_copied_arp",
            Counter::NoRing => "drop_no_ring",
        }
    }
}

// unsafe: aya's Pod, a promise about the types' layout.
#[cfg(feature = "user")]
#[allow(unsafe_code)]
mod pod {
    // SAFETY: plain #[repr(C)] data with explicit padding fields, no
    // references; every bit pattern is a valid value.
    unsafe impl aya::Pod for super::FlowKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FlowOwner {}
}
