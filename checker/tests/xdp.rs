//! The XDP program itself, fed crafted frames with BPF_PROG_TEST_RUN: it
//! drops only the frames of registered flows, passes everything else
//! (including every truncated or odd variant of a registered frame), copies
//! what it drops to the owner's ring, and counts its verdicts.

mod common;

use aya::maps::{ArrayOfMaps, HashMap, Map, MapData, PerCpuArray, RingBuf};
use aya::programs::{TestRun, TestRunOptions, Xdp, loaded_programs};
use aya_obj::programs::XdpAttachType;
use checker_common::{Counter, FlowKey, RING_SIZE};
use common::*;

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
/// A slot no check of this test's lab uses.
const SLOT: u32 = 255;
const LOCAL_PORT: u16 = 40000;

/// The lab LB's program, attached by `vipcheck xdp attach` and found by
/// its id (vipcheck pins nothing), and the ids of its maps.
fn attach(lab: &Lab) -> (Xdp, Vec<u32>) {
    let out = run(vipcheck(lab, &["xdp", "attach", LB_IFACE]));
    assert_eq!(out.code, 0, "{out:?}");
    // "eth0: vipcheck XDP program ID attached in skb mode..."
    let id: u32 = out
        .stdout
        .split_whitespace()
        .nth(4)
        .and_then(|id| id.parse().ok())
        .expect("program id in the attach output");
    let info = loaded_programs()
        .filter_map(Result::ok)
        .find(|program| program.id() == id)
        .expect("the attached program");
    let map_ids = info.map_ids().expect("map ids").expect("map ids");
    let program = Xdp::from_program_info(info, "vipcheck_xdp".into(), XdpAttachType::Interface)
        .expect("the program");
    (program, map_ids)
}

/// The map of the program named `name`.
fn map(map_ids: &[u32], name: &str) -> Map {
    let data = map_ids
        .iter()
        .map(|&id| MapData::from_id(id).expect("map by id"))
        .find(|data| data.info().expect("map info").name_as_str() == Some(name))
        .unwrap_or_else(|| panic!("no map {name}"));
    Map::from_map_data(data).expect("map")
}

/// Ethernet (+ VLAN tag) + IPv4 (+ options) + 20-byte TCP header + payload,
/// from the VIP's port 80 to the LB's LOCAL_PORT: a real server's reply.
fn reply(
    vlan: bool,
    ip_options: usize,
    protocol: u8,
    fragment_offset: u16,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x0b];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    }
    f.extend_from_slice(&[0x08, 0x00]);
    let ihl = 5 + ip_options / 4;
    let total = (ihl * 4 + 20 + payload.len()) as u16;
    f.push(0x40 | ihl as u8);
    f.push(0);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&(0x4000 | fragment_offset).to_be_bytes());
    f.extend_from_slice(&[64, protocol, 0, 0]);
    f.extend_from_slice(&VIP.octets());
    f.extend_from_slice(&LB_IP.octets());
    f.extend(std::iter::repeat_n(1u8, ip_options));
    f.extend_from_slice(&80u16.to_be_bytes());
    f.extend_from_slice(&LOCAL_PORT.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0x50, 0x12, 0xff, 0xff, 0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// An ARP frame (`operation` 1 request, 2 reply) from `sender` to `target`.
fn arp(operation: u8, sender: std::net::Ipv4Addr, target: std::net::Ipv4Addr) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x0b, 0x08, 0x06];
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, operation]);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x0b]);
    f.extend_from_slice(&sender.octets());
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x01]);
    f.extend_from_slice(&target.octets());
    f
}

fn verdict(program: &Xdp, frame: &[u8]) -> u32 {
    let result = program
        .test_run(TestRunOptions {
            data_in: Some(frame),
            ..TestRunOptions::default()
        })
        .expect("BPF_PROG_TEST_RUN");
    result.return_value
}

fn counters(maps: &[u32]) -> Vec<u64> {
    let map = PerCpuArray::<MapData, u64>::try_from(map(maps, "COUNTERS")).expect("counters");
    Counter::ALL
        .iter()
        .map(|&c| map.get(&(c as u32), 0).expect("counter").iter().sum())
        .collect()
}

/// Frames taken from the ring, without their record headers.
fn drain(ring: &mut RingBuf<MapData>) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(item) = ring.next() {
        let len = u32::from_ne_bytes(item[..4].try_into().unwrap()) as usize;
        frames.push(item[8..8 + len].to_vec());
    }
    frames
}

