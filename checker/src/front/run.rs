//! What the `vipcheck` binary does once started: the command line read
//! (a C checker's name or shape, else vipcheck's own), the command run,
//! its one line printed, its exit status returned.

use std::ffi::OsString;

use crate::check::dispatch::{self, AuditOptions, TlsConfigs};
use crate::check::verdict::Failure;
use crate::error::Error;
use crate::exit::EXIT_USAGE;
use crate::front::cli::{Cli, Command, CompatAction, KeepalivedAction, XdpAction};
use crate::front::compat;
use crate::front::output;
use crate::probe::args::{Format, Thresholds};
use crate::probe::c_line::{self, Invoked};
use crate::probe::{Probe, Subject};
use crate::sys::netdev::NetDev;
use crate::{note, say, xdp};

pub fn run() -> i32 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let rest = args.get(1..).unwrap_or_default();
    if let Some(name) = args.first().and_then(|a| c_line::invoked_as(a)) {
        return compat::main(name, rest, Invoked::ByName);
    }
    if let Some(name) = c_line::by_shape(rest) {
        return compat::main(name, rest, Invoked::ByShape);
    }
    let cli = match Cli::try_parse_args(&args) {
        Ok(cli) => cli,
        Err(e) => return usage(e, rest),
    };
    match cli.command {
        Command::Tcp(args) => checked(&args.probe(), args.flow.output()),
        Command::Http(args) => checked(&args.probe(), args.flow.output()),
        Command::Https(args) => checked(&args.probe(), args.http.flow.output()),
        Command::Ping(args) => checked(&args.probe(), args.run.output()),
        Command::Udp(args) => checked(&args.probe(), args.flow.output()),
        Command::Dns(args) => checked(&args.probe(), args.flow.output()),
        Command::Smtp(args) => checked(&args.probe(), args.flow.output()),
        Command::Xdp { verbose, action } => {
            if verbose > 0 {
                output::log_to_stderr();
            }
            match xdp_command(action) {
                Ok(()) => 0,
                Err(e) => fail(e),
            }
        }
        Command::Audit(args) => audit(&args),
        Command::Daemon(args) => daemon(&args),
        Command::Keepalived {
            action: KeepalivedAction::Snippet { input, track_dir },
        } => match input.input().load() {
            Ok(loaded) => {
                let keys = crate::daemon::track::track_keys(&loaded.targets);
                say!(
                    "{}",
                    crate::daemon::track::snippet(&track_dir, &keys).trim_end()
                );
                0
            }
            Err(e) => {
                note!("vipcheck: {e}");
                EXIT_USAGE
            }
        },
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            // Into a buffer: clap_complete panics on a write error (a closed pipe).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut command, "vipcheck", &mut script);
            use std::io::Write;
            let _ = std::io::stdout().write_all(&script);
            0
        }
        Command::Man { dir } => match crate::front::man::man_pages(&dir) {
            Ok(pages) => {
                for page in pages {
                    say!("wrote {}", page.display());
                }
                0
            }
            Err(e) => fail(Error::io(
                format!("writing man pages into {}", dir.display()),
                e,
            )),
        },
        Command::Compat {
            action: CompatAction::Install { dir },
        } => match compat::install(&dir) {
            Ok((done, warning)) => {
                for installed in done {
                    match installed {
                        compat::Installed::Created(link) => say!("created {}", link.display()),
                        compat::Installed::Replaced(link) => {
                            say!("replaced {} (a link to an older vipcheck)", link.display());
                        }
                    }
                }
                if let Some(warning) = warning {
                    note!("vipcheck: {warning}");
                }
                0
            }
            Err(e) => fail(e),
        },
    }
}

