//! `vipcheck tcp --send TEXT --expect RE`: after the handshake, send TEXT
//! and require RE in what the server sends before it closes or the
//! deadline (a dialogue over the flow: [`converse`]). As monitoring-plugins'
//! check_tcp, `--send` alone is healthy once the server has the bytes (its
//! TCP acknowledged them), and `--expect` alone reads what the server
//! sends first (a banner).

use std::net::SocketAddr;

use regex::bytes::Regex;

use crate::check::stream::{Dialogue, converse};
use crate::check::udp::shown;
use crate::check::verdict::{Failure, Verdict};
use crate::check::{Flow, connect, run as run_flow};
use crate::engine::Engine;
use crate::error::Result;
use crate::probe::{ExpectSpec, Probe};

/// What is kept of the server's bytes for a match: a pattern is sought in
/// the first 64 KiB, no more (a server that streams cannot grow us).
const MAX_READ: usize = 64 * 1024;

/// One check on `engine` (several may run at once).
pub(crate) async fn check(engine: &Engine, target: &Probe, spec: &ExpectSpec) -> Result<Verdict> {
    let what = format!(
        "tcp {} via {}",
        SocketAddr::new(target.vip, target.port),
        target.real_server
    );
    run_flow(engine, target, &what, async |flow: &mut Flow| {
        if let Err((failure, reason)) = connect(flow).await? {
            return Ok(flow.verdict(Some(failure), &what, reason));
        }
        let mut dialogue = SendExpect::new(&spec.send, spec.expect.as_ref().map(|p| &p.0));
        converse(flow, &mut dialogue).await?;
        flow.close(target.close).await?;
        let (failure, reason) = dialogue.judge(&flow.window());
        Ok(flow.verdict(failure, &what, reason))
    })
    .await
}

/// How the dialogue ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The pattern matched what came.
    Matched,
    /// No pattern, and the server acknowledged what was sent.
    Acknowledged,
    /// The server closed (FIN) or reset the connection first.
    Closed,
    Reset,
    /// [`MAX_READ`] bytes came without a match.
    Full,
}

/// Sends `out`, then watches the server's bytes for `expect`.
pub(crate) struct SendExpect<'a> {
    out: &'a [u8],
    sent: usize,
    expect: Option<&'a Regex>,
    /// The server's first bytes (at most [`MAX_READ`]).
    got: Vec<u8>,
    end: Option<End>,
}

impl<'a> SendExpect<'a> {
    pub(crate) fn new(out: &'a [u8], expect: Option<&'a Regex>) -> Self {
        SendExpect {
            out,
            sent: 0,
            expect,
            got: Vec::new(),
            end: None,
        }
    }

    /// The verdict: healthy on a match (or, without a pattern, once
    /// acknowledged); `window` says how long the server had.
    pub(crate) fn judge(&self, window: &str) -> (Option<Failure>, String) {
        let sent = if self.out.is_empty() {
            String::new()
        } else {
            format!("sent {}; ", bytes(self.sent))
        };
        let received = if self.got.is_empty() {
            "nothing received".to_string()
        } else {
            format!("received {} '{}'", bytes(self.got.len()), shown(&self.got))
        };
        let pattern = self.expect.map_or(String::new(), |re| format!("/{re}/"));
        match self.end {
            Some(End::Matched) => (None, format!("{sent}{received}, matching {pattern}")),
            Some(End::Acknowledged) => (None, format!("{sent}acknowledged")),
            Some(End::Full) => (
                Some(Failure::Reply),
                format!("{sent}{received} without a match of {pattern} in the first 64 KiB"),
            ),
            Some(End::Closed) if self.expect.is_some() => (
                Some(Failure::Reply),
                format!(
                    "{sent}{received}, not matching {pattern}, and the server closed the connection"
                ),
            ),
            Some(End::Closed) => (
                Some(Failure::Reply),
                format!("{sent}the server closed the connection before acknowledging it all"),
            ),
            Some(End::Reset) => (
                Some(Failure::Reset),
                format!("{sent}{received}, and the server reset the connection"),
            ),
            None if self.expect.is_some() && !self.got.is_empty() => (
                Some(Failure::Reply),
                format!("{sent}{received}, not matching {pattern} within {window}"),
            ),
            None if self.expect.is_some() => (
                Some(Failure::Timeout),
                format!("{sent}nothing received within {window} (expecting {pattern})"),
            ),
            None => (
                Some(Failure::Timeout),
                format!(
                    "{} of {} sent and acknowledged within {window}",
                    self.sent.min(self.out.len()),
                    bytes(self.out.len())
                ),
            ),
        }
    }
}

