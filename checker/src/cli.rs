//! The native command line (`vipcheck tcp|xdp ...`).

use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use std::path::PathBuf;

use crate::check::http::{Expect, HttpCheck, Method};
use crate::engine::trace::Trace;
use crate::output::{Format, Thresholds};
use crate::target::{Capture, CloseMode, Target};
use crate::wire::http::Limits;
use crate::xdp::XdpMode;

#[derive(Debug, Parser)]
#[command(
    name = "vipcheck",
    version,
    about = "Health checks of LVS-DR real servers through the VIP path",
    long_about = "Health checks of LVS-DR real servers through the VIP path: frames whose \
destination IP is the VIP and whose destination MAC is the real server's, as the load \
balancer forwards real traffic. An XDP program on the interface takes the replies before \
the kernel sees them, so a backup LB needs no VIP and no iptables rule.\n\n\
Exit status: 0 healthy, 1 unhealthy, 2 usage error, 3 the check could not run here."
)]
pub struct Cli {
    /// More detail on stderr; also accepted after the subcommand, whose
    /// help says what each level shows.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// Longest accepted `-t` (one hour): a check is a probe, not a wait.
pub const MAX_TIMEOUT_MS: u64 = 3_600_000;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// TCP handshake with REAL_SERVER for VIP:PORT (healthy on SYN-ACK).
    Tcp(TcpArgs),
    /// HTTP/1.1 request to REAL_SERVER for VIP:PORT; the response must pass
    /// every validation given (default: status 200-399).
    Http(Box<HttpArgs>),
    /// Check every real server of a keepalived.conf or a targets file once
    /// through the VIP path: a table of verdicts, and what cannot be checked.
    ///
    /// Exit status: 0 every real server healthy; 1 a real server failed its
    /// check; 3 a check could not run here (not root, no such interface,
    /// BPF refused), and none failed; 2 the file cannot be read, or gives
    /// nothing to check.
    Audit(AuditArgs),
    /// Check every real server of a keepalived.conf or a targets file every
    /// interval, damped by rise/fall: Prometheus metrics (--metrics) and
    /// keepalived track files (--track-dir); SIGHUP reloads, SIGTERM stops.
    Daemon(Box<DaemonArgs>),
    /// keepalived integration: the configuration that makes keepalived use
    /// the daemon's track files.
    Keepalived {
        #[command(subcommand)]
        action: KeepalivedAction,
    },
    /// The C checkers' names (check_tcp_raw, check_http_get_raw, check_http_raw).
    Compat {
        #[command(subcommand)]
        action: CompatAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write man pages (vipcheck, its subcommands, the C checkers' names) into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// HTTPS: `http` over TLS (rustls) through the VIP path, with the certificate
    /// verified (system roots, or --ca) and its expiry checked.
    Https(Box<HttpsArgs>),
    /// Manage the shared XDP program of an interface.
    Xdp {
        /// -v: what vipcheck does with the program on stderr (load and attach
        /// time, old pins removed, dead checks' slots freed).
        #[arg(id = "xdp_verbose", short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
        verbose: u8,
        #[command(subcommand)]
        action: XdpAction,
    },
}

#[derive(Debug, Args)]
pub struct TcpArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// -v: every frame sent and received on stderr (ARP and TCP, one line each).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// How to end the connection after the handshake.
    #[arg(long, value_enum, default_value_t = CloseMode::Rst)]
    pub close: CloseMode,
}

#[derive(Debug, Args)]
pub struct HttpArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// -v: request and response heads on stderr; -vv: also the body (its first
    /// 4 KiB), or the raw bytes when no HTTP head came; -vvv: also every frame.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Host header of the request.
    #[arg(value_name = "HOST", value_parser = parse_host)]
    pub host: String,
    /// Path of the request (starts with /).
    #[arg(value_name = "PATH", value_parser = parse_path)]
    pub path: String,
    /// Request method.
    #[arg(short = 'M', long, value_enum, ignore_case = true, default_value_t = Method::Get)]
    pub method: Method,
    /// Extra request header "Name: Value" (repeatable; replaces a default of the same name).
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Expected status: a code (200) or a range (200-299); repeatable, any may match.
    #[arg(short = 'S', long = "status", value_name = "CODE|RANGE", value_parser = parse_status)]
    pub statuses: Vec<RangeInclusive<u16>>,
    /// Response header (or chunked trailer) that must be present: "Name: Value" (name
    /// case-insensitive, value exact), or "Name" for any value; repeatable.
    #[arg(short = 'R', long = "response-header", value_name = "HEADER", value_parser = parse_expected_header)]
    pub response_headers: Vec<(String, Option<String>)>,
    /// The exact expected body.
    #[arg(short = 'B', long, value_name = "BODY")]
    pub body: Option<String>,
    /// MD5 of the expected body (hex), as the C checkers and keepalived's digest.
    #[arg(short = 'A', long = "hash", value_name = "MD5", value_parser = crate::wire::http::parse_md5)]
    pub md5: Option<String>,
    /// SHA-256 of the expected body (hex).
    #[arg(long, value_name = "HEX", value_parser = parse_hex::<32>)]
    pub sha256: Option<String>,
    /// Regular expression the body must match (repeatable: each must).
    #[arg(long, value_name = "RE", value_parser = parse_regex)]
    pub regex: Vec<regex::bytes::Regex>,
    /// Regular expression the body must not match (repeatable: none may).
    #[arg(long, value_name = "RE", value_parser = parse_regex)]
    pub regex_absent: Vec<regex::bytes::Regex>,
    /// Largest acceptable body (bytes; suffixes K, M, G); a larger one fails the check.
    #[arg(long, value_name = "BYTES", default_value = "4M", value_parser = parse_size)]
    pub max_body: u64,
    /// How to end the connection after the response.
    #[arg(long, value_enum, default_value_t = CloseMode::Rst)]
    pub close: CloseMode,
}

