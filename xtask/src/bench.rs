//! `cargo xtask bench`: the wall time of whole check processes, side by side
//! with the kernel doing the same over its own stack, in one lab and one
//! run (these machines are noisy: compare the ratios, not the numbers).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::lab::{HTTP_PORT, Host, LB_IFACE, Lab, OK_IP, Role, VIP};

/// One contender: a command line run in the LB namespace.
struct Contender {
    name: &'static str,
    program: String,
    args: Vec<String>,
    times: Vec<Duration>,
}

/// Runs each contender `runs` times, interleaved, after a warm-up, and
/// prints the median and 90th percentile of each with its ratio to the first.
pub fn run(vipcheck: &Path, runs: usize, scale_targets: u32) -> Result<()> {
    let lab = Lab::up(Role::Backup)?;
    latency(&lab, vipcheck, runs)?;
    if scale_targets > 0 {
        scale(&lab, vipcheck, scale_targets)?;
    }
    Ok(())
}

fn latency(lab: &Lab, vipcheck: &Path, runs: usize) -> Result<()> {
    let vipcheck = vipcheck.display().to_string();
    let rs = OK_IP.to_string();
    let vip = VIP.to_string();
    let port = HTTP_PORT.to_string();
    let strings = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut contenders = [
        Contender {
            name: "kernel TCP connect (bash /dev/tcp)",
            program: "bash".into(),
            args: strings(&["-c", &format!("exec 3<>/dev/tcp/{rs}/{port}")]),
            times: Vec::new(),
        },
        Contender {
            name: "vipcheck tcp (via the VIP)",
            program: vipcheck.clone(),
            args: strings(&["tcp", LB_IFACE, &rs, &vip, &port]),
            times: Vec::new(),
        },
        Contender {
            name: "curl GET / (kernel, own IP)",
            program: "curl".into(),
            args: strings(&["-sf", "-o", "/dev/null", &format!("http://{rs}/")]),
            times: Vec::new(),
        },
        Contender {
            name: "vipcheck http GET / (via the VIP)",
            program: vipcheck.clone(),
            args: strings(&["http", LB_IFACE, &rs, &vip, &port, "lab.example", "/"]),
            times: Vec::new(),
        },
    ];
    for round in 0..runs + 3 {
        for c in &mut contenders {
            let start = Instant::now();
            let status = lab
                .command(lab.lb_ns(), &c.program)
                .args(&c.args)
                .stdout(Stdio::null())
                .status()
                .with_context(|| format!("cannot run {}", c.program))?;
            let elapsed = start.elapsed();
            if !status.success() {
                bail!("{} failed: {status}", c.name);
            }
            // The first rounds load the XDP program and warm caches.
            if round >= 3 {
                c.times.push(elapsed);
            }
        }
    }
    let baseline = spawn_baseline(lab, runs)?;
    println!("{runs} warm runs each, whole processes started with nsenter, interleaved:");
    println!("{:<36} {:>10} {:>10}", "", "median", "p90");
    println!(
        "{:<36} {:>10} {:>10}",
        "nsenter + /bin/true (process cost)",
        ms(percentile(&baseline, 50)),
        ms(percentile(&baseline, 90))
    );
    for c in &contenders {
        println!(
            "{:<36} {:>10} {:>10}",
            c.name,
            ms(percentile(&c.times, 50)),
            ms(percentile(&c.times, 90))
        );
    }
    let ratio = |a: usize, b: usize| {
        percentile(&contenders[a].times, 50).as_secs_f64()
            / percentile(&contenders[b].times, 50).as_secs_f64()
    };
    println!(
        "median ratios: vipcheck tcp / kernel connect {:.2}, vipcheck http / curl {:.2}",
        ratio(1, 0),
        ratio(3, 2)
    );
    Ok(())
}

fn spawn_baseline(lab: &Lab, runs: usize) -> Result<Vec<Duration>> {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", lab.lb_ns()))
                .arg("true")
                .status()
                .context("cannot run nsenter")?;
            Ok(start.elapsed())
        })
        .collect()
}

