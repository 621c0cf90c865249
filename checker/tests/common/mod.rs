//! Helpers of the lab tests: run vipcheck in a lab's LB namespace and read
//! what it and the XDP program report.
#![allow(dead_code)] // each test crate uses its own subset

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use xtask::lab::{
    ABSENT_IP, CLOSED_IP, Host, LB_IFACE, LB_IP, Lab, NOVIP_IP, OK_IP, Role, VIP,
};

pub const VIPCHECK: &str = env!("CARGO_BIN_EXE_vipcheck");

/// A lab of `role`; these tests need root and fail (not skip) without it.
pub fn lab(role: Role) -> Lab {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the lab tests need root (network namespaces, XDP)"
    );
    Lab::up(role).expect("lab up")
}

/// `vipcheck ARGS` in the LB namespace.
pub fn vipcheck(lab: &Lab, args: &[&str]) -> Command {
    let mut cmd = lab.command(lab.lb_ns(), VIPCHECK);
    cmd.args(args);
    cmd
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

pub fn run(mut cmd: Command) -> Run {
    let start = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run vipcheck");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// `vipcheck tcp [extra...] eth0 RS VIP 80`.
pub fn tcp(lab: &Lab, real_server: std::net::Ipv4Addr, extra: &[&str]) -> Run {
    let rs = real_server.to_string();
    let vip = VIP.to_string();
    let mut args = vec!["tcp"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[LB_IFACE, &rs, &vip, "80"]);
    run(vipcheck(lab, &args))
}

/// `vipcheck xdp status eth0` as (counter name → value, number of flows).
pub fn xdp_status(lab: &Lab) -> (Vec<(String, u64)>, usize) {
    let out = run(vipcheck(lab, &["xdp", "status", LB_IFACE]));
    assert_eq!(out.code, 0, "xdp status: {out:?}");
    let mut counters = Vec::new();
    let mut flows = None;
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["flows:", n] => flows = n.parse().ok(),
            [name, value] => {
                if let Ok(v) = value.parse() {
                    counters.push((name.to_string(), v));
                }
            }
            _ => {}
        }
    }
    (counters, flows.expect("flows line in xdp status"))
}

pub fn counter(counters: &[(String, u64)], name: &str) -> u64 {
    counters
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no counter {name} in {counters:?}"))
}

/// Exactly one line, and no sign of a panic.
pub fn assert_one_clean_line(text: &str) {
    assert_eq!(text.trim_end().lines().count(), 1, "not one line: {text:?}");
    assert!(!text.contains("panicked"), "panic: {text}");
    assert!(!text.contains("RUST_BACKTRACE"), "backtrace: {text}");
}

/// Runs `program args` in namespace `ns` and returns its stdout; panics on failure.
pub fn sh(lab: &Lab, ns: &str, program: &str, args: &[&str]) -> String {
    let out = lab
        .command(ns, program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
