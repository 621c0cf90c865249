//! The C raw socket checkers' command lines: vipcheck invoked as
//! `check_tcp_raw`, `check_http_get_raw` or `check_http_raw` (a link named
//! so) accepts their arguments and options, GNU style, and exits 0
//! (healthy) or 1 (anything else), because keepalived's `misc_dynamic`
//! reads 2-255 as "healthy, with weight status - 2".
//!
//! What stays theirs: `-t` is a timeout for each reply of the real server
//! (0: none), `-r` names the role file, the trace has their format and
//! levels. What is vipcheck's: both roles check through the VIP path while
//! the XDP capture can be used (their BACKUP path, a kernel connection to
//! the real server's own address, passes a real server that lacks the VIP);
//! when it cannot be used (no BPF, another XDP program), their behaviour is
//! the fallback.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, Parser};

use crate::check::http::{Expect, HttpCheck, Method};
use crate::cli::{MAX_TIMEOUT_MS, parse_expected_header, parse_header, parse_ip_host};
use crate::engine::trace::Trace;
use crate::error::Error;
use crate::target::{Capture, CloseMode, Target};
use crate::verdict::Verdict;
use crate::wire::http::Limits;
use crate::xdp::XdpMode;
use crate::{check, note, say};

/// The names vipcheck answers to as a C checker.
pub const NAMES: [&str; 3] = ["check_tcp_raw", "check_http_get_raw", "check_http_raw"];

/// The C checker `argv0` names, if it names one (its file name, whatever
/// the directory).
pub fn invoked_as(argv0: &OsStr) -> Option<&'static str> {
    let name = Path::new(argv0).file_name()?;
    NAMES.iter().copied().find(|n| OsStr::new(n) == name)
}

/// The native subcommands (and clap's `help`): a command line whose first
/// positional word is one of them is vipcheck's own.
pub const SUBCOMMANDS: [&str; 11] = [
    "tcp",
    "http",
    "https",
    "audit",
    "daemon",
    "keepalived",
    "compat",
    "completions",
    "man",
    "xdp",
    "help",
];

/// How vipcheck came to read a command line as a C checker's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invoked {
    /// argv[0] names the checker (a hard link, a copy, a symlink run
    /// under its own path).
    ByName,
    /// argv[0] is vipcheck's own name, and the arguments have a C
    /// checker's shape: keepalived with `enable_script_security` runs a
    /// symlinked script under its resolved path, so the name is lost.
    ByShape,
}

/// The C checker whose command line `args` (after argv[0]) has the shape
/// of, when it is not a native one. Read with the union of the three C
/// grammars (GNU style: options anywhere, clustered short options, `--`):
/// a line whose first positional word is a [`SUBCOMMANDS`] entry, or that
/// has none (`--help`, `--version`), is native; so is one of fewer than
/// four positional words and no option of the C checkers but `-v` (a
/// mistyped subcommand: `vipcheck bogus`). Any other is a C line, named
/// by its options (one of `-M -H -S -R -B -A`: check_http_raw; `-c`:
/// check_tcp_raw) or else by its positionals (4: check_tcp_raw, 6:
/// check_http_raw, 7: check_http_get_raw; other counts the nearest, whose
/// parser then says what is missing or extra). So keepalived's C verdicts
/// (exit 0 or 1) hold whatever path it runs the script by, while a native
/// command line keeps its own statuses.
pub fn by_shape(args: &[OsString]) -> Option<&'static str> {
    // The native check's usual line (`vipcheck tcp ...`), at once: no scan
    // on the one-shot path.
    if args
        .first()
        .and_then(|a| a.to_str())
        .is_some_and(|a| SUBCOMMANDS.contains(&a))
    {
        return None;
    }
    let mut positionals = 0usize;
    let mut first = None;
    let mut http_raw = false;
    let mut tcp_raw = false;
    // An option that only the C grammars have (not -v).
    let mut c_option = false;
    let mut words = args.iter();
    let mut options_end = false;
    while let Some(word) = words.next() {
        let w = word.to_string_lossy();
        if options_end || w == "-" || !w.starts_with('-') {
            positionals += 1;
            if first.is_none() {
                first = Some(w.into_owned());
            }
            continue;
        }
        if w == "--" {
            options_end = true;
            continue;
        }
        if let Some(long) = w.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, _)) => (n, true),
                None => (long, false),
            };
            match name {
                "method" | "header" | "status-code" | "response-header" | "body" | "hash" => {
                    http_raw = true
                }
                "clean-close" => tcp_raw = true,
                _ => {}
            }
            c_option |= matches!(name, "role-file" | "timeout" | "usage" | "clean-close");
            c_option |= http_raw;
            let takes_value = matches!(
                name,
                "role-file"
                    | "timeout"
                    | "pcap"
                    | "method"
                    | "header"
                    | "status-code"
                    | "response-header"
                    | "body"
                    | "hash"
            );
            if takes_value && !inline {
                words.next();
            }
            continue;
        }
        // A cluster of short options: the first that takes a value takes
        // the rest of the word, or the next word.
        for (i, c) in w.char_indices().skip(1) {
            match c {
                'M' | 'H' | 'S' | 'R' | 'B' | 'A' => http_raw = true,
                'c' => tcp_raw = true,
                _ => {}
            }
            c_option |= c != 'v' && c != 'h' && c != 'V';
            if matches!(c, 'r' | 't' | 'M' | 'H' | 'S' | 'R' | 'B' | 'A') {
                if i + c.len_utf8() == w.len() {
                    words.next();
                }
                break;
            }
        }
    }
    let first = first?;
    if SUBCOMMANDS.contains(&first.as_str()) || (positionals < 4 && !c_option) {
        return None;
    }
    Some(if http_raw {
        "check_http_raw"
    } else if tcp_raw {
        "check_tcp_raw"
    } else {
        match positionals {
            0..=4 => "check_tcp_raw",
            5 | 6 => "check_http_raw",
            _ => "check_http_get_raw",
        }
    })
}

