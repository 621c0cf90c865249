//! Checks over a simulated wire: the check's own stack ([`Stack`]), a
//! seeded [`FaultInjector`] in each direction (drop, duplicate, reorder,
//! delay, corrupt, as smoltcp's `FaultInjector` does for a device), and a
//! simulated real server (a second smoltcp interface that carries the VIP,
//! with the real server's MAC, serving an HTTP response, over TLS for
//! https), driven over simulated time: no namespace, no XDP, no wall clock.
//!
//! The client side is the real one: [`Stack`] (with its early
//! retransmission and egress filter), driven as `Flow::drive` drives it;
//! the goals of `check::connect` and `check::http::exchange`, with the
//! real [`ResponseParser`], [`tls::Session`] and verdict (`judge`). Time
//! advances to the next event (a stack's timer, a frame's arrival), so a
//! run of ten simulated seconds takes milliseconds.
//!
//! Deterministic: the seed fixes every fault, both stacks' initial
//! sequence numbers and the TCP timestamp clocks; TLS's own randomness
//! changes bytes but never a length (Ed25519 certificates, X25519), so
//! a seed gives the same run, frame for frame in timing, every time.
//!
//! `fault_table` below is a snapshot test: `tests/snapshots/faults.txt`
//! holds the table; `VIPCHECK_BLESS=1 cargo test -p checker --lib sim::`
//! rewrites it.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use md5::{Digest, Md5};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{self, State};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr};

use crate::check::http::{Body, judge};
use crate::check::tls;
use crate::check::verdict::Details;
use crate::check::verdict::Failure;
use crate::engine::stack::{FlowParams, Stack};
use crate::probe::{Expect, HttpCheck, Method, TlsSetup};
use crate::sys::netdev::Mac;
use crate::wire::http::{self, Limits, ResponseParser};

/// A small seeded generator (SplitMix64): the same seed, the same faults.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p` (0 to 1).
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// `seed` mixed with `stream`: independent generators from one seed.
fn derive(seed: u64, stream: u64) -> u64 {
    Rng::new(seed ^ stream.wrapping_mul(0xd6e8_feb8_6659_fd93)).next_u64()
}

/// Per-frame probabilities (0 to 1) of each fault, in one direction.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Faults {
    /// The frame is lost.
    pub drop: f64,
    /// The frame arrives twice (the copy right after it).
    pub duplicate: f64,
    /// The frame is held back until the next frame of its direction has
    /// gone (at most [`REORDER_HOLD`]), then arrives right after that one.
    pub reorder: f64,
    /// The frame arrives [`DELAY_MIN`] to [`DELAY_MAX`] late (uniform), so
    /// later frames overtake it.
    pub delay: f64,
    /// One byte of the frame, anywhere, is changed (XOR with 1 to 255).
    pub corrupt: f64,
}

/// One-way time on the simulated wire (a LAN hop).
pub const LATENCY: Duration = Duration::from_micros(50);
pub const REORDER_HOLD: Duration = Duration::from_millis(5);
pub const DELAY_MIN: Duration = Duration::from_millis(1);
pub const DELAY_MAX: Duration = Duration::from_millis(250);

/// One direction of the wire: frames in flight, with the faults applied
/// as they are sent. Times are simulated: a [`Duration`] since the start.
#[derive(Debug)]
pub struct FaultInjector {
    faults: Faults,
    rng: Rng,
    /// (arrival, order sent) → frame.
    in_flight: BTreeMap<(Duration, u64), Bytes>,
    next_order: u64,
    /// A frame being reordered: released after the next frame, or at
    /// this time; with its copies (2 when duplicated).
    held: Option<(Duration, Bytes, u8)>,
    /// What happened, for the curious.
    pub stats: FaultStats,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultStats {
    pub sent: u64,
    pub dropped: u64,
    pub duplicated: u64,
    pub reordered: u64,
    pub delayed: u64,
    pub corrupted: u64,
}

impl FaultInjector {
    pub fn new(faults: Faults, seed: u64) -> FaultInjector {
        FaultInjector {
            faults,
            rng: Rng::new(seed),
            in_flight: BTreeMap::new(),
            next_order: 0,
            held: None,
            stats: FaultStats::default(),
        }
    }

