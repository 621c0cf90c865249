//! Safety of the LB under load and abuse, in real labs: the XDP program
//! never takes a frame that is not a check flow's, hundreds of one-shot
//! checks at once do not disturb each other nor a running daemon, and
//! processes killed at any moment leave nothing that changes a later
//! verdict. Counts are asserted; times are only printed.

// unsafe: signals and rlimits of the processes under test.
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;
use xtask::lab::{Background, HTTPS_PORT, VIP6};

/// Where the daemons of these tests serve /metrics, in the LB's namespace
/// (each lab has its own loopback).
const METRICS_ADDR: &str = "127.0.0.1:9187";

// ---------------------------------------------------------------------------
// Helpers: scratch files, children killed on drop, metrics, nft counters,
// the XDP program's flows and slots.

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        use std::sync::atomic::AtomicU32;
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vck-safety-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Children of this test, SIGKILLed (by pid) and reaped on drop if still
/// running: nothing outlives a failing test.
#[derive(Default)]
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// The output of a child already waited for, or waits for it.
fn finish(child: &mut Child) -> Run {
    use std::io::Read;
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    let status = child.wait().expect("wait");
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr,
        elapsed: Duration::ZERO,
    }
}

fn spawn_piped(mut cmd: Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vipcheck")
}

/// A tiny deterministic generator (xorshift64*), seeded from the clock
/// unless `VCK_SEED` is set; the seed is printed to replay a run.
struct Rng(u64);

impl Rng {
    fn new(test: &str) -> Rng {
        let seed = std::env::var("VCK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        println!("{test}: seed {seed} (VCK_SEED={seed} replays it)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// `vipcheck daemon ARGS` in the LB's namespace, its stderr in a file;
/// stopped by pid when dropped (the lab's [`Background`]).
struct Daemon<'lab> {
    process: Background<'lab>,
    log: PathBuf,
}

impl<'lab> Daemon<'lab> {
    fn start(lab: &'lab Lab, args: &[&str], log: PathBuf) -> Daemon<'lab> {
        let mut cmd = vipcheck(lab, &["daemon"]);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        // nsenter execs vipcheck: the pid is the daemon's own.
        let process = lab.spawn(&mut cmd).expect("start vipcheck daemon");
        Daemon { process, log }
    }

    fn pid(&self) -> u32 {
        self.process.pid()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM; its exit status (SIGKILL after a grace period).
    fn terminate(self) -> std::process::ExitStatus {
        self.process.stop().expect("stop the daemon")
    }
}

/// GET /metrics from the LB's namespace; `None` while nothing answers.
fn scrape(lab: &Lab) -> Option<Metrics> {
    use prometheus_parse::Scrape;
    let out = lab
        .command(lab.lb_ns(), "curl")
        // Its own port from outside the ephemeral range, which a test may cut.
        .args(["-sS", "--fail", "-m", "5", "--local-port", "20000-30000"])
        .arg(format!("http://{METRICS_ADDR}/metrics"))
        .output()
        .expect("curl");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).expect("UTF-8 metrics");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("text format");
    Some(Metrics { text, scrape })
}

struct Metrics {
    text: String,
    scrape: prometheus_parse::Scrape,
}

impl Metrics {
    /// (labels, value) of every sample of `name`.
    fn samples(&self, name: &str) -> Vec<(HashMap<String, String>, f64)> {
        use prometheus_parse::Value;
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter_map(|s| {
                let (Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value)) = s.value
                else {
                    return None;
                };
                let labels = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                Some((labels, value))
            })
            .collect()
    }

    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name)
            .iter()
            .filter(|(l, _)| {
                labels
                    .iter()
                    .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, v)| v)
            .sum::<f64>()
            + 0.0
    }

    /// `vipcheck_target_up` by (real, vip, check).
    fn up(&self) -> HashMap<(String, String, String), f64> {
        self.samples("vipcheck_target_up")
            .into_iter()
            .map(|(l, v)| ((l["real"].clone(), l["vip"].clone(), l["check"].clone()), v))
            .collect()
    }
}

