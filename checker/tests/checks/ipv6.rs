//! IPv6 through the VIP path in real labs: our neighbour solicitation, the
//! real server's advertisement and its TCP replies captured by the XDP
//! program, tcp, http and https against the lab's IPv6 VIP.

use std::time::Duration;

use crate::common::*;
use xtask::lab::{ABSENT_IP6, HTTPS_PORT, VIP6};

/// `vipcheck CHECK [extra...] eth0 RS VIP6 PORT [lab.example /]`.
fn check6(lab: &Lab, check: &str, rs: std::net::Ipv6Addr, port: u16, extra: &[&str]) -> Run {
    let rs = rs.to_string();
    let vip = VIP6.to_string();
    let port = port.to_string();
    let mut args = vec![check];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[LB_IFACE, &rs, &vip, &port]);
    if check != "tcp" {
        args.extend_from_slice(&["lab.example", "/"]);
    }
    run(vipcheck(lab, &args))
}

fn verdicts6(role: Role) {
    let lab = lab(role);
    for check in ["tcp", "http"] {
        let ok = check6(&lab, check, Host::Ok.ip6(), 80, &[]);
        assert_eq!(ok.code, 0, "{role:?} {check} ok: {ok:?}");
        assert_one_clean_line(&ok.stdout);
        assert!(ok.stdout.contains("[fd98:c612:0:1::100]:80"), "{ok:?}");
        let novip = check6(&lab, check, Host::NoVip.ip6(), 80, &["-t", "500"]);
        assert_eq!(novip.code, 1, "{role:?} {check} novip: {novip:?}");
        assert!(novip.stdout.contains("no answer within"), "{novip:?}");
        assert!(
            novip.stdout.contains("answers neighbour solicitations at"),
            "{novip:?}"
        );
        let closed = check6(&lab, check, Host::Closed.ip6(), 80, &[]);
        assert_eq!(closed.code, 1, "{role:?} {check} closed: {closed:?}");
        assert!(closed.stdout.contains("refused (RST)"), "{closed:?}");
        let absent = check6(&lab, check, ABSENT_IP6, 80, &["-t", "500"]);
        assert_eq!(absent.code, 1, "{role:?} {check} absent: {absent:?}");
        assert!(
            absent.stdout.contains(
                "no neighbour advertisement from fd98:c612:0:1::99 on eth0 within 470 ms"
            ),
            "{absent:?}"
        );
        assert!(
            absent.elapsed < Duration::from_millis(500 + 150),
            "past the deadline: {absent:?}"
        );
    }
    let https = check6(
        &lab,
        "https",
        Host::Ok.ip6(),
        HTTPS_PORT,
        &["--ca", lab.ca_pem().to_str().unwrap()],
    );
    assert_eq!(https.code, 0, "{role:?} https over IPv6: {https:?}");
    // The C checkers' names take IPv6 too.
    let links = std::path::Path::new(VIPCHECK)
        .with_file_name(format!("vck-compat6-{}-{role:?}", std::process::id()));
    std::fs::create_dir_all(&links).unwrap();
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let _remove = Remove(links.clone());
    let installed = std::process::Command::new(VIPCHECK)
        .args(["compat", "install"])
        .arg(&links)
        .output()
        .unwrap();
    assert!(installed.status.success(), "{installed:?}");
    for (rs, code) in [(Host::Ok.ip6(), 0), (Host::NoVip.ip6(), 1)] {
        let mut cmd = lab.command(lab.lb_ns(), links.join("check_tcp_raw"));
        cmd.args([
            "-t",
            "300",
            LB_IFACE,
            &rs.to_string(),
            &VIP6.to_string(),
            "80",
        ]);
        let out = run(cmd);
        assert_eq!(out.code, code, "check_tcp_raw {rs}: {out:?}");
    }
    // Mixed families: a usage error.
    let mixed = run(vipcheck(
        &lab,
        &["tcp", LB_IFACE, &OK_IP.to_string(), &VIP6.to_string(), "80"],
    ));
    assert_eq!(mixed.code, 2, "{mixed:?}");
    assert!(mixed.stderr.contains("different IP families"), "{mixed:?}");
}

