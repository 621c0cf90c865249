//! A datagram check flow: one UDP datagram or ICMP echo request to the
//! VIP through the real server's MAC, sent again if nothing comes back,
//! and the frames captured for it (replies, and ICMP errors quoting it).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use checker_common::{PROTO_ICMP, PROTO_ICMPV6, PROTO_UDP};

use crate::check::{Open, Opened, Path, reserve_port};
use crate::engine::Engine;
use crate::engine::port::Registration;
use crate::error::{Error, Result};
use crate::probe::{CheckSpec, Probe};
use crate::wire::datagram::{self, Ends};

/// The first resend of an unanswered echo request, doubling up to
/// [`MAX_RESEND`]: a lost packet on one LAN hop should not cost the check
/// its deadline (as for TCP, see `engine::stack::Resend`).
const FIRST_RESEND: Duration = Duration::from_millis(200);
const MAX_RESEND: Duration = Duration::from_millis(800);
/// A UDP datagram goes again only after this, as a DNS client's first
/// retry: a slow server (a resolver recursing) answers each copy, and an
/// answer that comes after the check has ended reaches the LB's kernel,
/// which sends an ICMP port unreachable. A late echo reply is harmless
/// (the kernel drops it silently).
const UDP_RESEND: Duration = Duration::from_secs(1);

pub(crate) struct Datagram {
    pub(crate) path: Path,
    /// [`PROTO_UDP`], or [`PROTO_ICMP`] / [`PROTO_ICMPV6`] for an echo.
    proto: u8,
    /// Our UDP port, or the echo identifier.
    pub(crate) local_port: u16,
    /// Replies from the VIP, and (UDP) from the real server's own
    /// address, into one inbox; the first is the VIP's.
    registrations: Vec<Registration>,
    /// Keeps our UDP port reserved in the kernel while the check runs.
    /// Declared after `registrations`, as for [`crate::check::Flow`].
    _port: Option<socket2::Socket>,
    /// The frame sent last, when it is sent again, and the interval.
    resend: Option<(Vec<u8>, Instant, Duration)>,
    /// Echo sequence number of the next request.
    seq: u16,
}

impl Open for Datagram {
    async fn open(engine: &Engine, target: &Probe, what: &str) -> Result<Opened<Datagram>> {
        let path = match Path::open(engine, target, what).await? {
            Opened::Ready(path) => *path,
            Opened::Failed(verdict) => return Ok(Opened::Failed(verdict)),
        };
        let ping = matches!(target.check, CheckSpec::Ping);
        let (proto, local_port, reserved, registrations) = if ping {
            let proto = if path.source.is_ipv4() {
                PROTO_ICMP
            } else {
                PROTO_ICMPV6
            };
            let (ident, registration) = register_ident(&path, proto)?;
            (proto, ident, None, vec![registration])
        } else {
            let (socket, port) = reserve_port(path.source, socket2::Type::DGRAM)?;
            let first = path.register(path.key(path.vip, port, PROTO_UDP), None)?;
            // A service bound to 0.0.0.0 answers from the real server's own
            // address: its replies come to the same inbox, to be named.
            let mut registrations = vec![];
            if path.real_server != path.vip {
                let own = path.key(path.real_server, port, PROTO_UDP);
                registrations.push(path.register(own, Some(&first))?);
            }
            registrations.insert(0, first);
            (PROTO_UDP, port, Some(socket), registrations)
        };
        Ok(Opened::Ready(Box::new(Datagram {
            path,
            proto,
            local_port,
            registrations,
            _port: reserved,
            resend: None,
            seq: 1,
        })))
    }
}

/// Takes an echo identifier nobody else has registered for this path.
fn register_ident(path: &Path, proto: u8) -> Result<(u16, Registration)> {
    // Random (std's hasher keys), as a DNS query's id: `elapsed()` of a
    // fresh Instant, which this took before, is about zero, which left
    // the identifiers to the pid alone.
    let random = std::hash::RandomState::new();
    let mut last = None;
    for attempt in 0..16u32 {
        let ident = std::hash::BuildHasher::hash_one(&random, attempt) as u16;
        match path.register(path.key(path.vip, ident, proto), None) {
            Ok(registration) => return Ok((ident, registration)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::bpf_found("no free echo identifier".to_string())))
}

impl Datagram {
    /// Sends `payload` (a UDP datagram's, or an echo request's data) and
    /// arms its resends; returns the echo sequence number used.
    pub(crate) fn send(&mut self, payload: &[u8]) -> Result<u16> {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let what = if self.proto == PROTO_UDP {
            datagram::Datagram::Udp {
                local_port: self.local_port,
                remote_port: self.path.remote_port,
                payload,
            }
        } else {
            datagram::Datagram::Echo {
                ident: self.local_port,
                seq,
                payload,
            }
        };
        let ends = Ends {
            local_mac: self.path.local_mac,
            remote_mac: self.path.real_server_mac,
            local: self.path.source,
            remote: self.path.vip,
        };
        let frame = datagram::frame(&ends, &what).ok_or_else(|| {
            Error::Usage("REAL_SERVER and the source address are of different IP families".into())
        })?;
        self.path.send(&frame)?;
        let first = if self.proto == PROTO_UDP {
            UDP_RESEND
        } else {
            FIRST_RESEND
        };
        self.resend = Some((frame, Instant::now() + first, first));
        Ok(seq)
    }

    /// The frames captured for this flow, oldest first, once any have
    /// come; an empty list once the deadline has passed. The datagram
    /// last sent goes again while nothing comes back.
    pub(crate) async fn receive(&mut self) -> Result<Vec<Bytes>> {
        loop {
            let frames = self.path.received(&self.registrations[0]);
            if !frames.is_empty() {
                return Ok(frames.into());
            }
            let now = Instant::now();
            let due = self.path.due();
            if now >= due {
                return Ok(Vec::new());
            }
            let mut wake = due;
            if let Some((frame, at, interval)) = &mut self.resend {
                if now >= *at {
                    self.path.send(frame)?;
                    *interval = (*interval * 2).min(MAX_RESEND.max(*interval));
                    *at = now + *interval;
                }
                wake = wake.min(*at);
            }
            self.path.wait(&self.registrations[0], wake).await?;
        }
    }

    /// Stops sending the last datagram again (a reply came).
    pub(crate) fn answered(&mut self) {
        self.resend = None;
    }

    /// The VIP.
    pub(crate) fn vip(&self) -> IpAddr {
        self.path.vip
    }
}
