//! `vipcheck tcp` in real labs: network namespaces, real nginx, the real
//! XDP program. Nothing on the network path is mocked.

use std::time::Duration;

use crate::common::*;

fn assert_verdicts(role: Role) {
    let lab = lab(role);
    let ok = tcp(&lab, OK_IP, &[]);
    assert_eq!(ok.code, 0, "ok: {ok:?}");
    assert!(ok.stdout.starts_with("OK: "), "{ok:?}");
    assert_one_clean_line(&ok.stdout);

    let novip = tcp(&lab, NOVIP_IP, &[]);
    assert_eq!(novip.code, 1, "novip: {novip:?}");
    assert!(
        novip
            .stdout
            .contains("no answer within 970 ms (-t 1000 less 30 ms to end in time)"),
        "{novip:?}"
    );

    let closed = tcp(&lab, CLOSED_IP, &[]);
    assert_eq!(closed.code, 1, "closed: {closed:?}");
    assert!(closed.stdout.contains("refused (RST)"), "{closed:?}");

    let absent = tcp(&lab, ABSENT_IP, &["-t", "700"]);
    assert_eq!(absent.code, 1, "absent: {absent:?}");
    assert!(
        absent
            .stdout
            .contains("no ARP reply from 198.18.0.99 on eth0 within 670 ms (-t 700 less 30 ms"),
        "{absent:?}"
    );
    assert!(
        absent.elapsed < Duration::from_millis(700 + 150),
        "past the deadline: {absent:?}"
    );
    // The whole check's deadline, not a per-step one: the process has
    // ended by then (the margin is the cost of starting it here).
    assert!(
        novip.elapsed < Duration::from_millis(1000 + 150),
        "past the deadline: {novip:?}"
    );
}

#[test]
fn backup_lb_verdicts() {
    assert_verdicts(Role::Backup);
}

#[test]
fn master_lb_verdicts() {
    assert_verdicts(Role::Master);
}

