//! Thousands of targets from one process: 10,000 checks through the VIP
//! path in one `vipcheck audit`, on one capture slot and one AF_PACKET
//! socket. Counts are asserted; times and memory are printed, not asserted
//! (they are measured side by side in `cargo xtask bench`).
//!
//! A test binary of its own, unlike the other lab tests (`checks`,
//! `operate`, `host`): each of its two tests takes both cores, so they run
//! one at a time ([`ALONE`]) and, as cargo runs test binaries one after
//! another, beside no other test.

// unsafe: libc calls measuring the processes under test.
#![allow(unsafe_code)]

mod common;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use common::*;

/// VIPs for the scale test: one prefix on `ok`'s loopback (every address
/// of a prefix on `lo` is local), none on `novip`.
const VIP_PREFIX: Ipv4Addr = Ipv4Addr::new(198, 19, 0, 0);
const VIP_PREFIX_LEN: u8 = 21;
/// The ports nginx listens on in the lab (HTTP and the HTTPS ones).
const PORTS: [u16; 5] = [80, 443, 8443, 8444, 8445];

/// The `n`th VIP of the prefix (from .1).
fn vip(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(VIP_PREFIX) + 1 + n)
}

/// A targets file: `healthy` TCP targets through `ok` (VIPs × ports), and
/// `unhealthy` through `novip`, which lacks those VIPs.
fn targets_file(healthy: u32, unhealthy: u32, interval_ms: u32) -> String {
    let mut toml = format!(
        "[defaults]\niface = \"{LB_IFACE}\"\ncheck = \"tcp\"\ntimeout_ms = 1000\ninterval_ms = {interval_ms}\n"
    );
    let ports = PORTS.len() as u32;
    for i in 0..healthy {
        let (v, p) = (i / ports, PORTS[(i % ports) as usize]);
        let _ = write!(
            toml,
            "\n[[vip]]\naddress = \"{}\"\nport = {p}\n[[vip.real_server]]\naddress = \"{OK_IP}\"\n",
            vip(v)
        );
    }
    for i in 0..unhealthy {
        let _ = write!(
            toml,
            "\n[[vip]]\naddress = \"{}\"\nport = 80\n[[vip.real_server]]\naddress = \"{NOVIP_IP}\"\n",
            vip(i)
        );
    }
    toml
}

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A lab whose `ok` carries the VIP prefix on its loopback.
fn scale_lab() -> Lab {
    let lab = lab(Role::Backup);
    sh(
        &lab,
        lab.ns(Host::Ok),
        "ip",
        &[
            "address",
            "add",
            &format!("{VIP_PREFIX}/{VIP_PREFIX_LEN}"),
            "dev",
            "lo",
        ],
    );
    lab
}

/// The two tests take both cores each: one at a time.
static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn ten_thousand_targets_in_one_audit() {
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let lab = scale_lab();
    let scratch = Scratch(std::env::temp_dir().join(format!("vck-scale-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let (healthy, unhealthy) = (9_950u32, 50u32);
    let path = scratch.0.join("targets.toml");
    std::fs::write(&path, targets_file(healthy, unhealthy, 5000)).unwrap();
    let path = path.to_string_lossy().into_owned();

    let (out, usage) = run_usage(vipcheck(
        &lab,
        &[
            "audit",
            "--targets",
            &path,
            "--format",
            "json",
            "--parallel",
            "256",
        ],
    ));
    println!(
        "scale: {} targets in one audit: {:.2} s wall, {:.2} s CPU ({:.1} µs per check), peak RSS {} MiB",
        healthy + unhealthy,
        out.elapsed.as_secs_f64(),
        usage.cpu.as_secs_f64(),
        usage.cpu.as_secs_f64() * 1e6 / f64::from(healthy + unhealthy),
        usage.max_rss_kib / 1024
    );
    let (counters, _) = xdp_status(&lab);
    println!("scale: XDP counters after the audit: {counters:?}");
    assert_eq!(out.code, 1, "the novip targets fail: {}", out.stderr);
    let mut seen = (0u32, 0u32);
    let wrong: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| {
            l.contains(&format!("\"real_server\":\"{OK_IP}\""))
                && !l.contains("\"verdict\":\"healthy\"")
        })
        .collect();
    println!(
        "scale: {} wrong verdicts; first: {:?}",
        wrong.len(),
        wrong.first()
    );
    for line in out.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
        let real = v["target"]["real_server"].as_str().unwrap_or_default();
        let verdict = v["verdict"].as_str().map(|v| v == "healthy");
        match real {
            r if r == OK_IP.to_string() => {
                assert_eq!(verdict, Some(true), "{line}");
                seen.0 += 1;
            }
            r if r == NOVIP_IP.to_string() => {
                assert_eq!(verdict, Some(false), "{line}");
                seen.1 += 1;
            }
            _ => panic!("unexpected line {line}"),
        }
    }
    assert_eq!(seen, (healthy, unhealthy), "one verdict per target");
    assert_eq!(xdp_status(&lab).1, 0, "flows left behind");
}

/// The value of the first sample of `name` (with these labels, if given)
/// in a Prometheus text exposition.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name).is_some_and(|rest| {
                rest.starts_with(' ') || rest.starts_with(&format!("{{{labels}"))
            })
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// CPU time (user + system) of a process so far, from /proc/PID/stat.
fn cpu_of(pid: u32) -> std::time::Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    std::time::Duration::from_millis(ticks * 1000 / hz)
}