/// What every C checker takes.
#[derive(Debug, Args)]
struct Common {
    /// Role file: its first byte `1` means MASTER, anything else (or no
    /// file) BACKUP. Used only when the XDP capture cannot be: then a
    /// BACKUP checks the real server's own address with a kernel TCP
    /// connection, as the C checkers do.
    #[arg(short = 'r', long = "role-file", value_name = "FILE")]
    role_file: Option<PathBuf>,
    /// Timeout for each reply of the real server (ARP reply, SYN-ACK, each
    /// next piece of the response), in ms; 0: none (the check then ends
    /// after one hour at most, or when keepalived stops it).
    #[arg(short = 't', long = "timeout", value_name = "MILLISECONDS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_MS))]
    timeout: u64,
    /// More on stderr for each -v (see the levels above).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    verbose: u8,
    /// Write every frame sent and received (ARP included) to FILE, in pcap format.
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Print this help.
    #[arg(short = '?', long = "help", action = ArgAction::Help)]
    help: Option<bool>,
    /// Print a short usage line.
    #[arg(long = "usage", action = ArgAction::SetTrue)]
    usage: bool,
    /// Interface to send from (the one facing the real servers).
    #[arg(value_name = "SOURCE_IFACE")]
    iface: String,
    /// The real server: IPv4 or IPv6 address or host name, used only to learn its MAC.
    #[arg(value_name = "REAL_SERVER", value_parser = parse_ip_host)]
    real_server: IpAddr,
    /// The virtual IP (IPv4 or IPv6 address or host name): destination of every packet.
    #[arg(value_name = "VIRTUAL_IP", value_parser = parse_ip_host)]
    vip: IpAddr,
    /// TCP port.
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    port: u16,
}

/// `check_tcp_raw`.
#[derive(Debug, Parser)]
#[command(
    name = "check_tcp_raw",
    disable_help_flag = true,
    disable_version_flag = true,
    about = "TCP check of a real server through the VIP path (vipcheck, as check_tcp_raw)",
    long_about = "TCP check of an LVS-DR real server through the VIP path: SYN, SYN-ACK, ACK, \
then RST (or a FIN close with -c), in frames addressed to VIRTUAL_IP:PORT and to REAL_SERVER's \
MAC. This is vipcheck under the C checker's name: same command line; exit status 0 healthy, \
1 anything else.\n\nVerbosity: -v the parameters and every TCP frame, -vv every ARP frame too.",
    after_help = "Example: check_tcp_raw -vv -t 500 -r /var/run/lvs.role eth0 10.0.0.42 10.0.0.100 80"
)]
struct TcpRaw {
    /// Close with a FIN handshake instead of an RST (for servers that log abrupt closes).
    #[arg(short = 'c', long = "clean-close")]
    clean_close: bool,
    #[command(flatten)]
    common: Common,
}

