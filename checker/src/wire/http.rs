//! HTTP/1.x over the check's TCP stream: the request, and a sans-IO
//! response parser that takes bytes as they arrive, in any split.
//!
//! The head is parsed by httparse (CRLF or bare LF line ends). The body's
//! framing follows RFC 9112 §6.3: none for HEAD and 1xx/204/304,
//! chunked (sizes by httparse, trailers kept), Content-Length, or until
//! the server closes. Body bytes are handed to the caller as they stream,
//! never buffered here; the head, chunk-size lines and trailers are
//! buffered up to the header limit. Memory stays bounded whatever the
//! server sends.

use std::fmt;

/// Most headers in a response head (and in trailers).
const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions).
const MAX_CHUNK_LINE: usize = 4096;
/// How many bytes of a response an error message shows.
pub(crate) const PREVIEW: usize = 48;

/// Bounds on what a response may be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of the response head (status line and headers), and of trailers.
    pub max_head: usize,
    /// Bytes of the (decoded) body.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 64 * 1024,
            max_body: 4 * 1024 * 1024,
        }
    }
}

/// The status line and headers of a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub(crate) version: u8,
    pub(crate) status: u16,
    pub(crate) reason: String,
    pub(crate) headers: Vec<(String, String)>,
}

impl Head {
    /// Values of the headers named `name` (case-insensitive).
    pub(crate) fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the body of a response ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the server closes the connection.
    Close,
}

/// Why a response is not acceptable as HTTP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    HeadTooLarge {
        limit: usize,
    },
    BodyTooLarge {
        limit: u64,
    },
    Malformed(String),
    /// The first bytes are not the start of an HTTP response (a preview of them).
    NotHttp(Vec<u8>),
    /// The connection ended inside the response head: how many bytes of it
    /// came, and a preview of them.
    HeadTruncated {
        bytes: usize,
        preview: Vec<u8>,
    },
    /// The connection ended before the response did.
    Truncated {
        body_bytes: u64,
        expected: Option<u64>,
    },
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::HeadTooLarge { limit } => {
                write!(f, "response head larger than {limit} bytes")
            }
            HttpError::BodyTooLarge { limit } => {
                write!(f, "response body larger than --max-body {limit} bytes")
            }
            HttpError::Malformed(what) => write!(f, "malformed response: {what}"),
            HttpError::NotHttp(preview) => write!(
                f,
                "the server answered '{}', which is not HTTP",
                escape(preview, PREVIEW)
            ),
            HttpError::HeadTruncated { bytes: 0, .. } => {
                write!(f, "connection ended before any response")
            }
            HttpError::HeadTruncated { bytes, preview } => write!(
                f,
                "connection ended after {bytes} bytes of an incomplete response head: '{}'",
                escape(preview, PREVIEW)
            ),
            HttpError::Truncated {
                body_bytes,
                expected: Some(n),
            } => write!(f, "connection ended after {body_bytes} of {n} body bytes"),
            HttpError::Truncated {
                body_bytes,
                expected: None,
            } => write!(
                f,
                "connection ended after {body_bytes} body bytes, before the response's end"
            ),
        }
    }
}

impl std::error::Error for HttpError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// Content-Length body: bytes still to come.
    Fixed(u64),
    /// Close-delimited body.
    UntilClose,
    ChunkSize,
    /// Chunk data: bytes still to come.
    ChunkData(u64),
    /// The line end after a chunk's data.
    ChunkEnd,
    Trailers,
    Done,
}

/// Parses one response, fed in pieces.
#[derive(Debug)]
pub struct ResponseParser {
    limits: Limits,
    head_request: bool,
    state: State,
    /// Head, chunk-size line or trailers being assembled.
    buf: Vec<u8>,
    head: Option<Head>,
    /// Trailer fields of a chunked body.
    trailers: Vec<(String, String)>,
    framing: Option<Framing>,
    body_len: u64,
}

impl ResponseParser {
    /// A parser for the response to a request; `head_request` when the
    /// method was HEAD (the response then has no body whatever it says).
    pub fn new(head_request: bool, limits: Limits) -> Self {
        ResponseParser {
            limits,
            head_request,
            state: State::Head,
            buf: Vec::new(),
            head: None,
            trailers: Vec::new(),
            framing: None,
            body_len: 0,
        }
    }

