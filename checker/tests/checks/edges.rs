//! The edges: nothing leaves the LB with an address that is not its own,
//! impossible setups are refused at once and leave nothing behind, a cold
//! first check is not charged for the attach, `xdp` subcommands tell the
//! truth, and every error is one line that says everything. Real labs.

use std::io::Write;
use std::time::Duration;

use crate::common::*;
use xtask::lab::{CHUNKED_BODY, FIXTURE_PORT, TEXT_BODY};

/// Counts, on the lab's bridge, the ARP and IPv4 frames whose source MAC is
/// the LB's: all of that the LB puts on the wire, whoever built it. (Not
/// IPv6: the LB's kernel solicits routers and joins groups by itself for
/// seconds after its link comes up.)
struct WireCounter<'a> {
    lab: &'a Lab,
}

impl<'a> WireCounter<'a> {
    fn install(lab: &'a Lab) -> Self {
        nft(
            lab,
            lab.switch_ns(),
            &format!(
                "table bridge vck {{\n chain pre {{\n  type filter hook prerouting priority -300;\n  \
                 ether saddr {} ether type {{ arp, ip }} counter\n }}\n}}\n",
                lab.mac(Host::Lb)
            ),
        );
        WireCounter { lab }
    }

    fn frames(&self) -> u64 {
        nft_packets(self.lab, self.lab.switch_ns(), ["bridge", "vck", "pre"])
    }
}

/// The neighbour table of a real server.
fn neighbours(lab: &Lab, host: Host) -> String {
    sh(lab, lab.ns(host), "ip", &["-4", "neigh", "show"])
}

/// Whether an XDP program is attached to `iface` in the LB namespace.
fn has_xdp(lab: &Lab, iface: &str) -> bool {
    sh(
        lab,
        lab.lb_ns(),
        "ip",
        &["-d", "link", "show", "dev", iface],
    )
    .contains("prog/xdp")
}

const REAL_SERVERS: [Host; 3] = [Host::Ok, Host::NoVip, Host::Closed];

