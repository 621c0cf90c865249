//! What to check: plain data that every input produces (the command
//! line, the C checkers' command lines, keepalived.conf, a targets file),
//! and the parsers of its values. Nothing here touches the network.

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use regex::bytes::Regex;
use serde::Serialize;

use crate::wire::http::Limits;
use crate::xdp::{CaptureHook, XdpMode};

pub(crate) mod args;
pub mod c_line;
pub(crate) mod parse;

/// How the check's TCP connection ends once it has done its job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub(crate) enum CloseMode {
    /// RST: nothing is left in TIME-WAIT (as the C checkers do).
    #[default]
    Rst,
    /// FIN handshake, for servers that log abrupt closes.
    Fin,
}

/// How replies are captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub(crate) enum Capture {
    /// The shared XDP program takes our replies before the kernel sees them;
    /// the check fails (exit 3) if it cannot be used.
    #[default]
    Require,
    /// No BPF: an AF_PACKET socket copies replies, and the kernel still sees
    /// them. On a backup LB (VIP not local) the kernel answers them with RSTs.
    Off,
}

/// What to check, from every input (the command line, the C checkers'
/// command lines, keepalived.conf, a targets file): a real server through
/// a VIP, how the flow is run, and the check ([`CheckSpec`]). The check
/// layer runs it ([`crate::check::dispatch`]); what a targets file or
/// keepalived.conf adds around it is an [`AuditTarget`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Probe {
    /// Interface to send from; `None`: the interface of the route to the
    /// real server (a targets file or keepalived.conf may name none; the
    /// check layer looks it up).
    pub(crate) iface: Option<String>,
    /// IPv4 or IPv6, the same family as `vip` (the preflight checks).
    pub real_server: IpAddr,
    pub vip: IpAddr,
    /// The port the check connects to (keepalived's `connect_port`, else
    /// the real server's port).
    pub port: u16,
    /// Source address; the interface's own when `None`.
    pub(crate) source: Option<IpAddr>,
    /// Deadline of the whole check.
    pub(crate) timeout: Duration,
    /// Each reply of the server (ARP reply, SYN-ACK, each next piece of
    /// the response) must come within this of the one before, as the C
    /// checkers' `-t`; `timeout` still bounds the whole check.
    pub(crate) reply_timeout: Option<Duration>,
    pub(crate) close: CloseMode,
    pub(crate) capture: Capture,
    pub(crate) xdp_mode: XdpMode,
    /// Where the capture program is attached when none is (`--capture`).
    pub(crate) hook: CaptureHook,
    /// What to show on stderr (and vipcheck's diagnostics when frames are).
    pub(crate) trace: Trace,
    /// Write every frame sent and received to this pcap file.
    pub(crate) pcap: Option<PathBuf>,
    /// What to check over the flow.
    pub check: CheckSpec,
}

impl Probe {
    /// A check of `real_server` through `vip:port` with the defaults of
    /// an audit target: the route's interface, a 1 s deadline, RST close,
    /// the XDP capture, no trace.
    pub(crate) fn new(real_server: IpAddr, vip: IpAddr, port: u16, check: CheckSpec) -> Probe {
        Probe {
            iface: None,
            real_server,
            vip,
            port,
            source: None,
            timeout: Duration::from_millis(1000),
            reply_timeout: None,
            close: CloseMode::Rst,
            capture: Capture::Require,
            xdp_mode: XdpMode::Skb,
            hook: CaptureHook::Auto,
            trace: Trace::default(),
            pcap: None,
            check,
        }
    }
}

/// What is shown on stderr, and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct Trace {
    /// TCP segments.
    pub(crate) tcp: bool,
    /// ARP requests and replies.
    pub(crate) arp: bool,
    /// The C checkers' line format (frames, and with `heads` their `* `
    /// lines: connected, body MD5, closed).
    pub(crate) c_format: bool,
    /// HTTP: the request and response heads; SMTP: the dialogue's lines.
    pub(crate) heads: bool,
    /// HTTP: the body too (its first 4 KiB).
    pub(crate) body: bool,
}

impl Trace {
    /// Every frame, native format.
    pub(crate) const ALL: Trace = Trace {
        tcp: true,
        arp: true,
        c_format: false,
        heads: false,
        body: false,
    };

    /// Whether any frames are shown.
    pub(crate) fn any(self) -> bool {
        self.tcp || self.arp
    }
}

