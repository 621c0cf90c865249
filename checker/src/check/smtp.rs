//! `vipcheck smtp`: the SMTP dialogue of [`wire::smtp`] (greeting 220,
//! EHLO or HELO 250, QUIT) over the check's TCP flow ([`converse`]).

use std::net::SocketAddr;

use crate::check::stream::{Dialogue, converse};
use crate::check::verdict::{Failure, Verdict};
use crate::check::{Flow, connect, run as run_flow};
use crate::engine::Engine;
use crate::error::Result;
use crate::probe::{Probe, SmtpSpec};
use crate::wire::smtp::{self, Hello, Limits, Line, SmtpProblem, Stage, Step};

/// One check on `engine` (several may run at once).
pub(crate) async fn check(engine: &Engine, target: &Probe, spec: &SmtpSpec) -> Result<Verdict> {
    let what = format!(
        "smtp {} via {}",
        SocketAddr::new(target.vip, target.port),
        target.real_server
    );
    run_flow(engine, target, &what, async |flow: &mut Flow| {
        if let Err((failure, reason)) = connect(flow).await? {
            return Ok(flow.verdict(Some(failure), &what, reason));
        }
        let hello = if spec.helo_only {
            Hello::Helo
        } else {
            Hello::Ehlo
        };
        let mut talk = Talk::new(&spec.helo, hello, target.trace.heads);
        converse(flow, &mut talk).await?;
        flow.close(target.close).await?;
        let (failure, reason) = talk.judge(&flow.window());
        Ok(flow.verdict(failure, &what, reason))
    })
    .await
}

/// The dialogue over the flow: what it has to send, how it ended, and
/// (`-v`) its lines shown on stderr as they come.
struct Talk {
    dialogue: smtp::Dialogue,
    out: Vec<u8>,
    sent: usize,
    result: Option<std::result::Result<Vec<Line>, SmtpProblem>>,
    /// The server reset the connection (rather than closed it).
    reset: bool,
    trace: bool,
    /// Lines of the transcript shown so far.
    shown: usize,
}

impl Talk {
    fn new(name: &str, hello: Hello, trace: bool) -> Talk {
        Talk {
            dialogue: smtp::Dialogue::new(name, hello, Limits::default()),
            out: Vec::new(),
            sent: 0,
            result: None,
            reset: false,
            trace,
            shown: 0,
        }
    }

    /// What the dialogue's step asks; `true` once it is over.
    fn step(&mut self, step: Step) -> bool {
        if self.trace {
            for line in &self.dialogue.transcript()[self.shown..] {
                crate::note!("{line}");
            }
            self.shown = self.dialogue.transcript().len();
        }
        match step {
            Step::Send(bytes) => {
                self.out.extend_from_slice(&bytes);
                false
            }
            Step::Wait => false,
            Step::Done(result) => {
                self.result = Some(result);
                true
            }
        }
    }

    /// The verdict; `window` says how long the server had.
    fn judge(&self, window: &str) -> (Option<Failure>, String) {
        match &self.result {
            Some(Ok(lines)) => (None, summary(lines)),
            Some(Err(SmtpProblem::Closed { stage })) if self.reset => (
                Some(Failure::Reset),
                format!("{stage}: the server reset the connection"),
            ),
            Some(Err(problem)) => (Some(Failure::Smtp), problem.to_string()),
            None => {
                let reason = match self.dialogue.stage() {
                    Stage::Greeting => format!("no greeting within {window}"),
                    stage => format!("{stage}: no reply within {window}"),
                };
                (Some(Failure::Timeout), reason)
            }
        }
    }
}