/// `check_http_get_raw`.
#[derive(Debug, Parser)]
#[command(
    name = "check_http_get_raw",
    disable_help_flag = true,
    disable_version_flag = true,
    about = "HTTP GET check through the VIP path, by the body's MD5 (vipcheck, as check_http_get_raw)",
    long_about = "HTTP GET of PATH with Host: HOST from an LVS-DR real server through the VIP path; \
healthy when the MD5 of the response body is VALUE. This is vipcheck under the C checker's name: \
same command line; exit status 0 healthy, 1 anything else.\n\nVerbosity: -v the parameters and \
the response head, -vv the body too, -vvv every TCP frame, -vvvv every ARP frame.",
    after_help = "Example: check_http_get_raw -vv -t 500 -r /var/run/lvs.role eth0 10.0.0.42 \
10.0.0.100 80 www.example.com /healthcheck d36f8f9425c4a8000ad9c4a97185aca5"
)]
struct HttpGetRaw {
    #[command(flatten)]
    common: Common,
    /// Host header of the request.
    #[arg(value_name = "HOST")]
    host: String,
    /// Path of the request, with its leading slash.
    #[arg(value_name = "PATH")]
    path: String,
    /// MD5 of the expected response body (hex).
    #[arg(value_name = "VALUE")]
    value: String,
}

/// `check_http_raw`.
#[derive(Debug, Parser)]
#[command(
    name = "check_http_raw",
    disable_help_flag = true,
    disable_version_flag = true,
    about = "HTTP check through the VIP path with validations (vipcheck, as check_http_raw)",
    long_about = "HTTP request to an LVS-DR real server through the VIP path; the response must \
pass every validation given, and at least one of -S, -R, -B, -A is required. This is vipcheck \
under the C checker's name: same command line; exit status 0 healthy, 1 anything else.\n\n\
Verbosity: -v the parameters and the response head, -vv the body too, -vvv every TCP frame, \
-vvvv every ARP frame.",
    after_help = "Example: check_http_raw -vv -t 500 -r /var/run/lvs.role -S 200 -A \
d36f8f9425c4a8000ad9c4a97185aca5 -R \"Server: nginx/1.8.0\" eth0 10.0.0.42 10.0.0.100 80 \
www.example.com /healthcheck"
)]
struct HttpRaw {
    /// Request method: GET or HEAD.
    #[arg(short = 'M', long = "method", value_name = "METHOD", value_enum, ignore_case = true,
          default_value_t = Method::Get)]
    method: Method,
    /// Extra request header "Name: Value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// Expected status code.
    #[arg(short = 'S', long = "status-code", value_name = "STATUS_CODE",
          value_parser = clap::value_parser!(u16).range(100..=999))]
    status: Option<u16>,
    /// Response header "Name: Value" that must be present (repeatable).
    #[arg(short = 'R', long = "response-header", value_name = "HEADER",
          value_parser = parse_expected_header)]
    response_headers: Vec<(String, Option<String>)>,
    /// The exact expected body.
    #[arg(short = 'B', long = "body", value_name = "BODY")]
    body: Option<String>,
    /// MD5 of the expected body (hex).
    #[arg(short = 'A', long = "hash", value_name = "MD5SUM")]
    hash: Option<String>,
    #[command(flatten)]
    common: Common,
    /// Host header of the request.
    #[arg(value_name = "HOST")]
    host: String,
    /// Path of the request, with its leading slash.
    #[arg(value_name = "PATH")]
    path: String,
}

/// The clap command of a C name, for help, man pages and completions.
pub fn command(name: &str) -> clap::Command {
    match name {
        "check_http_get_raw" => HttpGetRaw::command(),
        "check_http_raw" => HttpRaw::command(),
        _ => TcpRaw::command(),
    }
}

/// Exit status of a healthy check.
const HEALTHY: i32 = 0;
/// Exit status of everything else.
const FAILED: i32 = 1;

