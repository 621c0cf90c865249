//! Checks over the VIP path, and the flow they share: resolve the real
//! server, reserve a port, register the flow for capture, and drive the
//! userspace stack until the check's goal or its deadline.

pub(crate) mod dispatch;
pub(crate) mod exchange;
pub(crate) mod http;
pub(crate) mod kernel;
pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod verdict;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use checker_common::FlowKey;

use crate::check::verdict::Failure;
use crate::check::verdict::{Details, Verdict};
use crate::engine::Engine;
use crate::engine::neighbour::Lookup;
use crate::engine::port::{Port, Registration};
use crate::engine::preflight::Plan;
use crate::engine::resolve;
use crate::engine::stack::{FlowParams, Stack};
use crate::engine::stop::Stop;
use crate::error::{Error, Result};
use crate::probe::{CloseMode, Probe};
use crate::sys::netdev::Mac;
use crate::wire::egress::Egress;

/// What a check keeps back from its timeout to end its process in time.
const TEARDOWN: Duration = Duration::from_millis(30);

/// A check flow, ready to exchange frames with the real server through the VIP.
pub(crate) struct Flow {
    pub(crate) stack: Stack,
    port: Rc<Port>,
    stop: Rc<Stop>,
    egress: Egress,
    deadline: Deadline,
    pub(crate) started: Instant,
    /// How long this check took to load and attach the XDP program, when
    /// it had to (not counted in `started`).
    pub(crate) attached: Option<Duration>,
    /// Time from the start to the SYN-ACK, once it came.
    pub(crate) connected: Option<Duration>,
    pub(crate) real_server: IpAddr,
    pub(crate) real_server_mac: Mac,
    /// The flow's frames come here; dropping it removes the flow's entry.
    registration: Registration,
    /// Keeps our source port reserved in the kernel while the check runs.
    /// Declared after `registration`: the flow's entry is removed before
    /// the port is free for another process to register.
    _port: socket2::Socket,
}

/// How opening a flow ended.
pub(crate) enum Opened {
    Ready(Box<Flow>),
    /// The check ran and failed before any TCP (no ARP reply).
    Failed(Box<Verdict>),
}

impl Flow {
    /// Prepares the flow of `target` on `engine`; `what` names the check in
    /// a verdict. Nothing is sent or attached before the preflight has
    /// accepted the target.
    pub(crate) async fn open(engine: &Engine, target: &Probe, what: &str) -> Result<Opened> {
        engine.stop.check()?;
        let Plan {
            dev,
            source,
            egress,
        } = engine.preflight(target)?;
        // The process must have ended by the timeout: keep back the time
        // its teardown takes (RST, unregistering, and the kernel's RCU
        // grace period when the AF_PACKET socket closes, ~10 ms).
        let answer_within = target.timeout - reserve(target.timeout);
        // The server's clock starts once the capture is ready: loading and
        // attaching the program (the first check on a bare interface), or
        // waiting for another process's attach under the lock (taken again
        // to claim a slot), is not the server's time. Waiting for a free
        // slot is bounded by the timeout on its own (all 256 busy: rare).
        let (port, attached) = engine.port(&dev, target, Instant::now() + answer_within)?;
        let started = Instant::now();
        let mut deadline = Deadline::new(started, target);
        let stop = engine.stop.clone();

        if source.is_ipv4() != target.real_server.is_ipv4() {
            return Err(Error::Usage(
                "REAL_SERVER and the source address are of different IP families".into(),
            ));
        }
        let resolved = neighbour(
            &port,
            &stop,
            &egress,
            source,
            target.real_server,
            deadline.due,
        )
        .await?;
        let Some(real_server_mac) = resolved else {
            return Ok(Opened::Failed(Box::new(Verdict {
                failure: Some(Failure::NoNeighbour),
                what: what.to_string(),
                reason: format!(
                    "no {} from {} on {} within {}",
                    if source.is_ipv4() {
                        "ARP reply"
                    } else {
                        "neighbour advertisement"
                    },
                    target.real_server,
                    dev.name,
                    deadline.window()
                ),
                elapsed: started.elapsed(),
                attached,
                details: Details::default(),
            })));
        };

        deadline.replied(Instant::now());
        let (port_socket, local_port) = reserve_port(source)?;
        let key = match (target.vip, source) {
            (IpAddr::V4(vip), IpAddr::V4(local)) => {
                FlowKey::ipv4(vip.octets(), target.port, local.octets(), local_port)
            }
            (vip, local) => FlowKey::ipv6(
                v6(vip).octets(),
                target.port,
                v6(local).octets(),
                local_port,
            ),
        };
        let Some(registration) = port.register(key)? else {
            return Err(Error::bpf_found(format!(
                "flow {source}:{local_port} is registered by another process"
            )));
        };
        let stack = Stack::connect(
            FlowParams {
                local_mac: dev.mac,
                local_ip: source,
                local_port,
                vip: target.vip,
                port: target.port,
                real_server_mac,
                mtu: dev.mtu,
            },
            Instant::now(),
        );
        Ok(Opened::Ready(Box::new(Flow {
            stack,
            port,
            stop,
            egress,
            deadline,
            started,
            attached,
            connected: None,
            real_server: target.real_server,
            real_server_mac,
            registration,
            _port: port_socket,
        })))
    }