/// Polls `f` every 50 ms until it returns `Some`, at most `timeout`.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The packets of every `counter ... comment "NAME"` of an nftables table
/// (`family table`), by NAME.
fn nft_counters(lab: &Lab, ns: &str, family: &str, table: &str) -> HashMap<String, u64> {
    let listing = sh(lab, ns, "nft", &["list", "table", family, table]);
    let mut counters = HashMap::new();
    for line in listing.lines() {
        let Some(name) = line
            .split_once("comment \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(name, _)| name)
        else {
            continue;
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(at) = words.iter().position(|w| *w == "packets") {
            let packets: u64 = words[at + 1].parse().expect("packet count");
            *counters.entry(name.to_string()).or_insert(0) += packets;
        }
    }
    counters
}

/// A live flow as `vipcheck xdp status` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct FlowLine {
    /// `arp `, `ndp ` or empty (TCP).
    kind: String,
    remote: String,
    local: String,
    pid: Option<u32>,
}

/// The flows `vipcheck xdp status eth0` lists:
/// `    [kind ]REMOTE > LOCAL (slot N, pid P)`.
fn flow_lines(lab: &Lab) -> Vec<FlowLine> {
    let out = run(vipcheck(lab, &["xdp", "status", LB_IFACE]));
    assert_eq!(out.code, 0, "xdp status: {out:?}");
    parse_flow_lines(&out.stdout)
}

fn parse_flow_lines(status: &str) -> Vec<FlowLine> {
    status
        .lines()
        .filter(|l| l.starts_with("    ") && l.contains(" > "))
        .filter_map(|l| {
            let l = l.trim();
            let (kind, l) = match l.get(..4) {
                Some(k @ ("arp " | "ndp ")) => (k.to_string(), &l[4..]),
                _ => (String::new(), l),
            };
            let (remote, rest) = l.split_once(" > ")?;
            let (local, owner) = rest.split_once(" (")?;
            let pid = owner
                .split_once("pid ")
                .and_then(|(_, p)| p.trim_end_matches(')').parse().ok());
            Some(FlowLine {
                kind,
                remote: remote.to_string(),
                local: local.to_string(),
                pid,
            })
        })
        .collect()
}

/// The capture slots of the LB's program and their owners, read from its
/// SLOTS map (its id from `vipcheck xdp status`).
fn slot_owners(lab: &Lab) -> Vec<(u32, checker_common::FlowOwner)> {
    use aya::maps::{HashMap as BpfHash, Map, MapData};
    let out = run(vipcheck(lab, &["xdp", "status", LB_IFACE]));
    assert_eq!(out.code, 0, "xdp status: {out:?}");
    let id: u32 = out
        .stdout
        .split_once("SLOTS id ")
        .and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no SLOTS map id in {out:?}"));
    let map = Map::from_map_data(MapData::from_id(id).expect("SLOTS by id")).expect("map");
    let slots = BpfHash::<MapData, u32, checker_common::FlowOwner>::try_from(map).expect("SLOTS");
    slots.iter().filter_map(Result::ok).collect()
}

/// The ports the LB's program counts flows of (its PORTS map, by id from
/// `vipcheck xdp status`), with their counts.
fn port_counts(lab: &Lab) -> Vec<(u32, u64)> {
    use aya::maps::{Array, Map, MapData};
    let out = run(vipcheck(lab, &["xdp", "status", LB_IFACE]));
    assert_eq!(out.code, 0, "xdp status: {out:?}");
    let id: u32 = out
        .stdout
        .split_once("PORTS id ")
        .and_then(|(_, rest)| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no PORTS map id in {out:?}"));
    let map = Map::from_map_data(MapData::from_id(id).expect("PORTS by id")).expect("map");
    let ports = Array::<MapData, u64>::try_from(map).expect("PORTS");
    ports
        .iter()
        .enumerate()
        .filter_map(|(port, n)| Some((port as u32, n.ok()?)))
        .filter(|&(_, n)| n != 0)
        .collect()
}

/// Whether process `pid` runs (exists and is not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let state = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .next()?
                .to_string();
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// `vipcheck CHECK [extra...] eth0 RS VIP PORT [lab.example /]`.
fn check_cmd(lab: &Lab, check: &str, rs: IpAddr, vip: IpAddr, extra: &[&str]) -> Command {
    let port = if check == "https" { HTTPS_PORT } else { 80 };
    let (rs, vip, port) = (rs.to_string(), vip.to_string(), port.to_string());
    let mut args = vec![check];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[LB_IFACE, &rs, &vip, &port]);
    if check != "tcp" {
        args.extend_from_slice(&["lab.example", "/"]);
    }
    vipcheck(lab, &args)
}

// ---------------------------------------------------------------------------
// 1. Foreign traffic is never dropped.

/// Raw Ethernet frames, built byte by byte with valid checksums.
mod frames {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMP: u8 = 1;
    pub const ICMPV6: u8 = 58;
    pub const HOPOPTS: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const DSTOPTS: u8 = 60;
    pub const RST: u8 = 0x04;
    pub const ACK: u8 = 0x10;

    /// One's-complement sum of `data` added to `sum`.
    fn add(mut sum: u32, data: &[u8]) -> u32 {
        for chunk in data.chunks(2) {
            let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
        }
        sum
    }

    fn fold(mut sum: u32) -> u16 {
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    pub fn checksum(data: &[u8]) -> u16 {
        fold(add(0, data))
    }

    /// The checksum of an upper-layer message over its pseudo header.
    pub fn l4_checksum(src: IpAddr, dst: IpAddr, proto: u8, data: &[u8]) -> u16 {
        let len = data.len() as u32;
        let sum = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                let sum = add(add(0, &s.octets()), &d.octets());
                add(sum, &[0, proto, (len >> 8) as u8, len as u8])
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let sum = add(add(0, &s.octets()), &d.octets());
                add(add(sum, &len.to_be_bytes()), &[0, 0, 0, proto])
            }
            _ => unreachable!("one family"),
        };
        fold(add(sum, data))
    }

    /// RFC 1624: the checksum after a 16-bit word changed from `old` to `new`.
    pub fn replace(csum: u16, old: u16, new: u16) -> u16 {
        let sum = u32::from(!csum) + u32::from(!old) + u32::from(new);
        fold(sum)
    }

    /// An Ethernet header, with the VLAN tags (TPID, TCI) given.
    pub fn eth(dst: [u8; 6], src: [u8; 6], tags: &[(u16, u16)], ethertype: u16) -> Vec<u8> {
        let mut f = Vec::with_capacity(128);
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        for (tpid, tci) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&tci.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f
    }

    /// A TCP segment (20-byte header) with its checksum.
    pub fn tcp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, flags: u8) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[..2].copy_from_slice(&sport.to_be_bytes());
        t[2..4].copy_from_slice(&dport.to_be_bytes());
        t[4..8].copy_from_slice(&0x1000_0001u32.to_be_bytes());
        if flags & ACK != 0 {
            t[8..12].copy_from_slice(&0x2000_0001u32.to_be_bytes());
        }
        t[12] = 0x50;
        t[13] = flags;
        t[14..16].copy_from_slice(&0xffffu16.to_be_bytes());
        let c = l4_checksum(src, dst, TCP, &t);
        t[16..18].copy_from_slice(&c.to_be_bytes());
        t
    }

    /// A UDP datagram with its checksum.
    pub fn udp(src: IpAddr, dst: IpAddr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = vec![0u8; 8];
        u[..2].copy_from_slice(&sport.to_be_bytes());
        u[2..4].copy_from_slice(&dport.to_be_bytes());
        u[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        u.extend_from_slice(payload);
        let c = l4_checksum(src, dst, UDP, &u);
        u[6..8].copy_from_slice(&c.to_be_bytes());
        u
    }

    /// An IPv4 packet: `options` bytes of NOP options, `frag` the flags
    /// and fragment offset field.
    #[allow(clippy::too_many_arguments)]
    pub fn ipv4(
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        ttl: u8,
        options: usize,
        frag: u16,
        id: u16,
        payload: &[u8],
    ) -> Vec<u8> {
        let hlen = 20 + options;
        let mut h = vec![1u8; hlen];
        h[0] = 0x40 | (hlen / 4) as u8;
        h[1] = 0;
        h[2..4].copy_from_slice(&((hlen + payload.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        h[6..8].copy_from_slice(&frag.to_be_bytes());
        h[8] = ttl;
        h[9] = proto;
        h[10..12].copy_from_slice(&[0, 0]);
        h[12..16].copy_from_slice(&src.octets());
        h[16..20].copy_from_slice(&dst.octets());
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(payload);
        h
    }

    /// An IPv6 packet with extension headers `ext` (kind, length in
    /// 8-byte units beyond the first 8) before `payload` of `proto`.
    pub fn ipv6(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        hop_limit: u8,
        ext: &[(u8, u8)],
        proto: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut headers = Vec::new();
        for (i, &(kind, units)) in ext.iter().enumerate() {
            let next = ext.get(i + 1).map_or(proto, |&(k, _)| k);
            let len = (usize::from(units) + 1) * 8;
            let mut h = vec![0u8; len];
            h[0] = next;
            match kind {
                // One PadN option fills them.
                HOPOPTS | DSTOPTS => {
                    h[1] = units;
                    h[2] = 1;
                    h[3] = (len - 4) as u8;
                }
                // Type 0, no segment left: the kernel goes on to the next header.
                ROUTING => h[1] = units,
                // Offset 0, more fragments (a first fragment), id 1.
                FRAGMENT => {
                    h[3] = 1;
                    h[7] = 1;
                }
                _ => h[1] = units,
            }
            headers.extend_from_slice(&h);
        }
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&((headers.len() + payload.len()) as u16).to_be_bytes());
        p.push(ext.first().map_or(proto, |&(k, _)| k));
        p.push(hop_limit);
        p.extend_from_slice(&src.octets());
        p.extend_from_slice(&dst.octets());
        p.extend_from_slice(&headers);
        p.extend_from_slice(payload);
        p
    }

    /// An ARP packet (`op` 1 request, 2 reply).
    pub fn arp(op: u8, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
        let mut a = vec![0, 1, 0x08, 0x00, 6, 4, 0, op];
        a.extend_from_slice(&sha);
        a.extend_from_slice(&spa.octets());
        a.extend_from_slice(&tha);
        a.extend_from_slice(&tpa.octets());
        a
    }

    /// An ICMPv6 message of `msg_type` (code 0) with its checksum.
    pub fn icmpv6(src: Ipv6Addr, dst: Ipv6Addr, msg_type: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![msg_type, 0, 0, 0];
        m.extend_from_slice(body);
        let c = l4_checksum(IpAddr::V6(src), IpAddr::V6(dst), ICMPV6, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }

    /// A neighbour solicitation (135) or advertisement (136) body for
    /// `target`, with a link-layer address option (source 1, target 2).
    pub fn nd_body(advert: bool, target: Ipv6Addr, mac: [u8; 6]) -> Vec<u8> {
        let mut b = vec![if advert { 0x20 } else { 0 }, 0, 0, 0];
        b.extend_from_slice(&target.octets());
        b.extend_from_slice(&[if advert { 2 } else { 1 }, 1]);
        b.extend_from_slice(&mac);
        b
    }

    /// An ICMPv4 message with its checksum.
    pub fn icmp(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let mut m = vec![msg_type, 0, 0, 0];
        m.extend_from_slice(body);
        let c = checksum(&m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        m
    }
}

/// A frame the blaster sends every round, of one kind; `vary` rewrites a
/// 16-bit field each round (base + round % span), fixing a checksum.
struct Template {
    kind: usize,
    frame: Vec<u8>,
    vary: Option<Vary>,
}

struct Vary {
    field: usize,
    checksum: Option<usize>,
    base: u16,
    span: u16,
}

impl Template {
    fn set_round(&mut self, round: usize) {
        let Some(vary) = &self.vary else { return };
        let get = |f: &[u8], at: usize| u16::from_be_bytes([f[at], f[at + 1]]);
        let old = get(&self.frame, vary.field);
        let new = vary.base + (round % usize::from(vary.span)) as u16;
        self.frame[vary.field..vary.field + 2].copy_from_slice(&new.to_be_bytes());
        if let Some(at) = vary.checksum {
            let c = frames::replace(get(&self.frame, at), old, new);
            self.frame[at..at + 2].copy_from_slice(&c.to_be_bytes());
        }
    }
}

/// The kinds of frames sent, and how they are told apart by the counters:
/// each has its own source MAC (`02:00:c6:12:ee:KK`), except one sent
/// from `ok`'s own MAC with an IPv4 TTL of 7.
const KINDS: [&str; 18] = [
    "same-4-tuple-other-mac",
    "tcp4-to-vip",
    "tcp4-vip-reply-other-port",
    "tcp4-rs-to-lb-ports",
    "tcp4-rs-mac-to-lb-ports",
    "tcp6-to-vip",
    "tcp6-vip-reply-other-port",
    "tcp6-rs-to-lb-ports",
    "vlan-tagged",
    "ipv4-options",
    "ipv4-fragments",
    "ipv6-fragments",
    "ipv6-ext-headers",
    "truncated-malformed",
    "arp-not-ours",
    "ndp-not-ours",
    "non-ip",
    "udp-icmp",
];
/// The kind of frames that carry a live check flow's 4-tuple: by design
/// the flow's (the program keys on addresses and ports, not MACs).
const SAME_TUPLE: usize = 0;
const RS_MAC_KIND: usize = 4;
const RS_MAC_TTL: u8 = 7;

fn marker_mac(kind: usize) -> [u8; 6] {
    [0x02, 0x00, 0xc6, 0x12, 0xee, kind as u8]
}

fn mac_bytes(text: &str) -> [u8; 6] {
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    bytes.try_into().expect("six bytes")
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// The frames of one round: every kind, and one frame of the live flow's
/// 4-tuple (VIP:80 → LB:`flow_port`) from another MAC. Local ports of the
/// LB are kept below the ephemeral range (32768-60999), where no check
/// flow ever is.
fn templates(lab: &Lab, flow_port: u16) -> Vec<Template> {
    use frames::*;
    let lb_mac = mac_bytes(&lab.mac(Host::Lb));
    let ok_mac = mac_bytes(&lab.mac(Host::Ok));
    let bcast = [0xff; 6];
    let (vip, lb, ok) = (VIP, LB_IP, OK_IP);
    let (vip6, lb6, ok6) = (VIP6, Host::Lb.ip6(), Host::Ok.ip6());
    let client4 = |i: u8| Ipv4Addr::new(198, 18, 0, 150 + i);
    let client6 = |i: u16| Ipv6Addr::new(0xfd98, 0xc612, 0, 1, 0, 0, 0, 0x200 + i);
    let mut out = Vec::new();
    // An IP packet in an Ethernet frame; `vary` as (offset in the L4
    // header of the field, offset of the checksum, base, span).
    let mut push = |kind: usize,
                    src_mac: [u8; 6],
                    dst_mac: [u8; 6],
                    tags: &[(u16, u16)],
                    ethertype: u16,
                    packet: Vec<u8>,
                    l4_at: Option<usize>,
                    vary: Option<(usize, Option<usize>, u16, u16)>| {
        let mut frame = eth(dst_mac, src_mac, tags, ethertype);
        let l3 = frame.len();
        frame.extend_from_slice(&packet);
        let vary = vary.map(|(field, checksum, base, span)| {
            let at = l3 + l4_at.unwrap_or(0);
            Vary {
                field: at + field,
                checksum: checksum.map(|c| at + c),
                base,
                span,
            }
        });
        out.push(Template { kind, frame, vary });
    };
    let v4 = IpAddr::V4;
    let v6 = IpAddr::V6;
    // TCP ports: source (0), destination (2); checksum at 16.
    let sport = |base: u16| Some((0, Some(16), base, 3000));
    let dport = |base: u16| Some((2, Some(16), base, 2000));

    // The live flow's 4-tuple from another MAC (RST without ACK: ignored
    // by a connection in SYN-SENT).
    let t = tcp(v4(vip), v4(lb), 80, flow_port, RST);
    let m = marker_mac(SAME_TUPLE);
    push(
        SAME_TUPLE,
        m,
        lb_mac,
        &[],
        0x0800,
        ipv4(vip, lb, TCP, 64, 0, 0x4000, 1, &t),
        Some(20),
        None,
    );

    // Clients' RSTs to the VIP (not local on a backup LB: not forwarded).
    let k = 1;
    for i in 0..10u8 {
        let base = 1024 + u16::from(i) * 3000;
        let t = tcp(v4(client4(i)), v4(vip), base, 80, RST);
        let p = ipv4(client4(i), vip, TCP, 64, 0, 0x4000, 7, &t);
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x0800,
            p,
            Some(20),
            sport(base),
        );
    }
    // Replies from the VIP's port to local ports that no flow has.
    let k = 2;
    for i in 0..8u16 {
        let base = 1024 + i * 2000;
        let t = tcp(v4(vip), v4(lb), 80 + i % 2 * 363, base, RST | ACK);
        let p = ipv4(vip, lb, TCP, 64, 0, 0x4000, 9, &t);
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x0800,
            p,
            Some(20),
            dport(base),
        );
    }
    // A real server's own address to other local ports of the LB.
    let k = 3;
    for i in 0..8u16 {
        let base = 1024 + i * 2000;
        let t = tcp(v4(ok), v4(lb), 80 + i, base, RST);
        let p = ipv4(ok, lb, TCP, 64, 0, 0x4000, 11, &t);
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x0800,
            p,
            Some(20),
            dport(base),
        );
    }
    // The same from the real server's own MAC (told apart by the TTL).
    let k = RS_MAC_KIND;
    for i in 0..4u16 {
        let base = 17024 + i * 2000;
        let t = tcp(v4(ok), v4(lb), 80, base, RST | ACK);
        let p = ipv4(ok, lb, TCP, RS_MAC_TTL, 0, 0x4000, 13, &t);
        push(k, ok_mac, lb_mac, &[], 0x0800, p, Some(20), dport(base));
    }
    // IPv6: the same three.
    let k = 5;
    for i in 0..8u16 {
        let base = 1024 + i * 3000;
        let t = tcp(v6(client6(i)), v6(vip6), base, 80, RST);
        let p = ipv6(client6(i), vip6, 64, &[], TCP, &t);
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x86dd,
            p,
            Some(40),
            sport(base),
        );
    }
    let k = 6;
    for i in 0..6u16 {
        let base = 1024 + i * 2000;
        let t = tcp(v6(vip6), v6(lb6), 80 + i % 2 * 363, base, RST | ACK);
        let p = ipv6(vip6, lb6, 64, &[], TCP, &t);
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x86dd,
            p,
            Some(40),
            dport(base),
        );
    }
    let k = 7;
    for i in 0..6u16 {
        let base = 17024 + i * 2000;
        let t = tcp(v6(ok6), v6(lb6), 80 + i, base, RST);
        let p = ipv6(ok6, lb6, 64, &[], TCP, &t);
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x86dd,
            p,
            Some(40),
            dport(base),
        );
    }
    // VLAN tags: 802.1Q, priority-only, 802.1ad, QinQ; IPv4 and IPv6.
    let k = 8;
    let tagged: [&[(u16, u16)]; 8] = [
        &[(0x8100, 100)],
        &[(0x8100, 0x2000)], // priority 1, VLAN 0
        &[(0x8100, 4094)],
        &[(0x88a8, 7)],
        &[(0x88a8, 7), (0x8100, 100)],
        &[(0x8100, 100), (0x8100, 200)],
        &[(0x8100, 100)],
        &[(0x88a8, 8)],
    ];
    for (i, tags) in tagged.iter().enumerate() {
        let base = 1024 + i as u16 * 2000;
        if i < 6 {
            let t = tcp(v4(vip), v4(lb), 80, base, RST | ACK);
            let p = ipv4(vip, lb, TCP, 64, 0, 0x4000, 15, &t);
            push(
                k,
                marker_mac(k),
                lb_mac,
                tags,
                0x0800,
                p,
                Some(20),
                dport(base),
            );
        } else {
            let t = tcp(v6(vip6), v6(lb6), 80, base, RST | ACK);
            let p = ipv6(vip6, lb6, 64, &[], TCP, &t);
            push(
                k,
                marker_mac(k),
                lb_mac,
                tags,
                0x86dd,
                p,
                Some(40),
                dport(base),
            );
        }
    }
    // IPv4 options (NOP), up to the longest header (60 bytes).
    let k = 9;
    for (i, options) in [4usize, 8, 12, 20, 40, 40].into_iter().enumerate() {
        let base = 1024 + i as u16 * 2000;
        let dst = if i == 5 { vip } else { lb };
        let t = tcp(v4(vip), v4(dst), 80, base, RST | ACK);
        let p = ipv4(vip, dst, TCP, 64, options, 0x4000, 17, &t);
        let l4 = 20 + options;
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x0800,
            p,
            Some(l4),
            dport(base),
        );
    }
    // IPv4 fragments: first fragments holding a TCP header, later ones;
    // a new identification each round (the header checksum fixed).
    let k = 10;
    let frag_id = |base: u16| Some((4, Some(10), base, 30000));
    for i in 0..6u16 {
        let dst = if i < 3 { lb } else { vip };
        let (frag, proto, payload) = match i % 3 {
            0 => (0x2000, TCP, tcp(v4(vip), v4(dst), 80, 2000 + i, RST | ACK)),
            1 => (0x2000 | 185, TCP, vec![0x55; 24]),
            _ => (185, UDP, vec![0x66; 16]),
        };
        let p = ipv4(vip, dst, proto, 64, 0, frag, 0, &payload);
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x0800,
            p,
            Some(0),
            frag_id(i * 5000),
        );
    }
    // IPv6 fragments: first fragments with TCP, later ones; a new
    // identification (its low 16 bits) each round.
    let k = 11;
    for i in 0..6u16 {
        let dst = if i < 3 { lb6 } else { vip6 };
        let t = tcp(v6(vip6), v6(dst), 80, 2000 + i, RST | ACK);
        let mut p = ipv6(vip6, dst, 64, &[(FRAGMENT, 0)], TCP, &t);
        if i % 3 != 0 {
            p[40 + 2..40 + 4].copy_from_slice(&(100u16 << 3).to_be_bytes()); // offset 800, last
        }
        let vary = Some((40 + 6, None, i * 5000, 5000));
        push(k, marker_mac(k), lb_mac, &[], 0x86dd, p, Some(0), vary);
    }
    // IPv6 extension headers, up to one beyond what the program skips.
    let k = 12;
    let chains: [&[(u8, u8)]; 6] = [
        &[(HOPOPTS, 0)],
        &[(DSTOPTS, 1)],
        &[(HOPOPTS, 0), (ROUTING, 0)],
        &[(HOPOPTS, 0), (ROUTING, 0), (DSTOPTS, 0)],
        &[(DSTOPTS, 0); 4],
        &[(DSTOPTS, 0); 5],
    ];
    for (i, chain) in chains.iter().enumerate() {
        let base = 1024 + i as u16 * 2000;
        let t = tcp(v6(vip6), v6(lb6), 80, base, RST | ACK);
        let ext: usize = chain.iter().map(|&(_, u)| (usize::from(u) + 1) * 8).sum();
        let p = ipv6(vip6, lb6, 64, chain, TCP, &t);
        push(
            k,
            marker_mac(k),
            lb_mac,
            &[],
            0x86dd,
            p,
            Some(40 + ext),
            dport(base),
        );
    }
    // Truncated or malformed headers.
    let k = 13;
    let whole4 = ipv4(
        vip,
        lb,
        TCP,
        64,
        0,
        0x4000,
        19,
        &tcp(v4(vip), v4(lb), 80, 2000, RST),
    );
    let whole6 = ipv6(
        vip6,
        lb6,
        64,
        &[],
        TCP,
        &tcp(v6(vip6), v6(lb6), 80, 2000, RST),
    );
    let arp_whole = arp(2, marker_mac(k), client4(20), lb_mac, lb);
    let mut long_ihl = whole4.clone();
    long_ihl[0] = 0x4f; // claims 60 bytes of header
    let mut version4_in_6 = whole6.clone();
    version4_in_6[0] = 0x45;
    for (ethertype, packet) in [
        (0x0800, Vec::new()),            // an Ethernet header alone
        (0x0800, whole4[..20].to_vec()), // IPv4 without its TCP header
        (0x0800, whole4[..22].to_vec()), // half the ports
        (0x0800, long_ihl[..40].to_vec()),
        (0x86dd, whole6[..42].to_vec()),
        (0x86dd, version4_in_6),
        (0x0806, arp_whole[..20].to_vec()),
    ] {
        push(k, marker_mac(k), lb_mac, &[], ethertype, packet, None, None);
    }
    // ARP of other hosts: broadcast requests, replies nobody asked for.
    let k = 14;
    let m = marker_mac(k);
    for i in 0..2u8 {
        let req = arp(1, m, client4(30 + i), [0; 6], client4(40 + i));
        push(k, m, bcast, &[], 0x0806, req, None, None);
        let reply = arp(2, m, client4(50 + i), lb_mac, lb);
        push(k, m, lb_mac, &[], 0x0806, reply, None, None);
    }
    // NDP of other hosts: solicitations for others' addresses,
    // advertisements nobody asked for (unicast, and to all nodes).
    let k = 15;
    let m = marker_mac(k);
    let (a, b) = (client6(30), client6(31));
    let ns = icmpv6(a, lb6, 135, &nd_body(false, b, m));
    push(
        k,
        m,
        lb_mac,
        &[],
        0x86dd,
        ipv6(a, lb6, 255, &[], ICMPV6, &ns),
        None,
        None,
    );
    let low = b.octets();
    let mut solicited = [0u8; 16];
    solicited[..2].copy_from_slice(&[0xff, 0x02]);
    solicited[11..13].copy_from_slice(&[0x01, 0xff]);
    solicited[13..].copy_from_slice(&low[13..]);
    let solicited = Ipv6Addr::from(solicited);
    let ns = icmpv6(a, solicited, 135, &nd_body(false, b, m));
    let group_mac = [0x33, 0x33, 0xff, low[13], low[14], low[15]];
    push(
        k,
        m,
        group_mac,
        &[],
        0x86dd,
        ipv6(a, solicited, 255, &[], ICMPV6, &ns),
        None,
        None,
    );
    let na = icmpv6(b, lb6, 136, &nd_body(true, b, m));
    push(
        k,
        m,
        lb_mac,
        &[],
        0x86dd,
        ipv6(b, lb6, 255, &[], ICMPV6, &na),
        None,
        None,
    );
    let all_nodes: Ipv6Addr = "ff02::1".parse().unwrap();
    let na = icmpv6(b, all_nodes, 136, &nd_body(true, b, m));
    let all_mac = [0x33, 0x33, 0, 0, 0, 1];
    push(
        k,
        m,
        all_mac,
        &[],
        0x86dd,
        ipv6(b, all_nodes, 255, &[], ICMPV6, &na),
        None,
        None,
    );
    // Not IP: local experimental ethertypes (unicast and broadcast),
    // PPPoE discovery, an 802.3 frame with a length and LLC/SNAP.
    let k = 16;
    let m = marker_mac(k);
    push(k, m, lb_mac, &[], 0x88b5, vec![0xa5; 46], None, None);
    push(k, m, bcast, &[], 0x88b6, vec![0x5a; 46], None, None);
    push(
        k,
        m,
        lb_mac,
        &[],
        0x8863,
        vec![0x11, 0x09, 0, 0, 0, 0],
        None,
        None,
    );
    let mut llc = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x80, 0x9b];
    llc.resize(46, 0);
    push(k, m, lb_mac, &[], 46, llc, None, None);
    // UDP to the VIP, ICMP echo replies nobody asked for.
    let k = 17;
    let m = marker_mac(k);
    let u = udp(v4(client4(60)), v4(vip), 5353, 53, &[0; 20]);
    let p = ipv4(client4(60), vip, UDP, 64, 0, 0x4000, 21, &u);
    push(
        k,
        m,
        lb_mac,
        &[],
        0x0800,
        p,
        Some(20),
        Some((0, Some(6), 1024, 3000)),
    );
    let u = udp(v6(client6(60)), v6(vip6), 5353, 53, &[0; 20]);
    let p = ipv6(client6(60), vip6, 64, &[], UDP, &u);
    push(
        k,
        m,
        lb_mac,
        &[],
        0x86dd,
        p,
        Some(40),
        Some((0, Some(6), 1024, 3000)),
    );
    let e = icmp(0, &[0, 1, 0, 1, 0, 0, 0, 0]);
    push(
        k,
        m,
        lb_mac,
        &[],
        0x0800,
        ipv4(ok, lb, ICMP, 64, 0, 0x4000, 23, &e),
        None,
        None,
    );
    let e = icmpv6(ok6, lb6, 129, &[0, 1, 0, 1]);
    push(
        k,
        m,
        lb_mac,
        &[],
        0x86dd,
        ipv6(ok6, lb6, 64, &[], ICMPV6, &e),
        None,
        None,
    );
    out
}

