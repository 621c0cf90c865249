//! The man pages: vipcheck, each subcommand (and theirs) and the C
//! checkers' names, rendered from the command lines' own definitions,
//! with the sections clap does not know: EXIT STATUS, ENVIRONMENT, FILES,
//! SEE ALSO, and the daemon's metrics, track files and failure codes.
//! `mandoc -Tlint -Wwarning` finds nothing to say about them (tested).

use std::fmt::Write as _;

/// The pages' date (`.TH`), in the form mandoc parses; moved with each
/// release that changes a page.
const DATE: &str = "2026-12-08";

/// Writes the man pages into `dir` (created when missing): vipcheck, each
/// subcommand (`vipcheck-tcp.1`, `vipcheck-xdp-attach.1`, ...) and the
/// three C names; returns their paths.
pub(crate) fn man_pages(dir: &std::path::Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (name, page) in pages()? {
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

/// Every page: its name and its roff text.
pub(crate) fn pages() -> std::io::Result<Vec<(String, String)>> {
    use clap::CommandFactory;
    let top = crate::front::cli::Cli::command().disable_help_subcommand(true);
    let mut commands: Vec<(String, clap::Command)> = Vec::new();
    collect("vipcheck", top, &mut commands);
    for name in crate::probe::c_line::NAMES {
        commands.push((name.to_string(), crate::probe::c_line::command(name)));
    }
    let names: Vec<String> = commands.iter().map(|(n, _)| n.clone()).collect();
    commands
        .into_iter()
        .map(|(name, command)| Ok((name.clone(), render(&name, command, &names)?)))
        .collect()
}

/// `command` as `name` and its subcommands (not `help`) as `name-sub`.
fn collect(name: &str, command: clap::Command, out: &mut Vec<(String, clap::Command)>) {
    let command = command
        .name(name.to_string())
        .display_name(name.to_string())
        .bin_name(name.to_string())
        .disable_help_subcommand(true);
    let subs: Vec<clap::Command> = command.get_subcommands().cloned().collect();
    out.push((name.to_string(), command));
    for sub in subs {
        let sub_name = format!("{name}-{}", sub.get_name());
        collect(&sub_name, sub, out);
    }
}

fn render(name: &str, command: clap::Command, names: &[String]) -> std::io::Result<String> {
    let man = clap_mangen::Man::new(command.clone())
        .date(DATE)
        .source(format!("vipcheck {}", env!("CARGO_PKG_VERSION")))
        .manual("vipcheck manual");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    let mut page = String::from_utf8_lossy(&out).into_owned();
    page.push_str(&synopsis(name, &command));
    let mut rest = Vec::new();
    man.render_description_section(&mut rest)?;
    if command.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut rest)?;
    }
    if command.has_subcommands() {
        man.render_subcommands_section(&mut rest)?;
    }
    page.push_str(&String::from_utf8_lossy(&rest));
    page.push_str(&extra_sections(name, names));
    Ok(tidy(&page))
}

/// Removes what mandoc warns about in clap_mangen's output: empty
/// paragraphs between line breaks (`.br`, blank line, `.br`) and a
/// paragraph macro right after a section heading.
fn tidy(page: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for line in page.lines() {
        let last = out.last().copied();
        let paragraph = matches!(line, ".br" | ".PP" | ".sp" | "");
        if paragraph
            && last.is_none_or(|l| {
                l.starts_with(".SH") || l == ".TP" || l == ".br" || l == ".PP" || l.is_empty()
            })
        {
            continue;
        }
        out.push(line);
    }
    // A paragraph break right before a new paragraph or section says nothing.
    let mut kept: Vec<&str> = Vec::new();
    for line in out {
        if line.starts_with(".SH") || line == ".TP" || line == ".PP" || line.starts_with(".RS") {
            while kept
                .last()
                .is_some_and(|l| matches!(*l, ".br" | ".PP" | ".sp" | ""))
            {
                kept.pop();
            }
        }
        kept.push(line);
    }
    let mut text = kept.join("\n");
    text.push('\n');
    text
}

/// Escapes text for roff: backslashes, hyphens, a leading dot or quote.
fn esc(s: &str) -> String {
    let s = s.replace('\\', "\\e").replace('-', "\\-");
    if s.starts_with('.') || s.starts_with('\'') {
        format!("\\&{s}")
    } else {
        s
    }
}