#[test]
fn ipv6_verdicts_on_a_backup_lb() {
    verdicts6(Role::Backup);
}

#[test]
fn ipv6_verdicts_on_a_master_lb() {
    verdicts6(Role::Master);
}

#[test]
fn ipv6_no_rst_from_the_backup_and_kernel_traffic_passes() {
    let lab = lab(Role::Backup);
    let lb6 = Host::Lb.ip6();
    // The kernel's RST goes to the VIP6: without this entry the backup LB
    // could not deliver it (nobody answers solicitations for the VIP6) and
    // the test could not fail.
    sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &[
            "-6",
            "neigh",
            "replace",
            &VIP6.to_string(),
            "lladdr",
            &lab.mac(Host::Ok),
            "dev",
            LB_IFACE,
            "nud",
            "permanent",
        ],
    );
    nft(
        &lab,
        lab.ns(Host::Ok),
        &format!(
            "table ip6 vck {{\n chain in {{\n  type filter hook prerouting priority -300;\n  \
             ip6 saddr {lb6} tcp flags & rst == rst counter\n }}\n}}\n"
        ),
    );
    let rsts = || nft_packets(&lab, lab.ns(Host::Ok), ["ip6", "vck", "in"]);
    checks_beside_curl(&lab, &format!("http://[{}]/", Host::Ok.ip6()), || {
        check6(&lab, "tcp", Host::Ok.ip6(), 80, &["--close", "fin"]).code
    });
    assert_eq!(
        rsts(),
        0,
        "the LB's kernel answered the real server with RSTs"
    );
    // NDP keeps working: the LB's kernel still resolves ok's own address.
    let neigh = sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &["-6", "neigh", "show", "dev", LB_IFACE],
    );
    assert!(
        neigh.contains(&format!("{} lladdr {}", Host::Ok.ip6(), lab.mac(Host::Ok))),
        "{neigh}"
    );
    let (_, flows) = xdp_status(&lab);
    assert_eq!(flows, 0, "flow entries left behind");

    // Without the XDP program the kernel sees the SYN-ACKs and RSTs them.
    assert_eq!(run(vipcheck(&lab, &["xdp", "detach", LB_IFACE])).code, 0);
    for _ in 0..5 {
        let out = check6(
            &lab,
            "tcp",
            Host::Ok.ip6(),
            80,
            &["--close", "fin", "--xdp", "off"],
        );
        assert_eq!(out.code, 0, "{out:?}");
    }
    assert!(
        rsts() > 0,
        "no RST arrived without XDP: the test cannot tell"
    );
}

#[test]
fn a_tentative_ipv6_address_never_sources_a_check() {
    let lab = lab(Role::Backup);
    // Duplicate address detection that takes a minute: the address stays
    // tentative for the whole test.
    for setting in [
        format!("net.ipv6.conf.{LB_IFACE}.dad_transmits=1"),
        format!("net.ipv6.neigh.{LB_IFACE}.retrans_time_ms=60000"),
    ] {
        sh(&lab, lab.lb_ns(), "sysctl", &["-qw", &setting]);
    }
    let tentative = "fd98:c612:0:1::77";
    sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &[
            "address",
            "add",
            &format!("{tentative}/64"),
            "dev",
            LB_IFACE,
        ],
    );
    let shown = sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &["-6", "address", "show", "dev", LB_IFACE],
    );
    assert!(shown.contains("tentative"), "{shown}");
    let refused = check6(&lab, "tcp", Host::Ok.ip6(), 80, &["--source", tentative]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert_one_clean_line(&refused.stderr);
    assert!(refused.stderr.contains("not ready"), "{refused:?}");
    // Without --source the ready address is chosen.
    let ok = check6(&lab, "tcp", Host::Ok.ip6(), 80, &["-v"]);
    assert_eq!(ok.code, 0, "{ok:?}");
    assert!(
        ok.stderr
            .contains(&format!("{} NDP solicitation", Host::Lb.ip6())),
        "{ok:?}"
    );
}