/// Sends every template `rounds` times from `iface` of the namespace the
/// calling thread is in, through an AF_PACKET socket (sendmmsg, one
/// round per call); returns the frames the socket accepted, by kind.
fn blast(iface: &str, mut templates: Vec<Template>, rounds: usize) -> Vec<u64> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: plain socket(2); the fd is owned right after.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(fd >= 0, "AF_PACKET: {}", std::io::Error::last_os_error());
    // SAFETY: a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let name = std::ffi::CString::new(iface).unwrap();
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(ifindex, 0, "no interface {iface}");
    // SAFETY: sockaddr_ll is plain data.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: a valid sockaddr_ll of the size given.
    let ret = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(ret, 0, "bind: {}", std::io::Error::last_os_error());

    let mut sent = vec![0u64; KINDS.len()];
    let mut failed = vec![0u64; KINDS.len()];
    for round in 0..rounds {
        for t in &mut templates {
            t.set_round(round);
        }
        let mut iovecs: Vec<libc::iovec> = templates
            .iter()
            .map(|t| libc::iovec {
                iov_base: t.frame.as_ptr() as *mut libc::c_void,
                iov_len: t.frame.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; zeroed is valid.
        let mut msgs: Vec<libc::mmsghdr> = (0..iovecs.len())
            .map(|_| unsafe { std::mem::zeroed() })
            .collect();
        for (msg, iov) in msgs.iter_mut().zip(iovecs.iter_mut()) {
            msg.msg_hdr.msg_iov = iov;
            msg.msg_hdr.msg_iovlen = 1;
        }
        let mut at = 0;
        while at < msgs.len() {
            // SAFETY: the messages point at iovecs and frames that live
            // until the call returns.
            let n = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    msgs[at..].as_mut_ptr(),
                    (msgs.len() - at) as u32,
                    0,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // The message at `at` was refused: count it and go on.
                failed[templates[at].kind] += 1;
                at += 1;
                continue;
            }
            for t in &templates[at..at + n as usize] {
                sent[t.kind] += 1;
            }
            at += n as usize;
        }
    }
    let refused: u64 = failed.iter().sum();
    assert_eq!(refused, 0, "the socket refused frames: {failed:?}");
    sent
}

