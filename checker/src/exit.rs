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

/// The Nagios state of a check that ran: CRITICAL when it failed, WARNING
/// when only the certificate's near expiry failed; a healthy check slower
/// than `critical` (else `warning`) is CRITICAL (WARNING).
pub(crate) fn nagios(
    failure: Option<Failure>,
    elapsed: Duration,
    warning: Option<Duration>,
    critical: Option<Duration>,
) -> Nagios {
    match failure {
        Some(Failure::CertExpiring) => Nagios::Warning,
        Some(_) => Nagios::Critical,
        None if critical.is_some_and(|c| elapsed > c) => Nagios::Critical,
        None if warning.is_some_and(|w| elapsed > w) => Nagios::Warning,
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
        let (w, c) = (Some(ms(10)), Some(ms(20)));
        assert_eq!(nagios(None, ms(5), w, c), Nagios::Ok);
        assert_eq!(nagios(None, ms(15), w, c), Nagios::Warning);
        assert_eq!(nagios(None, ms(25), w, c), Nagios::Critical);
        assert_eq!(
            nagios(Some(Failure::CertExpiring), ms(1), w, c),
            Nagios::Warning
        );
        assert_eq!(nagios(Some(Failure::Status), ms(1), w, c), Nagios::Critical);
    }
}