/// Runs a check and prints its verdict in the asked format; the exit
/// status is the format's. A check that cannot be built (a CA or client
/// file that cannot be read, a TLS name rustls cannot use) is an error
/// with no subject.
fn checked(target: &Probe, (format, thresholds): (Format, Thresholds)) -> i32 {
    let kind = target.check.kind();
    let subject = Subject::from(target);
    let (line, code, failed) =
        match dispatch::http_check(target, &TlsConfigs::new(&AuditOptions::default())) {
            Err(e) => with_error(output::failed(&e, None, kind, format)),
            Ok(http) => {
                if target.trace.any() {
                    output::log_to_stderr();
                }
                match dispatch::once(target, http.as_ref()) {
                    Ok(verdict) => {
                        let (line, code) =
                            output::verdict(&verdict, &subject, kind, format, thresholds);
                        (line, code, false)
                    }
                    Err(e) => with_error(output::failed(&e, Some(&subject), kind, format)),
                }
            }
        };
    // `--pcap -`: stdout carries the capture; the line goes to stderr.
    if crate::engine::trace::pcap_to_stdout(target.pcap.as_deref()) {
        note!("{line}");
    } else {
        print(&line, failed, format);
    }
    code
}

/// A line of an error, marked so.
fn with_error((line, code): (String, i32)) -> (String, i32, bool) {
    (line, code, true)
}

/// A verdict's line on stdout; an error's on stderr as text, on stdout
/// in the formats a program reads (JSON, Nagios).
fn print(line: &str, error: bool, format: Format) {
    if error && format == Format::Text {
        note!("{line}");
    } else {
        say!("{line}");
    }
}

fn audit(args: &crate::front::cli::AuditArgs) -> i32 {
    use crate::front::audit;
    let mut loaded = match args.input.input().load_checkable() {
        Ok(loaded) => loaded,
        Err(e) => {
            note!("vipcheck: {e}");
            return EXIT_USAGE;
        }
    };
    args.capture.apply(&mut loaded.targets);
    let options = args.tls.options(usize::from(args.parallel));
    let outcomes = match audit::run(loaded.targets, &options) {
        Ok(outcomes) => outcomes,
        Err(e) => return fail(e),
    };
    let text = match args.format {
        Format::Json => audit::json_lines(&outcomes, &loaded.skipped),
        Format::Nagios => {
            let (line, code) = audit::nagios_summary(&outcomes, &loaded.skipped);
            say!("{line}");
            return code;
        }
        Format::Text => audit::table(&outcomes, &loaded.skipped),
    };
    {
        use std::io::Write;
        let _ = std::io::stdout().write_all(text.as_bytes());
    }
    audit::exit_code(&outcomes)
}

fn daemon(args: &crate::front::cli::DaemonArgs) -> i32 {
    use crate::daemon::run::{self, DaemonOptions};
    let options = DaemonOptions {
        input: args.input.input(),
        metrics: args.metrics,
        track_dir: args.track_dir.clone(),
        rise: args.rise,
        fall: args.fall,
        parallel: usize::from(args.parallel),
        interval: std::time::Duration::from_millis(args.interval),
        tls: args.tls.options(usize::from(args.parallel)),
        capture: args.capture,
    };
    match run::run(options) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn fail(e: Error) -> i32 {
    note!("vipcheck: {e}");
    crate::exit::of_error(&e)
}

/// clap's errors in one line, in the asked format; help and version as
/// clap prints them.
fn usage(e: clap::Error, args: &[OsString]) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return 0;
    }
    let message = crate::front::cli::usage_line(&e, args);
    let format = output::requested_format(args);
    let (check, known) = known_target(args);
    let (line, code) = output::error_of(
        &message,
        EXIT_USAGE,
        Failure::Error,
        None,
        Some(&known),
        check.unwrap_or_default(),
        format,
    );
    print(&line, true, format);
    code
}