/// The counters that tell what reached the LB: XDP's, the switch's
/// (frames its port hands to the LB's veth, before XDP) and the LB's netdev
/// ingress hook (after XDP).
#[derive(Clone, Debug, PartialEq)]
struct Snapshot {
    xdp: Vec<(String, u64)>,
    wire: HashMap<String, u64>,
    kernel: HashMap<String, u64>,
}

impl Snapshot {
    /// Read until two readings in a row agree: no frame crossed meanwhile.
    fn settled(lab: &Lab) -> Snapshot {
        let read = || Snapshot {
            xdp: xdp_status(lab).0,
            wire: nft_counters(lab, lab.switch_ns(), "netdev", "vckwire"),
            kernel: nft_counters(lab, lab.lb_ns(), "netdev", "vckkernel"),
        };
        let mut last = read();
        for _ in 0..50 {
            std::thread::sleep(Duration::from_millis(50));
            let now = read();
            if now == last {
                return now;
            }
            last = now;
        }
        panic!("the counters never settled: {last:?}");
    }

    fn xdp(&self, name: &str) -> u64 {
        counter(&self.xdp, name)
    }

    fn xdp_total(&self) -> u64 {
        self.xdp.iter().map(|(_, v)| v).sum()
    }
}

/// nft rules counting each kind of frame, the real servers' own replies
/// through the VIP, and everything (each line after `prefix`).
fn counting_rules(lab: &Lab, prefix: &str) -> String {
    let reals = Host::REAL_SERVERS
        .iter()
        .map(|&h| lab.mac(h))
        .collect::<Vec<_>>()
        .join(", ");
    let mut rules = format!("{prefix}counter comment \"all\"\n");
    let _ = writeln!(
        rules,
        "{prefix}ether saddr {{ {reals} }} ip saddr {VIP} counter comment \"replies\""
    );
    let _ = writeln!(
        rules,
        "{prefix}ether saddr {{ {reals} }} ip6 saddr {VIP6} counter comment \"replies\""
    );
    for (kind, name) in KINDS.iter().enumerate() {
        if kind == RS_MAC_KIND {
            let _ = writeln!(
                rules,
                "{prefix}ether saddr {} ip ttl {RS_MAC_TTL} counter comment \"{name}\"",
                lab.mac(Host::Ok)
            );
        } else {
            let _ = writeln!(
                rules,
                "{prefix}ether saddr {} counter comment \"{name}\"",
                mac_text(marker_mac(kind))
            );
        }
    }
    rules
}