#[test]
fn a_source_that_is_not_ours_never_reaches_the_wire() {
    let lab = lab(Role::Backup);
    for host in REAL_SERVERS {
        sh(&lab, lab.ns(host), "ip", &["neigh", "flush", "all"]);
    }
    let wire = WireCounter::install(&lab);
    let vip = VIP.to_string();
    let novip = NOVIP_IP.to_string();
    for (source, needle) in [
        (vip.as_str(), "--source 198.18.0.100 is the VIP"),
        (
            "198.18.0.55",
            "--source 198.18.0.55 is not an address of eth0",
        ),
        ("127.0.0.1", "--source 127.0.0.1 is not an address"),
    ] {
        let out = run(vipcheck(
            &lab,
            &[
                "tcp", "--source", source, "-v", "-t", "300", LB_IFACE, &novip, &vip, "80",
            ],
        ));
        assert_eq!(out.code, 2, "--source {source}: {out:?}");
        assert_one_clean_line(&out.stderr);
        assert!(out.stderr.contains(needle), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
        assert_eq!(wire.frames(), 0, "--source {source}: a frame left the LB");
        for host in REAL_SERVERS {
            let table = neighbours(&lab, host);
            assert!(!table.contains(source), "{host}: {source} in {table}");
        }
    }
    assert!(!has_xdp(&lab, LB_IFACE), "a refused check attached XDP");

    // The same check with the LB's own source goes out, and the real
    // server learns that address from the ARP request: the counter and the
    // tables above could have seen a wrong frame.
    let ok = run(vipcheck(&lab, &["tcp", LB_IFACE, &novip, &vip, "80"]));
    assert_eq!(ok.code, 1, "{ok:?}");
    assert!(wire.frames() > 0, "the counter saw nothing of a real check");
    assert!(
        neighbours(&lab, Host::NoVip).contains(&LB_IP.to_string()),
        "the control check's ARP request taught novip nothing: the test cannot tell"
    );
}

#[test]
fn impossible_setups_fail_at_once_and_leave_nothing() {
    let lab = lab(Role::Backup);
    let wire = WireCounter::install(&lab);
    // A second interface of the LB, down at first, then up on another
    // subnet; a route to a subnet through a gateway.
    sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &[
            "link", "add", "vck-t0", "type", "veth", "peer", "name", "vck-t1",
        ],
    );
    sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &[
            "route",
            "add",
            "198.19.7.0/24",
            "via",
            &CLOSED_IP.to_string(),
        ],
    );
    let vip = VIP.to_string();
    let ok = OK_IP.to_string();
    let check = |iface: &str, rs: &str, vip: &str, code: i32, needle: &str| {
        let out = run(vipcheck(&lab, &["tcp", "-t", "5000", iface, rs, vip, "80"]));
        assert_eq!(out.code, code, "{iface} {rs} {vip}: {out:?}");
        assert_one_clean_line(&out.stderr);
        assert!(out.stderr.contains(needle), "{iface} {rs} {vip}: {out:?}");
        assert!(
            out.elapsed < Duration::from_millis(100),
            "{iface} {rs} {vip}: took {:?}",
            out.elapsed
        );
        assert_eq!(wire.frames(), 0, "{iface} {rs} {vip}: a frame left the LB");
        for dev in ["lo", LB_IFACE, "vck-t0"] {
            assert!(!has_xdp(&lab, dev), "{iface} {rs} {vip}: XDP left on {dev}");
        }
    };
    check("lo", &ok, &vip, 3, "lo is not an Ethernet interface");
    check("vck-t0", &ok, &vip, 3, "vck-t0 is down");
    for (rs, needle) in [
        ("0.0.0.0", "REAL_SERVER 0.0.0.0 is unspecified"),
        ("255.255.255.255", "is the broadcast address"),
        (
            "198.18.0.255",
            "REAL_SERVER 198.18.0.255 is a broadcast address",
        ),
        ("224.0.0.1", "is a multicast address"),
        ("127.0.0.1", "is a loopback address"),
        ("198.18.0.1", "is an address of this host"),
        ("198.19.5.5", "is not on the link of eth0"),
        ("198.19.7.7", "through the gateway 198.18.0.13"),
    ] {
        check(LB_IFACE, rs, &vip, 2, needle);
    }
    for (bad_vip, needle) in [
        ("0.0.0.0", "VIP 0.0.0.0 is unspecified"),
        (
            "255.255.255.255",
            "VIP 255.255.255.255 is the broadcast address",
        ),
        ("239.1.2.3", "VIP 239.1.2.3 is a multicast address"),
        ("127.0.0.1", "VIP 127.0.0.1 is a loopback address"),
    ] {
        check(LB_IFACE, &ok, bad_vip, 2, needle);
    }
    sh(
        &lab,
        lab.lb_ns(),
        "ip",
        &["address", "add", "198.18.1.1/24", "dev", "vck-t0"],
    );
    sh(&lab, lab.lb_ns(), "ip", &["link", "set", "vck-t0", "up"]);
    sh(&lab, lab.lb_ns(), "ip", &["link", "set", "vck-t1", "up"]);
    check(
        LB_IFACE,
        "198.18.1.5",
        &vip,
        2,
        "is reached through vck-t0, not eth0",
    );
}

#[test]
fn a_cold_first_check_is_not_charged_for_the_attach() {
    let lab = lab(Role::Backup);
    let mut attach_ms = Vec::new();
    let mut overrun_ms = Vec::new();
    for _ in 0..5 {
        assert!(!has_xdp(&lab, LB_IFACE));
        let out = tcp(&lab, OK_IP, &["-t", "30"]);
        assert_eq!(out.code, 0, "{out:?}");
        assert_one_clean_line(&out.stdout);
        let attach: f64 = out
            .stdout
            .split(", after ")
            .nth(1)
            .and_then(|rest| rest.strip_suffix(" ms to attach the capture program)\n"))
            .and_then(|ms| ms.parse().ok())
            .unwrap_or_else(|| panic!("no attach time in {:?}", out.stdout));
        attach_ms.push(attach);
        overrun_ms.push(out.elapsed.as_secs_f64() * 1000.0 - 30.0);
        // Warm: no attach, nothing said about it.
        let warm = tcp(&lab, OK_IP, &["-t", "30"]);
        assert_eq!(warm.code, 0, "{warm:?}");
        assert!(!warm.stdout.contains("attach"), "{warm:?}");
        assert_eq!(run(vipcheck(&lab, &["xdp", "detach", LB_IFACE])).code, 0);
    }
    // For the README's figure (printed past the harness's capture).
    let _ = writeln!(
        std::io::stderr(),
        "cold first check with -t 30: attach {attach_ms:.1?} ms, whole process past -t {overrun_ms:.1?} ms"
    );
}