/// "1 byte", "6 bytes".
fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".to_string()
    } else {
        format!("{n} bytes")
    }
}

impl Dialogue for SendExpect<'_> {
    fn outgoing(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    fn sent(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.out.len());
    }

    fn received(&mut self, data: &[u8]) -> bool {
        let room = MAX_READ - self.got.len();
        self.got.extend_from_slice(&data[..data.len().min(room)]);
        let Some(expect) = self.expect else {
            // Without a pattern, what comes changes nothing.
            return false;
        };
        if expect.is_match(&self.got) {
            self.end = Some(End::Matched);
        } else if self.got.len() == MAX_READ {
            self.end = Some(End::Full);
        }
        self.end.is_some()
    }

    fn closed(&mut self, reset: bool) -> bool {
        if self.end.is_none() {
            self.end = Some(if reset { End::Reset } else { End::Closed });
        }
        true
    }

    fn acknowledged(&mut self) -> bool {
        if self.expect.is_none() && self.end.is_none() {
            self.end = Some(End::Acknowledged);
        }
        self.expect.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send_all(d: &mut SendExpect<'_>) -> Vec<u8> {
        let out = d.outgoing().to_vec();
        d.sent(out.len());
        out
    }

    #[test]
    fn a_match_across_pieces_is_healthy() {
        let re = Regex::new("^220 .*\r\n221").unwrap();
        let mut d = SendExpect::new(b"QUIT\r\n", Some(&re));
        assert_eq!(send_all(&mut d), b"QUIT\r\n");
        assert!(d.outgoing().is_empty());
        assert!(!d.acknowledged(), "a pattern waits for the server's bytes");
        assert!(!d.received(b"220 mx ready\r\n22"));
        assert!(d.received(b"1 bye\r\n"));
        let (failure, reason) = d.judge("1 s");
        assert_eq!(failure, None);
        assert_eq!(
            reason,
            "sent 6 bytes; received 23 bytes '220 mx ready\\r\\n221 bye\\r\\n', matching /^220 .*\r\n221/"
        );
    }

    #[test]
    fn no_match_fails_as_a_reply_or_a_timeout() {
        let re = Regex::new("nomatch").unwrap();
        let mut d = SendExpect::new(b"", Some(&re));
        assert!(d.outgoing().is_empty());
        assert!(!d.received(b"220 hi\r\n"));
        let (failure, reason) = d.judge("970 ms");
        assert_eq!(failure, Some(Failure::Reply));
        assert_eq!(
            reason,
            "received 8 bytes '220 hi\\r\\n', not matching /nomatch/ within 970 ms"
        );
        assert!(d.closed(false));
        assert_eq!(d.judge("x").0, Some(Failure::Reply));
        assert!(
            d.judge("x")
                .1
                .ends_with("and the server closed the connection")
        );

        let mut silent = SendExpect::new(b"", Some(&re));
        assert_eq!(silent.judge("970 ms").0, Some(Failure::Timeout));
        assert!(silent.closed(true));
        assert_eq!(silent.judge("x").0, Some(Failure::Reset));
    }

    #[test]
    fn send_alone_is_healthy_once_acknowledged() {
        let mut d = SendExpect::new(b"ping\n", None);
        assert_eq!(d.judge("1 s").0, Some(Failure::Timeout));
        d.sent(2);
        assert_eq!(d.outgoing(), b"ng\n");
        assert!(
            d.judge("1 s")
                .1
                .starts_with("2 of 5 bytes sent and acknowledged")
        );
        d.sent(3);
        // Bytes from the server change nothing without a pattern.
        assert!(!d.received(b"hello"));
        assert!(d.acknowledged());
        assert_eq!(d.judge("1 s"), (None, "sent 5 bytes; acknowledged".into()));
    }

    #[test]
    fn reading_is_bounded() {
        let re = Regex::new("never").unwrap();
        let mut d = SendExpect::new(b"", Some(&re));
        let chunk = vec![b'a'; 4096];
        let mut done = false;
        for _ in 0..(MAX_READ / chunk.len() + 4) {
            if d.received(&chunk) {
                done = true;
                break;
            }
        }
        assert!(done);
        assert_eq!(d.got.len(), MAX_READ);
        let (failure, reason) = d.judge("1 s");
        assert_eq!(failure, Some(Failure::Reply));
        assert!(reason.contains("without a match of /never/ in the first 64 KiB"));
        // Nothing more is kept, whatever comes.
        assert!(d.received(&chunk));
        assert_eq!(d.got.len(), MAX_READ);
    }
}
