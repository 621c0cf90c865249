//! `vipcheck http` in real labs: nginx and the project's fixture server on
//! real servers, the real XDP program, real loss made by nftables.

use std::io::Write;
use std::time::Duration;

use crate::common::*;
use md5::{Digest, Md5};
use sha2::Sha256;
use xtask::lab::{BYTEWISE_BODY, CHUNKED_BODY, FIXTURE_PORT, TEXT_BODY, pseudo_random};

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

#[test]
fn nginx_through_the_vip() {
    let lab = lab(Role::Backup);
    let index = http(&lab, OK_IP, 80, "/", &["-S", "200"]);
    assert_eq!(index.code, 0, "{index:?}");
    assert!(
        index
            .stdout
            .starts_with("OK: http GET lab.example/ via 198.18.0.11"),
        "{index:?}"
    );
    assert_one_clean_line(&index.stdout);

    let small = md5_hex(&pseudo_random(20 * 1024));
    let right = http(&lab, OK_IP, 80, "/20k.bin", &["-A", &small]);
    assert_eq!(right.code, 0, "{right:?}");
    assert!(right.stdout.contains("20480 body bytes"), "{right:?}");
    let wrong_md5 = "0123456789abcdef0123456789abcdef";
    let wrong = http(&lab, OK_IP, 80, "/20k.bin", &["-A", wrong_md5]);
    assert_eq!(wrong.code, 1, "{wrong:?}");
    assert!(
        wrong
            .stdout
            .contains(&format!("body MD5 {small}, expected {wrong_md5}")),
        "{wrong:?}"
    );

    let big = sha256_hex(&pseudo_random(5 * 1024 * 1024));
    // 5 MiB is over the default --max-body of 4 MiB.
    let whole = http(
        &lab,
        OK_IP,
        80,
        "/5m.bin",
        &["--sha256", &big, "--max-body", "8M", "-t", "10000"],
    );
    assert_eq!(whole.code, 0, "{whole:?}");
    let capped = http(
        &lab,
        OK_IP,
        80,
        "/5m.bin",
        &["--sha256", &big, "--max-body", "1M"],
    );
    let default = http(&lab, OK_IP, 80, "/5m.bin", &["--sha256", &big]);
    assert_eq!(default.code, 1, "{default:?}");
    assert_eq!(capped.code, 1, "{capped:?}");
    assert!(
        capped.stdout.contains("larger than --max-body 1048576"),
        "{capped:?}"
    );

    let novip = http(&lab, NOVIP_IP, 80, "/", &[]);
    assert_eq!(novip.code, 1, "{novip:?}");
    let closed = http(&lab, CLOSED_IP, 80, "/", &[]);
    assert_eq!(closed.code, 1, "{closed:?}");
    assert!(closed.stdout.contains("refused (RST)"), "{closed:?}");
}

#[test]
fn fixture_cases() {
    let lab = lab(Role::Backup);
    let _fixtures = lab.fixtures(Host::Ok).expect("fixture server");
    let case = |path: &str, extra: &[&str]| http(&lab, OK_IP, FIXTURE_PORT, path, extra);
    let expect = |path: &str, extra: &[&str], code: i32, needle: &str| {
        let out = case(path, extra);
        assert_eq!(out.code, code, "{path} {extra:?}: {out:?}");
        assert!(out.stdout.contains(needle), "{path} {extra:?}: {out:?}");
        assert_one_clean_line(&out.stdout);
    };

    expect(
        "/chunked",
        &["-B", CHUNKED_BODY],
        0,
        &format!("{} body bytes", CHUNKED_BODY.len()),
    );
    expect(
        "/chunked",
        &["-B", "something else"],
        1,
        "body differs from --body",
    );
    expect(
        "/close",
        &["-A", &md5_hex(b"close-delimited body\n")],
        0,
        "200 OK",
    );
    expect(
        "/lf",
        &["-B", "lf only\n", "-R", "x-line-ends: lf"],
        0,
        "8 body bytes",
    );
    expect("/204", &["-S", "204"], 0, "204 No Content, 0 body bytes");
    expect("/head", &["-M", "HEAD", "-S", "200"], 0, "0 body bytes");
    expect("/head", &["-S", "200"], 0, "1000 body bytes");
    expect(
        "/bytewise",
        &["-B", BYTEWISE_BODY, "-t", "3000"],
        0,
        "26 body bytes",
    );
    expect("/header", &["-R", "X-Fixture: yes"], 0, "200 OK");
    expect(
        "/header",
        &["-R", "X-Fixture: no"],
        1,
        "header X-Fixture: \"yes\", expected \"no\"",
    );
    expect(
        "/header",
        &["-R", "X-Missing: 1"],
        1,
        "header X-Missing missing",
    );
    expect("/text", &["--regex", r"version: \d+\.\d+"], 0, "200 OK");
    expect(
        "/text",
        &["--regex", "unhealthy"],
        1,
        "does not match --regex",
    );
    expect("/text", &["--regex-absent", "error"], 0, "200 OK");
    expect(
        "/text",
        &["--regex-absent", "healthy"],
        1,
        "matches --regex-absent",
    );
    expect("/text", &["-B", TEXT_BODY, "-S", "200-299"], 0, "200 OK");
    expect("/302", &["-S", "200"], 1, "status 302, expected 200");
    expect("/302", &[], 0, "302 Found");

    // -v shows the heads, -vv the body, on stderr; stdout stays one line.
    let traced = case("/text", &["-vv"]);
    assert_eq!(traced.code, 0, "{traced:?}");
    assert!(traced.stderr.contains("> GET /text HTTP/1.1"), "{traced:?}");
    assert!(traced.stderr.contains("< HTTP/1.1 200 OK"), "{traced:?}");
    assert!(traced.stderr.contains("version: 1.2.3"), "{traced:?}");
}

