//! `vipcheck tcp`: does the real server complete a TCP handshake for the VIP?

use crate::check::verdict::Verdict;
use crate::check::{connect, run as run_flow};
use crate::engine::Engine;
use crate::error::Result;
use crate::probe::Probe;

/// One check on `engine` (several may run at once).
pub(crate) async fn check(engine: &Engine, target: &Probe) -> Result<Verdict> {
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
