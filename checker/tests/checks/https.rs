//! `vipcheck https` in real labs: nginx serving TLS on the real servers
//! with certificates the lab made (a CA of its own, one certificate valid
//! for a year, one that expires in five days), rustls over the userspace
//! stack, the real XDP program.

use crate::common::*;
use md5::{Digest, Md5};
use sha2::Sha256;
use xtask::lab::{
    CLIENT_CERT_FILE, CLIENT_KEY_FILE, HTTPS_EXPIRED_PORT, HTTPS_MTLS_PORT, HTTPS_PORT,
    HTTPS_SOON_PORT, INDEX_HTML, SOON_DAYS, pseudo_random,
};

/// `vipcheck https [extra...] eth0 RS VIP PORT lab.example PATH`.
fn https(lab: &Lab, rs: std::net::Ipv4Addr, port: u16, path: &str, extra: &[&str]) -> Run {
    let mut args = http_args(rs, port, path, extra);
    args[0] = "https".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(vipcheck(lab, &args))
}

#[test]
fn https_through_the_vip_path() {
    let lab = lab(Role::Backup);
    let ca = lab.ca_pem();
    let ca = ca.to_str().unwrap();
    let expect = |out: &Run, code: i32, needle: &str| {
        assert_eq!(out.code, code, "{out:?}");
        assert_one_clean_line(&out.stdout);
        assert!(out.stdout.contains(needle), "{needle:?} not in {out:?}");
    };

    let ok = https(&lab, OK_IP, HTTPS_PORT, "/", &["--ca", ca]);
    expect(
        &ok,
        0,
        "OK: https GET lab.example/ via 198.18.0.11 (198.18.0.100:443): 200 OK",
    );
    for needle in [
        "certificate CN=lab.example from CN=vipcheck lab CA",
        "365 days left",
        "TLSv1.",
    ] {
        assert!(ok.stdout.contains(needle), "{needle}: {ok:?}");
    }
    expect(
        &https(&lab, OK_IP, HTTPS_PORT, "/", &[]),
        1,
        "TLS: certificate from an unknown issuer",
    );
    expect(
        &https(&lab, OK_IP, HTTPS_PORT, "/", &["--insecure"]),
        0,
        "(not verified: --insecure)",
    );
    expect(
        &https(
            &lab,
            OK_IP,
            HTTPS_PORT,
            "/",
            &["--ca", ca, "--sni", "other.example"],
        ),
        1,
        "name mismatch",
    );
    expect(
        &https(
            &lab,
            OK_IP,
            HTTPS_SOON_PORT,
            "/",
            &["--ca", ca, "--cert-days", "10"],
        ),
        1,
        &format!("certificate expires in {SOON_DAYS} days, within --cert-days 10"),
    );
    expect(
        &https(
            &lab,
            OK_IP,
            HTTPS_SOON_PORT,
            "/",
            &["--ca", ca, "--cert-days", "3"],
        ),
        0,
        &format!("{SOON_DAYS} days left"),
    );
    let warning = https(
        &lab,
        OK_IP,
        HTTPS_SOON_PORT,
        "/",
        &["--ca", ca, "--cert-days", "10", "--format", "nagios"],
    );
    assert_eq!(
        warning.code, 1,
        "a certificate about to expire is a WARNING: {warning:?}"
    );
    assert!(
        warning.stdout.starts_with("VIPCHECK WARNING - "),
        "{warning:?}"
    );
    // The same failure in JSON: its code, as the metrics label.
    let json = https(
        &lab,
        OK_IP,
        HTTPS_SOON_PORT,
        "/",
        &["--ca", ca, "--cert-days", "10", "--format", "json"],
    );
    assert_eq!(json.code, 1, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["failure"], "cert_expiring", "{json:?}");
    expect(
        &https(&lab, NOVIP_IP, HTTPS_PORT, "/", &["--ca", ca, "-t", "500"]),
        1,
        "no answer",
    );
    // No SNI sent (nginx answers with its default server's certificate,
    // still verified against HOST).
    expect(
        &https(&lab, OK_IP, HTTPS_PORT, "/", &["--ca", ca, "--no-sni"]),
        0,
        "200 OK",
    );
    expect(
        &https(&lab, OK_IP, HTTPS_EXPIRED_PORT, "/", &["--ca", ca]),
        1,
        "TLS: certificate expired",
    );
    // Mutual TLS: nginx wants a client certificate from the lab's CA.
    let tls_dir = lab.tls_dir();
    let cert = tls_dir.join(CLIENT_CERT_FILE);
    let key = tls_dir.join(CLIENT_KEY_FILE);
    expect(
        &https(
            &lab,
            OK_IP,
            HTTPS_MTLS_PORT,
            "/",
            &[
                "--ca",
                ca,
                "--client-cert",
                cert.to_str().unwrap(),
                "--client-key",
                key.to_str().unwrap(),
            ],
        ),
        0,
        "200 OK",
    );
    expect(
        &https(&lab, OK_IP, HTTPS_MTLS_PORT, "/", &["--ca", ca]),
        1,
        "status 400",
    );

    // The validations of `http`, over TLS.
    let index_md5 = hex::encode(Md5::digest(INDEX_HTML.as_bytes()));
    expect(
        &https(
            &lab,
            OK_IP,
            HTTPS_PORT,
            "/",
            &[
                "--ca",
                ca,
                "-S",
                "200",
                "-A",
                &index_md5,
                "--regex",
                "vipcheck",
                "-R",
                "Content-Type",
            ],
        ),
        0,
        "200 OK",
    );
    expect(
        &https(&lab, OK_IP, HTTPS_PORT, "/", &["--ca", ca, "-S", "204"]),
        1,
        "status 200, expected 204",
    );
    let big = hex::encode(Sha256::digest(pseudo_random(5 * 1024 * 1024)));
    expect(
        &https(
            &lab,
            OK_IP,
            HTTPS_PORT,
            "/5m.bin",
            &[
                "--ca",
                ca,
                "--sha256",
                &big,
                "--max-body",
                "8M",
                "-t",
                "10000",
            ],
        ),
        0,
        "5242880 body bytes",
    );

    let json = https(
        &lab,
        OK_IP,
        HTTPS_PORT,
        "/",
        &["--ca", ca, "--format", "json"],
    );
    assert_eq!(json.code, 0, "{json:?}");
    let v: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(v["check"], "https");
    assert!(v["failure"].is_null(), "{json:?}");
    assert_eq!(v["tls"]["subject"], "CN=lab.example");
    assert_eq!(v["tls"]["issuer"], "CN=vipcheck lab CA");
    assert_eq!(v["tls"]["days_left"], 365);
    assert_eq!(v["tls"]["verified"], true);
    assert!(v["tls"]["version"].as_str().unwrap().starts_with("TLSv1."));
    assert!(v["tls"]["cipher_suite"].is_string());

    // A CA file that is not one: a usage error, before anything is sent.
    let bad = https(&lab, OK_IP, HTTPS_PORT, "/", &["--ca", "/nonexistent.pem"]);
    assert_eq!(bad.code, 2, "{bad:?}");
    assert_one_clean_line(&bad.stderr);
    assert!(bad.stderr.contains("--ca /nonexistent.pem"), "{bad:?}");
}

