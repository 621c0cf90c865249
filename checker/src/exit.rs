//! Every exit status vipcheck returns is decided here: of a check that
//! ran, of one that could not, under a C checker's name, of an audit, and
//! the Nagios plugin states. The README, `--help` and the man pages
//! document these.

use std::time::Duration;

use crate::error::Error;
use crate::failure::Failure;

/// The server passed the check (every target, for an audit).
pub(crate) const EXIT_HEALTHY: i32 = 0;
/// The check ran and the server failed it.
pub(crate) const EXIT_UNHEALTHY: i32 = 1;
/// The command line is wrong, or its input file unreadable.
pub(crate) const EXIT_USAGE: i32 = 2;
/// The check could not run here (privilege, interface, BPF).
pub const EXIT_CANNOT_RUN: i32 = 3;

/// A check that ran: healthy, or the server failed it.
pub(crate) fn of_check(failure: Option<Failure>) -> i32 {
    match failure {
        None => EXIT_HEALTHY,
        Some(_) => EXIT_UNHEALTHY,
    }
}

/// A check that could not run: a usage error (2), interrupted by a signal
/// (a failing verdict, 1), anything else (3).
pub(crate) fn of_error(e: &Error) -> i32 {
    match e {
        Error::Usage(_) => EXIT_USAGE,
        Error::Interrupted(_) => EXIT_UNHEALTHY,
        _ => EXIT_CANNOT_RUN,
    }
}

/// Under a C checker's name: 0 healthy, 1 anything else (usage errors,
/// checks that could not run), as the C checkers: keepalived's
/// `misc_dynamic` reads 2-255 as "healthy, with weight status - 2".
pub(crate) fn of_c_checker(healthy: bool) -> i32 {
    if healthy {
        EXIT_HEALTHY
    } else {
        EXIT_UNHEALTHY
    }
}

/// An audit (and a daemon that cannot check): 1 when a real server failed
/// its check; else 3 when a check could not run here (not root, no such
/// interface, BPF refused: the daemon stops with 3 rather than report real
/// servers down); else 0, every target healthy.
pub(crate) fn of_audit(any_unhealthy: bool, any_not_run: bool) -> i32 {
    if any_unhealthy {
        EXIT_UNHEALTHY
    } else if any_not_run {
        EXIT_CANNOT_RUN
    } else {
        EXIT_HEALTHY
    }
}

/// The monitoring-plugins states, as exit statuses (`--format nagios`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Nagios {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

/// A monitoring-plugins threshold range (`-w`, `-c`), in seconds:
/// `[@]START:END` with `~` for no start; `END` alone is `0:END`, `START:`
/// has no end. A value outside the range alerts (inside with `@`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Range {
    /// `None`: `~`, no lower bound.
    pub(crate) start: Option<f64>,
    /// `None`: no upper bound.
    pub(crate) end: Option<f64>,
    /// `@`: alert inside the range instead.
    pub(crate) inside: bool,
}

impl Range {
    /// Parses the monitoring-plugins syntax (decimals allowed).
    pub(crate) fn parse(s: &str) -> Result<Range, String> {
        let bad = || format!("'{s}' is not a range: seconds, as 0.5, 10, 10:, ~:10, 1:2 or @1:2");
        let (inside, rest) = match s.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let number = |v: &str| match v.parse::<f64>() {
            Ok(n)
                if n.is_finite() && !v.is_empty() && !v.starts_with(['+', 'i', 'I', 'n', 'N']) =>
            {
                Ok(n)
            }
            _ => Err(bad()),
        };
        let (start, end) = match rest.split_once(':') {
            None => (Some(0.0), Some(number(rest)?)),
            Some((start, end)) => {
                let start = match start {
                    "~" => None,
                    "" => Some(0.0),
                    v => Some(number(v)?),
                };
                let end = match end {
                    "" => None,
                    v => Some(number(v)?),
                };
                (start, end)
            }
        };
        if let (Some(a), Some(b)) = (start, end)
            && a > b
        {
            return Err(format!("'{s}': the range's start is past its end"));
        }
        Ok(Range { start, end, inside })
    }

