//! `vipcheck daemon` in a real lab: its metrics, its track files, SIGHUP
//! and SIGTERM, and a real keepalived following one of its track files;
//! `vipcheck keepalived snippet` read by keepalived's own config test.

// unsafe: signals sent to the daemon under test.
#![allow(unsafe_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use md5::{Digest, Md5};
use prometheus_parse::{Scrape, Value};
use xtask::lab::{Background, Keepalived, KeepalivedConfig, log_message};

/// Where the daemons of these tests serve /metrics, in the LB's namespace
/// (each lab has its own loopback, so parallel tests do not clash).
const METRICS_ADDR: &str = "127.0.0.1:9187";
const POLL: Duration = Duration::from_millis(25);

/// A scratch directory for input files, track files and logs, removed on
/// drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vck-daemon-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// `vipcheck daemon ARGS` running in the LB's namespace, its stderr in a
/// file. Dropping it (also on a panic) stops it by its pid: SIGTERM, then
/// SIGKILL (the lab's [`Background`]).
struct Daemon<'lab> {
    process: Background<'lab>,
    log: PathBuf,
}

impl<'lab> Daemon<'lab> {
    fn start(lab: &'lab Lab, args: &[&str], log: PathBuf) -> Daemon<'lab> {
        let mut cmd = vipcheck(lab, &["daemon"]);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap());
        // nsenter execs vipcheck: the pid is the daemon's own.
        let process = lab.spawn(&mut cmd).expect("start vipcheck daemon");
        Daemon { process, log }
    }

    /// The daemon of keepalived.conf `conf`: metrics on [`METRICS_ADDR`],
    /// track files in `track`, every second.
    fn of_conf(lab: &'lab Lab, conf: &Path, track: &Path, log: PathBuf) -> Daemon<'lab> {
        let args = [
            "--keepalived",
            s(conf),
            "--metrics",
            METRICS_ADDR,
            "--track-dir",
            s(track),
            "--interval",
            "1000",
        ];
        Daemon::start(lab, &args, log)
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first line of the log containing `pattern`, waiting at most
    /// `timeout`.
    fn wait_log(&self, pattern: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log().lines().find(|l| l.contains(pattern)) {
                return Some(line.to_owned());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.process.pid()).unwrap();
        // SAFETY: plain syscall; the pid is our unreaped child's.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
    }

    /// SIGTERM; how it ended and how long that took (from the signal to
    /// the end of the process), at most `timeout` (then SIGKILL).
    fn terminate(mut self, timeout: Duration) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        self.signal(libc::SIGTERM);
        loop {
            if let Some(status) = self.process.child().try_wait().expect("wait") {
                return (status, start.elapsed());
            }
            if start.elapsed() > timeout {
                let took = start.elapsed();
                let status = self.process.stop().expect("stop");
                return (status, took);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// GET /metrics from the LB's namespace, parsed; `None` when the daemon
/// does not answer (yet).
fn scrape(lab: &Lab) -> Option<Metrics> {
    let out = lab
        .command(lab.lb_ns(), "curl")
        .args(["-sS", "--fail", "-m", "2"])
        .arg(format!("http://{METRICS_ADDR}/metrics"))
        .output()
        .expect("curl");
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).expect("UTF-8 metrics");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("text format");
    Some(Metrics { text, scrape })
}

struct Metrics {
    text: String,
    scrape: Scrape,
}

impl Metrics {
    /// The values of the samples of `name` that have every label of
    /// `labels`.
    fn values(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        self.scrape
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .filter_map(|s| match s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(v),
                Value::Histogram(_) | Value::Summary(_) => None,
            })
            .collect()
    }

    /// The one sample of `name` with `labels`, if any (two is an error).
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let values = self.values(name, labels);
        assert!(values.len() <= 1, "{name} {labels:?}: {values:?}");
        values.first().copied()
    }

    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.values(name, labels).iter().sum()
    }

    /// Whether any sample of the scrape names `real` as its real server.
    fn mentions(&self, real: &str) -> bool {
        self.scrape
            .samples
            .iter()
            .any(|s| s.labels.get("real") == Some(real))
    }

    /// `vipcheck_target_up` of the target `real` (through the VIP, port
    /// 80) checked by `check`.
    fn up(&self, real: impl ToString, check: &str) -> Option<f64> {
        self.get(
            "vipcheck_target_up",
            &[
                ("vip", &VIP.to_string()),
                ("port", "80"),
                ("real", &real.to_string()),
                ("check", check),
            ],
        )
    }
}

/// The track file name of the target `real` checked by `check` through
/// the VIP, port 80.
fn track_file(real: impl ToString, check: &str) -> String {
    format!("vipcheck_{VIP}_80_{}_{check}", real.to_string())
}

/// Polls `f` every [`POLL`] until it returns `Some`, at most `timeout`.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

fn index_md5(lab: &Lab) -> String {
    let index = fs::read(lab.docroot().join("index.html")).expect("the lab's index page");
    hex::encode(Md5::digest(&index))
}

/// keepalived.conf: one virtual server, the VIP port 80, with `reals`
/// (each a `real_server` block's content).
fn keepalived_conf(reals: &[(std::net::Ipv4Addr, String)]) -> String {
    let mut text = format!(
        "global_defs {{\n  router_id lab\n}}\n\n\
         virtual_server {VIP} 80 {{\n  delay_loop 1\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n"
    );
    for (ip, checks) in reals {
        text += &format!("  real_server {ip} 80 {{\n{checks}  }}\n");
    }
    text += "}\n";
    text
}

fn http_get(md5: &str) -> String {
    format!(
        "    HTTP_GET {{\n      url {{\n        path /\n        digest {md5}\n        \
         status_code 200\n      }}\n      connect_timeout 1\n    }}\n"
    )
}

fn tcp_check() -> String {
    "    TCP_CHECK {\n      connect_timeout 1\n    }\n".to_string()
}

#[test]
fn daemon_metrics_and_track_files() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("metrics");
    let md5 = index_md5(&lab);
    let conf = scratch.file(
        "keepalived.conf",
        &keepalived_conf(&[
            (OK_IP, http_get(&md5)),
            (NOVIP_IP, http_get(&md5)),
            (CLOSED_IP, tcp_check()),
            (ABSENT_IP, tcp_check()),
        ]),
    );
    assert_keepalived_reads(&conf);
    let track = scratch.path("track");
    let daemon = Daemon::of_conf(&lab, &conf, &track, scratch.path("daemon.log"));