    /// `frame` goes on the wire at `now`.
    pub fn send(&mut self, now: Duration, frame: Bytes) {
        self.stats.sent += 1;
        // Every decision is drawn for every frame, so the draws of a seed
        // do not depend on the rates.
        let f = self.faults;
        let drop = self.rng.chance(f.drop);
        let corrupt = self.rng.chance(f.corrupt);
        let duplicate = self.rng.chance(f.duplicate);
        let delay = self.rng.chance(f.delay);
        let reorder = self.rng.chance(f.reorder);
        if drop {
            self.stats.dropped += 1;
            self.release_held(now);
            return;
        }
        let frame = if corrupt && !frame.is_empty() {
            self.stats.corrupted += 1;
            let mut bytes = frame.to_vec();
            let at = self.rng.below(bytes.len() as u64) as usize;
            bytes[at] ^= 1 + self.rng.below(255) as u8;
            Bytes::from(bytes)
        } else {
            frame
        };
        let copies = if duplicate {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        if reorder && self.held.is_none() {
            self.stats.reordered += 1;
            self.held = Some((now + REORDER_HOLD, frame, copies));
            return;
        }
        let extra = if delay {
            self.stats.delayed += 1;
            let span = (DELAY_MAX - DELAY_MIN).as_micros() as u64;
            DELAY_MIN + Duration::from_micros(self.rng.below(span + 1))
        } else {
            Duration::ZERO
        };
        self.schedule(now + LATENCY + extra, frame, copies);
        self.release_held(now);
    }

    fn schedule(&mut self, at: Duration, frame: Bytes, copies: u8) {
        for _ in 0..copies {
            self.in_flight.insert((at, self.next_order), frame.clone());
            self.next_order += 1;
        }
    }

    /// The held frame goes now (after whatever was just sent).
    fn release_held(&mut self, now: Duration) {
        if let Some((_, frame, copies)) = self.held.take() {
            self.schedule(now + LATENCY, frame, copies);
        }
    }

    /// The frames that have arrived by `now`, in arrival order.
    pub fn deliver(&mut self, now: Duration) -> Vec<Bytes> {
        if let Some((until, _, _)) = &self.held
            && *until <= now
        {
            let until = *until;
            if let Some((_, frame, copies)) = self.held.take() {
                // Arrives as if sent when its hold ended.
                self.schedule(until + LATENCY, frame, copies);
            }
        }
        let mut out = Vec::new();
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > now {
                break;
            }
            out.push(entry.remove());
        }
        out
    }

    /// When something next happens on this wire.
    pub fn next_at(&self) -> Option<Duration> {
        let arrival = self.in_flight.keys().next().map(|(at, _)| *at);
        let hold = self.held.as_ref().map(|(until, _, _)| *until);
        match (arrival, hold) {
            (Some(a), Some(h)) => Some(a.min(h)),
            (a, h) => a.or(h),
        }
    }
}

/// What a simulated check checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The handshake (healthy on SYN-ACK).
    Tcp,
    /// GET of a body of this many bytes (its MD5 must match).
    Http(usize),
    /// The same over TLS (certificate verified against the sim's CA).
    Https(usize),
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Tcp => "tcp".into(),
            Kind::Http(n) => format!("http {}", size(n)),
            Kind::Https(n) => format!("https {}", size(n)),
        }
    }
}

fn size(n: usize) -> String {
    if n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} B")
    }
}

/// How a simulated check ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// Why the check failed (as the real check's verdict would say);
    /// `None` when healthy.
    pub failure: Option<Failure>,
    /// Simulated time from the start to the verdict.
    pub at: Duration,
    /// Short: "ok", "no answer", "refused", "reset", "tls", "http",
    /// "deadline", "validation".
    pub class: &'static str,
    /// The verdict's reason, as the check words it.
    pub reason: String,
}

/// The check's deadline in the simulation.
pub const DEADLINE: Duration = Duration::from_secs(10);

const CLIENT_MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
const SERVER_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
const TLS_NAME: &str = "sim.example";

thread_local! {
    /// The simulated clock of the run on this thread, in ms: the TCP
    /// timestamp clock of both stacks.
    static CLOCK_MS: Cell<u32> = const { Cell::new(0) };
}

