//! `vipcheck http`: an HTTP/1.x request through the VIP path, and the
//! validations its response must pass.

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use regex::bytes::Regex;
use sha2::Sha256;
use smoltcp::socket::tcp::State;

use crate::check::{Flow, Opened, connect, runtime};
use crate::error::Result;
use crate::http::{self, Limits, ResponseParser};
use crate::target::Target;
use crate::verdict::Verdict;

/// How much of the body `-vv` shows.
const TRACE_BODY: usize = 4096;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    #[default]
    Get,
    Head,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// What the response must satisfy: every field given must hold.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    /// The status must be in one of these (default 200-399 when no
    /// validation at all is given).
    pub statuses: Vec<RangeInclusive<u16>>,
    /// Headers that must be present with exactly this value (names case-insensitive).
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// Lowercase hex.
    pub md5: Option<String>,
    /// Lowercase hex.
    pub sha256: Option<String>,
    pub regex: Option<Regex>,
    pub regex_absent: Option<Regex>,
}

impl Expect {
    fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.headers.is_empty()
            && self.body.is_none()
            && self.md5.is_none()
            && self.sha256.is_none()
            && self.regex.is_none()
            && self.regex_absent.is_none()
    }

    /// Whether the whole body must be kept for a match.
    fn needs_body(&self) -> bool {
        self.body.is_some() || self.regex.is_some() || self.regex_absent.is_some()
    }
}

#[derive(Clone, Debug)]
pub struct HttpCheck {
    pub method: Method,
    pub host: String,
    pub path: String,
    /// Extra request headers; each replaces a default of the same name.
    pub headers: Vec<(String, String)>,
    pub expect: Expect,
    pub limits: Limits,
    /// `-v`: request and response heads on stderr.
    pub trace_heads: bool,
    /// `-vv`: the body too (its first 4 KiB).
    pub trace_body: bool,
}

/// The body as it streams: hashes, length, and (only when a validation
/// needs it) the bytes themselves, bounded by --max-body.
struct Body {
    md5: Md5,
    sha256: Option<Sha256>,
    kept: Option<Vec<u8>>,
    traced: Vec<u8>,
    trace: bool,
}

impl Body {
    fn new(check: &HttpCheck) -> Self {
        Body {
            md5: Md5::new(),
            sha256: check.expect.sha256.as_ref().map(|_| Sha256::new()),
            kept: check.expect.needs_body().then(Vec::new),
            traced: Vec::new(),
            trace: check.trace_body,
        }
    }

