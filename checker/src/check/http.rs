//! `vipcheck http`: an HTTP/1.x request through the VIP path, and the
//! validations its response must pass.

use std::ops::RangeInclusive;
use std::time::Instant;

use md5::{Digest, Md5};
use sha2::Sha256;
use smoltcp::socket::tcp::State;

use crate::check::tls;
use crate::check::verdict::Failure;
use crate::check::verdict::{Details, Verdict};
use crate::check::{Flow, connect, run as run_flow};
use crate::engine::Engine;
use crate::error::Result;
use crate::probe::{Expect, HttpCheck, Method, Probe};
use crate::wire::http::{self, ResponseParser};

/// How much of the body `-vv` shows.
const TRACE_BODY: usize = 4096;

/// The body as it streams: hashes, length, and (only when a validation
/// needs it) the bytes themselves, bounded by --max-body.
pub(crate) struct Body {
    md5: Md5,
    sha256: Option<Sha256>,
    kept: Option<Vec<u8>>,
    traced: Vec<u8>,
    trace: bool,
}

impl Body {
    pub(crate) fn new(check: &HttpCheck) -> Self {
        Body {
            md5: Md5::new(),
            sha256: check.expect.sha256.as_ref().map(|_| Sha256::new()),
            kept: check.expect.needs_body().then(Vec::new),
            traced: Vec::new(),
            trace: check.trace_body,
        }
    }

    pub(crate) fn take(&mut self, data: &[u8]) {
        self.md5.update(data);
        if let Some(sha) = &mut self.sha256 {
            sha.update(data);
        }
        if let Some(kept) = &mut self.kept {
            kept.extend_from_slice(data);
        }
        if self.trace && self.traced.len() < TRACE_BODY {
            let n = data.len().min(TRACE_BODY - self.traced.len());
            self.traced.extend_from_slice(&data[..n]);
        }
    }
}