#[derive(Debug, Args)]
pub struct HttpsArgs {
    #[command(flatten)]
    pub http: HttpArgs,
    /// TLS server name to send (SNI) and to verify in the certificate (default: HOST).
    #[arg(long, value_name = "NAME")]
    pub sni: Option<String>,
    /// Send no SNI (the certificate is still verified against the name).
    #[arg(long)]
    pub no_sni: bool,
    /// Trust this CA (PEM file) instead of the system's roots.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Verify no certificate (the verdict says so).
    #[arg(long, conflicts_with = "ca")]
    pub insecure: bool,
    /// Fail (Nagios: WARNING) when the certificate expires within N days.
    #[arg(long, value_name = "N")]
    pub cert_days: Option<u32>,
    /// Client certificate chain for mutual TLS (PEM file; with --client-key).
    #[arg(long, value_name = "FILE", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// Client private key for mutual TLS (PEM file; with --client-cert).
    #[arg(long, value_name = "FILE", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
}

impl HttpsArgs {
    pub fn target(&self) -> Target {
        self.http.target()
    }

    /// The HTTP check over TLS; reading the CA or client files can fail
    /// (a usage error).
    pub fn check(&self) -> Result<HttpCheck, crate::error::Error> {
        let options = crate::tls::TlsOptions {
            sni: self.sni.clone(),
            no_sni: self.no_sni,
            ca: self.ca.clone(),
            insecure: self.insecure,
            cert_days: self.cert_days,
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
        };
        let name = crate::tls::server_name(self.sni.as_deref(), &self.http.host)?;
        Ok(HttpCheck {
            tls: Some(crate::check::http::TlsSetup {
                config: crate::tls::config(&options)?,
                name,
                unverified: self.insecure.then_some(crate::tls::NOT_VERIFIED_INSECURE),
                cert_days: self.cert_days,
            }),
            ..self.http.check()
        })
    }
}

/// What every check of a real server through a VIP takes.
#[derive(Debug, Args)]
pub struct FlowArgs {
    /// Interface of the load balancer to send from (the one facing the real servers).
    #[arg(value_name = "IFACE")]
    pub iface: String,
    /// The real server's own address (IPv4, IPv6 or a host name), used only to learn its MAC
    /// (ARP or neighbour discovery).
    #[arg(value_name = "REAL_SERVER", value_parser = parse_ip_host)]
    pub real_server: IpAddr,
    /// The virtual IP (IPv4, IPv6 or a host name): destination address of every packet.
    #[arg(value_name = "VIP", value_parser = parse_ip_host)]
    pub vip: IpAddr,
    /// The service's TCP port.
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Deadline of the whole check, in milliseconds (1 to 3600000); the process has
    /// ended by then, except that a check that must first attach the XDP program
    /// (or wait for another's attach) is given that time on top.
    #[arg(short, long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=MAX_TIMEOUT_MS))]
    pub timeout: u64,
    /// Source address: one of IFACE's own, never the VIP (default: IFACE's address in
    /// the real server's subnet).
    #[arg(long, value_name = "IP", value_parser = parse_ip_host)]
    pub source: Option<IpAddr>,
    /// Capture replies with the shared XDP program (require) or an AF_PACKET socket (off;
    /// a backup LB's kernel will answer the real server with RSTs).
    #[arg(long, value_enum, default_value_t = Capture::Require)]
    pub xdp: Capture,
    /// Attach mode when this check loads the XDP program.
    #[arg(long, value_enum, default_value_t = XdpMode::Skb)]
    pub xdp_mode: XdpMode,
    /// Write every frame the check sends and receives (ARP included) to FILE, in pcap format.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Output: one text line, a JSON object, or a Nagios plugin line (exit 0/1/2/3 as
    /// OK/WARNING/CRITICAL/UNKNOWN).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Nagios: WARNING when the check takes longer than MS (a healthy check).
    #[arg(short = 'w', long, value_name = "MS")]
    pub warning: Option<u64>,
    /// Nagios: CRITICAL when the check takes longer than MS.
    #[arg(short = 'c', long, value_name = "MS")]
    pub critical: Option<u64>,
}