fn sim_tsval() -> u32 {
    CLOCK_MS.with(Cell::get).wrapping_add(1)
}

/// The `std::time::Instant` that simulated time 0 maps to. smoltcp turns
/// a std `Instant` into its own from a process-wide reference taken at
/// the first conversion, saturating before it: the reference is set
/// first, so the base is after it and every simulated instant (whole
/// microseconds from the base) converts exactly.
fn base() -> std::time::Instant {
    let _ = SmolInstant::from(std::time::Instant::now());
    std::time::Instant::now()
}

/// `d` rounded up to whole microseconds (smoltcp's resolution).
fn ceil_micros(d: Duration) -> Duration {
    let us = d.as_nanos().div_ceil(1000);
    Duration::from_micros(us as u64)
}

/// One simulated check of `kind` with `faults` in both directions.
pub fn run(kind: Kind, faults: Faults, seed: u64) -> Outcome {
    let base = base();
    CLOCK_MS.with(|c| c.set(0));
    let port = match kind {
        Kind::Https(_) => 443,
        _ => 80,
    };
    let params = FlowParams {
        local_mac: CLIENT_MAC,
        local_ip: CLIENT_IP.into(),
        local_port: 40000,
        vip: VIP.into(),
        port,
        real_server_mac: SERVER_MAC,
        mtu: 1500,
    };
    let mut client = Stack::connect_seeded(params, base, derive(seed, 1), sim_tsval);
    let mut server = Server::new(&params, kind, derive(seed, 2));
    let mut to_server = FaultInjector::new(faults, derive(seed, 3));
    let mut to_client = FaultInjector::new(faults, derive(seed, 4));
    let mut phase = Phase::Connect;
    let mut t = Duration::ZERO;
    // Steps at one instant: the goal may queue data that the next poll
    // sends at once (as in `Flow::drive`), but never forever.
    let mut same_instant = 0;
    loop {
        CLOCK_MS.with(|c| c.set(t.as_millis() as u32));
        let now = base + t;
        // The client, as `Flow::drive`: receive, poll, transmit, goal.
        for frame in to_client.deliver(t) {
            client.receive(frame);
        }
        client.poll(now);
        for frame in client.take_outgoing(now) {
            to_server.send(t, frame);
        }
        match &mut phase {
            Phase::Connect => match client.state() {
                State::SynSent => {}
                State::Closed => {
                    return outcome(
                        t,
                        Some(Failure::Refused),
                        "refused",
                        "connection refused (RST)",
                    );
                }
                _ if kind == Kind::Tcp => return outcome(t, None, "ok", "SYN-ACK"),
                _ => {
                    // The exchange's drive starts at once, at this instant.
                    phase = Phase::Exchange(Box::new(Exchange::new(kind)));
                    continue;
                }
            },
            Phase::Exchange(exchange) => {
                if let Some(end) = exchange.step(&mut client) {
                    return exchange.verdict(t, end);
                }
            }
        }
        // The server.
        for frame in to_server.deliver(t) {
            server.receive(frame);
        }
        for frame in server.step(t) {
            to_client.send(t, frame);
        }
        if t >= DEADLINE {
            return match &phase {
                Phase::Connect => outcome(
                    t,
                    Some(Failure::NoAnswer),
                    "no answer",
                    "no answer within the deadline",
                ),
                Phase::Exchange(exchange) => exchange.deadline(t),
            };
        }
        let next = [
            client.poll_delay(now).map(|d| t + d),
            server.poll_delay(t).map(|d| t + d),
            to_server.next_at(),
            to_client.next_at(),
            Some(DEADLINE),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(DEADLINE);
        let next = ceil_micros(next.min(DEADLINE));
        if next <= t {
            same_instant += 1;
            assert!(same_instant < 1000, "the simulation is stuck at {t:?}");
        } else {
            same_instant = 0;
            t = next;
        }
    }
}

fn outcome(at: Duration, failure: Option<Failure>, class: &'static str, reason: &str) -> Outcome {
    Outcome {
        failure,
        at,
        class,
        reason: reason.to_string(),
    }
}

enum Phase {
    Connect,
    Exchange(Box<Exchange>),
}

/// How reading the response ended early (as `check::http::Ended`).
enum Ended {
    Reset,
    Http(http::HttpError),
    Tls(String),
}

/// The HTTP(S) check's state: `check::http::exchange`'s goal, without
/// the trace.
struct Exchange {
    check: HttpCheck,
    parser: ResponseParser,
    body: Option<Body>,
    tls: Option<tls::Session>,
    outbox: Vec<u8>,
    buf: Vec<u8>,
    plain: Vec<u8>,
}

impl Exchange {
    fn new(kind: Kind) -> Exchange {
        let (len, tls) = match kind {
            Kind::Http(n) => (n, false),
            Kind::Https(n) => (n, true),
            Kind::Tcp => unreachable!("a TCP check has no exchange"),
        };
        let check = HttpCheck {
            method: Method::Get,
            host: TLS_NAME.to_string(),
            path: "/".to_string(),
            headers: Vec::new(),
            expect: Expect {
                md5: Some(hex::encode(Md5::digest(body(len)))),
                ..Expect::default()
            },
            limits: Limits::default(),
            trace_heads: false,
            trace_body: false,
            trace_c: false,
            tls: tls.then(|| TlsSetup {
                config: client_tls(),
                name: TLS_NAME.to_string(),
                unverified: None,
                cert_days: None,
            }),
        };
        let request = http::request("GET", &check.path, &check.host, &check.headers);
        let mut session = check.tls.as_ref().map(|setup| {
            tls::Session::new(setup.config.clone(), &setup.name, setup.unverified)
                .expect("a TLS session")
        });
        let outbox = match &mut session {
            Some(session) => {
                session.write(&request);
                Vec::new()
            }
            None => request,
        };
        Exchange {
            parser: ResponseParser::new(false, check.limits),
            body: Some(Body::new(&check)),
            check,
            tls: session,
            outbox,
            buf: vec![0u8; 16 * 1024],
            plain: Vec::new(),
        }
    }

    /// One wake-up of the exchange's goal.
    fn step(&mut self, stack: &mut Stack) -> Option<Result<(), Ended>> {
        let socket = stack.socket();
        let flush =
            |tls: &mut Option<tls::Session>, outbox: &mut Vec<u8>, socket: &mut tcp::Socket| {
                if let Some(session) = tls {
                    session.take_outgoing(outbox);
                }
                if !outbox.is_empty() && socket.can_send() {
                    let n = socket.send_slice(outbox).unwrap_or(0);
                    outbox.drain(..n);
                }
            };
        flush(&mut self.tls, &mut self.outbox, socket);
        while socket.can_recv() {
            let n = match socket.recv_slice(&mut self.buf) {
                Ok(n) if n > 0 => n,
                _ => break,
            };
            let data = match &mut self.tls {
                Some(session) => {
                    self.plain.clear();
                    if let Err(reason) = session.feed(&self.buf[..n], &mut self.plain) {
                        return Some(Err(Ended::Tls(reason)));
                    }
                    &self.plain[..]
                }
                None => &self.buf[..n],
            };
            if data.is_empty() {
                continue;
            }
            let body = self.body.as_mut().expect("the body until the verdict");
            match self.parser.feed(data, &mut |data| body.take(data)) {
                Ok(true) => return Some(Ok(())),
                Ok(false) => {}
                Err(e) => return Some(Err(Ended::Http(e))),
            }
        }
        flush(&mut self.tls, &mut self.outbox, socket);
        if stack.state() == State::Closed {
            return Some(Err(Ended::Reset));
        }
        if !stack.socket().may_recv() {
            return Some(self.parser.finish().map_err(Ended::Http));
        }
        None
    }

    fn verdict(&mut self, at: Duration, end: Result<(), Ended>) -> Outcome {
        match end {
            Ok(()) => {
                let mut details = Details {
                    tls: self.tls.as_ref().and_then(tls::Session::facts),
                    ..Details::default()
                };
                let body = self.body.take().expect("the body until the verdict");
                let (failure, reason) = judge(&self.check, &self.parser, body, &mut details);
                Outcome {
                    failure,
                    at,
                    class: if failure.is_none() {
                        "ok"
                    } else {
                        "validation"
                    },
                    reason,
                }
            }
            Err(Ended::Reset) => outcome(
                at,
                Some(Failure::Reset),
                "reset",
                "connection reset by the server",
            ),
            Err(Ended::Http(e)) => outcome(at, Some(Failure::Http), "http", &e.to_string()),
            Err(Ended::Tls(reason)) => outcome(at, Some(Failure::Tls), "tls", &reason),
        }
    }

    fn deadline(&self, at: Duration) -> Outcome {
        let (failure, reason) = if self.tls.as_ref().is_some_and(tls::Session::is_handshaking) {
            (Failure::Tls, "TLS handshake incomplete at the deadline")
        } else if self.parser.head().is_none() {
            (Failure::Timeout, "no response at the deadline")
        } else {
            (Failure::Timeout, "body incomplete at the deadline")
        };
        outcome(at, Some(failure), "deadline", reason)
    }
}

/// The response body of `len` bytes: printable, and different at every
/// offset of a line so that a misplaced segment shows in the MD5.
fn body(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + ((i / 64 + i % 64) % 26) as u8
            }
        })
        .collect()
}

