//! The `vipcheck` binary: parse, run, print one line, exit with the
//! documented status. Everything else lives in the library.

use std::process::ExitCode;

use vipcheck::cli::{Cli, Command, XdpAction};
use vipcheck::error::{EXIT_CANNOT_RUN, EXIT_USAGE, Error};
use vipcheck::netdev::NetDev;
use vipcheck::target::Target;
use vipcheck::verdict::Verdict;
use vipcheck::{check, xdp};

fn main() -> ExitCode {
    // A bug must still end in one line and the "cannot run" status, not a
    // backtrace that a keepalived log would mangle.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("vipcheck: internal error: {info}");
    }));
    let code = std::panic::catch_unwind(run).unwrap_or(EXIT_CANNOT_RUN);
    ExitCode::from(code as u8)
}

fn run() -> i32 {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match Cli::try_parse_args(&args) {
        Ok(cli) => cli,
        Err(e) => return usage(e, args.get(1..).unwrap_or_default()),
    };
    match cli.command {
        Command::Tcp(args) => checked(&args.target(), check::tcp::run),
        Command::Http(args) => {
            let http = args.check();
            checked(&args.target(), |target| check::http::run(target, &http))
        }
        Command::Xdp { verbose, action } => {
            init_logging(verbose > 0);
            match xdp_command(action) {
                Ok(()) => 0,
                Err(e) => fail(e),
            }
        }
    }
}

/// Runs a check and prints its verdict line.
fn checked(target: &Target, run: impl FnOnce(&Target) -> Result<Verdict, Error>) -> i32 {
    init_logging(target.trace_frames);
    match run(target) {
        Ok(verdict) => {
            println!("{verdict}");
            verdict.exit_code()
        }
        Err(e) => fail(e),
    }
}

fn fail(e: Error) -> i32 {
    eprintln!("vipcheck: {e}");
    e.exit_code()
}

/// clap's errors in one line; help and version as clap prints them.
fn usage(e: clap::Error, args: &[std::ffi::OsString]) -> i32 {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
            EXIT_USAGE
        } else {
            0
        };
    }
    eprintln!("vipcheck: {}", vipcheck::cli::usage_line(&e, args));
    EXIT_USAGE
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
                println!("{iface}: vipcheck XDP program detached");
            } else {
                println!("{iface}: no vipcheck XDP program attached");
            }
            Ok(())
        }
        XdpAction::Status { iface: Some(iface) } => print_status(&NetDev::lookup(&iface)?),
        XdpAction::Status { iface: None } => {
            let devs = xdp::attached_here()?;
            if devs.is_empty() {
                println!("no XDP program attached in this network namespace");
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
            println!("{}: no vipcheck XDP program attached", dev.name);
            return Ok(());
        }
        xdp::Status::Foreign(program) => {
            println!(
                "{}: no vipcheck XDP program attached; XDP program {} ({} mode) is another's, \
                 and vipcheck leaves it alone",
                dev.name, program.id, program.mode
            );
            return Ok(());
        }
        xdp::Status::Ours(report) => report,
    };
    println!(
        "{}: vipcheck XDP program {} attached in {} mode, pinned at {}",
        dev.name,
        report.program_id,
        report.mode,
        report.pin_dir.display()
    );
    for (counter, value) in &report.counters {
        println!("  {:<16} {value}", counter.name());
    }
    println!("  flows: {}", report.flows.len());
    for (key, slot, owner) in &report.flows {
        let (remote, local) = xdp::endpoints(key);
        let kind = if key.family == checker_common::FAMILY_ARP {
            "arp "
        } else {
            ""
        };
        let owner = owner.map_or("no owner".to_string(), |o| format!("pid {}", o.pid));
        println!("    {kind}{remote} > {local} (slot {slot}, {owner})");
    }
    for event in &report.events {
        println!("  event: {event}");
    }
    Ok(())
}

/// vipcheck's own diagnostics (`log::debug!`) on stderr when frames are
/// traced; not the BPF loader's, which would bury them.
fn init_logging(enabled: bool) {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, metadata: &log::Metadata) -> bool {
            metadata.target().starts_with("vipcheck")
        }
        fn log(&self, record: &log::Record) {
            if self.enabled(record.metadata()) {
                eprintln!("vipcheck: {}", record.args());
            }
        }
        fn flush(&self) {}
    }
    if enabled && log::set_logger(&Stderr).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}