    // Every target's first result, within 3 intervals (and a start).
    let expected = [
        (OK_IP, "http", 1.0),
        (NOVIP_IP, "http", 0.0),
        (CLOSED_IP, "tcp", 0.0),
        (ABSENT_IP, "tcp", 0.0),
    ];
    let metrics = poll(Duration::from_secs(5), || {
        scrape(&lab).filter(|m| {
            expected
                .iter()
                .all(|(ip, check, _)| m.up(ip, check).is_some())
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no first result of every target within 5 s; metrics:\n{}\nlog:\n{}",
            scrape(&lab).map(|m| m.text).unwrap_or_default(),
            daemon.log()
        )
    });
    for (ip, check, up) in expected {
        assert_eq!(
            metrics.up(ip, check),
            Some(up),
            "{ip} {check}:\n{}",
            metrics.text
        );
        let contents = fs::read_to_string(track.join(track_file(ip, check)))
            .unwrap_or_else(|e| panic!("track file of {ip} {check}: {e}"));
        assert_eq!(
            contents,
            if up == 1.0 { "0\n" } else { "1\n" },
            "{ip} {check}"
        );
        let state = if up == 1.0 { "up" } else { "down" };
        let line =
            format!("vipcheck daemon: {ip} via {VIP}:80 ({check}) is {state} (first check): ");
        assert!(
            daemon.log().contains(&line),
            "no {line:?} in:\n{}",
            daemon.log()
        );
    }
    assert_eq!(
        fs::read_dir(&track).unwrap().count(),
        4,
        "one file a target"
    );
    assert_eq!(metrics.get("vipcheck_targets", &[]), Some(4.0));
    assert!(
        metrics.get("vipcheck_build_info", &[]) == Some(1.0),
        "{}",
        metrics.text
    );
    // Each kind's failures by reason.
    for (check, reason) in [
        ("http", "no_answer"),   // novip: no SYN-ACK through the VIP
        ("tcp", "refused"),      // closed: RST
        ("tcp", "no_neighbour"), // absent: no ARP reply
    ] {
        let failures = metrics.sum(
            "vipcheck_check_failures_total",
            &[("check", check), ("reason", reason)],
        );
        assert!(failures >= 1.0, "{check} {reason}:\n{}", metrics.text);
    }
    assert!(
        metrics.sum(
            "vipcheck_checks_total",
            &[("check", "http"), ("result", "healthy")]
        ) >= 1.0,
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("vipcheck_check_duration_seconds_bucket{"),
        "{}",
        metrics.text
    );

    probes(&lab, &daemon);

    // SIGHUP after a new file: absent goes, a TCP check of ok comes.
    let ok_line = (OK_IP, format!("{}{}", http_get(&md5), tcp_check()));
    fs::write(
        &conf,
        keepalived_conf(&[
            ok_line,
            (NOVIP_IP, http_get(&md5)),
            (CLOSED_IP, tcp_check()),
        ]),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    let reloaded = daemon.wait_log("vipcheck daemon: reloaded: ", Duration::from_secs(3));
    assert_eq!(
        reloaded.as_deref(),
        Some("vipcheck daemon: reloaded: 4 targets (1 added, 1 removed)"),
        "{}",
        daemon.log()
    );
    assert!(
        !track.join(track_file(ABSENT_IP, "tcp")).exists(),
        "the removed target's track file is gone"
    );
    let added = poll(Duration::from_secs(5), || {
        scrape(&lab).filter(|m| m.up(OK_IP, "tcp").is_some())
    })
    .unwrap_or_else(|| panic!("no result of the added target; log:\n{}", daemon.log()));
    assert_eq!(added.up(OK_IP, "tcp"), Some(1.0), "{}", added.text);
    assert!(
        !added.mentions(&ABSENT_IP.to_string()),
        "the removed target's series are gone:\n{}",
        added.text
    );
    // The others keep their state (no new first check).
    assert_eq!(added.up(OK_IP, "http"), Some(1.0), "{}", added.text);
    assert_eq!(added.up(CLOSED_IP, "tcp"), Some(0.0), "{}", added.text);
    assert_eq!(added.get("vipcheck_targets", &[]), Some(4.0));
    assert_eq!(
        fs::read_to_string(track.join(track_file(OK_IP, "tcp"))).unwrap(),
        "0\n"
    );
    let firsts = daemon.log().matches("(first check)").count();
    assert_eq!(firsts, 5, "one first check a target:\n{}", daemon.log());

    // The XDP program's counters, brought up to date every second.
    let delivered = poll(Duration::from_secs(3), || {
        scrape(&lab)?
            .get(
                "vipcheck_xdp_frames_total",
                &[("iface", LB_IFACE), ("verdict", "drop_delivered")],
            )
            .filter(|&n| n > 0.0)
    });
    assert!(delivered.is_some(), "no XDP frames delivered in /metrics");

    // SIGTERM: exit 0 within 1 s, every flow ended, that of a probe
    // running then too (novip: 1 s without an answer).
    let probing = lab
        .command(lab.lb_ns(), "curl")
        .args(["-sS", "-m", "5", "-w", "\n%{http_code}"])
        .arg(format!(
            "http://{METRICS_ADDR}/probe?module=http&target={VIP}:80&real={NOVIP_IP}"
        ))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("curl");
    std::thread::sleep(Duration::from_millis(300));
    let log = daemon.log.clone();
    let (status, took) = daemon.terminate(Duration::from_secs(3));
    let probed = probing.wait_with_output().expect("curl");
    let probed = String::from_utf8_lossy(&probed.stdout);
    // Interrupted (an error: probe_success 0), or 503 when the loop had
    // already stopped.
    assert!(
        probed.ends_with("\n503")
            || (probed.ends_with("\n200")
                && probed.contains("probe_vipcheck_failure{code=\"interrupted\"} 1")),
        "a probe at SIGTERM: {probed}"
    );
    let log = fs::read_to_string(log).unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}:\n{log}");
    assert!(
        took < Duration::from_secs(1),
        "SIGTERM took {took:?}:\n{log}"
    );
    assert!(log.contains("vipcheck daemon: stopped by SIGTERM"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let (_, flows) = xdp_status(&lab);
    assert_eq!(flows, 0, "no flow entry left");
    println!(
        "daemon_metrics_and_track_files: SIGTERM to exit {took:?}, test {:?}",
        test_start.elapsed()
    );
}

/// `GET /probe?QUERY` from the LB's namespace, with the request header
/// `header` when given: the status, the body and curl's time to the end
/// of the answer.
fn probe(lab: &Lab, query: &str, header: Option<&str>) -> (u16, String, Duration) {
    let mut cmd = lab.command(lab.lb_ns(), "curl");
    cmd.args(["-sS", "-m", "5", "-w", "\n%{http_code} %{time_total}"]);
    if let Some(header) = header {
        cmd.args(["-H", header]);
    }
    let out = cmd
        .arg(format!("http://{METRICS_ADDR}/probe?{query}"))
        .output()
        .expect("curl");
    let text = String::from_utf8(out.stdout).expect("UTF-8 answer");
    let (body, tail) = text.rsplit_once('\n').expect("curl's -w line");
    let (code, took) = tail.split_once(' ').expect("code and time");
    let took = Duration::from_secs_f64(took.parse().expect("time_total"));
    (code.parse().expect("status"), body.to_owned(), took)
}

/// A 200 answer of `/probe`, parsed.
fn probed(lab: &Lab, query: &str, header: Option<&str>) -> (Metrics, Duration) {
    let (code, text, took) = probe(lab, query, header);
    assert_eq!(code, 200, "{query}: {text}");
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("text format");
    (Metrics { text, scrape }, took)
}

/// `/probe` of the daemon of [`daemon_metrics_and_track_files`] (ok's
/// HTTP, novip's HTTP, closed's and absent's TCP through the VIP, port
/// 80): healthy, unhealthy with its failure code, a scrape timeout that
/// cuts the check short, and targets outside the configuration: 404
/// without a frame on the wire.
fn probes(lab: &Lab, daemon: &Daemon<'_>) {
    let started = Instant::now();
    let q =
        |module: &str, vip: &str, real: &str| format!("module={module}&target={vip}&real={real}");
    let vip80 = format!("{VIP}:80");
    // Percent-encoded, as Prometheus sends it.
    let encoded = format!("{VIP}%3A80");
    let (ok, _) = probed(lab, &q("http", &encoded, &OK_IP.to_string()), None);
    assert_eq!(ok.get("probe_success", &[]), Some(1.0), "{}", ok.text);
    assert!(ok.get("probe_duration_seconds", &[]).unwrap() > 0.0);
    assert_eq!(ok.values("probe_vipcheck_failure", &[]), Vec::<f64>::new());
    assert_eq!(
        ok.get(
            "probe_vipcheck_info",
            &[("check", "http"), ("result", "healthy")]
        ),
        Some(1.0),
        "{}",
        ok.text
    );
    let (closed, _) = probed(lab, &q("tcp", &vip80, &CLOSED_IP.to_string()), None);
    assert_eq!(
        closed.get("probe_success", &[]),
        Some(0.0),
        "{}",
        closed.text
    );
    assert_eq!(
        closed.get("probe_vipcheck_failure", &[("code", "refused")]),
        Some(1.0),
        "{}",
        closed.text
    );
    // novip never answers: its check (connect_timeout 1) ends at the
    // scrape timeout's deadline, 0.5 s less 10%, and the answer comes
    // within the scrape timeout.
    let (novip, took) = probed(
        lab,
        &q("http", &vip80, &NOVIP_IP.to_string()),
        Some("X-Prometheus-Scrape-Timeout-Seconds: 0.5"),
    );
    assert_eq!(novip.get("probe_success", &[]), Some(0.0), "{}", novip.text);
    assert_eq!(
        novip.get("probe_vipcheck_timeout_seconds", &[]),
        Some(0.45),
        "{}",
        novip.text
    );
    let duration = novip.get("probe_duration_seconds", &[]).unwrap();
    assert!((0.4..0.5).contains(&duration), "{}", novip.text);
    assert!(took < Duration::from_millis(500), "answered in {took:?}");
    assert_eq!(
        novip.values("probe_vipcheck_failure", &[]),
        vec![1.0],
        "{}",
        novip.text
    );

    // Outside the configuration: 404 (400 when malformed), and not a
    // frame of the LB to where such a check would go.
    nft(
        lab,
        lab.switch_ns(),
        &format!(
            "table bridge vckprobe {{\n counter stray {{}}\n chain pre {{\n  \
             type filter hook prerouting priority -300;\n  \
             ether saddr {lb} tcp dport 8080 counter name stray\n  \
             ether saddr {lb} ip daddr 198.18.0.200 counter name stray\n  \
             ether saddr {lb} arp daddr ip 198.18.0.77 counter name stray\n }}\n}}\n",
            lb = lab.mac(Host::Lb)
        ),
    );
    let stray = || {
        let listing = sh(
            lab,
            lab.switch_ns(),
            "nft",
            &["list", "counter", "bridge", "vckprobe", "stray"],
        );
        let words: Vec<&str> = listing.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "packets").expect("counter");
        words[at + 1].parse::<u64>().expect("packets")
    };
    let before = stray();
    let ok_ip = OK_IP.to_string();
    for (query, status) in [
        (q("tcp", &format!("{VIP}:8080"), &ok_ip), 404), // no such port
        (q("tcp", "198.18.0.200:80", &ok_ip), 404),      // no such VIP
        (q("tcp", &vip80, "198.18.0.77"), 404),          // no such real server
        (q("https", &vip80, &ok_ip), 404),               // not its check
        (q("tcp", &vip80, &format!("{OK_IP}:8080")), 404), // not its port
        (q("tcp", &VIP.to_string(), &ok_ip), 400),       // no port
        (q("tcp", &vip80, "198.18.0.0/24"), 400),        // not an address
        (format!("target={vip80}&real={ok_ip}"), 400),   // no module
    ] {
        let (code, body, _) = probe(lab, &query, None);
        assert_eq!(code, status, "{query}: {body}");
    }
    let (code, body, _) = probe(
        lab,
        &q("http", &vip80, &ok_ip),
        Some("X-Prometheus-Scrape-Timeout-Seconds: soon"),
    );
    assert_eq!(code, 400, "{body}");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        stray(),
        before,
        "a frame of a probe outside the configuration"
    );
    assert!(!daemon.log().contains("panicked"), "{}", daemon.log());
    println!("probes: {:?}", started.elapsed());
}

/// keepalived's lines from index `from` on, waiting at most `timeout` for
/// one whose message `matches`; its index.
fn wait_line_after(
    keepalived: &Keepalived<'_>,
    from: usize,
    timeout: Duration,
    matches: impl Fn(&str) -> bool,
) -> Option<usize> {
    poll(timeout, || {
        keepalived
            .lines()
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, l)| matches(log_message(l)))
            .map(|(i, _)| i)
    })
}