fn percentile(times: &[Duration], p: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The VIPs of the scale runs: one prefix on `ok`'s loopback (every
/// address of a prefix on `lo` is local), from .1.
const SCALE_PREFIX: &str = "198.19.0.0/21";
const SCALE_FIRST: [u8; 4] = [198, 19, 0, 1];
/// The ports nginx listens on in the lab.
const SCALE_PORTS: [u16; 5] = [80, 443, 8443, 8444, 8445];
/// One-shot processes at once, as keepalived would run many MISC_CHECKs.
const ONE_SHOTS_AT_ONCE: usize = 32;
/// The daemon's interval in its run.
const DAEMON_INTERVAL_MS: u64 = 5000;

/// `n` TCP targets through `ok`: (VIP, port).
fn scale_targets(n: u32) -> Vec<(std::net::Ipv4Addr, u16)> {
    let first = u32::from(std::net::Ipv4Addr::from(SCALE_FIRST));
    (0..n)
        .map(|i| {
            let ports = SCALE_PORTS.len() as u32;
            (
                std::net::Ipv4Addr::from(first + i / ports),
                SCALE_PORTS[(i % ports) as usize],
            )
        })
        .collect()
}

/// Many checks from one process against as many one-shot processes: `n`
/// TCP checks as one `vipcheck audit`, then as `n` `vipcheck tcp`
/// processes 32 at a time; then a daemon with the `n` targets every 5 s.
fn scale(lab: &Lab, vipcheck: &Path, n: u32) -> Result<()> {
    let status = lab
        .command(lab.ns(Host::Ok), "ip")
        .args(["address", "add", SCALE_PREFIX, "dev", "lo"])
        .status()?;
    if !status.success() {
        bail!("cannot add {SCALE_PREFIX} to ok's lo");
    }
    let targets = scale_targets(n);
    let dir = std::env::temp_dir().join(format!("vck-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("targets.toml");
    let mut toml = format!(
        "[defaults]\niface = \"{LB_IFACE}\"\ncheck = \"tcp\"\ntimeout_ms = 1000\ninterval_ms = {DAEMON_INTERVAL_MS}\n"
    );
    for (vip, port) in &targets {
        toml += &format!(
            "[[vip]]\naddress = \"{vip}\"\nport = {port}\n[[vip.real_server]]\naddress = \"{OK_IP}\"\n"
        );
    }
    std::fs::write(&file, toml)?;
    let result = scale_runs(lab, vipcheck, &file, &targets);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// What a group of processes used.
struct Used {
    wall: Duration,
    cpu: Duration,
    max_rss_kib: u64,
    failed: usize,
    begun: Instant,
}

fn scale_runs(
    lab: &Lab,
    vipcheck: &Path,
    file: &Path,
    targets: &[(std::net::Ipv4Addr, u16)],
) -> Result<()> {
    let n = targets.len();
    let rs = OK_IP.to_string();
    // One audit.
    let audit = crate::lab::netns::run_in(lab.lb_ns(), || {
        let mut used = Used::start();
        let child = Command::new(vipcheck)
            .args(["audit", "--targets"])
            .arg(file)
            .args(["--parallel", "256"])
            .stdout(Stdio::null())
            .spawn()?;
        used.wait(child)?;
        Ok(used.end())
    })?;
    // The same checks as one-shot processes, 32 at a time.
    let one_shots = crate::lab::netns::run_in(lab.lb_ns(), || {
        let mut used = Used::start();
        let mut running = std::collections::VecDeque::new();
        for (vip, port) in targets {
            if running.len() >= ONE_SHOTS_AT_ONCE
                && let Some(child) = running.pop_front()
            {
                used.wait(child)?;
            }
            running.push_back(
                Command::new(vipcheck)
                    .args(["tcp", "-t", "1000", LB_IFACE, &rs])
                    .arg(vip.to_string())
                    .arg(port.to_string())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
        }
        for child in running {
            used.wait(child)?;
        }
        Ok(used.end())
    })?;
    println!();
    println!(
        "{n} TCP checks through the VIP ({} VIPs x {} ports on one real server):",
        n.div_ceil(SCALE_PORTS.len()),
        SCALE_PORTS.len()
    );
    println!(
        "{:<34} {:>9} {:>10} {:>11} {:>9} {:>7}",
        "", "wall", "checks/s", "CPU/check", "peak RSS", "failed"
    );
    for (name, used) in [
        ("one vipcheck audit (--parallel 256)", &audit),
        ("one-shot vipcheck tcp, 32 at once", &one_shots),
    ] {
        println!(
            "{:<34} {:>7.2} s {:>10.0} {:>8.0} us {:>5} MiB {:>7}",
            name,
            used.wall.as_secs_f64(),
            n as f64 / used.wall.as_secs_f64(),
            used.cpu.as_secs_f64() * 1e6 / n as f64,
            used.max_rss_kib / 1024,
            used.failed
        );
    }
    println!(
        "CPU per check, one-shots / audit: {:.1}x; wall: {:.1}x",
        one_shots.cpu.as_secs_f64() / audit.cpu.as_secs_f64(),
        one_shots.wall.as_secs_f64() / audit.wall.as_secs_f64()
    );

    // The daemon: the same targets every 5 s, measured over two intervals
    // after the first (which spreads the starts).
    let mut daemon = lab
        .command(lab.lb_ns(), vipcheck)
        .args(["daemon", "--targets"])
        .arg(file)
        .args(["--parallel", "128"])
        .stderr(Stdio::null())
        .spawn()?;
    // nsenter execs vipcheck: the child's pid is the daemon's.
    let pid = daemon.id();
    std::thread::sleep(Duration::from_millis(DAEMON_INTERVAL_MS + 1000));
    let (cpu0, t0) = (process_cpu(pid), Instant::now());
    std::thread::sleep(Duration::from_millis(2 * DAEMON_INTERVAL_MS));
    let share = (process_cpu(pid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    println!(
        "daemon, {n} targets every {} s: {:.1}% of one core ({:.0} us of CPU per check), peak RSS {hwm}",
        DAEMON_INTERVAL_MS / 1000,
        share * 100.0,
        share * 1e6 * DAEMON_INTERVAL_MS as f64 / 1000.0 / n as f64
    );
    Ok(())
}

impl Used {
    fn start() -> Used {
        Used {
            wall: Duration::ZERO,
            cpu: Duration::ZERO,
            max_rss_kib: 0,
            failed: 0,
            begun: Instant::now(),
        }
    }

    /// Waits for `child` with wait4: its CPU time and peak RSS are its own.
    // Reaped here by wait4, which std's Child cannot do (it needs the rusage).
    #[allow(clippy::zombie_processes)]
    fn wait(&mut self, child: std::process::Child) -> std::io::Result<()> {
        let mut status = 0;
        // SAFETY: rusage is plain data; zeroed is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waits for our own child, writing into valid locals.
        let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        if pid < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let tv = |t: libc::timeval| {
            Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
        };
        self.cpu += tv(usage.ru_utime) + tv(usage.ru_stime);
        self.max_rss_kib = self.max_rss_kib.max(usage.ru_maxrss as u64);
        if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
            self.failed += 1;
        }
        Ok(())
    }

    fn end(mut self) -> Used {
        self.wall = self.begun.elapsed();
        self
    }
}

/// User + system CPU of a live process, from /proc/PID/stat.
fn process_cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 1000 / hz)
}