/// One target of a targets file or keepalived.conf: the [`Probe`], and
/// what the input says around it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuditTarget {
    pub probe: Probe,
    /// The virtual server's address and port, as the input writes them:
    /// the LVS service the check stands for (track files, labels and the
    /// snippet are keyed by them, and by the real server's below). A
    /// MISC_CHECK's command line may check another address or port.
    pub(crate) vs_vip: IpAddr,
    pub(crate) vs_port: u16,
    /// The virtual server's protocol: LVS (and keepalived) tell a TCP and
    /// a UDP service on one address and port apart by it.
    pub(crate) vs_protocol: Protocol,
    /// The real server's address and port, as the input writes them (the
    /// virtual server's port when it gives none).
    pub(crate) rs_ip: IpAddr,
    pub(crate) rs_port: u16,
    /// How often the source checks it (keepalived's `delay_loop`).
    pub(crate) interval: Option<Duration>,
    /// Failures before the source declares it down (keepalived's `retry`).
    pub(crate) retry: Option<u32>,
    /// `file:line` the target comes from, for messages.
    pub origin: String,
}

impl AuditTarget {
    /// What makes a target the same one across a reload: its VIP, virtual
    /// and real server ports, real server, checked port and check. Where it
    /// was read, its interface, timeouts, interval and retry are not part of
    /// it.
    pub(crate) fn identity(&self) -> AuditTarget {
        AuditTarget {
            probe: Probe {
                iface: None,
                timeout: Duration::ZERO,
                reply_timeout: None,
                ..self.probe.clone()
            },
            interval: None,
            retry: None,
            origin: String::new(),
            ..self.clone()
        }
    }
}

/// The protocol of a virtual server (keepalived's `protocol`; SCTP
/// services are not read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    /// `TCP` or `UDP`, as keepalived.conf spells it.
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        }
    }

    /// `tcp` or `udp`, as labels and names spell it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// What to check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckSpec {
    Tcp,
    Http(HttpSpec),
    /// The request over TLS, and how the certificate is judged.
    Https(HttpSpec, TlsSpec),
    /// An ICMP (ICMPv6) echo to the VIP: does the real server carry it?
    Ping,
    /// One UDP datagram, and what its reply must be.
    Udp(UdpSpec),
    /// One DNS query, over UDP or TCP.
    Dns(DnsSpec),
    /// `tcp --send/--expect`: after the handshake, send, then require a
    /// pattern in what the server sends (kind `tcp`).
    TcpExpect(ExpectSpec),
    /// An SMTP dialogue: greeting, EHLO (or HELO), QUIT.
    Smtp(SmtpSpec),
}

/// `tcp --send TEXT --expect REGEX`: what is sent after the handshake,
/// and what the server's bytes must match (before it closes or the
/// deadline); at least one of them is given.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExpectSpec {
    /// Sent once connected (may be empty: `--expect` alone reads a banner).
    pub(crate) send: Vec<u8>,
    pub(crate) expect: Option<Pattern>,
}

/// keepalived's SMTP_CHECK `helo_name` when it gives none, and a targets
/// file's `helo` default.
pub(crate) const KEEPALIVED_HELO: &str = "smtpchecker.keepalived.org";

/// An SMTP check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SmtpSpec {
    /// The name given in EHLO/HELO.
    pub(crate) helo: String,
    /// Send HELO only, as keepalived's SMTP_CHECK does; else EHLO, and
    /// HELO if the server refuses EHLO.
    pub(crate) helo_only: bool,
}

/// A DNS check: the query, and what the reply must hold besides NOERROR.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DnsSpec {
    /// The name asked for; `.` is the root.
    pub(crate) name: String,
    pub(crate) rtype: crate::wire::dns::RecordType,
    /// Addresses that must all be in the answer section.
    pub(crate) expect: Vec<IpAddr>,
    /// Over TCP instead of UDP.
    pub(crate) tcp: bool,
}

/// A UDP check: the datagram sent, and what the reply must satisfy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UdpSpec {
    /// The datagram's payload (may be empty).
    pub(crate) payload: Vec<u8>,
    /// What the reply must contain.
    pub(crate) expect: Option<UdpExpect>,
    /// Shortest and longest acceptable reply, in bytes.
    pub(crate) min_length: Option<usize>,
    pub(crate) max_length: Option<usize>,
    /// What no reply (and no ICMP error) means.
    pub(crate) silence: Silence,
}