/// A state the VRRP instance `lab` enters: `(lab) Entering FAULT STATE`.
fn entering(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("(lab) Entering ")?;
    rest.split(' ').next()
}

/// Changes of ok's TCP target's damped state so far (none: 0).
fn state_changes(m: &Metrics) -> f64 {
    m.sum(
        "vipcheck_target_state_changes_total",
        &[("real", &OK_IP.to_string()), ("check", "tcp")],
    )
}

/// Healthy and failed (unhealthy or error) TCP checks so far.
fn tcp_results(m: &Metrics) -> (f64, f64) {
    let count = |result| {
        m.sum(
            "vipcheck_checks_total",
            &[("check", "tcp"), ("result", result)],
        )
    };
    (count("healthy"), count("unhealthy") + count("error"))
}

#[test]
fn keepalived_follows_a_track_file_of_the_daemon() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("keepalived");
    let targets = scratch.file(
        "targets.toml",
        &format!(
            "[defaults]\niface = \"{LB_IFACE}\"\ntimeout_ms = 300\ncheck = \"tcp\"\n\n\
             [[vip]]\naddress = \"{VIP}\"\nport = 80\n\n\
             [[vip.real_server]]\naddress = \"{OK_IP}\"\n"
        ),
    );
    let track = scratch.path("track");
    fs::create_dir_all(&track).unwrap();

    // The names keepalived is told, as the snippet prints them.
    let snippet = run(vipcheck(
        &lab,
        &[
            "keepalived",
            "snippet",
            "--targets",
            s(&targets),
            "--track-dir",
            s(&track),
        ],
    ));
    assert_eq!(snippet.code, 0, "{snippet:?}");
    let (name, file) = track_file_blocks(&snippet.stdout)
        .pop()
        .unwrap_or_else(|| panic!("no track_file block: {}", snippet.stdout));
    assert_eq!(name, "vipcheck_198_18_0_100_80_198_18_0_11_tcp");
    assert_eq!(file, track.join(track_file(OK_IP, "tcp")));

    let daemon = Daemon::start(
        &lab,
        &[
            "--targets",
            s(&targets),
            "--metrics",
            METRICS_ADDR,
            "--track-dir",
            s(&track),
            "--rise",
            "2",
            "--fall",
            "3",
            "--interval",
            "500",
        ],
        scratch.path("daemon.log"),
    );
    let read = || fs::read_to_string(&file).unwrap_or_default();
    assert!(
        poll(Duration::from_secs(3), || (read() == "0\n").then_some(())).is_some(),
        "track file {file:?} {:?}; log:\n{}",
        read(),
        daemon.log()
    );

    let keepalived = lab
        .keepalived(&KeepalivedConfig::default().track_file(&name, &file, 0))
        .expect("keepalived starts");
    let dump = |k: &Keepalived<'_>| {
        format!(
            "keepalived:\n{}\ndaemon:\n{}",
            k.lines().join("\n"),
            daemon.log()
        )
    };
    // Out of FAULT while ok serves: BACKUP, never FAULT.
    let backup = wait_line_after(&keepalived, 0, Duration::from_secs(3), |m| {
        entering(m).is_some()
    })
    .unwrap_or_else(|| panic!("no state entered; {}", dump(&keepalived)));
    let lines = keepalived.lines();
    assert_eq!(
        entering(log_message(&lines[backup])),
        Some("BACKUP"),
        "{}",
        dump(&keepalived)
    );
    assert!(
        !lines.iter().any(|l| l.contains("FAULT")),
        "{}",
        dump(&keepalived)
    );

    // ok stops serving: down after exactly 3 failures.
    let before = scrape(&lab).expect("metrics");
    let (_, failed_before) = tcp_results(&before);
    assert_eq!(before.up(OK_IP, "tcp"), Some(1.0), "{}", before.text);
    let changes_before = state_changes(&before);
    // ok's service dies: nginx stopped.
    lab.stop_nginx(Host::Ok).expect("stop nginx on ok");
    let mut first_down = None;
    let mut steps = Vec::new();
    let down = poll(Duration::from_secs(5), || {
        let m = scrape(&lab)?;
        let failures = tcp_results(&m).1 - failed_before;
        let up = m.up(OK_IP, "tcp")?;
        steps.push((failures, up));
        if up == 0.0 && first_down.is_none() {
            first_down = Some(failures);
        }
        (up == 0.0).then_some(m)
    });
    assert!(
        down.is_some(),
        "not down within 5 s: {steps:?}; {}",
        dump(&keepalived)
    );
    // Up while fewer than 3 failures, down from the 3rd.
    for &(failures, up) in &steps {
        assert_eq!(up == 1.0, failures < 3.0, "{steps:?}");
    }
    assert!(
        steps.iter().any(|&(f, _)| f == 2.0),
        "2 failures seen while up: {steps:?}"
    );
    assert_eq!(first_down, Some(3.0), "{steps:?}");
    let line = daemon
        .wait_log("(tcp) is down after 3 failures: ", Duration::from_secs(1))
        .unwrap_or_else(|| panic!("no down line; {}", dump(&keepalived)));
    assert!(
        line.starts_with(&format!(
            "vipcheck daemon: {OK_IP} via {VIP}:80 (tcp) is down after 3 failures: connection refused"
        )),
        "{line}"
    );
    assert_eq!(read(), "1\n");
    let fault = wait_line_after(&keepalived, backup, Duration::from_secs(3), |m| {
        entering(m) == Some("FAULT")
    })
    .unwrap_or_else(|| panic!("keepalived not in FAULT; {}", dump(&keepalived)));
    // Because of the file.
    let lines = keepalived.lines();
    assert_eq!(
        log_message(&lines[fault - 1]),
        format!("(lab): tracked file {name} now FAULT state"),
        "{}",
        dump(&keepalived)
    );

    // Serving again: up after exactly 2 successes, keepalived out of FAULT.
    let before = scrape(&lab).expect("metrics");
    let (healthy_before, _) = tcp_results(&before);
    assert_eq!(before.up(OK_IP, "tcp"), Some(0.0), "{}", before.text);
    assert_eq!(
        state_changes(&before),
        changes_before + 1.0,
        "{}",
        before.text
    );
    lab.start_nginx(Host::Ok).expect("start nginx on ok");
    let mut first_up = None;
    let mut steps = Vec::new();
    let up = poll(Duration::from_secs(5), || {
        let m = scrape(&lab)?;
        let successes = tcp_results(&m).0 - healthy_before;
        let up = m.up(OK_IP, "tcp")?;
        steps.push((successes, up));
        if up == 1.0 && first_up.is_none() {
            first_up = Some(successes);
        }
        (up == 1.0).then_some(m)
    });
    let up = up.unwrap_or_else(|| panic!("not up within 5 s: {steps:?}; {}", dump(&keepalived)));
    assert_eq!(state_changes(&up), changes_before + 2.0, "{}", up.text);
    for &(successes, up) in &steps {
        assert_eq!(up == 1.0, successes >= 2.0, "{steps:?}");
    }
    assert_eq!(first_up, Some(2.0), "{steps:?}");
    let line = daemon
        .wait_log("(tcp) is up after 2 successes: ", Duration::from_secs(1))
        .unwrap_or_else(|| panic!("no up line; {}", dump(&keepalived)));
    assert!(
        line.starts_with(&format!(
            "vipcheck daemon: {OK_IP} via {VIP}:80 (tcp) is up after 2 successes: "
        )),
        "{line}"
    );
    assert_eq!(read(), "0\n");
    let left = wait_line_after(&keepalived, fault + 1, Duration::from_secs(3), |m| {
        matches!(entering(m), Some("BACKUP" | "MASTER"))
    })
    .unwrap_or_else(|| panic!("keepalived still in FAULT; {}", dump(&keepalived)));
    let lines = keepalived.lines();
    assert_eq!(
        log_message(&lines[left - 1]),
        format!("(lab): tracked file {name} leaving FAULT state"),
        "{}",
        dump(&keepalived)
    );

    let stopped = keepalived.stop().expect("keepalived stops");
    assert!(stopped.status.success(), "{:?}", stopped.status);
    let log = daemon.log.clone();
    let (status, _) = daemon.terminate(Duration::from_secs(3));
    let log = fs::read_to_string(log).unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}:\n{log}");
    assert!(log.contains("vipcheck daemon: stopped by SIGTERM"), "{log}");
    println!(
        "keepalived_follows_a_track_file_of_the_daemon: test {:?}",
        test_start.elapsed()
    );
}