/// The SYNOPSIS: every option with its value, then the positionals and
/// the subcommand.
fn synopsis(name: &str, command: &clap::Command) -> String {
    let mut line = format!("\\fB{}\\fR", esc(name));
    let mut args: Vec<&clap::Arg> = command
        .get_arguments()
        .filter(|a| !a.is_hide_set())
        .collect();
    args.sort_by_key(|a| a.is_positional());
    for arg in args {
        let repeated = matches!(
            arg.get_action(),
            clap::ArgAction::Count | clap::ArgAction::Append
        );
        let value = if arg.get_action().takes_values() {
            let names: Vec<String> = match arg.get_value_names() {
                Some(names) => names.iter().map(ToString::to_string).collect(),
                None => vec![arg.get_id().as_str().to_uppercase()],
            };
            names
                .iter()
                .map(|n| format!("\\fI{}\\fR", esc(n)))
                .collect::<Vec<_>>()
                .join(" ")
        } else {
            String::new()
        };
        let dots = if repeated { "..." } else { "" };
        let words = if arg.is_positional() {
            value
        } else {
            let mut flags = Vec::new();
            if let Some(short) = arg.get_short() {
                flags.push(format!("\\fB\\-{}\\fR", esc(&short.to_string())));
            }
            if let Some(long) = arg.get_long() {
                flags.push(format!("\\fB\\-\\-{}\\fR", esc(long)));
            }
            let flags = flags.join("|");
            if value.is_empty() {
                flags
            } else {
                format!("{flags} {value}")
            }
        };
        if arg.is_required_set() {
            let _ = write!(line, " {words}{dots}");
        } else {
            let _ = write!(line, " [{words}]{dots}");
        }
    }
    if command.has_subcommands() {
        line.push_str(" \\fISUBCOMMAND\\fR");
    }
    format!(".SH SYNOPSIS\n{line}\n")
}