#[test]
fn hostile_servers_end_before_the_deadline_in_bounded_memory() {
    let lab = lab(Role::Backup);
    let _fixtures = lab.fixtures(Host::Ok).expect("fixture server");
    // Load the XDP program first: what is measured is the cost of the
    // hostile responses, not that of loading the program.
    assert_eq!(http(&lab, OK_IP, FIXTURE_PORT, "/text", &[]).code, 0);
    let deadline = Duration::from_millis(3000);
    for (path, needle) in [
        ("/endless-head", "response head larger than 65536 bytes"),
        ("/endless-body", "larger than --max-body 4194304"),
        ("/short", "connection ended after 10 of 1000 body bytes"),
        ("/bad-chunk", "invalid chunk size"),
        (
            "/reset",
            "connection reset by the server after 100 body bytes",
        ),
        (
            "/silent",
            "no response within 2970 ms (-t 3000 less 30 ms to end in time)",
        ),
    ] {
        let args = http_args(OK_IP, FIXTURE_PORT, path, &["-t", "3000"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (out, rss_kib) = run_measured(vipcheck(&lab, &args));
        let _ = writeln!(
            std::io::stderr(),
            "hostile {path}: exit {}, {:.0?}, peak RSS {rss_kib} KiB",
            out.code,
            out.elapsed
        );
        assert_eq!(out.code, 1, "{path}: {out:?}");
        assert!(out.stdout.contains(needle), "{path}: {out:?}");
        assert_one_clean_line(&out.stdout);
        assert!(out.stderr.is_empty(), "{path}: {out:?}");
        assert!(
            out.elapsed < deadline + Duration::from_millis(150),
            "{path} past the deadline: {out:?}"
        );
        assert!(rss_kib < 32 * 1024, "{path}: peak RSS {rss_kib} KiB");
    }
}

#[test]
fn loss_costs_no_more_than_it_costs_the_kernel() {
    let lab = lab(Role::Backup);
    let md5 = md5_hex(&pseudo_random(20 * 1024));
    // Warm up (load the program) before the loss.
    assert_eq!(http(&lab, OK_IP, 80, "/20k.bin", &["-A", &md5]).code, 0);
    add_loss(&lab, Host::Ok, 10);
    const RUNS: usize = 50;
    let vipcheck_passes = passes(RUNS, || {
        let args = http_args(OK_IP, 80, "/20k.bin", &["-A", &md5, "-t", "5000"]);
        let mut cmd = lab.command(lab.lb_ns(), VIPCHECK);
        cmd.args(&args);
        cmd
    });
    let url = format!("http://{OK_IP}/20k.bin");
    let curl_passes = passes(RUNS, || {
        let mut cmd = lab.command(lab.lb_ns(), "curl");
        cmd.args(["-sf", "-o", "/dev/null", "-m", "5", &url]);
        cmd
    });
    let drops = sh(
        &lab,
        lab.ns(Host::Ok),
        "nft",
        &["list", "table", "inet", "vckloss"],
    );
    // Straight to stderr, past the test harness's capture: the rates
    // belong in every test log.
    let _ = writeln!(
        std::io::stderr(),
        "10% loss both ways: vipcheck {vipcheck_passes}/{RUNS} passed, curl {curl_passes}/{RUNS} passed"
    );
    assert!(drops.contains("packets"), "no loss counter: {drops}");
    // Each run is a draw: at 10% loss both ways, a few in a hundred find
    // the server's retransmission lost again and again (its timeout backs
    // off 0.2, 0.4, 0.8, 1.6, 3.2 s) and miss the 5 s deadline, more often
    // for vipcheck, whose stack has no SACK. One or two such runs more
    // than curl are chance (seen once in CI: 49 against 50); three are not.
    assert!(
        vipcheck_passes + 2 >= curl_passes,
        "vipcheck passed {vipcheck_passes}/{RUNS}, curl {curl_passes}/{RUNS}"
    );
}