/// Runs vipcheck as the C checker `name` with `args` (after argv[0]);
/// returns the exit status, 0 or 1.
pub fn main(name: &str, args: &[OsString], invoked: Invoked) -> i32 {
    // Who speaks in errors: the C name, or vipcheck saying how it read
    // a line that named no subcommand.
    let speaker = match invoked {
        Invoked::ByName => name.to_string(),
        Invoked::ByShape => format!(
            "vipcheck (no subcommand: read as a {name} command line; 'vipcheck --help' for \
             its own)"
        ),
    };
    let words = std::iter::once(OsString::from(name)).chain(args.iter().cloned());
    // GNU argp answers --usage whatever else the line holds.
    if args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--usage")
    {
        let usage = command(name).render_usage().to_string();
        say!("{}", usage.trim_end());
        return HEALTHY;
    }
    let parsed = match name {
        "check_http_get_raw" => HttpGetRaw::try_parse_from(words).map(Parsed::HttpGet),
        "check_http_raw" => HttpRaw::try_parse_from(words).map(Parsed::Http),
        _ => TcpRaw::try_parse_from(words).map(Parsed::Tcp),
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            let _ = e.print();
            return HEALTHY;
        }
        Err(e) => {
            note!(
                "{speaker}: {} (see '{name} --help')",
                crate::cli::usage_message(&e)
            );
            return FAILED;
        }
    };
    let (plan, common) = match parsed.plan() {
        Ok(plan) => plan,
        Err(message) => {
            note!("{speaker}: {message} (see '{name} --help')");
            return FAILED;
        }
    };
    common.trace_params(&parsed);
    if common.verbose > 0 {
        // vipcheck's own diagnostics (attach, fallback) go with the trace.
        crate::output::log_to_stderr();
    }
    match run(&plan, common) {
        Ok(verdict) => {
            say!("{verdict}");
            if verdict.healthy() { HEALTHY } else { FAILED }
        }
        Err(e) => {
            note!("{speaker}: {e}");
            FAILED
        }
    }
}

enum Parsed {
    Tcp(TcpRaw),
    HttpGet(HttpGetRaw),
    Http(HttpRaw),
}

/// What to run: the check and its target.
struct Plan {
    target: Target,
    http: Option<HttpCheck>,
}

impl Parsed {
    fn common(&self) -> &Common {
        match self {
            Parsed::Tcp(a) => &a.common,
            Parsed::HttpGet(a) => &a.common,
            Parsed::Http(a) => &a.common,
        }
    }

    /// The target and check, or why the line cannot be one (the checks
    /// clap cannot express).
    fn plan(&self) -> Result<(Plan, &Common), String> {
        let common = self.common();
        let v = common.verbose;
        let (trace, close, http) = match self {
            Parsed::Tcp(a) => (
                Trace {
                    tcp: v >= 1,
                    arp: v >= 2,
                    c_format: true,
                },
                if a.clean_close {
                    CloseMode::Fin
                } else {
                    CloseMode::Rst
                },
                None,
            ),
            Parsed::HttpGet(a) => {
                let expect = Expect {
                    md5: Some(crate::wire::http::parse_md5(&a.value)?),
                    ..Expect::default()
                };
                (
                    http_trace(v),
                    CloseMode::Rst,
                    Some(http_check(
                        Method::Get,
                        &a.host,
                        &a.path,
                        vec![],
                        expect,
                        v,
                    )?),
                )
            }
            Parsed::Http(a) => {
                if a.status.is_none()
                    && a.response_headers.is_empty()
                    && a.body.is_none()
                    && a.hash.is_none()
                {
                    return Err("give at least one validation: -S, -R, -B or -A".into());
                }
                let expect = Expect {
                    statuses: a.status.map(|s| s..=s).into_iter().collect(),
                    headers: a.response_headers.clone(),
                    body: a.body.clone().map(String::into_bytes),
                    md5: a
                        .hash
                        .as_deref()
                        .map(crate::wire::http::parse_md5)
                        .transpose()?,
                    ..Expect::default()
                };
                (
                    http_trace(v),
                    CloseMode::Rst,
                    Some(http_check(
                        a.method,
                        &a.host,
                        &a.path,
                        a.headers.clone(),
                        expect,
                        v,
                    )?),
                )
            }
        };
        let reply_timeout = (common.timeout > 0).then(|| Duration::from_millis(common.timeout));
        let target = Target {
            iface: common.iface.clone(),
            real_server: common.real_server,
            vip: common.vip,
            port: common.port,
            source: None,
            // The per-reply timeout governs; the whole check is bounded
            // all the same, and keepalived stops it at its own timeout.
            timeout: Duration::from_millis(MAX_TIMEOUT_MS),
            reply_timeout,
            close,
            capture: Capture::Require,
            xdp_mode: XdpMode::Skb,
            trace,
            pcap: common.pcap.clone(),
        };
        Ok((Plan { target, http }, common))
    }
}

