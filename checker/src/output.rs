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
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use serde::Serialize;

use crate::verdict::{Failure, Verdict};

/// vipcheck's own diagnostics (`log::debug!`: attach time, fallbacks,
/// dead checks' slots freed) on stderr, from now on; not the BPF loader's,
/// which would bury them.
pub fn log_to_stderr() {
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

/// Writes the man pages into `dir`: vipcheck, each subcommand
/// (`vipcheck-tcp.1`, ...) and the three C names; returns their paths.
pub fn man_pages(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    use clap::CommandFactory;
    let top = crate::cli::Cli::command();
    let mut pages: Vec<(String, clap::Command)> = vec![("vipcheck".to_string(), top.clone())];
    for sub in top.get_subcommands() {
        let name = format!("vipcheck-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for name in crate::compat::NAMES {
        pages.push((name.to_string(), crate::compat::command(name)));
    }
    let mut written = Vec::new();
    for (name, command) in pages {
        let path = dir.join(format!("{name}.1"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        std::fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

/// The `--format` a command line asks for, read before it is parsed, so
/// that a usage error is reported in that format too.
pub fn requested_format(args: &[OsString]) -> Format {
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

/// How the verdict is printed (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One line: `OK: ...` or `FAIL: ...` (exit 0/1/2/3).
    #[default]
    Text,
    /// One JSON object (exit 0/1/2/3).
    Json,
    /// A monitoring plugin's line with perfdata (exit 0 OK, 1 WARNING,
    /// 2 CRITICAL, 3 UNKNOWN).
    Nagios,
}

/// Response-time thresholds of the Nagios format (`-w`, `-c`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Thresholds {
    pub warning: Option<Duration>,
    pub critical: Option<Duration>,
}

/// What was checked, as the JSON output names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Subject {
    pub iface: String,
    pub real_server: IpAddr,
    pub vip: IpAddr,
    pub port: u16,
}

impl From<&crate::target::Target> for Subject {
    fn from(target: &crate::target::Target) -> Subject {
        Subject {
            iface: target.iface.clone(),
            real_server: target.real_server,
            vip: target.vip,
            port: target.port,
        }
    }
}

/// The JSON object of one check. Field names are stable: documented in
/// the README, tested; a field that was not computed is `null`.
#[derive(Debug, Serialize)]
struct Report<'a> {
    target: &'a Subject,
    check: &'a str,
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
pub fn verdict(
    verdict: &Verdict,
    subject: &Subject,
    check: &str,
    format: Format,
    thresholds: Thresholds,
) -> (String, i32) {
    let exit = verdict.exit_code();
    match format {
        Format::Text => (verdict.to_string(), exit),
        Format::Json => {
            let d = &verdict.details;
            let report = Report {
                target: subject,
                check,
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
            let state = match (verdict.failure, thresholds) {
                // Only the certificate's near expiry failed: a warning.
                (Some(Failure::CertExpiring), _) => Nagios::Warning,
                (Some(_), _) => Nagios::Critical,
                (
                    None,
                    Thresholds {
                        critical: Some(c), ..
                    },
                ) if verdict.elapsed > c => Nagios::Critical,
                (
                    None,
                    Thresholds {
                        warning: Some(w), ..
                    },
                ) if verdict.elapsed > w => Nagios::Warning,
                (None, _) => Nagios::Ok,
            };
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

/// An error that kept the check from running (exit 2 or 3), in `format`,
/// and the exit status; `failure` its code (`Error::failure`).
pub fn error(
    message: &str,
    exit: i32,
    failure: Failure,
    subject: Option<&Subject>,
    check: &str,
    format: Format,
) -> (String, i32) {
    match format {
        Format::Text => (format!("vipcheck: {message}"), exit),
        Format::Json => {
            let unknown = Subject {
                iface: String::new(),
                real_server: Ipv4Addr::UNSPECIFIED.into(),
                vip: Ipv4Addr::UNSPECIFIED.into(),
                port: 0,
            };
            let report = Report {
                target: subject.unwrap_or(&unknown),
                check,
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

/// The monitoring-plugins states, as exit statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nagios {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

/// `VIPCHECK STATE - text | perfdata`; the text cannot contain `|`, which
/// starts the perfdata.
fn nagios_line(state: Nagios, text: &str, perfdata: Option<&str>) -> String {
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

fn seconds(threshold: Option<Duration>) -> String {
    threshold.map_or_else(String::new, |d| format!("{:.6}", d.as_secs_f64()))
}

fn json(report: &Report) -> String {
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string(report).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Details;

    fn subject() -> Subject {
        Subject {
            iface: "eth0".into(),
            real_server: Ipv4Addr::new(198, 18, 0, 11).into(),
            vip: Ipv4Addr::new(198, 18, 0, 100).into(),
            port: 80,
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
            warning: Some(Duration::from_millis(5)),
            critical: Some(Duration::from_millis(10)),
        };
        let (line, exit) = verdict(&healthy(2), &subject(), "http", Format::Nagios, t);
        assert_eq!(exit, 0);
        assert_eq!(
            line,
            "VIPCHECK OK - http GET h/ via 198.18.0.11 (198.18.0.100:80): 200 OK / piped \
             | time=0.002000s;0.005000;0.010000;0 size=612B;;;0"
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
