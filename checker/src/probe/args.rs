//! The native command line of one check (`vipcheck tcp|http|https ...`):
//! its arguments, and how they become a [`Probe`]. The front
//! end's whole command line flattens these; keepalived.conf's MISC_CHECK
//! lines are read with them too.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::probe::parse::*;
use crate::probe::{
    Capture, CheckSpec, CloseMode, DnsSpec, ExpectSpec, HttpSpec, KEEPALIVED_HELO, Method, Pattern,
    Probe, Silence, SmtpSpec, TlsSpec, Trace, UdpExpect, UdpSpec, Verify,
};
use crate::xdp::{CaptureHook, XdpMode};

#[derive(Debug, Args)]
pub struct TcpArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    /// -v: every frame sent and received on stderr (ARP and TCP, one line each).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// How to end the connection after the handshake.
    #[arg(long, value_enum, default_value_t = CloseMode::Rst)]
    pub(crate) close: CloseMode,
    /// Once connected, send TEXT (escapes \r \n \t \\ \xNN). Without --expect,
    /// healthy once the server has acknowledged every byte (as check_tcp -s
    /// without -e).
    // `::std::vec::Vec`: one value of bytes, not many of u8 (clap's derive
    // reads a plain `Vec` as a repeated option).
    #[arg(long, value_name = "TEXT", value_parser = parse_escaped)]
    pub(crate) send: Option<Bytes>,
    /// A regular expression the server's bytes must match (after --send, if
    /// given; alone: a banner) before it closes, within the deadline and the
    /// first 64 KiB.
    #[arg(long, value_name = "RE", value_parser = parse_regex)]
    pub(crate) expect: Option<regex::bytes::Regex>,
}

#[derive(Debug, Args)]
pub struct SmtpArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    /// -v: every line sent and received on stderr; -vv: also every frame.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// The name given in EHLO (and HELO). The default is keepalived's
    /// SMTP_CHECK's, so that mail logs and filters that know keepalived's
    /// checks know these.
    #[arg(long, value_name = "NAME", default_value = KEEPALIVED_HELO, value_parser = parse_helo)]
    pub(crate) helo: String,
    /// How to end the connection after the dialogue.
    #[arg(long, value_enum, default_value_t = CloseMode::Rst)]
    pub(crate) close: CloseMode,
}