/// HTTP levels: -vvv TCP frames, -vvvv ARP frames.
fn http_trace(v: u8) -> Trace {
    Trace {
        tcp: v >= 3,
        arp: v >= 4,
        c_format: true,
    }
}

fn http_check(
    method: Method,
    host: &str,
    path: &str,
    headers: Vec<(String, String)>,
    expect: Expect,
    v: u8,
) -> Result<HttpCheck, String> {
    crate::wire::http::check_host(host)?;
    crate::wire::http::check_path(path)?;
    Ok(HttpCheck {
        method,
        host: host.to_string(),
        path: path.to_string(),
        headers,
        expect,
        limits: Limits::default(),
        trace_heads: v >= 1,
        trace_body: v >= 2,
        trace_c: true,
        tls: None,
    })
}

/// The C checker command line `name ARGS` (as a keepalived MISC_CHECK
/// runs it) as the pieces of an audit target, validated as the checker
/// itself validates it; the error says what is wrong, in one line. Runs
/// nothing (public for the fuzz targets).
pub fn parse_line(
    name: &str,
    args: &[String],
) -> Result<crate::config::keepalived::CompatLine, String> {
    use crate::config::{CheckSpec, HttpSpec, Method as M};
    let words = std::iter::once(name.to_string()).chain(args.iter().cloned());
    let parsed = match name {
        "check_tcp_raw" => TcpRaw::try_parse_from(words).map(Parsed::Tcp),
        "check_http_get_raw" => HttpGetRaw::try_parse_from(words).map(Parsed::HttpGet),
        "check_http_raw" => HttpRaw::try_parse_from(words).map(Parsed::Http),
        _ => return Err(format!("{name} is not one of {}", NAMES.join(", "))),
    }
    .map_err(|e| crate::cli::usage_message(&e))?;
    parsed.plan()?;
    let check = match &parsed {
        Parsed::Tcp(_) => CheckSpec::Tcp,
        Parsed::HttpGet(a) => CheckSpec::Http(HttpSpec {
            host: Some(a.host.clone()),
            path: a.path.clone(),
            md5: Some(crate::wire::http::parse_md5(&a.value)?),
            ..HttpSpec::default()
        }),
        Parsed::Http(a) => CheckSpec::Http(HttpSpec {
            host: Some(a.host.clone()),
            path: a.path.clone(),
            method: match a.method {
                Method::Get => M::Get,
                Method::Head => M::Head,
            },
            headers: a.headers.clone(),
            statuses: a.status.map(|s| s..=s).into_iter().collect(),
            response_headers: a.response_headers.clone(),
            body: a.body.clone(),
            md5: a
                .hash
                .as_deref()
                .map(crate::wire::http::parse_md5)
                .transpose()?,
            ..HttpSpec::default()
        }),
    };
    let common = parsed.common();
    Ok(crate::config::keepalived::CompatLine {
        iface: common.iface.clone(),
        real_server: common.real_server,
        vip: common.vip,
        port: common.port,
        reply_timeout: (common.timeout > 0).then(|| Duration::from_millis(common.timeout)),
        check,
    })
}

/// The role the role file gives this LB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Master,
    Backup,
}

impl Common {
    /// As the C checkers read it: the first byte `1` is MASTER, anything
    /// else BACKUP; a file that cannot be read is BACKUP (said at -v).
    fn role(&self) -> Option<Role> {
        let path = self.role_file.as_ref()?;
        use std::io::Read;
        let mut first = [0u8; 1];
        let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut first));
        Some(match read {
            Ok(1) if first[0] == b'1' => Role::Master,
            Ok(_) => Role::Backup,
            Err(e) => {
                if self.verbose > 0 {
                    note!(
                        "vipcheck: role file {}: {e}; taken as BACKUP",
                        path.display()
                    );
                }
                Role::Backup
            }
        })
    }

    /// The C checkers' `[PARAMS]` (and `[OPTIONS]`) lines, at -v.
    fn trace_params(&self, parsed: &Parsed) {
        if self.verbose == 0 {
            return;
        }
        let role_file = self
            .role_file
            .as_ref()
            .map_or_else(|| "(none)".to_string(), |p| p.display().to_string());
        let mut params = format!(
            "[PARAMS] iface: {}, real_server: {}, virtual_ip: {}, port: {}",
            self.iface, self.real_server, self.vip, self.port
        );
        match parsed {
            Parsed::HttpGet(a) => {
                params += &format!(", host: {}, path: {}, value: {}", a.host, a.path, a.value)
            }
            Parsed::Http(a) => params += &format!(", host: {}, path: {}", a.host, a.path),
            Parsed::Tcp(_) => {}
        }
        params += &format!(
            ", role_file: {role_file}, timeout: {}ms, verbosity: {}",
            self.timeout, self.verbose
        );
        note!("{params}");
        if let Parsed::Http(a) = parsed {
            note!(
                "[OPTIONS] method: {}, status-code: {}, body: {}, hash: {}, role_file: {role_file}, timeout: {}ms, verbosity: {}",
                a.method.as_str(),
                a.status
                    .map_or_else(|| "(none)".to_string(), |s| s.to_string()),
                a.body.as_deref().unwrap_or("(none)"),
                a.hash.as_deref().unwrap_or("(none)"),
                self.timeout,
                self.verbose
            );
        }
    }
}

