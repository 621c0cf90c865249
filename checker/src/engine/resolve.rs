//! Learns the real server's MAC: by ARP for IPv4, by neighbour discovery
//! for IPv6 (the frames are [`wire::arp`](crate::wire::arp) and [`wire::ndp`](crate::wire::ndp)). Always the
//! real server's own address, never the VIP: real servers must not answer
//! ARP for the VIP (arp_ignore=1), and the LB may own it. The reply is
//! captured like our TCP frames (the XDP program copies a registered ARP
//! or NDP key's frames to us and still passes them to the kernel).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use checker_common::FlowKey;

use crate::engine::port::Port;
use crate::engine::stop::Stop;
use crate::error::Result;
use crate::sys::netdev::Mac;
use crate::wire::arp::{reply_from, request_frame};
use crate::wire::egress::Egress;
use crate::wire::ndp::{advertisement_from, key, solicitation_frame};

/// How often the request is repeated while no reply has come.
const RETRY: Duration = Duration::from_millis(200);

/// Asks for `target`'s MAC from `source` until `deadline`; `None` if nobody
/// answered. The reply is captured like our TCP frames (the XDP program
/// copies registered ARP replies and still passes them to the kernel).
pub(crate) async fn arp(
    port: &Rc<Port>,
    stop: &Stop,
    egress: &Egress,
    source: Ipv4Addr,
    target: Ipv4Addr,
    deadline: Instant,
) -> Result<Option<Mac>> {
    let key = FlowKey::arp(target.octets(), source.octets());
    let request = request_frame(port.dev.mac, source, target);
    ask(port, stop, egress, key, &request, deadline, |frame| {
        reply_from(frame, target)
    })
    .await
}

/// Registers `key` (waiting while another process resolving the same real
/// server from the same address holds it), sends `request` every
/// [`RETRY`] until `answer` finds the MAC in a captured frame or
/// `deadline`; the key is unregistered on the way out. Shared by ARP and
/// neighbour discovery.
pub(crate) async fn ask(
    port: &Rc<Port>,
    stop: &Stop,
    egress: &Egress,
    key: FlowKey,
    request: &[u8],
    deadline: Instant,
    answer: impl Fn(&[u8]) -> Option<Mac>,
) -> Result<Option<Mac>> {
    let registration = loop {
        if let Some(registration) = port.register(key)? {
            break registration;
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        tokio::select! {
            e = stop.stopped() => return Err(e),
            () = tokio::time::sleep(Duration::from_millis(1)) => {}
        }
    };
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        port.send(request, egress)?;
        let retry_at = (now + RETRY).min(deadline);
        loop {
            for frame in registration.inbox.take() {
                if let Some(mac) = answer(&frame) {
                    return Ok(Some(mac));
                }
            }
            if Instant::now() >= retry_at {
                break;
            }
            port.wait(&registration.inbox, stop, retry_at).await?;
        }
    }
}

/// Asks for `target`'s MAC from `source` until `deadline`; `None` if nobody
/// answered. As [`arp`]: registers the NDP
/// key (waiting while another check holds the same one), repeats the
/// solicitation every 200 ms, unregisters. `source` must be one of the
/// interface's own unicast addresses, never the VIP: a solicitation's
/// source link-layer option updates the neighbour entry of `source` on the
/// real server.
pub(crate) async fn solicit(
    port: &Rc<Port>,
    stop: &Stop,
    egress: &Egress,
    source: Ipv6Addr,
    target: Ipv6Addr,
    deadline: Instant,
) -> Result<Option<Mac>> {
    let solicitation = solicitation_frame(port.dev.mac, source, target);
    ask(
        port,
        stop,
        egress,
        key(source, target),
        &solicitation,
        deadline,
        |frame| advertisement_from(frame, target),
    )
    .await
}
