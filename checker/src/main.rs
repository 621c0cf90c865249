//! The `vipcheck` binary: parse, run, print one line, exit with the
//! documented status. Everything else lives in the library.
//!
//! keepalived starts it hundreds of times a second, so it starts lean:
//! `main` is the C runtime's entry itself (`no_main`), without std's
//! start-up wrapper, whose work for the main thread's stack-overflow
//! message (reading /proc/self/maps, an alternate signal stack, two
//! signal handlers) was about 80 µs of every check's CPU. What of that
//! wrapper matters here, [`main`] does itself.

// unsafe: the process's own setup: SIGPIPE ignored, fds 0-2 opened, the panic hook.
#![allow(unsafe_code)]
#![no_main]

use std::ffi::OsString;
use std::io::Write as _;
use std::os::raw::{c_char, c_int};

use vipcheck::check::dispatch::{self, AuditOptions, TlsConfigs};
use vipcheck::check::verdict::Failure;
use vipcheck::error::Error;
use vipcheck::exit::{EXIT_CANNOT_RUN, EXIT_USAGE};
use vipcheck::front::cli::{Cli, Command, CompatAction, KeepalivedAction, XdpAction};
use vipcheck::front::compat;
use vipcheck::front::output;
use vipcheck::probe::args::{Format, Thresholds};
use vipcheck::probe::c_line::{self, Invoked};
use vipcheck::probe::{Probe, Subject};
use vipcheck::sys::netdev::NetDev;
use vipcheck::{note, say, xdp};

/// Called by the C runtime (glibc gives std the arguments before, through
/// `.init_array`, so `std::env::args_os` works as ever).
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    standard_streams_open();
    // A closed pipe is a write error (ignored by `say!` and `note!`), not
    // death by SIGPIPE, as under std's own start-up.
    // SAFETY: setting a signal's disposition to SIG_IGN has no
    // preconditions; no other thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // A bug must still end in one line and the "cannot run" status, not a
    // backtrace that a keepalived log would mangle.
    std::panic::set_hook(Box::new(|info| {
        note!("vipcheck: internal error: {info}");
    }));
    let code = std::panic::catch_unwind(run).unwrap_or(EXIT_CANNOT_RUN);
    // std flushes stdout when its `main` returns; this one returns to C.
    let _ = std::io::stdout().flush();
    code & 0xff
}