    /// The head, once parsed.
    pub fn head(&self) -> Option<&Head> {
        self.head.as_ref()
    }

    /// The trailer fields of a chunked body, once read.
    pub fn trailers(&self) -> &[(String, String)] {
        &self.trailers
    }

    /// Decoded body bytes so far.
    pub fn body_len(&self) -> u64 {
        self.body_len
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Takes the next bytes of the stream; body bytes go to `body`. Returns
    /// true once the response is complete (later bytes are ignored).
    pub fn feed(
        &mut self,
        mut data: &[u8],
        body: &mut impl FnMut(&[u8]),
    ) -> Result<bool, HttpError> {
        while !data.is_empty() && self.state != State::Done {
            let used = match self.state {
                State::Head => self.feed_head(data)?,
                State::Fixed(left) => {
                    let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.body(&data[..n], body)?;
                    self.state = if left == n as u64 {
                        State::Done
                    } else {
                        State::Fixed(left - n as u64)
                    };
                    n
                }
                State::UntilClose => {
                    self.body(data, body)?;
                    data.len()
                }
                State::ChunkSize => self.feed_chunk_size(data)?,
                State::ChunkData(left) => {
                    let n = data.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                    self.body(&data[..n], body)?;
                    self.state = if left == n as u64 {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - n as u64)
                    };
                    n
                }
                State::ChunkEnd => self.feed_chunk_end(data)?,
                State::Trailers => self.feed_trailers(data)?,
                State::Done => data.len(),
            };
            data = &data[used..];
        }
        Ok(self.state == State::Done)
    }

    /// The server closed the connection: the end of a close-delimited
    /// body, or a truncated response.
    pub fn finish(&mut self) -> Result<(), HttpError> {
        match self.state {
            State::Done => Ok(()),
            State::UntilClose => {
                self.state = State::Done;
                Ok(())
            }
            State::Head => Err(HttpError::HeadTruncated {
                bytes: self.buf.len(),
                preview: self.buf[..self.buf.len().min(PREVIEW)].to_vec(),
            }),
            State::Fixed(left) => Err(HttpError::Truncated {
                body_bytes: self.body_len,
                expected: Some(self.body_len + left),
            }),
            _ => Err(HttpError::Truncated {
                body_bytes: self.body_len,
                expected: None,
            }),
        }
    }

    fn body(&mut self, data: &[u8], sink: &mut impl FnMut(&[u8])) -> Result<(), HttpError> {
        self.body_len += data.len() as u64;
        if self.body_len > self.limits.max_body {
            return Err(HttpError::BodyTooLarge {
                limit: self.limits.max_body,
            });
        }
        sink(data);
        Ok(())
    }

    /// Buffers head bytes up to the end of the head, then parses it.
    fn feed_head(&mut self, data: &[u8]) -> Result<usize, HttpError> {
        // Look for the blank line only in what is new (and the three bytes
        // before it), so a head that arrives a byte at a time costs O(n).
        let scan_from = self.buf.len().saturating_sub(3);
        let room = self.limits.max_head - self.buf.len();
        let take = data.len().min(room);
        self.buf.extend_from_slice(&data[..take]);
        // Fail at the first byte that cannot start a response (a TLS or
        // SSH server, a banner), instead of waiting for a blank line.
        const START: &[u8] = b"HTTP/";
        let start = &self.buf[..self.buf.len().min(START.len())];
        if start != &START[..start.len()] {
            return Err(HttpError::NotHttp(
                self.buf[..self.buf.len().min(PREVIEW)].to_vec(),
            ));
        }
        let Some(end) = head_end(&self.buf, scan_from) else {
            if self.buf.len() >= self.limits.max_head {
                return Err(HttpError::HeadTooLarge {
                    limit: self.limits.max_head,
                });
            }
            return Ok(take);
        };
        let consumed_before = self.buf.len() - take;
        let head = parse_head(&self.buf[..end])?;
        self.buf.clear();
        let used = end - consumed_before;
        if (100..200).contains(&head.status) && head.status != 101 {
            // Interim response (100 Continue...): the real one follows.
            return Ok(used);
        }
        let framing = framing(&head, self.head_request)?;
        // Kept before the length is judged: a failure names the status.
        self.head = Some(head);
        self.framing = Some(framing);
        if let Framing::Length(n) = framing
            && n > self.limits.max_body
        {
            return Err(HttpError::BodyTooLarge {
                limit: self.limits.max_body,
            });
        }
        self.state = match framing {
            Framing::None | Framing::Length(0) => State::Done,
            Framing::Length(n) => State::Fixed(n),
            Framing::Chunked => State::ChunkSize,
            Framing::Close => State::UntilClose,
        };
        Ok(used)
    }