/// The `track_file NAME { file "PATH" ... }` blocks of a snippet.
fn track_file_blocks(snippet: &str) -> Vec<(String, PathBuf)> {
    let lines: Vec<&str> = snippet.lines().collect();
    lines
        .windows(2)
        .filter_map(|w| {
            let name = w[0].strip_prefix("track_file ")?.strip_suffix(" {")?;
            let path = w[1].trim().strip_prefix("file \"")?.strip_suffix('"')?;
            Some((name.to_owned(), PathBuf::from(path)))
        })
        .collect()
}

/// What `keepalived -t -f FILE` (its configuration test) says of `text`:
/// its exit status and its complaints.
fn keepalived_config_test_of(scratch: &Scratch, text: &str) -> (i32, String) {
    keepalived_config_test(&scratch.file("keepalived-test.conf", text))
}

#[test]
fn keepalived_accepts_the_snippet() {
    let scratch = Scratch::new("snippet");
    let targets = scratch.file(
        "targets.toml",
        &format!(
            "[[vip]]\naddress = \"{VIP}\"\nport = 80\n\n\
             [[vip.real_server]]\naddress = \"{OK_IP}\"\n\n\
             [[vip.real_server]]\naddress = \"{NOVIP_IP}\"\ncheck = \"http\"\nhost = \"lab.example\"\npath = \"/\"\n"
        ),
    );
    let track = scratch.path("track");
    let out = Command::new(VIPCHECK)
        .args([
            "keepalived",
            "snippet",
            "--targets",
            s(&targets),
            "--track-dir",
            s(&track),
        ])
        .output()
        .expect("vipcheck keepalived snippet");
    assert!(out.status.success(), "{out:?}");
    let snippet = String::from_utf8(out.stdout).unwrap();
    let blocks = track_file_blocks(&snippet);
    assert_eq!(
        blocks,
        [
            (
                "vipcheck_198_18_0_100_80_198_18_0_11_tcp".to_string(),
                track.join(track_file(OK_IP, "tcp"))
            ),
            (
                "vipcheck_198_18_0_100_80_198_18_0_12_http".to_string(),
                track.join(track_file(NOVIP_IP, "http"))
            ),
        ],
        "{snippet}"
    );
    // As printed, the virtual server lacks what the snippet leaves to the
    // reader (`# ... your lb_algo`): keepalived's test says only that.
    let (code, said) = keepalived_config_test_of(&scratch, &snippet);
    for complaint in said.lines() {
        assert!(
            complaint.contains("no scheduler set"),
            "keepalived -t: {complaint}\n{snippet}"
        );
    }
    assert!(code == 0 || !said.is_empty(), "exit {code} without a word");
    // With the scheduler filled in where the snippet says: no complaint.
    let placeholder = "    # ... your lb_algo, delay_loop and other settings\n";
    assert!(snippet.contains(placeholder), "{snippet}");
    let completed = snippet.replace(placeholder, &format!("{placeholder}    lb_algo rr\n"));
    let (code, said) = keepalived_config_test_of(&scratch, &completed);
    assert_eq!((code, said.as_str()), (0, ""), "{completed}");
}

