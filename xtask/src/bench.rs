//! `cargo xtask bench`: vipcheck side by side with the kernel doing the
//! same, in one lab and one run, interleaved so that machine noise hits
//! every row alike (these machines are noisy: compare the ratios). Writes
//! `bench/results.json`, `bench/results.md`, `bench/latency.svg` and
//! `bench/lb-traffic.svg` (`--quick`: a dry run with few repetitions, into
//! `target/bench-quick/`, which the test command runs to prove the harness
//! works; `--only lb-traffic`: that part alone, into `target/bench-only/`).
//!
//! `VIPCHECK_BENCH_C=DIR` adds the rows of the C checkers in DIR.
//! `VIPCHECK_BENCH_BASELINE=PATH` adds an older vipcheck binary (e.g. one
//! built by `cargo xtask dist` at the commit before a refactor) beside the
//! current build, interleaved with it in the same rounds: rows "… (baseline)"
//! in the warm tcp/http/https and memory, one-shot CPU, cold and scale
//! (audit) groups, and in the LB traffic modes (the program attached by
//! it). Unset, the output is as without it.

// unsafe: libc calls (namespaces, signals, process accounting), each with a SAFETY line.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::lab::{
    DNS_NAME, DNS_PORT, HTTP_PORT, HTTPS_PORT, Host, LB_IFACE, Lab, OK_IP, Role, UDP_ECHO_PORT,
    UDP_WRONG_SOURCE_PORT, VIP,
};

/// How a bench runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Runs of each contender of the warm rows.
    pub runs: usize,
    /// Targets of the scale runs; 0 skips them.
    pub scale: u32,
    /// Fewer runs everywhere, results into `out`; nothing is judged.
    pub quick: bool,
    /// Where the results go.
    pub out: PathBuf,
    /// The C checkers' binaries (`VIPCHECK_BENCH_C`), for their rows.
    pub c_checkers: Option<PathBuf>,
    /// An older vipcheck binary (`VIPCHECK_BENCH_BASELINE`), measured
    /// beside the current one in rows of its own.
    pub baseline: Option<PathBuf>,
    /// Only this part of the bench (`lb-traffic`); none: all of it.
    pub only: Option<String>,
    /// This xtask binary, whose hidden `floor` command gives the floors
    /// (an empty process; one that opens and closes an AF_PACKET socket;
    /// a kernel TCP connect).
    pub xtask: PathBuf,
}

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub group: String,
    pub name: String,
    pub runs: usize,
    pub min_ms: f64,
    pub median_ms: f64,
    pub p99_ms: f64,
    /// Median over the group's reference row's median.
    pub ratio: Option<f64>,
    /// Median CPU (user + system) per run.
    pub cpu_ms: Option<f64>,
    /// Median time the check reported itself (vipcheck's verdict).
    pub in_process_ms: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// Runs that failed (only where failing is a measured outcome: under
    /// loss); their wall time is counted.
    #[serde(skip_serializing_if = "is_zero")]
    pub failed: usize,
    #[serde(skip)]
    pub samples: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    quick: bool,
    rows: Vec<Row>,
    /// The cost to the LB's own traffic, by capture mode.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    lb_traffic: Vec<LbRow>,
    notes: Vec<String>,
}

/// A command line run in the LB namespace, and what its runs measured.
struct Contender {
    group: &'static str,
    name: String,
    program: PathBuf,
    args: Vec<String>,
    /// The group's reference (ratios are to it).
    reference: bool,
    /// Parse the verdict's own time from stdout.
    verdict_time: bool,
    /// The ratio is to this row of the group (default: its reference).
    against: Option<String>,
    wall: Vec<Duration>,
    cpu: Vec<Duration>,
    in_process: Vec<Duration>,
    max_rss_kib: u64,
    /// A failed run is recorded, not fatal.
    may_fail: bool,
    failed: usize,
}

impl Contender {
    fn new(
        group: &'static str,
        name: impl Into<String>,
        program: impl Into<PathBuf>,
        args: &[&str],
    ) -> Contender {
        Contender {
            group,
            name: name.into(),
            program: program.into(),
            args: args.iter().map(std::string::ToString::to_string).collect(),
            reference: false,
            verdict_time: false,
            against: None,
            wall: Vec::new(),
            cpu: Vec::new(),
            in_process: Vec::new(),
            max_rss_kib: 0,
            may_fail: false,
            failed: 0,
        }
    }

    fn reference(mut self) -> Contender {
        self.reference = true;
        self
    }

    fn vipcheck(mut self) -> Contender {
        self.verdict_time = true;
        self
    }

    fn against(mut self, name: impl Into<String>) -> Contender {
        self.against = Some(name.into());
        self
    }

    /// One more run, under GNU time, for the program's own peak RSS. A
    /// process's peak RSS counts that of the process it was started from
    /// (the kernel keeps the larger at exec): a program started by the
    /// bench (11 MiB) would show the bench's; time, which forks it, is
    /// 1 MiB.
    fn peak_rss(&mut self, lab: &Lab) -> Result<()> {
        let mut cmd = Command::new("/usr/bin/time");
        cmd.args(["-f", "%M"])
            .arg(&self.program)
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let out = crate::lab::netns::run_in(lab.lb_ns(), || cmd.output())
            .with_context(|| format!("cannot run {cmd:?}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            bail!("{} failed (peak RSS run): {}", self.name, stderr.trim());
        }
        // The format's line is the last.
        self.max_rss_kib = stderr
            .lines()
            .last()
            .and_then(|line| line.trim().parse().ok())
            .with_context(|| format!("no peak RSS from time for {}: {stderr:?}", self.name))?;
        Ok(())
    }

    /// One run; `keep`: record it (not a warm-up).
    fn run(&mut self, lab: &Lab, keep: bool) -> Result<()> {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let (out, wall, usage) = measured(lab.lb_ns(), cmd)?;
        if !out.0 && !self.may_fail {
            // Once more for its stderr (not read while measured).
            let mut again = Command::new(&self.program);
            again.args(&self.args);
            let stderr = crate::lab::netns::run_in(lab.lb_ns(), || again.output())
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            bail!("{} failed: {} {}", self.name, out.1.trim(), stderr.trim());
        }
        if keep {
            self.failed += usize::from(!out.0);
            self.wall.push(wall);
            self.cpu.push(usage.cpu);
            if self.verdict_time
                && let Some(t) = verdict_time(&out.1)
            {
                self.in_process.push(t);
            }
        }
        Ok(())
    }
}

/// A vipcheck binary the bench measures: the current build, then the
/// baseline if there is one (`VIPCHECK_BENCH_BASELINE`).
#[derive(Clone, Copy, Debug)]
struct Build<'a> {
    path: &'a Path,
    /// Appended to the names of its rows: empty for the current build.
    suffix: &'static str,
}

