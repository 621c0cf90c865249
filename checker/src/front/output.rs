//! What a check prints: its verdict line in the asked format (text, JSON,
//! Nagios plugin), and the macros every line goes through.
//!
//! A check runs under keepalived, whose pipes may be closed or never read:
//! a line that cannot be written is dropped, never a panic (`println!`
//! panics on EPIPE).

/// One line on stdout; a write error (closed pipe) is ignored.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// One line on stderr; a write error (closed pipe) is ignored.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

use std::ffi::OsString;
use std::time::Duration;

use serde::Serialize;

use crate::check::verdict::Failure;
use crate::check::verdict::Verdict;
use crate::exit::Nagios;
use crate::probe::Subject;
use crate::probe::args::{Format, Thresholds};

/// vipcheck's own diagnostics (`log::debug!`: attach time, fallbacks,
/// dead checks' slots freed) on stderr, from now on; not the BPF loader's,
/// which would bury them.
pub(crate) fn log_to_stderr() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.target().starts_with("vipcheck")
        }
        fn log(&self, record: &log::Record) {
            if self.enabled(record.metadata()) {
                note!("vipcheck: {}", record.args());
            }
        }
        fn flush(&self) {}
    }
    if log::set_logger(&Stderr).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

/// The `--format` a command line asks for, read before it is parsed, so
/// that a usage error is reported in that format too.
pub(crate) fn requested_format(args: &[OsString]) -> Format {
    let mut words = args.iter().filter_map(|a| a.to_str());
    while let Some(word) = words.next() {
        let value = match word {
            "--" => break,
            "--format" => words.next(),
            _ => word.strip_prefix("--format="),
        };
        match value {
            Some("json") => return Format::Json,
            Some("nagios") => return Format::Nagios,
            _ => {}
        }
    }
    Format::Text
}

/// The JSON object of one check. Field names are stable: documented in
/// the README, tested; a field that was not computed is `null`.
#[derive(Debug, Serialize)]
struct Report<'a, T: Serialize> {
    target: &'a T,
    /// `null` when not known (a usage error before the subcommand).
    check: Option<&'a str>,
    /// "healthy", "unhealthy", or "error" (the check could not run).
    verdict: &'a str,
    /// Why it failed or could not run, as a code (the daemon's metrics
    /// `reason` label); `null` when healthy.
    failure: Option<Failure>,
    reason: &'a str,
    exit: i32,
    timings: Timings,
    status: Option<u16>,
    body_bytes: Option<u64>,
    md5: Option<&'a str>,
    sha256: Option<&'a str>,
    tls: Option<Tls<'a>>,
}

/// HTTPS: the session and the server's certificate.
#[derive(Debug, Serialize)]
struct Tls<'a> {
    version: &'a str,
    cipher_suite: &'a str,
    subject: &'a str,
    issuer: &'a str,
    days_left: i64,
    verified: bool,
}