/// What a command line that could not be parsed says of its check: the
/// subcommand's name when it is a check, and the positionals (IFACE,
/// REAL_SERVER, VIP, PORT) that parse; an option's value is not taken
/// for one.
fn known_target(args: &[OsString]) -> (Option<&'static str>, output::KnownTarget) {
    use clap::CommandFactory;
    const CHECKS: [&str; 7] = ["tcp", "http", "https", "ping", "udp", "dns", "smtp"];
    let mut known = output::KnownTarget::default();
    let mut words = args.iter().map(|a| a.to_str().unwrap_or_default());
    // Past the options before the subcommand (-v only).
    let Some(name) = words.by_ref().find(|w| !w.starts_with('-')) else {
        return (None, known);
    };
    let Some(check) = CHECKS.iter().copied().find(|c| *c == name) else {
        return (None, known);
    };
    let command = Cli::command();
    let Some(sub) = command.find_subcommand(check) else {
        return (Some(check), known);
    };
    let takes_value = |word: &str| {
        if word.contains('=') {
            return false;
        }
        sub.get_arguments().any(|a| {
            let named = match word.strip_prefix("--") {
                Some(long) => a.get_long() == Some(long),
                None => word
                    .strip_prefix('-')
                    .and_then(|s| s.chars().last())
                    .is_some_and(|c| a.get_short() == Some(c)),
            };
            named && a.get_action().takes_values()
        })
    };
    let mut positionals = Vec::new();
    let mut options_end = false;
    while let Some(word) = words.next() {
        if options_end || !word.starts_with('-') || word == "-" {
            positionals.push(word);
        } else if word == "--" {
            options_end = true;
        } else if takes_value(word) {
            words.next();
        }
    }
    let ping = check == "ping";
    known.iface = positionals.first().map(ToString::to_string);
    known.real_server = positionals.get(1).and_then(|s| s.parse().ok());
    known.vip = positionals.get(2).and_then(|s| s.parse().ok());
    known.port = if ping {
        None
    } else {
        positionals
            .get(3)
            .and_then(|s| s.parse().ok())
            .filter(|p| *p != 0)
    };
    (Some(check), known)
}

fn xdp_command(action: XdpAction) -> Result<(), Error> {
    match action {
        XdpAction::Attach {
            iface,
            xdp_mode,
            capture,
        } => {
            let dev = NetDev::lookup(&iface)?;
            // Not where every check would refuse (loopback, not Ethernet, down).
            crate::engine::preflight::usable(&dev)?;
            let (_, attach) = xdp::XdpHandle::open_or_attach(&dev, capture, xdp_mode)?;
            if let xdp::Attach::Found(hook) = attach {
                let wanted = match capture {
                    xdp::CaptureHook::Tc => Some(xdp::Hook::Tc),
                    xdp::CaptureHook::Xdp => Some(xdp::Hook::Xdp(xdp_mode)),
                    // An automatic choice takes TC where it was chosen.
                    xdp::CaptureHook::Auto if hook == xdp::Hook::Tc => None,
                    xdp::CaptureHook::Auto => Some(xdp::Hook::Xdp(xdp_mode)),
                };
                if let Some(wanted) = wanted
                    && wanted != hook
                {
                    let again = match wanted {
                        xdp::Hook::Tc => "--capture tc".to_string(),
                        xdp::Hook::Xdp(mode) => format!("--xdp-mode {}", mode.name()),
                    };
                    return Err(Error::Interface(format!(
                        "vipcheck's capture program is already attached to {iface} at {}, not {}; \
                         to change it: vipcheck xdp detach {iface}, then vipcheck xdp attach \
                         {again} {iface} (checks running on {iface} meanwhile fail)",
                        hook.name(),
                        wanted.name(),
                    )));
                }
            }
            print_status(&dev)
        }
        XdpAction::Detach { iface } => {
            let dev = NetDev::lookup(&iface)?;
            match xdp::detach(&dev)? {
                Some(hook) => say!(
                    "{iface}: vipcheck {} program detached",
                    hook.short().to_uppercase()
                ),
                None => say!("{iface}: no vipcheck XDP program attached (nor at TC ingress)"),
            }
            Ok(())
        }
        XdpAction::Status { iface: Some(iface) } => print_status(&NetDev::lookup(&iface)?),
        XdpAction::Status { iface: None } => {
            let devs = xdp::attached_here()?;
            if devs.is_empty() {
                say!("no XDP or TC program attached in this network namespace");
            }
            for dev in devs {
                print_status(&dev)?;
            }
            Ok(())
        }
    }
}