#[derive(Debug, Args)]
pub struct PingArgs {
    #[command(flatten)]
    pub(crate) to: ToArgs,
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// -v: every frame sent and received on stderr (ARP and ICMP, one line each).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

#[derive(Debug, Args)]
pub struct UdpArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    /// -v: every frame sent and received on stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// The datagram's payload, with the escapes \r \n \t \\ \xNN (default: empty).
    #[arg(long, value_name = "TEXT", value_parser = parse_escaped, conflicts_with = "payload")]
    pub(crate) send: Option<Bytes>,
    /// The datagram's payload in hex (keepalived's UDP_CHECK `payload`).
    #[arg(long, value_name = "HEX", value_parser = parse_hex_bytes)]
    pub(crate) payload: Option<Bytes>,
    /// Text the reply must contain (escapes as --send).
    #[arg(long, value_name = "TEXT", value_parser = parse_escaped, conflicts_with = "expect_hex")]
    pub(crate) expect: Option<Bytes>,
    /// What the reply must start with, in hex with X for a nibble not compared
    /// (keepalived's require_reply: only the first min(reply, pattern) bytes count).
    #[arg(long, value_name = "HEX", value_parser = parse_reply_pattern)]
    pub(crate) expect_hex: Option<crate::wire::payload::ReplyPattern>,
    /// Shortest acceptable reply, in bytes.
    #[arg(long, value_name = "N")]
    pub(crate) min_length: Option<usize>,
    /// Longest acceptable reply, in bytes.
    #[arg(long, value_name = "N")]
    pub(crate) max_length: Option<usize>,
    /// Healthy when nothing comes back and no ICMP error says why (as keepalived's
    /// UDP_CHECK without require_reply). Real servers rate-limit ICMP errors, so
    /// silence proves little: the verdict says so.
    #[arg(long)]
    pub(crate) no_reply_ok: bool,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    /// -v: every frame sent and received on stderr.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// The name to ask for (default: the root, as keepalived's DNS_CHECK).
    #[arg(long, value_name = "NAME", default_value = ".")]
    pub(crate) name: String,
    /// The record type to ask for.
    #[arg(long = "type", value_name = "TYPE", default_value = "SOA",
          value_parser = parse_record_type)]
    pub(crate) rtype: crate::wire::dns::RecordType,
    /// An address that must be in the answer section (repeatable: each must).
    #[arg(long, value_name = "ADDR")]
    pub(crate) expect: Vec<IpAddr>,
    /// Ask over TCP instead of UDP.
    #[arg(long)]
    pub(crate) tcp: bool,
    /// How to end the TCP connection after the reply (with --tcp).
    #[arg(long, value_enum, default_value_t = CloseMode::Rst)]
    pub(crate) close: CloseMode,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub(crate) flow: FlowArgs,
    /// -v: request and response heads on stderr; -vv: also the body (its first
    /// 4 KiB), or the raw bytes when no HTTP head came; -vvv: also every frame.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Host header of the request.
    #[arg(value_name = "HOST", value_parser = parse_host)]
    pub(crate) host: String,
    /// Path of the request (starts with /).
    #[arg(value_name = "PATH", value_parser = parse_path)]
    pub(crate) path: String,
    /// Request method.
    #[arg(short = 'M', long, value_enum, ignore_case = true, default_value_t = Method::Get)]
    pub(crate) method: Method,
    /// Extra request header "Name: Value" (repeatable; replaces a default of the same name).
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    pub(crate) headers: Vec<(String, String)>,
    /// Expected status: a code (200) or a range (200-299); repeatable, any may match.
    #[arg(short = 'S', long = "status", value_name = "CODE|RANGE", value_parser = parse_status)]
    pub(crate) statuses: Vec<RangeInclusive<u16>>,
    /// Response header (or chunked trailer) that must be present: "Name: Value" (name
    /// case-insensitive, value exact), or "Name" for any value; repeatable.
    #[arg(short = 'R', long = "response-header", value_name = "HEADER", value_parser = parse_expected_header)]
    pub(crate) response_headers: Vec<(String, Option<String>)>,
    /// The exact expected body.
    #[arg(short = 'B', long, value_name = "BODY")]
    pub(crate) body: Option<String>,
    /// MD5 of the expected body (hex), as the C checkers and keepalived's digest.
    #[arg(short = 'A', long = "hash", value_name = "MD5", value_parser = crate::wire::http::parse_md5)]
    pub(crate) md5: Option<String>,
    /// SHA-256 of the expected body (hex).
    #[arg(long, value_name = "HEX", value_parser = parse_hex::<32>)]
    pub(crate) sha256: Option<String>,
    /// Regular expression the body must match (repeatable: each must).
    #[arg(long, value_name = "RE", value_parser = parse_regex)]
    pub(crate) regex: Vec<regex::bytes::Regex>,
    /// Regular expression the body must not match (repeatable: none may).
    #[arg(long, value_name = "RE", value_parser = parse_regex)]
    pub(crate) regex_absent: Vec<regex::bytes::Regex>,
    /// Largest acceptable body (bytes; suffixes K, M, G); a larger one fails the check.
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_size)]
    pub(crate) max_body: u64,
    /// How to end the connection after the response.
    #[arg(long, value_enum, default_value_t = CloseMode::Rst)]
    pub(crate) close: CloseMode,
}

