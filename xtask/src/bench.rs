//! `cargo xtask bench`: the wall time of whole check processes, side by side
//! with the kernel doing the same over its own stack, in one lab and one
//! run (these machines are noisy: compare the ratios, not the numbers).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::lab::{HTTP_PORT, LB_IFACE, Lab, OK_IP, Role, VIP};

/// One contender: a command line run in the LB namespace.
struct Contender {
    name: &'static str,
    program: String,
    args: Vec<String>,
    times: Vec<Duration>,
}

/// Runs each contender `runs` times, interleaved, after a warm-up, and
/// prints the median and 90th percentile of each with its ratio to the first.
pub fn run(vipcheck: &Path, runs: usize) -> Result<()> {
    let lab = Lab::up(Role::Backup)?;
    let vipcheck = vipcheck.display().to_string();
    let rs = OK_IP.to_string();
    let vip = VIP.to_string();
    let port = HTTP_PORT.to_string();
    let strings = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let mut contenders = [
        Contender {
            name: "kernel TCP connect (bash /dev/tcp)",
            program: "bash".into(),
            args: strings(&["-c", &format!("exec 3<>/dev/tcp/{rs}/{port}")]),
            times: Vec::new(),
        },
        Contender {
            name: "vipcheck tcp (via the VIP)",
            program: vipcheck.clone(),
            args: strings(&["tcp", LB_IFACE, &rs, &vip, &port]),
            times: Vec::new(),
        },
        Contender {
            name: "curl GET / (kernel, own IP)",
            program: "curl".into(),
            args: strings(&["-sf", "-o", "/dev/null", &format!("http://{rs}/")]),
            times: Vec::new(),
        },
        Contender {
            name: "vipcheck http GET / (via the VIP)",
            program: vipcheck.clone(),
            args: strings(&["http", LB_IFACE, &rs, &vip, &port, "lab.example", "/"]),
            times: Vec::new(),
        },
    ];
    for round in 0..runs + 3 {
        for c in &mut contenders {
            let start = Instant::now();
            let status = lab
                .command(lab.lb_ns(), &c.program)
                .args(&c.args)
                .stdout(Stdio::null())
                .status()
                .with_context(|| format!("cannot run {}", c.program))?;
            let elapsed = start.elapsed();
            if !status.success() {
                bail!("{} failed: {status}", c.name);
            }
            // The first rounds load the XDP program and warm caches.
            if round >= 3 {
                c.times.push(elapsed);
            }
        }
    }
    let baseline = spawn_baseline(&lab, runs)?;
    println!("{runs} warm runs each, whole processes started with nsenter, interleaved:");
    println!("{:<36} {:>10} {:>10}", "", "median", "p90");
    println!(
        "{:<36} {:>10} {:>10}",
        "nsenter + /bin/true (process cost)",
        ms(percentile(&baseline, 50)),
        ms(percentile(&baseline, 90))
    );
    for c in &contenders {
        println!(
            "{:<36} {:>10} {:>10}",
            c.name,
            ms(percentile(&c.times, 50)),
            ms(percentile(&c.times, 90))
        );
    }
    let ratio = |a: usize, b: usize| {
        percentile(&contenders[a].times, 50).as_secs_f64()
            / percentile(&contenders[b].times, 50).as_secs_f64()
    };
    println!(
        "median ratios: vipcheck tcp / kernel connect {:.2}, vipcheck http / curl {:.2}",
        ratio(1, 0),
        ratio(3, 2)
    );
    Ok(())
}

fn spawn_baseline(lab: &Lab, runs: usize) -> Result<Vec<Duration>> {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            Command::new("nsenter")
                .arg(format!("--net=/run/netns/{}", lab.lb_ns()))
                .arg("true")
                .status()
                .context("cannot run nsenter")?;
            Ok(start.elapsed())
        })
        .collect()
}

fn percentile(times: &[Duration], p: usize) -> Duration {
    let mut sorted = times.to_vec();
    sorted.sort();
    sorted
        .get((sorted.len() * p / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