    fn feed_chunk_size(&mut self, data: &[u8]) -> Result<usize, HttpError> {
        let Some((line, used)) = self.line(data, MAX_CHUNK_LINE, "chunk-size line")? else {
            return Ok(data.len());
        };
        // httparse wants CRLF; accept a bare LF as well.
        let mut line = line;
        line.extend_from_slice(b"\r\n");
        let Ok(httparse::Status::Complete((_, size))) = httparse::parse_chunk_size(&line) else {
            return Err(HttpError::Malformed(format!(
                "invalid chunk size {:?}",
                String::from_utf8_lossy(&line[..line.len() - 2])
            )));
        };
        self.state = if size == 0 {
            State::Trailers
        } else {
            if self.body_len.saturating_add(size) > self.limits.max_body {
                return Err(HttpError::BodyTooLarge {
                    limit: self.limits.max_body,
                });
            }
            State::ChunkData(size)
        };
        Ok(used)
    }

    fn feed_chunk_end(&mut self, data: &[u8]) -> Result<usize, HttpError> {
        let Some((line, used)) = self.line(data, 2, "chunk end")? else {
            return Ok(data.len());
        };
        if !line.is_empty() {
            return Err(HttpError::Malformed(
                "chunk data longer than its size".into(),
            ));
        }
        self.state = State::ChunkSize;
        Ok(used)
    }

    /// Trailer fields, kept (they can be validated like headers), up to
    /// an empty line; as many as a head may have.
    fn feed_trailers(&mut self, data: &[u8]) -> Result<usize, HttpError> {
        let Some((line, used)) = self.line(data, self.limits.max_head, "trailers")? else {
            return Ok(data.len());
        };
        if line.is_empty() {
            self.state = State::Done;
            return Ok(used);
        }
        if self.trailers.len() == MAX_HEADERS {
            return Err(HttpError::Malformed(format!(
                "more than {MAX_HEADERS} trailer fields"
            )));
        }
        let line = String::from_utf8_lossy(&line);
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("invalid trailer field {line:?}")))?;
        self.trailers
            .push((name.trim().to_string(), value.trim().to_string()));
        Ok(used)
    }

    /// Assembles one line (without its CRLF or LF) across feeds: the line
    /// and how much of `data` it used, or `None` if `data` ended first.
    fn line(
        &mut self,
        data: &[u8],
        max: usize,
        what: &str,
    ) -> Result<Option<(Vec<u8>, usize)>, HttpError> {
        let (part, used, complete) = match data.iter().position(|&b| b == b'\n') {
            Some(i) => (&data[..i], i + 1, true),
            None => (data, data.len(), false),
        };
        if self.buf.len() + part.len() > max {
            return Err(HttpError::Malformed(format!(
                "{what} longer than {max} bytes"
            )));
        }
        self.buf.extend_from_slice(part);
        if !complete {
            return Ok(None);
        }
        let mut line = std::mem::take(&mut self.buf);
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(Some((line, used)))
    }
}

/// A Host header value: no spaces or control characters.
pub(crate) fn check_host(s: &str) -> Result<(), String> {
    if s.is_empty() || s.contains(|c: char| c.is_ascii_control() || c.is_whitespace()) {
        return Err(format!("{s:?} is not a host name"));
    }
    Ok(())
}

/// A request path: starts with `/`, no spaces or control characters.
pub(crate) fn check_path(s: &str) -> Result<(), String> {
    if !s.starts_with('/') || s.contains(|c: char| c.is_ascii_control() || c.is_whitespace()) {
        return Err(format!(
            "{s:?} is not a path (it starts with / and has no spaces)"
        ));
    }
    Ok(())
}