/// The exit statuses of a check run by vipcheck's own names.
const CHECK_EXIT: &str = "\
.TP
0
The real server passed the check.
.TP
1
The real server failed the check, or a signal ended it.
.TP
2
Usage error: the command line is wrong.
.TP
3
The check could not run here: not root, no such interface, the XDP \
program could not be loaded or attached, every capture slot taken.
.PP
With \\fB\\-\\-format nagios\\fR the exit status is the monitoring\\-plugins \
state instead: 0 OK, 1 WARNING (slower than \\fB\\-w\\fR, or only the \
certificate's expiry failed), 2 CRITICAL (failed, or slower than \
\\fB\\-c\\fR), 3 UNKNOWN (could not run, usage error).
";

/// The exit statuses of the commands that manage rather than check.
const TOOL_EXIT: &str = "\
.TP
0
Done.
.TP
2
Usage error, or an input file that cannot be read.
.TP
3
It could not be done here (not root, no such interface, BPF refused, \
a file that cannot be written).
";

const AUDIT_EXIT: &str = "\
.TP
0
Every real server passed its check.
.TP
1
A real server failed its check.
.TP
2
The file cannot be read, or gives nothing to check; usage error.
.TP
3
A check could not run here (not root, no such interface, BPF refused), \
and none failed.
";

const C_EXIT: &str = "\
.TP
0
The real server passed the check.
.TP
1
Anything else: it failed the check, the check could not run, or the \
command line is wrong (as the C checkers: keepalived's \
\\fBmisc_dynamic\\fR reads 2 to 255 as a weight).
";

const FILES: &str = "\
.TP
/sys/fs/bpf/vipcheck/
The pinned XDP program, its link and maps, one directory per network \
namespace and interface (\\fIns<NETNS>\\-if<IFINDEX>\\fR), shared by every \
check process; \\fBvipcheck xdp detach\\fR removes an interface's.
";

const ENVIRONMENT: &str = "\
vipcheck reads no environment variable: what it does depends on its \
arguments and the files they name only.
";

/// The targets file's format (audit, daemon).
const TARGETS_FILE: &str = r#".SH TARGETS FILE
TOML; an unknown key is an error, and the innermost setting wins:
.PP
.nf
.RS 4
[defaults]                 # for every target (optional)
iface = "eth0"
timeout_ms = 1000
check = "tcp"              # tcp, http, https, ping, udp, dns or smtp
\&
[[vip]]
address = "10.0.0.100"
port = 80
check = "http"
host = "www.example.com"
path = "/healthcheck"
\&
[[vip.real_server]]
address = "10.0.0.42"
status = [200, "300\-399"]  # this one only
.RE
.fi
.PP
Settings (in \fB[defaults]\fR, a \fB[[vip]]\fR or a \fB[[vip.real_server]]\fR):
\fBiface\fR, \fBcapture\fR (auto, xdp or tc), \fBcheck\fR, \fBtimeout_ms\fR,
\fBinterval_ms\fR, \fBretry\fR, \fBhost\fR, \fBpath\fR, \fBmethod\fR (GET, HEAD),
\fBstatus\fR (codes and ranges), \fBmd5\fR; https \fBverify\fR, \fBca\fR, \fBsni\fR;
tcp \fBsend\fR and \fBexpect\fR; udp \fBsend\fR or \fBpayload\fR (hex),
\fBexpect\fR or \fBexpect_hex\fR, \fBmin_length\fR, \fBmax_length\fR,
\fBno_reply_ok\fR; dns \fBname\fR, \fBtype\fR, \fBexpect\fR, \fBtcp\fR;
smtp \fBhelo\fR. A key of another kind than the target's check is an error.
"#;

/// The daemon's own sections: metrics, track files, failure codes.
fn daemon_sections() -> String {
    let mut s = String::from(".SH METRICS\n");
    s.push_str(
        "With \\fB\\-\\-metrics\\fR \\fIADDR\\fR, http://ADDR/metrics serves, in \
         the Prometheus text format:\n",
    );
    for (metric, what) in METRICS {
        let _ = write!(s, ".TP\n\\fB{}\\fR\n{}\n", esc(metric), esc(what));
    }
    s.push_str(
        ".PP\nA target's series carry the labels \\fBvip\\fR, \\fBport\\fR, \
         \\fBprotocol\\fR, \\fBreal\\fR and \\fBcheck\\fR; they go when the \
         target leaves the configuration.\n",
    );
    s.push_str(".SH TRACK FILES\n");
    s.push_str(
        "With \\fB\\-\\-track\\-dir\\fR \\fIDIR\\fR, one file per target, named \
         \\fBvipcheck_\\fR\\fIVIP\\fR\\fB_\\fR\\fIPORT\\fR\\fB_\\fR\\fIREAL_SERVER\\fR\\fB_\\fR\\fICHECK\\fR \
         (\\fB\\-udp\\fR after the port for UDP), holds \\fB0\\fR while the target is \
         up and \\fB1\\fR while it is down, as keepalived's \\fBtrack_file\\fR \
         reads them (with \\fBweight 0\\fR: non\\-zero is a failure).\n\
         .PP\nA file is written atomically (a temporary file renamed over it) and \
         only when its value changes; the first value comes with the target's \
         first result. A missing file reads as 0 (up) to keepalived: the daemon \
         removes only the files of targets gone from the configuration, never \
         those of down ones. keepalived drops a track file whose directory does \
         not exist when it starts: create \\fIDIR\\fR before keepalived. \
         \\fBvipcheck keepalived snippet\\fR prints the blocks that use them.\n",
    );
    s.push_str(".SH FAILURE CODES\n");
    s.push_str(
        "Why a check failed or could not run: the \\fBreason\\fR label of \
         \\fBvipcheck_check_failures_total\\fR and the JSON output's \
         \\fBfailure\\fR.\n",
    );
    for (code, what) in FAILURES {
        let _ = write!(s, ".TP\n\\fB{}\\fR\n{}\n", esc(code), esc(what));
    }
    s
}

/// The daemon's metrics as they are exposed (counters with `_total`).
const METRICS: &[(&str, &str)] = &[
    (
        "vipcheck_target_up",
        "Damped state of a target: 1 up, 0 down (absent before its first result).",
    ),
    (
        "vipcheck_target_check_ok",
        "Last raw result of a target's check: 1 passed, 0 failed or could not run.",
    ),
    (
        "vipcheck_target_state_changes_total",
        "Changes of a target's damped state (counter).",
    ),
    (
        "vipcheck_check_duration_seconds",
        "Duration of the checks that reached a verdict, by check (histogram).",
    ),
    (
        "vipcheck_checks_total",
        "Checks run, by check and result (healthy, unhealthy, error: could not run).",
    ),
    (
        "vipcheck_check_failures_total",
        "Checks that failed or could not run, by check and reason (see FAILURE CODES).",
    ),
    (
        "vipcheck_xdp_frames_total",
        "Frames seen by the capture program, by iface, hook (xdp or tc) and verdict; \
         from 0 again when the program is loaded again.",
    ),
    ("vipcheck_targets", "Targets checked."),
    (
        "vipcheck_targets_overdue",
        "Targets waiting more than one interval past their due time.",
    ),
    (
        "vipcheck_last_cycle_seconds",
        "Time the last cycle took to check every target once.",
    ),
    ("vipcheck_build_info", "vipcheck's version (label version)."),
];

/// Every failure code and what it means.
const FAILURES: &[(&str, &str)] = &[
    (
        "no_neighbour",
        "No ARP reply (IPv4) or neighbour advertisement (IPv6) from the real server.",
    ),
    ("no_answer", "No SYN-ACK (or reply) through the VIP."),
    (
        "refused",
        "The server refused the connection (RST to the SYN).",
    ),
    (
        "reset",
        "The server reset the connection after the handshake.",
    ),
    (
        "timeout",
        "Connected, then the response did not come whole in time.",
    ),
    (
        "tls",
        "The TLS session failed (certificate, alert, handshake).",
    ),
    (
        "cert_expiring",
        "Only the certificate's expiry within --cert-days failed.",
    ),
    ("status", "The HTTP status is not one expected."),
    (
        "header",
        "An expected header is missing or has another value.",
    ),
    (
        "body",
        "The body failed a validation (digest, --body, regex).",
    ),
    (
        "http",
        "Not an acceptable HTTP response (malformed, too large, ended early).",
    ),
    (
        "port_unreachable",
        "An ICMP port unreachable from the VIP: nothing listens on the port.",
    ),
    (
        "unreachable",
        "Another ICMP error about the check's packet.",
    ),
    (
        "wrong_source",
        "A UDP reply from another address than the VIP.",
    ),
    (
        "reply",
        "The reply is not the one expected (UDP, TCP --expect).",
    ),
    (
        "dns",
        "Not an acceptable DNS reply (RCODE, truncated, malformed, address missing).",
    ),
    ("smtp", "The SMTP dialogue failed."),
    (
        "interrupted",
        "A signal ended the check before its verdict.",
    ),
    ("other", "Any other failure of a check that ran."),
    ("busy", "Could not run: every capture slot is taken."),
    (
        "xdp",
        "Could not run: loading, attaching or using the XDP program failed.",
    ),
    (
        "interface",
        "Could not run: no such interface, or it lacks what the check needs.",
    ),
    (
        "error",
        "Could not run: any other error (privilege, system call).",
    ),
];

/// EXIT STATUS, ENVIRONMENT, FILES (and the daemon's sections), SEE ALSO.
fn extra_sections(name: &str, names: &[String]) -> String {
    let checks = [
        "vipcheck-tcp",
        "vipcheck-http",
        "vipcheck-https",
        "vipcheck-ping",
        "vipcheck-udp",
        "vipcheck-dns",
        "vipcheck-smtp",
    ];
    let c_name = crate::probe::c_line::NAMES.contains(&name);
    let exit = if checks.contains(&name) {
        CHECK_EXIT
    } else if c_name {
        C_EXIT
    } else if name == "vipcheck-audit" {
        AUDIT_EXIT
    } else if name == "vipcheck" {
        "The subcommand's: for a check, 0 healthy, 1 unhealthy, 2 usage \
         error, 3 the check could not run here; see each subcommand's page.\n"
    } else if name == "vipcheck-daemon" {
        "It runs until SIGTERM or SIGINT, then exits 0. It exits 2 when its \
         input cannot be read at start (a reload that fails keeps the \
         targets it has), and 3 when it cannot start (the metrics address \
         taken, the track directory not writable) or no check can run here \
         (not root, no such interface, BPF refused) rather than report real \
         servers down.\n"
    } else {
        TOOL_EXIT
    };
    let mut s = format!(".SH EXIT STATUS\n{exit}");
    let _ = write!(s, ".SH ENVIRONMENT\n{ENVIRONMENT}");
    s.push_str(".SH FILES\n");
    s.push_str(FILES);
    if name == "vipcheck-audit" || name == "vipcheck-daemon" {
        s.push_str(TARGETS_FILE);
    }
    if name == "vipcheck-daemon" {
        s.push_str(&daemon_sections());
    }
    // The top page, its parent and its siblings, every one of which is
    // written with it.
    let parent = name.rsplit_once('-').map(|(p, _)| p.to_string());
    let mut see: Vec<&str> = Vec::new();
    for other in names {
        let other = other.as_str();
        if other == name {
            continue;
        }
        let other_parent = other.rsplit_once('-').map(|(p, _)| p);
        let related = other == "vipcheck"
            || Some(other) == parent.as_deref()
            || (c_name && crate::probe::c_line::NAMES.contains(&other))
            || (c_name && other == "vipcheck-compat")
            || (name == "vipcheck-compat" && crate::probe::c_line::NAMES.contains(&other))
            || (other_parent.is_some() && other_parent == parent.as_deref() && !c_name)
            || other_parent == Some(name);
        if related {
            see.push(other);
        }
    }
    if !see.is_empty() {
        s.push_str(".SH SEE ALSO\n");
        let refs: Vec<String> = see.iter().map(|n| format!(".BR {} (1)", esc(n))).collect();
        // `.BR name (1)` one a line, each but the last followed by a comma.
        for (i, r) in refs.iter().enumerate() {
            if i + 1 < refs.len() {
                let _ = writeln!(s, "{r} ,");
            } else {
                let _ = writeln!(s, "{r}");
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(name: &str) -> String {
        pages()
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no page {name}"))
            .1
    }

    #[test]
    fn every_reference_resolves() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        for (name, text) in &pages {
            assert!(!text.contains("README"), "{name} points to the README");
            for needle in ["EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"] {
                assert!(text.contains(&format!(".SH {needle}")), "{name}: {needle}");
            }
            // Every `page(1)` it names is written too.
            let plain = text
                .replace("\\-", "-")
                .replace(".BR ", "")
                .replace(" (1)", "(1)");
            for word in plain.split(|c: char| c.is_whitespace() || c == ',') {
                if let Some(referenced) = word.strip_suffix("(1)") {
                    assert!(
                        names.contains(&referenced),
                        "{name} names {referenced}(1), not written"
                    );
                }
            }
        }
        assert!(names.contains(&"vipcheck-xdp-attach") && !names.contains(&"vipcheck-help"));
    }

    #[test]
    fn synopses_show_values() {
        let tcp = page("vipcheck-tcp");
        assert!(
            tcp.contains("[\\fB\\-t\\fR|\\fB\\-\\-timeout\\fR \\fIMS\\fR]"),
            "{tcp}"
        );
        assert!(tcp.contains("\\fIIFACE\\fR \\fIREAL_SERVER\\fR"), "{tcp}");
        assert!(page("vipcheck-daemon").contains("[\\fB\\-\\-metrics\\fR \\fIADDR\\fR]"));
        assert!(page("check_tcp_raw").contains(".SH EXIT STATUS"));
    }

    #[test]
    fn daemon_page_documents_metrics_and_failures() {
        let daemon = page("vipcheck-daemon").replace("\\-", "-");
        for failure in crate::failure::Failure::ALL {
            assert!(
                daemon.contains(&format!("\\fB{}\\fR", failure.as_str())),
                "{failure:?}"
            );
        }
        // Every metric the daemon exposes.
        let metrics = crate::daemon::metrics::exposed_names();
        for metric in &metrics {
            assert!(daemon.contains(&format!("\\fB{metric}\\fR")), "{metric}");
        }
        assert_eq!(metrics.len(), METRICS.len());
        assert!(daemon.contains(".SH TRACK FILES"));
    }

    /// `mandoc -Tlint -Wwarning` on every page: nothing to say.
    #[test]
    fn mandoc_lint_is_clean() {
        let dir = std::env::temp_dir().join(format!("vipcheck-man-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let written = man_pages(&dir.join("new")).unwrap();
        let out = std::process::Command::new("mandoc")
            .args(["-Tlint", "-Wwarning"])
            .args(&written)
            .output();
        let _ = std::fs::remove_dir_all(&dir);
        let out = out.expect("mandoc (cargo xtask setup installs it)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success() && text.is_empty(), "{text}");
    }
}