impl Dialogue for Talk {
    fn outgoing(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    fn sent(&mut self, n: usize) {
        self.sent = (self.sent + n).min(self.out.len());
    }

    fn received(&mut self, data: &[u8]) -> bool {
        let step = self.dialogue.received(data);
        self.step(step)
    }

    fn closed(&mut self, reset: bool) -> bool {
        self.reset = reset;
        let step = self.dialogue.closed();
        self.step(step);
        true
    }
}

/// A healthy dialogue in one line: "220 mx.example ESMTP; EHLO 250; QUIT
/// 221" (the greeting's first line, then each command and its reply's
/// code; "QUIT: closed" when the server closed instead of answering).
fn summary(lines: &[Line]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut command: Option<&str> = None;
    for line in lines {
        match line {
            Line::Received(text) if parts.is_empty() => {
                // The greeting's first line, as a reply's last: "220 text".
                let rest = text.get(4..).unwrap_or("");
                let code = text.get(..3).unwrap_or(text);
                parts.push(format!("{code} {rest}").trim_end().to_string());
            }
            Line::Received(text) => {
                if let Some(verb) = command.take() {
                    parts.push(format!("{verb} {}", text.get(..3).unwrap_or(text)));
                }
            }
            Line::Sent(text) => {
                command = Some(text.split(' ').next().unwrap_or(text));
            }
        }
    }
    if let Some(verb) = command {
        parts.push(format!("{verb}: closed"));
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `server`'s pieces to a dialogue as [`converse`] does (sending
    /// what it asks at once); what we sent, and whether it ended.
    fn talk(hello: Hello, server: &[&[u8]], close: Option<bool>) -> (Talk, Vec<u8>, bool) {
        let mut t = Talk::new("check.example", hello, false);
        let mut wire = Vec::new();
        let mut over = false;
        for piece in server {
            over = t.received(piece);
            let out = t.outgoing().to_vec();
            t.sent(out.len());
            wire.extend_from_slice(&out);
            if over {
                break;
            }
        }
        if let (false, Some(reset)) = (over, close) {
            over = t.closed(reset);
        }
        (t, wire, over)
    }

    #[test]
    fn a_healthy_ehlo_dialogue_in_one_line() {
        let (t, wire, over) = talk(
            Hello::Ehlo,
            &[
                b"220-mx.example ESMTP\r\n220 second\r\n",
                b"250-mx.example\r\n250 PIPELINING\r\n",
                b"221 2.0.0 bye\r\n",
            ],
            None,
        );
        assert!(over);
        assert_eq!(wire, b"EHLO check.example\r\nQUIT\r\n");
        assert_eq!(
            t.judge("1 s"),
            (None, "220 mx.example ESMTP; EHLO 250; QUIT 221".to_string())
        );
    }

    #[test]
    fn helo_fallback_and_close_after_quit() {
        let (t, wire, over) = talk(
            Hello::Ehlo,
            &[b"220 old\r\n", b"502 no\r\n", b"250 hi\r\n"],
            Some(false),
        );
        assert!(over);
        assert_eq!(
            wire,
            b"EHLO check.example\r\nHELO check.example\r\nQUIT\r\n"
        );
        assert_eq!(
            t.judge("1 s").1,
            "220 old; EHLO 502; HELO 250; QUIT: closed"
        );
        // keepalived's SMTP_CHECK: HELO only.
        let (t, wire, _) = talk(
            Hello::Helo,
            &[b"220\r\n", b"250 ok\r\n", b"221 bye\r\n"],
            None,
        );
        assert_eq!(wire, b"HELO check.example\r\nQUIT\r\n");
        assert_eq!(t.judge("1 s").1, "220; HELO 250; QUIT 221");
    }

    #[test]
    fn failures() {
        let (t, wire, over) = talk(Hello::Ehlo, &[b"554 go away\r\n"], None);
        assert!(over && wire.is_empty());
        assert_eq!(
            t.judge("1 s"),
            (
                Some(Failure::Smtp),
                "greeting: the server answered '554 go away' (not 220)".to_string()
            )
        );
        let (t, _, _) = talk(Hello::Ehlo, &[b"220 x\r\n"], Some(false));
        assert_eq!(
            t.judge("1 s"),
            (
                Some(Failure::Smtp),
                "EHLO: the server closed the connection".to_string()
            )
        );
        let (t, _, _) = talk(Hello::Ehlo, &[b"220 x\r\n"], Some(true));
        assert_eq!(
            t.judge("1 s"),
            (
                Some(Failure::Reset),
                "EHLO: the server reset the connection".to_string()
            )
        );
        let (t, _, over) = talk(Hello::Ehlo, &[b"220-x\r\n"], None);
        assert!(!over);
        assert_eq!(
            t.judge("970 ms"),
            (
                Some(Failure::Timeout),
                "no greeting within 970 ms".to_string()
            )
        );
        let (t, _, _) = talk(Hello::Ehlo, &[b"220 x\r\n"], None);
        assert_eq!(t.judge("970 ms").1, "EHLO: no reply within 970 ms");
        let (t, _, _) = talk(Hello::Ehlo, &[b"HTTP/1.1 400 Bad\r\n"], None);
        assert_eq!(t.judge("1 s").0, Some(Failure::Smtp));
        assert!(
            t.judge("1 s").1.contains("not an SMTP reply"),
            "{:?}",
            t.judge("1 s")
        );
    }
}
