//! Malformed command lines, native and under the C names: each exits with
//! its documented status (native: 2 usage, 3 cannot run here; the C names:
//! 1 for anything that is not healthy) and says why in exactly one line on
//! stderr, never a panic. No root, no lab: every line fails in parsing or
//! in the preflight (the interface `vck-nosuch0` does not exist) before
//! anything is sent or attached.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const VIPCHECK: &str = env!("CARGO_BIN_EXE_vipcheck");

/// An interface that does not exist: the preflight's "cannot run here".
const NOSUCH: &str = "vck-nosuch0";
const RS: &str = "10.0.0.42";
const VIP: &str = "10.0.0.100";
const MD5: &str = "d36f8f9425c4a8000ad9c4a97185aca5";

/// Native statuses (README "exit", `error.rs`).
const USAGE: i32 = 2;
const CANNOT_RUN: i32 = 3;
/// `--format nagios`: UNKNOWN, for a usage error too.
const NAGIOS_UNKNOWN: i32 = 3;
/// The C names: anything but healthy.
const COMPAT_FAIL: i32 = 1;

/// A directory beside the binary with the C names linked to it
/// (`vipcheck compat install`) and the files the rows name; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            Path::new(VIPCHECK).with_file_name(format!("vck-cli-table-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let out = Command::new(VIPCHECK)
            .args(["compat", "install"])
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "compat install: {out:?}");
        std::fs::write(dir.join("empty.pem"), "").unwrap();
        std::fs::write(dir.join("empty.conf"), "").unwrap();
        std::fs::write(
            dir.join("vrrp-only.conf"),
            "vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 51\n  \
             priority 100\n  virtual_ipaddress {\n    10.0.0.100\n  }\n}\n",
        )
        .unwrap();
        std::fs::write(dir.join("plain"), "not a directory\n").unwrap();
        std::fs::write(dir.join("bad.toml"), "[[vip]\naddress = \n").unwrap();
        std::fs::write(
            dir.join("unknown-key.toml"),
            "[[vip]]\naddress = \"10.0.0.100\"\nport = 80\nprot = 81\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("targets.toml"),
            format!(
                "[defaults]\niface = \"{NOSUCH}\"\n\n[[vip]]\naddress = \"{VIP}\"\nport = 80\n\n\
                 [[vip.real_server]]\naddress = \"{RS}\"\n"
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("keepalived.conf"),
            // An include keepalived refuses: a file keepalived does not read.
            "includem missing.conf\n",
        )
        .unwrap();
        // A directory where `compat install` finds a stranger's check_tcp_raw.
        std::fs::create_dir_all(dir.join("stranger")).unwrap();
        std::fs::write(dir.join("stranger/check_tcp_raw"), "#!/bin/sh\n").unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().unwrap().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the one line goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Out {
    /// Text: the error on stderr, nothing on stdout.
    Stderr,
    /// `--format json|nagios`: the error as the format's line on stdout.
    Stdout,
}

/// One line of the table.
struct Row {
    /// `vipcheck`, or a C name (run through its link).
    program: &'static str,
    args: Vec<OsString>,
    status: i32,
    out: Out,
    /// A known bug: what goes wrong (the row must still show it; the
    /// test says so once it is fixed).
    known: Option<&'static str>,
}

fn row(program: &'static str, args: &[&str], status: i32) -> Row {
    Row {
        program,
        args: args.iter().map(OsString::from).collect(),
        status,
        out: Out::Stderr,
        known: None,
    }
}

/// Marks a row as a known bug (none today).
#[allow(dead_code)]
fn known(mut row: Row, bug: &'static str) -> Row {
    row.known = Some(bug);
    row
}

fn on_stdout(mut row: Row) -> Row {
    row.out = Out::Stdout;
    row
}

/// `row` with its word `at` replaced by bytes that are not UTF-8.
fn not_utf8(mut row: Row, at: usize) -> Row {
    row.args[at] = OsString::from_vec(vec![b'e', b't', 0xff, b'0']);
    row
}

/// `vipcheck tcp [options] IFACE RS VIP PORT`.
fn tcp(options: &[&str], iface: &str, rs: &str, vip: &str, port: &str, status: i32) -> Row {
    let mut args = vec!["tcp"];
    args.extend_from_slice(options);
    args.extend_from_slice(&[iface, rs, vip, port]);
    row("vipcheck", &args, status)
}

/// `vipcheck http|https [options] vck-nosuch0 RS VIP 80 HOST PATH`.
fn http(command: &str, options: &[&str], host: &str, path: &str, status: i32) -> Row {
    let mut args = vec![command];
    args.extend_from_slice(options);
    args.extend_from_slice(&[NOSUCH, RS, VIP, "80", host, path]);
    row("vipcheck", &args, status)
}

/// `NAME [options] IFACE RS VIP PORT [rest]` under a C name.
fn compat(name: &'static str, options: &[&str], tail: [&str; 4], rest: &[&str]) -> Row {
    let mut args = options.to_vec();
    args.extend_from_slice(&tail);
    args.extend_from_slice(rest);
    row(name, &args, COMPAT_FAIL)
}

fn rows(s: &Scratch) -> Vec<Row> {
    let dir = s.0.to_str().unwrap().to_string();
    let missing = s.path("missing.pem");
    let missing_toml = s.path("missing.toml");
    let empty = s.path("empty.pem");
    let targets = s.path("targets.toml");
    let bad_toml = s.path("bad.toml");
    let unknown_key = s.path("unknown-key.toml");
    let keepalived = s.path("keepalived.conf");
    let under_file = s.path("plain") + "/track";
    let empty_conf = s.path("empty.conf");
    let vrrp_only = s.path("vrrp-only.conf");
    let huge = "18446744073709551616";
    let ok = [NOSUCH, RS, VIP];
    let t = |options: &[&str], port: &str, status| tcp(options, ok[0], ok[1], ok[2], port, status);
    let tail = [NOSUCH, RS, VIP, "80"];
    vec![
        // --- vipcheck tcp: arguments.
        row("vipcheck", &["tcp", NOSUCH, RS, VIP], USAGE),
        t(&[], "0", USAGE),
        t(&[], "65536", USAGE),
        t(&[], huge, USAGE),
        t(&[], "80x", USAGE),
        t(&[], "", USAGE),
        tcp(&[], NOSUCH, "", VIP, "80", USAGE),
        tcp(&[], NOSUCH, "10.0.0.42/24", VIP, "80", USAGE),
        tcp(&[], NOSUCH, "10.0.0.42 ", VIP, "80", USAGE),
        tcp(&[], NOSUCH, RS, "", "80", USAGE),
        // IPv6 where the family differs; unusable addresses (preflight, 2).
        tcp(&[], NOSUCH, RS, "fd00::100", "80", USAGE),
        tcp(&[], NOSUCH, "fd00::42", VIP, "80", USAGE),
        tcp(&[], NOSUCH, "[fd00::42]", VIP, "80", USAGE),
        tcp(&[], NOSUCH, "127.0.0.1", VIP, "80", USAGE),
        tcp(&[], NOSUCH, RS, "0.0.0.0", "80", USAGE),
        tcp(&[], NOSUCH, RS, "255.255.255.255", "80", USAGE),
        tcp(&[], NOSUCH, RS, "224.0.0.1", "80", USAGE),
        tcp(&[], NOSUCH, "fe80::1", "fd00::100", "80", USAGE),
        tcp(&[], NOSUCH, "fd00::42", "::", "80", USAGE),
        // No such interface: cannot run here.
        tcp(&[], NOSUCH, RS, VIP, "80", CANNOT_RUN),
        tcp(&[], NOSUCH, "fd00::42", "fd00::100", "443", CANNOT_RUN),
        tcp(&[], "", RS, VIP, "80", CANNOT_RUN),
        not_utf8(tcp(&[], NOSUCH, RS, VIP, "80", USAGE), 1),
        not_utf8(tcp(&[], NOSUCH, RS, VIP, "80", USAGE), 3),
        // --send/--expect and smtp: bad values, then the preflight.
        t(&["--send", r"\q"], "25", USAGE),
        t(&["--send", r"\x4"], "25", USAGE),
        t(&["--expect", "("], "25", USAGE),
        t(&["--send", "", "--expect", "^220"], "25", CANNOT_RUN),
        row(
            "vipcheck",
            &["smtp", "--helo", "a b", NOSUCH, RS, VIP, "25"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["smtp", "--helo", "", NOSUCH, RS, VIP, "25"],
            USAGE,
        ),
        row("vipcheck", &["smtp", NOSUCH, RS, VIP], USAGE),
        row("vipcheck", &["smtp", NOSUCH, RS, VIP, "25"], CANNOT_RUN),
        // The error in the asked format, on stdout.
        on_stdout(t(&["--format", "json"], "0", USAGE)),
        on_stdout(t(&["--format", "json"], "80", CANNOT_RUN)),
        on_stdout(t(&["--format", "nagios"], "0", NAGIOS_UNKNOWN)),
        on_stdout(t(&["--format", "nagios"], "80", NAGIOS_UNKNOWN)),
        on_stdout(http(
            "https",
            &["--format", "json", "--ca", &missing],
            "h",
            "/",
            USAGE,
        )),
        // Options.
        t(&["-t", "0"], "80", USAGE),
        t(&["-t", "3600001"], "80", USAGE),
        t(&["-t", huge], "80", USAGE),
        t(&["-t", ""], "80", USAGE),
        t(&["-t", "-5"], "80", USAGE),
        t(&["--bogus"], "80", USAGE),
        t(&["--xdp", "maybe"], "80", USAGE),
        t(&["--xdp-mode", "turbo"], "80", USAGE),
        t(&["--close", "half"], "80", USAGE),
        t(&["--format", "yaml"], "80", USAGE),
        t(&["--source", "10.0.0.1/8"], "80", USAGE),
        t(&["--source", ""], "80", USAGE),
        t(&["-w", "abc"], "80", USAGE),
        t(&["-w", "2:1"], "80", USAGE),
        t(&["-c", "1e400"], "80", USAGE),
        // --- vipcheck http.
        http("http", &[], "", "/", USAGE),
        http("http", &[], "a host", "/", USAGE),
        http("http", &[], "h", "noslash", USAGE),
        http("http", &[], "h", "", USAGE),
        http("http", &["--regex", "("], "h", "/", USAGE),
        http("http", &["--regex-absent", "[z-a]"], "h", "/", USAGE),
        http("http", &["--regex", "a{99999999}"], "h", "/", USAGE),
        http("http", &["-S", "99"], "h", "/", USAGE),
        http("http", &["-S", "600-500"], "h", "/", USAGE),
        http("http", &["-S", ""], "h", "/", USAGE),
        http("http", &["-A", "nothex"], "h", "/", USAGE),
        http("http", &["--sha256", "abc"], "h", "/", USAGE),
        http("http", &["--max-body", "99999999999G"], "h", "/", USAGE),
        http("http", &["--max-body", ""], "h", "/", USAGE),
        http("http", &["-H", "NoColon"], "h", "/", USAGE),
        http("http", &["-H", ": empty name"], "h", "/", USAGE),
        http("http", &["-R", "Bad Name: x"], "h", "/", USAGE),
        http("http", &["-M", "POST"], "h", "/", USAGE),
        http("http", &[], "h", "/", CANNOT_RUN),
        // --- vipcheck https: its files are read before anything runs.
        http("https", &["--ca", &missing], "h", "/", USAGE),
        http("https", &["--ca", &dir], "h", "/", USAGE),
        http("https", &["--ca", &empty], "h", "/", USAGE),
        http("https", &["--ca", ""], "h", "/", USAGE),
        http("https", &["--insecure", "--ca", &empty], "h", "/", USAGE),
        http("https", &["--client-cert", &missing], "h", "/", USAGE),
        http(
            "https",
            &["--client-cert", &missing, "--client-key", &missing],
            "h",
            "/",
            USAGE,
        ),
        http("https", &["--cert-days", "-1"], "h", "/", USAGE),
        http("https", &["--cert-days", huge], "h", "/", USAGE),
        // A TLS name that cannot be one is a usage error before anything
        // is sent (not after the TCP handshake).
        http("https", &["--sni", "not a name"], "h", "/", USAGE),
        // A Host with a port: the TLS name is the host without it.
        http("https", &[], "www.example.com:8443", "/", CANNOT_RUN),
        http("https", &[], "h", "/", CANNOT_RUN),
        // --- audit.
        row("vipcheck", &["audit"], USAGE),
        row("vipcheck", &["audit", "--targets", &missing_toml], USAGE),
        row("vipcheck", &["audit", "--targets", &dir], USAGE),
        row("vipcheck", &["audit", "--targets", ""], USAGE),
        row("vipcheck", &["audit", "--targets", &bad_toml], USAGE),
        row("vipcheck", &["audit", "--targets", &unknown_key], USAGE),
        row("vipcheck", &["audit", "--keepalived", &missing], USAGE),
        row("vipcheck", &["audit", "--keepalived", &dir], USAGE),
        row("vipcheck", &["audit", "--keepalived", &keepalived], USAGE),
        // Nothing to check: said, exit 2 (the daemon does not start).
        row("vipcheck", &["audit", "--keepalived", &empty_conf], USAGE),
        row("vipcheck", &["audit", "--keepalived", &vrrp_only], USAGE),
        row("vipcheck", &["daemon", "--keepalived", &empty_conf], USAGE),
        row("vipcheck", &["daemon", "--keepalived", &vrrp_only], USAGE),
        row(
            "vipcheck",
            &["audit", "--targets", &targets, "--keepalived", &keepalived],
            USAGE,
        ),
        row(
            "vipcheck",
            &["audit", "--targets", &targets, "--parallel", "0"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["audit", "--targets", &targets, "--parallel", "1025"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["audit", "--targets", &targets, "--format", "csv"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["audit", "--targets", &targets, "--ca", &missing],
            USAGE,
        ),
        row(
            "vipcheck",
            &["audit", "--targets", &targets, "--ca", &empty],
            USAGE,
        ),
        // --- daemon: everything is read before it starts.
        row("vipcheck", &["daemon"], USAGE),
        row("vipcheck", &["daemon", "--targets", &missing_toml], USAGE),
        row("vipcheck", &["daemon", "--targets", &dir], USAGE),
        row(
            "vipcheck",
            &["daemon", "--targets", &targets, "--metrics", "nope"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["daemon", "--targets", &targets, "--metrics", "65536"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["daemon", "--targets", &targets, "--rise", "0"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["daemon", "--targets", &targets, "--fall", "101"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["daemon", "--targets", &targets, "--interval", "99"],
            USAGE,
        ),
        row(
            "vipcheck",
            &["daemon", "--targets", &targets, "--interval", huge],
            USAGE,
        ),
        row(
            "vipcheck",
            &["daemon", "--targets", &targets, "--ca", &dir],
            USAGE,
        ),
        row(
            "vipcheck",
            &["daemon", "--targets", &targets, "--track-dir", &under_file],
            CANNOT_RUN,
        ),
        // --- keepalived snippet.
        row("vipcheck", &["keepalived", "snippet"], USAGE),
        row(
            "vipcheck",
            &["keepalived", "snippet", "--targets", &missing_toml],
            USAGE,
        ),
        row(
            "vipcheck",
            &["keepalived", "snippet", "--keepalived", &dir],
            USAGE,
        ),
        row(
            "vipcheck",
            &["keepalived", "snippet", "--targets", &bad_toml],
            USAGE,
        ),
        row("vipcheck", &["keepalived", "bogus"], USAGE),
        // --- xdp.
        row("vipcheck", &["xdp", "attach"], USAGE),
        row(
            "vipcheck",
            &["xdp", "attach", "--xdp-mode", "turbo", NOSUCH],
            USAGE,
        ),
        row("vipcheck", &["xdp", "attach", NOSUCH], CANNOT_RUN),
        row("vipcheck", &["xdp", "detach", NOSUCH], CANNOT_RUN),
        row("vipcheck", &["xdp", "status", NOSUCH], CANNOT_RUN),
        row("vipcheck", &["xdp", "status", NOSUCH, "extra"], USAGE),
        // --- the rest of the native command line.
        // A missing subcommand: one line naming the choices.
        row("vipcheck", &[], USAGE),
        row("vipcheck", &["xdp"], USAGE),
        row("vipcheck", &["keepalived"], USAGE),
        row("vipcheck", &["compat"], USAGE),
        row("vipcheck", &["compat", "install"], USAGE),
        row(
            "vipcheck",
            &["compat", "install", &s.path("stranger")],
            USAGE,
        ),
        row(
            "vipcheck",
            &["compat", "install", &s.path("plain")],
            CANNOT_RUN,
        ),
        row("vipcheck", &["bogus"], USAGE),
        row("vipcheck", &["--bogus", "tcp"], USAGE),
        row("vipcheck", &["completions", "tcsh"], USAGE),
        // --- check_tcp_raw.
        compat("check_tcp_raw", &[], [NOSUCH, RS, VIP, "0"], &[]),
        compat("check_tcp_raw", &[], [NOSUCH, RS, VIP, "65536"], &[]),
        compat("check_tcp_raw", &[], [NOSUCH, "", VIP, "80"], &[]),
        compat("check_tcp_raw", &[], [NOSUCH, RS, "fd00::100", "80"], &[]),
        compat("check_tcp_raw", &[], [NOSUCH, "127.0.0.1", VIP, "80"], &[]),
        compat("check_tcp_raw", &["-t", "-5"], tail, &[]),
        compat("check_tcp_raw", &["-t", "3600001"], tail, &[]),
        compat("check_tcp_raw", &["-t", huge], tail, &[]),
        compat("check_tcp_raw", &["--bogus"], tail, &[]),
        compat("check_tcp_raw", &["-x"], tail, &[]),
        compat("check_tcp_raw", &[], tail, &["extra"]),
        compat("check_tcp_raw", &["-r", &dir, "-c"], tail, &[]),
        compat("check_tcp_raw", &[], tail, &[]),
        row("check_tcp_raw", &[NOSUCH, RS, VIP], COMPAT_FAIL),
        row("check_tcp_raw", &[], COMPAT_FAIL),
        not_utf8(compat("check_tcp_raw", &[], tail, &[]), 0),
        // --- check_http_get_raw.
        compat("check_http_get_raw", &[], tail, &["h", "/", "nothex"]),
        compat("check_http_get_raw", &[], tail, &["h", "noslash", MD5]),
        compat("check_http_get_raw", &[], tail, &["", "/", MD5]),
        compat("check_http_get_raw", &[], tail, &["h", "/"]),
        compat(
            "check_http_get_raw",
            &[],
            [NOSUCH, RS, "fd00::100", "80"],
            &["h", "/", MD5],
        ),
        compat("check_http_get_raw", &[], tail, &["h", "/", MD5]),
        // --- check_http_raw.
        compat("check_http_raw", &[], tail, &["h", "/"]),
        compat("check_http_raw", &["-S", "99"], tail, &["h", "/"]),
        compat("check_http_raw", &["-S", "1000"], tail, &["h", "/"]),
        compat(
            "check_http_raw",
            &["-M", "POST", "-S", "200"],
            tail,
            &["h", "/"],
        ),
        compat("check_http_raw", &["-A", "xyz"], tail, &["h", "/"]),
        compat(
            "check_http_raw",
            &["-H", "bad", "-S", "200"],
            tail,
            &["h", "/"],
        ),
        compat("check_http_raw", &["-R", "Bad Name: x"], tail, &["h", "/"]),
        compat("check_http_raw", &["-S", "200"], tail, &["a host", "/"]),
        compat(
            "check_http_raw",
            &["-S", "200"],
            [NOSUCH, "127.0.0.1", VIP, "80"],
            &["h", "/"],
        ),
        compat("check_http_raw", &["-S", "200"], tail, &["h", "/"]),
        // --- The C lines under vipcheck's own name (keepalived with
        // enable_script_security runs a symlink by the path it resolves
        // to): known by their shape, with the C statuses, 0 or 1.
        row(
            "vipcheck",
            &["-t", "300", NOSUCH, RS, VIP, "80"],
            COMPAT_FAIL,
        ),
        row(
            "vipcheck",
            &[NOSUCH, RS, VIP, "80", "h", "/", MD5],
            COMPAT_FAIL,
        ),
        row(
            "vipcheck",
            &["-S", "200", NOSUCH, RS, VIP, "80", "h", "/"],
            COMPAT_FAIL,
        ),
        row(
            "vipcheck",
            &["-M", "POST", "-S", "200", NOSUCH, RS, VIP, "80", "h", "/"],
            COMPAT_FAIL,
        ),
        row("vipcheck", &["-t", "300", NOSUCH, RS, VIP], COMPAT_FAIL),
        // Too few words and no C option: a mistyped subcommand.
        row("vipcheck", &[NOSUCH, RS, VIP], USAGE),
    ]
}

/// What one line did.
#[derive(Debug)]
struct Ran {
    status: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

/// Runs `program args`, killed after 20 s (a line that would start a
/// check or the daemon is a bug of the table, not a hang of the test).
fn run(s: &Scratch, row: &Row) -> Ran {
    let program = match row.program {
        "vipcheck" => PathBuf::from(VIPCHECK),
        name => s.0.join(name),
    };
    let start = Instant::now();
    let mut child = Command::new(&program)
        .args(&row.args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let out = child.wait_with_output().unwrap();
    Ran {
        status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    }
}

/// Why `ran` breaks the contract of `row`, if it does.
fn broken(row: &Row, ran: &Ran) -> Option<String> {
    let mut why = Vec::new();
    if ran.status != Some(row.status) {
        why.push(format!("exit {:?}, expected {}", ran.status, row.status));
    }
    let (one, none) = match row.out {
        Out::Stderr => ((&ran.stderr, "stderr"), (&ran.stdout, "stdout")),
        Out::Stdout => ((&ran.stdout, "stdout"), (&ran.stderr, "stderr")),
    };
    let lines = one.0.lines().count();
    if lines != 1 {
        why.push(format!("{lines} lines on {}", one.1));
    }
    if !none.0.is_empty() {
        why.push(format!("output on {}", none.1));
    }
    if [&ran.stderr, &ran.stdout]
        .iter()
        .any(|s| s.contains("panicked") || s.contains("internal error"))
    {
        why.push("a panic".to_string());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// `vipcheck audit ARGS`, as it ended.
fn audit(args: &[&str]) -> std::process::Output {
    Command::new(VIPCHECK)
        .arg("audit")
        .args(args)
        .output()
        .unwrap()
}

/// An audit none of whose checks could run here (no such interface)
/// exits 3, as the daemon stops with 3: no real server failed a check.
#[test]
fn audit_that_could_not_run_exits_3() {
    let s = Scratch::new();
    let out = audit(&["--targets", &s.path("targets.toml")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(CANNOT_RUN), "{out:?}");
    assert!(
        stdout.contains(" error ") && stdout.contains("no interface named"),
        "{stdout}"
    );
}

/// Another file by mistake (`/etc/hostname`): keepalived's own report of
/// it (an unknown keyword, `file:line`), then nothing to check, exit 2.
#[test]
fn audit_of_another_file_says_why_and_exits_2() {
    let s = Scratch::new();
    let out = audit(&["--keepalived", &s.path("plain")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(USAGE), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].ends_with("/plain:1: warning: Unknown keyword 'not'"),
        "{stderr}"
    );
    assert!(
        lines[1].contains("/plain: nothing to check: it has no virtual_server"),
        "{stderr}"
    );
}

#[test]
fn malformed_command_lines() {
    let s = Scratch::new();
    // The targets file of the rows that must get past it is valid.
    let valid = run(
        &s,
        &row(
            "vipcheck",
            &[
                "keepalived",
                "snippet",
                "--targets",
                &s.path("targets.toml"),
            ],
            0,
        ),
    );
    assert_eq!(valid.status, Some(0), "{valid:?}");

    let rows = rows(&s);
    assert!(rows.len() >= 40);
    let mut failures = Vec::new();
    let mut fixed = Vec::new();
    let mut report = String::new();
    for row in &rows {
        let ran = run(&s, row);
        let line = format!("{} {:?}", row.program, row.args);
        let verdict = broken(row, &ran);
        let said = match row.out {
            Out::Stderr => &ran.stderr,
            Out::Stdout => &ran.stdout,
        };
        let more = said.lines().count().saturating_sub(1);
        report += &format!(
            "{:>4} {:>4} ms  {line}{}\n          {}{}\n",
            ran.status.map_or("none".into(), |c| c.to_string()),
            ran.took.as_millis(),
            row.known
                .map_or(String::new(), |bug| format!("  [known bug: {bug}]")),
            said.lines().next().unwrap_or(""),
            if more > 0 {
                format!(" (and {more} more lines)")
            } else {
                String::new()
            },
        );
        match (verdict, row.known) {
            (None, None) => {}
            (Some(why), None) => failures.push(format!(
                "{line}: {why}\n  stderr: {:?}\n  stdout: {:?}",
                ran.stderr, ran.stdout
            )),
            (Some(_), Some(_)) => {}
            (None, Some(bug)) => {
                fixed.push(format!("{line}: known bug fixed ({bug}); unmark the row"));
            }
        }
    }
    eprintln!("{} rows:\n{report}", rows.len());
    assert!(
        failures.is_empty(),
        "{} of {} rows broke the contract:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
    assert!(fixed.is_empty(), "{}", fixed.join("\n"));
}

/// `vipcheck man DIR` and `compat install DIR` create DIR when missing.
#[test]
fn man_and_compat_install_create_their_dir() {
    let s = Scratch::new();
    for (args, file) in [
        (&["man"][..], "vipcheck-daemon.1"),
        (&["compat", "install"], "check_tcp_raw"),
    ] {
        let dir = s.path(&format!("new-{}/sub", args[0]));
        let out = Command::new(VIPCHECK)
            .args(args)
            .arg(&dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        assert!(
            Path::new(&dir).join(file).symlink_metadata().is_ok(),
            "{args:?}"
        );
    }
}