/// Where many targets come from.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["keepalived", "targets"])))]
pub struct InputArgs {
    /// keepalived.conf: its virtual_server / real_server checks (includes followed).
    #[arg(long, value_name = "FILE")]
    pub keepalived: Option<PathBuf>,
    /// A targets file (TOML; see the README).
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
}

impl InputArgs {
    pub fn input(&self) -> crate::daemon::run::Input {
        use crate::daemon::run::Input;
        match (&self.keepalived, &self.targets) {
            (Some(file), _) => Input::Keepalived(file.clone()),
            (None, Some(file)) => Input::Targets(file.clone()),
            // clap requires one of the two.
            (None, None) => Input::Targets(PathBuf::new()),
        }
    }
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Checks at once.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub parallel: u16,
    /// A table (text) or one JSON object per line (json).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    #[command(flatten)]
    pub tls: TlsTrust,
}

/// How HTTPS targets of a file are verified.
#[derive(Debug, Args)]
pub struct TlsTrust {
    /// HTTPS targets: verify every certificate, also of keepalived's
    /// SSL_GET (which keepalived does not verify) and of a targets file's
    /// `verify = false`.
    #[arg(long)]
    pub verify_tls: bool,
    /// HTTPS targets: trust this CA (PEM) instead of the system's roots
    /// when verifying (implies --verify-tls).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// HTTPS targets: the name sent as SNI and verified in the
    /// certificate, for every target (default: each target's own;
    /// keepalived's SSL_GET sends one only with enable_sni,
    /// a targets file its `sni`, else the Host's name, none for an address).
    #[arg(long, value_name = "NAME", value_parser = parse_sni)]
    pub sni: Option<String>,
    /// HTTPS targets: verify no certificate.
    #[arg(long, conflicts_with_all = ["ca", "verify_tls"])]
    pub insecure: bool,
}

impl TlsTrust {
    /// The audit's options of these flags.
    pub fn options(&self, parallel: usize) -> crate::audit::AuditOptions {
        crate::audit::AuditOptions {
            parallel,
            ca: self.ca.clone(),
            verify_tls: self.verify_tls || self.ca.is_some(),
            sni: self.sni.clone(),
            insecure: self.insecure,
        }
    }
}

/// `--sni`: a DNS name or an IP address rustls can use.
fn parse_sni(s: &str) -> Result<String, String> {
    crate::tls::server_name(Some(s), "").map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics: HOST:PORT, or a
    /// PORT alone for 127.0.0.1:PORT (keep them on this machine unless a
    /// scraper elsewhere needs them).
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub metrics: Option<std::net::SocketAddr>,
    /// Write one keepalived track file per target in DIR (0 healthy, 1
    /// down; atomically, on change); see `vipcheck keepalived snippet`.
    #[arg(long, value_name = "DIR")]
    pub track_dir: Option<PathBuf>,
    /// Successes in a row that bring a down target up.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub rise: u32,
    /// Failures in a row that take an up target down (a target with
    /// keepalived's `retry R` takes R + 1).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub fall: u32,
    /// Checks at once.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub parallel: u16,
    /// Interval of the targets whose file gives none (keepalived's
    /// delay_loop, a targets file's interval_ms), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub interval: u64,
    #[command(flatten)]
    pub tls: TlsTrust,
}

/// `--metrics`: `HOST:PORT`, `[V6]:PORT`, or a port alone (127.0.0.1).
fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| "expected HOST:PORT (an IP address and a port) or a port".to_string())
}