#[derive(Debug, Serialize)]
struct Timings {
    total_ms: Option<f64>,
    attach_ms: Option<f64>,
    connect_ms: Option<f64>,
    first_byte_ms: Option<f64>,
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// The verdict of a check that ran, in `format`, and its exit status.
pub(crate) fn verdict(
    verdict: &Verdict,
    subject: &Subject,
    check: &str,
    format: Format,
    thresholds: Thresholds,
) -> (String, i32) {
    let exit = crate::exit::of_check(verdict.failure);
    match format {
        Format::Text => (verdict.to_string(), exit),
        Format::Json => {
            let d = &verdict.details;
            let report = Report {
                target: subject,
                check: Some(check),
                verdict: if verdict.healthy() {
                    "healthy"
                } else {
                    "unhealthy"
                },
                failure: verdict.failure,
                reason: &verdict.reason,
                exit,
                timings: Timings {
                    total_ms: Some(ms(verdict.elapsed)),
                    attach_ms: verdict.attached.map(ms),
                    connect_ms: d.connect.map(ms),
                    first_byte_ms: d.first_byte.map(ms),
                },
                status: d.status,
                body_bytes: d.body_bytes,
                md5: d.md5.as_deref(),
                sha256: d.sha256.as_deref(),
                tls: d.tls.as_ref().map(|t| Tls {
                    version: &t.version,
                    cipher_suite: &t.cipher_suite,
                    subject: &t.subject,
                    issuer: &t.issuer,
                    days_left: t.days_left,
                    verified: t.unverified.is_none(),
                }),
            };
            (json(&report), exit)
        }
        Format::Nagios => {
            let state = crate::exit::nagios(
                verdict.failure,
                verdict.elapsed,
                thresholds.warning,
                thresholds.critical,
            );
            let text = format!("{}: {}", verdict.what, verdict.reason);
            let mut perfdata = format!(
                "time={:.6}s;{};{};0",
                verdict.elapsed.as_secs_f64(),
                seconds(thresholds.warning),
                seconds(thresholds.critical)
            );
            if let Some(bytes) = verdict.details.body_bytes {
                perfdata += &format!(" size={bytes}B;;;0");
            }
            (nagios_line(state, &text, Some(&perfdata)), state as i32)
        }
    }
}

/// The check could not run because of `e`: [`error`] with the message,
/// exit status and failure code that `e` gives.
pub(crate) fn failed(
    e: &crate::error::Error,
    subject: Option<&Subject>,
    check: &str,
    format: Format,
) -> (String, i32) {
    error(
        &e.to_string(),
        crate::exit::of_error(e),
        e.failure(),
        subject,
        check,
        format,
    )
}

/// An error that kept the check from running (exit 2 or 3), in `format`,
/// and the exit status; `failure` its code (`Error::failure`).
pub(crate) fn error(
    message: &str,
    exit: i32,
    failure: Failure,
    subject: Option<&Subject>,
    check: &str,
    format: Format,
) -> (String, i32) {
    error_of(message, exit, failure, subject, None, check, format)
}

/// What a command line that could not be parsed says of its target: the
/// values it gives that parse, `null` for the others (JSON).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct KnownTarget {
    pub(crate) iface: Option<String>,
    pub(crate) real_server: Option<std::net::IpAddr>,
    pub(crate) vip: Option<std::net::IpAddr>,
    pub(crate) port: Option<u16>,
}

/// [`error`], or with what a command line that could not be parsed gives
/// of its target (`known`, when `subject` is `None`).
pub(crate) fn error_of(
    message: &str,
    exit: i32,
    failure: Failure,
    subject: Option<&Subject>,
    known: Option<&KnownTarget>,
    check: &str,
    format: Format,
) -> (String, i32) {
    match format {
        Format::Text => (format!("vipcheck: {message}"), exit),
        Format::Json => {
            // The fields of a Subject, in its order; null when not known.
            let target = match subject {
                Some(subject) => KnownTarget {
                    iface: Some(subject.iface.clone()),
                    real_server: Some(subject.real_server),
                    vip: Some(subject.vip),
                    port: subject.port,
                },
                None => known.cloned().unwrap_or_default(),
            };
            let report = Report {
                target: &target,
                check: (!check.is_empty()).then_some(check),
                verdict: "error",
                failure: Some(failure),
                reason: message,
                exit,
                timings: Timings {
                    total_ms: None,
                    attach_ms: None,
                    connect_ms: None,
                    first_byte_ms: None,
                },
                status: None,
                body_bytes: None,
                md5: None,
                sha256: None,
                tls: None,
            };
            (json(&report), exit)
        }
        Format::Nagios => (
            nagios_line(Nagios::Unknown, message, None),
            Nagios::Unknown as i32,
        ),
    }
}