/// The LB's eth0 statistics: (rx packets, rx dropped).
fn lb_rx_stats(lab: &Lab) -> (u64, u64) {
    let json = sh(
        lab,
        lab.lb_ns(),
        "ip",
        &["-j", "-s", "link", "show", LB_IFACE],
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("ip -j");
    let rx = &v[0]["stats64"]["rx"];
    (
        rx["packets"].as_u64().unwrap_or(0),
        rx["dropped"].as_u64().unwrap_or(0),
    )
}

/// One-shot checks, one after the other, until `stop`: (what, expected
/// exit, exit, stdout) of each.
fn check_loop(lab: &Lab, stop: &AtomicBool) -> Vec<(String, i32, i32, String)> {
    let (ok4, novip4) = (IpAddr::V4(OK_IP), IpAddr::V4(NOVIP_IP));
    let (ok6, novip6) = (IpAddr::V6(Host::Ok.ip6()), IpAddr::V6(Host::NoVip.ip6()));
    let (vip4, vip6) = (IpAddr::V4(VIP), IpAddr::V6(VIP6));
    let plan = [
        ("tcp", ok4, vip4, 0),
        ("tcp", novip4, vip4, 1),
        ("http", ok4, vip4, 0),
        ("http", novip4, vip4, 1),
        ("tcp", ok6, vip6, 0),
        ("tcp", novip6, vip6, 1),
        ("http", ok6, vip6, 0),
    ];
    let mut results = Vec::new();
    for (check, rs, vip, expected) in plan.iter().cycle() {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Generous for the healthy ones (the machine is busy), short for
        // the ones that wait for nothing.
        let timeout = if *expected == 0 { "5000" } else { "300" };
        let out = run(check_cmd(lab, check, *rs, *vip, &["-t", timeout]));
        results.push((
            format!("{check} {rs}"),
            *expected,
            out.code,
            out.stdout.trim().to_string(),
        ));
    }
    results
}

/// Daemon targets: ok (tcp, http, IPv6 tcp), novip and closed (tcp).
fn small_targets(interval_ms: u32) -> String {
    format!(
        "[defaults]\niface = \"{LB_IFACE}\"\ntimeout_ms = 3000\ninterval_ms = {interval_ms}\n\n\
         [[vip]]\naddress = \"{VIP}\"\nport = 80\ncheck = \"tcp\"\n\
         [[vip.real_server]]\naddress = \"{OK_IP}\"\n\
         [[vip.real_server]]\naddress = \"{NOVIP_IP}\"\ntimeout_ms = 500\n\
         [[vip.real_server]]\naddress = \"{CLOSED_IP}\"\n\n\
         [[vip]]\naddress = \"{VIP}\"\nport = 80\ncheck = \"http\"\nhost = \"lab.example\"\npath = \"/\"\n\
         [[vip.real_server]]\naddress = \"{OK_IP}\"\n\n\
         [[vip]]\naddress = \"{VIP6}\"\nport = 80\ncheck = \"tcp\"\n\
         [[vip.real_server]]\naddress = \"{}\"\n",
        Host::Ok.ip6()
    )
}

/// The expected damped state of each target of [`small_targets`].
fn small_targets_expected() -> Vec<((String, String, String), f64)> {
    let t = |real: String, vip: String, check: &str, up: f64| ((real, vip, check.to_string()), up);
    vec![
        t(OK_IP.to_string(), VIP.to_string(), "tcp", 1.0),
        t(NOVIP_IP.to_string(), VIP.to_string(), "tcp", 0.0),
        t(CLOSED_IP.to_string(), VIP.to_string(), "tcp", 0.0),
        t(OK_IP.to_string(), VIP.to_string(), "http", 1.0),
        t(Host::Ok.ip6().to_string(), VIP6.to_string(), "tcp", 1.0),
    ]
}

/// Metrics once every target of [`small_targets`] has its first result.
fn wait_first_results(lab: &Lab, daemon: &Daemon<'_>) -> Metrics {
    let expected = small_targets_expected();
    poll(Duration::from_secs(15), || {
        scrape(lab).filter(|m| {
            let up = m.up();
            expected.iter().all(|(k, _)| up.contains_key(k))
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no first result of every target; metrics:\n{}\nlog:\n{}",
            scrape(lab).map(|m| m.text).unwrap_or_default(),
            daemon.log()
        )
    })
}

fn assert_small_targets_right(m: &Metrics, daemon_log: &str) {
    let up = m.up();
    for (key, expected) in small_targets_expected() {
        assert_eq!(
            up.get(&key),
            Some(&expected),
            "{key:?}:\n{}\nlog:\n{daemon_log}",
            m.text
        );
    }
}

#[test]
fn foreign_traffic_is_never_dropped() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("foreign");
    // Warm: the program attached, ok's MAC known to the bridge.
    let warm = run(check_cmd(
        &lab,
        "tcp",
        IpAddr::V4(OK_IP),
        IpAddr::V4(VIP),
        &["-t", "5000"],
    ));
    assert_eq!(warm.code, 0, "{warm:?}");

    // A plain switch: with br_netfilter loaded on the machine, the bridge
    // validates IP headers (and drops the truncated ones) before it
    // forwards; the LB must get those too. Per network namespace: only
    // the lab's switch changes.
    sh(
        &lab,
        lab.switch_ns(),
        "sysctl",
        &[
            "-q",
            "-e", // no such keys without br_netfilter: nothing to change
            "-w",
            "net.bridge.bridge-nf-call-iptables=0",
            "net.bridge.bridge-nf-call-ip6tables=0",
            "net.bridge.bridge-nf-call-arptables=0",
        ],
    );
    // Counting points: the switch's port to the LB (its netdev egress
    // hook: every frame it hands to the LB's veth, forwarded or the
    // bridge's own), before the LB's XDP program; and the LB's netdev
    // ingress hook, which the kernel runs after generic XDP (verified
    // below: it never sees the checks' replies that the program drops).
    nft(
        &lab,
        lab.switch_ns(),
        &format!(
            "table netdev vckwire {{\n chain tolb {{\n  type filter hook egress device \"p-lb\" priority -500;\n{}\n }}\n}}\n",
            counting_rules(&lab, "  ")
        ),
    );
    nft(
        &lab,
        lab.lb_ns(),
        &format!(
            "table netdev vckkernel {{\n chain in {{\n  type filter hook ingress device \"{LB_IFACE}\" priority -500;\n{}\n }}\n}}\n",
            counting_rules(&lab, "  ")
        ),
    );

    // The order: 20 healthy checks; each SYN-ACK crosses the switch, is
    // dropped by XDP (copied to the check) and never reaches the hook.
    let s0 = Snapshot::settled(&lab);
    for _ in 0..20 {
        let out = run(check_cmd(
            &lab,
            "tcp",
            IpAddr::V4(OK_IP),
            IpAddr::V4(VIP),
            &["-t", "5000"],
        ));
        assert_eq!(out.code, 0, "{out:?}");
    }
    let s1 = Snapshot::settled(&lab);
    let replies_wire = s1.wire["replies"] - s0.wire["replies"];
    let replies_kernel = s1.kernel["replies"] - s0.kernel["replies"];
    let delivered = s1.xdp("drop_delivered") - s0.xdp("drop_delivered");
    println!(
        "foreign: order check: 20 checks, {replies_wire} replies on the wire, {delivered} dropped by XDP, \
         {replies_kernel} seen by the netdev ingress hook"
    );
    assert!(replies_wire >= 20, "{s0:?} → {s1:?}");
    assert_eq!(
        delivered, replies_wire,
        "XDP dropped exactly the replies: {s0:?} → {s1:?}"
    );
    assert_eq!(
        replies_kernel, 0,
        "the ingress hook saw frames XDP dropped: it is not after XDP"
    );

    // A live flow that stays: a check of novip (no VIP: no answer) with a
    // long timeout; its 4-tuple gets frames from another MAC.
    let mut children = Children::default();
    children.0.push(spawn_piped(check_cmd(
        &lab,
        "tcp",
        IpAddr::V4(NOVIP_IP),
        IpAddr::V4(VIP),
        &["-t", "600000"],
    )));
    let live_pid = children.0[0].id();
    let flow_port: u16 = poll(Duration::from_secs(10), || {
        flow_lines(&lab)
            .into_iter()
            .find(|f| f.pid == Some(live_pid) && f.kind.is_empty())
            .and_then(|f| f.local.rsplit_once(':')?.1.parse().ok())
    })
    .expect("the long check's flow");

    let targets = scratch.file("targets.toml", &small_targets(300));
    let daemon = Daemon::start(
        &lab,
        &["--targets", s(&targets), "--metrics", METRICS_ADDR],
        scratch.0.join("daemon.log"),
    );
    let first = wait_first_results(&lab, &daemon);
    assert_small_targets_right(&first, &daemon.log());

    let templates = templates(&lab, flow_port);
    let per_round = templates.iter().filter(|t| t.kind != SAME_TUPLE).count();
    let rounds = 1_000_000usize.div_ceil(per_round);
    let (rx_before, rx_dropped_before) = lb_rx_stats(&lab);
    let stop = AtomicBool::new(false);
    let blast_start = Instant::now();
    let (sent, blast_took, checks) = std::thread::scope(|scope| {
        let checks = scope.spawn(|| check_loop(&lab, &stop));
        let sent = in_netns(lab.ns(Host::Ok), || blast(LB_IFACE, templates, rounds));
        let took = blast_start.elapsed();
        stop.store(true, Ordering::Relaxed);
        (sent, took, checks.join().unwrap())
    });
    let (rx_after, rx_dropped_after) = lb_rx_stats(&lab);

    // The long check was alive all along: stop it (SIGTERM, a verdict).
    assert!(
        matches!(children.0[0].try_wait(), Ok(None)),
        "the long check ended early"
    );
    // SAFETY: a signal to our own unreaped child.
    unsafe { libc::kill(live_pid as i32, libc::SIGTERM) };
    let live = finish(&mut children.0[0]);
    assert_eq!(live.code, 1, "{live:?}");
    assert!(live.stdout.contains("interrupted by SIGTERM"), "{live:?}");

    let last = scrape(&lab).expect("metrics");
    let daemon_log = daemon.log();
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}\n{daemon_log}");
    let s2 = Snapshot::settled(&lab);

    // What was sent, what crossed the switch to the LB, what its kernel got.
    let d = |snap: &HashMap<String, u64>, before: &HashMap<String, u64>, name: &str| {
        snap[name] - before[name]
    };
    let total_sent: u64 = sent.iter().sum();
    println!(
        "foreign: {total_sent} frames in {:.1} s ({:.0} frames/s), {rounds} rounds of {}",
        blast_took.as_secs_f64(),
        total_sent as f64 / blast_took.as_secs_f64(),
        per_round + 1
    );
    println!(
        "foreign: {:<28} {:>9} {:>9} {:>9} {:>9}",
        "kind", "sent", "to the LB", "passed", "dropped"
    );
    let mut wrong = Vec::new();
    for (kind, name) in KINDS.iter().enumerate() {
        let wire = d(&s2.wire, &s1.wire, name);
        let kernel = d(&s2.kernel, &s1.kernel, name);
        println!(
            "foreign: {name:<28} {:>9} {wire:>9} {kernel:>9} {:>9}",
            sent[kind],
            wire.saturating_sub(kernel)
        );
        let expected_kernel = if kind == SAME_TUPLE { 0 } else { sent[kind] };
        if wire != sent[kind] || kernel != expected_kernel {
            wrong.push(*name);
        }
    }
    let foreign: u64 = (0..KINDS.len())
        .filter(|&k| k != SAME_TUPLE)
        .map(|k| sent[k])
        .sum();
    let xdp = |name: &str| s2.xdp(name) - s1.xdp(name);
    let wire_all = d(&s2.wire, &s1.wire, "all");
    let kernel_all = d(&s2.kernel, &s1.kernel, "all");
    let replies_wire = d(&s2.wire, &s1.wire, "replies");
    let replies_kernel = d(&s2.kernel, &s1.kernel, "replies");
    println!(
        "foreign: all frames to the LB {wire_all}, to its kernel {kernel_all}; real servers' \
         replies via the VIP {replies_wire} (to the kernel: {replies_kernel}); XDP: {:?}",
        s2.xdp
            .iter()
            .zip(&s1.xdp)
            .map(|((n, a), (_, b))| format!("{n} +{}", a - b))
            .collect::<Vec<_>>()
    );
    println!(
        "foreign: LB eth0 rx packets +{}, rx dropped +{}",
        rx_after - rx_before,
        rx_dropped_after - rx_dropped_before
    );
    let wrong_checks: Vec<_> = checks.iter().filter(|(_, e, c, _)| e != c).collect();
    println!(
        "foreign: {} one-shot checks beside ({} healthy expected), {} wrong; daemon: {} checks",
        checks.len(),
        checks.iter().filter(|(_, e, _, _)| *e == 0).count(),
        wrong_checks.len(),
        last.sum("vipcheck_checks_total", &[])
    );

    assert!(foreign >= 1_000_000, "{foreign} foreign frames");
    assert!(
        wrong.is_empty(),
        "kinds not passed whole (sent = to the LB = to its kernel): {wrong:?}"
    );
    // Nothing lost between the switch and XDP, and every frame XDP passed
    // reached the kernel.
    assert_eq!(
        xdp("pass_other") + xdp("pass_miss") + xdp("pass_copied_arp"),
        kernel_all
    );
    assert_eq!(s2.xdp_total() - s1.xdp_total(), wire_all);
    // XDP dropped only the check flows' frames: the real servers' replies
    // through the VIP, and the frames of a live flow's 4-tuple.
    assert_eq!(xdp("drop_ring_full"), 0);
    assert_eq!(xdp("drop_oversize"), 0);
    assert_eq!(xdp("drop_no_ring"), 0);
    assert_eq!(
        xdp("drop_delivered"),
        replies_wire - replies_kernel + sent[SAME_TUPLE],
        "XDP dropped frames other than the checks' own"
    );
    assert!(wrong_checks.is_empty(), "wrong verdicts: {wrong_checks:?}");
    assert_small_targets_right(&last, &daemon_log);
    assert_eq!(
        last.sum("vipcheck_target_state_changes_total", &[]),
        0.0,
        "{}\n{daemon_log}",
        last.text
    );
    assert_eq!(xdp_status(&lab).1, 0, "flows left behind");
    println!("foreign: test {:.1} s", test_start.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------
// 2. Hundreds of one-shot checks at once, beside a daemon.

/// VIPs of the daemon's targets: a prefix on `ok`'s loopback (every
/// address of a prefix on `lo` is local), none on `novip`.
const VIP_PREFIX: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);
const VIP_PREFIX_LEN: u8 = 22;

/// A targets file: `n` TCP targets through `ok`, one VIP of the prefix
/// each (from .1).
fn many_targets(n: u32, interval_ms: u32) -> String {
    let mut toml = format!(
        "[defaults]\niface = \"{LB_IFACE}\"\ncheck = \"tcp\"\ntimeout_ms = 3000\ninterval_ms = {interval_ms}\n"
    );
    for i in 0..n {
        let vip = Ipv4Addr::from(u32::from(VIP_PREFIX) + 1 + i);
        let _ = write!(
            toml,
            "\n[[vip]]\naddress = \"{vip}\"\nport = 80\n[[vip.real_server]]\naddress = \"{OK_IP}\"\n"
        );
    }
    toml
}

/// (up, down) among the daemon's `vipcheck_target_up` samples.
fn up_down(m: &Metrics) -> (usize, usize) {
    let up = m.up();
    (
        up.values().filter(|&&v| v == 1.0).count(),
        up.values().filter(|&&v| v == 0.0).count(),
    )
}

/// TCP flows in a listing that share a local address and port: other
/// remote ends or other owners. (One entry listed twice is not two flows:
/// walking a BPF hash map while entries are removed may start over.)
fn shared_local_ports(flows: &[FlowLine]) -> Vec<String> {
    let mut seen: HashMap<&str, std::collections::HashSet<(&str, Option<u32>)>> = HashMap::new();
    for f in flows.iter().filter(|f| f.kind.is_empty()) {
        seen.entry(&f.local).or_default().insert((&f.remote, f.pid));
    }
    seen.into_iter()
        .filter(|(_, owners)| owners.len() > 1)
        .map(|(local, owners)| format!("{local} by {owners:?}"))
        .collect()
}

/// Entries listed more than once in one listing.
fn listed_twice(flows: &[FlowLine]) -> usize {
    let mut seen = std::collections::HashSet::new();
    flows.iter().filter(|f| !seen.insert(*f)).count()
}

#[test]
fn hundreds_of_concurrent_one_shots() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("hundreds");
    let prefix = format!("{VIP_PREFIX}/{VIP_PREFIX_LEN}");
    sh(
        &lab,
        lab.ns(Host::Ok),
        "ip",
        &["address", "add", &prefix, "dev", "lo"],
    );
    // The LB's kernel could send its RSTs to the daemon's VIPs (on-link,
    // as the lab's VIP is): a route, so that one would be counted.
    sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &["route", "add", &prefix, "dev", LB_IFACE],
    );
    // Every RST the LB's kernel sends on eth0 (vipcheck's own go out
    // through AF_PACKET, below this hook).
    let reals: Vec<String> = Host::REAL_SERVERS
        .iter()
        .map(|h| h.ip().to_string())
        .collect();
    let reals6: Vec<String> = Host::REAL_SERVERS
        .iter()
        .map(|h| h.ip6().to_string())
        .collect();
    nft(
        &lab,
        lab.lb_ns(),
        &format!(
            "table inet vckrst {{\n chain out {{\n  type filter hook output priority -500;\n  \
             oifname \"{LB_IFACE}\" ip daddr {{ {} }} tcp flags & rst == rst counter comment \"to-real-servers\"\n  \
             oifname \"{LB_IFACE}\" ip6 daddr {{ {} }} tcp flags & rst == rst counter comment \"to-real-servers\"\n  \
             oifname \"{LB_IFACE}\" tcp flags & rst == rst counter comment \"all\"\n }}\n}}\n",
            reals.join(", "),
            reals6.join(", ")
        ),
    );
    let rsts = |lab: &Lab| nft_counters(lab, lab.lb_ns(), "inet", "vckrst");

    let (targets_n, interval_ms) = (1000u32, 3000u32);
    let targets = scratch.file("targets.toml", &many_targets(targets_n, interval_ms));
    let daemon = Daemon::start(
        &lab,
        &["--targets", s(&targets), "--metrics", METRICS_ADDR],
        scratch.0.join("daemon.log"),
    );
    let first = poll(Duration::from_secs(30), || {
        scrape(&lab).filter(|m| up_down(m).0 + up_down(m).1 == targets_n as usize)
    })
    .unwrap_or_else(|| {
        panic!(
            "no first result of every target; up/down {:?}; log:\n{}",
            scrape(&lab).map(|m| up_down(&m)),
            daemon.log()
        )
    });
    assert_eq!(up_down(&first), (targets_n as usize, 0), "{}", daemon.log());
    println!(
        "hundreds: daemon with {targets_n} targets: every first result after {:.1} s",
        test_start.elapsed().as_secs_f64()
    );

    // 200 one-shots at once: ok, novip, closed × tcp, http, https × IPv4, IPv6.
    let ca = lab.ca_pem();
    let ca = s(&ca).to_string();
    let hosts = [Host::Ok, Host::NoVip, Host::Closed];
    let checks = ["tcp", "http", "https"];
    let mut plan = Vec::new();
    for i in 0..200usize {
        let host = hosts[i % 3];
        let check = checks[i / 3 % 3];
        let v6 = i / 9 % 2 == 1;
        let (rs, vip) = if v6 {
            (IpAddr::V6(host.ip6()), IpAddr::V6(VIP6))
        } else {
            (IpAddr::V4(host.ip()), IpAddr::V4(VIP))
        };
        plan.push((check, host, rs, vip, i32::from(host != Host::Ok)));
    }
    let rst_before = rsts(&lab);
    let mut children = Children::default();
    let spawn_start = Instant::now();
    for &(check, _, rs, vip, _) in &plan {
        let mut extra = vec!["-t", "8000"];
        if check == "https" {
            extra.extend_from_slice(&["--ca", &ca]);
        }
        children
            .0
            .push(spawn_piped(check_cmd(&lab, check, rs, vip, &extra)));
    }
    let spawned = spawn_start.elapsed();
    // Meanwhile: the live flows, sampled; no two share a local port.
    let done = AtomicBool::new(false);
    let (runs, samples) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples = Vec::new();
            while !done.load(Ordering::Relaxed) {
                samples.push(flow_lines(&lab));
            }
            samples
        });
        let runs: Vec<Run> = children.0.iter_mut().map(finish).collect();
        done.store(true, Ordering::Relaxed);
        (runs, sampler.join().unwrap())
    });
    let all_done = spawn_start.elapsed();

    let mut wrong = Vec::new();
    let mut tally: HashMap<(&str, &str, bool, i32), usize> = HashMap::new();
    for (&(check, host, rs, _, expected), out) in plan.iter().zip(&runs) {
        *tally
            .entry((check, host.name(), rs.is_ipv6(), out.code))
            .or_default() += 1;
        if out.code != expected {
            wrong.push(format!(
                "{check} {rs}: exit {}: {} {}",
                out.code,
                out.stdout.trim(),
                out.stderr.trim()
            ));
        }
    }
    let mut tally: Vec<_> = tally.into_iter().collect();
    tally.sort();
    let most_flows = samples.iter().map(Vec::len).max().unwrap_or(0);
    let shared: Vec<Vec<String>> = samples
        .iter()
        .map(|flows| shared_local_ports(flows))
        .filter(|s| !s.is_empty())
        .collect();
    println!(
        "hundreds: 200 one-shots spawned in {:.0} ms, all ended after {:.1} s; {} wrong",
        spawned.as_secs_f64() * 1e3,
        all_done.as_secs_f64(),
        wrong.len()
    );
    for ((check, host, v6, code), n) in &tally {
        println!(
            "hundreds:   {check:<5} {host:<6} {} exit {code}: {n}",
            if *v6 { "IPv6" } else { "IPv4" }
        );
    }
    let repeated: Vec<usize> = samples
        .iter()
        .map(|flows| listed_twice(flows))
        .filter(|&n| n > 0)
        .collect();
    println!(
        "hundreds: {} samples of the live flows, up to {most_flows} at once, {} with a shared local port \
         ({} listings showed an entry twice: {repeated:?})",
        samples.len(),
        shared.len(),
        repeated.len()
    );

    // The daemon, one more interval later: undisturbed.
    std::thread::sleep(Duration::from_millis(u64::from(interval_ms) + 500));
    let last = scrape(&lab).expect("metrics");
    let changes = last.sum("vipcheck_target_state_changes_total", &[]);
    let failed = last.sum("vipcheck_checks_total", &[("result", "unhealthy")])
        + last.sum("vipcheck_checks_total", &[("result", "error")]);
    println!(
        "hundreds: daemon: {:?} up/down, {changes} state changes, {} checks, {failed} failed",
        up_down(&last),
        last.sum("vipcheck_checks_total", &[])
    );
    let daemon_log = daemon.log();
    let status = daemon.terminate();
    let (_, flows) = xdp_status(&lab);
    let rst_after = rsts(&lab);
    let rst = |name: &str| rst_after[name] - rst_before[name];
    println!(
        "hundreds: RSTs from the LB's kernel: {} to the real servers, {} in all; flows left {flows}; test {:.1} s",
        rst("to-real-servers"),
        rst("all"),
        test_start.elapsed().as_secs_f64()
    );

    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
    assert!(
        shared.is_empty(),
        "live flows sharing a local port: {shared:?}"
    );
    assert!(
        !samples.is_empty() && most_flows > 0,
        "no live flow ever sampled"
    );
    assert_eq!(
        rst("to-real-servers"),
        0,
        "the LB's kernel sent RSTs to the real servers"
    );
    assert_eq!(rst("all"), 0, "the LB's kernel sent RSTs");
    assert_eq!(flows, 0, "flows left behind");
    assert_eq!(changes, 0.0, "the daemon's states changed:\n{daemon_log}");
    assert_eq!(up_down(&last), (targets_n as usize, 0), "{daemon_log}");
    assert!(status.success(), "{status:?}\n{daemon_log}");

    // The RST counter can count: without the program the LB's kernel
    // answers a SYN-ACK with one.
    assert_eq!(run(vipcheck(&lab, &["xdp", "detach", LB_IFACE])).code, 0);
    let off = run(check_cmd(
        &lab,
        "tcp",
        IpAddr::V4(OK_IP),
        IpAddr::V4(VIP),
        &["--xdp", "off"],
    ));
    assert_eq!(off.code, 0, "{off:?}");
    let counted = poll(Duration::from_secs(3), || {
        let n = rsts(&lab)["all"] - rst_after["all"];
        (n > 0).then_some(n)
    });
    assert!(
        counted.is_some(),
        "the RST counter saw nothing without XDP: the test cannot tell"
    );
}

