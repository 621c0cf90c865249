//! SMTP over the check's TCP stream, without I/O: a reply parser (RFC 5321
//! §4.2: `250-...` continuation lines, then `250 ...`) fed bytes in any
//! split, and the check's dialogue.
//!
//! keepalived's SMTP_CHECK (keepalived/check/check_smtp.c,
//! `smtp_engine_thread`) reads the greeting's first line and wants 220,
//! sends `HELO <helo_name>\r\n` (default helo_name
//! `smtpchecker.keepalived.org`, check_smtp.h `SMTP_DEFAULT_HELO`), wants
//! 250, sends `QUIT\r\n` and then any line at all passes (a close before
//! one fails). It parses only each reply's first line, and only a status
//! followed by a space or the end (`smtp_get_status`): a multi-line
//! greeting (`220-...`) or a bare `220\r\n` fails there. This dialogue
//! sends EHLO (or HELO, as keepalived, with [`Hello::Helo`]), takes
//! multi-line replies, falls back from EHLO to HELO on a 5xx, and after
//! QUIT takes 221, any other reply, or the close.

use std::fmt;

/// Bounds on what a server may send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Bytes of one reply line, without its line end (RFC 5321 §4.5.3.1.5
    /// allows 510; servers send longer EHLO lines rarely).
    pub(crate) max_line: usize,
    /// Lines of one reply, and lines received but not yet taken.
    pub(crate) max_lines: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: 2048,
            max_lines: 100,
        }
    }
}

/// One complete reply: its code and every line as received (without the
/// line end), e.g. `["250-mx.example", "250 PIPELINING"]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub(crate) code: u16,
    pub(crate) lines: Vec<String>,
}

impl Reply {
    /// The reply's last line (the one with the space).
    pub(crate) fn last_line(&self) -> &str {
        self.lines.last().map_or("", String::as_str)
    }
}

/// Why the bytes are not SMTP replies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReplyError {
    LineTooLong {
        limit: usize,
    },
    TooManyLines {
        limit: usize,
    },
    /// A line that does not start with a 3-digit code and a space, a dash
    /// or its end.
    NotSmtp {
        line: String,
    },
    /// A continuation line with another code than the reply's first.
    CodeChanged {
        line: String,
        code: u16,
    },
}

impl fmt::Display for ReplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplyError::LineTooLong { limit } => {
                write!(f, "reply line longer than {limit} bytes")
            }
            ReplyError::TooManyLines { limit } => {
                write!(f, "more than {limit} reply lines")
            }
            ReplyError::NotSmtp { line } => {
                write!(f, "the server sent '{line}', which is not an SMTP reply")
            }
            ReplyError::CodeChanged { line, code } => write!(
                f,
                "reply line '{line}' continues a {code} reply with another code"
            ),
        }
    }
}

impl std::error::Error for ReplyError {}

/// Parses replies, fed in pieces.
#[derive(Debug, Default)]
pub(crate) struct ReplyParser {
    limits: Limits,
    /// The line being assembled.
    partial: Vec<u8>,
    /// Lines of the reply being assembled, and its code.
    lines: Vec<String>,
    code: Option<u16>,
    /// Complete replies not yet taken.
    ready: std::collections::VecDeque<Reply>,
    /// Lines in `ready`.
    ready_lines: usize,
}

impl ReplyParser {
    pub(crate) fn new(limits: Limits) -> Self {
        ReplyParser {
            limits,
            ..ReplyParser::default()
        }
    }