#[derive(Debug, Subcommand)]
pub enum KeepalivedAction {
    /// Print the keepalived.conf blocks (track_file, FILE_CHECK) that make
    /// keepalived follow the daemon's track files for these targets.
    Snippet {
        #[command(flatten)]
        input: InputArgs,
        /// The daemon's --track-dir.
        #[arg(long, value_name = "DIR", default_value = "/run/vipcheck/track")]
        track_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CompatAction {
    /// Create check_tcp_raw, check_http_get_raw and check_http_raw in DIR as links
    /// to this vipcheck (idempotent; never replaces a file that is not such a link).
    Install {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum XdpAction {
    /// Load and attach the program to IFACE (checks do it on demand too);
    /// exit 3 if it is attached already in another mode.
    Attach {
        /// Interface to attach to (the one facing the real servers).
        #[arg(value_name = "IFACE")]
        iface: String,
        /// skb (generic: any device, never resets a NIC) or native (driver XDP).
        #[arg(long, value_enum, default_value_t = XdpMode::Skb)]
        xdp_mode: XdpMode,
    },
    /// Detach vipcheck's program from IFACE (never another program; running
    /// checks on IFACE then fail).
    Detach {
        /// Interface to detach from.
        #[arg(value_name = "IFACE")]
        iface: String,
    },
    /// Show mode, counters and live flows; exit 3 when the program cannot be
    /// read here (not root).
    Status {
        /// Interface to show (default: every interface of this network
        /// namespace that has an XDP program).
        #[arg(value_name = "IFACE")]
        iface: Option<String>,
    },
}

impl FlowArgs {
    /// The target; `trace`: which frames go to stderr.
    pub fn target(&self, trace: Trace) -> Target {
        Target {
            iface: self.iface.clone(),
            real_server: self.real_server,
            vip: self.vip,
            port: self.port,
            source: self.source,
            timeout: Duration::from_millis(self.timeout),
            reply_timeout: None,
            close: CloseMode::default(),
            capture: self.xdp,
            xdp_mode: self.xdp_mode,
            trace,
            pcap: self.pcap.clone(),
        }
    }

    /// How the verdict is printed.
    pub fn output(&self) -> (Format, Thresholds) {
        let ms = |v: Option<u64>| v.map(Duration::from_millis);
        (
            self.format,
            Thresholds {
                warning: ms(self.warning),
                critical: ms(self.critical),
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
    /// `-v` traces frames.
    pub fn target(&self) -> Target {
        Target {
            close: self.close,
            ..self.flow.target(frames_from(self.verbose, 1))
        }
    }
}

impl HttpArgs {
    /// `-v` heads, `-vv` body, `-vvv` frames.
    pub fn target(&self) -> Target {
        Target {
            close: self.close,
            ..self.flow.target(frames_from(self.verbose, 3))
        }
    }

    pub fn check(&self) -> HttpCheck {
        HttpCheck {
            method: self.method,
            host: self.host.clone(),
            path: self.path.clone(),
            headers: self.headers.clone(),
            expect: Expect {
                statuses: self.statuses.clone(),
                headers: self.response_headers.clone(),
                body: self.body.clone().map(String::into_bytes),
                md5: self.md5.clone(),
                sha256: self.sha256.clone(),
                regex: self.regex.clone(),
                regex_absent: self.regex_absent.clone(),
            },
            limits: Limits {
                max_body: self.max_body,
                ..Limits::default()
            },
            trace_heads: self.verbose >= 1,
            trace_body: self.verbose >= 2,
            trace_c: false,
            tls: None,
        }
    }
}

impl Cli {
    /// Parses the command line; a `-v` before the subcommand counts as one
    /// after it.
    pub fn try_parse_args(
        args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
    ) -> Result<Cli, clap::Error> {
        let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
        match Cli::try_parse_check(&args) {
            Some(parsed) => parsed,
            None => Cli::try_parse_whole(args),
        }
    }

    /// [`Cli::try_parse_args`] with every subcommand.
    fn try_parse_whole(args: Vec<std::ffi::OsString>) -> Result<Cli, clap::Error> {
        let mut cli = Cli::try_parse_from(args)?;
        let before = cli.verbose;
        match &mut cli.command {
            Command::Tcp(args) => args.verbose = args.verbose.saturating_add(before),
            Command::Http(args) => args.verbose = args.verbose.saturating_add(before),
            Command::Https(args) => args.http.verbose = args.http.verbose.saturating_add(before),
            Command::Xdp { verbose, .. } => *verbose = verbose.saturating_add(before),
            Command::Compat { .. }
            | Command::Audit(_)
            | Command::Daemon(_)
            | Command::Keepalived { .. }
            | Command::Completions { .. }
            | Command::Man { .. } => {}
        }
        Ok(cli)
    }
}

impl Cli {
    /// `vipcheck tcp|http|https ...` parsed with that subcommand's
    /// arguments only. Building every subcommand's arguments (audit,
    /// daemon, xdp, ...) was a tenth of a warm one-shot check's CPU, and
    /// keepalived runs these hundreds of times a second. What parses here
    /// parses the same in the whole command line (the subcommand's
    /// arguments are the same, and nothing comes before its name); a value
    /// refused by its parser is refused with the same error (a host name
    /// is not resolved twice); anything else (help, unknown options,
    /// missing arguments) is left to the whole command line, whose errors
    /// and help name every subcommand.
    fn try_parse_check(args: &[std::ffi::OsString]) -> Option<Result<Cli, clap::Error>> {
        use clap::{Command as Cmd, FromArgMatches};
        let name = args.get(1)?.to_str()?;
        let sub = match name {
            "tcp" => TcpArgs::augment_args(Cmd::new("tcp")),
            "http" => HttpArgs::augment_args(Cmd::new("http")),
            "https" => HttpsArgs::augment_args(Cmd::new("https")),
            _ => return None,
        };
        let matches = match Cmd::new("vipcheck")
            .subcommand(sub)
            .try_get_matches_from(args)
        {
            Ok(matches) => matches,
            Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => return Some(Err(e)),
            Err(_) => return None,
        };
        let (_, m) = matches.subcommand()?;
        let command = match name {
            "tcp" => Command::Tcp(TcpArgs::from_arg_matches(m).ok()?),
            "http" => Command::Http(Box::new(HttpArgs::from_arg_matches(m).ok()?)),
            _ => Command::Https(Box::new(HttpsArgs::from_arg_matches(m).ok()?)),
        };
        Some(Ok(Cli {
            verbose: 0,
            command,
        }))
    }
}

/// A clap error as one line that says everything: what was wrong (the
/// missing argument's name, the invalid value, escaped, with the reason
/// or the accepted values), and the help of the subcommand concerned.
/// `args` are the command line's words after the program name.
pub fn usage_line(e: &clap::Error, args: &[std::ffi::OsString]) -> String {
    let (path, subcommands) = subcommand_path(args);
    let message = match e.kind() {
        clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            format!("{path} needs a subcommand: {}", subcommands.join(", "))
        }
        _ => usage_message(e),
    };
    format!("{message} (see '{path} --help')")
}

/// What a clap error says, in one line (see [`usage_line`]).
pub fn usage_message(e: &clap::Error) -> String {
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

/// `200` or `200-299`.
pub fn parse_status(s: &str) -> Result<RangeInclusive<u16>, String> {
    let code = |c: &str| -> Result<u16, String> {
        c.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| format!("{c:?} is not a status code (100-999)"))
    };
    let range = match s.split_once('-') {
        Some((lo, hi)) => code(lo)?..=code(hi)?,
        None => code(s)?..=code(s)?,
    };
    if range.is_empty() {
        return Err(format!("empty range {s:?}"));
    }
    Ok(range)
}

/// `Name: Value`, with a token name and no line breaks.
pub fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not \"Name: Value\""))?;
    let name = name.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("{name:?} is not a header name"));
    }
    if value.contains(['\r', '\n']) {
        return Err("header values cannot contain line breaks".into());
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// "vipcheck tcp", "vipcheck xdp attach": the subcommands named in
/// `args`, and the visible subcommands of the last.
fn subcommand_path(args: &[std::ffi::OsString]) -> (String, Vec<String>) {
    use clap::CommandFactory;
    let mut command = Cli::command();
    let mut path = vec!["vipcheck".to_string()];
    for arg in args {
        let Some(sub) = arg.to_str().and_then(|a| command.find_subcommand(a)) else {
            continue;
        };
        let sub = sub.clone();
        path.push(sub.get_name().to_string());
        command = sub;
    }
    let subcommands = command
        .get_subcommands()
        .filter(|c| !c.is_hide_set() && c.get_name() != "help")
        .map(|c| c.get_name().to_string())
        .collect();
    (path.join(" "), subcommands)
}

/// An IPv4 or IPv6 address (plain or `[addr]`), or a host name resolved
/// once through the system resolver (its first IPv4 address, else its
/// first IPv6 one), as the C checkers accept.
pub fn parse_ip_host(s: &str) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    let bare = s
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(format!("{s:?} is neither an IP address nor a host name"));
    }
    // `cargo fuzz` builds with cfg(fuzzing): no DNS query for every name a
    // fuzzer makes up.
    if cfg!(fuzzing) {
        return Err(format!(
            "host name {s:?} is not resolved in a fuzzing build"
        ));
    }
    let addrs: Vec<IpAddr> = (s, 0)
        .to_socket_addrs()
        .map_err(|e| format!("host name {s:?} does not resolve ({e})"))?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("host name {s:?} has no address"))
}

