//! The package's systemd unit (xtask/dist/vipcheck.service), offline and
//! without a build: `systemd-analyze verify` must say nothing of it, and
//! `systemd-analyze security --offline` must rate it at most
//! [`MAX_EXPOSURE`]. Needs systemd-analyze (`cargo xtask setup` installs
//! the systemd package), not root; takes well under a second.

mod common;

use common::TempDir;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use xtask::dist::UNIT;

/// The highest overall exposure `systemd-analyze security` may give the
/// unit, in its tenths (45: 4.5).
const MAX_EXPOSURE: u32 = 45;

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The unit as a file named vipcheck.service, its ExecStart= binary a
/// stub (verify wants an executable there; the .deb test verifies with
/// the real one and its man pages).
fn unit_file(tmp: &TempDir) -> PathBuf {
    let stub = tmp.0.join("vipcheck");
    std::fs::write(&stub, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exec_start = "\nExecStart=/usr/bin/vipcheck daemon $VIPCHECK_ARGS\n";
    assert!(UNIT.contains(exec_start));
    let unit = UNIT.replace(
        exec_start,
        &format!("\nExecStart={} daemon $VIPCHECK_ARGS\n", stub.display()),
    );
    let path = tmp.0.join("vipcheck.service");
    std::fs::write(&path, unit).unwrap();
    path
}

#[test]
fn systemd_analyze_verify_says_nothing_of_the_unit() {
    let tmp = TempDir::new("unit-verify");
    let unit = unit_file(&tmp);
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze (package systemd; `cargo xtask setup`)");
    let said = said(&out);
    // Unknown keys and values that do not parse are only warnings.
    let about_unit: Vec<&str> = said
        .lines()
        .filter(|l| l.contains("vipcheck.service"))
        .collect();
    assert!(
        out.status.success() && about_unit.is_empty(),
        "systemd-analyze verify ({}): {said}",
        out.status
    );
}

#[test]
fn systemd_analyze_security_rates_the_unit_ok() {
    let tmp = TempDir::new("unit-security");
    let unit = unit_file(&tmp);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(format!("--threshold={MAX_EXPOSURE}"))
        .arg(&unit)
        .output()
        .expect("systemd-analyze (package systemd; `cargo xtask setup`)");
    let said = said(&out);
    println!("{said}");
    let level = said
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for vipcheck.service: ")
                .nth(1)
        })
        .unwrap_or_else(|| panic!("no overall exposure level: {said}"));
    let score: f64 = level.split_whitespace().next().unwrap().parse().unwrap();
    assert!(
        score * 10.0 <= f64::from(MAX_EXPOSURE) + 0.01,
        "exposure {score} > {}: {said}",
        f64::from(MAX_EXPOSURE) / 10.0
    );
    // --threshold makes it fail above the level too.
    assert!(out.status.success(), "systemd-analyze security: {said}");
    // What the daemon needs stays allowed: bpf(2) in the system call
    // filter, its four address families.
    let filter: Vec<&str> = UNIT
        .lines()
        .filter_map(|l| l.strip_prefix("SystemCallFilter="))
        .collect();
    assert_eq!(filter, ["@system-service bpf", "~@resources"]);
    assert!(
        UNIT.contains("\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK AF_PACKET\n")
    );
}

/// Every setting of [Service] after the command lines has a comment: a
/// comment line in the block of settings it belongs to (settings are
/// grouped, a blank line between groups).
#[test]
fn every_sandbox_setting_is_explained() {
    let service = UNIT.split("[Service]\n").nth(1).unwrap();
    let service = service.split("\n[").next().unwrap();
    for block in service.split("\n\n").skip(1) {
        assert!(
            block.lines().any(|l| l.starts_with('#')),
            "a block of settings without a comment: {block}"
        );
    }
}