/// From a keepalived.conf whose checks connect to other ports than their
/// virtual server's (`connect_port`, a MISC_CHECK's port), the snippet
/// keys every block by the virtual and real server it came from:
/// keepalived accepts it, and its virtual servers are exactly the
/// original ones.
#[test]
fn the_snippet_keeps_the_virtual_servers_of_a_keepalived_conf() {
    if !Path::new("/usr/sbin/keepalived").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "keepalived is missing (CI is set)"
        );
        eprintln!("skipped: /usr/sbin/keepalived is missing");
        return;
    }
    let scratch = Scratch::new("snippet-conf");
    let original = format!(
        "virtual_server {VIP} 443 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
           real_server {OK_IP} 443 {{\n\
             TCP_CHECK {{\n      connect_port 80\n    }}\n\
             HTTP_GET {{\n      url {{\n        path /\n      }}\n      url {{\n        path /healthz\n      }}\n    }}\n\
           }}\n\
         }}\n\
         virtual_server {VIP} 22 {{\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
           real_server {OK_IP} 22 {{\n\
             MISC_CHECK {{\n      misc_path \"/usr/local/bin/check_tcp_raw -t 300 {LB_IFACE} {OK_IP} {VIP} 80\"\n    }}\n\
           }}\n\
         }}\n"
    );
    let conf = scratch.file("keepalived.conf", &original);
    let (code, said) = keepalived_config_test_of(&scratch, &original);
    assert_eq!((code, said.as_str()), (0, ""), "the original: {original}");
    let track = scratch.path("track");
    let out = Command::new(VIPCHECK)
        .args([
            "keepalived",
            "snippet",
            "--keepalived",
            s(&conf),
            "--track-dir",
            s(&track),
        ])
        .output()
        .expect("vipcheck keepalived snippet");
    assert!(out.status.success(), "{out:?}");
    let snippet = String::from_utf8(out.stdout).unwrap();
    let servers = |text: &str, word: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| l.starts_with(word))
            .map(|l| l.trim_end_matches('{').trim().to_string())
            .collect()
    };
    assert_eq!(
        servers(&snippet, "virtual_server "),
        [
            format!("virtual_server {VIP} 443"),
            format!("virtual_server {VIP} 22")
        ],
        "{snippet}"
    );
    assert_eq!(
        servers(&snippet, "real_server "),
        [
            format!("real_server {OK_IP} 443"),
            format!("real_server {OK_IP} 22")
        ],
        "{snippet}"
    );
    let names: Vec<String> = track_file_blocks(&snippet)
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(
        names,
        [
            "vipcheck_198_18_0_100_443_198_18_0_11_tcp-port80",
            "vipcheck_198_18_0_100_443_198_18_0_11_http",
            "vipcheck_198_18_0_100_443_198_18_0_11_http-healthz",
            "vipcheck_198_18_0_100_22_198_18_0_11_tcp-port80",
        ],
        "{snippet}"
    );
    let placeholder = "    # ... your lb_algo, delay_loop and other settings\n";
    let completed = snippet.replace(placeholder, &format!("{placeholder}    lb_algo rr\n"));
    let (code, said) = keepalived_config_test_of(&scratch, &completed);
    assert_eq!((code, said.as_str()), (0, ""), "{completed}");
}

/// SIGHUP with only timing changes (delay_loop, connect_timeout, retry):
/// every target keeps its state, its metrics and its track file, which is
/// never missing (keepalived reads a missing file as up) and never flips.
/// One target checks port 80 of virtual server 443 (`connect_port`): its
/// file, labels and log line name port 443 and the checked port apart.
#[test]
fn a_timing_only_reload_keeps_every_track_file() {
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("timing-reload");
    let conf_with = |delay: u32, timeout: u32, retry: u32| {
        let check = format!(
            "    TCP_CHECK {{\n      connect_timeout {timeout}\n      retry {retry}\n    }}\n"
        );
        let mut text = keepalived_conf(&[(OK_IP, check.clone()), (CLOSED_IP, check)])
            .replace("delay_loop 1", &format!("delay_loop {delay}"));
        text += &format!(
            "virtual_server {VIP} 443 {{\n  delay_loop {delay}\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n\
               real_server {OK_IP} 443 {{\n    TCP_CHECK {{\n      connect_port 80\n      \
               connect_timeout {timeout}\n      retry {retry}\n    }}\n  }}\n}}\n"
        );
        text
    };
    let conf = scratch.file("keepalived.conf", &conf_with(1, 1, 1));
    assert_keepalived_reads(&conf);
    let track = scratch.path("track");
    let daemon = Daemon::start(
        &lab,
        &[
            "--keepalived",
            s(&conf),
            "--metrics",
            METRICS_ADDR,
            "--track-dir",
            s(&track),
        ],
        scratch.path("daemon.log"),
    );
    let files = [
        (track.join(track_file(OK_IP, "tcp")), "0\n"),
        (track.join(track_file(CLOSED_IP, "tcp")), "1\n"),
        (
            track.join(format!("vipcheck_{VIP}_443_{OK_IP}_tcp-port80")),
            "0\n",
        ),
    ];
    let settled = poll(Duration::from_secs(5), || {
        files
            .iter()
            .all(|(f, want)| fs::read_to_string(f).is_ok_and(|v| v == *want))
            .then_some(())
    });
    assert!(settled.is_some(), "no first results:\n{}", daemon.log());
    let before = scrape(&lab).expect("metrics");
    assert_eq!(before.up(OK_IP, "tcp"), Some(1.0), "{}", before.text);
    assert_eq!(before.up(CLOSED_IP, "tcp"), Some(0.0), "{}", before.text);
    let port_80_of_443 = [("port", "443"), ("check", "tcp-port80")];
    assert_eq!(
        before.get("vipcheck_target_up", &port_80_of_443),
        Some(1.0),
        "{}",
        before.text
    );
    let line = format!(
        "vipcheck daemon: {OK_IP} via {VIP}:443 (tcp-port80, checking port 80) is up (first check): "
    );
    assert!(
        daemon.log().contains(&line),
        "{line:?} not in:\n{}",
        daemon.log()
    );

    fs::write(&conf, conf_with(2, 2, 3)).unwrap();
    assert_keepalived_reads(&conf);
    daemon.signal(libc::SIGHUP);
    // Watched from the signal on, every 50 ms, for two of the new
    // intervals: never missing, never another value.
    let watch = Instant::now();
    let mut seen = 0;
    while watch.elapsed() < Duration::from_secs(4) {
        for (file, want) in &files {
            match fs::read_to_string(file) {
                Ok(v) => assert_eq!(&v, want, "{} flipped:\n{}", file.display(), daemon.log()),
                Err(e) => panic!(
                    "{} missing {:?} after SIGHUP: {e}\n{}",
                    file.display(),
                    watch.elapsed(),
                    daemon.log()
                ),
            }
        }
        seen += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(seen > 40, "polled {seen} times");
    let log = daemon.log();
    assert!(
        log.contains("vipcheck daemon: reloaded: 3 targets (0 added, 0 removed)"),
        "{log}"
    );
    assert_eq!(log.matches("(first check)").count(), 3, "{log}");
    assert!(!log.contains("panicked"), "{log}");
    let after = scrape(&lab).expect("metrics");
    assert_eq!(after.up(OK_IP, "tcp"), Some(1.0), "{}", after.text);
    assert_eq!(after.up(CLOSED_IP, "tcp"), Some(0.0), "{}", after.text);
    assert_eq!(
        state_changes(&after),
        state_changes(&before),
        "{}",
        after.text
    );
}

/// keepalived.conf with every checker of a non-HTTP service, each through
/// the VIP path on real services (dnsmasq, socat, exim): `keepalived -t`
/// reads it, `vipcheck audit` judges each as keepalived's checker would
/// through the VIP, and the daemon's metrics and track files follow.
#[test]
fn every_checker_of_a_keepalived_conf() {
    use xtask::lab::{DNS_NAME, SMTP_PORT, UDP_ECHO_PORT, UDP_WRONG_SOURCE_PORT};
    let lab = lab(Role::Backup);
    let _services = lab.start_services().expect("services");
    let scratch = Scratch::new("checkers");
    let vs = |port: u16, protocol: &str, reals: &[(std::net::Ipv4Addr, &str)]| {
        let mut text = format!(
            "virtual_server {VIP} {port} {{\n  delay_loop 1\n  lb_kind DR\n  protocol {protocol}\n"
        );
        for (ip, checker) in reals {
            text += &format!("  real_server {ip} {port} {{\n    {checker}\n  }}\n");
        }
        text + "}\n"
    };
    let echo = "UDP_CHECK {\n      payload 68656c6c6f\n      require_reply 68656c6c6f\n      connect_timeout 1\n    }";
    let silent = "UDP_CHECK {\n      connect_timeout 1\n    }";
    let conf = scratch.file(
        "keepalived.conf",
        &[
            vs(
                53,
                "UDP",
                &[
                    (
                        OK_IP,
                        &format!("DNS_CHECK {{\n      type A\n      name {DNS_NAME}\n      connect_timeout 1\n    }}"),
                    ),
                    (CLOSED_IP, "DNS_CHECK {\n      connect_timeout 1\n    }"),
                ],
            ),
            vs(
                UDP_ECHO_PORT,
                "UDP",
                &[(OK_IP, echo), (NOVIP_IP, silent), (CLOSED_IP, silent)],
            ),
            vs(
                UDP_WRONG_SOURCE_PORT,
                "UDP",
                &[(OK_IP, "UDP_CHECK {\n      require_reply\n      connect_timeout 1\n    }")],
            ),
            vs(
                SMTP_PORT,
                "TCP",
                &[
                    (OK_IP, "SMTP_CHECK {\n      helo_name lb.lab.test\n      connect_timeout 1\n    }"),
                    (NOVIP_IP, "PING_CHECK {\n      connect_timeout 1\n    }"),
                    (CLOSED_IP, "PING_CHECK {\n      connect_timeout 1\n    }"),
                ],
            ),
        ]
        .concat(),
    );
    assert_keepalived_reads(&conf);

    // (real server, VIP port, check, healthy, failure code or the reason's words)
    let expected = [
        (OK_IP, 53, "dns", true, "1 answer: 198.18.0.100"),
        (CLOSED_IP, 53, "dns", false, "port_unreachable"),
        (OK_IP, UDP_ECHO_PORT, "udp", true, "reply of 5 bytes"),
        // keepalived's UDP_CHECK without require_reply: silence is up.
        (
            NOVIP_IP,
            UDP_ECHO_PORT,
            "udp",
            true,
            "keepalived's UDP_CHECK counts silence as up",
        ),
        (CLOSED_IP, UDP_ECHO_PORT, "udp", false, "port_unreachable"),
        (OK_IP, UDP_WRONG_SOURCE_PORT, "udp", false, "wrong_source"),
        (OK_IP, SMTP_PORT, "smtp", true, "HELO 250"),
        (NOVIP_IP, SMTP_PORT, "ping", false, "no_answer"),
        (
            CLOSED_IP,
            SMTP_PORT,
            "ping",
            true,
            "echo reply from the VIP",
        ),
    ];
    let audit = run(vipcheck(
        &lab,
        &["audit", "--keepalived", s(&conf), "--format", "json"],
    ));
    assert_eq!(audit.code, 1, "{audit:?}");
    let objects: Vec<serde_json::Value> = audit
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(objects.len(), expected.len(), "{}", audit.stdout);
    for (ip, port, check, healthy, words) in expected {
        let object = objects
            .iter()
            .find(|o| {
                // A ping's target has no port (JSON null).
                let at = if check == "ping" { None } else { Some(port) };
                o["target"]["real_server"] == ip.to_string()
                    && o["target"]["port"].as_u64() == at.map(u64::from)
                    && o["check"] == check
            })
            .unwrap_or_else(|| panic!("no {ip}:{port} {check} in {}", audit.stdout));
        assert_eq!(object["verdict"] == "healthy", healthy, "{object}");
        let text = format!("{} {}", object["failure"], object["reason"]);
        assert!(text.contains(words), "{words:?} in {object}");
    }

    let track = scratch.path("track");
    let daemon = Daemon::of_conf(&lab, &conf, &track, scratch.path("daemon.log"));
    let up = |m: &Metrics, ip: std::net::Ipv4Addr, port: u16, check: &str| {
        m.get(
            "vipcheck_target_up",
            &[
                ("vip", &VIP.to_string()),
                ("port", &port.to_string()),
                ("real", &ip.to_string()),
                ("check", check),
            ],
        )
    };
    let metrics = poll(Duration::from_secs(6), || {
        scrape(&lab).filter(|m| {
            expected
                .iter()
                .all(|(ip, port, check, ..)| up(m, *ip, *port, check).is_some())
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "no first result of every target within 6 s; metrics:\n{}\nlog:\n{}",
            scrape(&lab).map(|m| m.text).unwrap_or_default(),
            daemon.log()
        )
    });
    for (ip, port, check, healthy, _) in expected {
        let value = if healthy { 1.0 } else { 0.0 };
        assert_eq!(
            up(&metrics, ip, port, check),
            Some(value),
            "{ip}:{port} {check}"
        );
        let udp = if port == SMTP_PORT { "" } else { "-udp" };
        let name = format!("vipcheck_{VIP}_{port}{udp}_{ip}_{check}");
        let contents = fs::read_to_string(track.join(&name))
            .unwrap_or_else(|e| panic!("track file {name}: {e}"));
        assert_eq!(contents, if healthy { "0\n" } else { "1\n" }, "{name}");
    }
    for reason in ["port_unreachable", "wrong_source", "no_answer"] {
        assert!(
            metrics.sum("vipcheck_check_failures_total", &[("reason", reason)]) >= 1.0,
            "{reason}:\n{}",
            metrics.text
        );
    }
    let (status, _) = daemon.terminate(Duration::from_secs(3));
    assert!(status.success(), "{status:?}");
}
