//! Thousands of targets from one process: 10,000 checks through the VIP
//! path in one `vipcheck audit`, on one capture slot and one AF_PACKET
//! socket. Counts are asserted; times and memory are printed, not asserted
//! (they are measured side by side in `cargo xtask bench`).

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
fn targets_file(healthy: u32, unhealthy: u32) -> String {
    let mut toml = format!(
        "[defaults]\niface = \"{LB_IFACE}\"\ncheck = \"tcp\"\ntimeout_ms = 1000\ninterval_ms = 5000\n"
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

#[test]
fn ten_thousand_targets_in_one_audit() {
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
    let scratch = Scratch(std::env::temp_dir().join(format!("vck-scale-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0).unwrap();
    let (healthy, unhealthy) = (9_950u32, 50u32);
    let path = scratch.0.join("targets.toml");
    std::fs::write(&path, targets_file(healthy, unhealthy)).unwrap();
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