#[test]
fn xdp_subcommands_tell_the_truth() {
    let lab = lab(Role::Backup);
    let nobody = |args: &[&str]| {
        let mut cmd = lab.command(lab.lb_ns(), "setpriv");
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            VIPCHECK,
        ]);
        cmd.args(args);
        run(cmd)
    };
    // Nothing attached at XDP, which the kernel tells anyone; what is at
    // TC ingress only a privileged process may ask: never "nothing
    // attached" while something may be.
    let none = nobody(&["xdp", "status", LB_IFACE]);
    assert_eq!(none.code, 3, "{none:?}");
    assert!(
        none.stderr
            .contains("listing the TC ingress programs failed: Operation not permitted"),
        "{none:?}"
    );

    // Where every check refuses (loopback: not Ethernet), attach refuses
    // too, and attaches nothing.
    let lo = run(vipcheck(&lab, &["xdp", "attach", "lo"]));
    assert_eq!(lo.code, 3, "{lo:?}");
    assert!(
        lo.stderr.contains("lo is not an Ethernet interface"),
        "{lo:?}"
    );
    let lo_status = run(vipcheck(&lab, &["xdp", "status", "lo"]));
    assert!(!lo_status.stdout.contains("flows:"), "{lo_status:?}");

    let attach = run(vipcheck(&lab, &["xdp", "attach", LB_IFACE]));
    assert_eq!(attach.code, 0, "{attach:?}");
    for args in [
        &["xdp", "status", LB_IFACE][..],
        &["xdp", "status"],
        &["xdp", "detach", LB_IFACE],
    ] {
        let out = nobody(args);
        assert_eq!(out.code, 3, "{args:?} as nobody: {out:?}");
        assert_one_clean_line(&out.stderr);
        assert!(
            out.stderr
                .contains("it needs CAP_SYS_ADMIN (run vipcheck as root"),
            "{args:?}: {out:?}"
        );
        assert!(!out.stdout.contains("no vipcheck"), "{args:?}: {out:?}");
    }
    assert!(has_xdp(&lab, LB_IFACE), "nobody detached the program");

    let native = run(vipcheck(
        &lab,
        &["xdp", "attach", "--xdp-mode", "native", LB_IFACE],
    ));
    assert_eq!(native.code, 3, "{native:?}");
    assert_one_clean_line(&native.stderr);
    for needle in [
        "already attached to eth0 at XDP (skb mode), not XDP (native mode)",
        "vipcheck xdp detach eth0",
        "vipcheck xdp attach --xdp-mode native eth0",
    ] {
        assert!(native.stderr.contains(needle), "{native:?}");
    }
    let same = run(vipcheck(&lab, &["xdp", "attach", LB_IFACE]));
    assert_eq!(same.code, 0, "{same:?}");
    assert!(same.stdout.contains("attached in skb mode"), "{same:?}");
}