#[derive(Debug, Args)]
pub struct HttpsArgs {
    #[command(flatten)]
    pub(crate) http: HttpArgs,
    /// TLS server name to send (SNI) and to verify in the certificate (default: HOST).
    #[arg(long, value_name = "NAME")]
    pub(crate) sni: Option<String>,
    /// Send no SNI (the certificate is still verified against the name).
    #[arg(long)]
    pub(crate) no_sni: bool,
    /// Trust this CA (PEM file) instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// Verify no certificate (the verdict says so).
    #[arg(long, conflicts_with = "ca")]
    pub(crate) insecure: bool,
    /// Fail (Nagios: WARNING) when the certificate expires within N days.
    #[arg(long, value_name = "N")]
    pub(crate) cert_days: Option<u32>,
    /// Client certificate chain for mutual TLS (PEM file; with --client-key).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub(crate) client_cert: Option<PathBuf>,
    /// Client private key for mutual TLS (PEM file; with --client-cert).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub(crate) client_key: Option<PathBuf>,
}

/// What every check of a real server through a VIP takes: where to
/// send, which port, and how to run and print the check.
#[derive(Debug, Args)]
pub(crate) struct FlowArgs {
    #[command(flatten)]
    pub(crate) to: ToArgs,
    /// The service's port (TCP; UDP for udp, and for dns without --tcp).
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) port: u16,
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// The interface, the real server and the VIP.
#[derive(Debug, Args)]
pub(crate) struct ToArgs {
    /// Interface of the load balancer to send from (the one facing the real servers).
    #[arg(value_name = "IFACE")]
    pub(crate) iface: String,
    /// The real server's own address (IPv4, IPv6 or a host name), used only to learn its MAC
    /// (ARP or neighbour discovery).
    #[arg(value_name = "REAL_SERVER", value_parser = parse_ip_host)]
    pub(crate) real_server: IpAddr,
    /// The virtual IP (IPv4, IPv6 or a host name): destination address of every packet.
    #[arg(value_name = "VIP", value_parser = parse_ip_host)]
    pub(crate) vip: IpAddr,
}

/// How a check runs and how its verdict is printed.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Deadline of the whole check, in milliseconds (1 to 3600000); the process has
    /// ended by then, except that a check that must first attach the XDP program
    /// (or wait for another's attach) is given that time on top.
    #[arg(short, long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_MS))]
    pub(crate) timeout: u64,
    /// Source address: one of IFACE's own, never the VIP (default: IFACE's address in
    /// the real server's subnet).
    #[arg(long, value_name = "IP", value_parser = parse_ip_host)]
    pub(crate) source: Option<IpAddr>,
    /// Capture replies with the shared XDP program (require) or an AF_PACKET socket (off;
    /// a backup LB's kernel will answer the real server with RSTs).
    #[arg(long, value_enum, default_value_t = Capture::Require)]
    pub(crate) xdp: Capture,
    /// Attach mode when this check loads the XDP program.
    #[arg(long, value_enum, default_value_t = XdpMode::Skb)]
    pub(crate) xdp_mode: XdpMode,
    /// Where this check attaches the capture program when none of vipcheck's
    /// is attached: auto (XDP, or TC ingress when another XDP program holds
    /// IFACE), xdp, or tc. One already attached serves, wherever it is.
    #[arg(long, value_enum, value_name = "HOOK", default_value_t = CaptureHook::Auto)]
    pub(crate) capture: CaptureHook,
    /// Write every frame the check sends and receives (ARP included) to FILE, in pcap format;
    /// `-` writes them to stdout, and the verdict's line goes to stderr.
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: Option<PathBuf>,
    /// Output: one text line, a JSON object, or a Nagios plugin line (exit 0/1/2/3 as
    /// OK/WARNING/CRITICAL/UNKNOWN).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Nagios: WARNING when a healthy check's time, in seconds, is outside
    /// RANGE (monitoring-plugins syntax: 0.5 is 0 to 0.5 s; also 10:, ~:10,
    /// 1:2, @1:2 for inside).
    #[arg(short = 'w', long, value_name = "RANGE", value_parser = crate::exit::Range::parse)]
    pub(crate) warning: Option<crate::exit::Range>,
    /// Nagios: CRITICAL when a healthy check's time, in seconds, is outside
    /// RANGE (as -w).
    #[arg(short = 'c', long, value_name = "RANGE", value_parser = crate::exit::Range::parse)]
    pub(crate) critical: Option<crate::exit::Range>,
}

