//! vipcheck started with `ip netns exec` (a mount namespace of its own,
//! with a fresh /sys where the host's /sys/fs/bpf is not) and with
//! `nsenter --net` (the host's mounts), at the same time: every process
//! finds vipcheck's XDP program from the interface and shares it, the
//! interface never has two programs, and the program stays after the
//! processes that attached it end. Real labs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// How a check is started in the LB namespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    /// `ip netns exec NS vipcheck ...`: new mount namespace, fresh /sys.
    IpNetnsExec,
    /// `nsenter --net=/run/netns/NS vipcheck ...` ([`Lab::command`]).
    Nsenter,
    /// As in a container of the host's network: `nsenter --net`, then a
    /// mount namespace with a /run of its own (where vipcheck keeps its
    /// lock), so that nothing serializes it with the others.
    Container,
}

const BOTH: [Via; 2] = [Via::IpNetnsExec, Via::Nsenter];

fn command(lab: &Lab, via: Via, args: &[&str]) -> Command {
    match via {
        Via::IpNetnsExec => {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", lab.lb_ns(), VIPCHECK])
                .args(args);
            cmd
        }
        Via::Nsenter => vipcheck(lab, args),
        Via::Container => {
            let mut cmd = lab.command(lab.lb_ns(), "unshare");
            cmd.args([
                "--mount",
                "--propagation",
                "private",
                "sh",
                "-c",
                "mount -t tmpfs vck-run /run && exec \"$0\" \"$@\"",
                VIPCHECK,
            ])
            .args(args);
            cmd
        }
    }
}

/// Runs `count` checks at once, started in turn each way of `vias` and
/// alternating the real server (ok, novip), and asserts every verdict.
/// Returns how many said they attached the XDP program.
fn concurrent_checks(lab: &Lab, vias: &[Via], count: usize) -> usize {
    let vip = VIP.to_string();
    let children: Vec<_> = (0..count)
        .map(|i| {
            let via = vias[i % vias.len()];
            let rs = if (i / 2) % 2 == 0 { OK_IP } else { NOVIP_IP };
            let real_server = rs.to_string();
            let mut cmd = command(
                lab,
                via,
                &["tcp", "-t", "1500", LB_IFACE, &real_server, &vip, "80"],
            );
            cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
            (via, rs, cmd.spawn().expect("spawn vipcheck"))
        })
        .collect();
    let mut attached = 0;
    for (via, rs, child) in children {
        let out = child.wait_with_output().expect("wait");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let expected = if rs == OK_IP { 0 } else { 1 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{via:?} {rs}: {stdout}{stderr}"
        );
        if stdout.contains("to attach the capture program") {
            attached += 1;
        }
    }
    attached
}

/// The one XDP program of the LB's eth0, which must be vipcheck's as
/// `xdp status` through `ip netns exec` tells it.
fn the_one_program(lab: &Lab) -> u32 {
    let ids = xdp_ids(lab, LB_IFACE);
    assert_eq!(ids.len(), 1, "not exactly one XDP program: {ids:?}");
    let status = run(command(lab, Via::IpNetnsExec, &["xdp", "status", LB_IFACE]));
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.starts_with(&format!(
            "eth0: vipcheck XDP program {} attached in skb mode",
            ids[0]
        )),
        "{status:?}"
    );
    ids[0]
}

#[test]
fn checks_from_any_mount_namespace_share_one_program() {
    let lab = lab(Role::Backup);
    assert!(xdp_ids(&lab, LB_IFACE).is_empty());

    // One `ip netns exec` check on a bare interface attaches the program;
    // it stays after that process (and its mount namespace) ended, and a
    // check from the host's mounts uses it.
    let first = run(command(
        &lab,
        Via::IpNetnsExec,
        &["tcp", LB_IFACE, &OK_IP.to_string(), &VIP.to_string(), "80"],
    ));
    assert_eq!(first.code, 0, "{first:?}");
    assert!(
        first.stdout.contains("to attach the capture program"),
        "{first:?}"
    );
    let id = the_one_program(&lab);
    let next = tcp(&lab, OK_IP, &[]);
    assert_eq!(next.code, 0, "{next:?}");
    assert!(!next.stdout.contains("attach"), "{next:?}");
    assert_eq!(the_one_program(&lab), id);

    // Both ways at once, on the program attached: nobody attaches another.
    assert_eq!(concurrent_checks(&lab, &BOTH, 12), 0);
    assert_eq!(the_one_program(&lab), id);
    assert_eq!(xdp_status(&lab).1, 0, "flows left behind");

    // Both ways at once on a bare interface: one of them attaches it.
    for via in BOTH {
        let detach = run(command(&lab, via, &["xdp", "detach", LB_IFACE]));
        assert_eq!(detach.code, 0, "{detach:?}");
        assert!(xdp_ids(&lab, LB_IFACE).is_empty());
        assert_eq!(concurrent_checks(&lab, &BOTH, 12), 1, "attachers");
        let id = the_one_program(&lab);
        assert_eq!(concurrent_checks(&lab, &BOTH, 4), 0);
        assert_eq!(the_one_program(&lab), id);
    }
}