    /// Takes the next bytes of the stream (CRLF or bare LF line ends).
    /// Memory stays within the limits whatever comes.
    pub(crate) fn feed(&mut self, mut data: &[u8]) -> Result<(), ReplyError> {
        while !data.is_empty() {
            let (part, used, complete) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..i], i + 1, true),
                None => (data, data.len(), false),
            };
            // One more byte for the CR before the LF.
            let too_long = ReplyError::LineTooLong {
                limit: self.limits.max_line,
            };
            let room = self.limits.max_line + 1 - self.partial.len();
            self.partial
                .extend_from_slice(&part[..part.len().min(room)]);
            data = &data[used..];
            // Fail at the first bytes that cannot start a reply (a TLS or
            // SSH server, HTTP), instead of waiting for a line end.
            let start = &self.partial[..self.partial.len().min(4)];
            let starts_ok = start.iter().enumerate().all(|(i, b)| {
                if i < 3 {
                    b.is_ascii_digit()
                } else {
                    matches!(b, b' ' | b'-' | b'\r')
                }
            });
            if !starts_ok {
                let mut line = &self.partial[..];
                if let Some(end) = line.iter().position(|&b| b == b'\r') {
                    line = &line[..end];
                }
                return Err(ReplyError::NotSmtp {
                    line: cut(&String::from_utf8_lossy(line)),
                });
            }
            if part.len() > room {
                return Err(too_long);
            }
            if complete {
                let mut line = std::mem::take(&mut self.partial);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if line.len() > self.limits.max_line {
                    return Err(too_long);
                }
                self.line(&String::from_utf8_lossy(&line))?;
            }
        }
        Ok(())
    }

    fn line(&mut self, line: &str) -> Result<(), ReplyError> {
        let bytes = line.as_bytes();
        let code = bytes
            .get(..3)
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .map(|d| d.iter().fold(0u16, |n, &b| n * 10 + u16::from(b - b'0')));
        let (Some(code), Some(b' ' | b'-') | None) = (code, bytes.get(3)) else {
            return Err(ReplyError::NotSmtp { line: cut(line) });
        };
        if let Some(first) = self.code
            && first != code
        {
            return Err(ReplyError::CodeChanged {
                line: cut(line),
                code: first,
            });
        }
        if self.lines.len() + self.ready_lines >= self.limits.max_lines {
            return Err(ReplyError::TooManyLines {
                limit: self.limits.max_lines,
            });
        }
        self.code = Some(code);
        self.lines.push(line.to_string());
        if bytes.get(3) != Some(&b'-') {
            let lines = std::mem::take(&mut self.lines);
            self.ready_lines += lines.len();
            self.ready.push_back(Reply { code, lines });
            self.code = None;
        }
        Ok(())
    }

    /// The next complete reply, if one has come.
    pub(crate) fn next_reply(&mut self) -> Option<Reply> {
        let reply = self.ready.pop_front()?;
        self.ready_lines -= reply.lines.len();
        Some(reply)
    }

    /// Bytes or lines of a reply that has not ended.
    pub(crate) fn has_partial(&self) -> bool {
        !self.partial.is_empty() || !self.lines.is_empty()
    }
}

/// A line for error messages: at most 120 characters.
fn cut(line: &str) -> String {
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

/// The greeting command the dialogue starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hello {
    /// EHLO, then HELO if the server answers 5xx.
    Ehlo,
    /// HELO only, as keepalived's SMTP_CHECK.
    Helo,
}

/// One line of the dialogue, for `-v`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// What we sent, without its CRLF.
    Sent(String),
    Received(String),
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Line::Sent(l) => write!(f, "> {l}"),
            Line::Received(l) => write!(f, "< {l}"),
        }
    }
}

/// Where the dialogue is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    Greeting,
    Ehlo,
    Helo,
    Quit,
    Done,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::Quit => "QUIT",
            Stage::Done => "end",
        })
    }
}

/// Why the check failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SmtpProblem {
    /// A reply with another code than the stage wants: its last line.
    Unexpected {
        stage: Stage,
        want: u16,
        line: String,
    },
    /// The server closed the connection before the dialogue's end.
    Closed {
        stage: Stage,
    },
    Reply {
        stage: Stage,
        error: ReplyError,
    },
}

impl fmt::Display for SmtpProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpProblem::Unexpected { stage, want, line } => {
                write!(f, "{stage}: the server answered '{line}' (not {want})")
            }
            SmtpProblem::Closed { stage } => {
                write!(f, "{stage}: the server closed the connection")
            }
            SmtpProblem::Reply { stage, error } => write!(f, "{stage}: {error}"),
        }
    }
}

impl std::error::Error for SmtpProblem {}

/// What the caller does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Send these bytes, then feed what comes.
    Send(Vec<u8>),
    /// Feed more bytes (or [`Dialogue::closed`]).
    Wait,
    /// The check's outcome: every line of the dialogue, or the problem
    /// ([`Dialogue::transcript`] has the lines then too).
    Done(Result<Vec<Line>, SmtpProblem>),
}