/// The TLS material of the simulation: a CA and a server certificate
/// for [`TLS_NAME`] (Ed25519, fixed serials and dates: the handshake's
/// lengths never change), made once per process.
struct Material {
    ca: rustls::pki_types::CertificateDer<'static>,
    server: Arc<rustls::ServerConfig>,
}

fn material() -> &'static Material {
    static MATERIAL: OnceLock<Material> = OnceLock::new();
    MATERIAL.get_or_init(|| {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose, PKCS_ED25519, SerialNumber, date_time_ymd,
        };
        let dates = |params: &mut CertificateParams, serial: u64| {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2099, 1, 1);
            params.serial_number = Some(SerialNumber::from(serial));
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name
            .push(DnType::CommonName, "vipcheck sim CA");
        dates(&mut ca, 1);
        let ca_key = KeyPair::generate_for(&PKCS_ED25519).expect("CA key");
        let ca = CertifiedIssuer::self_signed(ca, ca_key).expect("CA");
        let mut params = CertificateParams::new(vec![TLS_NAME.to_string()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, TLS_NAME);
        dates(&mut params, 2);
        let key = KeyPair::generate_for(&PKCS_ED25519).expect("key");
        let cert = params.signed_by(&key, &ca).expect("certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
                    .expect("a PKCS#8 key"),
            )
            .expect("server TLS config");
        Material {
            ca: ca.der().clone(),
            server: Arc::new(server),
        }
    })
}