/// `-R`: `Name: Value`, or `Name` alone for "present with any value".
pub fn parse_expected_header(s: &str) -> Result<(String, Option<String>), String> {
    if s.contains(':') {
        return parse_header(s).map(|(name, value)| (name, Some(value)));
    }
    parse_header(&format!("{s}:")).map(|(name, _)| (name, None))
}

fn parse_host(s: &str) -> Result<String, String> {
    crate::wire::http::check_host(s).map(|()| s.to_string())
}

fn parse_path(s: &str) -> Result<String, String> {
    crate::wire::http::check_path(s).map(|()| s.to_string())
}

/// Hex of an `N`-byte digest, lowercased.
fn parse_hex<const N: usize>(s: &str) -> Result<String, String> {
    if s.len() != 2 * N || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not {} hex digits", 2 * N));
    }
    Ok(s.to_ascii_lowercase())
}

/// A regular expression; its error in one line (the crate's message draws
/// the pattern with a caret below it over several lines).
fn parse_regex(s: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(s).map_err(|e| {
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or_else(|| text.lines().next().unwrap_or("invalid"));
        format!("invalid regular expression: {reason}")
    })
}

/// Bytes with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{s:?} is not a size (like 4096, 512K or 4M)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is not a size (like 4096, 512K or 4M)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("vipcheck").chain(args.iter().copied()))
    }

    #[test]
    fn audit_and_daemon_tls_options() {
        let tls = |args: &[&str]| match parse(args).map(|c| c.command) {
            Ok(Command::Audit(a)) => Ok(a.tls.options(1)),
            Ok(Command::Daemon(d)) => Ok(d.tls.options(1)),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let plain = tls(&["audit", "--keepalived", "k.conf"]).unwrap();
        assert!(!plain.verify_tls && !plain.insecure && plain.ca.is_none() && plain.sni.is_none());
        let verify = tls(&[
            "daemon",
            "--keepalived",
            "k.conf",
            "--verify-tls",
            "--sni",
            "lab.example",
        ])
        .unwrap();
        assert!(verify.verify_tls);
        assert_eq!(verify.sni.as_deref(), Some("lab.example"));
        // --ca verifies (a CA given is a CA to verify against).
        let ca = tls(&["audit", "--keepalived", "k.conf", "--ca", "ca.pem"]).unwrap();
        assert!(ca.verify_tls);
        assert_eq!(ca.ca.as_deref(), Some(std::path::Path::new("ca.pem")));
        assert!(
            tls(&["audit", "--targets", "t.toml", "--insecure"])
                .unwrap()
                .insecure
        );
        for bad in [
            &["audit", "--keepalived", "k", "--insecure", "--verify-tls"][..],
            &["audit", "--keepalived", "k", "--insecure", "--ca", "x"],
            &["daemon", "--keepalived", "k", "--sni", "not a name"],
        ] {
            assert!(tls(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_check_parses_alone_as_in_the_whole_command_line() {
        let lines: &[&[&str]] = &[
            &["tcp", "eth0", "198.18.0.11", "198.18.0.100", "80"],
            &[
                "tcp",
                "-vv",
                "-t",
                "500",
                "--close",
                "fin",
                "--xdp",
                "off",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "80",
            ],
            &[
                "tcp",
                "--format",
                "nagios",
                "-w",
                "10",
                "-c",
                "20",
                "--source",
                "198.18.0.1",
                "eth0",
                "fd00::11",
                "fd00::100",
                "443",
            ],
            &[
                "http",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "80",
                "example.com",
                "/",
            ],
            &[
                "http",
                "-v",
                "-M",
                "head",
                "-H",
                "X-A: b",
                "-S",
                "200-299",
                "-S",
                "301",
                "-R",
                "Server",
                "--regex",
                "o+k",
                "--regex-absent",
                "err",
                "--max-body",
                "1M",
                "-A",
                "0123456789abcdef0123456789abcdef",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "8080",
                "h",
                "/x?y=1",
            ],
            &[
                "https",
                "--sni",
                "a.example",
                "--insecure",
                "--cert-days",
                "7",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "443",
                "h",
                "/",
            ],
            &[
                "https",
                "--no-sni",
                "--ca",
                "/nonexistent.pem",
                "-vvv",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "443",
                "h",
                "/",
            ],
            // Refused by a value parser: the same error.
            &["tcp", "eth0", "198.18.0.11", "198.18.0.100", "0"],
            &[
                "tcp",
                "-t",
                "0",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "80",
            ],
            &["tcp", "eth0", "no such host!", "198.18.0.100", "80"],
            &[
                "http",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "80",
                "h",
                "no-slash",
            ],
            &[
                "http",
                "--regex",
                "(",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "80",
                "h",
                "/",
            ],
            // Left to the whole command line.
            &["tcp", "--help"],
            &["tcp", "--version"],
            &["tcp", "eth0", "198.18.0.11"],
            &["tcp", "--nope", "eth0", "198.18.0.11", "198.18.0.100", "80"],
            &[
                "tcp",
                "--close",
                "never",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "80",
            ],
            &[
                "https",
                "--insecure",
                "--ca",
                "x",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "443",
                "h",
                "/",
            ],
            &[
                "https",
                "--client-cert",
                "c",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "443",
                "h",
                "/",
            ],
        ];
        let mut alone = 0;
        for line in lines {
            let args: Vec<std::ffi::OsString> = std::iter::once("vipcheck")
                .chain(line.iter().copied())
                .map(Into::into)
                .collect();
            let whole = Cli::try_parse_whole(args.clone());
            match (Cli::try_parse_check(&args), whole) {
                (None, _) => {}
                (Some(Ok(check)), Ok(whole)) => {
                    assert_eq!(format!("{check:?}"), format!("{whole:?}"), "{line:?}");
                    alone += 1;
                }
                (Some(Err(check)), Err(whole)) => {
                    assert_eq!(usage_message(&check), usage_message(&whole), "{line:?}");
                    alone += 1;
                }
                (Some(check), whole) => panic!("{line:?}: {check:?} but {whole:?}"),
            }
        }
        // The first twelve parse (or are refused) without the rest.
        assert_eq!(alone, 12);
    }

    #[test]
    fn tcp_defaults() {
        let cli = parse(&["tcp", "eth0", "198.18.0.11", "198.18.0.100", "80"]).unwrap();
        let Command::Tcp(args) = cli.command else {
            panic!("not tcp")
        };
        let t = args.target();
        assert_eq!(t.timeout, Duration::from_millis(1000));
        assert_eq!(t.close, CloseMode::Rst);
        assert_eq!(t.capture, Capture::Require);
        assert_eq!(t.xdp_mode, XdpMode::Skb);
    }

    #[test]
    fn options() {
        let cli = parse(&[
            "tcp",
            "-vv",
            "-t",
            "500",
            "--close",
            "fin",
            "--xdp",
            "off",
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "443",
        ])
        .unwrap();
        let Command::Tcp(args) = cli.command else {
            panic!("not tcp")
        };
        let t = args.target();
        assert_eq!(
            (t.trace.any(), t.port, t.close),
            (true, 443, CloseMode::Fin)
        );
        assert_eq!(t.capture, Capture::Off);
    }

    #[test]
    fn http_options() {
        let cli = parse(&[
            "http",
            "-vv",
            "-M",
            "head",
            "-S",
            "200",
            "-S",
            "300-399",
            "-H",
            "X-A: 1",
            "-R",
            "server: nginx",
            "-A",
            "D36F8F9425C4A8000AD9C4A97185ACA5",
            "--max-body",
            "1M",
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "80",
            "example.org",
            "/health",
        ])
        .unwrap();
        let Command::Http(args) = cli.command else {
            panic!("not http")
        };
        let check = args.check();
        assert_eq!(check.method, Method::Head);
        assert_eq!(check.expect.statuses, vec![200..=200, 300..=399]);
        assert_eq!(check.headers, vec![("X-A".to_string(), "1".to_string())]);
        assert_eq!(
            check.expect.headers,
            vec![("server".to_string(), Some("nginx".to_string()))]
        );
        assert_eq!(
            check.expect.md5.as_deref(),
            Some("d36f8f9425c4a8000ad9c4a97185aca5")
        );
        assert_eq!(check.limits.max_body, 1 << 20);
        assert!(check.trace_heads && check.trace_body);
        assert!(
            !args.target().trace.any(),
            "-vv does not trace frames for http"
        );
    }

    #[test]
    fn verbose_before_the_subcommand_counts() {
        let cli = parse(&[
            "-v",
            "http",
            "-v",
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "80",
            "h",
            "/",
        ])
        .unwrap();
        let Command::Http(args) = cli.command else {
            panic!("not http")
        };
        assert!(args.check().trace_body && !args.target().trace.any());
        let cli = parse(&["-v", "tcp", "eth0", "198.18.0.11", "198.18.0.100", "80"]).unwrap();
        let Command::Tcp(args) = cli.command else {
            panic!("not tcp")
        };
        assert!(args.target().trace.any());
    }

    #[test]
    fn cli_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn xdp_takes_verbose_anywhere() {
        for args in [
            &["-v", "xdp", "status"][..],
            &["xdp", "-v", "status"],
            &["xdp", "status", "-v", "eth0"],
        ] {
            let cli = parse(args).unwrap();
            assert!(
                matches!(cli.command, Command::Xdp { verbose: 1, .. }),
                "{args:?}"
            );
        }
    }

    #[test]
    fn response_header_without_value_means_present() {
        assert_eq!(
            parse_expected_header("X-Cache"),
            Ok(("X-Cache".to_string(), None))
        );
        assert_eq!(
            parse_expected_header("X-Cache: HIT"),
            Ok(("X-Cache".to_string(), Some("HIT".to_string())))
        );
        assert!(parse_expected_header("Bad Name").is_err());
    }

    /// The one line main prints for a usage error.
    fn line(args: &[&str]) -> String {
        let words: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        usage_line(&parse(args).unwrap_err(), &words)
    }

    #[test]
    fn usage_lines_say_everything_in_one_line() {
        let tcp = ["tcp", "eth0", "198.18.0.11", "198.18.0.100"];
        for (args, needles) in [
            (&tcp[..], &["<PORT>", "'vipcheck tcp --help'"][..]),
            (
                &[
                    "tcp",
                    "--xdp",
                    "maybe",
                    "eth0",
                    "198.18.0.11",
                    "198.18.0.100",
                    "80",
                ],
                &["'maybe'", "require, off"],
            ),
            (
                &[
                    "tcp",
                    "--close",
                    "FIN2",
                    "eth0",
                    "198.18.0.11",
                    "198.18.0.100",
                    "80",
                ],
                &["rst, fin"],
            ),
            (
                &[
                    "http",
                    "-M",
                    "POST",
                    "eth0",
                    "198.18.0.11",
                    "198.18.0.100",
                    "80",
                    "h",
                    "/",
                ],
                &["'POST'", "get, head", "'vipcheck http --help'"],
            ),
            (
                &[
                    "http",
                    "--regex",
                    "(",
                    "eth0",
                    "198.18.0.11",
                    "198.18.0.100",
                    "80",
                    "h",
                    "/",
                ],
                &["'('", "unclosed group"],
            ),
            (
                &[
                    "http",
                    "-H",
                    "X-Inject: a\r\nEvil: 1",
                    "eth0",
                    "198.18.0.11",
                    "198.18.0.100",
                    "80",
                    "h",
                    "/",
                ],
                &["X-Inject: a\\r\\nEvil: 1", "line breaks"],
            ),
            (
                &[
                    "http",
                    "--max-body",
                    "4X",
                    "eth0",
                    "198.18.0.11",
                    "198.18.0.100",
                    "80",
                    "h",
                    "/",
                ],
                &["'4X'", "is not a size"],
            ),
            (
                &[
                    "tcp",
                    "-t",
                    "3600001",
                    "eth0",
                    "198.18.0.11",
                    "198.18.0.100",
                    "80",
                ],
                &["3600001", "3600000"],
            ),
            (
                &["xdp", "attach"],
                &["<IFACE>", "'vipcheck xdp attach --help'"],
            ),
            (&["tcp", "--bogus"], &["--bogus"]),
        ] {
            let l = line(args);
            assert_eq!(l.lines().count(), 1, "{args:?}: {l:?}");
            for needle in needles {
                assert!(l.contains(needle), "{args:?}: {l:?} lacks {needle:?}");
            }
        }
    }

    #[test]
    fn value_parsers() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512k"), Ok(512 << 10));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert!(
            parse_size("4X").is_err()
                && parse_size("").is_err()
                && parse_size("99999999999G").is_err()
        );
        assert_eq!(parse_status("204"), Ok(204..=204));
        assert!(
            parse_status("299-200").is_err()
                && parse_status("20").is_err()
                && parse_status("abc").is_err()
        );
        assert!(parse_header("X-A: b\r\nEvil: 1").is_err());
        assert!(parse_header("no colon").is_err() && parse_header("Bad Name: x").is_err());
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &["tcp", "eth0", "198.18.0.999", "198.18.0.100", "80"][..],
            &["tcp", "eth0", "198.18.0.11", "vip", "80"],
            &["tcp", "eth0", "198.18.0.11", "198.18.0.100", "0"],
            &["tcp", "eth0", "198.18.0.11", "198.18.0.100", "65536"],
            &["tcp", "eth0", "198.18.0.11", "198.18.0.100"],
            &[
                "tcp",
                "-t",
                "0",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "80",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