/// The check's dialogue: greeting 220 → EHLO/HELO 250 → QUIT.
#[derive(Debug)]
pub(crate) struct Dialogue {
    name: String,
    hello: Hello,
    stage: Stage,
    parser: ReplyParser,
    transcript: Vec<Line>,
}

impl Dialogue {
    /// A dialogue that names itself `name` in EHLO/HELO (validated by
    /// [`check_name`]); it starts by waiting for the greeting.
    pub(crate) fn new(name: &str, hello: Hello, limits: Limits) -> Self {
        Dialogue {
            name: name.to_string(),
            hello,
            stage: Stage::Greeting,
            parser: ReplyParser::new(limits),
            transcript: Vec::new(),
        }
    }

    pub(crate) fn stage(&self) -> Stage {
        self.stage
    }

    /// Every line sent and received so far.
    pub(crate) fn transcript(&self) -> &[Line] {
        &self.transcript
    }

    /// Takes bytes from the server.
    pub(crate) fn received(&mut self, data: &[u8]) -> Step {
        if self.stage == Stage::Done {
            return Step::Wait;
        }
        if let Err(error) = self.parser.feed(data) {
            return self.fail(SmtpProblem::Reply {
                stage: self.stage,
                error,
            });
        }
        let mut out = Vec::new();
        while let Some(reply) = self.parser.next_reply() {
            self.transcript
                .extend(reply.lines.iter().cloned().map(Line::Received));
            match self.on_reply(&reply) {
                Step::Send(bytes) => out.extend_from_slice(&bytes),
                Step::Wait => {}
                done @ Step::Done(_) => return done,
            }
        }
        if out.is_empty() {
            Step::Wait
        } else {
            Step::Send(out)
        }
    }

    /// The server closed the connection (or its stream ended).
    pub(crate) fn closed(&mut self) -> Step {
        match self.stage {
            Stage::Done => Step::Wait,
            // After QUIT a close is an answer (keepalived wants a line).
            Stage::Quit => self.finish(),
            stage => self.fail(SmtpProblem::Closed { stage }),
        }
    }

    fn on_reply(&mut self, reply: &Reply) -> Step {
        let unexpected = |stage, want| SmtpProblem::Unexpected {
            stage,
            want,
            line: cut(reply.last_line()),
        };
        match self.stage {
            Stage::Greeting if reply.code == 220 => match self.hello {
                Hello::Ehlo => self.send(Stage::Ehlo, format!("EHLO {}", self.name)),
                Hello::Helo => self.send(Stage::Helo, format!("HELO {}", self.name)),
            },
            Stage::Greeting => self.fail(unexpected(Stage::Greeting, 220)),
            Stage::Ehlo | Stage::Helo if reply.code == 250 => {
                self.send(Stage::Quit, "QUIT".to_string())
            }
            Stage::Ehlo if (500..600).contains(&reply.code) => {
                self.send(Stage::Helo, format!("HELO {}", self.name))
            }
            stage @ (Stage::Ehlo | Stage::Helo) => self.fail(unexpected(stage, 250)),
            // 221, or anything: keepalived takes any line after QUIT.
            Stage::Quit => self.finish(),
            Stage::Done => Step::Wait,
        }
    }

    fn send(&mut self, stage: Stage, line: String) -> Step {
        self.stage = stage;
        let bytes = format!("{line}\r\n").into_bytes();
        self.transcript.push(Line::Sent(line));
        Step::Send(bytes)
    }

    fn finish(&mut self) -> Step {
        self.stage = Stage::Done;
        Step::Done(Ok(self.transcript.clone()))
    }

    fn fail(&mut self, problem: SmtpProblem) -> Step {
        self.stage = Stage::Done;
        Step::Done(Err(problem))
    }
}

