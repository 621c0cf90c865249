//! `cargo xtask`: developer tasks of the vipcheck workspace.

use std::path::PathBuf;
use std::process::{Command, ExitCode, ExitStatus};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use xtask::lab::{self, Host, LB_IFACE, Lab, Owner, Role, VIP};

#[derive(Parser)]
#[command(about = "Developer tasks of the vipcheck workspace")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install the nightly rust-src, bpf-linker and the Debian packages the
    /// build, the lab and the tests need (only what is missing).
    Setup,
    /// The demo lab in network namespaces `vck-demo-*`.
    Lab {
        #[command(subcommand)]
        action: LabAction,
    },
    /// Setup, then `cargo fmt --check`, clippy, the workspace's tests and
    /// each fuzz target for a few seconds: what CI runs.
    Test {
        /// Passed on to `cargo test --workspace`, e.g.
        /// `cargo xtask test -- -p checker -- --nocapture`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the release binary and check the lab's real servers with it.
    Demo,
    /// The checker's modules against its layers (ARCHITECTURE.md): every
    /// cycle between modules, every import of a higher layer.
    Layers,
    /// The release binary, the C checkers' names linked to it, man pages and
    /// shell completions in target/dist/ (CARGO_TARGET_DIR/dist/).
    Dist {
        /// Also build target/dist/vipcheck_VERSION_ARCH.deb (with a systemd
        /// unit, neither enabled nor started at install) and
        /// vipcheck-dbgsym_VERSION_ARCH.deb (its debug information).
        #[arg(long)]
        deb: bool,
        /// Stage in DIR instead of target/dist/ (DIR must not exist or be
        /// empty; target/dist/ is emptied first).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// Run the fuzz targets of the parsers (fuzz/: cargo-fuzz, nightly,
    /// AddressSanitizer) from their seed corpus; fails if any crashes.
    Fuzz {
        /// How long each target runs.
        #[arg(long, value_name = "N", default_value_t = 60)]
        seconds: u64,
        /// Only this target (default: all of fuzz/fuzz_targets/).
        #[arg(value_name = "TARGET")]
        target: Option<String>,
    },
    /// Time whole warm checks against the kernel doing the same (release build).
    Bench {
        /// Runs of each contender of the warm rows.
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Targets of the scale runs (one audit, as many one-shot
        /// processes, a daemon); 0 skips them.
        #[arg(long, default_value_t = 10_000)]
        scale: u32,
        /// A dry run: few repetitions, 1,000 scale targets, results in
        /// target/bench-quick/ (the test command runs it).
        #[arg(long)]
        quick: bool,
        /// Only this part, results in target/no-pgo/HOST/bench-only/
        /// (bench/ keeps the last full run): lb-traffic, the cost to the
        /// LB's own traffic by capture mode.
        #[arg(long, value_name = "PART", value_parser = ["lb-traffic"])]
        only: Option<String>,
    },
    /// The floors of the bench, as processes of their own (hidden).
    #[command(hide = true)]
    Floor {
        /// empty, af-packet, connect ADDR:PORT, or udp ADDR:PORT (one
        /// exchange with an echo service).
        what: String,
        addr: Option<String>,
    },
}

#[derive(Subcommand)]
enum LabAction {
    /// Build the demo lab and leave it running.
    Up {
        #[arg(long, value_enum, default_value_t = Role::Backup)]
        role: Role,
    },
    /// Remove the demo lab and labs left by processes that died.
    Down,
    /// List the labs on this machine with their addresses.
    Status,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => xtask::setup::run().map(|()| ExitCode::SUCCESS),
        Task::Lab { action } => lab_task(action).map(|()| ExitCode::SUCCESS),
        Task::Test { args } => test(&args),
        Task::Demo => demo(),
        Task::Layers => layers(),
        Task::Dist { deb, out } => dist(deb, out),
        Task::Fuzz { seconds, target } => fuzz(seconds, target.as_deref()),
        Task::Bench {
            runs,
            scale,
            quick,
            only,
        } => bench(runs, scale, quick, only),
        Task::Floor { what, addr } => floor(&what, addr.as_deref()),
    };
    result.unwrap_or_else(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

fn lab_task(action: LabAction) -> Result<()> {
    match action {
        LabAction::Up { role } => {
            let lab = Lab::up_demo(role)?;
            print_lab(&lab);
            lab.keep();
        }
        LabAction::Down => {
            xtask::require_root("`cargo xtask lab down` (network namespaces)")?;
            let removed = lab::down_all()?;
            if removed.is_empty() {
                println!("no lab to remove");
            }
            for id in removed {
                println!("removed lab {id}");
            }
        }
        LabAction::Status => print_status(),
    }
    Ok(())
}

fn print_lab(lab: &Lab) {
    println!("lab up, LB role {}:", lab.role());
    for host in Host::ALL {
        println!(
            "  {:<7} {:<13} {:<15} {:<21} {}  {}",
            host.name(),
            lab.ns(host),
            format!("{}/{}", host.ip(), lab::PREFIX_LEN),
            format!("{}/{}", host.ip6(), lab::PREFIX6_LEN),
            lab.mac(host),
            match host {
                Host::Lb if lab.role() == Role::Master => "VIP on eth0",
                Host::Lb => "VIP absent",
                Host::Ok => "VIP on lo, nginx",
                Host::NoVip => "nginx, no VIP",
                Host::Closed => "VIP on lo, port 80 closed",
            }
        );
    }
    println!("  {:<7} {:<13} bridge br0", "switch", lab.switch_ns());
    println!(
        "VIP {VIP} and {}; no host has {} nor {}",
        lab::VIP6,
        lab::ABSENT_IP,
        lab::ABSENT_IP6
    );
    println!(
        "CA of the HTTPS ports (vipcheck https --ca): {}",
        lab.ca_pem().display()
    );
    println!(
        "try: nsenter --net=/run/netns/{} curl -s http://{}/",
        lab.lb_ns(),
        lab::OK_IP
    );
    println!("remove: cargo xtask lab down");
}

fn print_status() {
    let labs = lab::list();
    if labs.is_empty() {
        println!("no lab");
    }
    for info in labs {
        let owner = match info.owner {
            Owner::Demo => "demo".to_owned(),
            Owner::Process(pid) if info.owner.is_alive() => format!("process {pid}"),
            Owner::Process(pid) => {
                format!("process {pid}, dead (`cargo xtask lab down` removes it)")
            }
        };
        println!("lab {} ({owner})", info.id);
        println!(
            "  VIP {VIP} and {}; CA (vipcheck https --ca): {}",
            lab::VIP6,
            info.ca_pem().display()
        );
        for ns in &info.namespaces {
            // IPv4 and the global IPv6 addresses (not the link-local ones).
            let addresses = Command::new("ip")
                .args(["-n", ns, "-br", "address", "show", "scope", "global"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            println!("  {ns}");
            for line in addresses.lines() {
                println!("    {line}");
            }
        }
    }
}

fn workspace_root() -> PathBuf {
    let xtask_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir
        .parent()
        .expect("xtask is in the workspace")
        .to_owned()
}

fn cargo(args: &[&str]) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(workspace_root());
    cmd
}

/// Runs the steps in order; the first that fails ends the run with its
/// exit status.
fn run_steps(steps: Vec<Command>) -> Result<ExitCode> {
    for mut step in steps {
        let status = step
            .status()
            .with_context(|| format!("cannot run {step:?}"))?;
        if !status.success() {
            eprintln!("xtask: {step:?} failed ({status})");
            return Ok(exit_code(status));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_code(status: ExitStatus) -> ExitCode {
    let code = status.code().unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn test(args: &[String]) -> Result<ExitCode> {
    xtask::require_root("`cargo xtask test` (apt-get, the tests' labs)")?;
    xtask::setup::run()?;
    // The eBPF crate only builds for the BPF target: it is linted there
    // (as aya's template does) and has no host tests.
    let mut test = cargo(&["test", "--workspace", "--exclude", "checker-ebpf"]);
    test.args(args);
    let code = run_steps(vec![
        cargo(&["fmt", "--all", "--check"]),
        cargo(&[
            "clippy",
            "--workspace",
            "--exclude",
            "checker-ebpf",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
        cargo(&[
            "+nightly",
            "clippy",
            "--package",
            "checker-ebpf",
            "--target",
            "bpfel-unknown-none",
            "-Z",
            "build-std=core",
            "--target-dir",
            "target/bpf-clippy",
            "--",
            "-D",
            "warnings",
        ]),
        test,
        // The bench harness, dry (few runs; nothing judged): it must work.
        cargo(&["xtask", "bench", "--quick"]),
    ])?;
    if code != ExitCode::SUCCESS {
        return Ok(code);
    }
    run_fuzz(TEST_FUZZ_SECONDS, None)
}

/// How long `cargo xtask test` runs each fuzz target (the fuzz build with
/// AddressSanitizer takes longer than all of them together).
const TEST_FUZZ_SECONDS: u64 = 10;

/// `cargo xtask fuzz`: the tools it needs (no root), then the targets.
fn fuzz(seconds: u64, target: Option<&str>) -> Result<ExitCode> {
    xtask::setup::fuzz_tools()?;
    run_fuzz(seconds, target)
}

/// Runs the fuzz targets; failure if any crashed, timed out or ran out of
/// memory.
fn run_fuzz(seconds: u64, target: Option<&str>) -> Result<ExitCode> {
    let outcomes = xtask::fuzz::run(&workspace_root(), seconds, target)?;
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| o.failed)
        .map(|o| o.target.as_str())
        .collect();
    if failed.is_empty() {
        let n = outcomes.len();
        println!(
            "fuzz: no crash in {n} target{}",
            if n == 1 { "" } else { "s" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "fuzz: {} of {} targets crashed: {}",
        failed.len(),
        outcomes.len(),
        failed.join(", ")
    );
    Ok(ExitCode::FAILURE)
}

/// Setup, the release build of vipcheck (see `xtask::release`: static,
/// with a profile of its own checks), and the path of the binary
/// (`Err(exit)` if a build failed). The demo, the bench and `dist` (the
/// .deb) all take this one; `pgo: false` (the bench's dry run) builds
/// without a profile.
fn release_build(pgo: bool) -> Result<Result<PathBuf, ExitCode>> {
    xtask::setup::run()?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let plan = xtask::release::Plan::new(target, pgo)?;
    if plan.pgo() {
        let built = run_steps(vec![plan.instrumented_build(&workspace_root())])?;
        if built != ExitCode::SUCCESS {
            return Ok(Err(built));
        }
        xtask::release::train(&plan)?;
    }
    let built = run_steps(vec![plan.final_build(&workspace_root())])?;
    if built != ExitCode::SUCCESS {
        return Ok(Err(built));
    }
    let vipcheck = plan.binary();
    if !vipcheck.is_file() {
        bail!("{} is missing after the release build", vipcheck.display());
    }
    Ok(Ok(vipcheck))
}

fn dist(deb: bool, out: Option<PathBuf>) -> Result<ExitCode> {
    if let Some(dir) = &out {
        let used = std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some());
        if used {
            bail!("{} is not empty", dir.display());
        }
    }
    let vipcheck = match release_build(true)? {
        Ok(path) => path,
        Err(code) => return Ok(code),
    };
    let dist = if let Some(dir) = out {
        dir
    } else {
        // Not beside the binary (`TARGET/TRIPLE/release/`): where the
        // README says.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace_root().join("target"), PathBuf::from);
        let dist = xtask::dist::default_dir(&target);
        let _ = std::fs::remove_dir_all(&dist);
        dist
    };
    xtask::dist::stage(&vipcheck, &dist)?;
    println!("{}", dist.display());
    if deb {
        let package = xtask::dist::deb(&dist)?;
        println!("{}", package.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's last part: a keepalived.conf of the lab's real servers, and
/// `vipcheck audit` answering which of them drop VIP traffic (exit 1:
/// some do). Whether the exit status was the expected one.
fn demo_audit(lab: &Lab, vipcheck: &std::path::Path) -> Result<bool> {
    let dir = std::env::temp_dir().join(format!("vck-demo-audit-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("keepalived.conf");
    let real = |host: Host, check: &str| {
        format!(
            "    real_server {} {} {{\n        {check}\n    }}\n",
            host.ip(),
            lab::HTTP_PORT
        )
    };
    let http = "HTTP_GET {\n            url {\n                path /\n                status_code 200\n            }\n            connect_timeout 1\n        }";
    let tcp = "TCP_CHECK {\n            connect_timeout 1\n        }";
    std::fs::write(
        &conf,
        format!(
            "virtual_server {VIP} {} {{\n    lb_kind DR\n    protocol TCP\n    delay_loop 5\n{}{}{}}}\n\
             virtual_server fwmark 7 {{\n{}}}\n",
            lab::HTTP_PORT,
            real(Host::Ok, http),
            real(Host::NoVip, http),
            real(Host::Closed, tcp),
            real(Host::Ok, tcp),
        ),
    )?;
    println!();
    println!(
        "# vipcheck audit --keepalived keepalived.conf   (which real servers drop VIP traffic?)"
    );
    let out = lab
        .command(lab.lb_ns(), vipcheck)
        .arg("audit")
        .arg("--keepalived")
        .arg(&conf)
        .output()
        .with_context(|| format!("cannot run {}", vipcheck.display()))?;
    let _ = std::fs::remove_dir_all(&dir);
    print!(
        "{}",
        String::from_utf8_lossy(&out.stdout).replace(&format!("{}/", dir.display()), "")
    );
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    Ok(out.status.code() == Some(1))
}

fn layers() -> Result<ExitCode> {
    let holds = xtask::layers::run(&workspace_root().join("checker/src"))?;
    Ok(if holds {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn bench(runs: usize, scale: u32, quick: bool, only: Option<String>) -> Result<ExitCode> {
    xtask::require_root("`cargo xtask bench` (apt-get, the lab)")?;
    // An older vipcheck measured beside this one (before a refactor).
    let baseline = std::env::var_os("VIPCHECK_BENCH_BASELINE")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(path) = &baseline
        && !path.is_file()
    {
        bail!("VIPCHECK_BENCH_BASELINE: {} is not a file", path.display());
    }
    // A quick run measures nothing: any optimized build does. It takes the
    // profile-guided one when one was made (in `cargo xtask test`, the
    // .deb test has just made it: a third release build would cost CI
    // minutes), else one build without a profile instead of two. A part
    // that measures the kernel and the XDP program, not the userspace
    // build (lb-traffic), takes the build without a profile: a profiled
    // one trains again and rebuilds at every run.
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| workspace_root().join("target"), PathBuf::from);
    let pgo = only.is_none() && (!quick || xtask::release::Plan::new(target_dir, true)?.profiled());
    let vipcheck = match release_build(pgo)? {
        Ok(path) => path,
        Err(code) => return Ok(code),
    };
    let target = vipcheck
        .parent()
        .and_then(|release| release.parent())
        .context("the release binary has no target directory")?
        .to_path_buf();
    let options = xtask::bench::Options {
        runs: if quick { 3 } else { runs },
        scale: if quick { scale.min(1000) } else { scale },
        quick,
        out: if only.is_some() {
            target.join("bench-only")
        } else if quick {
            target.join("bench-quick")
        } else {
            workspace_root().join("bench")
        },
        c_checkers: std::env::var_os("VIPCHECK_BENCH_C").map(PathBuf::from),
        baseline,
        only,
        xtask: std::env::current_exe().context("this xtask's path")?,
    };
    xtask::bench::run(&vipcheck, &options)?;
    Ok(ExitCode::SUCCESS)
}

/// The bench's floors: what a process costs that does nothing, that opens
/// and closes an AF_PACKET socket (the kernel then waits for an RCU grace
/// period), or that makes a kernel TCP connection.
#[allow(unsafe_code)] // socket(2) and close(2), for the AF_PACKET floor
fn floor(what: &str, addr: Option<&str>) -> Result<ExitCode> {
    match what {
        "empty" => {}
        "af-packet" => {
            // SAFETY: plain socket(2); the fd is closed right after.
            let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
            if fd < 0 {
                bail!("AF_PACKET: {}", std::io::Error::last_os_error());
            }
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
        }
        "connect" => {
            let addr: std::net::SocketAddr = addr.context("connect needs ADDR:PORT")?.parse()?;
            std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(10))?;
        }
        "udp" => {
            // One datagram to an echo service, its echo back.
            let addr: std::net::SocketAddr = addr.context("udp needs ADDR:PORT")?.parse()?;
            let socket = std::net::UdpSocket::bind(if addr.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            })?;
            socket.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
            socket.connect(addr)?;
            socket.send(b"vipcheck bench")?;
            let mut buf = [0u8; 64];
            let n = socket.recv(&mut buf)?;
            if buf[..n] != *b"vipcheck bench" {
                bail!("a wrong echo from {addr}");
            }
        }
        other => bail!("no floor {other:?}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// One check of the demo: server, check, over IPv6, port, the arguments
/// after the port, the expected exit status.
type DemoCheck<'a> = (Host, &'a str, bool, Option<u16>, &'a [&'a str], i32);

fn demo() -> Result<ExitCode> {
    xtask::require_root("`cargo xtask demo` (apt-get, the lab)")?;
    let vipcheck = match release_build(true)? {
        Ok(path) => path,
        Err(code) => return Ok(code),
    };
    let lab = Lab::up(Role::Backup)?;
    println!(
        "backup LB (VIP {VIP} and {} only on the real servers); `vipcheck CHECK {LB_IFACE} RS VIP PORT ...`:",
        lab::VIP6
    );
    println!(
        "{:<7} {:<18} {:<5} {:>8} {:>4}  verdict",
        "server", "address", "check", "expected", "exit"
    );
    let mut as_expected = true;
    let services = lab.start_services()?;
    let http_args: &[&str] = &["lab.example", "/"];
    let (http, https) = (Some(lab::HTTP_PORT), Some(lab::HTTPS_PORT));
    let (dns, echo) = (Some(lab::DNS_PORT), Some(lab::UDP_ECHO_PORT));
    let checks: [DemoCheck; 18] = [
        (Host::Ok, "tcp", false, http, &[], 0),
        (Host::NoVip, "tcp", false, http, &[], 1),
        (Host::Closed, "tcp", false, http, &[], 1),
        (Host::Ok, "http", false, http, http_args, 0),
        (Host::NoVip, "http", false, http, http_args, 1),
        (Host::Ok, "https", false, https, http_args, 0),
        (Host::Ok, "tcp", true, http, &[], 0),
        (Host::NoVip, "tcp", true, http, &[], 1),
        (Host::Ok, "https", true, https, http_args, 0),
        (Host::Ok, "ping", false, None, &[], 0),
        (Host::NoVip, "ping", false, None, &[], 1),
        (Host::Ok, "dns", false, dns, &[], 0),
        (Host::Closed, "dns", false, dns, &[], 1),
        (Host::Ok, "dns", true, dns, &[], 0),
        (Host::Ok, "udp", false, echo, &[], 0),
        (Host::Ok, "smtp", false, Some(lab::SMTP_PORT), &[], 0),
        (Host::NoVip, "smtp", false, Some(lab::SMTP_PORT), &[], 1),
        (
            Host::Ok,
            "udp",
            false,
            Some(lab::UDP_WRONG_SOURCE_PORT),
            &[],
            1,
        ),
    ];
    for (host, check, v6, port, after, expected) in checks {
        let (rs, vip) = if v6 {
            (host.ip6().to_string(), lab::VIP6.to_string())
        } else {
            (host.ip().to_string(), VIP.to_string())
        };
        let mut cmd = lab.command(lab.lb_ns(), &vipcheck);
        cmd.arg(check);
        match check {
            "https" => {
                cmd.arg("--ca").arg(lab.ca_pem());
            }
            "udp" => {
                cmd.args(["--send", "hello"]);
            }
            _ => {}
        }
        cmd.args([LB_IFACE, &rs, &vip]);
        cmd.args(port.map(|p| p.to_string()));
        cmd.args(after);
        let out = cmd
            .output()
            .with_context(|| format!("cannot run {}", vipcheck.display()))?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let verdict = match stdout.trim() {
            "" => format!("(stderr) {}", stderr.trim()),
            line => line.to_owned(),
        };
        let exit = out
            .status
            .code()
            .map_or_else(|| out.status.to_string(), |c| c.to_string());
        as_expected &= out.status.code() == Some(expected);
        println!(
            "{:<7} {:<18} {check:<5} {expected:>8} {exit:>4}  {verdict}",
            host.name(),
            rs
        );
    }
    as_expected &= demo_audit(&lab, &vipcheck)?;
    drop(services);
    drop(lab);
    if !as_expected {
        eprintln!("demo: an exit status differs from the expected one");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn test_passes_extra_arguments_on() {
        let cli = Cli::parse_from(["xtask", "test", "--", "-p", "checker", "--", "--nocapture"]);
        let Task::Test { args } = cli.task else {
            panic!("not the test task");
        };
        assert_eq!(args, ["-p", "checker", "--", "--nocapture"]);
    }

    #[test]
    fn lab_up_takes_a_role() {
        let cli = Cli::parse_from(["xtask", "lab", "up", "--role", "master"]);
        let Task::Lab {
            action: LabAction::Up { role },
        } = cli.task
        else {
            panic!("not lab up");
        };
        assert_eq!(role, Role::Master);
    }

    #[test]
    fn fuzz_takes_seconds_and_a_target() {
        let cli = Cli::parse_from(["xtask", "fuzz"]);
        assert!(matches!(
            cli.task,
            Task::Fuzz {
                seconds: 60,
                target: None
            }
        ));
        let cli = Cli::parse_from(["xtask", "fuzz", "--seconds", "5", "frames"]);
        let Task::Fuzz { seconds, target } = cli.task else {
            panic!("not fuzz");
        };
        assert_eq!((seconds, target.as_deref()), (5, Some("frames")));
    }

    #[test]
    fn dist_takes_deb_and_out() {
        let cli = Cli::parse_from(["xtask", "dist"]);
        assert!(matches!(
            cli.task,
            Task::Dist {
                deb: false,
                out: None
            }
        ));
        let cli = Cli::parse_from(["xtask", "dist", "--deb", "--out", "/tmp/d"]);
        let Task::Dist { deb, out } = cli.task else {
            panic!("not dist");
        };
        assert!(deb);
        assert_eq!(out, Some(PathBuf::from("/tmp/d")));
    }
}