#[test]
fn https_under_loss_passes_as_often_as_curl() {
    let lab = lab(Role::Backup);
    let ca = lab.ca_pem();
    let ca = ca.to_str().unwrap();
    let sha = hex::encode(Sha256::digest(pseudo_random(20 * 1024)));
    let extra = ["--ca", ca, "--sha256", &sha, "-t", "5000"];
    // Warm up (load the program) before the loss.
    assert_eq!(https(&lab, OK_IP, HTTPS_PORT, "/20k.bin", &extra).code, 0);
    add_loss(&lab, Host::Ok, 10);
    const RUNS: usize = 50;
    let vipcheck_passes = passes(RUNS, || {
        let mut args = http_args(OK_IP, HTTPS_PORT, "/20k.bin", &extra);
        args[0] = "https".into();
        let mut cmd = lab.command(lab.lb_ns(), VIPCHECK);
        cmd.args(&args);
        cmd
    });
    // curl to the real server's own address, with the same CA and name.
    let curl_passes = passes(RUNS, || {
        let mut cmd = lab.command(lab.lb_ns(), "curl");
        cmd.args([
            "-sf",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "--cacert",
            ca,
            "--resolve",
            &format!("lab.example:{HTTPS_PORT}:{OK_IP}"),
            &format!("https://lab.example:{HTTPS_PORT}/20k.bin"),
        ]);
        cmd
    });
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "10% loss both ways, HTTPS: vipcheck {vipcheck_passes}/{RUNS} passed, curl {curl_passes}/{RUNS} passed"
    );
    assert!(
        curl_passes > 0,
        "curl never passed: the comparison means nothing"
    );
    assert!(
        vipcheck_passes >= curl_passes,
        "vipcheck passed {vipcheck_passes}/{RUNS}, curl {curl_passes}/{RUNS}"
    );
}