#[test]
fn every_error_is_one_line_that_says_everything() {
    let lab = lab(Role::Backup);
    let _fixtures = lab.fixtures(Host::Ok).expect("fixture server");
    let vip = VIP.to_string();
    let ok = OK_IP.to_string();
    let tcp_args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec!["tcp".into()];
        args.extend(extra.iter().map(std::string::ToString::to_string));
        args.extend([LB_IFACE.into(), ok.clone(), vip.clone(), "80".into()]);
        args
    };
    let http = |path: &str, extra: &[&str]| http_args(OK_IP, FIXTURE_PORT, path, extra);
    let chunked_len = format!("{} body bytes", CHUNKED_BODY.len());
    let ssh_banner = "the server answered 'SSH-2.0-OpenSSH_9.2\\r\\n', which is not HTTP";
    // (command line, exit status, stream, substrings the one line holds)
    let table: Vec<(Vec<String>, i32, &str, Vec<&str>)> = vec![
        (
            vec!["tcp".into(), LB_IFACE.into(), ok.clone(), vip.clone()],
            2,
            "stderr",
            vec!["missing required argument <PORT>", "'vipcheck tcp --help'"],
        ),
        (
            tcp_args(&["--xdp", "maybe"]),
            2,
            "stderr",
            vec!["'maybe'", "--xdp", "accepted: require, off"],
        ),
        (
            tcp_args(&["--close", "FIN2"]),
            2,
            "stderr",
            vec!["'FIN2'", "accepted: rst, fin"],
        ),
        (
            tcp_args(&["-t", "3600001"]),
            2,
            "stderr",
            vec!["'3600001'", "1..=3600000"],
        ),
        (
            http("/", &["-M", "POST"]),
            2,
            "stderr",
            vec!["'POST'", "accepted: get, head", "'vipcheck http --help'"],
        ),
        (
            http("/", &["--regex", "("]),
            2,
            "stderr",
            vec!["'('", "--regex", "unclosed group"],
        ),
        (
            http("/", &["-H", "X-Inject: a\r\nEvil: 1"]),
            2,
            "stderr",
            vec!["X-Inject: a\\r\\nEvil: 1", "line breaks"],
        ),
        (
            http("/", &["--max-body", "4X"]),
            2,
            "stderr",
            vec!["'4X'", "not a size"],
        ),
        (
            http("/", &["-S", "99"]),
            2,
            "stderr",
            vec!["'99'", "not a status code"],
        ),
        (
            vec!["xdp".into(), "attach".into()],
            2,
            "stderr",
            vec!["<IFACE>", "'vipcheck xdp attach --help'"],
        ),
        (
            vec![
                "tcp".into(),
                "eth9".into(),
                ok.clone(),
                vip.clone(),
                "80".into(),
            ],
            3,
            "stderr",
            vec!["eth9"],
        ),
        (http("/ssh", &[]), 1, "stdout", vec![ssh_banner]),
        (
            http("/text", &["-H", "Host: other.example"]),
            0,
            "stdout",
            vec!["http GET other.example/text via 198.18.0.11"],
        ),
        (
            http("/text", &["--max-body", "10"]),
            1,
            "stdout",
            vec![
                "larger than --max-body 10 bytes",
                "(200 OK, ",
                "first byte after",
            ],
        ),
        (
            http("/header", &["-B", "expected body"]),
            1,
            "stdout",
            vec![
                "body differs from --body",
                "expected 13 bytes 'expected body'",
                "got 2 bytes 'ok'",
            ],
        ),
        (
            http("/header", &["-R", "X-Fixture"]),
            0,
            "stdout",
            vec!["200 OK"],
        ),
        (
            http("/header", &["-R", "X-Absent"]),
            1,
            "stdout",
            vec!["header X-Absent missing, expected present"],
        ),
        (
            http("/chunked", &["-R", "X-Checksum: none"]),
            0,
            "stdout",
            vec![chunked_len.as_str()],
        ),
        (
            http("/text", &["--regex", "version", "--regex", "no such words"]),
            1,
            "stdout",
            vec!["body does not match --regex \"no such words\""],
        ),
        (
            http(
                "/text",
                &["--regex-absent", "error", "--regex-absent", "version"],
            ),
            1,
            "stdout",
            vec!["body matches --regex-absent \"version\""],
        ),
    ];
    assert!(TEXT_BODY.contains("version") && !TEXT_BODY.contains("no such words"));
    for (args, code, stream, needles) in &table {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run(vipcheck(&lab, &words));
        assert_eq!(out.code, *code, "{args:?}: {out:?}");
        let text = if *stream == "stdout" {
            &out.stdout
        } else {
            &out.stderr
        };
        assert_one_clean_line(text);
        for needle in needles {
            assert!(text.contains(needle), "{args:?}: {text:?} lacks {needle:?}");
        }
    }

    // The SSH banner is diagnosed as soon as it comes, not at the
    // deadline, and -vv shows what came although no head parsed.
    let banner = run(vipcheck(
        &lab,
        &http("/ssh", &["-vv", "-t", "3000"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    ));
    assert_eq!(banner.code, 1, "{banner:?}");
    assert!(banner.elapsed < Duration::from_millis(1000), "{banner:?}");
    assert!(
        banner
            .stderr
            .contains("< (no HTTP head) 'SSH-2.0-OpenSSH_9.2\\r\\n'"),
        "{banner:?}"
    );
}
