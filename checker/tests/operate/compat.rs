//! vipcheck under the C checkers' names, and what keepalived and monitors
//! need of every entry point: the C command lines and exit statuses, stop
//! signals, pcap, JSON and Nagios output, an empty environment, host
//! names. Real labs, real nginx, the real XDP program.

// unsafe: signals sent to the checks under test.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use md5::{Digest, Md5};
use xtask::lab::INDEX_HTML;

/// A directory with the three C names linked to vipcheck
/// (`vipcheck compat install`), removed on drop. Beside the binary: on its
/// file system the links are hard links, as keepalived needs them.
struct Links(PathBuf);

impl Links {
    fn new() -> Links {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::path::Path::new(VIPCHECK)
            .with_file_name(format!("vck-compat-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for _ in 0..2 {
            // Twice: the second run must change nothing (idempotent).
            let out = Command::new(VIPCHECK)
                .args(["compat", "install"])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        }
        Links(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// A file, for role files and captures.
    fn file(&self, name: &str, content: Option<&str>) -> PathBuf {
        let path = self.0.join(name);
        if let Some(content) = content {
            std::fs::write(&path, content).unwrap();
        }
        path
    }
}

impl Drop for Links {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `NAME ARGS` in the LB namespace.
fn compat(lab: &Lab, links: &Links, name: &str, args: &[&str]) -> Run {
    let mut cmd = lab.command(lab.lb_ns(), links.path(name));
    cmd.args(args);
    run(cmd)
}

fn index_md5() -> String {
    hex::encode(Md5::digest(INDEX_HTML.as_bytes()))
}

/// The C manuals' sample lines, against `rs`, with role file `role`.
fn sample_lines(rs: &str, role: &str, md5: &str) -> Vec<(&'static str, Vec<String>)> {
    let vip = VIP.to_string();
    let s = |v: &[&str]| {
        v.iter()
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>()
    };
    vec![
        (
            "check_tcp_raw",
            s(&["-vv", "-t", "500", "-r", role, LB_IFACE, rs, &vip, "80"]),
        ),
        (
            "check_http_get_raw",
            s(&[
                "-vv",
                "-t",
                "500",
                "-r",
                role,
                LB_IFACE,
                rs,
                &vip,
                "80",
                "lab.example",
                "/",
                md5,
            ]),
        ),
        (
            "check_http_raw",
            s(&[
                "-vv",
                "-t",
                "500",
                "-r",
                role,
                "-S",
                "200",
                "-A",
                md5,
                "-R",
                "Content-Type: text/html",
                LB_IFACE,
                rs,
                &vip,
                "80",
                "lab.example",
                "/",
            ]),
        ),
    ]
}

fn sample_verdicts(role: Role) {
    let lab = lab(role);
    let links = Links::new();
    let master = links.file("role-master", Some("1\n"));
    let backup = links.file("role-backup", Some("0\n"));
    let missing = links.file("role-missing", None);
    let md5 = index_md5();
    for role_file in [&master, &backup, &missing] {
        let role_file = role_file.to_str().unwrap();
        for (rs, expected) in [(OK_IP, 0), (NOVIP_IP, 1), (CLOSED_IP, 1)] {
            for (name, args) in sample_lines(&rs.to_string(), role_file, &md5) {
                let words: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = compat(&lab, &links, name, &words);
                assert_eq!(out.code, expected, "{role:?} LB, {name} {args:?}: {out:?}");
                assert!(!out.stderr.contains("panicked"), "{name} {args:?}: {out:?}");
                if expected == 0 {
                    // The C trace: parameters, ARP at -vv, TCP frames.
                    assert!(out.stderr.starts_with("[PARAMS] iface: eth0, "), "{out:?}");
                    if name == "check_tcp_raw" {
                        assert!(out.stderr.contains("ARP request who has"), "{out:?}");
                        assert!(out.stderr.contains("Flags [S.], seq "), "{out:?}");
                    } else {
                        assert!(out.stderr.contains("* HTTP Body MD5 is "), "{out:?}");
                    }
                }
            }
        }
    }
    // No per-reply timeout at all.
    let ok = OK_IP.to_string();
    let vip = VIP.to_string();
    let out = compat(
        &lab,
        &links,
        "check_tcp_raw",
        &["-t", "0", LB_IFACE, &ok, &vip, "80"],
    );
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn c_sample_lines_on_a_backup_lb() {
    sample_verdicts(Role::Backup);
}

#[test]
fn c_sample_lines_on_a_master_lb() {
    sample_verdicts(Role::Master);
}

#[test]
fn gnu_option_forms_and_usage_errors() {
    let lab = lab(Role::Backup);
    let links = Links::new();
    let ok = OK_IP.to_string();
    let vip = VIP.to_string();
    let tail = [LB_IFACE, ok.as_str(), vip.as_str(), "80"];
    let with = |options: &[&str]| -> Vec<String> {
        options
            .iter()
            .chain(tail.iter())
            .map(std::string::ToString::to_string)
            .collect()
    };
    for options in [
        &["-t500"][..],
        &["-t", "500"],
        &["--timeout=500"],
        &["--timeout", "500"],
        &["-vvc"],
        &["-v", "--clean-close", "--role-file=/nonexistent"],
        &["--role-file", "/nonexistent", "--"],
    ] {
        let args = with(options);
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = compat(&lab, &links, "check_tcp_raw", &words);
        assert_eq!(out.code, 0, "{options:?}: {out:?}");
    }

    let http_tail = [
        LB_IFACE,
        ok.as_str(),
        vip.as_str(),
        "80",
        "lab.example",
        "/",
    ];
    let bad: Vec<(&str, Vec<&str>)> = vec![
        ("check_tcp_raw", vec![LB_IFACE, &ok, &vip]),
        ("check_tcp_raw", vec![LB_IFACE, &ok, &vip, "80", "extra"]),
        ("check_tcp_raw", vec![LB_IFACE, &ok, &vip, "0"]),
        ("check_tcp_raw", vec![LB_IFACE, &ok, &vip, "70000"]),
        ("check_tcp_raw", vec![LB_IFACE, "198.18.0.999", &vip, "80"]),
        ("check_tcp_raw", vec!["--bogus", LB_IFACE, &ok, &vip, "80"]),
        ("check_tcp_raw", vec!["eth9", &ok, &vip, "80"]),
        (
            "check_http_raw",
            [&["-M", "POST", "-S", "200"][..], &http_tail].concat(),
        ),
        ("check_http_raw", http_tail.to_vec()),
        ("check_http_get_raw", http_tail.to_vec()),
    ];
    for (name, args) in &bad {
        let out = compat(&lab, &links, name, args);
        assert_eq!(out.code, 1, "{name} {args:?}: {out:?}");
        assert_one_clean_line(&out.stderr);
        assert!(out.stderr.starts_with(&format!("{name}: ")), "{out:?}");
    }
    for name in ["check_tcp_raw", "check_http_get_raw", "check_http_raw"] {
        for flag in ["--help", "-?", "--usage"] {
            let out = compat(&lab, &links, name, &[flag]);
            assert_eq!(out.code, 0, "{name} {flag}: {out:?}");
            assert!(out.stdout.contains(name), "{name} {flag}: {out:?}");
        }
    }
}

/// Starts `cmd` against `novip` (which never answers), waits until its
/// flow is registered, sends `signal`, and returns (exit status, time from
/// the signal to the exit).
fn stopped_by(lab: &Lab, mut cmd: Command, signal: i32) -> (Option<i32>, Duration, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = lab.spawn(&mut cmd).expect("spawn");
    let until = Instant::now() + Duration::from_secs(5);
    while xdp_status(lab).1 == 0 {
        assert!(
            Instant::now() < until,
            "the check never registered its flow"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Past the ARP exchange (a millisecond): waiting for a SYN-ACK.
    std::thread::sleep(Duration::from_millis(100));
    let pid = child.child().id() as i32;
    let sent = Instant::now();
    // SAFETY: signalling our own child by its pid.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let status = child.child().wait().expect("wait");
    let took = sent.elapsed();
    let mut stdout = String::new();
    use std::io::Read;
    child
        .child()
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    (status.code(), took, stdout)
}

#[test]
fn stop_signals_end_a_check_at_once_and_leave_no_flow() {
    let lab = lab(Role::Backup);
    let links = Links::new();
    assert_eq!(tcp(&lab, OK_IP, &[]).code, 0, "attach first");
    let novip = NOVIP_IP.to_string();
    let vip = VIP.to_string();
    let mut times = Vec::new();
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let mut native = lab.command(lab.lb_ns(), VIPCHECK);
        native.args(["tcp", "-t", "20000", LB_IFACE, &novip, &vip, "80"]);
        let mut c = lab.command(lab.lb_ns(), links.path("check_tcp_raw"));
        c.args(["-t", "0", LB_IFACE, &novip, &vip, "80"]);
        let mut http = lab.command(lab.lb_ns(), links.path("check_http_get_raw"));
        http.args([
            "-t",
            "0",
            LB_IFACE,
            &novip,
            &vip,
            "80",
            "lab.example",
            "/",
            &index_md5(),
        ]);
        for (what, cmd) in [
            ("vipcheck tcp", native),
            ("check_tcp_raw", c),
            ("check_http_get_raw", http),
        ] {
            let (code, took, stdout) = stopped_by(&lab, cmd, signal);
            assert_eq!(code, Some(1), "{what}, signal {signal}: {stdout}");
            assert!(stdout.contains("interrupted by SIG"), "{what}: {stdout}");
            assert!(took < Duration::from_millis(100), "{what}: {took:?}");
            assert_eq!(xdp_status(&lab).1, 0, "{what}: a flow was left behind");
            times.push(took.as_secs_f64() * 1000.0);
        }
    }
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "stop signal to exit: {times:.1?} ms");
}

#[test]
fn pcap_holds_the_whole_exchange() {
    let lab = lab(Role::Backup);
    let links = Links::new();
    // `--pcap -`: the capture on stdout, the verdict's line on stderr.
    let (ok, vip) = (OK_IP.to_string(), VIP.to_string());
    let out = vipcheck(&lab, &["tcp", "--pcap", "-", LB_IFACE, &ok, &vip, "80"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // The pcap magic, in either byte order; then a header and frames.
    let magic: Option<[u8; 4]> = out.stdout.get(..4).map(|m| m.try_into().unwrap());
    assert!(
        magic.is_some_and(|m| [u32::from_le_bytes(m), u32::from_be_bytes(m)]
            .iter()
            .any(|v| [0xa1b2_c3d4, 0xa1b2_3c4d].contains(v)))
            && out.stdout.len() > 24 + 3 * 16,
        "{out:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("SYN-ACK") && stderr.lines().count() == 1,
        "{stderr}"
    );
    for (name, pcap) in [
        ("vipcheck", links.file("native.pcap", None)),
        ("check_tcp_raw", links.file("compat.pcap", None)),
    ] {
        let pcap_arg = pcap.to_str().unwrap();
        let out = if name == "vipcheck" {
            tcp(&lab, OK_IP, &["--pcap", pcap_arg])
        } else {
            compat(
                &lab,
                &links,
                name,
                &[
                    "--pcap",
                    pcap_arg,
                    LB_IFACE,
                    &OK_IP.to_string(),
                    &VIP.to_string(),
                    "80",
                ],
            )
        };
        assert_eq!(out.code, 0, "{out:?}");
        let read = Command::new("tcpdump")
            .args(["-n", "-e", "-r"])
            .arg(&pcap)
            .output()
            .expect("tcpdump");
        assert!(read.status.success(), "{read:?}");
        let text = String::from_utf8_lossy(&read.stdout);
        let ok_mac = lab.mac(Host::Ok);
        let lines: Vec<&str> = text.lines().collect();
        let has = |pred: &dyn Fn(&str) -> bool| lines.iter().any(|l| pred(l));
        assert!(
            has(&|l| l.contains("ARP") && l.contains("Request who-has 198.18.0.11")),
            "{text}"
        );
        assert!(
            has(&|l| l.contains("ARP") && l.contains("Reply 198.18.0.11 is-at")),
            "{text}"
        );
        assert!(
            has(&|l| l.contains(&format!("> {ok_mac}"))
                && l.contains("> 198.18.0.100.80:")
                && l.contains("Flags [S]")),
            "no SYN to the VIP with ok's MAC: {text}"
        );
        assert!(
            has(&|l| l.contains("198.18.0.100.80 >") && l.contains("Flags [S.]")),
            "no SYN-ACK: {text}"
        );
    }
}

#[test]
fn json_and_nagios_outputs() {
    let lab = lab(Role::Backup);
    // `failure`: null when healthy, else the code the daemon's metrics
    // `reason` label uses for the same failure.
    for (rs, verdict, exit, failure) in [
        (OK_IP, "healthy", 0, None),
        (NOVIP_IP, "unhealthy", 1, Some("no_answer")),
        (CLOSED_IP, "unhealthy", 1, Some("refused")),
    ] {
        let out = http(&lab, rs, 80, "/", &["--format", "json", "-t", "500"]);
        assert_eq!(out.code, exit, "{out:?}");
        let v: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).expect("one JSON object");
        assert_eq!(v["target"]["iface"], "eth0");
        assert_eq!(v["target"]["real_server"], rs.to_string());
        assert_eq!(v["target"]["vip"], VIP.to_string());
        assert_eq!(v["target"]["port"], 80);
        assert_eq!(v["check"], "http");
        assert_eq!(v["verdict"], verdict);
        assert_eq!(v["exit"], exit);
        assert_eq!(v["failure"].as_str(), failure, "{v}");
        assert!(
            v.get("failure").is_some(),
            "present, null when healthy: {v}"
        );
        assert!(v["reason"].is_string());
        assert!(v["timings"]["total_ms"].is_number());
        for field in ["attach_ms", "connect_ms", "first_byte_ms"] {
            assert!(v["timings"].get(field).is_some(), "{field}: {v}");
        }
        for field in ["status", "body_bytes", "md5", "sha256"] {
            assert!(v.get(field).is_some(), "{field}: {v}");
        }
        if rs == OK_IP {
            assert_eq!(v["status"], 200);
            assert_eq!(v["md5"], index_md5());
            assert_eq!(v["body_bytes"], INDEX_HTML.len());
        }
        // The TCP check of the same real server: the same failure.
        let out = tcp(&lab, rs, &["--format", "json", "-t", "500"]);
        assert_eq!(out.code, exit, "{out:?}");
        let v: serde_json::Value =
            serde_json::from_str(out.stdout.trim()).expect("one JSON object");
        assert_eq!(
            (v["check"].as_str(), v["verdict"].as_str()),
            (Some("tcp"), Some(verdict))
        );
        assert_eq!(v["failure"].as_str(), failure, "{v}");
    }
    // A check that could not run (no such interface): its code too.
    let out = run(vipcheck(
        &lab,
        &[
            "tcp",
            "--format",
            "json",
            "eth9",
            &OK_IP.to_string(),
            &VIP.to_string(),
            "80",
        ],
    ));
    assert_eq!(out.code, 3, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(
        (v["verdict"].as_str(), v["failure"].as_str()),
        (Some("error"), Some("interface")),
        "{v}"
    );
    let grammar = regex::Regex::new(
        r"^VIPCHECK (OK|WARNING|CRITICAL|UNKNOWN) - [^|\n]+( \| ([A-Za-z_]+=[0-9.]+(s|B)?;[0-9.]*;[0-9.]*;[0-9.]*;?[0-9.]*( |$))+)?$",
    )
    .unwrap();
    for (rs, state, exit) in [
        (OK_IP, "OK", 0),
        (NOVIP_IP, "CRITICAL", 2),
        (CLOSED_IP, "CRITICAL", 2),
    ] {
        let out = http(&lab, rs, 80, "/", &["--format", "nagios", "-t", "500"]);
        assert_eq!(out.code, exit, "{out:?}");
        let line = out.stdout.trim_end();
        assert!(grammar.is_match(line), "{line:?}");
        assert!(line.starts_with(&format!("VIPCHECK {state} - ")), "{line}");
    }
    // -w/-c are seconds: 10 and 20 s are never reached (OK, and the
    // perfdata gives them as given); 1 µs is always passed.
    let ok = tcp(&lab, OK_IP, &["--format", "nagios", "-w", "10", "-c", "20"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(ok.stdout.trim_end().ends_with(";10;20;0"), "{ok:?}");
    // -w below any real time: WARNING; -c below it: CRITICAL.
    let warn = tcp(&lab, OK_IP, &["--format", "nagios", "-w", "0.000001"]);
    assert_eq!(warn.code, 1, "{warn:?}");
    assert!(warn.stdout.starts_with("VIPCHECK WARNING - "), "{warn:?}");
    assert!(grammar.is_match(warn.stdout.trim_end()), "{warn:?}");
    let crit = tcp(&lab, OK_IP, &["--format", "nagios", "-w", "0", "-c", "0"]);
    assert_eq!(crit.code, 2, "{crit:?}");
    // Cannot run here: UNKNOWN, 3; a usage error too.
    let unknown = run(vipcheck(
        &lab,
        &[
            "tcp",
            "--format",
            "nagios",
            "eth9",
            &OK_IP.to_string(),
            &VIP.to_string(),
            "80",
        ],
    ));
    assert_eq!(unknown.code, 3, "{unknown:?}");
    assert!(
        unknown.stdout.starts_with("VIPCHECK UNKNOWN - "),
        "{unknown:?}"
    );
    let usage = run(vipcheck(&lab, &["tcp", "--format=nagios", "eth0"]));
    assert_eq!(usage.code, 3, "{usage:?}");
    assert!(grammar.is_match(usage.stdout.trim_end()), "{usage:?}");
}

#[test]
fn empty_environment_closed_stdin_and_host_names() {
    let lab = lab(Role::Backup);
    let links = Links::new();
    let vip = VIP.to_string();
    // keepalived's way: no environment, stdin closed, output unread.
    let mut cmd = Command::new("env");
    cmd.args([
        "-i",
        "nsenter",
        &format!("--net=/run/netns/{}", lab.lb_ns()),
    ])
    .arg(links.path("check_tcp_raw"))
    .args([LB_IFACE, &OK_IP.to_string(), &vip, "80"])
    .stdin(Stdio::null());
    let mut closed_stdin = cmd;
    // SAFETY: only async-signal-safe close(2) between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        closed_stdin.pre_exec(|| {
            libc::close(0);
            Ok(())
        });
    }
    let out = run(closed_stdin);
    assert_eq!(out.code, 0, "{out:?}");
    // Stdout and stderr closed pipes: no panic, the same status.
    let mut unread = lab.command(lab.lb_ns(), links.path("check_tcp_raw"));
    unread
        .args([
            "-vv",
            LB_IFACE,
            &NOVIP_IP.to_string(),
            &vip,
            "80",
            "-t",
            "200",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = unread.spawn().unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(1));

    // Host names through the system resolver, in a private mount
    // namespace whose /etc/hosts knows them (the machine's is untouched).
    let hosts = links.file(
        "hosts",
        Some(&format!(
            "127.0.0.1 localhost\n{OK_IP} rs-ok.lab.test\n{vip} vip.lab.test\n"
        )),
    );
    // `vipcheck ARGS` in the LB namespace, with that /etc/hosts.
    let with_hosts = |args: &str| {
        let script = format!(
            "mount --bind {} /etc/hosts && exec nsenter --net=/run/netns/{} {VIPCHECK} {args}",
            hosts.display(),
            lab.lb_ns(),
        );
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c", &script]);
        run(c)
    };
    let out = with_hosts(&format!("tcp {LB_IFACE} rs-ok.lab.test vip.lab.test 80"));
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("tcp 198.18.0.100:80 via 198.18.0.11"),
        "{out:?}"
    );
    let out = with_hosts(&format!("tcp {LB_IFACE} no-such-host.lab.test {vip} 80"));
    assert_eq!(out.code, 2, "{out:?}");
    assert_one_clean_line(&out.stderr);
    assert!(out.stderr.contains("no-such-host.lab.test"), "{out:?}");
}

/// The three C command lines, each run by keepalived through a hard link
/// (`vipcheck compat install`) and through a symlink, against a healthy
/// real server and one without the VIP: (script name, command, healthy).
fn c_scripts(links: &Links) -> Vec<(String, String, bool)> {
    let md5 = index_md5();
    let vip = VIP.to_string();
    // Symlinks under the C names, in a directory of their own.
    let symlinks = links.file("sym", None);
    std::fs::create_dir_all(&symlinks).unwrap();
    for name in ["check_tcp_raw", "check_http_get_raw", "check_http_raw"] {
        let link = symlinks.join(name);
        if !link.exists() {
            std::os::unix::fs::symlink(VIPCHECK, link).unwrap();
        }
    }
    let mut scripts = Vec::new();
    for (name, options, tail) in [
        ("check_tcp_raw", "-t 300", String::new()),
        (
            "check_http_get_raw",
            "-t 300",
            format!(" lab.example / {md5}"),
        ),
        (
            "check_http_raw",
            "-t 300 -S 200",
            " lab.example /".to_string(),
        ),
    ] {
        for (kind, path) in [("hard", links.path(name)), ("sym", symlinks.join(name))] {
            for (rs, healthy) in [(OK_IP, true), (NOVIP_IP, false)] {
                let script = format!(
                    "{}_{kind}_{}",
                    name.trim_start_matches("check_").trim_end_matches("_raw"),
                    if healthy { "ok" } else { "novip" }
                );
                let command = format!(
                    "{} {options} {LB_IFACE} {rs} {vip} 80{tail}",
                    path.display()
                );
                scripts.push((script, command, healthy));
            }
        }
    }
    scripts
}

/// keepalived runs `scripts` (`vrrp_script`s, as it runs a MISC_CHECK):
/// each gives its verdict within two intervals, and never the reverse.
fn keepalived_verdicts(
    lab: &Lab,
    scripts: &[(String, String, bool)],
    config: xtask::lab::KeepalivedConfig,
) {
    use xtask::lab::VrrpScript;
    let mut config = config;
    config.scripts = scripts
        .iter()
        .map(|(name, command, _)| VrrpScript::new(name.clone(), command.clone(), 1))
        .collect();
    let keepalived = lab.keepalived(&config).expect("keepalived cannot start");
    let started = Instant::now();
    for (name, _, healthy) in scripts {
        let expected = if *healthy {
            format!("VRRP_Script({name}) succeeded")
        } else {
            format!("VRRP_Script({name}) failed (exited with status 1)")
        };
        // Within two intervals of one second.
        let seen = keepalived.wait_for(expected.as_str(), Duration::from_secs(2));
        assert!(
            seen.is_some(),
            "{expected} not logged within two intervals: {:#?}",
            keepalived.lines()
        );
    }
    // A few more intervals: never the reverse.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    let lines = keepalived.lines();
    for (name, _, healthy) in scripts {
        let wrong = if *healthy {
            format!("VRRP_Script({name}) failed")
        } else {
            format!("VRRP_Script({name}) succeeded")
        };
        assert!(
            !lines.iter().any(|l| l.contains(&wrong)),
            "{wrong}: {lines:#?}"
        );
    }
}

/// keepalived with `enable_script_security` (what its documentation
/// recommends) runs a symlinked script under the path the link resolves
/// to: argv[0] is vipcheck's own, and the C line is known by its shape.
#[test]
fn keepalived_runs_the_compat_names_as_check_scripts() {
    let lab = lab(Role::Backup);
    let links = Links::new();
    let scripts = c_scripts(&links);
    keepalived_verdicts(&lab, &scripts, xtask::lab::KeepalivedConfig::default());
}

/// Without `enable_script_security` keepalived runs a symlink under its
/// own path (and so does 2.3's `use_symlink_paths`): the C name is argv[0].
#[test]
fn keepalived_without_script_security_runs_the_compat_names() {
    let lab = lab(Role::Backup);
    let links = Links::new();
    let scripts = c_scripts(&links);
    keepalived_verdicts(
        &lab,
        &scripts,
        xtask::lab::KeepalivedConfig::default().without_script_security(),
    );
}

#[test]
fn compat_install_never_replaces_a_stranger() {
    let dir = std::path::Path::new(VIPCHECK)
        .with_file_name(format!("vck-install-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(dir.clone());
    std::fs::write(dir.join("check_http_raw"), "#!/bin/sh\nexit 0\n").unwrap();
    let out = Command::new(VIPCHECK)
        .args(["compat", "install"])
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_one_clean_line(&stderr);
    assert!(stderr.contains("is not a link to"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("check_http_raw")).unwrap(),
        "#!/bin/sh\nexit 0\n",
        "the stranger was replaced"
    );
    // Nothing was changed: every name is judged first.
    assert!(
        !dir.join("check_tcp_raw").exists(),
        "installed beside a stranger"
    );

    // What a package upgrade leaves: a hard link still holding the old
    // binary (a copy of vipcheck, another inode), a symlink to a vipcheck
    // that is gone. Both are replaced; the stranger still blocks it all.
    std::fs::copy(VIPCHECK, dir.join("check_tcp_raw")).unwrap();
    std::os::unix::fs::symlink(
        "/opt/vipcheck-0.1/bin/vipcheck",
        dir.join("check_http_get_raw"),
    )
    .unwrap();
    let install = || {
        Command::new(VIPCHECK)
            .args(["compat", "install"])
            .arg(&dir)
            .output()
            .unwrap()
    };
    assert_eq!(install().status.code(), Some(2));
    std::fs::remove_file(dir.join("check_http_raw")).unwrap();
    let out = install();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("replaced")
            && stdout.contains("check_tcp_raw (a link to an older vipcheck)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("check_http_get_raw (a link to an older vipcheck)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("created") && stdout.contains("check_http_raw"),
        "{stdout}"
    );
    // Hard links on vipcheck's file system.
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::metadata(VIPCHECK).unwrap();
    for name in ["check_tcp_raw", "check_http_get_raw", "check_http_raw"] {
        let link = std::fs::symlink_metadata(dir.join(name)).unwrap();
        assert!(
            link.file_type().is_file() && link.ino() == exe.ino(),
            "{name}: not a hard link to vipcheck"
        );
    }
    // No temporary file left, and a second run changes nothing.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    let out = install();
    assert!(out.status.success() && out.stdout.is_empty(), "{out:?}");
}

/// Run as the C checkers were, with CAP_NET_RAW alone: no BPF, so the C
/// names fall back to the C behaviour (said at -v), while the native
/// command exits 3 naming what it lacks.
#[test]
fn without_bpf_the_c_names_fall_back() {
    let lab = lab(Role::Backup);
    let links = Links::new();
    let ok = OK_IP.to_string();
    let novip = NOVIP_IP.to_string();
    let vip = VIP.to_string();
    // Root with CAP_NET_RAW alone (its bounding set).
    let compat = |_: &Lab, links: &Links, name: &str, args: &[&str]| {
        let mut cmd = lab.command(lab.lb_ns(), "setpriv");
        cmd.arg("--bounding-set=-all,+net_raw")
            .arg(links.path(name))
            .args(args);
        run(cmd)
    };
    // As the C checkers (no role file): the VIP path with an AF_PACKET capture.
    let passed = compat(
        &lab,
        &links,
        "check_tcp_raw",
        &["-v", LB_IFACE, &ok, &vip, "80"],
    );
    assert_eq!(passed.code, 0, "{passed:?}");
    assert!(
        passed.stderr.contains("AF_PACKET capture"),
        "-v says which path: {passed:?}"
    );
    let failed = compat(
        &lab,
        &links,
        "check_tcp_raw",
        &["-t", "300", LB_IFACE, &novip, &vip, "80"],
    );
    assert_eq!(failed.code, 1, "{failed:?}");
    // A BACKUP per the role file: the kernel connection to the real
    // server's own address, which cannot see the missing VIP (said so).
    let backup = links.file("role-backup", Some("0"));
    let kernel = compat(
        &lab,
        &links,
        "check_http_get_raw",
        &[
            "-v",
            "-r",
            backup.to_str().unwrap(),
            LB_IFACE,
            &novip,
            &vip,
            "80",
            "lab.example",
            "/",
            &index_md5(),
        ],
    );
    assert_eq!(kernel.code, 0, "{kernel:?}");
    assert!(
        kernel.stderr.contains("kernel TCP connection"),
        "{kernel:?}"
    );
    assert!(
        kernel.stdout.contains("the VIP path was not checked"),
        "{kernel:?}"
    );
    // The native command does not fall back: exit 3, naming what it lacks.
    let mut cmd = lab.command(lab.lb_ns(), "setpriv");
    cmd.arg("--bounding-set=-all,+net_raw")
        .arg(VIPCHECK)
        .args(["tcp", LB_IFACE, &ok, &vip, "80"]);
    let native = run(cmd);
    assert_eq!(native.code, 3, "{native:?}");
    assert_one_clean_line(&native.stderr);
    assert!(
        native.stderr.contains("it needs CAP_SYS_ADMIN"),
        "{native:?}"
    );
}