/// `VIPCHECK STATE - text | perfdata`; the text cannot contain `|`, which
/// starts the perfdata.
pub(crate) fn nagios_line(state: Nagios, text: &str, perfdata: Option<&str>) -> String {
    let name = match state {
        Nagios::Ok => "OK",
        Nagios::Warning => "WARNING",
        Nagios::Critical => "CRITICAL",
        Nagios::Unknown => "UNKNOWN",
    };
    let text = text.replace('|', "/");
    match perfdata {
        Some(perfdata) => format!("VIPCHECK {name} - {text} | {perfdata}"),
        None => format!("VIPCHECK {name} - {text}"),
    }
}

fn seconds(threshold: Option<crate::exit::Range>) -> String {
    threshold.map_or_else(String::new, |r| r.to_string())
}

fn json<T: Serialize>(report: &Report<T>) -> String {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string(report).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::verdict::Details;

    /// The JSON output's `failure` and the daemon's `reason` label are the
    /// same code for the same failure: of a failing verdict, of an error.
    #[test]
    fn json_failure_is_the_metrics_reason() {
        use crate::daemon::metrics::{Metrics, Outcome, TargetLabels};
        use crate::error::Error;
        use std::time::Duration;
        let labels = || {
            TargetLabels::new(
                "198.18.0.100".parse().unwrap(),
                80,
                "198.18.0.11".parse().unwrap(),
                "tcp",
            )
        };
        let checked = |failure: Option<Failure>, reason: &str| -> Result<Verdict, Error> {
            Ok(Verdict {
                failure,
                what: "tcp 198.18.0.100:80 via 198.18.0.11".into(),
                reason: reason.into(),
                elapsed: Duration::from_millis(3),
                attached: None,
                details: Details::default(),
            })
        };
        let subject = Subject {
            iface: "eth0".into(),
            real_server: "198.18.0.11".parse().unwrap(),
            vip: "198.18.0.100".parse().unwrap(),
            port: Some(80),
        };
        let json_failure = |line: &str| -> Option<String> {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["failure"].as_str().map(str::to_string)
        };
        let label = |result: &Result<Verdict, Error>| {
            let m = Metrics::new();
            m.observe(&labels(), Outcome::of(result), Duration::from_millis(3));
            let text = m.encode();
            text.lines()
                .filter_map(|l| {
                    l.strip_prefix(r#"vipcheck_check_failures_total{check="tcp",reason=""#)
                })
                .map(|rest| rest.split('"').next().unwrap_or_default().to_string())
                .next()
        };
        let verdicts = [
            (None, "SYN-ACK"),
            (
                Some(Failure::NoNeighbour),
                "no ARP reply from 198.18.0.11 on eth0 within 970 ms",
            ),
            (Some(Failure::NoAnswer), "no answer within 970 ms"),
            (Some(Failure::Refused), "connection refused (RST)"),
            (Some(Failure::Timeout), "no response within 970 ms"),
            (Some(Failure::CertExpiring), "certificate expires in 3 days"),
            (
                Some(Failure::Interrupted),
                "interrupted by SIGTERM before a verdict",
            ),
        ];
        for (failure, reason) in verdicts {
            let result = checked(failure, reason);
            let Ok(v) = &result else { unreachable!() };
            let (line, _) = verdict(v, &subject, "tcp", Format::Json, Default::default());
            let got = json_failure(&line);
            assert_eq!(got.as_deref(), failure.map(Failure::as_str), "{line}");
            assert_eq!(got, label(&result), "{reason}");
        }
        for e in [
            Error::Busy("all 256 slots busy".into()),
            Error::bpf_found("load failed"),
            Error::NoInterface("eth9".into()),
            Error::Usage("bad".into()),
        ] {
            let (line, _) = failed(&e, Some(&subject), "tcp", Format::Json);
            let got = json_failure(&line);
            assert!(got.is_some(), "{line}");
            assert_eq!(got, label(&Err(e)), "{line}");
        }
    }

    fn subject() -> Subject {
        Subject {
            iface: "eth0".into(),
            real_server: std::net::Ipv4Addr::new(198, 18, 0, 11).into(),
            vip: std::net::Ipv4Addr::new(198, 18, 0, 100).into(),
            port: Some(80),
        }
    }

    fn healthy(ms: u64) -> Verdict {
        Verdict {
            failure: None,
            what: "http GET h/ via 198.18.0.11 (198.18.0.100:80)".into(),
            reason: "200 OK | piped".into(),
            elapsed: Duration::from_millis(ms),
            attached: None,
            details: Details {
                status: Some(200),
                body_bytes: Some(612),
                md5: Some("d36f8f9425c4a8000ad9c4a97185aca5".into()),
                ..Details::default()
            },
        }
    }

    #[test]
    fn json_has_the_documented_fields() {
        let (line, exit) = verdict(
            &healthy(2),
            &subject(),
            "http",
            Format::Json,
            Thresholds::default(),
        );
        assert_eq!(exit, 0);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["target"]["real_server"], "198.18.0.11");
        assert_eq!(v["target"]["port"], 80);
        assert_eq!(v["check"], "http");
        assert_eq!(v["verdict"], "healthy");
        assert!(v["failure"].is_null(), "{line}");
        assert_eq!(v["exit"], 0);
        assert_eq!(v["timings"]["total_ms"], 2.0);
        assert!(v["timings"]["attach_ms"].is_null());
        assert_eq!(v["status"], 200);
        assert_eq!(v["body_bytes"], 612);
        assert!(v["sha256"].is_null());
        let failed = Verdict {
            failure: Some(Failure::Status),
            reason: "status 503, expected 200-399 (503 Service Unavailable)".into(),
            ..healthy(2)
        };
        let (line, exit) = verdict(
            &failed,
            &subject(),
            "http",
            Format::Json,
            Thresholds::default(),
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!((v["verdict"].as_str(), exit), (Some("unhealthy"), 1));
        assert_eq!(v["failure"], "status");
        let (line, exit) = error(
            "eth9: no such interface",
            3,
            Failure::Interface,
            None,
            "tcp",
            Format::Json,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!((v["verdict"].as_str(), exit), (Some("error"), 3));
        assert_eq!(v["failure"], "interface");
    }

    #[test]
    fn nagios_states_and_perfdata() {
        let t = Thresholds {
            warning: Some(crate::exit::Range::parse("0.005").unwrap()),
            critical: Some(crate::exit::Range::parse("0.01").unwrap()),
        };
        let (line, exit) = verdict(&healthy(2), &subject(), "http", Format::Nagios, t);
        assert_eq!(exit, 0);
        assert_eq!(
            line,
            "VIPCHECK OK - http GET h/ via 198.18.0.11 (198.18.0.100:80): 200 OK / piped \
             | time=0.002000s;0.005;0.01;0 size=612B;;;0"
        );
        assert_eq!(
            verdict(&healthy(7), &subject(), "http", Format::Nagios, t).1,
            1
        );
        assert_eq!(
            verdict(&healthy(11), &subject(), "http", Format::Nagios, t).1,
            2
        );
        let failed = Verdict {
            failure: Some(Failure::Status),
            ..healthy(1)
        };
        let (line, exit) = verdict(
            &failed,
            &subject(),
            "http",
            Format::Nagios,
            Thresholds::default(),
        );
        assert!(line.starts_with("VIPCHECK CRITICAL - ") && line.contains("| time=0.001000s;;;0"));
        assert_eq!(exit, 2);
        // Only the certificate's near expiry: a warning, whatever the time.
        let expiring = Verdict {
            failure: Some(Failure::CertExpiring),
            ..healthy(11)
        };
        let (line, exit) = verdict(&expiring, &subject(), "https", Format::Nagios, t);
        assert!(line.starts_with("VIPCHECK WARNING - "), "{line}");
        assert_eq!(exit, 1);
        assert_eq!(
            error("not root", 3, Failure::Error, None, "tcp", Format::Nagios),
            ("VIPCHECK UNKNOWN - not root".to_string(), 3)
        );
    }
}