impl Build<'_> {
    /// The current build, and the baseline's if there is one.
    fn all<'a>(vipcheck: &'a Path, options: &'a Options) -> Vec<Build<'a>> {
        let current = Build {
            path: vipcheck,
            suffix: "",
        };
        let baseline = options.baseline.as_deref().map(|path| Build {
            path,
            suffix: " (baseline)",
        });
        std::iter::once(current).chain(baseline).collect()
    }

    /// `name` of a row of this build.
    fn name(&self, name: &str) -> String {
        format!("{name}{}", self.suffix)
    }
}

/// What a process used (wait4).
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    cpu: Duration,
    max_rss_kib: u64,
}

/// Runs `cmd` (stdout piped) in network namespace `ns`, waits with wait4:
/// (success, stdout), wall time, what it used. Started by a thread that
/// entered `ns`, with no `nsenter` in between, whose own start (1.2 ms of
/// CPU) would be measured with every process and add its noise to each.
// Reaped here by wait4, which std's Child cannot do (it needs the rusage).
#[allow(clippy::zombie_processes)]
fn measured(ns: &str, mut cmd: Command) -> Result<((bool, String), Duration, Usage)> {
    use std::io::Read;
    let (mut child, start) = crate::lab::netns::run_in(ns, || {
        let start = Instant::now();
        Ok((cmd.spawn()?, start))
    })
    .with_context(|| format!("cannot start {cmd:?} in {ns}"))?;
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let (ok, usage) = reap(&child).context("wait4")?;
    Ok(((ok, stdout), start.elapsed(), usage))
}

/// Waits for `child` with wait4: whether it exited 0, and what it used
/// (its own CPU time and peak RSS, which std's Child cannot report).
fn reap(child: &std::process::Child) -> std::io::Result<(bool, Usage)> {
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into valid locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        Usage {
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            max_rss_kib: usage.ru_maxrss as u64,
        },
    ))
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// The check's own time from a verdict line: its last `(N ms` group.
fn verdict_time(stdout: &str) -> Option<Duration> {
    let line = stdout.lines().next()?;
    let at = line.rfind('(')?;
    let ms: f64 = line[at + 1..].split(' ').next()?.parse().ok()?;
    Some(Duration::from_secs_f64(ms / 1000.0))
}

/// Runs every measurement and writes the results.
pub fn run(vipcheck: &Path, options: &Options) -> Result<()> {
    // Each binary measured is a fresh copy, made the same way: how a file
    // came into the page cache changes what starting it costs (on these
    // machines the linker's output took 0.3-0.6 ms more CPU a start than
    // a `cp` of it, page faults on smaller folios), and the baseline is
    // usually a copy while the current build is the linker's.
    let copies = out_dir_copies(vipcheck, options)?;
    let vipcheck = copies[0].as_path();
    let options = &Options {
        baseline: copies.get(1).cloned(),
        ..options.clone()
    };
    let builds = Build::all(vipcheck, options);
    let lab = Lab::up(Role::Backup)?;
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if let Some(only) = &options.only {
        if only != "lb-traffic" {
            bail!("no bench part {only:?} (there is lb-traffic)");
        }
        let (lb_traffic, lb_notes) = lb_traffic(&lab, &builds, options.quick)?;
        drop(lab);
        return report(options, rows, lb_traffic, lb_notes);
    }
    rows.extend(warm(&lab, &builds, options)?);
    let (cpu_rows, cpu_note) = one_shot_cpu(&lab, &builds, options)?;
    rows.extend(cpu_rows);
    notes.push(cpu_note);
    rows.extend(cold(&lab, &builds, options)?);
    rows.extend(loss(&lab, vipcheck, options)?);
    let (lb_traffic, lb_notes) = lb_traffic(&lab, &builds, options.quick)?;
    notes.extend(lb_notes);
    if options.scale > 0 {
        let (scale_rows, scale_notes) = scale(&lab, &builds, options)?;
        rows.extend(scale_rows);
        notes.extend(scale_notes);
        // Fewer in a quick run: the bench's CI time.
        let n = if options.quick { 200 } else { options.scale };
        let (dns_rows, dns_notes) = dns_scale(&lab, vipcheck, n)?;
        rows.extend(dns_rows);
        notes.extend(dns_notes);
    }
    drop(lab);
    if !options.quick {
        notes.extend(xdp_costs()?);
    }
    report(options, rows, lb_traffic, notes)
}

/// Writes the results and prints them.
fn report(
    options: &Options,
    rows: Vec<Row>,
    lb_traffic: Vec<LbRow>,
    notes: Vec<String>,
) -> Result<()> {
    let report = Report {
        machine: machine(),
        quick: options.quick,
        rows,
        lb_traffic,
        notes,
    };
    write(&report, &options.out)?;
    print!("{}", markdown(&report));
    println!("results in {}", options.out.display());
    Ok(())
}

