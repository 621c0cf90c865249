//! The C raw socket checkers' command lines (`check_tcp_raw`,
//! `check_http_get_raw`, `check_http_raw`): their grammar, GNU style, how
//! a line is known by its shape under vipcheck's own name, and what a line
//! asks to check. Running them is [`front::compat`](crate::front::compat).

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgAction, Args, CommandFactory, Parser};

use crate::probe::args::usage_message;
use crate::probe::parse::{MAX_TIMEOUT_MS, parse_expected_header, parse_header, parse_ip_host};
use crate::probe::{CheckSpec, CloseMode, HttpSpec, Method, Probe, Trace};

/// The names vipcheck answers to as a C checker.
pub(crate) const NAMES: [&str; 3] = ["check_tcp_raw", "check_http_get_raw", "check_http_raw"];

/// The C checker `argv0` names, if it names one (its file name, whatever
/// the directory).
pub(crate) fn invoked_as(argv0: &OsStr) -> Option<&'static str> {
    let name = Path::new(argv0).file_name()?;
    NAMES.iter().copied().find(|n| OsStr::new(n) == name)
}

/// The native subcommands (and clap's `help`): a command line whose first
/// positional word is one of them is vipcheck's own.
pub(crate) const SUBCOMMANDS: [&str; 15] = [
    "tcp",
    "http",
    "https",
    "ping",
    "udp",
    "dns",
    "smtp",
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
pub(crate) enum Invoked {
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
                    http_raw = true;
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
pub(crate) struct Common {
    /// Role file: its first byte `1` means MASTER, anything else (or no
    /// file) BACKUP. Used only when the XDP capture cannot be: then a
    /// BACKUP checks the real server's own address with a kernel TCP
    /// connection, as the C checkers do.
    #[arg(short = 'r', long = "role-file", value_name = "FILE")]
    pub(crate) role_file: Option<PathBuf>,
    /// Timeout for each reply of the real server (ARP reply, SYN-ACK, each
    /// next piece of the response), in ms; 0: none (the check then ends
    /// after one hour at most, or when keepalived stops it).
    #[arg(short = 't', long = "timeout", value_name = "MILLISECONDS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_MS))]
    pub(crate) timeout: u64,
    /// More on stderr for each -v (see the levels above).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub(crate) verbose: u8,
    /// Write every frame sent and received (ARP included) to FILE, in pcap format.
    #[arg(long, value_name = "FILE")]
    pub(crate) pcap: Option<PathBuf>,
    /// Print this help.
    #[arg(short = '?', long = "help", action = ArgAction::Help)]
    pub(crate) help: Option<bool>,
    /// Print a short usage line.
    #[arg(long = "usage", action = ArgAction::SetTrue)]
    pub(crate) usage: bool,
    /// Interface to send from (the one facing the real servers).
    #[arg(value_name = "SOURCE_IFACE")]
    pub(crate) iface: String,
    /// The real server: IPv4 or IPv6 address or host name, used only to learn its MAC.
    #[arg(value_name = "REAL_SERVER", value_parser = parse_ip_host)]
    pub(crate) real_server: IpAddr,
    /// The virtual IP (IPv4 or IPv6 address or host name): destination of every packet.
    #[arg(value_name = "VIRTUAL_IP", value_parser = parse_ip_host)]
    pub(crate) vip: IpAddr,
    /// TCP port.
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) port: u16,
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
pub(crate) struct TcpRaw {
    /// Close with a FIN handshake instead of an RST (for servers that log abrupt closes).
    #[arg(short = 'c', long = "clean-close")]
    pub(crate) clean_close: bool,
    #[command(flatten)]
    pub(crate) common: Common,
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
pub(crate) struct HttpGetRaw {
    #[command(flatten)]
    pub(crate) common: Common,
    /// Host header of the request.
    #[arg(value_name = "HOST")]
    pub(crate) host: String,
    /// Path of the request, with its leading slash.
    #[arg(value_name = "PATH")]
    pub(crate) path: String,
    /// MD5 of the expected response body (hex).
    #[arg(value_name = "VALUE")]
    pub(crate) value: String,
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
pub(crate) struct HttpRaw {
    /// Request method: GET or HEAD.
    #[arg(short = 'M', long = "method", value_name = "METHOD", value_enum, ignore_case = true,
          default_value_t = Method::Get)]
    pub(crate) method: Method,
    /// Extra request header "Name: Value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER", value_parser = parse_header)]
    pub(crate) headers: Vec<(String, String)>,
    /// Expected status code.
    #[arg(short = 'S', long = "status-code", value_name = "STATUS_CODE",
          value_parser = clap::value_parser!(u16).range(100..=999))]
    pub(crate) status: Option<u16>,
    /// Response header "Name: Value" that must be present (repeatable).
    #[arg(short = 'R', long = "response-header", value_name = "HEADER",
          value_parser = parse_expected_header)]
    pub(crate) response_headers: Vec<(String, Option<String>)>,
    /// The exact expected body.
    #[arg(short = 'B', long = "body", value_name = "BODY")]
    pub(crate) body: Option<String>,
    /// MD5 of the expected body (hex).
    #[arg(short = 'A', long = "hash", value_name = "MD5SUM")]
    pub(crate) hash: Option<String>,
    #[command(flatten)]
    pub(crate) common: Common,
    /// Host header of the request.
    #[arg(value_name = "HOST")]
    pub(crate) host: String,
    /// Path of the request, with its leading slash.
    #[arg(value_name = "PATH")]
    pub(crate) path: String,
}

