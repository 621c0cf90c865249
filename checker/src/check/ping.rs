//! `vipcheck ping`: does the real server answer an ICMP (ICMPv6) echo to
//! the VIP? The cheapest answer to "does it carry the VIP?".

use crate::check::datagram::Datagram;
use crate::check::run as run_flow;
use crate::check::verdict::{Failure, Verdict};
use crate::engine::Engine;
use crate::error::Result;
use crate::probe::Probe;
use crate::wire::datagram::{IcmpError, Reply, parse};

/// The echo request's data: says who asked, in a capture.
const PAYLOAD: &[u8] = b"vipcheck ping";

/// One check on `engine` (several may run at once).
pub(crate) async fn check(engine: &Engine, target: &Probe) -> Result<Verdict> {
    let what = format!("ping {} via {}", target.vip, target.real_server);
    run_flow(engine, target, &what, async |flow: &mut Datagram| {
        flow.send(PAYLOAD)?;
        loop {
            let frames = flow.receive().await?;
            if frames.is_empty() {
                flow.path.unanswered();
                let reason = flow.path.no_answer();
                return Ok(flow.path.verdict(Some(Failure::NoAnswer), &what, reason));
            }
            for frame in &frames {
                match parse(frame) {
                    Some(Reply::Echo { from, ident, .. })
                        if ident == flow.local_port && from == flow.vip() =>
                    {
                        let reason = "echo reply from the VIP".to_string();
                        return Ok(flow.path.verdict(None, &what, reason));
                    }
                    Some(Reply::Error { from, error }) => {
                        return Ok(flow.path.verdict(
                            Some(Failure::Unreachable),
                            &what,
                            unreachable(error, from),
                        ));
                    }
                    _ => {}
                }
            }
        }
    })
    .await
}

/// "host unreachable from 198.18.0.11".
pub(crate) fn unreachable(error: IcmpError, from: std::net::IpAddr) -> String {
    format!("{error} from {from}")
}