/// An EHLO/HELO name: printable ASCII without spaces, at most 255 bytes.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "{name:?} is not an EHLO name (printable ASCII without spaces, at most 255 bytes)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replies(stream: &[u8], limits: Limits) -> Result<Vec<Reply>, ReplyError> {
        let mut parser = ReplyParser::new(limits);
        let mut out = Vec::new();
        // Whole, then byte by byte: the same replies.
        parser.feed(stream)?;
        while let Some(r) = parser.next_reply() {
            out.push(r);
        }
        let mut parser = ReplyParser::new(limits);
        let mut again = Vec::new();
        for b in stream.chunks(1) {
            parser.feed(b)?;
            while let Some(r) = parser.next_reply() {
                again.push(r);
            }
        }
        assert_eq!(out, again);
        Ok(out)
    }

    #[test]
    fn multi_line_replies() {
        let r = replies(
            b"220-mx.example ESMTP\r\n220-second\r\n220 ready\r\n250 OK\n354\r\n",
            Limits::default(),
        )
        .unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].code, 220);
        assert_eq!(
            r[0].lines,
            ["220-mx.example ESMTP", "220-second", "220 ready"]
        );
        assert_eq!(r[0].last_line(), "220 ready");
        assert_eq!(r[1].code, 250);
        assert_eq!(r[2].code, 354);
        assert_eq!(r[2].lines, ["354"]);
    }

    #[test]
    fn partial_reply_waits() {
        let mut parser = ReplyParser::new(Limits::default());
        parser.feed(b"250-a\r\n250 b").unwrap();
        assert_eq!(parser.next_reply(), None);
        assert!(parser.has_partial());
        parser.feed(b"\r\n").unwrap();
        assert_eq!(parser.next_reply().unwrap().lines, ["250-a", "250 b"]);
        assert!(!parser.has_partial());
    }

    #[test]
    fn reply_errors() {
        let small = Limits {
            max_line: 10,
            max_lines: 3,
        };
        assert_eq!(
            replies(b"250 0123456789X\r\n", small),
            Err(ReplyError::LineTooLong { limit: 10 })
        );
        // Exactly the limit, CRLF or LF.
        assert!(replies(b"250 012345\r\n250 012345\n", small).is_ok());
        assert_eq!(
            replies(b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n", small),
            Err(ReplyError::TooManyLines { limit: 3 })
        );
        // Lines waiting to be taken count too.
        assert_eq!(
            replies(b"250 a\r\n250 b\r\n250 c\r\n250 d\r\n", small),
            Err(ReplyError::TooManyLines { limit: 3 })
        );
        for bad in [&b"SSH-2.0-x\r\n"[..], b"25 x\r\n", b"2500\r\n", b"\r\n"] {
            let err = replies(bad, small).unwrap_err();
            assert!(matches!(err, ReplyError::NotSmtp { .. }), "{err:?}");
        }
        let err = replies(b"250-a\r\n251 b\r\n", small).unwrap_err();
        assert_eq!(
            err.to_string(),
            "reply line '251 b' continues a 250 reply with another code"
        );
        assert_eq!(
            replies(b"HTTP/1.1 400\r\n", Limits::default())
                .unwrap_err()
                .to_string(),
            "the server sent 'HTTP/1.1 400', which is not an SMTP reply"
        );
    }

    /// Runs a dialogue against the server's chunks; the bytes we sent and
    /// the outcome.
    fn talk(hello: Hello, server: &[&[u8]], close: bool) -> (Vec<u8>, Step) {
        let mut d = Dialogue::new("check.example", hello, Limits::default());
        let mut sent = Vec::new();
        let mut last = Step::Wait;
        for chunk in server {
            last = d.received(chunk);
            match &last {
                Step::Send(b) => sent.extend_from_slice(b),
                Step::Done(_) => return (sent, last),
                Step::Wait => {}
            }
        }
        if close {
            last = d.closed();
        }
        (sent, last)
    }

    #[test]
    fn ehlo_dialogue() {
        let (sent, step) = talk(
            Hello::Ehlo,
            &[
                b"220-mx.example ESMTP\r\n220 hi\r\n",
                b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n",
                b"221 2.0.0 Bye\r\n",
            ],
            false,
        );
        assert_eq!(sent, b"EHLO check.example\r\nQUIT\r\n");
        let Step::Done(Ok(lines)) = step else {
            panic!("{step:?}");
        };
        let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "< 220-mx.example ESMTP",
                "< 220 hi",
                "> EHLO check.example",
                "< 250-mx.example",
                "< 250-PIPELINING",
                "< 250 8BITMIME",
                "> QUIT",
                "< 221 2.0.0 Bye"
            ]
        );
    }

    #[test]
    fn ehlo_refused_falls_back_to_helo() {
        let (sent, step) = talk(
            Hello::Ehlo,
            &[
                b"220 old\r\n",
                b"502 5.5.1 unknown command\r\n",
                b"250 hello\r\n",
                b"221 bye\r\n",
            ],
            false,
        );
        assert_eq!(
            sent,
            b"EHLO check.example\r\nHELO check.example\r\nQUIT\r\n"
        );
        assert!(matches!(step, Step::Done(Ok(_))));
    }

    #[test]
    fn helo_as_keepalived_and_close_after_quit() {
        let (sent, step) = talk(Hello::Helo, &[b"220 x\r\n", b"250 y\r\n"], true);
        assert_eq!(sent, b"HELO check.example\r\nQUIT\r\n");
        assert!(matches!(step, Step::Done(Ok(_))));
        // Any reply to QUIT will do.
        let (_, step) = talk(
            Hello::Helo,
            &[b"220 x\r\n", b"250 y\r\n", b"500 what\r\n"],
            false,
        );
        assert!(matches!(step, Step::Done(Ok(_))));
    }

    #[test]
    fn pipelined_server_bytes_in_one_piece() {
        // Greeting and an early reply in one read: both handled in order.
        let mut d = Dialogue::new("n", Hello::Ehlo, Limits::default());
        let step = d.received(b"220 a\r\n250 b\r\n");
        assert_eq!(step, Step::Send(b"EHLO n\r\nQUIT\r\n".to_vec()));
        assert_eq!(d.stage(), Stage::Quit);
    }

    #[test]
    fn failures_name_the_line() {
        let (sent, step) = talk(Hello::Ehlo, &[b"554 5.3.2 go away\r\n"], false);
        assert!(sent.is_empty());
        let Step::Done(Err(problem)) = step else {
            panic!("{step:?}");
        };
        assert_eq!(
            problem.to_string(),
            "greeting: the server answered '554 5.3.2 go away' (not 220)"
        );

        let (_, step) = talk(Hello::Helo, &[b"220 x\r\n", b"421 busy\r\n"], false);
        let Step::Done(Err(problem)) = step else {
            panic!("{step:?}");
        };
        assert_eq!(
            problem.to_string(),
            "HELO: the server answered '421 busy' (not 250)"
        );

        // A 5xx to HELO after EHLO's: no third try.
        let (_, step) = talk(
            Hello::Ehlo,
            &[b"220 x\r\n", b"500 a\r\n", b"501 b\r\n"],
            false,
        );
        let Step::Done(Err(problem)) = step else {
            panic!("{step:?}");
        };
        assert_eq!(
            problem.to_string(),
            "HELO: the server answered '501 b' (not 250)"
        );

        let (_, step) = talk(Hello::Ehlo, &[b"220 x\r\n"], true);
        assert_eq!(
            step,
            Step::Done(Err(SmtpProblem::Closed { stage: Stage::Ehlo }))
        );

        let (_, step) = talk(Hello::Ehlo, &[b"SSH-2.0-x\r\n"], false);
        let Step::Done(Err(problem)) = step else {
            panic!("{step:?}");
        };
        assert_eq!(
            problem.to_string(),
            "greeting: the server sent 'SSH-2.0-x', which is not an SMTP reply"
        );
    }

    #[test]
    fn done_ignores_the_rest() {
        let mut d = Dialogue::new("n", Hello::Helo, Limits::default());
        assert!(matches!(d.received(b"500 no\r\n"), Step::Done(Err(_))));
        assert_eq!(d.received(b"220 late\r\n"), Step::Wait);
        assert_eq!(d.closed(), Step::Wait);
        assert_eq!(d.transcript().len(), 1);
    }

    #[test]
    fn names() {
        assert!(check_name("smtpchecker.keepalived.org").is_ok());
        assert!(check_name("[198.18.0.1]").is_ok());
        for bad in ["", "a b", "a\r\nQUIT", &"a".repeat(256)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
