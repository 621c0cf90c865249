//! `vipcheck smtp` and `vipcheck tcp --send/--expect` in a real lab: exim
//! on `ok` and `novip` (every address, the VIPs included), through the
//! real XDP program. One lab for every case: a lab costs time.

use crate::common::*;
use xtask::lab::{SMTP_MULTILINE_PORT, SMTP_PORT, VIP6, smtp_greeting};

/// `vipcheck CHECK [extra...] eth0 RS VIP PORT`.
fn check(lab: &Lab, check: &str, rs: &str, vip: &str, port: u16, extra: &[&str]) -> Run {
    let port = port.to_string();
    let mut args = vec![check];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[LB_IFACE, rs, vip, &port]);
    run(vipcheck(lab, &args))
}

/// The `failure` of a `--format json` line.
fn failure(out: &Run) -> String {
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("JSON");
    v["failure"].as_str().unwrap_or_default().to_string()
}

#[test]
fn smtp_and_tcp_expect_verdicts() {
    let lab = lab(Role::Backup);
    let _smtp = lab.start_smtp().expect("start exim");
    let (ok, vip) = (OK_IP.to_string(), VIP.to_string());

    // The whole dialogue, with -v its lines on stderr.
    let out = check(&lab, "smtp", &ok, &vip, SMTP_PORT, &["-v"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_one_clean_line(&out.stdout);
    let greeting = smtp_greeting(Host::Ok);
    assert!(
        out.stdout
            .contains(&format!("{greeting}; EHLO 250; QUIT 221")),
        "{out:?}"
    );
    for line in [
        format!("< {greeting}"),
        "> EHLO smtpchecker.keepalived.org".to_string(),
        "> QUIT".to_string(),
    ] {
        assert!(
            out.stderr.lines().any(|l| l.starts_with(&line)),
            "{line}: {out:?}"
        );
    }

    // IPv6: the VIP6 through ok's IPv6 address.
    let out = check(
        &lab,
        "smtp",
        &Host::Ok.ip6().to_string(),
        &VIP6.to_string(),
        SMTP_PORT,
        &["--helo", "lb.lab.test"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("EHLO 250; QUIT 221"), "{out:?}");

    // A multi-line banner (which keepalived's own SMTP_CHECK fails).
    let out = check(&lab, "smtp", &ok, &vip, SMTP_MULTILINE_PORT, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("220 ok.lab.test multi-line banner, line 1; EHLO 250"),
        "{out:?}"
    );

    // No VIP on novip: no answer; nothing on port 25 of closed: refused.
    let out = check(
        &lab,
        "smtp",
        &NOVIP_IP.to_string(),
        &vip,
        SMTP_PORT,
        &["-t", "500", "--format", "json"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(failure(&out), "no_answer", "{out:?}");
    let out = check(&lab, "smtp", &CLOSED_IP.to_string(), &vip, SMTP_PORT, &[]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("refused (RST)"), "{out:?}");

    // tcp --expect alone reads the banner.
    let out = check(&lab, "tcp", &ok, &vip, SMTP_PORT, &["--expect", "^220 "]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("matching /^220 /"), "{out:?}");
    // --send, then the reply to it.
    let out = check(
        &lab,
        "tcp",
        &ok,
        &vip,
        SMTP_PORT,
        &["--send", r"QUIT\r\n", "--expect", "221"],
    );
    assert_eq!(out.code, 0, "{out:?}");
    // --send alone: healthy once acknowledged.
    let out = check(&lab, "tcp", &ok, &vip, SMTP_PORT, &["--send", "x"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("sent 1 byte; acknowledged"), "{out:?}");
    // A pattern that nothing matches: a failed reply, with what came.
    let out = check(
        &lab,
        "tcp",
        &ok,
        &vip,
        SMTP_PORT,
        &["-t", "500", "--expect", "nomatch", "--format", "json"],
    );
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(failure(&out), "reply", "{out:?}");
    assert!(out.stdout.contains("220 ok.lab.test"), "{out:?}");

    // keepalived.conf's SMTP_CHECK (HELO only, also on the multi-line
    // banner keepalived itself fails) and a MISC_CHECK of `vipcheck smtp`.
    let dir = std::env::temp_dir().join(format!("vck-smtp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("keepalived.conf");
    std::fs::write(
        &conf,
        format!(
            "virtual_server {VIP} 25 {{\n  lb_kind DR\n  protocol TCP\n\
               real_server {OK_IP} 25 {{\n    SMTP_CHECK {{\n      helo_name lb.lab.test\n      connect_timeout 1\n    }}\n\
                 SMTP_CHECK {{\n      connect_port {SMTP_MULTILINE_PORT}\n      connect_timeout 1\n    }}\n  }}\n\
               real_server {NOVIP_IP} 25 {{\n    MISC_CHECK {{\n      misc_path \"/usr/sbin/vipcheck smtp -t 300 {LB_IFACE} {NOVIP_IP} {VIP} 25\"\n    }}\n  }}\n\
             }}\n"
        ),
    )
    .unwrap();
    assert_keepalived_reads(&conf);
    let conf = conf.to_str().unwrap();
    let out = run(vipcheck(
        &lab,
        &["audit", "--keepalived", conf, "--format", "json"],
    ));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.code, 1, "novip fails: {out:?}");
    let mut failures: Vec<String> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .filter(|o| o.get("verdict").is_some())
        .map(|o| o["failure"].as_str().unwrap_or("healthy").to_string())
        .collect();
    failures.sort();
    assert_eq!(failures, ["healthy", "healthy", "no_answer"], "{out:?}");
}