/// What a UDP reply must contain.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum UdpExpect {
    /// These bytes, anywhere in the reply (`--expect TEXT`).
    Text(Vec<u8>),
    /// keepalived's `require_reply` comparison (`--expect-hex`): the
    /// first min(reply, pattern) bytes, `X` nibbles not compared.
    Pattern(crate::wire::payload::ReplyPattern),
}

/// What a UDP check makes of silence: no reply and no ICMP error by the
/// deadline. Real servers rate-limit ICMP errors (a burst of 6, then one
/// a second per destination), so silence proves little.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Silence {
    /// A failure (the native commands' default).
    #[default]
    Fails,
    /// Healthy, as `--no-reply-ok` asks.
    Healthy,
    /// Healthy, as keepalived's UDP_CHECK without `require_reply` judges.
    Keepalived,
}

impl CheckSpec {
    /// `tcp`, `http` or `https`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            CheckSpec::Tcp => "tcp",
            CheckSpec::Http(_) => "http",
            CheckSpec::Https(..) => "https",
            CheckSpec::Ping => "ping",
            CheckSpec::Udp(_) => "udp",
            CheckSpec::Dns(_) => "dns",
            CheckSpec::TcpExpect(_) => "tcp",
            CheckSpec::Smtp(_) => "smtp",
        }
    }

    /// The HTTP request of an http or https check.
    pub(crate) fn http(&self) -> Option<&HttpSpec> {
        match self {
            CheckSpec::Tcp
            | CheckSpec::Ping
            | CheckSpec::Udp(_)
            | CheckSpec::Dns(_)
            | CheckSpec::TcpExpect(_)
            | CheckSpec::Smtp(_) => None,
            CheckSpec::Http(spec) | CheckSpec::Https(spec, _) => Some(spec),
        }
    }
}

/// How an HTTPS check judges the server's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsSpec {
    pub(crate) verify: Verify,
    /// The TLS server name: sent as SNI (unless `no_sni`) and, when
    /// verifying, looked for in the certificate. `None`: the Host's name
    /// (the request's `host`, else the real server's address, which sends
    /// no SNI).
    pub(crate) sni: Option<String>,
    /// Send no SNI (keepalived's `SSL_GET` without `enable_sni`).
    pub(crate) no_sni: bool,
    /// Fail when the certificate expires within this many days.
    pub(crate) cert_days: Option<u32>,
    /// Mutual TLS: our certificate chain and key (PEM files; both or
    /// neither).
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

/// Whether and against what the certificate is verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) enum Verify {
    /// Against the command line's `--ca`, else the system's roots.
    #[default]
    Roots,
    /// Against this CA (PEM).
    Ca(PathBuf),
    /// Not at all (`--insecure`; the verdict says so).
    Insecure,
    /// Not at all, as keepalived's `SSL_GET` (check_ssl.c never sets
    /// SSL_VERIFY_PEER): the handshake must succeed, the certificate's
    /// facts are reported.
    KeepalivedSslGet,
}

/// An HTTP(S) request and what its response must satisfy (every field
/// given must hold).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpSpec {
    /// Host header; `None`: the source gave none (keepalived then sends
    /// the address it connects to).
    pub(crate) host: Option<String>,
    /// Starts with `/`.
    pub path: String,
    pub(crate) method: Method,
    /// Extra request headers.
    pub(crate) headers: Vec<(String, String)>,
    /// The status must be in one of these; empty: no status check.
    pub(crate) statuses: Vec<RangeInclusive<u16>>,
    /// Response headers that must be present (with this value when given).
    pub(crate) response_headers: Vec<(String, Option<String>)>,
    /// The exact expected body.
    pub(crate) body: Option<String>,
    /// MD5 of the body, lowercase hex.
    pub(crate) md5: Option<String>,
    /// SHA-256 of the body, lowercase hex.
    pub(crate) sha256: Option<String>,
    /// Regular expressions the body must match.
    pub(crate) regex: Vec<Pattern>,
    /// Regular expressions the body must not match.
    pub(crate) regex_absent: Vec<Pattern>,
    /// Largest acceptable body (bytes); a larger one fails the check.
    pub(crate) max_body: u64,
}

impl Default for HttpSpec {
    fn default() -> Self {
        HttpSpec {
            host: None,
            path: String::new(),
            method: Method::default(),
            headers: Vec::new(),
            statuses: Vec::new(),
            response_headers: Vec::new(),
            body: None,
            md5: None,
            sha256: None,
            regex: Vec::new(),
            regex_absent: Vec::new(),
            max_body: Limits::default().max_body,
        }
    }
}