#[test]
fn fin_close_on_a_backup_lb_sends_no_rst() {
    let lab = lab(Role::Backup);
    // The kernel's RST goes to the VIP: without this entry the backup LB
    // could not deliver it (nobody answers ARP for the VIP) and the test
    // could not fail.
    let ok_mac = lab.mac(Host::Ok);
    sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &[
            "neigh",
            "replace",
            &VIP.to_string(),
            "lladdr",
            &ok_mac,
            "dev",
            LB_IFACE,
            "nud",
            "permanent",
        ],
    );
    let rsts = RstCounter::install(&lab, Rsts::All);

    for _ in 0..20 {
        let out = tcp(&lab, OK_IP, &["--close", "fin"]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert_eq!(
        rsts.packets(),
        0,
        "the LB's kernel answered the real server with RSTs"
    );

    // The same checks without our XDP program: the kernel sees the
    // SYN-ACKs and RSTs them, which is what the program prevents.
    let detach = run(vipcheck(&lab, &["xdp", "detach", LB_IFACE]));
    assert_eq!(detach.code, 0, "{detach:?}");
    for _ in 0..5 {
        let out = tcp(&lab, OK_IP, &["--close", "fin", "--xdp", "off"]);
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert!(
        rsts.packets() > 0,
        "no RST arrived without XDP: the test cannot tell"
    );
    let status = run(vipcheck(&lab, &["xdp", "status", LB_IFACE]));
    assert!(
        status.stdout.contains("no vipcheck XDP program attached"),
        "{status:?}"
    );
}

#[test]
fn kernel_traffic_passes_while_checks_run() {
    let lab = lab(Role::Backup);
    assert_eq!(tcp(&lab, OK_IP, &[]).code, 0);
    let (before, _) = xdp_status(&lab);
    checks_beside_curl(&lab, &format!("http://{OK_IP}/"), || {
        tcp(&lab, OK_IP, &[]).code
    });
    let (after, flows) = xdp_status(&lab);
    assert!(
        counter(&after, "pass_miss") > counter(&before, "pass_miss"),
        "curl's frames were not counted as passed: {before:?} → {after:?}"
    );
    assert!(counter(&after, "drop_delivered") > counter(&before, "drop_delivered"));
    assert_eq!(flows, 0);
}

#[test]
fn concurrent_checks_each_get_their_own_frames() {
    let lab = lab(Role::Backup);
    let children: Vec<_> = (0..20)
        .map(|i| {
            let rs = if i % 2 == 0 { OK_IP } else { NOVIP_IP };
            let mut cmd = vipcheck(
                &lab,
                &[
                    "tcp",
                    "-t",
                    "2000",
                    LB_IFACE,
                    &rs.to_string(),
                    &VIP.to_string(),
                    "80",
                ],
            );
            cmd.stdout(std::process::Stdio::piped());
            (rs, cmd.spawn().expect("spawn vipcheck"))
        })
        .collect();
    for (rs, child) in children {
        let out = child.wait_with_output().expect("wait");
        let expected = if rs == OK_IP { 0 } else { 1 };
        assert_eq!(
            out.status.code(),
            Some(expected),
            "{rs}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let (_, flows) = xdp_status(&lab);
    assert_eq!(flows, 0, "flow entries left behind");
}

#[test]
fn entries_of_a_killed_check_are_collected() {
    let lab = lab(Role::Backup);
    // Attach first, so that the status below sees the program.
    assert_eq!(tcp(&lab, OK_IP, &[]).code, 0);
    let mut cmd = vipcheck(
        &lab,
        &[
            "tcp",
            "-t",
            "10000",
            LB_IFACE,
            &NOVIP_IP.to_string(),
            &VIP.to_string(),
            "80",
        ],
    );
    cmd.stdout(std::process::Stdio::null());
    let mut victim = lab.spawn(&mut cmd).expect("spawn");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while xdp_status(&lab).1 != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the check never registered its flow"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.child().kill().expect("SIGKILL");
    victim.child().wait().expect("wait");
    assert_eq!(
        xdp_status(&lab).1,
        1,
        "the killed check's entry should still be there"
    );
    let next = tcp(&lab, OK_IP, &[]);
    assert_eq!(next.code, 0, "{next:?}");
    assert_eq!(
        xdp_status(&lab).1,
        0,
        "the next check did not collect the dead entry"
    );
}

#[test]
fn bad_input_and_environment() {
    let lab = lab(Role::Backup);
    let vip = VIP.to_string();
    let ok = OK_IP.to_string();

    let unknown = run(vipcheck(&lab, &["tcp", "eth9", &ok, &vip, "80"]));
    assert_eq!(unknown.code, 3, "{unknown:?}");
    assert_one_clean_line(&unknown.stderr);
    assert!(unknown.stderr.contains("eth9"), "{unknown:?}");

    for args in [
        ["tcp", LB_IFACE, "198.18.0.999", &vip, "80"],
        ["tcp", LB_IFACE, &ok, "not-an-ip", "80"],
        ["tcp", LB_IFACE, &ok, &vip, "0"],
        ["tcp", LB_IFACE, &ok, &vip, "65536"],
    ] {
        let out = run(vipcheck(&lab, &args));
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        assert_one_clean_line(&out.stderr);
    }

    let mut unprivileged = lab.command(lab.lb_ns(), "setpriv");
    unprivileged.args([
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        VIPCHECK,
        "tcp",
        LB_IFACE,
        &ok,
        &vip,
        "80",
    ]);
    let out = run(unprivileged);
    assert_eq!(out.code, 3, "{out:?}");
    assert_one_clean_line(&out.stderr);
    assert!(
        out.stderr
            .contains("it needs CAP_NET_RAW (run vipcheck as root"),
        "{out:?}"
    );
}

#[test]
fn never_replaces_a_foreign_xdp_program() {
    let lab = lab(Role::Backup);
    let foreign = ForeignXdp::attach(&lab);
    assert_eq!(xdp_ids(&lab, LB_IFACE), [foreign.id]);

    // --capture xdp: refused, and says what to do.
    let out = tcp(&lab, OK_IP, &["--capture", "xdp"]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_one_clean_line(&out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "another XDP program (id {}, skb mode) is attached to eth0; vipcheck does not \
             replace it (use --capture auto or tc",
            foreign.id
        )),
        "{out:?}"
    );
    let attach = run(vipcheck(
        &lab,
        &["xdp", "attach", "--capture", "xdp", LB_IFACE],
    ));
    assert_eq!(attach.code, 3, "{attach:?}");
    let status = run(vipcheck(&lab, &["xdp", "status", LB_IFACE]));
    assert_eq!(status.code, 0, "{status:?}");
    assert!(
        status.stdout.contains(&format!(
            "no vipcheck XDP program attached (nor at TC ingress); XDP program {} (skb mode) \
             is another's",
            foreign.id
        )),
        "{status:?}"
    );
    let detach = run(vipcheck(&lab, &["xdp", "detach", LB_IFACE]));
    assert_eq!(detach.code, 0, "{detach:?}");
    assert!(
        detach.stdout.contains("no vipcheck XDP program attached"),
        "{detach:?}"
    );
    // The default (auto) captures at TC ingress beside it.
    let out = tcp(&lab, OK_IP, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let status = run(vipcheck(&lab, &["xdp", "status", LB_IFACE]));
    assert!(
        status.stdout.contains("attached at TC ingress (tcx)")
            && status.stdout.contains(&format!(
                "beside XDP program {} (skb mode), another's",
                foreign.id
            )),
        "{status:?}"
    );
    let detach = run(vipcheck(&lab, &["xdp", "detach", LB_IFACE]));
    assert_eq!(detach.code, 0, "{detach:?}");
    assert!(
        detach.stdout.contains("vipcheck TC program detached"),
        "{detach:?}"
    );
    assert_eq!(
        xdp_ids(&lab, LB_IFACE),
        [foreign.id],
        "the foreign program was replaced or detached"
    );
}