/// Racing first checks that share no lock (each in a mount namespace with
/// its own /run, as containers of the host's network would be), with
/// `ip netns exec` and `nsenter` ones among them, still end with exactly
/// one program: the kernel lets one attach win, and the others use the
/// winner's program.
#[test]
fn racing_attachers_that_share_no_lock_end_with_one_program() {
    let lab = lab(Role::Backup);
    let vias = [
        Via::Container,
        Via::IpNetnsExec,
        Via::Container,
        Via::Nsenter,
    ];
    for round in 0..4 {
        assert!(xdp_ids(&lab, LB_IFACE).is_empty());
        assert_eq!(concurrent_checks(&lab, &vias, 16), 1, "round {round}");
        let id = the_one_program(&lab);
        assert_eq!(concurrent_checks(&lab, &vias, 8), 0);
        assert_eq!(the_one_program(&lab), id);
        let detach = run(command(&lab, vias[round], &["xdp", "detach", LB_IFACE]));
        assert_eq!(detach.code, 0, "{detach:?}");
        assert!(detach.stdout.contains("vipcheck XDP program detached"));
    }
}

/// `xdp status`, `attach` and `detach` through `ip netns exec` see and act
/// on the program attached from elsewhere, and the reverse.
#[test]
fn xdp_subcommands_through_ip_netns_exec() {
    let lab = lab(Role::Backup);
    let attach = run(vipcheck(&lab, &["xdp", "attach", LB_IFACE]));
    assert_eq!(attach.code, 0, "{attach:?}");
    let id = the_one_program(&lab);

    // A check that waits for its answer until -t: its flow is registered
    // meanwhile, and the status through `ip netns exec` lists it.
    let mut slow = vipcheck(
        &lab,
        &[
            "tcp",
            "-t",
            "3000",
            LB_IFACE,
            &NOVIP_IP.to_string(),
            &VIP.to_string(),
            "80",
        ],
    );
    slow.stdout(Stdio::null());
    let mut slow = lab.spawn(&mut slow).expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(2);
    let status = loop {
        let status = run(command(
            &lab,
            Via::IpNetnsExec,
            &["xdp", "status", LB_IFACE],
        ));
        assert_eq!(status.code, 0, "{status:?}");
        if status.stdout.contains("flows: 1") {
            break status;
        }
        assert!(Instant::now() < deadline, "no flow seen: {status:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(
        status.stdout.starts_with(&format!(
            "eth0: vipcheck XDP program {id} attached in skb mode"
        )),
        "{status:?}"
    );
    for counter in [
        "pass_other",
        "pass_miss",
        "drop_delivered",
        "drop_ring_full",
        "drop_oversize",
        "pass_copied_arp",
        "drop_no_ring",
    ] {
        assert!(
            status
                .stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(counter)),
            "no {counter}: {status:?}"
        );
    }
    assert!(
        status.stdout.contains("198.18.0.100:80 > 198.18.0.1:"),
        "{status:?}"
    );
    assert_eq!(slow.child().wait().expect("wait").code(), Some(1));

    let detach = run(command(
        &lab,
        Via::IpNetnsExec,
        &["xdp", "detach", LB_IFACE],
    ));
    assert_eq!(detach.code, 0, "{detach:?}");
    assert!(
        detach
            .stdout
            .contains("eth0: vipcheck XDP program detached")
    );
    assert!(xdp_ids(&lab, LB_IFACE).is_empty());
    let none = run(command(
        &lab,
        Via::IpNetnsExec,
        &["xdp", "status", LB_IFACE],
    ));
    assert_eq!(none.code, 0, "{none:?}");
    assert!(none.stdout.contains("no vipcheck XDP program attached"));

    // The reverse: attached through `ip netns exec`, it stays after that
    // command; detached from the host's mounts.
    let attach = run(command(
        &lab,
        Via::IpNetnsExec,
        &["xdp", "attach", LB_IFACE],
    ));
    assert_eq!(attach.code, 0, "{attach:?}");
    let id = the_one_program(&lab);
    let (_, flows) = xdp_status(&lab);
    assert_eq!(flows, 0);
    let detach = run(vipcheck(&lab, &["xdp", "detach", LB_IFACE]));
    assert_eq!(detach.code, 0, "{detach:?}");
    assert!(
        xdp_ids(&lab, LB_IFACE).is_empty(),
        "program {id} still attached"
    );
}

/// Another tool's program is another's from every mount namespace: no
/// check replaces it, no detach removes it, and the error says nothing of
/// nsenter any more.
#[test]
fn a_foreign_program_is_foreign_from_any_mount_namespace() {
    let lab = lab(Role::Backup);
    let foreign = ForeignXdp::attach(&lab);
    for via in BOTH {
        let out = run(command(
            &lab,
            via,
            &["tcp", LB_IFACE, &OK_IP.to_string(), &VIP.to_string(), "80"],
        ));
        assert_eq!(out.code, 3, "{via:?}: {out:?}");
        assert_one_clean_line(&out.stderr);
        assert!(
            out.stderr
                .contains(&format!("another XDP program (id {}, skb mode) is attached to eth0; vipcheck does not replace it", foreign.id)),
            "{via:?}: {out:?}"
        );
        assert!(!out.stderr.contains("nsenter"), "{via:?}: {out:?}");
        let status = run(command(&lab, via, &["xdp", "status", LB_IFACE]));
        assert_eq!(status.code, 0, "{via:?}: {status:?}");
        assert!(
            status.stdout.contains(&format!(
                "XDP program {} (skb mode) is another's",
                foreign.id
            )),
            "{via:?}: {status:?}"
        );
        let detach = run(command(&lab, via, &["xdp", "detach", LB_IFACE]));
        assert_eq!(detach.code, 0, "{via:?}: {detach:?}");
        assert!(detach.stdout.contains("no vipcheck XDP program attached"));
        assert_eq!(xdp_ids(&lab, LB_IFACE), [foreign.id], "{via:?}");
    }
}