/// Fresh copies of the current build and the baseline (if any) in
/// `target/bench-bin/`, in that order.
fn out_dir_copies(vipcheck: &Path, options: &Options) -> Result<Vec<PathBuf>> {
    let dir = options.xtask.parent().and_then(Path::parent).map_or_else(
        || std::env::temp_dir().join("vipcheck-bench-bin"),
        |target| target.join("bench-bin"),
    );
    let mut copies = Vec::new();
    for (name, from) in [
        ("current", Some(vipcheck)),
        ("baseline", options.baseline.as_deref()),
    ] {
        let Some(from) = from else { continue };
        let to = dir.join(name).join("vipcheck");
        let _ = std::fs::remove_file(&to);
        std::fs::create_dir_all(to.parent().unwrap_or(&dir))
            .with_context(|| format!("creating {}", dir.display()))?;
        std::fs::copy(from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        copies.push(to);
    }
    Ok(copies)
}

/// Warm checks, each beside the kernel doing the same, interleaved.
fn warm(lab: &Lab, builds: &[Build], options: &Options) -> Result<Vec<Row>> {
    let rs = OK_IP.to_string();
    let vip = VIP.to_string();
    let port = HTTP_PORT.to_string();
    let tls_port = HTTPS_PORT.to_string();
    let ca = lab.ca_pem().display().to_string();
    let floor = &options.xtask;
    let mut c = vec![
        Contender::new("floor", "empty process (/bin/true)", "/bin/true", &[]).reference(),
        Contender::new("floor", "xtask doing nothing", floor, &["floor", "empty"]),
        Contender::new(
            "floor",
            "xtask opening and closing an AF_PACKET socket",
            floor,
            &["floor", "af-packet"],
        )
        .against("xtask doing nothing"),
    ];
    // The datagram checks' services: UDP echo on the VIP (socat), DNS
    // (dnsmasq), both on `ok`; stopped when the guards drop.
    let udp_services = lab.start_udp()?;
    let dns_services = lab.start_dns()?;
    let udp_port = UDP_ECHO_PORT.to_string();
    // The echo answers from the VIP only: the kernel's exchange (which
    // cannot reach the VIP from a backup LB) goes to ok's own address,
    // on the wildcard-bound echo.
    let udp_own = format!("{rs}:{UDP_WRONG_SOURCE_PORT}");
    let dig_server = format!("@{rs}");
    let dns_port = DNS_PORT.to_string();
    // Each group: the kernel's (or curl's) row, then vipcheck's of each build.
    let groups: [(&'static str, Contender, Vec<&str>); 6] = [
        (
            "tcp",
            Contender::new(
                "tcp",
                "kernel TCP connect (own IP)",
                floor,
                &["floor", "connect", &format!("{rs}:{port}")],
            ),
            vec!["tcp", LB_IFACE, &rs, &vip, &port],
        ),
        (
            "http",
            Contender::new(
                "http",
                "curl http (own IP)",
                "curl",
                &["-sf", "-o", "/dev/null", &format!("http://{rs}/")],
            ),
            vec!["http", LB_IFACE, &rs, &vip, &port, "lab.example", "/"],
        ),
        (
            "https",
            Contender::new(
                "https",
                "curl https (own IP)",
                "curl",
                &[
                    "-sf",
                    "-o",
                    "/dev/null",
                    "--cacert",
                    &ca,
                    "--resolve",
                    &format!("lab.example:{tls_port}:{rs}"),
                    &format!("https://lab.example:{tls_port}/"),
                ],
            ),
            vec![
                "https",
                "--ca",
                &ca,
                LB_IFACE,
                &rs,
                &vip,
                &tls_port,
                "lab.example",
                "/",
            ],
        ),
        (
            "ping",
            Contender::new(
                "ping",
                "ping -c1 (own IP)",
                "ping",
                &["-c1", "-q", "-W", "2", &rs],
            ),
            vec!["ping", LB_IFACE, &rs, &vip],
        ),
        (
            "udp",
            Contender::new(
                "udp",
                "kernel UDP exchange (own IP)",
                floor,
                &["floor", "udp", &udp_own],
            ),
            vec![
                "udp",
                "--send",
                "vipcheck bench",
                "--expect",
                "vipcheck bench",
                LB_IFACE,
                &rs,
                &vip,
                &udp_port,
            ],
        ),
        (
            "dns",
            Contender::new(
                "dns",
                "dig +tries=1 (own IP)",
                "dig",
                &["+tries=1", "+time=2", &dig_server, DNS_NAME],
            ),
            vec![
                "dns", "--name", DNS_NAME, "--type", "A", LB_IFACE, &rs, &vip, &dns_port,
            ],
        ),
    ];
    for (group, reference, args) in groups {
        c.push(reference.reference());
        for build in builds {
            c.push(
                Contender::new(
                    group,
                    build.name(&format!("vipcheck {group}")),
                    build.path,
                    &args,
                )
                .vipcheck(),
            );
        }
    }
    if let Some(dir) = &options.c_checkers {
        c.push(Contender::new(
            "tcp",
            "C check_tcp_raw",
            dir.join("check_tcp_raw"),
            &[LB_IFACE, &rs, &vip, &port],
        ));
        c.push(Contender::new(
            "http",
            "C check_http_raw",
            dir.join("check_http_raw"),
            &["-S", "200", LB_IFACE, &rs, &vip, &port, "lab.example", "/"],
        ));
    }
    interleave(lab, &mut c, options.runs)?;
    for contender in &mut c {
        contender.peak_rss(lab)?;
    }
    drop((udp_services, dns_services));
    // Memory: one run each of the big ones, beside the 20 KiB of a warm run.
    let mut memory: Vec<Contender> = builds
        .iter()
        .map(|build| {
            Contender::new(
                "memory",
                build.name("vipcheck http of 5 MiB"),
                build.path,
                &[
                    "http",
                    "--max-body",
                    "8388608",
                    LB_IFACE,
                    &rs,
                    &vip,
                    &port,
                    "lab.example",
                    "/5m.bin",
                ],
            )
            .vipcheck()
        })
        .collect();
    interleave(lab, &mut memory, if options.quick { 1 } else { 5 })?;
    for contender in &mut memory {
        contender.peak_rss(lab)?;
    }
    Ok(rows_of(c.into_iter().chain(memory)))
}

/// The CPU of a warm one-shot tcp check beside an empty process's, the
/// two interleaved over many rounds (300; a check's median CPU moves by
/// 0.05 ms between runs of 50): what keepalived pays at every start.
fn one_shot_cpu(lab: &Lab, builds: &[Build], options: &Options) -> Result<(Vec<Row>, String)> {
    let group = "one-shot CPU";
    let (rs, vip, port) = (OK_IP.to_string(), VIP.to_string(), HTTP_PORT.to_string());
    let mut c =
        vec![Contender::new(group, "empty process (/bin/true)", "/bin/true", &[]).reference()];
    for build in builds {
        c.push(
            Contender::new(
                group,
                build.name("vipcheck tcp"),
                build.path,
                &["tcp", LB_IFACE, &rs, &vip, &port],
            )
            .vipcheck(),
        );
    }
    let runs = if options.quick { 3 } else { 300 };
    interleave(lab, &mut c, runs)?;
    let rows = rows_of(c);
    let cpu = |row: &Row| row.cpu_ms.unwrap_or_default();
    let mut note = format!(
        "One-shot CPU ({runs} interleaved runs each): vipcheck tcp {:.2} ms, /bin/true {:.2} ms: {:+.2} ms above the empty process (medians)",
        cpu(&rows[1]),
        cpu(&rows[0]),
        cpu(&rows[1]) - cpu(&rows[0])
    );
    if let Some(baseline) = rows.get(2) {
        note += &format!(
            "; baseline vipcheck tcp {:.2} ms: {:+.2} ms above the empty process; current - baseline: {:+.2} ms",
            cpu(baseline),
            cpu(baseline) - cpu(&rows[0]),
            cpu(&rows[1]) - cpu(baseline)
        );
    }
    Ok((rows, note))
}

/// Runs each contender `runs` times, round-robin, after 2 warm-up rounds.
/// Runs every contender `runs` times (after two unmeasured rounds), in a
/// new order each round: on these machines a process costs measurably
/// more right after a different binary ran than after itself (0.3-0.6 ms
/// of CPU in a one-shot check), so a fixed order would charge one row
/// for its place in the round. The order is seeded: a rerun runs the
/// same sequence.
fn interleave(lab: &Lab, contenders: &mut [Contender], runs: usize) -> Result<()> {
    let mut order: Vec<usize> = (0..contenders.len()).collect();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    for round in 0..runs + 2 {
        shuffle(&mut order, &mut seed);
        for &i in &order {
            contenders[i].run(lab, round >= 2)?;
        }
    }
    Ok(())
}

/// Fisher-Yates with xorshift64: a fair order, no dependency.
fn shuffle(order: &mut [usize], seed: &mut u64) {
    for i in (1..order.len()).rev() {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        let j = usize::try_from(*seed % (i as u64 + 1)).unwrap_or(0);
        order.swap(i, j);
    }
}

fn rows_of(contenders: impl IntoIterator<Item = Contender>) -> Vec<Row> {
    let contenders: Vec<Contender> = contenders.into_iter().collect();
    let reference = |c: &Contender| {
        contenders
            .iter()
            .find(|r| {
                r.group == c.group
                    && match &c.against {
                        Some(name) => &r.name == name,
                        None => r.reference,
                    }
            })
            .map(|r| percentile(&r.wall, 50))
    };
    contenders
        .iter()
        .map(|c| {
            let median = percentile(&c.wall, 50);
            Row {
                group: c.group.to_string(),
                name: c.name.clone(),
                runs: c.wall.len(),
                min_ms: ms(percentile(&c.wall, 0)),
                median_ms: ms(median),
                p99_ms: ms(percentile(&c.wall, 99)),
                ratio: reference(c).map(|r| median.as_secs_f64() / r.as_secs_f64().max(1e-9)),
                cpu_ms: (!c.cpu.is_empty()).then(|| ms(percentile(&c.cpu, 50))),
                in_process_ms: (!c.in_process.is_empty())
                    .then(|| ms(percentile(&c.in_process, 50))),
                peak_rss_kib: (c.max_rss_kib > 0).then_some(c.max_rss_kib),
                failed: c.failed,
                samples: c.wall.iter().map(|d| ms(*d)).collect(),
            }
        })
        .collect()
}

/// The first check on an interface without the program (load, verify,
/// attach, check) beside a warm one, for each build.
fn cold(lab: &Lab, builds: &[Build], options: &Options) -> Result<Vec<Row>> {
    let rs = OK_IP.to_string();
    let vip = VIP.to_string();
    let port = HTTP_PORT.to_string();
    let tcp = ["tcp", LB_IFACE, &rs, &vip, &port];
    // Per build: its warm row, and its cold one (ratio to its warm one).
    let mut pairs = Vec::new();
    for build in builds {
        let warm_name = build.name("warm vipcheck tcp");
        let mut warm = Contender::new("cold", warm_name.clone(), build.path, &tcp).vipcheck();
        warm.reference = pairs.is_empty();
        let cold = Contender::new(
            "cold",
            build.name("cold vipcheck tcp (load + attach)"),
            build.path,
            &tcp,
        )
        .vipcheck()
        .against(warm_name);
        pairs.push((warm, cold));
    }
    let runs = if options.quick { 2 } else { 10 };
    for round in 0..runs + 1 {
        // The current build last: its program stays attached for what
        // follows.
        for (build, (warm, cold)) in builds.iter().zip(&mut pairs).rev() {
            warm.run(lab, round >= 1)?;
            let status = lab
                .command(lab.lb_ns(), build.path)
                .args(["xdp", "detach", LB_IFACE])
                .stdout(Stdio::null())
                .status()?;
            if !status.success() {
                bail!("{} failed", build.name("vipcheck xdp detach"));
            }
            cold.run(lab, round >= 1)?;
        }
    }
    Ok(rows_of(
        pairs.into_iter().flat_map(|(warm, cold)| [warm, cold]),
    ))
}

/// Checks under loss (both directions, on the real server), beside the
/// kernel's connection and curl, at 0, 5 and 10%.
fn loss(lab: &Lab, vipcheck: &Path, options: &Options) -> Result<Vec<Row>> {
    let rs = OK_IP.to_string();
    let vip = VIP.to_string();
    let port = HTTP_PORT.to_string();
    let runs = if options.quick { 2 } else { 30 };
    let mut rows = Vec::new();
    for percent in [0u32, 5, 10] {
        if options.quick && percent == 5 {
            continue;
        }
        let group: &'static str = match percent {
            0 => "loss 0%",
            5 => "loss 5%",
            _ => "loss 10%",
        };
        set_loss(lab, percent)?;
        let mut c = vec![
            Contender::new(
                group,
                "kernel TCP connect (own IP)",
                &options.xtask,
                &["floor", "connect", &format!("{rs}:{port}")],
            ),
            Contender::new(
                group,
                "curl http 20 KiB",
                "curl",
                &[
                    "-sf",
                    "-o",
                    "/dev/null",
                    "--max-time",
                    "10",
                    &format!("http://{rs}/20k.bin"),
                ],
            )
            .reference(),
            Contender::new(
                group,
                "vipcheck http 20 KiB",
                vipcheck,
                &[
                    "http",
                    "-t",
                    "10000",
                    LB_IFACE,
                    &rs,
                    &vip,
                    &port,
                    "lab.example",
                    "/20k.bin",
                ],
            )
            .vipcheck(),
            Contender::new(
                group,
                "vipcheck tcp",
                vipcheck,
                &["tcp", "-t", "10000", LB_IFACE, &rs, &vip, &port],
            )
            .vipcheck()
            .against("kernel TCP connect (own IP)"),
        ];
        // Under loss a run may fail (curl whose SYN is lost three times in
        // a row has waited 7 s before its first byte): counted, its time
        // kept. Without loss a failure ends the bench.
        for contender in &mut c {
            contender.may_fail = percent > 0;
        }
        let result = interleave(lab, &mut c, runs);
        set_loss(lab, 0)?;
        result?;
        rows.extend(rows_of(c));
    }
    Ok(rows)
}

/// How the LB traffic bench attaches the program in each capture mode:
/// the row's name and the options of `vipcheck xdp attach`. skb and
/// native name no `--capture`, so that a baseline older than it attaches
/// them too; attached alone on the interface, `auto` is XDP.
const CAPTURE_MODES: [(&str, &[&str]); 3] = [
    ("XDP skb mode", &["--xdp-mode", "skb"]),
    ("XDP native mode", &["--xdp-mode", "native"]),
    ("TC mode", &["--capture", "tc"]),
];

/// Who attaches the program for a row of the LB traffic bench, with
/// which options (none: the row without it).
type Attach<'a> = Option<(&'a Build<'a>, &'static [&'static str])>;

/// One figure of the LB traffic chart: its name, and where it is in a row.
type Figure = (&'static str, fn(&LbRow) -> Spread);

/// One figure of the LB traffic rows: median, spread, and the ratio of
/// the median to that of the row without the program.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub ratio: f64,
}

/// One capture mode of the LB traffic bench (or none).
#[derive(Clone, Debug, Serialize)]
pub struct LbRow {
    pub mode: String,
    /// Rounds in which the mode could be attached and measured.
    pub runs: usize,
    /// TCP stream received by the LB.
    pub tcp_gbit_s: Spread,
    /// CPU time of the lab's traffic (both iperf3 processes and
    /// ksoftirqd) per Gbit received: ms of CPU per Gbit, that is
    /// thousandths of a core per Gbit/s.
    pub tcp_cpu_ms_per_gbit: Spread,
    /// The same from the machine's busy time (/proc/stat, every process).
    pub tcp_busy_ms_per_gbit: Spread,
    /// 64-byte UDP datagrams received by the LB's socket.
    pub udp_kpps: Spread,
    /// CPU time of the lab's traffic per million datagrams sent (each
    /// crossed the LB's receive path): s of CPU per Mpkt, that is cores
    /// per Mpps.
    pub udp_cpu_s_per_mpkt: Spread,
    /// The same from the machine's busy time.
    pub udp_busy_s_per_mpkt: Spread,
}

/// What one iperf3 run measured.
#[derive(Clone, Copy, Debug)]
struct LbRun {
    /// Gbit/s (TCP) or kpps received (UDP).
    rate: f64,
    /// Gbit (TCP) or million datagrams sent (UDP).
    amount: f64,
    /// CPU seconds of the iperf3 client and server and of ksoftirqd.
    cpu: f64,
    /// Busy CPU seconds of the whole machine.
    busy: f64,
}

/// The cost to the LB's own traffic: iperf3 from `ok` to the LB (a TCP
/// stream, and 64-byte UDP), without the program and with it in each
/// capture mode (XDP skb, XDP native: veth supports it, TC), interleaved
/// in a new order each round; throughput and CPU per Gbit and per
/// million packets, medians, spreads and ratios to "without". With a
/// baseline, its program in each mode too (attached by it), in the same
/// rounds. Quick: one round of 1 s runs (about 10 s in all).
fn lb_traffic(lab: &Lab, builds: &[Build], quick: bool) -> Result<(Vec<LbRow>, Vec<String>)> {
    let lb = crate::lab::LB_IP.to_string();
    let mut server = lab
        .command(lab.lb_ns(), "iperf3")
        .args(["-s", "-B", &lb])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start iperf3 (Debian package iperf3)")?;
    std::thread::sleep(Duration::from_millis(300));
    let (rounds, seconds) = if quick { (1, 1) } else { (7, 2) };
    // nsenter execs iperf3: the child's pid is the server's.
    let result = lb_traffic_runs(lab, builds, &lb, server.id(), rounds, seconds);
    // SAFETY: a signal to our own child (nsenter execs iperf3).
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    let _ = server.wait();
    // Leave the current build's program attached as by default, for
    // what follows.
    detach_xdp(lab, builds);
    let _ = lab
        .command(lab.lb_ns(), builds[0].path)
        .args(["xdp", "attach", LB_IFACE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    result
}

/// Detaches the program from the LB's interface with each build (a
/// build's program might not be another's), whatever the outcome.
fn detach_xdp(lab: &Lab, builds: &[Build]) {
    for build in builds {
        let _ = lab
            .command(lab.lb_ns(), build.path)
            .args(["xdp", "detach", LB_IFACE])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn lb_traffic_runs(
    lab: &Lab,
    builds: &[Build],
    lb: &str,
    server: u32,
    rounds: usize,
    seconds: u32,
) -> Result<(Vec<LbRow>, Vec<String>)> {
    // (name, the build that attaches and with which options; none: without).
    let mut modes: Vec<(String, Attach)> = vec![("without the program".to_string(), None)];
    for build in builds {
        for (mode, options) in CAPTURE_MODES {
            modes.push((build.name(mode), Some((build, options))));
        }
    }
    let t = seconds.to_string();
    let softirqd = ksoftirqd();
    let mut tcp: Vec<Vec<LbRun>> = vec![Vec::new(); modes.len()];
    let mut udp: Vec<Vec<LbRun>> = vec![Vec::new(); modes.len()];
    let mut unattached = vec![0usize; modes.len()];
    let mut order: Vec<usize> = (0..modes.len()).collect();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    for _ in 0..rounds {
        shuffle(&mut order, &mut seed);
        for &i in &order {
            detach_xdp(lab, builds);
            if let Some((build, options)) = modes[i].1 {
                let attach = lab
                    .command(lab.lb_ns(), build.path)
                    .args(["xdp", "attach"])
                    .args(options)
                    .arg(LB_IFACE)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()?;
                if !attach.success() {
                    unattached[i] += 1;
                    continue;
                }
            }
            tcp[i].push(iperf(lab, lb, server, &softirqd, &["-t", &t], |v| {
                let sum = &v["end"]["sum_received"];
                let gbit = sum["bytes"].as_f64()? * 8.0 / 1e9;
                Some((gbit / sum["seconds"].as_f64()?, gbit))
            })?);
            udp[i].push(iperf(
                lab,
                lb,
                server,
                &softirqd,
                &["-u", "-l", "64", "-b", "0", "-t", &t],
                |v| {
                    let sum = &v["end"]["sum"];
                    let sent = sum["packets"].as_f64()?;
                    let received = sent - sum["lost_packets"].as_f64()?;
                    Some((received / sum["seconds"].as_f64()? / 1e3, sent / 1e6))
                },
            )?);
        }
    }
    let figure = |runs: &[LbRun], value: &dyn Fn(&LbRun) -> f64| -> (f64, f64, f64) {
        let mut v: Vec<f64> = runs.iter().map(value).collect();
        v.sort_by(f64::total_cmp);
        (
            v.get(v.len() / 2).copied().unwrap_or(f64::NAN),
            v.first().copied().unwrap_or(f64::NAN),
            v.last().copied().unwrap_or(f64::NAN),
        )
    };
    let spread = |i: usize, runs: &[Vec<LbRun>], value: &dyn Fn(&LbRun) -> f64| {
        let (median, min, max) = figure(&runs[i], value);
        Spread {
            median,
            min,
            max,
            ratio: median / figure(&runs[0], value).0,
        }
    };
    let rate = |r: &LbRun| r.rate;
    let cpu_ms = |r: &LbRun| r.cpu * 1e3 / r.amount;
    let busy_ms = |r: &LbRun| r.busy * 1e3 / r.amount;
    let cpu_s = |r: &LbRun| r.cpu / r.amount;
    let busy_s = |r: &LbRun| r.busy / r.amount;
    let rows: Vec<LbRow> = modes
        .iter()
        .enumerate()
        .filter(|(i, _)| !tcp[*i].is_empty())
        .map(|(i, (mode, _))| LbRow {
            mode: mode.clone(),
            runs: tcp[i].len(),
            tcp_gbit_s: spread(i, &tcp, &rate),
            tcp_cpu_ms_per_gbit: spread(i, &tcp, &cpu_ms),
            tcp_busy_ms_per_gbit: spread(i, &tcp, &busy_ms),
            udp_kpps: spread(i, &udp, &rate),
            udp_cpu_s_per_mpkt: spread(i, &udp, &cpu_s),
            udp_busy_s_per_mpkt: spread(i, &udp, &busy_s),
        })
        .collect();
    let mut notes = vec![format!(
        "LB traffic: iperf3 from ok to the LB over the lab's veth, {rounds} interleaved round(s) of {seconds} s runs, in a new order each round: a TCP stream, and 64-byte UDP (-b 0). \
         CPU = user + system time of both iperf3 processes and of ksoftirqd over each run: on veth the LB's receive path runs in the sender's context, so the LB's share cannot be told apart, \
         but the sender's is the same in every mode: a difference between rows is the program's cost. CPU ms/Gbit = thousandths of a core per Gbit/s; CPU s/Mpkt = cores per Mpps (datagrams sent: each crossed the LB's receive path). \
         The machine's busy time (/proc/stat) per unit, as a check (it counts every process: under other load, whose time is divided by each row's own traffic, a slower row looks costlier): {}",
        rows.iter()
            .map(|r| format!(
                "{} {:.1} ms/Gbit ({:.2}), {:.2} s/Mpkt ({:.2})",
                r.mode,
                r.tcp_busy_ms_per_gbit.median,
                r.tcp_busy_ms_per_gbit.ratio,
                r.udp_busy_s_per_mpkt.median,
                r.udp_busy_s_per_mpkt.ratio
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )];
    for (i, (mode, attach)) in modes.iter().enumerate() {
        let options = attach.map_or(String::new(), |(_, o)| o.join(" "));
        if unattached[i] == rounds {
            notes.push(format!(
                "{mode} could not be attached (`vipcheck xdp attach {options}` failed: a build without it, or the lab's veth refused it): no row"
            ));
        } else if unattached[i] > 0 {
            notes.push(format!(
                "{mode} could not be attached in {} of {rounds} rounds (`vipcheck xdp attach {options}` failed)",
                unattached[i]
            ));
        }
    }
    Ok((rows, notes))
}

/// The pids of the ksoftirqd threads, whose time is softirq work pushed
/// out of the context that raised it.
fn ksoftirqd() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.starts_with("ksoftirqd/"))
        })
        .collect()
}

/// Busy CPU time of the whole machine (/proc/stat: user, nice, system,
/// irq, softirq, steal of every CPU).
fn machine_busy() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(busy_ticks(&stat) * 1000 / hz)
}

/// The busy ticks of the `cpu` line (all CPUs) of /proc/stat: user, nice,
/// system, irq, softirq, steal (not idle, iowait, nor guest, which user
/// already counts).
fn busy_ticks(stat: &str) -> u64 {
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum()
}

/// One iperf3 run from `ok` to the LB: (rate, amount) read from its JSON
/// by `value`, and the CPU the run took: the client's (wait4), the
/// server's and ksoftirqd's (/proc/PID/stat), and the machine's busy time.
fn iperf(
    lab: &Lab,
    lb: &str,
    server: u32,
    softirqd: &[u32],
    args: &[&str],
    value: impl Fn(&serde_json::Value) -> Option<(f64, f64)>,
) -> Result<LbRun> {
    let others =
        || process_cpu(server) + softirqd.iter().map(|&p| process_cpu(p)).sum::<Duration>();
    let mut cmd = Command::new("iperf3");
    cmd.args(["-c", lb, "-J"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let (before, busy) = (others(), machine_busy());
    let ((_, stdout), _, usage) = measured(lab.ns(Host::Ok), cmd).context("cannot run iperf3")?;
    let (after, busy) = (others(), machine_busy().saturating_sub(busy));
    let json: serde_json::Value = serde_json::from_str(&stdout).context("iperf3 JSON")?;
    let (rate, amount) =
        value(&json).with_context(|| format!("iperf3 {args:?}: no result in {json}"))?;
    Ok(LbRun {
        rate,
        amount,
        cpu: (usage.cpu + after.saturating_sub(before)).as_secs_f64(),
        busy: busy.as_secs_f64(),
    })
}

/// `percent` loss of TCP both ways on `ok` (nft numgen), 0 removes it.
fn set_loss(lab: &Lab, percent: u32) -> Result<()> {
    let ns = lab.ns(Host::Ok);
    let _ = lab
        .command(ns, "nft")
        .args(["delete", "table", "inet", "vckbenchloss"])
        .stderr(Stdio::null())
        .status();
    if percent == 0 {
        return Ok(());
    }
    let drop = format!("meta l4proto tcp numgen random mod 100 < {percent} drop;");
    let rules = format!(
        "table inet vckbenchloss {{\n chain in {{ type filter hook input priority 0; {drop} }}\n chain out {{ type filter hook output priority 0; {drop} }}\n}}\n"
    );
    let mut child = lab
        .command(ns, "nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()?;
    if let Some(stdin) = child.stdin.as_mut() {
        use std::io::Write;
        stdin.write_all(rules.as_bytes())?;
    }
    if !child.wait()?.success() {
        bail!("cannot add loss on ok");
    }
    Ok(())
}

/// The XDP program's cost per frame (BPF_PROG_TEST_RUN, measured by the
/// kernel) beside an empty program, with 0, 100 and 10,000 flows in the
/// map: the `xdp::per_frame_costs` test of the `host` test binary
/// (checker/tests/host/xdp.rs), which builds frames and fills the map with
/// the tests' own helpers.
fn xdp_costs() -> Result<Vec<String>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "test",
            "-p",
            "checker",
            "--test",
            "host",
            "xdp::per_frame_costs",
            "--",
            "--ignored",
            "--nocapture",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("cannot run the XDP cost bench")?;
    if !out.status.success() {
        bail!("the XDP cost bench failed");
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("XDP bench:"))
        .map(str::to_string)
        .collect())
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}

fn write(report: &Report, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    std::fs::write(
        out.join("results.json"),
        serde_json::to_string_pretty(report)?,
    )?;
    std::fs::write(out.join("results.md"), markdown(report))?;
    chart(&report.rows, &out.join("latency.svg"))?;
    lb_chart(&report.lb_traffic, &out.join("lb-traffic.svg"))?;
    Ok(())
}

fn markdown(report: &Report) -> String {
    let mut md = format!(
        "Machine: {}{}\n",
        report.machine,
        if report.quick {
            " (quick: not for comparison)"
        } else {
            ""
        }
    );
    if !report.rows.is_empty() {
        md += "\n| group | what | runs | min ms | median ms | p99 ms | ratio | CPU ms | in-process ms | peak RSS |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    }
    let opt = |v: Option<f64>, digits: usize| v.map_or(String::new(), |v| format!("{v:.digits$}"));
    for r in &report.rows {
        md += &format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |\n",
            r.group,
            if r.failed > 0 {
                format!("{} ({} failed)", r.name, r.failed)
            } else {
                r.name.clone()
            },
            r.runs,
            r.min_ms,
            r.median_ms,
            r.p99_ms,
            opt(r.ratio, 2),
            opt(r.cpu_ms, 2),
            opt(r.in_process_ms, 2),
            r.peak_rss_kib
                .map_or(String::new(), |k| format!("{} MiB", k.div_ceil(1024)))
        );
    }
    if !report.lb_traffic.is_empty() {
        md += &lb_table(&report.lb_traffic);
    }
    for note in &report.notes {
        md += &format!("\n{note}\n");
    }
    md
}

/// The table "LB traffic by capture mode": median (spread) and ratio to
/// the row without the program.
fn lb_table(rows: &[LbRow]) -> String {
    let cell = |s: &Spread, digits: usize| {
        format!(
            "{:.digits$} ({:.digits$}-{:.digits$}) | {:.3}",
            s.median, s.min, s.max, s.ratio
        )
    };
    let mut md = "\nLB traffic by capture mode: median (min-max), then its ratio to the median without the program:\n\n| mode | runs | TCP Gbit/s | ratio | CPU ms/Gbit | ratio | UDP kpps | ratio | CPU s/Mpkt | ratio |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n".to_string();
    for r in rows {
        md += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.mode,
            r.runs,
            cell(&r.tcp_gbit_s, 2),
            cell(&r.tcp_cpu_ms_per_gbit, 1),
            cell(&r.udp_kpps, 1),
            cell(&r.udp_cpu_s_per_mpkt, 2),
        );
    }
    md
}

/// The LB traffic rows as ratios to the row without the program: for
/// each mode, throughput (TCP, UDP; higher is better) and CPU per unit
/// (lower is better), the median as a bar, the spread as a line.
fn lb_chart(rows: &[LbRow], path: &Path) -> Result<()> {
    use plotters::prelude::*;
    if rows.len() < 2 {
        return Ok(());
    }
    let figures: [Figure; 4] = [
        ("TCP Gbit/s", |r| r.tcp_gbit_s),
        ("TCP CPU per Gbit", |r| r.tcp_cpu_ms_per_gbit),
        ("UDP kpps", |r| r.udp_kpps),
        ("UDP CPU per Mpkt", |r| r.udp_cpu_s_per_mpkt),
    ];
    // One line per mode and figure, the modes without the program left out
    // (1.0 by definition), a gap between modes.
    let mut lines: Vec<(String, Spread, usize)> = Vec::new();
    let base = &rows[0];
    for r in &rows[1..] {
        for (k, (name, get)) in figures.iter().enumerate() {
            let (s, b) = (get(r), get(base));
            let relative = Spread {
                median: s.ratio,
                min: s.min / b.median,
                max: s.max / b.median,
                ratio: s.ratio,
            };
            lines.push((format!("{}: {name}", r.mode), relative, k));
        }
    }
    let max = lines
        .iter()
        .map(|(_, s, _)| s.max)
        .filter(|v| v.is_finite())
        .fold(1.2f64, f64::max)
        * 1.05;
    let height = 70 + 22 * lines.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(10)
        .caption(
            "LB traffic by capture mode, ratio to without the program",
            ("sans-serif", 16),
        )
        .x_label_area_size(30)
        .y_label_area_size(300)
        .build_cartesian_2d(0f64..max, 0..lines.len())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // The first mode at the top: line i at y = last - i.
    let last = lines.len() - 1;
    let names: Vec<String> = lines.iter().rev().map(|(n, _, _)| n.clone()).collect();
    chart
        .configure_mesh()
        .x_desc("median (bar) and spread (line) over the median without the program; throughput: higher is better, CPU: lower")
        .y_labels(lines.len())
        .y_label_formatter(&|i| names.get(*i).cloned().unwrap_or_default())
        .disable_y_mesh()
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, (_, s, k)) in lines.iter().enumerate() {
        let (color, i) = (Palette99::pick(*k).to_rgba(), last - i);
        if s.median.is_finite() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    [(0.0, i), (s.median, i)],
                    color.stroke_width(10),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        if s.min.is_finite() && s.max.is_finite() {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    [(s.min, i), (s.max, i)],
                    BLACK.stroke_width(2),
                )))
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            [(1.0, 0), (1.0, last)],
            BLACK.mix(0.5).stroke_width(1),
        )))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// The distribution of each warm row's wall times (log scale), one strip