    /// Runs the stack until `goal` returns `Some` or the deadline passes
    /// (`None`). Sleeps on the flow's inbox and the stack's next timer.
    pub(crate) async fn drive<T>(
        &mut self,
        mut goal: impl FnMut(&mut Stack) -> Option<T>,
    ) -> Result<Option<T>> {
        loop {
            let now = Instant::now();
            self.receive(now);
            self.stack.poll(now);
            self.transmit()?;
            if let Some(done) = goal(&mut self.stack) {
                return Ok(Some(done));
            }
            let due = self.deadline.due;
            if now >= due {
                return Ok(None);
            }
            let wake = match self.stack.poll_delay(now) {
                Some(delay) => (now + delay).min(due),
                None => due,
            };
            self.port
                .wait(&self.registration.inbox, &self.stop, wake)
                .await?;
        }
    }

    /// Feeds the frames captured for this flow to the stack.
    fn receive(&mut self, now: Instant) {
        let frames = self.registration.inbox.take();
        if !frames.is_empty() {
            self.deadline.replied(now);
        }
        for frame in frames {
            self.stack.receive(frame);
        }
    }

    fn transmit(&mut self) -> Result<()> {
        for frame in self.stack.take_outgoing(Instant::now()) {
            self.port.send(&frame, &self.egress)?;
        }
        Ok(())
    }

    /// Ends the connection as asked, within the deadline. A FIN close that
    /// does not complete in time is ended with an RST.
    pub(crate) async fn close(&mut self, mode: CloseMode) -> Result<()> {
        use smoltcp::socket::tcp::State;
        if mode == CloseMode::Fin {
            self.stack.socket().close();
            // TIME-WAIT means we have acknowledged the server's FIN: done,
            // nothing of ours lingers (the stack goes away with us).
            let closed = self
                .drive(|s| matches!(s.state(), State::TimeWait | State::Closed).then_some(()))
                .await?;
            if closed.is_some() {
                return Ok(());
            }
        }
        self.stack.socket().abort();
        self.stack.poll(Instant::now());
        self.transmit()
    }

    /// Time since the check started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The verdict of this flow's check, timed now: healthy when
    /// `failure` is `None`.
    pub(crate) fn verdict(&self, failure: Option<Failure>, what: &str, reason: String) -> Verdict {
        Verdict {
            failure,
            what: what.to_string(),
            reason,
            elapsed: self.elapsed(),
            attached: self.attached,
            details: Details {
                connect: self.connected,
                ..Details::default()
            },
        }
    }

    /// How long the server had, for a verdict: see [`Deadline::window`].
    pub(crate) fn window(&self) -> String {
        self.deadline.window()
    }

    /// The real server did not answer through the VIP: the MAC it was sent
    /// to is asked again by the next check (it may have changed).
    fn unanswered(&self) {
        self.port
            .neighbours
            .borrow_mut()
            .forget(self.real_server, self.real_server_mac);
    }
}

/// A flow dropped before it ended its connection (an error on the way,
/// or a stop) resets it: the real server keeps nothing open for us.
impl Drop for Flow {
    fn drop(&mut self) {
        use smoltcp::socket::tcp::State;
        if !matches!(
            self.stack.state(),
            State::Closed | State::TimeWait | State::Listen
        ) {
            self.stack.socket().abort();
            self.stack.poll(Instant::now());
            let _ = self.transmit();
        }
    }
}

/// The real server's MAC: known to the port's cache, or asked for by this
/// flow (ARP for IPv4, neighbour discovery for IPv6), or by another flow
/// of the engine that is asking already. `None`: no answer by `due`.
async fn neighbour(
    port: &Rc<Port>,
    stop: &Stop,
    egress: &Egress,
    source: IpAddr,
    real_server: IpAddr,
    due: Instant,
) -> Result<Option<Mac>> {
    loop {
        let lookup = port
            .neighbours
            .borrow_mut()
            .lookup(real_server, Instant::now());
        match lookup {
            Lookup::Known(mac) => return Ok(Some(mac)),
            Lookup::Wait(done) => {
                let done = done.notified();
                tokio::select! {
                    e = stop.stopped() => return Err(e),
                    () = done => {}
                    () = tokio::time::sleep_until(due.into()) => return Ok(None),
                }
            }
            Lookup::Ask(turn) => {
                // Given up if this flow fails or is cancelled: the next asks.
                struct Turn<'a>(&'a Port, Option<crate::engine::neighbour::Asking>);
                impl Drop for Turn<'_> {
                    fn drop(&mut self) {
                        if let Some(turn) = &self.1 {
                            self.0.neighbours.borrow_mut().abandon(turn);
                        }
                    }
                }
                let mut turn = Turn(port, Some(turn));
                let mac = match (source, real_server) {
                    (IpAddr::V4(source), IpAddr::V4(rs)) => {
                        resolve::arp(port, stop, egress, source, rs, due).await?
                    }
                    (IpAddr::V6(source), IpAddr::V6(rs)) => {
                        resolve::solicit(port, stop, egress, source, rs, due).await?
                    }
                    _ => None,
                };
                if let Some(asking) = turn.1.take() {
                    port.neighbours
                        .borrow_mut()
                        .learned(asking, mac, Instant::now());
                }
                return Ok(mac);
            }
        }
    }
}

