//! Checks over the VIP path, and the flow they share: resolve the real
//! server, reserve a port, register the flow for capture, and drive the
//! userspace stack until the check's goal or its deadline.

pub(crate) mod datagram;
pub(crate) mod dispatch;
pub(crate) mod dns;
pub(crate) mod exchange;
pub(crate) mod expect;
pub(crate) mod http;
pub(crate) mod kernel;
pub(crate) mod ping;
pub(crate) mod smtp;
pub(crate) mod stream;
pub(crate) mod tcp;
pub(crate) mod tls;
pub(crate) mod udp;
pub(crate) mod verdict;

use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use checker_common::{FlowKey, PROTO_ICMP, PROTO_ICMPV6, PROTO_TCP};

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
use crate::wire::datagram::{IcmpError, Reply, parse as parse_datagram};
use crate::wire::egress::Egress;

/// What a check keeps back from its timeout to end its process in time.
const TEARDOWN: Duration = Duration::from_millis(30);

/// The way to the real server through the VIP that every check flow
/// opens first: the preflight's plan, the interface's port, the real
/// server's MAC, and the deadline. A TCP check builds a [`Flow`] on it, a
/// UDP or ICMP check a [`datagram::Datagram`].
pub(crate) struct Path {
    port: Rc<Port>,
    stop: Rc<Stop>,
    egress: Egress,
    deadline: Deadline,
    pub(crate) started: Instant,
    /// How long this check took to load and attach the XDP program, when
    /// it had to (not counted in `started`).
    pub(crate) attached: Option<Duration>,
    pub(crate) real_server: IpAddr,
    pub(crate) real_server_mac: Mac,
    pub(crate) local_mac: Mac,
    /// Our source address (IPv4 or IPv6, the VIP's family).
    pub(crate) source: IpAddr,
    pub(crate) vip: IpAddr,
    /// The service port (zero for ICMP).
    pub(crate) remote_port: u16,
    pub(crate) mtu: usize,
}

/// A TCP check flow, ready to exchange frames with the real server
/// through the VIP.
pub(crate) struct Flow {
    pub(crate) path: Path,
    pub(crate) stack: Stack,
    /// Time from the start to the SYN-ACK, once it came.
    pub(crate) connected: Option<Duration>,
    /// The first ICMP error that quoted one of our segments, and who sent
    /// it (the XDP program hands them to the flow they quote).
    icmp_error: Option<(IcmpError, IpAddr)>,
    /// The flow's frames come here; dropping it removes the flow's entry.
    registration: Registration,
    /// Keeps our source port reserved in the kernel while the check runs.
    /// Declared after `registration`: the flow's entry is removed before
    /// the port is free for another process to register.
    _port: socket2::Socket,
}

/// How opening a flow ended.
pub(crate) enum Opened<T> {
    Ready(Box<T>),
    /// The check ran and failed before its first packet (no ARP reply).
    Failed(Box<Verdict>),
}

/// A check flow: opened on a [`Path`] by [`run`].
pub(crate) trait Open: Sized {
    /// Prepares the flow of `target` on `engine`; `what` names the check
    /// in a verdict. Nothing is sent or attached before the preflight has
    /// accepted the target.
    async fn open(engine: &Engine, target: &Probe, what: &str) -> Result<Opened<Self>>;
}

impl Path {
    /// Runs the preflight, opens the port and resolves the real server's
    /// MAC; a failure to resolve it is a verdict already.
    pub(crate) async fn open(engine: &Engine, target: &Probe, what: &str) -> Result<Opened<Path>> {
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
        Ok(Opened::Ready(Box::new(Path {
            port,
            stop,
            egress,
            deadline,
            started,
            attached,
            real_server: target.real_server,
            real_server_mac,
            local_mac: dev.mac,
            source,
            vip: target.vip,
            remote_port: target.port,
            mtu: dev.mtu,
        })))
    }