/// Where an audit's or a daemon's checks capture replies, for every target
/// (a native MISC_CHECK line's own `--capture` and `--xdp-mode` stand
/// unless these are given).
#[derive(Clone, Copy, Debug, Default, Args)]
pub(crate) struct CaptureArgs {
    /// Where the capture program is attached when none of vipcheck's is:
    /// auto (XDP, or TC ingress when another XDP program holds the
    /// interface), xdp, or tc [default: auto].
    #[arg(long, value_enum, value_name = "HOOK")]
    pub(crate) capture: Option<CaptureHook>,
    /// Attach mode when the XDP program is loaded [default: skb].
    #[arg(long, value_enum)]
    pub(crate) xdp_mode: Option<XdpMode>,
}

impl CaptureArgs {
    /// Sets these on every target.
    pub(crate) fn apply(&self, targets: &mut [crate::probe::AuditTarget]) {
        for target in targets {
            if let Some(hook) = self.capture {
                target.probe.hook = hook;
            }
            if let Some(mode) = self.xdp_mode {
                target.probe.xdp_mode = mode;
            }
        }
    }
}

impl FlowArgs {
    /// The probe of `check`; `trace`: what goes to stderr.
    pub fn probe(&self, trace: Trace, close: CloseMode, check: CheckSpec) -> Probe {
        self.run.probe(&self.to, self.port, trace, close, check)
    }

    /// How the verdict is printed.
    pub(crate) fn output(&self) -> (Format, Thresholds) {
        self.run.output()
    }
}

impl RunArgs {
    /// The probe of `check` to `to` and `port`; `trace`: what goes to stderr.
    pub(crate) fn probe(
        &self,
        to: &ToArgs,
        port: u16,
        trace: Trace,
        close: CloseMode,
        check: CheckSpec,
    ) -> Probe {
        Probe {
            iface: Some(to.iface.clone()),
            real_server: to.real_server,
            vip: to.vip,
            port,
            source: self.source,
            timeout: Duration::from_millis(self.timeout),
            reply_timeout: None,
            close,
            capture: self.xdp,
            xdp_mode: self.xdp_mode,
            hook: self.capture,
            trace,
            pcap: self.pcap.clone(),
            check,
        }
    }

    /// How the verdict is printed.
    pub(crate) fn output(&self) -> (Format, Thresholds) {
        (
            self.format,
            Thresholds {
                warning: self.warning,
                critical: self.critical,
            },
        )
    }
}

/// Every frame from `level` times `-v` on.
fn frames_from(verbose: u8, level: u8) -> Trace {
    if verbose >= level {
        Trace::ALL
    } else {
        Trace::default()
    }
}

impl TcpArgs {
    /// `-v` traces frames. Without --send and --expect, the plain
    /// handshake.
    pub fn probe(&self) -> Probe {
        let check = if self.send.is_none() && self.expect.is_none() {
            CheckSpec::Tcp
        } else {
            CheckSpec::TcpExpect(ExpectSpec {
                send: self.send.as_ref().map(|b| b.0.clone()).unwrap_or_default(),
                expect: self.expect.clone().map(Pattern),
            })
        };
        self.flow
            .probe(frames_from(self.verbose, 1), self.close, check)
    }
}

impl SmtpArgs {
    /// `-v` the dialogue's lines, `-vv` frames too.
    pub fn probe(&self) -> Probe {
        let trace = Trace {
            heads: self.verbose >= 1,
            ..frames_from(self.verbose, 2)
        };
        let spec = SmtpSpec {
            helo: self.helo.clone(),
            helo_only: false,
        };
        self.flow.probe(trace, self.close, CheckSpec::Smtp(spec))
    }
}

impl PingArgs {
    /// `-v` traces frames.
    pub fn probe(&self) -> Probe {
        let trace = frames_from(self.verbose, 1);
        self.run
            .probe(&self.to, 0, trace, CloseMode::Rst, CheckSpec::Ping)
    }
}