/// The clap command of a C name, for help, man pages and completions.
pub(crate) fn command(name: &str) -> clap::Command {
    match name {
        "check_http_get_raw" => HttpGetRaw::command(),
        "check_http_raw" => HttpRaw::command(),
        _ => TcpRaw::command(),
    }
}

pub(crate) enum Parsed {
    Tcp(TcpRaw),
    HttpGet(HttpGetRaw),
    Http(HttpRaw),
}

impl Parsed {
    pub(crate) fn common(&self) -> &Common {
        match self {
            Parsed::Tcp(a) => &a.common,
            Parsed::HttpGet(a) => &a.common,
            Parsed::Http(a) => &a.common,
        }
    }

    /// What the line asks to check, or why it cannot be a check (the
    /// checks clap cannot express).
    pub fn probe(&self) -> Result<(Probe, &Common), String> {
        let common = self.common();
        let v = common.verbose;
        let (trace, close, check) = match self {
            Parsed::Tcp(a) => (
                Trace {
                    tcp: v >= 1,
                    arp: v >= 2,
                    c_format: true,
                    ..Trace::default()
                },
                if a.clean_close {
                    CloseMode::Fin
                } else {
                    CloseMode::Rst
                },
                CheckSpec::Tcp,
            ),
            Parsed::HttpGet(a) => {
                let md5 = Some(crate::wire::http::parse_md5(&a.value)?);
                (
                    http_trace(v),
                    CloseMode::Rst,
                    http_check(
                        HttpSpec {
                            md5,
                            ..HttpSpec::default()
                        },
                        &a.host,
                        &a.path,
                    )?,
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
                let spec = HttpSpec {
                    method: a.method,
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
                };
                (
                    http_trace(v),
                    CloseMode::Rst,
                    http_check(spec, &a.host, &a.path)?,
                )
            }
        };
        let probe = Probe {
            iface: Some(common.iface.clone()),
            // The per-reply timeout governs; the whole check is bounded
            // all the same, and keepalived stops it at its own timeout.
            timeout: Duration::from_millis(MAX_TIMEOUT_MS),
            reply_timeout: (common.timeout > 0).then(|| Duration::from_millis(common.timeout)),
            close,
            trace,
            pcap: common.pcap.clone(),
            ..Probe::new(common.real_server, common.vip, common.port, check)
        };
        Ok((probe, common))
    }
}

/// HTTP levels: -v heads, -vv body, -vvv TCP frames, -vvvv ARP frames.
fn http_trace(v: u8) -> Trace {
    Trace {
        tcp: v >= 3,
        arp: v >= 4,
        c_format: true,
        heads: v >= 1,
        body: v >= 2,
    }
}

/// `spec` requesting `path` of `host`, both checked as the C checkers do.
fn http_check(spec: HttpSpec, host: &str, path: &str) -> Result<CheckSpec, String> {
    crate::wire::http::check_host(host)?;
    crate::wire::http::check_path(path)?;
    Ok(CheckSpec::Http(HttpSpec {
        host: Some(host.to_string()),
        path: path.to_string(),
        ..spec
    }))
}

/// The C checker command line `name ARGS` (as a keepalived MISC_CHECK
/// runs it) as what it checks, validated as the checker itself validates
/// it; the error says what is wrong, in one line. Runs nothing (public
/// for the fuzz targets).
pub fn parse_line(name: &str, args: &[String]) -> Result<Probe, String> {
    let words = std::iter::once(name.to_string()).chain(args.iter().cloned());
    let parsed = match name {
        "check_tcp_raw" => TcpRaw::try_parse_from(words).map(Parsed::Tcp),
        "check_http_get_raw" => HttpGetRaw::try_parse_from(words).map(Parsed::HttpGet),
        "check_http_raw" => HttpRaw::try_parse_from(words).map(Parsed::Http),
        _ => return Err(format!("{name} is not one of {}", NAMES.join(", "))),
    }
    .map_err(|e| usage_message(&e))?;
    Ok(parsed.probe()?.0)
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
    fn http_raw_needs_a_validation_and_a_known_method() {
        let tail = ["eth0", "198.18.0.11", "198.18.0.100", "80", "h", "/"];
        let none = parse("check_http_raw", &tail).unwrap();
        assert!(none.probe().is_err());
        let with: Vec<&str> = ["-S", "200"].iter().chain(tail.iter()).copied().collect();
        assert!(parse("check_http_raw", &with).unwrap().probe().is_ok());
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
                .probe()
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
        let (probe, _) = Parsed::Tcp(a).probe().unwrap();
        assert_eq!(probe.reply_timeout, Some(Duration::from_millis(250)));
        let (probe, _) = parse(
            "check_tcp_raw",
            &["-t", "0", "eth0", "198.18.0.11", "198.18.0.100", "80"],
        )
        .unwrap()
        .probe()
        .unwrap();
        assert_eq!(probe.reply_timeout, None);
        assert_eq!(probe.timeout, Duration::from_millis(MAX_TIMEOUT_MS));
    }
}