    /// The key of this path's flow from `remote` (the VIP, or another
    /// address a reply may come from) to our `local_port` over `proto`.
    pub(crate) fn key(&self, remote: IpAddr, local_port: u16, proto: u8) -> FlowKey {
        let remote_port = if proto == PROTO_ICMP || proto == PROTO_ICMPV6 {
            0
        } else {
            self.remote_port
        };
        match (remote, self.source) {
            (IpAddr::V4(remote), IpAddr::V4(local)) => {
                FlowKey::ipv4(remote.octets(), remote_port, local.octets(), local_port)
            }
            (remote, local) => FlowKey::ipv6(
                v6(remote).octets(),
                remote_port,
                v6(local).octets(),
                local_port,
            ),
        }
        .with_proto(proto)
    }

    /// Routes the frames of `key` to a new inbox (`also`: to that inbox).
    /// A key taken by another process is an error.
    pub(crate) fn register(
        &self,
        key: FlowKey,
        also: Option<&Registration>,
    ) -> Result<Registration> {
        let registered = match also {
            None => self.port.register(key)?,
            Some(first) => self.port.register_into(key, &first.inbox)?,
        };
        registered.ok_or_else(|| {
            Error::bpf_found(format!(
                "flow {} to {} is registered by another process",
                self.source,
                SocketAddr::new(self.vip, self.remote_port)
            ))
        })
    }

    /// Waits until `registration`'s inbox has frames, `until`, or a stop.
    pub(crate) async fn wait(&self, registration: &Registration, until: Instant) -> Result<()> {
        self.port.wait(&registration.inbox, &self.stop, until).await
    }

    /// The frames captured for `registration` so far; any moves the
    /// per-reply deadline on.
    pub(crate) fn received(
        &mut self,
        registration: &Registration,
    ) -> std::collections::VecDeque<bytes::Bytes> {
        let frames = registration.inbox.take();
        if !frames.is_empty() {
            self.deadline.replied(Instant::now());
        }
        frames
    }

    /// Sends one frame (the egress rule applies).
    pub(crate) fn send(&self, frame: &[u8]) -> Result<()> {
        self.port.send(frame, &self.egress)
    }

    /// When the wait for the server's next reply ends.
    pub(crate) fn due(&self) -> Instant {
        self.deadline.due
    }

    /// Time since the check started.
    pub(crate) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// How long the server had, for a verdict: see [`Deadline::window`].
    pub(crate) fn window(&self) -> String {
        self.deadline.window()
    }

    /// The verdict of this path's check, timed now: healthy when
    /// `failure` is `None`.
    pub(crate) fn verdict(&self, failure: Option<Failure>, what: &str, reason: String) -> Verdict {
        Verdict {
            failure,
            what: what.to_string(),
            reason,
            elapsed: self.elapsed(),
            attached: self.attached,
            details: Details::default(),
        }
    }

    /// The real server did not answer through the VIP: the MAC it was sent
    /// to is asked again by the next check (it may have changed).
    pub(crate) fn unanswered(&self) {
        self.port
            .neighbours
            .borrow_mut()
            .forget(self.real_server, self.real_server_mac);
    }

    /// "no answer within ..." with the hint that fits LVS-DR.
    pub(crate) fn no_answer(&self) -> String {
        format!(
            "no answer within {} (the real server answers {} at {}; does it carry the VIP on its loopback?)",
            self.window(),
            if self.real_server.is_ipv4() {
                "ARP"
            } else {
                "neighbour solicitations"
            },
            self.real_server_mac
        )
    }
}

impl Open for Flow {
    async fn open(engine: &Engine, target: &Probe, what: &str) -> Result<Opened<Flow>> {
        let path = match Path::open(engine, target, what).await? {
            Opened::Ready(path) => *path,
            Opened::Failed(verdict) => return Ok(Opened::Failed(verdict)),
        };
        let (port_socket, local_port) = reserve_port(path.source, socket2::Type::STREAM)?;
        let registration = path.register(path.key(path.vip, local_port, PROTO_TCP), None)?;
        let stack = Stack::connect(
            FlowParams {
                local_mac: path.local_mac,
                local_ip: path.source,
                local_port,
                vip: path.vip,
                port: path.remote_port,
                real_server_mac: path.real_server_mac,
                mtu: path.mtu,
            },
            Instant::now(),
        );
        Ok(Opened::Ready(Box::new(Flow {
            path,
            stack,
            connected: None,
            icmp_error: None,
            registration,
            _port: port_socket,
        })))
    }
}