/// As std's start-up: a descriptor 0, 1 or 2 that is closed (a careless
/// parent) is opened on /dev/null, so that no socket or file of the
/// check takes that number and receives its output.
fn standard_streams_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd for the call.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for pfd in fds {
        if pfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: a NUL-terminated path; the descriptor, the lowest
            // free one (this closed number), is kept for the process.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}

fn run() -> i32 {
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
                let keys = vipcheck::daemon::track::track_keys(&loaded.targets);
                say!(
                    "{}",
                    vipcheck::daemon::track::snippet(&track_dir, &keys).trim_end()
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
        Command::Man { dir } => match vipcheck::front::man::man_pages(&dir) {
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
    let http = match dispatch::http_check(target, &TlsConfigs::new(&AuditOptions::default())) {
        Ok(http) => http,
        Err(e) => {
            let (line, code) = output::error(
                &e.to_string(),
                vipcheck::exit::of_error(&e),
                e.failure(),
                None,
                kind,
                format,
            );
            if format == Format::Text {
                note!("{line}");
            } else {
                say!("{line}");
            }
            return code;
        }
    };
    if target.trace.any() {
        output::log_to_stderr();
    }
    let subject = Subject::from(target);
    let (line, code) = match dispatch::once(target, http.as_ref()) {
        Ok(verdict) => output::verdict(&verdict, &subject, kind, format, thresholds),
        Err(e) => {
            let (line, code) = output::error(
                &e.to_string(),
                vipcheck::exit::of_error(&e),
                e.failure(),
                Some(&subject),
                kind,
                format,
            );
            if format == Format::Text {
                note!("{line}");
                return code;
            }
            (line, code)
        }
    };
    say!("{line}");
    code
}

fn audit(args: &vipcheck::front::cli::AuditArgs) -> i32 {
    use vipcheck::front::audit;
    let loaded = match args.input.input().load_checkable() {
        Ok(loaded) => loaded,
        Err(e) => {
            note!("vipcheck: {e}");
            return EXIT_USAGE;
        }
    };
    let options = args.tls.options(usize::from(args.parallel));
    let outcomes = match audit::run(loaded.targets, &options) {
        Ok(outcomes) => outcomes,
        Err(e) => return fail(e),
    };
    let text = match args.format {
        Format::Json => audit::json_lines(&outcomes, &loaded.skipped),
        _ => audit::table(&outcomes, &loaded.skipped),
    };
    {
        use std::io::Write;
        let _ = std::io::stdout().write_all(text.as_bytes());
    }
    audit::exit_code(&outcomes)
}

fn daemon(args: &vipcheck::front::cli::DaemonArgs) -> i32 {
    use vipcheck::daemon::run::{self, DaemonOptions};
    let options = DaemonOptions {
        input: args.input.input(),
        metrics: args.metrics,
        track_dir: args.track_dir.clone(),
        rise: args.rise,
        fall: args.fall,
        parallel: usize::from(args.parallel),
        interval: std::time::Duration::from_millis(args.interval),
        tls: args.tls.options(usize::from(args.parallel)),
    };
    match run::run(options) {
        Ok(code) => code,
        Err(e) => fail(e),
    }
}

fn fail(e: Error) -> i32 {
    note!("vipcheck: {e}");
    vipcheck::exit::of_error(&e)
}

/// clap's errors in one line, in the asked format; help and version as
/// clap prints them.
fn usage(e: clap::Error, args: &[OsString]) -> i32 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return 0;
    }
    let message = vipcheck::front::cli::usage_line(&e, args);
    let format = output::requested_format(args);
    let (line, code) = output::error(&message, EXIT_USAGE, Failure::Error, None, "", format);
    if format == Format::Text {
        note!("{line}");
    } else {
        say!("{line}");
    }
    code
}

fn xdp_command(action: XdpAction) -> Result<(), Error> {
    match action {
        XdpAction::Attach { iface, xdp_mode } => {
            let dev = NetDev::lookup(&iface)?;
            let (_, attach) = xdp::XdpHandle::open_or_attach(&dev, xdp_mode)?;
            if let xdp::Attach::Found(mode) = attach
                && mode != xdp_mode
            {
                return Err(Error::Interface(format!(
                    "vipcheck's XDP program is already attached to {iface} in {} mode, not {}; \
                     to change it: vipcheck xdp detach {iface}, then vipcheck xdp attach \
                     --xdp-mode {} {iface} (checks running on {iface} meanwhile fail)",
                    mode.name(),
                    xdp_mode.name(),
                    xdp_mode.name()
                )));
            }
            print_status(&dev)
        }
        XdpAction::Detach { iface } => {
            let dev = NetDev::lookup(&iface)?;
            if xdp::detach(&dev)? {
                say!("{iface}: vipcheck XDP program detached");
            } else {
                say!("{iface}: no vipcheck XDP program attached");
            }
            Ok(())
        }
        XdpAction::Status { iface: Some(iface) } => print_status(&NetDev::lookup(&iface)?),
        XdpAction::Status { iface: None } => {
            let devs = xdp::attached_here()?;
            if devs.is_empty() {
                say!("no XDP program attached in this network namespace");
            }
            for dev in devs {
                print_status(&dev)?;
            }
            Ok(())
        }
    }
}

fn print_status(dev: &NetDev) -> Result<(), Error> {
    let report = match xdp::status(dev)? {
        xdp::Status::None => {
            say!("{}: no vipcheck XDP program attached", dev.name);
            return Ok(());
        }
        xdp::Status::Foreign(program) => {
            say!(
                "{}: no vipcheck XDP program attached; XDP program {} ({} mode) is another's, \
                 and vipcheck leaves it alone",
                dev.name,
                program.id,
                program.mode
            );
            return Ok(());
        }
        xdp::Status::Ours(report) => report,
    };
    say!(
        "{}: vipcheck XDP program {} attached in {} mode (maps {})",
        dev.name,
        report.program_id,
        report.mode,
        xdp::map_list(&report.maps)
    );
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