/// The client's TLS configuration, as `tls::config` makes it with `--ca`
/// (the sim's CA), made for each run: its session cache is the run's own,
/// so no run resumes another's session.
fn client_tls() -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(material().ca.clone()).expect("the sim's CA");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The simulated real server: a smoltcp interface with the real server's
/// MAC and the VIP (as a real server carries it on its loopback),
/// listening on VIP:PORT. For HTTP(S) it answers the request's head with
/// `200 OK` and the body, then closes (as nginx does for
/// `Connection: close`).
struct Server {
    iface: Interface,
    device: Wire,
    sockets: SocketSet<'static>,
    handle: SocketHandle,
    port: u16,
    kind: Kind,
    app: App,
}

/// The server's side of one connection.
#[derive(Default)]
struct App {
    request: Vec<u8>,
    out: Vec<u8>,
    answered: bool,
    closing: bool,
    tls: Option<rustls::ServerConnection>,
    tls_failed: bool,
}

impl Server {
    fn new(params: &FlowParams, kind: Kind, seed: u64) -> Server {
        let mut device = Wire::default();
        let mut config = Config::new(HardwareAddress::Ethernet(EthernetAddress(SERVER_MAC.0)));
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut device, SmolInstant::ZERO);
        iface.update_ip_addrs(|addrs| {
            let _ = addrs.push(IpCidr::new(IpAddr::V4(VIP).into(), 0));
        });
        // The LB's MAC is known (it sent the SYN): no ARP on the wire.
        let IpAddr::V4(local) = params.local_ip else {
            unreachable!("the sim is IPv4")
        };
        device.rx.push(Bytes::from(crate::wire::arp::reply_frame(
            params.local_mac,
            local,
            SERVER_MAC,
            VIP,
        )));
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
            tcp::SocketBuffer::new(vec![0; 64 * 1024]),
        );
        // Timestamps, as a Linux real server answers them.
        socket.set_tsval_generator(Some(sim_tsval));
        let mut sockets = SocketSet::new(Vec::new());
        let handle = sockets.add(socket);
        let mut server = Server {
            iface,
            device,
            sockets,
            handle,
            port: params.port,
            kind,
            app: App::default(),
        };
        server.listen();
        server
    }

    fn listen(&mut self) {
        let socket = self.sockets.get_mut::<tcp::Socket>(self.handle);
        socket
            .listen((IpAddr::V4(VIP), self.port))
            .expect("listen on VIP:PORT");
        self.app = App {
            tls: matches!(self.kind, Kind::Https(_)).then(|| {
                rustls::ServerConnection::new(material().server.clone()).expect("TLS server")
            }),
            ..App::default()
        };
    }

    fn receive(&mut self, frame: Bytes) {
        self.device.rx.push(frame);
    }

    fn step(&mut self, t: Duration) -> Vec<Bytes> {
        let now = SmolInstant::from_micros(t.as_micros() as i64);
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.serve();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.device.tx.drain(..).map(Bytes::from).collect()
    }

    fn poll_delay(&mut self, t: Duration) -> Option<Duration> {
        let now = SmolInstant::from_micros(t.as_micros() as i64);
        self.iface
            .poll_delay(now, &self.sockets)
            .map(|d| Duration::from_micros(d.total_micros()))
    }

    fn serve(&mut self) {
        if self.sockets.get::<tcp::Socket>(self.handle).state() == State::Closed {
            // A real server listens again for the next connection.
            self.listen();
            return;
        }
        let len = match self.kind {
            Kind::Tcp => return,
            Kind::Http(n) | Kind::Https(n) => n,
        };
        let socket = self.sockets.get_mut::<tcp::Socket>(self.handle);
        let app = &mut self.app;
        let mut cipher = Vec::new();
        while socket.can_recv() {
            let got = socket.recv(|data| {
                let n = data.len();
                (n, data.to_vec())
            });
            match got {
                Ok(data) if !data.is_empty() => match app.tls {
                    Some(_) => cipher.extend_from_slice(&data),
                    None => app.request.extend_from_slice(&data),
                },
                _ => break,
            }
        }
        if let Some(conn) = &mut app.tls {
            let mut rest = &cipher[..];
            while !rest.is_empty() && !app.tls_failed {
                match conn.read_tls(&mut rest) {
                    Ok(0) | Err(_) => app.tls_failed = true,
                    Ok(_) => {}
                }
                if conn.process_new_packets().is_err() {
                    app.tls_failed = true;
                }
                let mut plain = [0u8; 4096];
                loop {
                    match std::io::Read::read(&mut conn.reader(), &mut plain) {
                        Ok(n) if n > 0 => app.request.extend_from_slice(&plain[..n]),
                        _ => break,
                    }
                }
            }
        }
        if !app.answered && app.request.windows(4).any(|w| w == b"\r\n\r\n") {
            app.answered = true;
            let mut response = format!(
                "HTTP/1.1 200 OK\r\nServer: vipcheck-sim\r\nContent-Type: text/plain\r\n\
                 Content-Length: {len}\r\nConnection: close\r\n\r\n"
            )
            .into_bytes();
            response.extend_from_slice(&body(len));
            match &mut app.tls {
                Some(conn) => {
                    let _ = std::io::Write::write_all(&mut conn.writer(), &response);
                    conn.send_close_notify();
                }
                None => app.out = response,
            }
        }
        if let Some(conn) = &mut app.tls {
            while conn.wants_write() {
                if conn.write_tls(&mut app.out).is_err() {
                    break;
                }
            }
        }
        if !app.out.is_empty() && socket.can_send() {
            let n = socket.send_slice(&app.out).unwrap_or(0);
            app.out.drain(..n);
        }
        if (app.answered || app.tls_failed) && app.out.is_empty() && !app.closing {
            app.closing = true;
            socket.close();
        }
    }
}