impl Flow {
    /// Runs the stack until `goal` returns `Some` or the deadline passes
    /// (`None`), or, while the handshake is not done, an ICMP error about
    /// our SYN comes (`None`: there will be no SYN-ACK). Sleeps on the
    /// flow's inbox and the stack's next timer.
    pub(crate) async fn drive<T>(
        &mut self,
        mut goal: impl FnMut(&mut Stack) -> Option<T>,
    ) -> Result<Option<T>> {
        loop {
            let now = Instant::now();
            self.receive();
            self.stack.poll(now);
            self.transmit()?;
            if let Some(done) = goal(&mut self.stack) {
                return Ok(Some(done));
            }
            let due = self.path.due();
            let refused = self.icmp_error.is_some()
                && self.stack.state() == smoltcp::socket::tcp::State::SynSent;
            if now >= due || refused {
                return Ok(None);
            }
            let wake = match self.stack.poll_delay(now) {
                Some(delay) => (now + delay).min(due),
                None => due,
            };
            self.path.wait(&self.registration, wake).await?;
        }
    }

    /// Feeds the frames captured for this flow to the stack.
    fn receive(&mut self) {
        for frame in self.path.received(&self.registration) {
            if let Some(Reply::Error { from, error }) = parse_datagram(&frame) {
                self.icmp_error.get_or_insert((error, from));
                continue;
            }
            self.stack.receive(frame);
        }
    }

    fn transmit(&mut self) -> Result<()> {
        for frame in self.stack.take_outgoing(Instant::now()) {
            self.path.send(&frame)?;
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
        self.path.elapsed()
    }

    /// The verdict of this flow's check, timed now: healthy when
    /// `failure` is `None`.
    pub(crate) fn verdict(&self, failure: Option<Failure>, what: &str, reason: String) -> Verdict {
        let mut verdict = self.path.verdict(failure, what, reason);
        verdict.details.connect = self.connected;
        verdict
    }

    /// How long the server had, for a verdict: see [`Deadline::window`].
    pub(crate) fn window(&self) -> String {
        self.path.window()
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
    Ok(match (answer, flow.icmp_error) {
        (Some(true), _) => {
            flow.connected = Some(flow.elapsed());
            Ok(())
        }
        (Some(false), _) => Err((Failure::Refused, "connection refused (RST)".to_string())),
        // No SYN-ACK, but an ICMP error about our SYN: it says why.
        (None, Some((error, from))) => Err((Failure::Unreachable, ping::unreachable(error, from))),
        (None, None) => {
            flow.path.unanswered();
            Err((Failure::NoAnswer, flow.path.no_answer()))
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
pub(crate) async fn run<F: Open>(
    engine: &Engine,
    target: &Probe,
    what: &str,
    body: impl AsyncFnOnce(&mut F) -> Result<Verdict>,
) -> Result<Verdict> {
    let begun = Instant::now();
    let result = async {
        match F::open(engine, target, what).await? {
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

/// Binds a kernel socket of `kind` (TCP or UDP) to `source:0`: the kernel
/// picks a free port and keeps it ours, so no kernel socket can collide
/// with the check flow. (With `--xdp off`, where the kernel sees our UDP
/// replies too, the bound socket also keeps the kernel from answering
/// them with an ICMP port unreachable: they queue on it unread.)
pub(crate) fn reserve_port(source: IpAddr, kind: socket2::Type) -> Result<(socket2::Socket, u16)> {
    let addr = SocketAddr::new(source, 0);
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), kind, None)
        .map_err(|e| Error::io("creating a socket", e))?;
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