/// An MD5 in hex, returned lowercase.
pub(crate) fn parse_md5(s: &str) -> Result<String, String> {
    if s.len() != 32 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not an MD5 (32 hex digits)"));
    }
    Ok(s.to_ascii_lowercase())
}

/// `bytes` as printable ASCII with escapes (`\r`, `\n`, `\xNN`), at most
/// `max` bytes of them, with `...` when there were more.
pub(crate) fn escape(bytes: &[u8], max: usize) -> String {
    let mut out: String = bytes[..bytes.len().min(max)]
        .iter()
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect();
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}

/// Index just past the blank line that ends a head (`\n\n` or `\n\r\n`),
/// searching from `from`.
fn head_end(buf: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn parse_head(bytes: &[u8]) -> Result<Head, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpError::Malformed("incomplete response head".into()));
        }
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    }
    Ok(Head {
        version: response.version.unwrap_or(1),
        status: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_string(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_string(),
                    String::from_utf8_lossy(h.value).trim().to_string(),
                )
            })
            .collect(),
    })
}

/// How the body of `head` is delimited (RFC 9112 §6.3).
pub(crate) fn framing(head: &Head, head_request: bool) -> Result<Framing, HttpError> {
    if head_request || (100..200).contains(&head.status) || head.status == 204 || head.status == 304
    {
        return Ok(Framing::None);
    }
    let codings: Vec<String> = head
        .values("transfer-encoding")
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty())
        .collect();
    if let Some(last) = codings.last() {
        return Ok(if last == "chunked" {
            Framing::Chunked
        } else {
            Framing::Close
        });
    }
    let mut length = None;
    for value in head.values("content-length").flat_map(|v| v.split(',')) {
        let n: u64 = value
            .trim()
            .parse()
            .map_err(|_| HttpError::Malformed(format!("invalid Content-Length {value:?}")))?;
        if length.is_some_and(|l| l != n) {
            return Err(HttpError::Malformed(
                "conflicting Content-Length headers".into(),
            ));
        }
        length = Some(n);
    }
    Ok(length.map_or(Framing::Close, Framing::Length))
}