/// of points per row.
fn chart(rows: &[Row], path: &Path) -> Result<()> {
    use plotters::prelude::*;
    let rows: Vec<&Row> = rows.iter().filter(|r| !r.samples.is_empty()).collect();
    if rows.is_empty() {
        return Ok(());
    }
    let max = rows
        .iter()
        .flat_map(|r| r.samples.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.2;
    let height = 60 + 28 * rows.len() as u32;
    let root = SVGBackend::new(path, (900, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(320)
        .build_cartesian_2d((0.1f64..max).log_scale(), 0..rows.len())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{}: {}", r.group, r.name))
        .collect();
    chart
        .configure_mesh()
        .x_desc("wall time of the whole process, ms (log)")
        .y_labels(rows.len())
        .y_label_formatter(&|i| names.get(*i).cloned().unwrap_or_default())
        .disable_y_mesh()
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, r) in rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(
                r.samples
                    .iter()
                    .map(|&v| Circle::new((v.max(0.1), i), 2, color.filled())),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        chart
            .draw_series(std::iter::once(Cross::new(
                (r.median_ms.max(0.1), i),
                6,
                BLACK.stroke_width(2),
            )))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    root.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

fn percentile(times: &[Duration], p: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * p).div_ceil(100).min(sorted.len() - 1)]
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
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
/// TCP checks as one `vipcheck audit` (and one of the baseline's), then as
/// `n` `vipcheck tcp` processes 32 at a time; then a daemon with the `n`
/// targets every 5 s.
fn scale(lab: &Lab, builds: &[Build], options: &Options) -> Result<(Vec<Row>, Vec<String>)> {
    let n = options.scale;
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
    let result = scale_runs(lab, builds, &file, &targets, options.quick);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `n` DNS checks as one `vipcheck audit` of a targets file: every target
/// the lab's DNS name through the VIP on `ok` (dnsmasq answers on the VIP
/// only, not on the scale addresses), `check = "dns"` with its `name` and
/// `type`. Guarded: a build whose targets file does not take DNS targets
/// (exit 2: nothing to check, or the file unreadable) gives a note, not a
/// row.
fn dns_scale(lab: &Lab, vipcheck: &Path, n: u32) -> Result<(Vec<Row>, Vec<String>)> {
    let _services = lab.start_dns()?;
    let dir = std::env::temp_dir().join(format!("vck-bench-dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("targets.toml");
    let mut toml = format!(
        "[defaults]\niface = \"{LB_IFACE}\"\ncheck = \"dns\"\nname = \"{DNS_NAME}\"\ntype = \"A\"\ntimeout_ms = 1000\n"
    );
    for _ in 0..n {
        toml += &format!(
            "[[vip]]\naddress = \"{VIP}\"\nport = {DNS_PORT}\n[[vip.real_server]]\naddress = \"{OK_IP}\"\n"
        );
    }
    std::fs::write(&file, toml)?;
    let log = dir.join("stderr");
    let result = crate::lab::netns::run_in(lab.lb_ns(), || {
        let mut used = Used::start();
        let child = Command::new(vipcheck)
            .args(["audit", "--targets"])
            .arg(&file)
            .args(["--parallel", "256"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?;
        used.wait(child)?;
        Ok(used.end())
    });
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let used = result?;
    let name = "one vipcheck audit of dns targets (--parallel 256)";
    if used.failed > 0 {
        // The guard: a targets file without DNS targets (exit 2), or
        // checks that failed: no row.
        return Ok((
            Vec::new(),
            vec![format!(
                "{n} DNS targets in one audit: no row, the audit failed: {}",
                stderr.lines().next().unwrap_or("(no message)").trim()
            )],
        ));
    }
    let wall = ms(used.wall);
    let row = Row {
        group: format!("{n} DNS checks (one VIP)"),
        name: name.to_string(),
        runs: n as usize,
        min_ms: wall,
        median_ms: wall,
        p99_ms: wall,
        ratio: None,
        cpu_ms: Some(ms(used.cpu) / f64::from(n)),
        in_process_ms: None,
        peak_rss_kib: Some(used.max_rss_kib),
        failed: 0,
        samples: Vec::new(),
    };
    let note = format!(
        "{name}: {n} checks in {:.2} s ({:.0} checks/s), {:.0} µs of CPU per check, peak RSS {} MiB",
        used.wall.as_secs_f64(),
        f64::from(n) / used.wall.as_secs_f64(),
        used.cpu.as_secs_f64() * 1e6 / f64::from(n),
        used.max_rss_kib / 1024
    );
    Ok((vec![row], vec![note]))
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
    builds: &[Build],
    file: &Path,
    targets: &[(std::net::Ipv4Addr, u16)],
    quick: bool,
) -> Result<(Vec<Row>, Vec<String>)> {
    let n = targets.len();
    let rs = OK_IP.to_string();
    let vipcheck = builds[0].path;
    // Two audits of each build, in the order A B B A (with a baseline),
    // each build's cheaper one kept: the first process after the lab
    // came up, or after another binary, pays for it.
    let mut audits: Vec<(String, Used)> = Vec::new();
    for build in builds.iter().chain(builds.iter().rev()) {
        let used = crate::lab::netns::run_in(lab.lb_ns(), || {
            let mut used = Used::start();
            let child = Command::new(build.path)
                .args(["audit", "--targets"])
                .arg(file)
                .args(["--parallel", "256"])
                .stdout(Stdio::null())
                .spawn()?;
            used.wait(child)?;
            Ok(used.end())
        })?;
        let name = build.name("one vipcheck audit (--parallel 256)");
        match audits.iter_mut().find(|(n, _)| *n == name) {
            Some((_, kept)) if used.cpu < kept.cpu => *kept = used,
            Some(_) => {}
            None => audits.push((name, used)),
        }
    }
    let audit = &audits[0].1;
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
    let group = format!(
        "{n} checks ({} VIPs x {} ports)",
        n.div_ceil(SCALE_PORTS.len()),
        SCALE_PORTS.len()
    );
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    let measured = audits
        .iter()
        .map(|(name, used)| (name.as_str(), used))
        .chain([("one-shot vipcheck tcp, 32 at once", &one_shots)]);
    for (name, used) in measured {
        let wall = ms(used.wall);
        rows.push(Row {
            group: group.clone(),
            name: name.to_string(),
            runs: n,
            min_ms: wall,
            median_ms: wall,
            p99_ms: wall,
            ratio: Some(used.wall.as_secs_f64() / audit.wall.as_secs_f64()),
            cpu_ms: Some(ms(used.cpu) / n as f64),
            in_process_ms: None,
            peak_rss_kib: Some(used.max_rss_kib),
            failed: used.failed,
            samples: Vec::new(),
        });
        notes.push(format!(
            "{name}: {n} checks in {:.2} s ({:.0} checks/s), {:.0} µs of CPU per check, peak RSS {} MiB, {} failed",
            used.wall.as_secs_f64(),
            n as f64 / used.wall.as_secs_f64(),
            used.cpu.as_secs_f64() * 1e6 / n as f64,
            used.max_rss_kib / 1024,
            used.failed
        ));
    }
    if let Some((_, baseline)) = audits.get(1) {
        let per_check = |used: &Used| used.cpu.as_secs_f64() * 1e6 / n as f64;
        notes.push(format!(
            "audit CPU per check, current - baseline: {:+.1} µs ({:.3}x)",
            per_check(audit) - per_check(baseline),
            audit.cpu.as_secs_f64() / baseline.cpu.as_secs_f64()
        ));
    }
    notes.push(format!(
        "CPU per check, one-shots / audit: {:.1}x; wall: {:.1}x",
        one_shots.cpu.as_secs_f64() / audit.cpu.as_secs_f64(),
        one_shots.wall.as_secs_f64() / audit.wall.as_secs_f64()
    ));

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
    let intervals = if quick { 1 } else { 2 };
    std::thread::sleep(Duration::from_millis(DAEMON_INTERVAL_MS + 1000));
    let (cpu0, t0) = (process_cpu(pid), Instant::now());
    std::thread::sleep(Duration::from_millis(intervals * DAEMON_INTERVAL_MS));
    let share = (process_cpu(pid) - cpu0).as_secs_f64() / t0.elapsed().as_secs_f64();
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:").map(|v| v.trim().to_string()))
        .unwrap_or_default();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let _ = daemon.wait();
    notes.push(format!(
        "daemon, {n} targets every {} s: {:.1}% of one core ({:.0} µs of CPU per check), peak RSS {hwm}",
        DAEMON_INTERVAL_MS / 1000,
        share * 100.0,
        share * 1e6 * DAEMON_INTERVAL_MS as f64 / 1000.0 / n as f64
    ));
    Ok((rows, notes))
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
        let (ok, usage) = reap(&child)?;
        self.cpu += usage.cpu;
        self.max_rss_kib = self.max_rss_kib.max(usage.max_rss_kib);
        if !ok {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_ticks_of_proc_stat() {
        let stat = "cpu  4181006 7 687813 1971990 33461 3 52772 68561 11 0\ncpu0 1 1 1 1 1 1 1 1 1 1\nintr 5\n";
        assert_eq!(busy_ticks(stat), 4181006 + 7 + 687813 + 3 + 52772 + 68561);
        assert_eq!(busy_ticks("intr 5\n"), 0);
    }

    #[test]
    fn lb_table_has_medians_spreads_and_ratios() {
        let s = |median, ratio| Spread {
            median,
            min: median * 0.9,
            max: median * 1.1,
            ratio,
        };
        let row = |mode: &str, r| LbRow {
            mode: mode.to_string(),
            runs: 7,
            tcp_gbit_s: s(10.0, r),
            tcp_cpu_ms_per_gbit: s(100.0, r),
            tcp_busy_ms_per_gbit: s(120.0, r),
            udp_kpps: s(150.0, r),
            udp_cpu_s_per_mpkt: s(9.0, r),
            udp_busy_s_per_mpkt: s(10.0, r),
        };
        let md = lb_table(&[row("without the program", 1.0), row("TC mode", 0.98)]);
        assert!(md.contains("LB traffic by capture mode"), "{md}");
        assert!(
            md.contains(
                "| TC mode | 7 | 10.00 (9.00-11.00) | 0.980 | 100.0 (90.0-110.0) | 0.980 |"
            ),
            "{md}"
        );
        assert_eq!(
            md.lines().filter(|l| l.starts_with("| ")).count(),
            4,
            "{md}"
        );
    }
}