/// One check on `engine` (several may run at once).
pub async fn run_async(engine: &Engine, target: &Probe, check: &HttpCheck) -> Result<Verdict> {
    let what = format!(
        "{} {} {}{} via {} ({})",
        if check.tls.is_some() { "https" } else { "http" },
        check.method.as_str(),
        check.sent_host(),
        check.path,
        target.real_server,
        std::net::SocketAddr::new(target.vip, target.port)
    );
    let request = http::request(
        check.method.as_str(),
        &check.path,
        &check.host,
        &check.headers,
    );
    run_flow(engine, target, &what, async |flow| {
        if let Err((failure, reason)) = connect(flow).await? {
            return Ok(flow.verdict(Some(failure), &what, reason));
        }
        let c_lines = check.trace_heads && check.trace_c;
        if c_lines {
            crate::note!(
                "* Connected to {} ({}) port {}",
                target.vip,
                flow.real_server_mac,
                target.port
            );
        }
        if check.trace_heads {
            for line in String::from_utf8_lossy(&request).lines() {
                crate::note!("> {line}");
            }
        }
        let sent_at = Instant::now();
        let (exchange, mut details) = exchange(flow, check, &request, sent_at).await?;
        flow.close(target.close).await?;
        let (failure, reason) = match exchange {
            Exchange::Response { parser, body } => judge(check, &parser, *body, &mut details),
            Exchange::Failed(failure, reason) => (Some(failure), reason),
        };
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

enum Exchange {
    Response {
        parser: ResponseParser,
        body: Box<Body>,
    },
    /// Why, and what happened.
    Failed(Failure, String),
}

/// Sends the request and reads the response until it is complete, the
/// server ends the connection, or the deadline; with what was seen of it
/// (status, body bytes, time to first byte).
async fn exchange(
    flow: &mut Flow,
    check: &HttpCheck,
    request: &[u8],
    sent_at: Instant,
) -> Result<(Exchange, Details)> {
    let mut parser = ResponseParser::new(check.method == Method::Head, check.limits);
    let mut body = Body::new(check);
    let mut first_byte = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut traced_head = false;
    // `-vv`: what came before a head parsed, to show even if none does.
    let mut raw = Vec::new();
    // Bytes for the TCP stream: the request, or TLS records carrying it.
    let mut tls = match &check.tls {
        Some(setup) => Some(tls::Session::new(
            setup.config.clone(),
            &setup.name,
            setup.unverified,
        )?),
        None => None,
    };
    let mut outbox = match &mut tls {
        Some(session) => {
            session.write(request);
            Vec::new()
        }
        None => request.to_vec(),
    };
    let mut plain = Vec::new();
    let outcome = flow
        .drive(|stack| {
            let socket = stack.socket();
            // Before reading and after: what the server's bytes release
            // (the request, once the handshake is done) goes out now, not
            // at the next wake-up.
            let flush = |tls: &mut Option<tls::Session>,
                         outbox: &mut Vec<u8>,
                         socket: &mut smoltcp::socket::tcp::Socket| {
                if let Some(session) = tls {
                    session.take_outgoing(outbox);
                }
                if !outbox.is_empty() && socket.can_send() {
                    let n = socket.send_slice(outbox).unwrap_or(0);
                    outbox.drain(..n);
                }
            };
            flush(&mut tls, &mut outbox, socket);
            while socket.can_recv() {
                let n = match socket.recv_slice(&mut buf) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                let data = match &mut tls {
                    Some(session) => {
                        plain.clear();
                        if let Err(reason) = session.feed(&buf[..n], &mut plain) {
                            return Some(Err(Ended::Tls(reason)));
                        }
                        &plain[..]
                    }
                    None => &buf[..n],
                };
                if data.is_empty() {
                    continue;
                }
                first_byte.get_or_insert_with(|| sent_at.elapsed());
                if check.trace_body && parser.head().is_none() && raw.len() < TRACE_BODY {
                    raw.extend_from_slice(&data[..data.len().min(TRACE_BODY - raw.len())]);
                }
                match parser.feed(data, &mut |data| body.take(data)) {
                    Ok(done) => {
                        if check.trace_heads && !traced_head {
                            traced_head = trace_head(&parser);
                        }
                        if done {
                            return Some(Ok(()));
                        }
                    }
                    Err(e) => return Some(Err(Ended::Http(e))),
                }
            }
            flush(&mut tls, &mut outbox, socket);
            if stack.state() == State::Closed {
                // An RST from the server (a FIN leaves the socket in CLOSE-WAIT).
                return Some(Err(Ended::Reset));
            }
            if !stack.socket().may_recv() {
                return Some(parser.finish().map_err(Ended::Http));
            }
            None
        })
        .await?;
    if check.trace_heads && !traced_head {
        trace_head(&parser);
    }
    if check.trace_body && parser.head().is_none() && !raw.is_empty() {
        crate::note!("< (no HTTP head) '{}'", http::escape(&raw, TRACE_BODY));
    }
    if check.trace_body && !body.traced.is_empty() {
        crate::note!("{}", String::from_utf8_lossy(&body.traced));
    }
    // What the response was so far, for a failure after its head.
    let so_far = |parser: &ResponseParser| {
        parser.head().map(|head| {
            format!(
                " ({} {}, {} body bytes so far, first byte after {:.1} ms)",
                head.status,
                head.reason,
                parser.body_len(),
                first_byte.unwrap_or_default().as_secs_f64() * 1000.0
            )
        })
    };
    let details = Details {
        first_byte,
        status: parser.head().map(|h| h.status),
        body_bytes: parser.head().map(|_| parser.body_len()),
        tls: tls.as_ref().and_then(tls::Session::facts),
        ..Details::default()
    };
    let exchange = match outcome {
        Some(Ok(())) => Exchange::Response {
            parser,
            body: Box::new(body),
        },
        Some(Err(Ended::Reset)) => Exchange::Failed(
            Failure::Reset,
            match parser.head() {
                None => "connection reset by the server before a response".to_string(),
                Some(_) => format!(
                    "connection reset by the server after {} body bytes",
                    parser.body_len()
                ),
            },
        ),
        Some(Err(Ended::Tls(reason))) => Exchange::Failed(Failure::Tls, reason),
        None if tls.as_ref().is_some_and(tls::Session::is_handshaking) => Exchange::Failed(
            Failure::Tls,
            format!("TLS handshake incomplete within {}", flow.window()),
        ),
        Some(Err(Ended::Http(e))) => Exchange::Failed(
            Failure::Http,
            format!("{e}{}", so_far(&parser).unwrap_or_default()),
        ),
        None => Exchange::Failed(
            Failure::Timeout,
            match parser.head() {
                None if first_byte.is_none() => format!("no response within {}", flow.window()),
                None => "response head incomplete at the deadline".to_string(),
                Some(_) => format!(
                    "body incomplete at the deadline{}",
                    so_far(&parser).unwrap_or_default()
                ),
            },
        ),
    };
    Ok((exchange, details))
}

/// How reading a response ended early.
enum Ended {
    /// The server reset the connection.
    Reset,
    /// The bytes were not an acceptable response, or stopped too soon.
    Http(http::HttpError),
    /// The TLS session failed (its cause).
    Tls(String),
}

/// Prints the response head (`< ` lines) once it is parsed.
fn trace_head(parser: &ResponseParser) -> bool {
    let Some(head) = parser.head() else {
        return false;
    };
    crate::note!("< HTTP/1.{} {} {}", head.version, head.status, head.reason);
    for (name, value) in &head.headers {
        crate::note!("< {name}: {value}");
    }
    crate::note!("<");
    true
}

/// Applies every validation to a complete response, and fills in its
/// digests. The reason names the first that failed (expected and got),
/// followed by what the response was; the failure is `None` when every
/// validation passed.
pub(crate) fn judge(
    check: &HttpCheck,
    parser: &ResponseParser,
    body: Body,
    details: &mut Details,
) -> (Option<Failure>, String) {
    let Some(head) = parser.head() else {
        return (Some(Failure::Http), "no response head".to_string());
    };
    let md5 = hex::encode(body.md5.finalize());
    let summary = format!(
        "{} {}, {} body bytes, MD5 {md5}, first byte after {:.1} ms",
        head.status,
        head.reason,
        parser.body_len(),
        details.first_byte.unwrap_or_default().as_secs_f64() * 1000.0
    );
    let sha256 = body.sha256.map(|sha| hex::encode(sha.finalize()));
    details.md5 = Some(md5.clone());
    details.sha256 = sha256.clone();
    let mut summary = summary;
    if let Some(facts) = &details.tls {
        summary += &format!(
            ", {} {}, certificate {} from {}, {} days left{}",
            facts.version,
            facts.cipher_suite,
            facts.subject,
            facts.issuer,
            facts.days_left,
            match facts.unverified {
                Some(why) => format!(" ({why})"),
                None => String::new(),
            }
        );
        if let Some(days) = check.tls.as_ref().and_then(|t| t.cert_days)
            && facts.days_left < i64::from(days)
        {
            return (
                Some(Failure::CertExpiring),
                format!(
                    "certificate expires in {} days, within --cert-days {days} ({summary})",
                    facts.days_left
                ),
            );
        }
    }
    let kept = body.kept.unwrap_or_default();
    match first_failure(
        &check.expect,
        head,
        parser.trailers(),
        &md5,
        sha256.as_deref(),
        &kept,
    ) {
        None => (None, summary),
        Some((failure, reason)) => (Some(failure), format!("{reason} ({summary})")),
    }
}

fn first_failure(
    expect: &Expect,
    head: &http::Head,
    trailers: &[(String, String)],
    md5: &str,
    sha256: Option<&str>,
    body: &[u8],
) -> Option<(Failure, String)> {
    let default_status = [200..=399];
    let statuses: &[RangeInclusive<u16>] = if expect.is_empty() {
        &default_status
    } else {
        &expect.statuses
    };
    if !statuses.is_empty() && !statuses.iter().any(|r| r.contains(&head.status)) {
        let wanted: Vec<String> = statuses.iter().map(range_text).collect();
        return Some((
            Failure::Status,
            format!("status {}, expected {}", head.status, wanted.join(" or ")),
        ));
    }
    for (name, value) in &expect.headers {
        let got: Vec<&str> = head
            .values(name)
            .chain(
                trailers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str()),
            )
            .collect();
        let present = match value {
            Some(value) => got.contains(&value.as_str()),
            None => !got.is_empty(),
        };
        if !present {
            let want = value
                .as_ref()
                .map_or_else(|| "present".to_string(), |v| format!("{v:?}"));
            return Some((
                Failure::Header,
                match got.as_slice() {
                    [] => format!("header {name} missing, expected {want}"),
                    _ => format!("header {name}: {:?}, expected {want}", got.join(", ")),
                },
            ));
        }
    }
    if let Some(want) = &expect.md5
        && want != md5
    {
        return Some((Failure::Body, format!("body MD5 {md5}, expected {want}")));
    }
    if let (Some(want), Some(got)) = (&expect.sha256, sha256)
        && want != got
    {
        return Some((
            Failure::Body,
            format!("body SHA-256 {got}, expected {want}"),
        ));
    }
    if let Some(want) = &expect.body
        && want != body
    {
        return Some((
            Failure::Body,
            format!(
                "body differs from --body: expected {} bytes '{}', got {} bytes '{}'",
                want.len(),
                http::escape(want, http::PREVIEW),
                body.len(),
                http::escape(body, http::PREVIEW)
            ),
        ));
    }
    if let Some(re) = expect.regex.iter().find(|re| !re.is_match(body)) {
        return Some((
            Failure::Body,
            format!("body does not match --regex {:?}", re.as_str()),
        ));
    }
    if let Some(re) = expect.regex_absent.iter().find(|re| re.is_match(body)) {
        return Some((
            Failure::Body,
            format!("body matches --regex-absent {:?}", re.as_str()),
        ));
    }
    None
}

fn range_text(r: &RangeInclusive<u16>) -> String {
    if r.start() == r.end() {
        r.start().to_string()
    } else {
        format!("{}-{}", r.start(), r.end())
    }
}