/// Runs the check through the VIP path; when the XDP capture cannot be
/// used here, as the C checkers would.
fn run(plan: &Plan, common: &Common) -> Result<Verdict, Error> {
    let role = common.role();
    let say_path = |text: String| {
        if common.verbose > 0 {
            note!("vipcheck: {text}");
        }
    };
    if let Some(role) = role {
        say_path(format!(
            "role file says {role:?}; with the XDP capture both roles check through the VIP path"
        ));
    }
    match check_once(plan, &plan.target) {
        Err(e @ (Error::ForeignXdp { .. } | Error::Bpf { .. })) => {
            if role == Some(Role::Backup) {
                say_path(format!(
                    "the XDP capture cannot be used ({e}); as a BACKUP per the role file, \
                     checking the real server's own address with a kernel TCP connection"
                ));
                return check::kernel::run(&plan.target, plan.http.as_ref());
            }
            say_path(format!(
                "the XDP capture cannot be used ({e}); checking through the VIP path with an \
                 AF_PACKET capture (a backup LB's kernel answers the replies with RSTs)"
            ));
            let target = Target {
                capture: Capture::Off,
                ..plan.target.clone()
            };
            check_once(plan, &target)
        }
        other => other,
    }
}

fn check_once(plan: &Plan, target: &Target) -> Result<Verdict, Error> {
    match &plan.http {
        Some(http) => check::http::run(target, http),
        None => check::tcp::run(target),
    }
}

/// What `vipcheck compat install` did with one C name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installed {
    Created(PathBuf),
    /// A link to an older vipcheck binary (one a package upgrade left
    /// behind) now links to this one.
    Replaced(PathBuf),
}