#[test]
fn drops_only_registered_flows_and_hands_them_over() {
    let lab = lab(Role::Backup);
    let (program, maps) = attach(&lab);

    // A ring for our slot, and the flows that point to it.
    let obj = aya_obj::Map::new_from_params(
        aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
        0,
        0,
        RING_SIZE,
        0,
    );
    let ring_data = MapData::create(obj, "test_ring", None).expect("ring");
    let mut rings = ArrayOfMaps::<MapData>::try_from(map(&maps, "RINGS")).expect("RINGS");
    rings.set(SLOT, &ring_data, 0).expect("insert ring");
    let mut ring = RingBuf::try_from(Map::RingBuf(ring_data)).expect("ring");
    let mut flows = HashMap::<MapData, FlowKey, u32>::try_from(map(&maps, "FLOWS")).expect("FLOWS");
    let key = FlowKey::ipv4(VIP.octets(), 80, LB_IP.octets(), LOCAL_PORT);
    flows.insert(key, SLOT, 0).expect("register flow");
    let arp_key = FlowKey::arp(OK_IP.octets(), LB_IP.octets());
    flows.insert(arp_key, SLOT, 0).expect("register arp");

    let before = counters(&maps);
    let ours = reply(false, 0, 6, 0, b"hello");
    let tagged = reply(true, 0, 6, 0, b"hello");
    let with_options = reply(false, 8, 6, 0, b"hello");
    let big = reply(false, 0, 6, 0, &vec![7u8; 9000]);
    for frame in [&ours, &tagged, &with_options, &big] {
        assert_eq!(
            verdict(&program, frame),
            XDP_DROP,
            "a registered flow's frame passed"
        );
    }
    assert_eq!(
        drain(&mut ring),
        vec![ours.clone(), tagged, with_options, big],
        "the ring holds the frames whole"
    );

    // Everything else passes, untouched and not copied.
    let mut other_port = ours.clone();
    other_port[37] ^= 1; // destination port
    let mut other_source = ours.clone();
    other_source[29] ^= 1; // source address
    let mut ipv6 = ours.clone();
    ipv6[12..14].copy_from_slice(&[0x86, 0xdd]);
    let passing = [
        other_port,
        other_source,
        ipv6,
        reply(false, 0, 17, 0, b"hello"), // UDP, same addresses and ports
        reply(false, 0, 6, 185, b"hello"), // a later fragment of our flow
        arp(1, OK_IP, LB_IP),             // a request, not a reply
        arp(2, NOVIP_IP, LB_IP),          // a reply nobody registered
    ];
    for frame in &passing {
        assert_eq!(
            verdict(&program, frame),
            XDP_PASS,
            "dropped a frame that is not ours: {frame:02x?}"
        );
    }
    // Every truncation of our frame short of the ports passes.
    let headers = 14 + 20 + 4;
    for len in 14..headers {
        assert_eq!(
            verdict(&program, &ours[..len]),
            XDP_PASS,
            "truncated to {len} bytes"
        );
    }
    assert!(drain(&mut ring).is_empty(), "a passed frame was copied");

    // A registered ARP reply is copied and still passed to the kernel.
    let reply_frame = arp(2, OK_IP, LB_IP);
    assert_eq!(verdict(&program, &reply_frame), XDP_PASS);
    assert_eq!(drain(&mut ring), vec![reply_frame]);

    // Exact for what only this test sends; at least for the passes, which
    // the lab's own traffic (IPv6 neighbour discovery...) adds to.
    let after = counters(&maps);
    let delta = |c: Counter| after[c as usize] - before[c as usize];
    assert_eq!(delta(Counter::Delivered), 4, "{before:?} → {after:?}");
    assert_eq!(delta(Counter::CopiedArp), 1, "{before:?} → {after:?}");
    // Other port, other source, the unregistered ARP reply.
    assert!(delta(Counter::PassMiss) >= 3, "{before:?} → {after:?}");
    // IPv6, UDP, fragment, ARP request, and the truncations.
    assert!(
        delta(Counter::PassOther) >= (4 + headers - 14) as u64,
        "{before:?} → {after:?}"
    );
    assert_eq!(
        delta(Counter::RingFull) + delta(Counter::Oversize) + delta(Counter::NoRing),
        0
    );

    // Unregistered: the same frame passes.
    flows.remove(&key).expect("unregister");
    assert_eq!(verdict(&program, &ours), XDP_PASS);

    // What every production frame pays, measured by the kernel (printed,
    // not asserted: timings belong to benchmarks).
    let per_frame = |frame: &[u8]| {
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat: 1_000_000,
                ..TestRunOptions::default()
            })
            .expect("BPF_PROG_TEST_RUN");
        result.duration.as_nanos()
    };
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "XDP per frame: TCP miss {} ns, non-IP {} ns",
        per_frame(&ours),
        per_frame(&arp(1, OK_IP, LB_IP))
    );
}