// ---------------------------------------------------------------------------
// 3. Death and signals.

#[test]
fn death_and_signals() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("death");
    let mut rng = Rng::new("death");
    let (ok, novip, vip) = (IpAddr::V4(OK_IP), IpAddr::V4(NOVIP_IP), IpAddr::V4(VIP));
    let warm = run(check_cmd(&lab, "tcp", ok, vip, &["-t", "5000"]));
    assert_eq!(warm.code, 0, "{warm:?}");

    // 100 checks of novip SIGKILLed 0-50 ms after their start, ten at a
    // time, beside two that live (ok and novip) in each wave.
    let mut victims = Vec::new();
    let mut ended_first = 0;
    let mut survivors = Vec::new();
    for _ in 0..10 {
        let mut children = Children::default();
        let delays: Vec<u64> = (0..10).map(|_| rng.below(51)).collect();
        let start = Instant::now();
        for _ in 0..10 {
            children.0.push(spawn_piped(check_cmd(
                &lab,
                "tcp",
                novip,
                vip,
                &["-t", "1000"],
            )));
        }
        let mut living = Children::default();
        living.0.push(spawn_piped(check_cmd(
            &lab,
            "tcp",
            ok,
            vip,
            &["-t", "5000"],
        )));
        living.0.push(spawn_piped(check_cmd(
            &lab,
            "tcp",
            novip,
            vip,
            &["-t", "1000"],
        )));
        let mut order: Vec<usize> = (0..10).collect();
        order.sort_by_key(|&i| delays[i]);
        for i in order {
            let at = start + Duration::from_millis(delays[i]);
            std::thread::sleep(at.saturating_duration_since(Instant::now()));
            if let Ok(Some(_)) = children.0[i].try_wait() {
                ended_first += 1;
                continue;
            }
            children.0[i].kill().expect("SIGKILL");
        }
        for child in &mut children.0 {
            victims.push(child.id());
            child.wait().expect("reap");
        }
        for (child, (what, expected)) in living.0.iter_mut().zip([("ok", 0), ("novip", 1)]) {
            survivors.push((what, expected, finish(child)));
        }
    }
    let left = flow_lines(&lab);
    let left_slots = slot_owners(&lab);
    let dead_flows = left
        .iter()
        .filter(|f| f.pid.is_some_and(|p| victims.contains(&p)))
        .count();
    println!(
        "death: 100 checks SIGKILLed after 0-50 ms ({ended_first} had ended already); left: {dead_flows} flow entries \
         ({} ARP), {} capture slots",
        left.iter().filter(|f| f.kind == "arp ").count(),
        left_slots.len()
    );
    let wrong: Vec<_> = survivors
        .iter()
        .filter(|(_, expected, out)| out.code != *expected)
        .collect();
    let arp_failures = survivors
        .iter()
        .filter(|(_, _, out)| out.stdout.contains("no ARP reply"))
        .count();
    println!(
        "death: {} checks beside them: {} wrong, {arp_failures} without an ARP reply",
        survivors.len(),
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "wrong verdicts beside the kills: {wrong:?}"
    );
    // Later checks collect what the dead left, and are right.
    let next_ok = run(check_cmd(&lab, "tcp", ok, vip, &["-t", "5000"]));
    assert_eq!(next_ok.code, 0, "{next_ok:?}");
    let next_novip = run(check_cmd(&lab, "tcp", novip, vip, &["-t", "500"]));
    assert_eq!(next_novip.code, 1, "{next_novip:?}");
    assert!(
        next_novip.stdout.contains("no answer within"),
        "{next_novip:?}"
    );
    let left = flow_lines(&lab);
    assert!(
        left.is_empty(),
        "flow entries left after the next checks: {left:?}"
    );
    let left = slot_owners(&lab);
    assert!(
        left.is_empty(),
        "capture slots left after the next checks: {left:?}"
    );
    // And the per-port counts with them: no flow, no count, but for a
    // process killed between counting a flow and inserting it (a window
    // of a syscall: the count stays one too high, which costs a hash, not
    // a missed reply).
    let counted = port_counts(&lab);
    println!("death: port counts left after the next checks: {counted:?}");
    assert!(
        counted.iter().map(|&(_, n)| n).sum::<u64>() <= 2,
        "port counts left after the next checks: {counted:?}"
    );

    // Ten checks at once on an interface without the program: all pass,
    // one program attached.
    let detach = run(vipcheck(&lab, &["xdp", "detach", LB_IFACE]));
    assert_eq!(detach.code, 0, "{detach:?}");
    assert!(xdp_ids(&lab, LB_IFACE).is_empty(), "still attached");
    let mut ten = Children::default();
    for _ in 0..10 {
        ten.0.push(spawn_piped(check_cmd(
            &lab,
            "tcp",
            ok,
            vip,
            &["-t", "5000"],
        )));
    }
    let runs: Vec<Run> = ten.0.iter_mut().map(finish).collect();
    let attached_by = runs
        .iter()
        .filter(|r| r.stdout.contains("to attach the capture program"))
        .count();
    let ids = xdp_ids(&lab, LB_IFACE);
    println!(
        "death: 10 checks at once on a bare interface: exits {:?}, {attached_by} said they attached, programs {ids:?}",
        runs.iter().map(|r| r.code).collect::<Vec<_>>()
    );
    assert!(runs.iter().all(|r| r.code == 0), "{runs:?}");
    assert_eq!(ids.len(), 1, "programs attached: {ids:?}");
    assert_eq!(attached_by, 1, "{runs:?}");
    let status = run(vipcheck(&lab, &["xdp", "status", LB_IFACE]));
    assert!(
        status
            .stdout
            .contains(&format!("vipcheck XDP program {} attached", ids[0])),
        "{status:?}"
    );

    // A daemon SIGKILLed while its flows are registered, then started
    // again: the new one collects its slot and flows and is right.
    let targets = scratch.file("targets.toml", &small_targets(300));
    let args = ["--targets", s(&targets), "--metrics", METRICS_ADDR];
    let mut first = Daemon::start(&lab, &args, scratch.0.join("first.log"));
    let first_metrics = wait_first_results(&lab, &first);
    assert_small_targets_right(&first_metrics, &first.log());
    let first_pid = first.pid();
    let held = poll(Duration::from_secs(5), || {
        let n = flow_lines(&lab)
            .iter()
            .filter(|f| f.pid == Some(first_pid))
            .count();
        (n > 0).then_some(n)
    })
    .expect("the daemon's flows");
    first.process.child().kill().expect("SIGKILL the daemon");
    first.process.child().wait().expect("reap the daemon");
    let dead_flows = flow_lines(&lab)
        .iter()
        .filter(|f| f.pid == Some(first_pid))
        .count();
    let dead_slots = slot_owners(&lab)
        .iter()
        .filter(|(_, o)| o.pid == first_pid)
        .count();
    println!(
        "death: daemon {first_pid} SIGKILLed with {held} flows seen; left {dead_flows} flows, {dead_slots} slots"
    );
    assert_eq!(dead_slots, 1, "the killed daemon's slot");
    let second = Daemon::start(&lab, &args, scratch.0.join("second.log"));
    let second_metrics = wait_first_results(&lab, &second);
    assert_small_targets_right(&second_metrics, &second.log());
    let flows_now = flow_lines(&lab);
    let slots_now = slot_owners(&lab);
    assert!(
        !flows_now.iter().any(|f| f.pid == Some(first_pid)),
        "the dead daemon's flows: {flows_now:?}"
    );
    assert!(
        !slots_now.iter().any(|(_, o)| o.pid == first_pid),
        "the dead daemon's slot: {slots_now:?}"
    );
    assert!(
        slots_now.iter().all(|(_, o)| alive(o.pid)),
        "slots of dead processes: {slots_now:?}"
    );
    // One more round of checks: no state change.
    std::thread::sleep(Duration::from_millis(1500));
    let later = scrape(&lab).expect("metrics");
    assert_small_targets_right(&later, &second.log());
    let changes = later.sum("vipcheck_target_state_changes_total", &[]);
    let log = second.log();
    let status = second.terminate();
    println!(
        "death: restarted daemon: right, {changes} state changes, {} checks; test {:.1} s",
        later.sum("vipcheck_checks_total", &[]),
        test_start.elapsed().as_secs_f64()
    );
    assert_eq!(changes, 0.0, "{}\n{log}", later.text);
    assert!(status.success(), "{status:?}\n{log}");
    let left = flow_lines(&lab);
    assert!(left.is_empty(), "flows left: {left:?}");
    let left = slot_owners(&lab);
    assert!(left.is_empty(), "slots left: {left:?}");
}

