//! Checks over a simulated wire: the check's own stack ([`Stack`]), a
//! seeded [`FaultInjector`] in each direction (drop, duplicate, reorder,
//! delay, corrupt, as smoltcp's `FaultInjector` does for a device;
//! [`faults`]), and a simulated real server (a second smoltcp interface
//! that carries the VIP, with the real server's MAC, serving an HTTP
//! response, over TLS for https; [`server`] on its device, [`wire`]),
//! driven over simulated time: no namespace, no XDP, no wall clock.
//!
//! The client side is the real one: [`Stack`] (with its early
//! retransmission and egress filter), driven as `Flow::drive` drives it;
//! the goal of `check::connect`, then the real exchange ([`Exchange`],
//! the sans-IO state machine of `check::exchange`) moved by the real
//! check's wake-up ([`step`]), with the real TLS session and verdict.
//! Time advances to the next event (a stack's timer, a frame's arrival),
//! so a run of ten simulated seconds takes milliseconds.
//!
//! Deterministic: the seed fixes every fault, both stacks' initial
//! sequence numbers and the TCP timestamp clocks; TLS's own randomness
//! changes bytes but never a length (Ed25519 certificates, X25519), so
//! a seed gives the same run, frame for frame in timing, every time.
//!
//! `fault_table` below is a snapshot test: `tests/snapshots/faults.txt`
//! holds the table; `VIPCHECK_BLESS=1 cargo test -p checker --lib sim::`
//! rewrites it.

mod faults;
mod server;
mod wire;

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use md5::{Digest, Md5};
use smoltcp::socket::tcp::State;
use smoltcp::time::Instant as SmolInstant;

use self::faults::derive;
pub(crate) use self::faults::{DELAY_MAX, DELAY_MIN, FaultInjector, Faults, LATENCY, REORDER_HOLD};
use self::server::{Server, body, client_tls};
use crate::check::exchange::{self, End, Exchange, Input};
use crate::check::http::step;
use crate::check::verdict::Failure;
use crate::engine::stack::{FlowParams, Stack};
use crate::probe::{Expect, HttpCheck, Method, TlsSetup};
use crate::sys::netdev::Mac;
use crate::wire::http::Limits;

/// What a simulated check checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The handshake (healthy on SYN-ACK).
    Tcp,
    /// GET of a body of this many bytes (its MD5 must match).
    Http(usize),
    /// The same over TLS (certificate verified against the sim's CA).
    Https(usize),
}

impl Kind {
    /// The check as the command line would make it: a GET of `/` whose
    /// body's MD5 must match, over TLS verified against the sim's CA for
    /// https; `None` for TCP.
    fn check(self) -> Option<HttpCheck> {
        let (len, tls) = match self {
            Kind::Http(n) => (n, false),
            Kind::Https(n) => (n, true),
            Kind::Tcp => return None,
        };
        Some(HttpCheck {
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
        })
    }

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
pub(crate) struct Outcome {
    /// Why the check failed (as the real check's verdict would say);
    /// `None` when healthy.
    pub(crate) failure: Option<Failure>,
    /// Simulated time from the start to the verdict.
    pub(crate) at: Duration,
    /// Short: "ok", "no answer", "refused", "reset", "tls", "http",
    /// "deadline", "validation".
    pub(crate) class: &'static str,
    /// The verdict's reason, as the check words it.
    pub(crate) reason: String,
}

/// The check's deadline in the simulation.
pub(crate) const DEADLINE: Duration = Duration::from_secs(10);
/// The deadline as a verdict says it.
const WINDOW: &str = "10000 ms (the simulation's deadline)";

const CLIENT_MAC: Mac = Mac([2, 0, 0, 0, 0, 1]);
pub(super) const SERVER_MAC: Mac = Mac([2, 0, 0, 0, 0, 0x0b]);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub(super) const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub(super) const TLS_NAME: &str = "sim.example";

thread_local! {
    /// The simulated clock of the run on this thread, in ms: the TCP
    /// timestamp clock of both stacks.
    static CLOCK_MS: Cell<u32> = const { Cell::new(0) };
}

pub(super) fn sim_tsval() -> u32 {
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
pub(crate) fn run(kind: Kind, faults: Faults, seed: u64) -> Outcome {
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
    let check = kind.check();
    let mut buf = vec![0u8; 16 * 1024];
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
                    // The exchange's drive starts at once, at this instant,
                    // as `check::http` starts it.
                    let check = check.as_ref().expect("an HTTP(S) check");
                    let exchange =
                        Exchange::new(check, exchange::request(check), now).expect("a TLS session");
                    phase = Phase::Exchange(Box::new(exchange));
                    continue;
                }
            },
            Phase::Exchange(exchange) => {
                if step(exchange, &mut client, &mut buf, || now) {
                    return concluded(t, phase);
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
            return match &mut phase {
                Phase::Connect => outcome(
                    t,
                    Some(Failure::NoAnswer),
                    "no answer",
                    "no answer within the deadline",
                ),
                Phase::Exchange(exchange) => {
                    exchange.input(Input::Deadline(WINDOW));
                    concluded(t, phase)
                }
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

/// Where a simulated check is.
enum Phase<'c> {
    Connect,
    Exchange(Box<Exchange<'c>>),
}

/// The outcome of an exchange that is over, classed by how it ended.
fn concluded(at: Duration, phase: Phase<'_>) -> Outcome {
    let Phase::Exchange(exchange) = phase else {
        unreachable!("concluded only after the exchange")
    };
    let class = match exchange.end() {
        Some(End::Complete) => None,
        Some(End::Reset) => Some("reset"),
        Some(End::Http(_)) => Some("http"),
        Some(End::Tls(_)) => Some("tls"),
        Some(End::Deadline(_)) | None => Some("deadline"),
    };
    let conclusion = exchange.conclude();
    Outcome {
        class: class.unwrap_or(if conclusion.failure.is_none() {
            "ok"
        } else {
            "validation"
        }),
        failure: conclusion.failure,
        at,
        reason: conclusion.reason,
    }
}

/// A cell of the table: `runs` seeded runs (seeds 1..=runs).
pub(crate) struct Tally {
    pub(crate) passed: usize,
    pub(crate) runs: usize,
    /// Simulated times of the passing runs, sorted.
    pub(crate) times: Vec<Duration>,
    /// Failures by class, in class order.
    pub(crate) failures: BTreeMap<&'static str, usize>,
}

pub(crate) fn cell(kind: Kind, faults: Faults, runs: usize) -> Tally {
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
pub(crate) const DEFAULT_BUDGET: Duration = Duration::from_millis(970);

/// The rows of the fault table: a name and the faults (both directions).
pub(crate) fn fault_rows() -> Vec<(&'static str, Faults)> {
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

pub(crate) const TABLE_RUNS: usize = 50;
pub(crate) const TABLE_KINDS: [Kind; 3] =
    [Kind::Tcp, Kind::Http(20 * 1024), Kind::Https(20 * 1024)];

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// The whole table, as the snapshot holds it.
pub(crate) fn table() -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# vipcheck checks over a simulated wire with seeded faults (src/sim/).\n\
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
