//! The HTTP(S) exchange as a sans-IO state machine: the request to send,
//! the response as it streams in (through the TLS session when there is
//! one), when it is over and why, and the verdict's parts. No socket, no
//! timer, no clock of its own: the caller moves the bytes and says what
//! happened ([`Input`]), with the time where it matters.
//!
//! Driven by the VIP path (`check::http` over the userspace stack), the
//! kernel fallback (`check::kernel` over a kernel socket) and the fault
//! simulation (`sim`, over simulated time).

use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::check::tls;
use crate::check::verdict::{Details, Failure};
use crate::error::Result;
use crate::probe::{Expect, HttpCheck, Method};
use crate::wire::http::{self, HttpError, ResponseParser};

/// How much of the body `-vv` shows.
const TRACE_BODY: usize = 4096;

/// The request of `check`, in plain text.
pub(crate) fn request(check: &HttpCheck) -> Vec<u8> {
    http::request(
        check.method.as_str(),
        &check.path,
        &check.host,
        &check.headers,
    )
}

/// What happened on the connection, for the exchange to take in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Input<'a> {
    /// Bytes from the server (ciphertext over TLS), at this time.
    Received(&'a [u8], Instant),
    /// The server ended its side (FIN): no more bytes will come.
    Closed,
    /// The server reset the connection.
    Reset,
    /// The deadline passed; how long the server had, as a verdict says it.
    Deadline(&'a str),
}

/// How the exchange ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// A whole response came (it has yet to pass the validations).
    Complete,
    /// The server reset the connection.
    Reset,
    /// The bytes were not an acceptable response, or stopped too soon.
    Http(HttpError),
    /// The TLS session failed (its cause).
    Tls(String),
    /// The deadline passed first (the window, as a verdict says it).
    Deadline(String),
}

/// The verdict's parts: the failure (`None`: every validation passed),
/// the reason, and what was measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Conclusion {
    pub(crate) failure: Option<Failure>,
    pub(crate) reason: String,
    pub(crate) details: Details,
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

/// One HTTP(S) request and its response.
pub(crate) struct Exchange<'c> {
    check: &'c HttpCheck,
    parser: ResponseParser,
    body: Body,
    tls: Option<tls::Session>,
    /// Bytes for the TCP stream: the request, or TLS records carrying it.
    outbox: Vec<u8>,
    /// Plaintext out of the TLS session.
    plain: Vec<u8>,
    sent_at: Instant,
    first_byte: Option<Duration>,
    /// `-v`/`-vv` lines (the kernel fallback shows none).
    trace_heads: bool,
    trace_body: bool,
    traced_head: bool,
    /// `-vv`: what came before a head parsed, to show even if none does.
    raw: Vec<u8>,
    /// Once over: how, and what had been measured by then.
    end: Option<(End, Details)>,
}

