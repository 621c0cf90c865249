//! The C checkers' BACKUP path, vipcheck's fallback under their names when
//! the XDP capture cannot be used and the role file says BACKUP: an
//! ordinary kernel TCP connection to the real server's own address. It
//! cannot tell whether the real server carries the VIP (the verdict says
//! so), which is why it is only a fallback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::check::exchange::{self, Conclusion, End, Exchange, Input};
use crate::check::verdict::Failure;
use crate::check::verdict::{Details, Verdict};
use crate::error::{Error, Result};
use crate::probe::HttpCheck;
use crate::probe::{CloseMode, Probe};

/// What every verdict of this path says of itself.
const CAVEAT: &str =
    "kernel connection to the real server's own address; the VIP path was not checked";

/// Checks `target`'s real server at its own address: a TCP connection,
/// and the HTTP exchange when `http` is given.
pub(crate) fn run(target: &Probe, http: Option<&HttpCheck>) -> Result<Verdict> {
    let started = Instant::now();
    let wait = target.reply_timeout.unwrap_or(target.timeout);
    let what = match http {
        Some(h) => format!(
            "http {} {}{} at {}:{}",
            h.method.as_str(),
            h.sent_host(),
            h.path,
            target.real_server,
            target.port
        ),
        None => format!("tcp {}:{}", target.real_server, target.port),
    };
    let verdict = |failure: Option<Failure>, reason: String, details: Details| Verdict {
        failure,
        what: what.clone(),
        reason: format!("{reason} ({CAVEAT})"),
        elapsed: started.elapsed(),
        attached: None,
        details,
    };
    let addr = SocketAddr::from((target.real_server, target.port));
    let mut stream = match TcpStream::connect_timeout(&addr, wait) {
        Ok(stream) => stream,
        Err(e) => {
            let (failure, reason) = match e.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    (Failure::Refused, "connection refused (RST)".to_string())
                }
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => (
                    Failure::NoAnswer,
                    format!("no answer within {} ms", wait.as_millis()),
                ),
                _ => (Failure::Other, format!("connecting failed: {e}")),
            };
            return Ok(verdict(Some(failure), reason, Details::default()));
        }
    };
    let mut details = Details {
        connect: Some(started.elapsed()),
        ..Details::default()
    };
    let (failure, reason) = match http {
        None => (None, "SYN-ACK".to_string()),
        Some(check) => exchange(&mut stream, check, wait, &mut details)?,
    };
    if target.close == CloseMode::Rst {
        // SO_LINGER 0: the close sends an RST, as the VIP path does.
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    }
    drop(stream);
    Ok(verdict(failure, reason, details))
}

/// Sends the request and reads the response, each read within `wait`:
/// the failure (`None` when healthy) and the reason. The exchange is
/// [`Exchange::plain`]: no TLS, no trace, and an HTTP error said bare.
fn exchange(
    stream: &mut TcpStream,
    check: &HttpCheck,
    wait: Duration,
    details: &mut Details,
) -> Result<(Option<Failure>, String)> {
    let set = |r: std::io::Result<()>| r.map_err(|e| Error::io("setting a socket timeout", e));
    set(stream.set_read_timeout(Some(wait)))?;
    set(stream.set_write_timeout(Some(wait)))?;
    let request = exchange::request(check);
    let sent_at = Instant::now();
    let mut exchange = Exchange::plain(check, request, sent_at);
    if let Err(e) = stream.write_all(exchange.outgoing()) {
        return Ok((
            Some(Failure::Other),
            format!("sending the request failed: {e}"),
        ));
    }
    let mut buf = vec![0u8; 16 * 1024];
    // What has been measured, as it stands after each read.
    let measured = |exchange: &Exchange<'_>, details: &mut Details| {
        let now = exchange.details();
        details.status = now.status;
        details.body_bytes = now.body_bytes;
    };
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Ok((
                    Some(Failure::Timeout),
                    format!("no reply within {} ms", wait.as_millis()),
                ));
            }
            Err(e) => {
                return Ok((
                    Some(Failure::Other),
                    format!("reading the response failed: {e}"),
                ));
            }
        };
        let now = Instant::now();
        // Here the first byte is the first read's return, an end included.
        details
            .first_byte
            .get_or_insert_with(|| now.saturating_duration_since(sent_at));
        let over = if n == 0 {
            exchange.input(Input::Closed)
        } else {
            exchange.input(Input::Received(&buf[..n], now))
        };
        measured(&exchange, details);
        if over {
            break;
        }
    }
    if let Some(End::Http(e)) = exchange.end() {
        return Ok((Some(Failure::Http), e.to_string()));
    }
    let Conclusion {
        failure,
        reason,
        details: judged,
    } = exchange.conclude();
    details.md5 = judged.md5;
    details.sha256 = judged.sha256;
    Ok((failure, reason))
}