/// A compiled regular expression, equal to (and hashed as) another of the
/// same pattern text: a spec's identity (the daemon's, across a reload)
/// is its text.
#[derive(Clone, Debug)]
pub(crate) struct Pattern(pub Regex);

impl Pattern {
    /// The pattern's text.
    pub(crate) fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl From<Regex> for Pattern {
    fn from(regex: Regex) -> Pattern {
        Pattern(regex)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Pattern {}

impl std::hash::Hash for Pattern {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

/// Request method of an HTTP check (a targets file's `method` spells it
/// `GET` or `HEAD`, or in lowercase).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, serde::Deserialize)]
pub(crate) enum Method {
    #[default]
    #[serde(rename = "GET", alias = "get")]
    Get,
    #[serde(rename = "HEAD", alias = "head")]
    Head,
}

impl Method {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
        }
    }
}

/// What the response must satisfy: every field given must hold.
#[derive(Clone, Debug, Default)]
pub(crate) struct Expect {
    /// The status must be in one of these (default 200-399 when no
    /// validation at all is given).
    pub(crate) statuses: Vec<RangeInclusive<u16>>,
    /// Headers (or chunked trailers) that must be present, with exactly
    /// this value when one is given (names case-insensitive).
    pub(crate) headers: Vec<(String, Option<String>)>,
    pub(crate) body: Option<Vec<u8>>,
    /// Lowercase hex.
    pub(crate) md5: Option<String>,
    /// Lowercase hex.
    pub(crate) sha256: Option<String>,
    /// Each must match the body.
    pub(crate) regex: Vec<Regex>,
    /// None may match the body.
    pub(crate) regex_absent: Vec<Regex>,
}

impl Expect {
    pub(crate) fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.headers.is_empty()
            && self.body.is_none()
            && self.md5.is_none()
            && self.sha256.is_none()
            && self.regex.is_empty()
            && self.regex_absent.is_empty()
    }

    /// Whether the whole body must be kept for a match.
    pub(crate) fn needs_body(&self) -> bool {
        self.body.is_some() || !self.regex.is_empty() || !self.regex_absent.is_empty()
    }
}

/// The runtime form of an HTTP(S) check, built from a [`Probe`]'s
/// [`HttpSpec`] (and [`TlsSpec`]) by `check::dispatch::http_check` only.
#[derive(Clone, Debug)]
pub(crate) struct HttpCheck {
    pub(crate) method: Method,
    pub(crate) host: String,
    pub(crate) path: String,
    /// Extra request headers; each replaces a default of the same name.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) expect: Expect,
    pub(crate) limits: Limits,
    /// `-v`: request and response heads on stderr.
    pub(crate) trace_heads: bool,
    /// `-vv`: the body too (its first 4 KiB).
    pub(crate) trace_body: bool,
    /// With the heads, the C checkers' `* ` lines (connected, body MD5, closed).
    pub(crate) trace_c: bool,
    /// HTTPS: the TLS session's setup.
    pub(crate) tls: Option<TlsSetup>,
}

/// What an HTTPS check needs of TLS.
#[derive(Clone, Debug)]
pub(crate) struct TlsSetup {
    pub(crate) config: std::sync::Arc<rustls::ClientConfig>,
    /// SNI (unless disabled in the config) and the name verified.
    pub(crate) name: String,
    /// The config verifies nothing, and why (`not verified: --insecure`).
    pub(crate) unverified: Option<&'static str>,
    /// Fail when the certificate expires within this many days.
    pub(crate) cert_days: Option<u32>,
}

impl HttpCheck {
    /// The Host header the request carries: HOST, or a `-H Host:` that
    /// replaces it.
    pub(crate) fn sent_host(&self) -> &str {
        self.headers
            .iter()
            .rev()
            .find(|(name, _)| name.eq_ignore_ascii_case("host"))
            .map_or(&self.host, |(_, value)| value)
    }
}

/// What was checked, as the JSON output names it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Subject {
    pub(crate) iface: String,
    pub(crate) real_server: IpAddr,
    pub(crate) vip: IpAddr,
    /// `None` for ping (ICMP has no port): JSON `null`.
    pub(crate) port: Option<u16>,
}

impl From<&Probe> for Subject {
    /// An interface not yet known (the route's) is empty.
    fn from(target: &Probe) -> Subject {
        Subject {
            iface: target.iface.clone().unwrap_or_default(),
            real_server: target.real_server,
            vip: target.vip,
            port: (target.check != CheckSpec::Ping).then_some(target.port),
        }
    }
}
