//! `vipcheck tcp`: does the real server complete a TCP handshake for the VIP?

use smoltcp::socket::tcp::State;

use crate::check::{Flow, Opened, runtime};
use crate::error::Result;
use crate::target::Target;
use crate::verdict::Verdict;

pub fn run(target: &Target) -> Result<Verdict> {
    let what = format!(
        "tcp {}:{} via {}",
        target.vip, target.port, target.real_server
    );
    runtime()?.block_on(async {
        let mut flow = match Flow::open(target, &what).await? {
            Opened::Ready(flow) => flow,
            Opened::Failed(verdict) => return Ok(verdict),
        };
        let answer = flow
            .drive(|stack| match stack.state() {
                State::SynSent => None,
                State::Closed => Some(false),
                _ => Some(true),
            })
            .await?;
        let (healthy, reason) = match answer {
            Some(true) => (true, "SYN-ACK".to_string()),
            Some(false) => (false, "connection refused (RST)".to_string()),
            None => (
                false,
                format!(
                    "no answer within {} ms (the real server answers ARP at {}; does it carry the VIP on its loopback?)",
                    target.timeout.as_millis(),
                    flow.real_server_mac
                ),
            ),
        };
        if answer == Some(true) {
            flow.close(target.close).await?;
        }
        Ok(Verdict {
            healthy,
            what,
            reason,
            elapsed: flow.elapsed(),
        })
    })
}