/// The daemon ends when dropped (SIGTERM, by pid).
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

#[test]
fn ten_thousand_targets_in_the_daemon() {
    let lab = scale_lab();
    let scratch = Scratch(std::env::temp_dir().join(format!("vck-scaled-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let _alone = ALONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Every 5 s, as `cargo xtask bench` measures it (there, in a release
    // build, 20% of one core); this is the debug binary.
    let (healthy, unhealthy, interval_ms) = (9_950u32, 50u32, 5_000u32);
    let path = scratch.0.join("targets.toml");
    std::fs::write(&path, targets_file(healthy, unhealthy, interval_ms)).unwrap();
    let path = path.to_string_lossy().into_owned();
    let port = 9800 + (std::process::id() % 100) as u16;
    let addr = format!("127.0.0.1:{port}");
    let mut cmd = vipcheck(
        &lab,
        &[
            "daemon",
            "--targets",
            &path,
            "--metrics",
            &addr,
            "--parallel",
            "128",
        ],
    );
    cmd.stderr(std::process::Stdio::null());
    let mut daemon = Daemon(cmd.spawn().expect("start the daemon"));
    let pid = daemon.0.id();
    let metrics = || {
        let out = lab
            .command(lab.lb_ns(), "curl")
            .args(["-s", "--max-time", "2", &format!("http://{addr}/metrics")])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Three intervals, the first one spreading the starts.
    std::thread::sleep(std::time::Duration::from_millis(
        u64::from(3 * interval_ms) + 500,
    ));
    let cpu_before = cpu_of(pid);
    let text = metrics();
    let t0 = std::time::Instant::now();
    std::thread::sleep(std::time::Duration::from_millis(u64::from(interval_ms)));
    let cpu_share = (cpu_of(pid) - cpu_before).as_secs_f64() / t0.elapsed().as_secs_f64();
    let targets = sample(&text, "vipcheck_targets", "").expect("vipcheck_targets");
    let overdue = sample(&text, "vipcheck_targets_overdue", "").expect("overdue");
    let up = text
        .lines()
        .filter(|l| l.starts_with("vipcheck_target_up{") && l.ends_with(" 1"))
        .count();
    let down = text
        .lines()
        .filter(|l| l.starts_with("vipcheck_target_up{") && l.ends_with(" 0"))
        .count();
    let cycle = sample(&text, "vipcheck_last_cycle_seconds", "").unwrap_or(f64::NAN);
    println!(
        "scale: daemon, {targets} targets every {interval_ms} ms: {overdue} overdue, {up} up, {down} down, last cycle {cycle:.2} s, CPU share {:.0}% of one core",
        cpu_share * 100.0
    );
    assert_eq!(targets as u32, healthy + unhealthy);
    assert_eq!(overdue, 0.0, "no target overdue");
    assert_eq!(
        (up as u32, down as u32),
        (healthy, unhealthy),
        "every state right"
    );

    // SIGTERM: out within a second, no flow entry left.
    let begun = std::time::Instant::now();
    // SAFETY: a signal to our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = daemon.0.wait().expect("wait");
    let took = begun.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < std::time::Duration::from_secs(1),
        "exit took {took:?}"
    );
    assert_eq!(xdp_status(&lab).1, 0, "flows left behind");
}