impl<'c> Exchange<'c> {
    /// The exchange of `check` as the VIP path has it: over TLS when the
    /// check says so, traced as it asks. `request` is [`request`]'s, sent
    /// at `sent_at` (the time to first byte counts from it).
    pub(crate) fn new(
        check: &'c HttpCheck,
        request: Vec<u8>,
        sent_at: Instant,
    ) -> Result<Exchange<'c>> {
        let tls = match &check.tls {
            Some(setup) => Some(tls::Session::new(
                setup.config.clone(),
                &setup.name,
                setup.unverified,
            )?),
            None => None,
        };
        Ok(Exchange::with(
            check,
            request,
            sent_at,
            tls,
            check.trace_heads,
            check.trace_body,
        ))
    }

    /// The exchange as the kernel fallback has it: plain HTTP, untraced.
    pub(crate) fn plain(check: &'c HttpCheck, request: Vec<u8>, sent_at: Instant) -> Exchange<'c> {
        Exchange::with(check, request, sent_at, None, false, false)
    }

    fn with(
        check: &'c HttpCheck,
        request: Vec<u8>,
        sent_at: Instant,
        mut tls: Option<tls::Session>,
        trace_heads: bool,
        trace_body: bool,
    ) -> Exchange<'c> {
        let outbox = match &mut tls {
            Some(session) => {
                session.write(&request);
                Vec::new()
            }
            None => request,
        };
        Exchange {
            check,
            parser: ResponseParser::new(check.method == Method::Head, check.limits),
            body: Body::new(check),
            tls,
            outbox,
            plain: Vec::new(),
            sent_at,
            first_byte: None,
            trace_heads,
            trace_body,
            traced_head: false,
            raw: Vec::new(),
            end: None,
        }
    }

    /// What is to be sent now (the request, or the TLS records the
    /// session wants out); say how much went with [`Exchange::sent`].
    pub(crate) fn outgoing(&mut self) -> &[u8] {
        if let Some(session) = &mut self.tls {
            session.take_outgoing(&mut self.outbox);
        }
        &self.outbox
    }

    /// The first `n` bytes of [`Exchange::outgoing`] went out.
    pub(crate) fn sent(&mut self, n: usize) {
        self.outbox.drain(..n.min(self.outbox.len()));
    }

    /// How the exchange ended; `None` while it goes on.
    pub(crate) fn end(&self) -> Option<&End> {
        self.end.as_ref().map(|(end, _)| end)
    }

    /// Takes in what happened; `true` once the exchange is over (then
    /// nothing more is taken in).
    pub(crate) fn input(&mut self, input: Input<'_>) -> bool {
        if self.end.is_some() {
            return true;
        }
        match input {
            Input::Received(data, now) => match self.received(data, now) {
                Ok(false) => return false,
                Ok(true) => self.over(End::Complete),
                Err(end) => self.over(end),
            },
            Input::Closed => match self.parser.finish() {
                Ok(()) => self.over(End::Complete),
                Err(e) => self.over(End::Http(e)),
            },
            Input::Reset => self.over(End::Reset),
            Input::Deadline(window) => self.over(End::Deadline(window.to_string())),
        }
        true
    }

    /// Feeds bytes from the server: `Ok(true)` once the response is whole.
    fn received(&mut self, data: &[u8], now: Instant) -> std::result::Result<bool, End> {
        let data = match &mut self.tls {
            Some(session) => {
                self.plain.clear();
                session.feed(data, &mut self.plain).map_err(End::Tls)?;
                &self.plain[..]
            }
            None => data,
        };
        if data.is_empty() {
            return Ok(false);
        }
        self.first_byte
            .get_or_insert_with(|| now.saturating_duration_since(self.sent_at));
        if self.trace_body && self.parser.head().is_none() && self.raw.len() < TRACE_BODY {
            let n = data.len().min(TRACE_BODY - self.raw.len());
            self.raw.extend_from_slice(&data[..n]);
        }
        let body = &mut self.body;
        match self.parser.feed(data, &mut |data| body.take(data)) {
            Ok(done) => {
                if self.trace_heads && !self.traced_head {
                    self.traced_head = trace_head(&self.parser);
                }
                Ok(done)
            }
            Err(e) => Err(End::Http(e)),
        }
    }

    /// The exchange is over: the remaining trace lines, and the facts as
    /// they stand.
    fn over(&mut self, end: End) {
        if self.trace_heads && !self.traced_head {
            trace_head(&self.parser);
        }
        if self.trace_body && self.parser.head().is_none() && !self.raw.is_empty() {
            crate::note!("< (no HTTP head) '{}'", http::escape(&self.raw, TRACE_BODY));
        }
        if self.trace_body && !self.body.traced.is_empty() {
            crate::note!("{}", String::from_utf8_lossy(&self.body.traced));
        }
        let details = self.details();
        self.end = Some((end, details));
    }

    /// What has been measured so far: time to first byte, status, body
    /// bytes, the TLS session.
    pub(crate) fn details(&self) -> Details {
        Details {
            first_byte: self.first_byte,
            status: self.parser.head().map(|h| h.status),
            body_bytes: self.parser.head().map(|_| self.parser.body_len()),
            tls: self.tls.as_ref().and_then(tls::Session::facts),
            ..Details::default()
        }
    }

    /// The verdict's parts, as the VIP path words them; a whole response
    /// is judged by every validation (and its digests filled in). An
    /// exchange still going on counts as ended by its deadline, with no
    /// window said.
    pub(crate) fn conclude(mut self) -> Conclusion {
        if self.end.is_none() {
            self.input(Input::Deadline(""));
        }
        let Some((end, mut details)) = self.end.take() else {
            unreachable!("the exchange is over")
        };
        let parser = &self.parser;
        // What the response was so far, for a failure after its head.
        let so_far = || {
            parser.head().map(|head| {
                format!(
                    " ({} {}, {} body bytes so far, first byte after {:.1} ms)",
                    head.status,
                    head.reason,
                    parser.body_len(),
                    details.first_byte.unwrap_or_default().as_secs_f64() * 1000.0
                )
            })
        };
        let (failure, reason) = match end {
            End::Complete => {
                let (failure, reason) = judge(self.check, parser, self.body, &mut details);
                return Conclusion {
                    failure,
                    reason,
                    details,
                };
            }
            End::Reset => (
                Failure::Reset,
                match parser.head() {
                    None => "connection reset by the server before a response".to_string(),
                    Some(_) => format!(
                        "connection reset by the server after {} body bytes",
                        parser.body_len()
                    ),
                },
            ),
            End::Tls(reason) => (Failure::Tls, reason),
            End::Deadline(window)
                if self.tls.as_ref().is_some_and(tls::Session::is_handshaking) =>
            {
                (
                    Failure::Tls,
                    format!("TLS handshake incomplete within {window}"),
                )
            }
            End::Http(e) => (
                Failure::Http,
                format!("{e}{}", so_far().unwrap_or_default()),
            ),
            End::Deadline(window) => (
                Failure::Timeout,
                match parser.head() {
                    None if details.first_byte.is_none() => {
                        format!("no response within {window}")
                    }
                    None => "response head incomplete at the deadline".to_string(),
                    Some(_) => format!(
                        "body incomplete at the deadline{}",
                        so_far().unwrap_or_default()
                    ),
                },
            ),
        };
        Conclusion {
            failure: Some(failure),
            reason,
            details,
        }
    }
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
fn judge(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::http::Limits;

    fn check() -> HttpCheck {
        HttpCheck {
            method: Method::Get,
            host: "www.example".to_string(),
            path: "/health".to_string(),
            headers: Vec::new(),
            expect: Expect::default(),
            limits: Limits::default(),
            trace_heads: false,
            trace_body: false,
            trace_c: false,
            tls: None,
        }
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn a_response_in_pieces_is_judged_once_whole() {
        let check = check();
        let t0 = Instant::now();
        let mut exchange = Exchange::new(&check, request(&check), t0).unwrap();
        let out = exchange.outgoing().to_vec();
        assert_eq!(out, request(&check));
        assert!(out.starts_with(b"GET /health HTTP/1.1\r\n"));
        exchange.sent(4);
        assert_eq!(exchange.outgoing(), &out[4..]);
        exchange.sent(out.len() - 4);
        assert!(exchange.outgoing().is_empty());
        let at = t0 + Duration::from_millis(2);
        assert!(!exchange.input(Input::Received(&OK[..20], at)));
        assert_eq!(exchange.end(), None);
        let later = at + Duration::from_millis(5);
        assert!(exchange.input(Input::Received(&OK[20..], later)));
        assert_eq!(exchange.end(), Some(&End::Complete));
        // Over: nothing more is taken in.
        assert!(exchange.input(Input::Reset));
        let c = exchange.conclude();
        assert_eq!(c.failure, None);
        assert_eq!(
            c.reason,
            "200 OK, 5 body bytes, MD5 5d41402abc4b2a76b9719d911017c592, first byte after 2.0 ms"
        );
        assert_eq!(c.details.first_byte, Some(Duration::from_millis(2)));
        assert_eq!(
            (c.details.status, c.details.body_bytes),
            (Some(200), Some(5))
        );
    }

    #[test]
    fn how_it_ended_words_the_failure() {
        let check = check();
        let t0 = Instant::now();
        let at = t0 + Duration::from_millis(1);
        let run = |inputs: &[Input<'_>]| {
            let mut exchange = Exchange::plain(&check, request(&check), t0);
            for input in inputs {
                exchange.input(*input);
            }
            let end = exchange.end().cloned();
            let c = exchange.conclude();
            (end, c.failure, c.reason)
        };
        let (end, failure, reason) = run(&[Input::Closed]);
        assert!(matches!(end, Some(End::Http(_))));
        assert_eq!(failure, Some(Failure::Http));
        assert_eq!(reason, "connection ended before any response");
        let (end, failure, reason) = run(&[Input::Received(&OK[..41], at), Input::Reset]);
        assert_eq!((end, failure), (Some(End::Reset), Some(Failure::Reset)));
        assert_eq!(reason, "connection reset by the server after 3 body bytes");
        let (_, failure, reason) = run(&[Input::Deadline("970 ms (W)")]);
        assert_eq!(failure, Some(Failure::Timeout));
        assert_eq!(reason, "no response within 970 ms (W)");
        let (_, failure, reason) = run(&[Input::Received(&OK[..10], at), Input::Deadline("W")]);
        assert_eq!(failure, Some(Failure::Timeout));
        assert_eq!(reason, "response head incomplete at the deadline");
        let (_, failure, reason) = run(&[Input::Received(&OK[..40], at), Input::Deadline("W")]);
        assert_eq!(failure, Some(Failure::Timeout));
        assert_eq!(
            reason,
            "body incomplete at the deadline (200 OK, 2 body bytes so far, first byte after 1.0 ms)"
        );
        let (_, failure, reason) = run(&[Input::Received(
            b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
            at,
        )]);
        assert_eq!(failure, Some(Failure::Status));
        assert!(reason.starts_with("status 503, expected 200-399 (503 Busy, 0 body bytes"));
    }
}