/// A one-shot check killed while it waits for a real server's ARP reply
/// leaves that ARP entry registered; a daemon that was running before
/// must still resolve the real server (entries of dead processes are
/// freed by the next check, whoever runs it).
#[test]
fn a_running_daemon_resolves_past_a_killed_checks_arp_entry() {
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("deadarp");
    let novip_only = format!(
        "[defaults]\niface = \"{LB_IFACE}\"\ncheck = \"tcp\"\ntimeout_ms = 500\ninterval_ms = 300\n\n\
         [[vip]]\naddress = \"{VIP}\"\nport = 80\n[[vip.real_server]]\naddress = \"{NOVIP_IP}\"\n"
    );
    let targets = scratch.file("targets.toml", &novip_only);
    let daemon = Daemon::start(
        &lab,
        &["--targets", s(&targets), "--metrics", METRICS_ADDR],
        scratch.0.join("daemon.log"),
    );
    let novip_key = (NOVIP_IP.to_string(), VIP.to_string(), "tcp".to_string());
    let ok_key = (OK_IP.to_string(), VIP.to_string(), "tcp".to_string());
    poll(Duration::from_secs(5), || {
        scrape(&lab).filter(|m| m.up().get(&novip_key) == Some(&0.0))
    })
    .unwrap_or_else(|| panic!("no first result of novip; log:\n{}", daemon.log()));

    // ok answers no ARP for a while; a check of ok waits for the reply
    // and is SIGKILLed meanwhile.
    nft(
        &lab,
        lab.ns(Host::Ok),
        "table arp vckarp {\n chain in {\n  type filter hook input priority 0; policy drop;\n }\n}\n",
    );
    let mut victim = Children::default();
    victim.0.push(spawn_piped(check_cmd(
        &lab,
        "tcp",
        IpAddr::V4(OK_IP),
        IpAddr::V4(VIP),
        &["-t", "10000"],
    )));
    let pid = victim.0[0].id();
    let arp_entry = poll(Duration::from_secs(5), || {
        flow_lines(&lab)
            .into_iter()
            .find(|f| f.pid == Some(pid) && f.kind == "arp ")
    })
    .expect("the check's ARP entry");
    victim.0[0].kill().expect("SIGKILL");
    victim.0[0].wait().expect("reap");
    sh(
        &lab,
        lab.ns(Host::Ok),
        "nft",
        &["delete", "table", "arp", "vckarp"],
    );
    assert!(
        flow_lines(&lab).contains(&arp_entry),
        "the dead check's ARP entry is gone already"
    );

    // The daemon now checks ok too (SIGHUP): ok answers ARP again.
    let both = format!(
        "{novip_only}\n[[vip]]\naddress = \"{VIP}\"\nport = 80\n[[vip.real_server]]\naddress = \"{OK_IP}\"\n"
    );
    std::fs::write(&targets, both).unwrap();
    // SAFETY: a signal to our own unreaped child.
    unsafe { libc::kill(daemon.pid() as i32, libc::SIGHUP) };
    let metrics = poll(Duration::from_secs(5), || {
        scrape(&lab).filter(|m| m.up().contains_key(&ok_key))
    })
    .unwrap_or_else(|| panic!("no first result of ok; log:\n{}", daemon.log()));
    let log = daemon.log();
    let left = flow_lines(&lab);
    // What a one-shot check says meanwhile (it collects the dead entry).
    let one_shot = run(check_cmd(
        &lab,
        "tcp",
        IpAddr::V4(OK_IP),
        IpAddr::V4(VIP),
        &[],
    ));
    println!(
        "deadarp: daemon's first result of ok: up {:?}; one-shot check: exit {} {}; flows then: {left:?}\n{log}",
        metrics.up().get(&ok_key),
        one_shot.code,
        one_shot.stdout.trim()
    );
    assert_eq!(
        metrics.up().get(&ok_key),
        Some(&1.0),
        "the daemon could not resolve ok past the dead check's ARP entry:\n{log}"
    );
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}