impl UdpArgs {
    /// `-v` traces frames.
    pub fn probe(&self) -> Probe {
        let spec = UdpSpec {
            payload: self
                .send
                .as_ref()
                .or(self.payload.as_ref())
                .map(|b| b.0.clone())
                .unwrap_or_default(),
            expect: match (&self.expect, &self.expect_hex) {
                (Some(text), _) => Some(UdpExpect::Text(text.0.clone())),
                (None, Some(pattern)) => Some(UdpExpect::Pattern(pattern.clone())),
                (None, None) => None,
            },
            min_length: self.min_length,
            max_length: self.max_length,
            silence: if self.no_reply_ok {
                Silence::Healthy
            } else {
                Silence::Fails
            },
        };
        self.flow.probe(
            frames_from(self.verbose, 1),
            CloseMode::Rst,
            CheckSpec::Udp(spec),
        )
    }
}

impl DnsArgs {
    /// `-v` traces frames.
    pub fn probe(&self) -> Probe {
        let spec = DnsSpec {
            name: self.name.clone(),
            rtype: self.rtype,
            expect: self.expect.clone(),
            tcp: self.tcp,
        };
        self.flow.probe(
            frames_from(self.verbose, 1),
            self.close,
            CheckSpec::Dns(spec),
        )
    }
}

impl HttpArgs {
    /// `-v` heads, `-vv` body, `-vvv` frames.
    pub fn probe(&self) -> Probe {
        self.flow
            .probe(self.trace(), self.close, CheckSpec::Http(self.spec()))
    }

    fn trace(&self) -> Trace {
        Trace {
            heads: self.verbose >= 1,
            body: self.verbose >= 2,
            ..frames_from(self.verbose, 3)
        }
    }

    /// The request and what its response must satisfy.
    pub fn spec(&self) -> HttpSpec {
        let patterns = |list: &[regex::bytes::Regex]| list.iter().cloned().map(Pattern).collect();
        HttpSpec {
            host: Some(self.host.clone()),
            path: self.path.clone(),
            method: self.method,
            headers: self.headers.clone(),
            statuses: self.statuses.clone(),
            response_headers: self.response_headers.clone(),
            body: self.body.clone(),
            md5: self.md5.clone(),
            sha256: self.sha256.clone(),
            regex: patterns(&self.regex),
            regex_absent: patterns(&self.regex_absent),
            max_body: self.max_body,
        }
    }
}

impl HttpsArgs {
    pub fn probe(&self) -> Probe {
        let http = &self.http;
        let tls = TlsSpec {
            verify: match (&self.ca, self.insecure) {
                (_, true) => Verify::Insecure,
                (Some(ca), false) => Verify::Ca(ca.clone()),
                (None, false) => Verify::Roots,
            },
            sni: self.sni.clone(),
            no_sni: self.no_sni,
            cert_days: self.cert_days,
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        http.flow
            .probe(http.trace(), http.close, CheckSpec::Https(http.spec(), tls))
    }
}

/// How the verdict is printed (`--format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
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
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Thresholds {
    pub(crate) warning: Option<crate::exit::Range>,
    pub(crate) critical: Option<crate::exit::Range>,
}

/// What a clap error says, in one line (the front end's `usage_line`
/// adds which help to read).
pub(crate) fn usage_message(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(list)) => Some(list.join(", ")),
        _ => None,
    };
    let rendered = e.to_string();
    match (e.kind(), context(ContextKind::InvalidArg)) {
        (ErrorKind::MissingRequiredArgument, Some(args)) => {
            format!("missing required argument {args}")
        }
        (ErrorKind::InvalidValue | ErrorKind::ValueValidation, Some(arg)) => {
            let value = context(ContextKind::InvalidValue).unwrap_or_default();
            let mut line = format!("invalid value '{}' for '{arg}'", value.escape_debug());
            if let Some(source) = std::error::Error::source(e) {
                line += &format!(": {source}");
            }
            match context(ContextKind::ValidValue) {
                Some(valid) if valid.is_empty() => line += " (a value is required)",
                Some(valid) => line += &format!(" (accepted: {valid})"),
                None => {}
            }
            line
        }
        _ => rendered
            .lines()
            .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
            .map(|l| l.trim().trim_start_matches("error: "))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; "),
    }
}