/// `vipcheck compat install DIR`: a link to this binary under each C
/// name, idempotent. A link there to an older vipcheck binary (a hard link
/// keeps the old file alive after a package upgrade, and keepalived would
/// go on running it) is replaced, atomically; any other file is never
/// replaced, and then nothing is changed. A hard link where DIR is on
/// vipcheck's file system (keepalived with `enable_script_security` runs a
/// symlinked script under its resolved path, and vipcheck then knows the C
/// line by its shape, see [`by_shape`]); a symlink otherwise, with a
/// warning (the second value).
pub fn install(dir: &Path) -> Result<(Vec<Installed>, Option<String>), Error> {
    let exe = std::env::current_exe()
        .and_then(|p| p.canonicalize())
        .map_err(|e| Error::io("finding the vipcheck binary", e))?;
    // Every name is judged before anything changes.
    let mut todo = Vec::new();
    for name in NAMES {
        let link = dir.join(name);
        match std::fs::symlink_metadata(&link) {
            Ok(_) if is_link_to(&link, &exe) => {}
            Ok(_) if is_older_vipcheck(&link) => todo.push((link, true)),
            Ok(_) => {
                return Err(Error::Usage(format!(
                    "{} exists and is not a link to {} (nor to an older vipcheck); remove it first",
                    link.display(),
                    exe.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => todo.push((link, false)),
            Err(e) => return Err(Error::io(format!("reading {}", link.display()), e)),
        }
    }
    let mut done = Vec::new();
    let mut warning = None;
    for (link, replace) in todo {
        // Made beside it under a temporary name, then renamed over it: the
        // name never goes missing for keepalived.
        let temporary = link.with_file_name(format!(
            ".{}.vipcheck-{}",
            link.file_name().and_then(|n| n.to_str()).unwrap_or("link"),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&temporary);
        let made = match std::fs::hard_link(&exe, &temporary) {
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
                warning = Some(format!(
                    "{} is on another file system than {}: made symlinks, which keepalived \
                     with enable_script_security runs under vipcheck's own name (vipcheck \
                     then knows a C command line by its shape); install into a directory of \
                     vipcheck's file system for hard links",
                    dir.display(),
                    exe.display()
                ));
                std::os::unix::fs::symlink(&exe, &temporary)
            }
            other => other,
        };
        made.and_then(|()| std::fs::rename(&temporary, &link))
            .map_err(|e| {
                let _ = std::fs::remove_file(&temporary);
                Error::io(format!("creating {}", link.display()), e)
            })?;
        done.push(if replace {
            Installed::Replaced(link)
        } else {
            Installed::Created(link)
        });
    }
    Ok((done, warning))
}

/// Whether `path` is `exe` through a symlink or a hard link.
fn is_link_to(path: &Path, exe: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), std::fs::metadata(exe)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Text that every vipcheck binary holds (its `--help` since the first
/// version), and no other program.
const VIPCHECK_MARK: &[u8] = b"Health checks of LVS-DR real servers through the VIP path";

/// Largest file read to tell whether it is a vipcheck binary.
const MAX_BINARY_BYTES: u64 = 256 << 20;

/// Whether `path` is (or links to) another vipcheck binary: a symlink to a
/// file named `vipcheck` (even one gone), or an ELF file holding
/// [`VIPCHECK_MARK`].
fn is_older_vipcheck(path: &Path) -> bool {
    if let Ok(target) = std::fs::read_link(path)
        && target.file_name() == Some(OsStr::new("vipcheck"))
    {
        return true;
    }
    use std::io::Read;
    let mut data = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_BINARY_BYTES).read_to_end(&mut data));
    read.is_ok()
        && data.starts_with(b"\x7fELF")
        && data
            .windows(VIPCHECK_MARK.len())
            .any(|w| w == VIPCHECK_MARK)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, args: &[&str]) -> Result<Parsed, clap::Error> {
        let words = std::iter::once(name).chain(args.iter().copied());
        match name {
            "check_http_get_raw" => HttpGetRaw::try_parse_from(words).map(Parsed::HttpGet),
            "check_http_raw" => HttpRaw::try_parse_from(words).map(Parsed::Http),
            _ => TcpRaw::try_parse_from(words).map(Parsed::Tcp),
        }
    }

    const TAIL: [&str; 4] = ["eth0", "198.18.0.11", "198.18.0.100", "80"];

    fn tcp(options: &[&str]) -> Common {
        let args: Vec<&str> = options.iter().chain(TAIL.iter()).copied().collect();
        match parse("check_tcp_raw", &args).unwrap() {
            Parsed::Tcp(a) => a.common,
            _ => unreachable!(),
        }
    }

    #[test]
    fn gnu_option_forms() {
        for form in [
            &["-t500"][..],
            &["-t", "500"],
            &["--timeout=500"],
            &["--timeout", "500"],
        ] {
            assert_eq!(tcp(form).timeout, 500, "{form:?}");
        }
        let c = tcp(&["-vvc", "--role-file=/x"]);
        assert_eq!(
            (c.verbose, c.role_file.as_deref()),
            (2, Some(Path::new("/x")))
        );
        let Parsed::Tcp(a) = parse(
            "check_tcp_raw",
            &["-vc", "--", "eth0", "198.18.0.11", "198.18.0.100", "80"],
        )
        .unwrap() else {
            unreachable!()
        };
        assert!(a.clean_close);
        assert!(
            parse("check_tcp_raw", &["-?"])
                .is_err_and(|e| e.kind() == clap::error::ErrorKind::DisplayHelp)
        );
        assert_eq!(tcp(&["-t", "0"]).timeout, 0);
    }

    #[test]
    fn names_by_file_name() {
        assert_eq!(
            invoked_as(OsStr::new("/usr/local/bin/check_tcp_raw")),
            Some("check_tcp_raw")
        );
        assert_eq!(
            invoked_as(OsStr::new("check_http_raw")),
            Some("check_http_raw")
        );
        assert_eq!(invoked_as(OsStr::new("vipcheck")), None);
    }

    fn shape(line: &str) -> Option<&'static str> {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        by_shape(&args)
    }

    #[test]
    fn c_lines_known_by_their_shape() {
        let cases = [
            ("-t 500 eth0 10.0.0.42 10.0.0.100 80", Some("check_tcp_raw")),
            ("eth0 10.0.0.42 10.0.0.100 80", Some("check_tcp_raw")),
            ("-vvc -r /run/role eth0 rs vip 80", Some("check_tcp_raw")),
            ("eth0 rs vip 80 -t500 --timeout 3", Some("check_tcp_raw")),
            ("--role-file /x -- eth0 rs vip 80", Some("check_tcp_raw")),
            ("-t 500 eth0 rs vip 80 h /p", Some("check_http_raw")),
            (
                "-vv -t 500 eth0 rs vip 80 h /p d36f",
                Some("check_http_get_raw"),
            ),
            (
                "--timeout=500 eth0 rs vip 80 h /p d36f",
                Some("check_http_get_raw"),
            ),
            // A validation names check_http_raw, whatever the count.
            ("-S 200 eth0 rs vip 80 h /p", Some("check_http_raw")),
            ("-vS200 eth0 rs vip 80 h /p", Some("check_http_raw")),
            ("--hash=abc eth0 rs vip 80 h", Some("check_http_raw")),
            ("-H x eth0 rs vip 80 h /p", Some("check_http_raw")),
            // Values that look like subcommands are values.
            ("-r tcp eth0 rs vip 80", Some("check_tcp_raw")),
            ("-M HEAD -B http eth0 rs vip 80 h /", Some("check_http_raw")),
            // Wrong counts still go to a C parser, which says what is wrong.
            ("-t 300 eth0 rs vip", Some("check_tcp_raw")),
            ("--usage eth0", Some("check_tcp_raw")),
            ("eth0 rs vip 80 h /p x y", Some("check_http_get_raw")),
            // Native lines stay native.
            ("tcp eth0 rs vip 80", None),
            ("-v tcp -t 500 eth0 rs vip 80", None),
            ("-vv http eth0 rs vip 80 h /", None),
            ("audit --keepalived /etc/keepalived/keepalived.conf", None),
            ("help", None),
            ("bogus", None),
            ("eth0 rs vip", None),
            ("-v eth0 rs vip", None),
            ("--help", None),
            ("--version", None),
            ("", None),
        ];
        for (line, want) in cases {
            assert_eq!(shape(line), want, "{line:?}");
        }
    }

    #[test]
    fn subcommands_are_all_known() {
        use clap::CommandFactory;
        let mut names: Vec<String> = crate::cli::Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        names.push("help".into());
        names.sort();
        let mut known: Vec<String> = SUBCOMMANDS.iter().map(|s| s.to_string()).collect();
        known.sort();
        assert_eq!(names, known);
    }

    #[test]
    fn http_raw_needs_a_validation_and_a_known_method() {
        let tail = ["eth0", "198.18.0.11", "198.18.0.100", "80", "h", "/"];
        let none = parse("check_http_raw", &tail).unwrap();
        assert!(none.plan().is_err());
        let with: Vec<&str> = ["-S", "200"].iter().chain(tail.iter()).copied().collect();
        assert!(parse("check_http_raw", &with).unwrap().plan().is_ok());
        let post: Vec<&str> = ["-M", "POST", "-S", "200"]
            .iter()
            .chain(tail.iter())
            .copied()
            .collect();
        assert!(parse("check_http_raw", &post).is_err());
        let get_raw = [
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "80",
            "h",
            "/",
            "nothex",
        ];
        assert!(
            parse("check_http_get_raw", &get_raw)
                .unwrap()
                .plan()
                .is_err()
        );
    }

    #[test]
    fn per_reply_timeout() {
        let Parsed::Tcp(a) = parse(
            "check_tcp_raw",
            &["-t", "250", "eth0", "198.18.0.11", "198.18.0.100", "80"],
        )
        .unwrap() else {
            unreachable!()
        };
        let (plan, _) = Parsed::Tcp(a).plan().unwrap();
        assert_eq!(plan.target.reply_timeout, Some(Duration::from_millis(250)));
        let (plan, _) = parse(
            "check_tcp_raw",
            &["-t", "0", "eth0", "198.18.0.11", "198.18.0.100", "80"],
        )
        .unwrap()
        .plan()
        .unwrap();
        assert_eq!(plan.target.reply_timeout, None);
        assert_eq!(plan.target.timeout, Duration::from_millis(MAX_TIMEOUT_MS));
    }
}
