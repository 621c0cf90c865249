//! `vipcheck http`: an HTTP/1.x request through the VIP path: the
//! exchange ([`exchange::Exchange`], sans-IO) driven over the check's
//! userspace stack.

use std::time::Instant;

use smoltcp::socket::tcp::State;

use crate::check::exchange::{self, Exchange, Input};
use crate::check::verdict::Verdict;
use crate::check::{connect, run as run_flow};
use crate::engine::Engine;
use crate::engine::stack::Stack;
use crate::error::Result;
use crate::probe::{HttpCheck, Probe};

/// One check on `engine` (several may run at once).
pub(crate) async fn run_async(
    engine: &Engine,
    target: &Probe,
    check: &HttpCheck,
) -> Result<Verdict> {
    let what = format!(
        "{} {} {}{} via {} ({})",
        if check.tls.is_some() { "https" } else { "http" },
        check.method.as_str(),
        check.sent_host(),
        check.path,
        target.real_server,
        std::net::SocketAddr::new(target.vip, target.port)
    );
    let request = exchange::request(check);
    run_flow(engine, target, &what, async |flow| {
        if let Err((failure, reason)) = connect(flow).await? {
            return Ok(flow.verdict(Some(failure), &what, reason));
        }
        let c_lines = check.trace_heads && check.trace_c;
        if c_lines {
            crate::note!(
                "* Connected to {} ({}) port {}",
                target.vip,
                flow.path.real_server_mac,
                target.port
            );
        }
        if check.trace_heads {
            for line in String::from_utf8_lossy(&request).lines() {
                crate::note!("> {line}");
            }
        }
        let sent_at = Instant::now();
        let mut exchange = Exchange::new(check, request, sent_at)?;
        let mut buf = vec![0u8; 16 * 1024];
        let over = flow
            .drive(|stack| step(&mut exchange, stack, &mut buf, Instant::now).then_some(()))
            .await?;
        if over.is_none() {
            exchange.input(Input::Deadline(&flow.window()));
        }
        flow.close(target.close).await?;
        let exchange::Conclusion {
            failure,
            reason,
            mut details,
        } = exchange.conclude();
        if c_lines {
            if let Some(md5) = &details.md5 {
                crate::note!("* HTTP Body MD5 is {md5}");
            }
            crate::note!("* Closed connection to {}", target.vip);
        }
        let mut verdict = flow.verdict(failure, &what, reason);
        details.connect = verdict.details.connect;
        verdict.details = details;
        Ok(verdict)
    })
    .await
}

/// One wake-up of the exchange over `stack` (as `Flow::drive` calls its
/// goal): what is to be sent goes into the socket, what the socket
/// received goes into the exchange, and the end of the connection (a FIN,
/// an RST) ends it. `true` once the exchange is over. `now` tells the time
/// bytes are taken in.
pub(crate) fn step(
    exchange: &mut Exchange<'_>,
    stack: &mut Stack,
    buf: &mut [u8],
    now: impl Fn() -> Instant,
) -> bool {
    let socket = stack.socket();
    // Before reading and after: what the server's bytes release (the
    // request, once the handshake is done) goes out now, not at the next
    // wake-up.
    let flush = |exchange: &mut Exchange<'_>, socket: &mut smoltcp::socket::tcp::Socket| {
        let out = exchange.outgoing();
        if !out.is_empty() && socket.can_send() {
            let n = socket.send_slice(out).unwrap_or(0);
            exchange.sent(n);
        }
    };
    flush(exchange, socket);
    while socket.can_recv() {
        let n = match socket.recv_slice(buf) {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        if exchange.input(Input::Received(&buf[..n], now())) {
            return true;
        }
    }
    flush(exchange, socket);
    if stack.state() == State::Closed {
        // An RST from the server (a FIN leaves the socket in CLOSE-WAIT).
        return exchange.input(Input::Reset);
    }
    if !stack.socket().may_recv() {
        return exchange.input(Input::Closed);
    }
    false
}
