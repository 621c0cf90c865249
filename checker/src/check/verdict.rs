//! The result of a check that ran, and how it is printed.

use std::fmt;
use std::time::Duration;

/// The code of a failing verdict, at the bottom with the exit statuses
/// (an [`Error`](crate::error::Error) has one too).
pub(crate) use crate::failure::Failure;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// Why the server failed the check; `None` when it passed.
    pub(crate) failure: Option<Failure>,
    /// What was checked, e.g. "tcp 198.18.0.100:80 via 198.18.0.11".
    pub(crate) what: String,
    /// Why: what the server did (or did not do).
    pub(crate) reason: String,
    pub(crate) elapsed: Duration,
    /// Time this check spent loading and attaching the XDP program before
    /// it started (the first check on a bare interface); not in `elapsed`.
    pub(crate) attached: Option<Duration>,
    /// What the check measured on the way, for the JSON and Nagios outputs.
    pub(crate) details: Details,
}

/// The facts a check gathered besides its verdict (each where computed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Details {
    /// From the start to the SYN-ACK.
    pub(crate) connect: Option<Duration>,
    /// From sending the request to the first byte of the response.
    pub(crate) first_byte: Option<Duration>,
    /// HTTP status code.
    pub(crate) status: Option<u16>,
    pub(crate) body_bytes: Option<u64>,
    /// Lowercase hex.
    pub(crate) md5: Option<String>,
    /// Lowercase hex.
    pub(crate) sha256: Option<String>,
    /// HTTPS: the session and the server's certificate.
    pub(crate) tls: Option<crate::check::tls::TlsFacts>,
}

impl Verdict {
    /// The server passed the check.
    pub(crate) fn healthy(&self) -> bool {
        self.failure.is_none()
    }
}

impl fmt::Display for Verdict {
    /// One line: `OK: tcp 198.18.0.100:80 via 198.18.0.11: SYN-ACK (1.2 ms)`,
    /// with `, after 41.0 ms to attach the capture program` inside the
    /// parentheses when the check had to attach it first.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {} ({:.1} ms",
            if self.healthy() { "OK" } else { "FAIL" },
            self.what,
            self.reason,
            self.elapsed.as_secs_f64() * 1000.0
        )?;
        if let Some(attached) = self.attached {
            write!(
                f,
                ", after {:.1} ms to attach the capture program",
                attached.as_secs_f64() * 1000.0
            )?;
        }
        write!(f, ")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line() {
        let v = Verdict {
            failure: Some(Failure::NoAnswer),
            what: "tcp 198.18.0.100:80 via 198.18.0.12".into(),
            reason: "no answer".into(),
            elapsed: Duration::from_micros(1500),
            attached: None,
            details: Details::default(),
        };
        assert_eq!(
            v.to_string(),
            "FAIL: tcp 198.18.0.100:80 via 198.18.0.12: no answer (1.5 ms)"
        );
        assert_eq!(crate::exit::of_check(v.failure), 1);
        let cold = Verdict {
            failure: None,
            reason: "SYN-ACK".into(),
            attached: Some(Duration::from_micros(41_020)),
            ..v
        };
        assert_eq!(
            cold.to_string(),
            "OK: tcp 198.18.0.100:80 via 198.18.0.12: SYN-ACK (1.5 ms, after 41.0 ms to attach the capture program)"
        );
        assert_eq!(crate::exit::of_check(cold.failure), 0);
    }
}