/// An HTTP/1.1 request with `Host`, `User-Agent`, `Accept` and
/// `Connection: close`; a header in `extra` replaces the default of the
/// same name. The caller has validated the parts (no CR or LF).
pub(crate) fn request(method: &str, path: &str, host: &str, extra: &[(String, String)]) -> Vec<u8> {
    let user_agent = concat!("vipcheck/", env!("CARGO_PKG_VERSION"));
    let defaults = [
        ("Host", host),
        ("User-Agent", user_agent),
        ("Accept", "*/*"),
        ("Connection", "close"),
    ];
    let mut text = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in defaults {
        if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            text += &format!("{name}: {value}\r\n");
        }
    }
    for (name, value) in extra {
        text += &format!("{name}: {value}\r\n");
    }
    text += "\r\n";
    text.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `response` split at `at` and returns (head, body, result).
    fn parse_split(
        response: &[u8],
        splits: &[usize],
        head_request: bool,
        limits: Limits,
        eof: bool,
    ) -> (Option<Head>, Vec<u8>, Result<bool, HttpError>) {
        let mut parser = ResponseParser::new(head_request, limits);
        let mut body = Vec::new();
        let mut last = 0;
        let mut result = Ok(false);
        for &at in splits.iter().chain(std::iter::once(&response.len())) {
            result = parser.feed(&response[last..at], &mut |b| body.extend_from_slice(b));
            last = at;
            if result.is_err() {
                break;
            }
        }
        if eof && matches!(result, Ok(false)) {
            result = parser.finish().map(|()| true);
        }
        (parser.head().cloned(), body, result)
    }

    /// Every single split point and every byte-at-a-time feed give the same result.
    fn check_all_splits(
        response: &[u8],
        head_request: bool,
        eof: bool,
        expect: impl Fn(&Option<Head>, &[u8], &Result<bool, HttpError>),
    ) {
        let limits = Limits::default();
        for at in 0..=response.len() {
            let (head, body, result) = parse_split(response, &[at], head_request, limits, eof);
            expect(&head, &body, &result);
        }
        let every: Vec<usize> = (1..response.len()).collect();
        let (head, body, result) = parse_split(response, &every, head_request, limits, eof);
        expect(&head, &body, &result);
    }

    #[test]
    fn content_length() {
        check_all_splits(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA",
            false,
            false,
            |head, body, result| {
                assert_eq!(result, &Ok(true));
                assert_eq!(head.as_ref().unwrap().status, 200);
                assert_eq!(body, b"hello");
            },
        );
    }

    #[test]
    fn lf_only_lines() {
        check_all_splits(
            b"HTTP/1.1 200 OK\nContent-Length: 3\nX-A: b\n\nabc",
            false,
            false,
            |head, body, result| {
                assert_eq!(result, &Ok(true));
                let head = head.as_ref().unwrap();
                assert_eq!(head.values("x-a").collect::<Vec<_>>(), ["b"]);
                assert_eq!(body, b"abc");
            },
        );
    }

    #[test]
    fn chunked_with_trailer_and_extension() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nWiki\r\n5\npedia\n0\r\nX-Trailer: yes\r\n\r\n";
        check_all_splits(response, false, false, |_, body, result| {
            assert_eq!(result, &Ok(true));
            assert_eq!(body, b"Wikipedia");
        });
    }

    #[test]
    fn trailers_are_kept() {
        let response = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: abc\r\nX-Two:2\n\r\n";
        for at in 1..response.len() {
            let mut parser = ResponseParser::new(false, Limits::default());
            let mut sink = |_: &[u8]| {};
            let _ = parser.feed(&response[..at], &mut sink);
            assert_eq!(
                parser.feed(&response[at..], &mut sink),
                Ok(true),
                "split at {at}"
            );
            assert_eq!(
                parser.trailers(),
                [
                    ("X-Checksum".to_string(), "abc".to_string()),
                    ("X-Two".to_string(), "2".to_string())
                ]
            );
        }
        let mut parser = ResponseParser::new(false, Limits::default());
        let bad = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nno colon\r\n\r\n";
        assert!(matches!(
            parser.feed(bad, &mut |_| {}),
            Err(HttpError::Malformed(_))
        ));
    }

    #[test]
    fn not_http_is_said_at_the_first_wrong_byte() {
        for banner in [
            b"SSH-2.0-OpenSSH_9.2\r\n".as_slice(),
            b"\x16\x03\x01\x00",
            b"HTTX/1.1 200 OK\r\n",
        ] {
            // Byte by byte too: it fails without waiting for more.
            let mut parser = ResponseParser::new(false, Limits::default());
            let mut result = Ok(false);
            for b in banner.chunks(1) {
                result = parser.feed(b, &mut |_| {});
                if result.is_err() {
                    break;
                }
            }
            assert!(matches!(result, Err(HttpError::NotHttp(_))), "{result:?}");
        }
        let mut parser = ResponseParser::new(false, Limits::default());
        let e = parser
            .feed(b"SSH-2.0-OpenSSH_9.2\r\n", &mut |_| {})
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "the server answered 'SSH-2.0-OpenSSH_9.2\\r\\n', which is not HTTP"
        );
    }

    #[test]
    fn a_head_cut_short_shows_what_came() {
        let mut parser = ResponseParser::new(false, Limits::default());
        assert_eq!(parser.feed(b"HTTP/1.1 200", &mut |_| {}), Ok(false));
        assert_eq!(
            parser.finish().unwrap_err().to_string(),
            "connection ended after 12 bytes of an incomplete response head: 'HTTP/1.1 200'"
        );
        let mut silent = ResponseParser::new(false, Limits::default());
        assert_eq!(
            silent.finish().unwrap_err().to_string(),
            "connection ended before any response"
        );
    }

    #[test]
    fn escape_is_printable_and_bounded() {
        assert_eq!(escape(b"a\r\n\x00\xff'", 10), "a\\r\\n\\x00\\xff\\'");
        assert_eq!(escape(b"abcdef", 3), "abc...");
        assert_eq!(escape(b"", 3), "");
    }

    #[test]
    fn close_delimited() {
        check_all_splits(
            b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil close",
            false,
            true,
            |head, body, result| {
                assert_eq!(result, &Ok(true));
                assert_eq!(head.as_ref().unwrap().version, 0);
                assert_eq!(body, b"until close");
            },
        );
    }

    #[test]
    fn no_body_for_head_204_304_and_skips_100() {
        check_all_splits(
            b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n",
            true,
            false,
            |_, body, result| {
                assert_eq!(result, &Ok(true));
                assert!(body.is_empty());
            },
        );
        check_all_splits(
            b"HTTP/1.1 204 No Content\r\n\r\n",
            false,
            false,
            |head, _, result| {
                assert_eq!(result, &Ok(true));
                assert_eq!(head.as_ref().unwrap().status, 204);
            },
        );
        check_all_splits(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n",
            false,
            false,
            |head, _, result| {
                assert_eq!(result, &Ok(true));
                assert_eq!(head.as_ref().unwrap().status, 304);
            },
        );
    }

    #[test]
    fn invalid_chunk_size() {
        check_all_splits(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            false,
            |_, _, result| {
                assert!(
                    matches!(result, Err(HttpError::Malformed(m)) if m.contains("chunk size")),
                    "{result:?}"
                );
            },
        );
    }

    #[test]
    fn truncated_body() {
        check_all_splits(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
            false,
            true,
            |_, _, result| {
                assert_eq!(
                    result,
                    &Err(HttpError::Truncated {
                        body_bytes: 3,
                        expected: Some(10)
                    })
                );
            },
        );
        check_all_splits(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            false,
            true,
            |_, _, result| {
                assert!(
                    matches!(
                        result,
                        Err(HttpError::Truncated {
                            body_bytes: 2,
                            expected: None
                        })
                    ),
                    "{result:?}"
                );
            },
        );
    }

    #[test]
    fn bounds() {
        let small = Limits {
            max_head: 64,
            max_body: 4,
        };
        let (_, _, r) = parse_split(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            &[],
            false,
            small,
            false,
        );
        assert_eq!(r, Err(HttpError::BodyTooLarge { limit: 4 }));
        let (_, _, r) = parse_split(
            b"HTTP/1.1 200 OK\r\n\r\nhello",
            &[3, 20, 22],
            false,
            small,
            true,
        );
        assert_eq!(r, Err(HttpError::BodyTooLarge { limit: 4 }));
        let (_, _, r) = parse_split(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n",
            &[],
            false,
            Limits {
                max_head: 64,
                max_body: 8,
            },
            false,
        );
        assert_eq!(r, Err(HttpError::BodyTooLarge { limit: 8 }));
        let endless = [b"HTTP/1.1 200 OK\r\n".as_slice(), &b"X: y\r\n".repeat(20)].concat();
        let (_, _, r) = parse_split(&endless, &[5, 50, 70], false, small, false);
        assert_eq!(r, Err(HttpError::HeadTooLarge { limit: 64 }));
    }

    #[test]
    fn malformed_head() {
        let (_, _, r) = parse_split(
            b"HTTP/1.1 2x0 OK\r\n\r\n",
            &[],
            false,
            Limits::default(),
            false,
        );
        assert!(matches!(r, Err(HttpError::Malformed(_))), "{r:?}");
        let (_, _, r) = parse_split(
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            &[],
            false,
            Limits::default(),
            false,
        );
        assert!(matches!(r, Err(HttpError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn request_defaults_and_overrides() {
        let r = request(
            "GET",
            "/x",
            "example.org",
            &[
                ("user-agent".into(), "probe".into()),
                ("X-A".into(), "1".into()),
            ],
        );
        let text = String::from_utf8(r).unwrap();
        assert!(
            text.starts_with("GET /x HTTP/1.1\r\nHost: example.org\r\n"),
            "{text}"
        );
        assert!(text.contains("Connection: close\r\n"));
        assert!(!text.contains("User-Agent: vipcheck"), "{text}");
        assert!(
            text.contains("user-agent: probe\r\nX-A: 1\r\n\r\n"),
            "{text}"
        );
    }
}