    fn take(&mut self, data: &[u8]) {
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

pub fn run(target: &Target, check: &HttpCheck) -> Result<Verdict> {
    let what = format!(
        "http {} {}{} via {} ({}:{})",
        check.method.as_str(),
        check.host,
        check.path,
        target.real_server,
        target.vip,
        target.port
    );
    let request = http::request(
        check.method.as_str(),
        &check.path,
        &check.host,
        &check.headers,
    );
    runtime()?.block_on(async {
        let mut flow = match Flow::open(target, &what).await? {
            Opened::Ready(flow) => flow,
            Opened::Failed(verdict) => return Ok(verdict),
        };
        let verdict = |healthy: bool, reason: String, flow: &Flow| Verdict {
            healthy,
            what: what.clone(),
            reason,
            elapsed: flow.elapsed(),
        };
        if let Err(reason) = connect(&mut flow, target).await? {
            return Ok(verdict(false, reason, &flow));
        }
        if check.trace_heads {
            for line in String::from_utf8_lossy(&request).lines() {
                eprintln!("> {line}");
            }
        }
        let sent_at = Instant::now();
        let exchange = exchange(&mut flow, check, &request, sent_at).await?;
        flow.close(target.close).await?;
        let (healthy, reason) = match exchange {
            Exchange::Response {
                parser,
                body,
                first_byte,
            } => judge(check, &parser, *body, first_byte),
            Exchange::Failed(reason) => (false, reason),
        };
        Ok(verdict(healthy, reason, &flow))
    })
}

enum Exchange {
    Response {
        parser: ResponseParser,
        body: Box<Body>,
        first_byte: Duration,
    },
    Failed(String),
}

/// Sends the request and reads the response until it is complete, the
/// server ends the connection, or the deadline.
async fn exchange(
    flow: &mut Flow,
    check: &HttpCheck,
    request: &[u8],
    sent_at: Instant,
) -> Result<Exchange> {
    let mut parser = ResponseParser::new(check.method == Method::Head, check.limits);
    let mut body = Body::new(check);
    let mut sent = 0;
    let mut first_byte = None;
    let mut buf = vec![0u8; 16 * 1024];
    let mut traced_head = false;
    let outcome = flow
        .drive(|stack| {
            let socket = stack.socket();
            if sent < request.len() && socket.can_send() {
                sent += socket.send_slice(&request[sent..]).unwrap_or(0);
            }
            while socket.can_recv() {
                let n = match socket.recv_slice(&mut buf) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                first_byte.get_or_insert_with(|| sent_at.elapsed());
                match parser.feed(&buf[..n], &mut |data| body.take(data)) {
                    Ok(done) => {
                        if check.trace_heads && !traced_head {
                            traced_head = trace_head(&parser);
                        }
                        if done {
                            return Some(Ok(()));
                        }
                    }
                    Err(e) => return Some(Err(e.to_string())),
                }
            }
            if stack.state() == State::Closed {
                // An RST from the server (a FIN leaves the socket in CLOSE-WAIT).
                return Some(Err(reset_reason(&parser)));
            }
            if !stack.socket().may_recv() {
                return Some(parser.finish().map_err(|e| e.to_string()));
            }
            None
        })
        .await?;
    if check.trace_heads && !traced_head {
        trace_head(&parser);
    }
    if check.trace_body && !body.traced.is_empty() {
        eprintln!("{}", String::from_utf8_lossy(&body.traced));
    }
    Ok(match outcome {
        Some(Ok(())) => Exchange::Response {
            parser,
            body: Box::new(body),
            first_byte: first_byte.unwrap_or_default(),
        },
        Some(Err(reason)) => Exchange::Failed(reason),
        None => Exchange::Failed(match parser.head() {
            None if first_byte.is_none() => {
                format!("no response within {} ms", flow.timeout.as_millis())
            }
            None => "response head incomplete at the deadline".to_string(),
            Some(_) => format!(
                "body incomplete at the deadline after {} bytes",
                parser.body_len()
            ),
        }),
    })
}

fn reset_reason(parser: &ResponseParser) -> String {
    match parser.head() {
        None => "connection reset by the server before a response".to_string(),
        Some(_) => format!(
            "connection reset by the server after {} body bytes",
            parser.body_len()
        ),
    }
}

/// Prints the response head (`< ` lines) once it is parsed.
fn trace_head(parser: &ResponseParser) -> bool {
    let Some(head) = parser.head() else {
        return false;
    };
    eprintln!("< HTTP/1.{} {} {}", head.version, head.status, head.reason);
    for (name, value) in &head.headers {
        eprintln!("< {name}: {value}");
    }
    eprintln!("<");
    true
}

/// Applies every validation. The reason names the first that failed
/// (expected and got), followed by what the response was.
fn judge(
    check: &HttpCheck,
    parser: &ResponseParser,
    body: Body,
    first_byte: Duration,
) -> (bool, String) {
    let Some(head) = parser.head() else {
        return (false, "no response head".to_string());
    };
    let md5 = hex::encode(body.md5.finalize());
    let summary = format!(
        "{} {}, {} body bytes, MD5 {md5}, first byte after {:.1} ms",
        head.status,
        head.reason,
        parser.body_len(),
        first_byte.as_secs_f64() * 1000.0
    );
    let sha256 = body.sha256.map(|sha| hex::encode(sha.finalize()));
    let kept = body.kept.unwrap_or_default();
    match first_failure(&check.expect, head, &md5, sha256.as_deref(), &kept) {
        None => (true, summary),
        Some(failure) => (false, format!("{failure} ({summary})")),
    }
}

fn first_failure(
    expect: &Expect,
    head: &http::Head,
    md5: &str,
    sha256: Option<&str>,
    body: &[u8],
) -> Option<String> {
    let default_status = [200..=399];
    let statuses: &[RangeInclusive<u16>] = if expect.is_empty() {
        &default_status
    } else {
        &expect.statuses
    };
    if !statuses.is_empty() && !statuses.iter().any(|r| r.contains(&head.status)) {
        let wanted: Vec<String> = statuses.iter().map(range_text).collect();
        return Some(format!(
            "status {}, expected {}",
            head.status,
            wanted.join(" or ")
        ));
    }
    for (name, value) in &expect.headers {
        let got: Vec<&str> = head.values(name).collect();
        if !got.contains(&value.as_str()) {
            return Some(match got.as_slice() {
                [] => format!("header {name} missing, expected {value:?}"),
                _ => format!("header {name}: {:?}, expected {value:?}", got.join(", ")),
            });
        }
    }
    if let Some(want) = &expect.md5
        && want != md5
    {
        return Some(format!("body MD5 {md5}, expected {want}"));
    }
    if let (Some(want), Some(got)) = (&expect.sha256, sha256)
        && want != got
    {
        return Some(format!("body SHA-256 {got}, expected {want}"));
    }
    if let Some(want) = &expect.body
        && want != body
    {
        return Some(format!(
            "body differs from --body: got {} bytes starting {:?}",
            body.len(),
            String::from_utf8_lossy(&body[..body.len().min(40)])
        ));
    }
    if let Some(re) = &expect.regex
        && !re.is_match(body)
    {
        return Some(format!("body does not match --regex {:?}", re.as_str()));
    }
    if let Some(re) = &expect.regex_absent
        && re.is_match(body)
    {
        return Some(format!("body matches --regex-absent {:?}", re.as_str()));
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
