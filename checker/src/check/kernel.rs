//! The C checkers' BACKUP path, vipcheck's fallback under their names when
//! the XDP capture cannot be used and the role file says BACKUP: an
//! ordinary kernel TCP connection to the real server's own address. It
//! cannot tell whether the real server carries the VIP (the verdict says
//! so), which is why it is only a fallback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::check::http::{Body, judge};
use crate::check::verdict::Failure;
use crate::check::verdict::{Details, Verdict};
use crate::error::{Error, Result};
use crate::probe::{CloseMode, Probe};
use crate::probe::{HttpCheck, Method};
use crate::wire::http::{self, ResponseParser};

/// What every verdict of this path says of itself.
const CAVEAT: &str =
    "kernel connection to the real server's own address; the VIP path was not checked";

/// Checks `target`'s real server at its own address: a TCP connection,
/// and the HTTP exchange when `http` is given.
pub fn run(target: &Probe, http: Option<&HttpCheck>) -> Result<Verdict> {
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
/// the failure (`None` when healthy) and the reason.
fn exchange(
    stream: &mut TcpStream,
    check: &HttpCheck,
    wait: Duration,
    details: &mut Details,
) -> Result<(Option<Failure>, String)> {
    let set = |r: std::io::Result<()>| r.map_err(|e| Error::io("setting a socket timeout", e));
    set(stream.set_read_timeout(Some(wait)))?;
    set(stream.set_write_timeout(Some(wait)))?;
    let request = http::request(
        check.method.as_str(),
        &check.path,
        &check.host,
        &check.headers,
    );
    let sent_at = Instant::now();
    if let Err(e) = stream.write_all(&request) {
        return Ok((
            Some(Failure::Other),
            format!("sending the request failed: {e}"),
        ));
    }
    let mut parser = ResponseParser::new(check.method == Method::Head, check.limits);
    let mut body = Body::new(check);
    let mut buf = vec![0u8; 16 * 1024];
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
        details.first_byte.get_or_insert_with(|| sent_at.elapsed());
        let fed = if n == 0 {
            parser.finish().map(|()| true)
        } else {
            parser.feed(&buf[..n], &mut |data| body.take(data))
        };
        details.status = parser.head().map(|h| h.status);
        details.body_bytes = parser.head().map(|_| parser.body_len());
        match fed {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => return Ok((Some(Failure::Http), e.to_string())),
        }
    }
    Ok(judge(check, &parser, body, details))
}