/// One check's command line, `vipcheck tcp|ping|udp|dns|smtp|http|https ARGS`.
#[derive(Debug)]
pub(crate) enum CheckArgs {
    Tcp(TcpArgs),
    Ping(PingArgs),
    Udp(Box<UdpArgs>),
    Dns(Box<DnsArgs>),
    Smtp(Box<SmtpArgs>),
    Http(Box<HttpArgs>),
    Https(Box<HttpsArgs>),
}

impl CheckArgs {
    /// `args` (argv, the program's name first) parsed with the
    /// arguments of the check its second word names; `None` when that
    /// word names none. Building every subcommand's arguments (audit,
    /// daemon, xdp, ...) was a tenth of a warm one-shot check's CPU, and
    /// keepalived runs these hundreds of times a second.
    pub(crate) fn try_parse(args: &[std::ffi::OsString]) -> Option<Result<CheckArgs, clap::Error>> {
        use clap::{Command as Cmd, FromArgMatches};
        let name = args.get(1)?.to_str()?;
        let sub = match name {
            "tcp" => TcpArgs::augment_args(Cmd::new("tcp")),
            "ping" => PingArgs::augment_args(Cmd::new("ping")),
            "udp" => UdpArgs::augment_args(Cmd::new("udp")),
            "dns" => DnsArgs::augment_args(Cmd::new("dns")),
            "smtp" => SmtpArgs::augment_args(Cmd::new("smtp")),
            "http" => HttpArgs::augment_args(Cmd::new("http")),
            "https" => HttpsArgs::augment_args(Cmd::new("https")),
            _ => return None,
        };
        let matches = match Cmd::new("vipcheck")
            .subcommand(sub)
            .try_get_matches_from(args)
        {
            Ok(matches) => matches,
            Err(e) => return Some(Err(e)),
        };
        let (_, m) = matches.subcommand()?;
        Some(match name {
            "tcp" => TcpArgs::from_arg_matches(m).map(CheckArgs::Tcp),
            "ping" => PingArgs::from_arg_matches(m).map(CheckArgs::Ping),
            "udp" => UdpArgs::from_arg_matches(m).map(|a| CheckArgs::Udp(Box::new(a))),
            "dns" => DnsArgs::from_arg_matches(m).map(|a| CheckArgs::Dns(Box::new(a))),
            "smtp" => SmtpArgs::from_arg_matches(m).map(|a| CheckArgs::Smtp(Box::new(a))),
            "http" => HttpArgs::from_arg_matches(m).map(|a| CheckArgs::Http(Box::new(a))),
            _ => HttpsArgs::from_arg_matches(m).map(|a| CheckArgs::Https(Box::new(a))),
        })
    }
}

#[cfg(test)]
mod udp_payload_tests {
    use super::CheckArgs;

    fn parse(words: &[&str]) -> CheckArgs {
        let argv: Vec<std::ffi::OsString> = words.iter().map(Into::into).collect();
        CheckArgs::try_parse(&argv)
            .expect("a check")
            .expect("valid arguments")
    }

    /// --send, --payload and --expect each take one argument whole.
    #[test]
    fn udp_payload_options_parse() {
        let base = [
            "vipcheck",
            "udp",
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "7",
        ];
        let with = |extra: &[&str]| {
            let mut words = base[..2].to_vec();
            words.extend_from_slice(extra);
            words.extend_from_slice(&base[2..]);
            match parse(&words) {
                CheckArgs::Udp(a) => (a.send, a.payload, a.expect),
                _ => panic!("not udp"),
            }
        };
        assert_eq!(
            with(&["--send", "hi\\n", "--expect", "hi"]),
            (
                Some(crate::probe::parse::Bytes(b"hi\n".to_vec())),
                None,
                Some(crate::probe::parse::Bytes(b"hi".to_vec()))
            )
        );
        assert_eq!(
            with(&["--payload", "0a0b"]).1,
            Some(crate::probe::parse::Bytes(vec![0x0a, 0x0b]))
        );
    }
}