fn print_status(dev: &NetDev) -> Result<(), Error> {
    let ids = |ids: &[u32]| {
        ids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let report = match xdp::status(dev)? {
        xdp::Status::None { xdp, tc } => {
            let mut line = format!(
                "{}: no vipcheck XDP program attached (nor at TC ingress)",
                dev.name
            );
            if let Some(program) = xdp {
                line += &format!(
                    "; XDP program {} ({} mode) is another's, and vipcheck leaves it alone \
                     (checks capture at TC ingress beside it)",
                    program.id, program.mode
                );
            }
            if !tc.is_empty() {
                line += &format!("; TC ingress programs of others: {}", ids(&tc));
            }
            say!("{line}");
            return Ok(());
        }
        xdp::Status::Ours(report) => report,
    };
    match report.hook {
        xdp::Hook::Xdp(mode) => say!(
            "{}: vipcheck XDP program {} attached in {} mode (maps {})",
            dev.name,
            report.program_id,
            mode.name(),
            xdp::map_list(&report.maps)
        ),
        xdp::Hook::Tc => say!(
            "{}: vipcheck TC program {} attached at TC ingress (tcx) (maps {})",
            dev.name,
            report.program_id,
            xdp::map_list(&report.maps)
        ),
    }
    if let Some(program) = report.foreign_xdp {
        say!(
            "  beside XDP program {} ({} mode), another's: it runs first, untouched",
            program.id,
            program.mode
        );
    }
    if !report.foreign_tc.is_empty() {
        say!(
            "  TC ingress programs of others: {}",
            ids(&report.foreign_tc)
        );
    }
    for (counter, value) in &report.counters {
        say!("  {:<16} {value}", counter.name());
    }
    say!("  flows: {}", report.flows.len());
    for (key, slot, owner) in &report.flows {
        let (remote, local) = xdp::endpoints(key);
        let kind = match key.family {
            checker_common::FAMILY_ARP => "arp ",
            checker_common::FAMILY_NDP => "ndp ",
            _ => "",
        };
        let owner = owner.map_or("no owner".to_string(), |o| format!("pid {}", o.pid));
        say!("    {kind}{remote} > {local} (slot {slot}, {owner})");
    }
    for event in &report.events {
        say!("  event: {event}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(words: &[&str]) -> (Option<&'static str>, output::KnownTarget) {
        let args: Vec<OsString> = words.iter().map(Into::into).collect();
        known_target(&args)
    }

    #[test]
    fn a_usage_error_names_what_it_knows() {
        let (check, t) = known(&[
            "tcp",
            "-w",
            "x",
            "--format",
            "json",
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "80",
        ]);
        assert_eq!(check, Some("tcp"));
        assert_eq!(t.iface.as_deref(), Some("eth0"));
        assert_eq!(t.real_server, Some("198.18.0.11".parse().unwrap()));
        assert_eq!(t.vip, Some("198.18.0.100".parse().unwrap()));
        assert_eq!(t.port, Some(80));
        // What does not parse, or is missing: null.
        let (check, t) = known(&["-v", "http", "--format=json", "eth0", "rs.example", "x"]);
        assert_eq!(check, Some("http"));
        assert_eq!((t.real_server, t.vip, t.port), (None, None, None));
        assert_eq!(known(&["xdp", "attach"]), (None, Default::default()));
        // The JSON: the known values, null for the rest.
        let (line, code) = output::error_of(
            "bad",
            EXIT_USAGE,
            Failure::Error,
            None,
            Some(&t),
            check.unwrap_or_default(),
            Format::Json,
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(code, 2);
        assert_eq!(v["check"], "http");
        assert_eq!(v["target"]["iface"], "eth0");
        assert!(v["target"]["real_server"].is_null() && v["target"]["port"].is_null());
        let (line, _) = output::error_of("bad", 2, Failure::Error, None, None, "", Format::Json);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(
            v["check"].is_null() && v["target"]["vip"].is_null(),
            "{line}"
        );
    }
}