/// A one-shot check killed while its flow is registered leaves that flow
/// entry; its local port is free again in the kernel, so a daemon that was
/// running before may reserve it for its own flow, which must still work.
/// (The LB's ephemeral range is cut to two ports so that it does.)
#[test]
fn a_running_daemon_reuses_a_killed_checks_port() {
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("deadport");
    sh(
        &lab,
        lab.lb_ns(),
        "sysctl",
        &["-q", "-w", "net.ipv4.ip_local_port_range=40000 40001"],
    );
    let targets = scratch.file(
        "targets.toml",
        &format!(
            "[defaults]\niface = \"{LB_IFACE}\"\ncheck = \"tcp\"\ntimeout_ms = 500\ninterval_ms = 200\n\n\
             [[vip]]\naddress = \"{VIP}\"\nport = 80\n[[vip.real_server]]\naddress = \"{OK_IP}\"\n"
        ),
    );
    let daemon = Daemon::start(
        &lab,
        &["--targets", s(&targets), "--metrics", METRICS_ADDR],
        scratch.0.join("daemon.log"),
    );
    let ok_key = (OK_IP.to_string(), VIP.to_string(), "tcp".to_string());
    poll(Duration::from_secs(5), || {
        scrape(&lab).filter(|m| m.up().get(&ok_key) == Some(&1.0))
    })
    .unwrap_or_else(|| panic!("ok not up; log:\n{}", daemon.log()));

    // A check of novip (no answer: its flow stays registered), SIGKILLed.
    let mut victim = Children::default();
    victim.0.push(spawn_piped(check_cmd(
        &lab,
        "tcp",
        IpAddr::V4(NOVIP_IP),
        IpAddr::V4(VIP),
        &["-t", "10000"],
    )));
    let pid = victim.0[0].id();
    let entry = poll(Duration::from_secs(5), || {
        flow_lines(&lab)
            .into_iter()
            .find(|f| f.pid == Some(pid) && f.kind.is_empty())
    })
    .expect("the check's flow");
    victim.0[0].kill().expect("SIGKILL");
    victim.0[0].wait().expect("reap");
    let before = scrape(&lab).expect("metrics");
    std::thread::sleep(Duration::from_secs(2));
    let after = scrape(&lab).expect("metrics");
    let failed = |m: &Metrics| {
        m.sum("vipcheck_checks_total", &[("result", "unhealthy")])
            + m.sum("vipcheck_checks_total", &[("result", "error")])
    };
    let log = daemon.log();
    println!(
        "deadport: dead flow {entry:?}; daemon: {} checks, {} failed in 2 s after the kill, ok up {:?}\n{log}",
        after.sum("vipcheck_checks_total", &[]) - before.sum("vipcheck_checks_total", &[]),
        failed(&after) - failed(&before),
        after.up().get(&ok_key)
    );
    assert_eq!(failed(&after), failed(&before), "checks failed:\n{log}");
    assert_eq!(after.up().get(&ok_key), Some(&1.0), "{log}");
    let status = daemon.terminate();
    assert!(status.success(), "{status:?}");
}

/// `vipcheck xdp status` lists each live flow once, also while flows come
/// and go. (Walking a BPF hash map while another process removes the key
/// just read starts over at the first bucket: the listing then repeats
/// entries, and its `flows:` count is too high.)
#[test]
fn xdp_status_lists_each_flow_once_while_flows_change() {
    let lab = lab(Role::Backup);
    let warm = run(check_cmd(
        &lab,
        "tcp",
        IpAddr::V4(OK_IP),
        IpAddr::V4(VIP),
        &[],
    ));
    assert_eq!(warm.code, 0, "{warm:?}");
    let done = AtomicBool::new(false);
    let (listings, checks) = std::thread::scope(|scope| {
        // Churn: 40 checks of novip at a time, each ending after 100 ms.
        let churn = scope.spawn(|| {
            let mut checks = 0;
            while !done.load(Ordering::Relaxed) {
                let mut wave = Children::default();
                for _ in 0..40 {
                    wave.0.push(spawn_piped(check_cmd(
                        &lab,
                        "tcp",
                        IpAddr::V4(NOVIP_IP),
                        IpAddr::V4(VIP),
                        &["-t", "100"],
                    )));
                }
                for child in &mut wave.0 {
                    finish(child);
                }
                checks += 40;
            }
            checks
        });
        let mut listings = Vec::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let out = run(vipcheck(&lab, &["xdp", "status", LB_IFACE]));
            assert_eq!(out.code, 0, "{out:?}");
            listings.push(out.stdout);
        }
        done.store(true, Ordering::Relaxed);
        (listings, churn.join().unwrap())
    });
    let repeated: Vec<&String> = listings
        .iter()
        .filter(|l| listed_twice(&parse_flow_lines(l)) > 0)
        .collect();
    println!(
        "status: {} listings beside {checks} checks, {} listed an entry twice",
        listings.len(),
        repeated.len()
    );
    assert!(repeated.is_empty(), "{}", repeated[0]);
}
