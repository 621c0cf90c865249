//! `vipcheck tcp`: does the real server complete a TCP handshake for the VIP?

use crate::check::verdict::Verdict;
use crate::check::{connect, run as run_flow};
use crate::engine::{self, Engine};
use crate::error::Result;
use crate::probe::Target;
use crate::xdp::Rings;

/// One check, in a runtime of its own.
pub fn run(target: &Target) -> Result<Verdict> {
    engine::one_shot(Rings::SmallFirst, async |engine| {
        check(&engine, target).await
    })
}

/// One check on `engine` (several may run at once).
pub async fn check(engine: &Engine, target: &Target) -> Result<Verdict> {
    let what = format!(
        "tcp {} via {}",
        std::net::SocketAddr::new(target.vip, target.port),
        target.real_server
    );
    run_flow(engine, target, &what, async |flow| {
        let answer = connect(flow).await?;
        if answer.is_ok() {
            flow.close(target.close).await?;
        }
        let (failure, reason) = match answer {
            Ok(()) => (None, "SYN-ACK".to_string()),
            Err((failure, reason)) => (Some(failure), reason),
        };
        Ok(flow.verdict(failure, &what, reason))
    })
    .await
}