    /// Whether `value` (seconds) alerts.
    pub(crate) fn alerts(&self, value: f64) -> bool {
        let within = self.start.is_none_or(|a| value >= a) && self.end.is_none_or(|b| value <= b);
        within == self.inside
    }
}

impl std::fmt::Display for Range {
    /// As the perfdata's warn and crit fields take it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        match (self.start, self.end) {
            (Some(0.0), Some(b)) => write!(f, "{b}"),
            (Some(a), Some(b)) => write!(f, "{a}:{b}"),
            (Some(a), None) => write!(f, "{a}:"),
            (None, Some(b)) => write!(f, "~:{b}"),
            (None, None) => f.write_str("~:"),
        }
    }
}

/// The Nagios state of a check that ran: CRITICAL when it failed, WARNING
/// when only the certificate's near expiry failed; a healthy check whose
/// time alerts in `critical` (else `warning`) is CRITICAL (WARNING).
pub(crate) fn nagios(
    failure: Option<Failure>,
    elapsed: Duration,
    warning: Option<Range>,
    critical: Option<Range>,
) -> Nagios {
    let time = elapsed.as_secs_f64();
    match failure {
        Some(Failure::CertExpiring) => Nagios::Warning,
        Some(_) => Nagios::Critical,
        None if critical.is_some_and(|c| c.alerts(time)) => Nagios::Critical,
        None if warning.is_some_and(|w| w.alerts(time)) => Nagios::Warning,
        None => Nagios::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(of_check(None), 0);
        assert_eq!(of_check(Some(Failure::NoAnswer)), 1);
        assert_eq!(of_error(&Error::Usage("x".into())), 2);
        assert_eq!(of_error(&Error::Interrupted("SIGTERM")), 1);
        assert_eq!(of_error(&Error::NoInterface("eth9".into())), 3);
        assert_eq!(of_error(&Error::bpf_found("program missing")), 3);
        assert_eq!((of_c_checker(true), of_c_checker(false)), (0, 1));
        assert_eq!(of_audit(true, true), 1);
        assert_eq!(of_audit(false, true), 3);
        assert_eq!(of_audit(false, false), 0);
        let ms = Duration::from_millis;
        let range = |s: &str| Some(Range::parse(s).unwrap());
        let (w, c) = (range("0.01"), range("0.02"));
        assert_eq!(nagios(None, ms(5), w, c), Nagios::Ok);
        assert_eq!(nagios(None, ms(15), w, c), Nagios::Warning);
        assert_eq!(nagios(None, ms(25), w, c), Nagios::Critical);
        assert_eq!(
            nagios(Some(Failure::CertExpiring), ms(1), w, c),
            Nagios::Warning
        );
        assert_eq!(nagios(Some(Failure::Status), ms(1), w, c), Nagios::Critical);
        // Below a start alerts too; inside with `@`.
        assert_eq!(nagios(None, ms(5), range("0.01:"), None), Nagios::Warning);
        assert_eq!(nagios(None, ms(15), range("0.01:"), None), Nagios::Ok);
        assert_eq!(
            nagios(None, ms(15), None, range("@0.01:0.02")),
            Nagios::Critical
        );
        assert_eq!(nagios(None, ms(25), None, range("@0.01:0.02")), Nagios::Ok);
        assert_eq!(nagios(None, ms(2500), range("~:2"), None), Nagios::Warning);
    }

    #[test]
    fn ranges() {
        for (text, shown) in [
            ("0.1", "0.1"),
            ("1", "1"),
            ("10:", "10:"),
            ("~:10", "~:10"),
            ("1:2.5", "1:2.5"),
            ("@1:2", "@1:2"),
            ("0:3", "3"),
        ] {
            assert_eq!(Range::parse(text).unwrap().to_string(), shown, "{text}");
        }
        for bad in ["", "x", "2:1", "1:2:3", "@", "inf", "NaN", "-", "1s", "+1"] {
            assert!(Range::parse(bad).is_err(), "{bad:?}");
        }
        let r = Range::parse("1").unwrap();
        assert!(!r.alerts(0.5) && !r.alerts(1.0) && r.alerts(1.001) && r.alerts(-0.1));
    }
}