/// Drives the handshake: `Ok(Ok(()))` on SYN-ACK, `Ok(Err((failure,
/// reason)))` when the server refused or did not answer.
pub(crate) async fn connect(flow: &mut Flow) -> Result<Result<(), (Failure, String)>> {
    use smoltcp::socket::tcp::State;
    let answer = flow
        .drive(|stack| match stack.state() {
            State::SynSent => None,
            State::Closed => Some(false),
            _ => Some(true),
        })
        .await?;
    Ok(match answer {
        Some(true) => {
            flow.connected = Some(flow.elapsed());
            Ok(())
        }
        Some(false) => Err((Failure::Refused, "connection refused (RST)".to_string())),
        None => {
            flow.unanswered();
            Err((
                Failure::NoAnswer,
                format!(
                    "no answer within {} (the real server answers {} at {}; does it carry the VIP on its loopback?)",
                    flow.window(),
                    if flow.real_server.is_ipv4() {
                        "ARP"
                    } else {
                        "neighbour solicitations"
                    },
                    flow.real_server_mac
                ),
            ))
        }
    })
}

/// What a check keeps back from a timeout to end its process in time.
fn reserve(timeout: Duration) -> Duration {
    TEARDOWN.min(timeout / 10)
}

/// When a check gives up waiting for the server.
#[derive(Clone, Copy, Debug)]
struct Deadline {
    /// The whole check's end: the timeout less the teardown reserve.
    last: Instant,
    timeout: Duration,
    /// With a per-reply timeout, each reply moves `due` on by this much.
    reply: Option<Duration>,
    /// When the wait for the next reply ends.
    due: Instant,
}

impl Deadline {
    fn new(started: Instant, target: &Probe) -> Deadline {
        let last = started + target.timeout - reserve(target.timeout);
        Deadline {
            last,
            timeout: target.timeout,
            reply: target.reply_timeout,
            due: target
                .reply_timeout
                .map_or(last, |r| (started + r).min(last)),
        }
    }

    /// The server sent something at `now`.
    fn replied(&mut self, now: Instant) {
        if let Some(reply) = self.reply {
            self.due = (now + reply).min(self.last);
        }
    }

    /// How long the server had, as a verdict says it, agreeing with the
    /// elapsed time it shows: "970 ms (-t 1000 less 30 ms to end in time)",
    /// or "500 ms (-t 500, for each reply)".
    fn window(&self) -> String {
        if let Some(reply) = self.reply {
            return format!(
                "{} ms (-t {} for each reply)",
                reply.as_millis(),
                reply.as_millis()
            );
        }
        let reserve = reserve(self.timeout);
        format!(
            "{} ms (-t {} less {} ms to end in time)",
            (self.timeout - reserve).as_millis(),
            self.timeout.as_millis(),
            reserve.as_millis()
        )
    }
}

/// Runs one check of `target` on `engine`: opens its flow (a failure to
/// resolve the real server is a verdict already), runs `body` on it, and
/// turns a stop signal into a failing verdict once the flow is gone (its
/// entry removed). Several may run at once on one engine.
pub(crate) async fn run(
    engine: &Engine,
    target: &Probe,
    what: &str,
    body: impl AsyncFnOnce(&mut Flow) -> Result<Verdict>,
) -> Result<Verdict> {
    let begun = Instant::now();
    let result = async {
        match Flow::open(engine, target, what).await? {
            Opened::Ready(mut flow) => body(&mut flow).await,
            Opened::Failed(verdict) => Ok(*verdict),
        }
    }
    .await;
    match result {
        Err(Error::Interrupted(signal)) => Ok(Verdict {
            failure: Some(Failure::Interrupted),
            what: what.to_string(),
            reason: format!("interrupted by {signal} before a verdict"),
            elapsed: begun.elapsed(),
            attached: None,
            details: Details::default(),
        }),
        other => other,
    }
}

/// Binds a kernel TCP socket to `source:0`: the kernel picks a free port and
/// keeps it ours, so no kernel connection can collide with the check flow.
fn reserve_port(source: IpAddr) -> Result<(socket2::Socket, u16)> {
    let addr = SocketAddr::new(source, 0);
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )
    .map_err(|e| Error::io("creating a TCP socket", e))?;
    socket
        .bind(&addr.into())
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EADDRNOTAVAIL) => Error::Usage(format!(
                "source address {source} is not an address of this host"
            )),
            _ => Error::io(format!("reserving a port on {source}"), e),
        })?;
    let port = socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .ok_or_else(|| {
            Error::io(
                "reading the reserved port",
                std::io::Error::other("no port"),
            )
        })?;
    Ok((socket, port))
}

/// `ip` as IPv6 (IPv4 mapped: never happens, the preflight keeps one family).
fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
    }
}
