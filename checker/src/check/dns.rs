//! `vipcheck dns`: one query to the VIP through the real server's MAC,
//! over UDP (a [`Datagram`] flow) or TCP (`--tcp`, a [`Flow`]); healthy
//! on keepalived's DNS_CHECK rule (the query's id, QR set, RCODE
//! NOERROR) and every `--expect` address in the answer section.

use std::net::SocketAddr;

use crate::check::datagram::Datagram;
use crate::check::stream::{Dialogue, converse};
use crate::check::verdict::{Failure, Verdict};
use crate::check::{Flow, connect, run as run_flow, udp};
use crate::engine::Engine;
use crate::error::Result;
use crate::probe::{DnsSpec, Probe, UdpSpec};
use crate::wire::dns::{self, DnsProblem, Query, TcpFrame};

/// One check on `engine` (several may run at once).
pub(crate) async fn check(engine: &Engine, target: &Probe, spec: &DnsSpec) -> Result<Verdict> {
    let what = format!(
        "dns {} {} {} via {}{}",
        spec.rtype,
        spec.name,
        SocketAddr::new(target.vip, target.port),
        target.real_server,
        if spec.tcp { " over TCP" } else { "" }
    );
    let query =
        Query::new(query_id(), &spec.name, spec.rtype).map_err(crate::error::Error::Usage)?;
    if spec.tcp {
        run_flow(engine, target, &what, async |flow: &mut Flow| {
            if let Err((failure, reason)) = connect(flow).await? {
                return Ok(flow.verdict(Some(failure), &what, reason));
            }
            let mut dialogue = TcpQuery {
                out: query.encode_tcp(),
                sent: 0,
                stream: Vec::new(),
                result: None,
            };
            converse(flow, &mut dialogue).await?;
            flow.close(target.close).await?;
            let (failure, reason) = match dialogue.result {
                Some(Ok(message)) => judge(&query, spec, &message)
                    .unwrap_or_else(|| (Some(Failure::Dns), "a reply with another id".to_string())),
                Some(Err(why)) => (Some(Failure::Dns), why),
                None => (
                    Some(Failure::Timeout),
                    format!("no whole reply within {}", flow.window()),
                ),
            };
            Ok(flow.verdict(failure, &what, reason))
        })
        .await
    } else {
        run_flow(engine, target, &what, async |flow: &mut Datagram| {
            flow.send(&query.encode())?;
            let udp = UdpSpec::default();
            let (failure, reason) =
                udp::exchange(flow, &udp, |payload| judge(&query, spec, payload)).await?;
            Ok(flow.path.verdict(failure, &what, reason))
        })
        .await
    }
}

/// The verdict of `reply`; `None` for a datagram keepalived ignores (too
/// short, another id, a query): the wait goes on.
fn judge(query: &Query, spec: &DnsSpec, reply: &[u8]) -> Option<(Option<Failure>, String)> {
    match dns::judge(query, reply) {
        Err(problem) if problem.is_stray() => None,
        Err(DnsProblem::Rcode(code)) => Some((
            Some(Failure::Dns),
            format!("rcode {}", dns::rcode_name(code)),
        )),
        Err(problem) => Some((Some(Failure::Dns), problem.to_string())),
        Ok(answer) => Some(match dns::expect_addresses(&answer, &spec.expect) {
            Ok(()) => (None, answer.describe()),
            Err(missing) => (
                Some(Failure::Dns),
                format!(
                    "{}; missing {}",
                    answer.describe(),
                    missing
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }),
    }
}

/// A query id nobody can guess from the last one.
fn query_id() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::process::id()) as u16
}

/// The query over TCP (RFC 1035 §4.2.2): its length, the message; the
/// reply's first whole message.
struct TcpQuery {
    out: Vec<u8>,
    sent: usize,
    stream: Vec<u8>,
    result: Option<std::result::Result<Vec<u8>, String>>,
}

impl Dialogue for TcpQuery {
    fn outgoing(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    fn sent(&mut self, n: usize) {
        self.sent += n;
    }

    fn received(&mut self, data: &[u8]) -> bool {
        // Bounded: a reader never needs more than one whole message.
        let room = (2 + dns::MAX_MESSAGE).saturating_sub(self.stream.len());
        self.stream.extend_from_slice(&data[..data.len().min(room)]);
        if let TcpFrame::Complete { message, .. } = dns::tcp_frame(&self.stream) {
            self.result = Some(Ok(message.to_vec()));
            return true;
        }
        false
    }

    fn closed(&mut self, reset: bool) -> bool {
        if self.result.is_none() {
            self.result = Some(Err(format!(
                "the server {} before a whole reply ({} bytes)",
                if reset {
                    "reset the connection"
                } else {
                    "closed the connection"
                },
                self.stream.len()
            )));
        }
        true
    }
}
