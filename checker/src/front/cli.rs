//! The native command line (`vipcheck tcp|xdp ...`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::probe::args::{
    CaptureArgs, CheckArgs, DnsArgs, Format, HttpArgs, HttpsArgs, PingArgs, SmtpArgs, TcpArgs,
    UdpArgs, usage_message,
};
use crate::xdp::{CaptureHook, XdpMode};

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
    pub(crate) verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// TCP handshake with REAL_SERVER for VIP:PORT (healthy on SYN-ACK); then,
    /// with --send, bytes sent (and acknowledged), with --expect, a pattern the
    /// server's bytes must match.
    Tcp(Box<TcpArgs>),
    /// HTTP/1.1 request to REAL_SERVER for VIP:PORT; the response must pass
    /// every validation given (default: status 200-399).
    Http(Box<HttpArgs>),
    /// HTTPS: `http` over TLS (rustls) through the VIP path, with the certificate
    /// verified (system roots, or --ca) and its expiry checked.
    Https(Box<HttpsArgs>),
    /// ICMP echo (ICMPv6 for IPv6) to the VIP through the real server's MAC
    /// (healthy on an echo reply from the VIP): does it carry the VIP?
    Ping(PingArgs),
    /// One UDP datagram to VIP:PORT through the real server's MAC; healthy on a
    /// reply from the VIP (one from another address, an ICMP error or silence fail).
    Udp(Box<UdpArgs>),
    /// One DNS query to VIP:PORT through the real server's MAC (UDP, or --tcp);
    /// healthy on a reply with the query's id and RCODE NOERROR (keepalived's
    /// DNS_CHECK rule), and every --expect address in the answer.
    Dns(Box<DnsArgs>),
    /// SMTP dialogue with REAL_SERVER for VIP:PORT: greeting 220 (multi-line
    /// too), EHLO 250 (HELO if EHLO is refused with 5xx), QUIT 221 or the close.
    Smtp(Box<SmtpArgs>),
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
    /// Manage the shared XDP program of an interface.
    Xdp {
        /// -v: what vipcheck does with the program on stderr (load and attach
        /// time, old pins removed, dead checks' slots freed).
        #[arg(id = "xdp_verbose", short = 'v', long = "verbose", action = clap::ArgAction::Count, global = true)]
        verbose: u8,
        #[command(subcommand)]
        action: XdpAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
    /// Write man pages (vipcheck, its subcommands, the C checkers' names) into DIR
    /// (created when missing).
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

/// Where many targets come from.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["keepalived", "targets"])))]
pub struct InputArgs {
    /// keepalived.conf: its virtual_server / real_server checks (includes followed).
    #[arg(long, value_name = "FILE")]
    pub(crate) keepalived: Option<PathBuf>,
    /// A targets file (TOML; its format: TARGETS FILE in vipcheck-audit(1)).
    #[arg(long, value_name = "FILE")]
    pub(crate) targets: Option<PathBuf>,
}

impl InputArgs {
    pub(crate) fn input(&self) -> crate::config::Input {
        use crate::config::Input;
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
    pub(crate) input: InputArgs,
    /// Checks at once.
    #[arg(long, value_name = "N", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) parallel: u16,
    /// A table (text), one JSON object per line (json), or one Nagios
    /// plugin line for the whole audit (nagios: the counts and perfdata;
    /// exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN: the worst target's).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    #[command(flatten)]
    pub(crate) tls: TlsTrust,
    #[command(flatten)]
    pub(crate) capture: CaptureArgs,
}

/// How HTTPS targets of a file are verified.
#[derive(Debug, Args)]
pub struct TlsTrust {
    /// HTTPS targets: verify every certificate, also of keepalived's
    /// SSL_GET (which keepalived does not verify) and of a targets file's
    /// `verify = false`.
    #[arg(long)]
    pub(crate) verify_tls: bool,
    /// HTTPS targets: trust this CA (PEM) instead of the system's roots
    /// when verifying (implies --verify-tls).
    #[arg(long, value_name = "FILE")]
    pub(crate) ca: Option<PathBuf>,
    /// HTTPS targets: the name sent as SNI and verified in the
    /// certificate, for every target (default: each target's own;
    /// keepalived's SSL_GET sends one only with enable_sni,
    /// a targets file its `sni`, else the Host's name, none for an address).
    #[arg(long, value_name = "NAME", value_parser = parse_sni)]
    pub(crate) sni: Option<String>,
    /// HTTPS targets: verify no certificate.
    #[arg(long, conflicts_with_all = ["ca", "verify_tls"])]
    pub(crate) insecure: bool,
}

impl TlsTrust {
    /// The audit's options of these flags.
    pub(crate) fn options(&self, parallel: usize) -> crate::check::dispatch::AuditOptions {
        crate::check::dispatch::AuditOptions {
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
    crate::check::tls::server_name(Some(s), "").map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,
    /// Serve Prometheus metrics at http://ADDR/metrics, and one check of a
    /// loaded target now at http://ADDR/probe?module=M&target=VIP:PORT&real=RS:
    /// HOST:PORT (a host name is resolved once, at start: its first
    /// address), or a PORT alone for 127.0.0.1:PORT (keep them on this
    /// machine unless a scraper elsewhere needs them).
    #[arg(long, value_name = "ADDR", value_parser = parse_metrics_addr)]
    pub(crate) metrics: Option<std::net::SocketAddr>,
    /// Write one keepalived track file per target in DIR (0 healthy, 1
    /// down; atomically, on change); see `vipcheck keepalived snippet`.
    #[arg(long, value_name = "DIR")]
    pub(crate) track_dir: Option<PathBuf>,
    /// Successes in a row that bring a down target up.
    #[arg(long, value_name = "N", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) rise: u32,
    /// Failures in a row that take an up target down (a target with
    /// keepalived's `retry R` takes R + 1).
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) fall: u32,
    /// Checks at once.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub(crate) parallel: u16,
    /// Interval of the targets whose file gives none (keepalived's
    /// delay_loop, a targets file's interval_ms), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub(crate) interval: u64,
    #[command(flatten)]
    pub(crate) tls: TlsTrust,
    #[command(flatten)]
    pub(crate) capture: CaptureArgs,
}

/// `--metrics`: `HOST:PORT`, `[V6]:PORT`, or a port alone (127.0.0.1).
fn parse_metrics_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
    }
    if let Ok(addr) = s.parse() {
        return Ok(addr);
    }
    // A host name: resolved once, here, at start (the first address).
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err("expected HOST:PORT or a port".to_string());
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err("expected HOST:PORT or a port".to_string());
    }
    use std::net::ToSocketAddrs;
    match s.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("{host} has no address")),
        Err(e) => Err(format!("cannot resolve {host}: {e}")),
    }
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
    /// to this vipcheck (DIR created when missing; idempotent; never replaces a file
    /// that is not such a link).
    Install {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum XdpAction {
    /// Load and attach the capture program to IFACE (checks do it on demand
    /// too); exit 3 if it is attached already at another hook or mode.
    Attach {
        /// Interface to attach to (the one facing the real servers).
        #[arg(value_name = "IFACE")]
        iface: String,
        /// skb (generic: any device, never resets a NIC) or native (driver XDP).
        #[arg(long, value_enum, default_value_t = XdpMode::Skb)]
        xdp_mode: XdpMode,
        /// auto (XDP, or TC ingress when another XDP program holds IFACE),
        /// xdp, or tc (TC ingress through tcx, first; Linux 6.6+).
        #[arg(long, value_enum, value_name = "HOOK", default_value_t = CaptureHook::Auto)]
        capture: CaptureHook,
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
            Command::Ping(args) => args.verbose = args.verbose.saturating_add(before),
            Command::Udp(args) => args.verbose = args.verbose.saturating_add(before),
            Command::Dns(args) => args.verbose = args.verbose.saturating_add(before),
            Command::Smtp(args) => args.verbose = args.verbose.saturating_add(before),
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
        let command = match CheckArgs::try_parse(args)? {
            Ok(CheckArgs::Tcp(a)) => Command::Tcp(Box::new(a)),
            Ok(CheckArgs::Http(a)) => Command::Http(a),
            Ok(CheckArgs::Https(a)) => Command::Https(a),
            Ok(CheckArgs::Ping(a)) => Command::Ping(a),
            Ok(CheckArgs::Udp(a)) => Command::Udp(a),
            Ok(CheckArgs::Dns(a)) => Command::Dns(a),
            Ok(CheckArgs::Smtp(a)) => Command::Smtp(a),
            Err(e) if e.kind() == clap::error::ErrorKind::ValueValidation => return Some(Err(e)),
            Err(_) => return None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::parse::*;
    use crate::probe::{Capture, CloseMode, Method};
    use std::time::Duration;

    /// The runtime form of `probe`'s HTTP check.
    fn built(probe: &crate::probe::Probe) -> crate::probe::HttpCheck {
        use crate::check::dispatch::{AuditOptions, TlsConfigs, http_check};
        http_check(probe, &TlsConfigs::new(&AuditOptions::default()))
            .unwrap()
            .unwrap()
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_args(std::iter::once("vipcheck").chain(args.iter().copied()))
    }

    #[test]
    fn subcommands_are_all_known() {
        use clap::CommandFactory;
        let mut names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        names.push("help".into());
        names.sort();
        let mut known: Vec<String> = crate::probe::c_line::SUBCOMMANDS
            .iter()
            .map(std::string::ToString::to_string)
            .collect();
        known.sort();
        assert_eq!(names, known);
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
        let t = args.probe();
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
        let t = args.probe();
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
        let check = built(&args.probe());
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
            !args.probe().trace.any(),
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
        assert!(built(&args.probe()).trace_body && !args.probe().trace.any());
        let cli = parse(&["-v", "tcp", "eth0", "198.18.0.11", "198.18.0.100", "80"]).unwrap();
        let Command::Tcp(args) = cli.command else {
            panic!("not tcp")
        };
        assert!(args.probe().trace.any());
    }

    #[test]
    fn smtp_and_tcp_expect_options() {
        use crate::probe::{CheckSpec, KEEPALIVED_HELO, SmtpSpec};
        let rs = ["eth0", "198.18.0.11", "198.18.0.100", "25"];
        let with = |first: &[&str]| {
            let args: Vec<&str> = first.iter().chain(rs.iter()).copied().collect();
            parse(&args)
        };
        let Command::Smtp(args) = with(&["smtp"]).unwrap().command else {
            panic!("not smtp")
        };
        let probe = args.probe();
        assert_eq!(
            probe.check,
            CheckSpec::Smtp(SmtpSpec {
                helo: KEEPALIVED_HELO.into(),
                helo_only: false,
            })
        );
        assert!(!probe.trace.heads && !probe.trace.any());
        let Command::Smtp(args) = with(&["-v", "smtp", "-v", "--helo", "lb1"])
            .unwrap()
            .command
        else {
            panic!("not smtp")
        };
        let probe = args.probe();
        assert!(probe.trace.heads && probe.trace.any());
        assert!(with(&["smtp", "--helo", "a b"]).is_err());

        let tcp = |first: &[&str]| match with(first).map(|c| c.command) {
            Ok(Command::Tcp(args)) => args.probe().check,
            other => panic!("{other:?}"),
        };
        assert_eq!(tcp(&["tcp"]), CheckSpec::Tcp);
        let CheckSpec::TcpExpect(spec) = tcp(&["tcp", "--send", r"QUIT\r\n\x00"]) else {
            panic!()
        };
        assert_eq!(
            (spec.send.as_slice(), spec.expect),
            (&b"QUIT\r\n\0"[..], None)
        );
        let CheckSpec::TcpExpect(spec) = tcp(&["tcp", "--expect", "^220"]) else {
            panic!()
        };
        assert!(spec.send.is_empty());
        assert_eq!(spec.expect.unwrap().as_str(), "^220");
        assert!(with(&["tcp", "--send", r"\q"]).is_err());
        assert!(with(&["tcp", "--expect", "("]).is_err());
        // Parsed alone as in the whole command line.
        for first in [
            &["smtp", "--helo", "x"][..],
            &["tcp", "--send", "a", "--expect", "b"],
        ] {
            let args: Vec<std::ffi::OsString> = std::iter::once("vipcheck")
                .chain(first.iter().copied())
                .chain(rs.iter().copied())
                .map(Into::into)
                .collect();
            let alone = Cli::try_parse_check(&args).unwrap().unwrap();
            let whole = Cli::try_parse_whole(args).unwrap();
            assert_eq!(format!("{alone:?}"), format!("{whole:?}"));
        }
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
    fn nagios_thresholds_are_seconds_and_ranges() {
        let rs = ["eth0", "198.18.0.11", "198.18.0.100", "80"];
        let thresholds = |flags: &[&str]| {
            let args: Vec<&str> = ["tcp"].iter().chain(flags).chain(&rs).copied().collect();
            parse(&args).map(|cli| match cli.command {
                Command::Tcp(args) => args.flow.output().1,
                other => panic!("{other:?}"),
            })
        };
        let t = thresholds(&["-w", "0.1", "-c", "2"]).unwrap();
        assert_eq!(t.warning.unwrap().to_string(), "0.1");
        assert!(t.critical.unwrap().alerts(2.5) && !t.critical.unwrap().alerts(1.5));
        let t = thresholds(&["-w", "@1:2", "--critical", "10:"]).unwrap();
        assert!(t.warning.unwrap().alerts(1.5) && t.critical.unwrap().alerts(9.0));
        for bad in ["x", "2:1", "1ms", ""] {
            assert!(thresholds(&["-w", bad]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metrics_address_takes_a_host_name() {
        let addr = parse_metrics_addr("localhost:9815").unwrap();
        assert!(addr.ip().is_loopback() && addr.port() == 9815, "{addr}");
        assert_eq!(
            parse_metrics_addr("9815").unwrap(),
            "127.0.0.1:9815".parse().unwrap()
        );
        assert_eq!(
            parse_metrics_addr("[::1]:80").unwrap(),
            "[::1]:80".parse().unwrap()
        );
        for bad in ["localhost", "localhost:x", ":80", "localhost:70000"] {
            assert!(parse_metrics_addr(bad).is_err(), "{bad}");
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