/// The server's device: frames in and out.
#[derive(Default)]
struct Wire {
    rx: Vec<Bytes>,
    tx: Vec<Vec<u8>>,
}

impl phy::Device for Wire {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _now: SmolInstant) -> Option<(RxToken, TxToken<'_>)> {
        if self.rx.is_empty() {
            return None;
        }
        let frame = self.rx.remove(0);
        Some((RxToken(frame), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _now: SmolInstant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        // Checksums computed and verified (a corrupted frame is dropped,
        // as a host's stack drops it).
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
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

/// A cell of the table: `runs` seeded runs (seeds 1..=runs).
pub struct Tally {
    pub passed: usize,
    pub runs: usize,
    /// Simulated times of the passing runs, sorted.
    pub times: Vec<Duration>,
    /// Failures by class, in class order.
    pub failures: BTreeMap<&'static str, usize>,
}

pub fn cell(kind: Kind, faults: Faults, runs: usize) -> Tally {
    let mut cell = Tally {
        passed: 0,
        runs,
        times: Vec::new(),
        failures: BTreeMap::new(),
    };
    for seed in 1..=runs as u64 {
        let outcome = run(kind, faults, seed);
        if outcome.failure.is_none() {
            cell.passed += 1;
            cell.times.push(outcome.at);
        } else {
            *cell.failures.entry(outcome.class).or_default() += 1;
        }
    }
    cell.times.sort();
    cell
}

/// The default native check's budget: `-t 1000` less its teardown reserve.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(970);

/// The rows of the fault table: a name and the faults (both directions).
pub fn fault_rows() -> Vec<(&'static str, Faults)> {
    let f = Faults::default();
    vec![
        ("none", f),
        ("drop 1%", Faults { drop: 0.01, ..f }),
        ("drop 5%", Faults { drop: 0.05, ..f }),
        ("drop 10%", Faults { drop: 0.10, ..f }),
        (
            "duplicate 5%",
            Faults {
                duplicate: 0.05,
                ..f
            },
        ),
        ("reorder 5%", Faults { reorder: 0.05, ..f }),
        ("delay 5%", Faults { delay: 0.05, ..f }),
        ("corrupt 5%", Faults { corrupt: 0.05, ..f }),
        (
            "all five 2% each",
            Faults {
                drop: 0.02,
                duplicate: 0.02,
                reorder: 0.02,
                delay: 0.02,
                corrupt: 0.02,
            },
        ),
    ]
}

pub const TABLE_RUNS: usize = 50;
pub const TABLE_KINDS: [Kind; 3] = [Kind::Tcp, Kind::Http(20 * 1024), Kind::Https(20 * 1024)];

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The whole table, as the snapshot holds it.
pub fn table() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# vipcheck checks over a simulated wire with seeded faults (src/sim.rs).\n\
         # Each cell: {TABLE_RUNS} runs, seeds 1..={TABLE_RUNS}; faults in both directions, per frame;\n\
         # one-way latency {} us; delay {}-{} ms; reorder holds a frame until the next (at most {} ms);\n\
         # the client is vipcheck's stack (early resend from 200 ms); the server is smoltcp: its RTO is\n\
         # at least 1 s and it ignores a retransmitted SYN (Linux answers it), so a lost SYN-ACK costs 1 s.\n\
         # pass: healthy verdict (http/https: 200 and the body's MD5) within the {} s deadline;\n\
         # <970ms: of those, how many within the default -t 1000 budget; times are simulated ms of passing runs.\n\
         # Regenerate: VIPCHECK_BLESS=1 cargo test -p checker --lib sim::",
        LATENCY.as_micros(),
        DELAY_MIN.as_millis(),
        DELAY_MAX.as_millis(),
        REORDER_HOLD.as_millis(),
        DEADLINE.as_secs(),
    );
    let _ = writeln!(
        out,
        "{:<18} {:<14} {:>6} {:>7} {:>9} {:>9} {:>9}  failures",
        "faults", "check", "pass", "<970ms", "median", "p90", "max"
    );
    for (name, faults) in fault_rows() {
        for kind in TABLE_KINDS {
            let c = cell(kind, faults, TABLE_RUNS);
            let pick = |q: f64| -> String {
                if c.times.is_empty() {
                    return "-".into();
                }
                let i = ((c.times.len() - 1) as f64 * q).round() as usize;
                ms(c.times[i])
            };
            let fast = c.times.iter().filter(|t| **t <= DEFAULT_BUDGET).count();
            let failures = if c.failures.is_empty() {
                "-".to_string()
            } else {
                c.failures
                    .iter()
                    .map(|(class, n)| format!("{class} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "{:<18} {:<14} {:>6} {:>7} {:>9} {:>9} {:>9}  {failures}",
                name,
                kind.name(),
                format!("{}/{}", c.passed, c.runs),
                fast,
                pick(0.5),
                pick(0.9),
                pick(1.0),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Bytes {
        Bytes::from(vec![n; 60])
    }

    #[test]
    fn a_clean_wire_delivers_in_order_after_the_latency() {
        let mut wire = FaultInjector::new(Faults::default(), 7);
        for n in 0..5 {
            wire.send(Duration::ZERO, frame(n));
        }
        assert!(wire.deliver(LATENCY - Duration::from_micros(1)).is_empty());
        let got = wire.deliver(LATENCY);
        assert_eq!(got, (0..5).map(frame).collect::<Vec<_>>());
        assert_eq!(wire.next_at(), None);
    }

    #[test]
    fn each_fault_does_what_it_says() {
        let all = |faults| {
            let mut wire = FaultInjector::new(faults, 7);
            wire.send(Duration::ZERO, frame(1));
            wire.send(Duration::ZERO, frame(2));
            (wire.deliver(Duration::from_secs(1)), wire.stats)
        };
        let f = Faults::default();
        assert!(all(Faults { drop: 1.0, ..f }).0.is_empty());
        assert_eq!(
            all(Faults {
                duplicate: 1.0,
                ..f
            })
            .0,
            vec![frame(1), frame(1), frame(2), frame(2)]
        );
        // The first is held until the second has gone, then follows it;
        // the second finds a frame held already and goes as it is.
        let (got, stats) = all(Faults { reorder: 1.0, ..f });
        assert_eq!((got, stats.reordered), (vec![frame(2), frame(1)], 1));
        let (got, stats) = all(Faults { corrupt: 1.0, ..f });
        assert_eq!(stats.corrupted, 2);
        for (got, want) in got.iter().zip([frame(1), frame(2)]) {
            let differ = got.iter().zip(want.iter()).filter(|(a, b)| a != b).count();
            assert_eq!(differ, 1, "{got:?}");
        }
        let (got, stats) = all(Faults { delay: 1.0, ..f });
        assert_eq!((got.len(), stats.delayed, stats.sent), (2, 2, 2));
        let (_, stats) = all(Faults { drop: 1.0, ..f });
        assert_eq!((stats.dropped, stats.duplicated), (2, 0));
    }

    #[test]
    fn a_seed_gives_the_same_run() {
        let faults = fault_rows().last().unwrap().1;
        for kind in TABLE_KINDS {
            for seed in 1..=5 {
                assert_eq!(
                    run(kind, faults, seed),
                    run(kind, faults, seed),
                    "{kind:?} seed {seed}"
                );
            }
        }
    }

    #[test]
    fn clean_checks_pass_at_once() {
        for kind in TABLE_KINDS {
            let outcome = run(kind, Faults::default(), 1);
            assert!(outcome.failure.is_none(), "{kind:?}: {}", outcome.reason);
            assert!(
                outcome.at < Duration::from_millis(50),
                "{kind:?}: {outcome:?}"
            );
        }
    }

    /// The table against `tests/snapshots/faults.txt`; `VIPCHECK_BLESS=1`
    /// writes it.
    #[test]
    fn fault_table() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/faults.txt");
        let table = table();
        if std::env::var_os("VIPCHECK_BLESS").is_some_and(|v| v == "1") {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &table).unwrap();
            return;
        }
        let stored = std::fs::read_to_string(&path).unwrap_or_default();
        if stored != table {
            let diff: Vec<String> = stored
                .lines()
                .zip(table.lines())
                .filter(|(a, b)| a != b)
                .map(|(a, b)| format!("- {a}\n+ {b}"))
                .collect();
            panic!(
                "the fault table changed (rewrite it with VIPCHECK_BLESS=1 if that is \
                 intended):\n{}\n\nnew table:\n{table}",
                diff.join("\n")
            );
        }
    }
}
