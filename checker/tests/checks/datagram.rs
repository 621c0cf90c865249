//! `vipcheck ping`, `udp`, `dns` and `smtp` in real labs: dnsmasq, socat
//! and exim from Debian's packages on the real servers, the real XDP
//! program on the LB, which sends no ICMP error and no RST meanwhile.
//! One lab per LB role runs every case (a lab costs a second of CI).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use xtask::lab::{DNS_ABSENT_NAME, DNS_NAME, DNS_PORT, UDP_ECHO_PORT, UDP_WRONG_SOURCE_PORT, VIP6};

use crate::common::*;

/// `vipcheck KIND [extra...] eth0 RS VIP [PORT]` in the LB namespace.
fn check(lab: &Lab, kind: &str, extra: &[&str], rs: IpAddr, port: Option<u16>) -> Run {
    let vip: IpAddr = if rs.is_ipv4() {
        VIP.into()
    } else {
        VIP6.into()
    };
    let (rs, vip) = (rs.to_string(), vip.to_string());
    let port = port.map(|p| p.to_string());
    let mut args = vec![kind];
    args.extend_from_slice(extra);
    args.extend([LB_IFACE, rs.as_str(), vip.as_str()]);
    args.extend(port.as_deref());
    run(vipcheck(lab, &args))
}

fn ip6(host: Host) -> IpAddr {
    IpAddr::V6(host.ip6())
}

fn ip4(host: Host) -> IpAddr {
    IpAddr::V4(host.ip())
}

/// Asserts a verdict: exit status, and text in its line.
#[track_caller]
fn expect(out: &Run, code: i32, text: &str) {
    assert_eq!(out.code, code, "{out:?}");
    assert!(out.stdout.contains(text), "wanted {text:?}: {out:?}");
    assert_one_clean_line(&out.stdout);
}

/// The JSON failure code of a run with `--format json`.
fn failure(out: &Run) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON verdict");
    v["failure"].as_str().map(str::to_string)
}

/// Counts, in `ok`'s namespace, what the LB's kernel would send had it
/// seen our replies: ICMP and ICMPv6 destination unreachable, TCP RSTs.
struct LbErrors<'a> {
    lab: &'a Lab,
}

impl<'a> LbErrors<'a> {
    fn install(lab: &'a Lab) -> Self {
        let lb6 = Host::Lb.ip6();
        nft(
            lab,
            lab.ns(Host::Ok),
            &format!(
                "table inet vckd {{\n chain in {{\n  type filter hook prerouting priority -300;\n  \
                 ip saddr {LB_IP} icmp type destination-unreachable counter\n  \
                 ip6 saddr {lb6} icmpv6 type destination-unreachable counter\n  \
                 ip saddr {LB_IP} tcp flags & rst == rst counter\n  \
                 ip6 saddr {lb6} tcp flags & rst == rst counter\n }}\n}}\n"
            ),
        );
        LbErrors { lab }
    }

    /// The packets of every counter of the chain.
    fn packets(&self) -> u64 {
        let listing = sh(
            self.lab,
            self.lab.ns(Host::Ok),
            "nft",
            &["list", "chain", "inet", "vckd", "in"],
        );
        let words: Vec<&str> = listing.split_whitespace().collect();
        words
            .iter()
            .enumerate()
            .filter(|(_, w)| **w == "packets")
            .map(|(i, _)| words[i + 1].parse::<u64>().expect("packet count"))
            .sum()
    }
}

fn verdicts(role: Role) {
    let lab = lab(role);
    let _services = lab.start_services().expect("services");
    // The kernel's ICMP errors go to the VIP, which a backup LB could not
    // deliver (nobody answers ARP for it): with this entry they would
    // reach `ok`, so the count below could fail.
    let ok_mac = lab.mac(Host::Ok);
    for vip in [VIP.to_string(), VIP6.to_string()] {
        sh(
            &lab,
            lab.lb_ns(),
            "ip",
            &[
                "neigh",
                "replace",
                &vip,
                "lladdr",
                &ok_mac,
                "dev",
                LB_IFACE,
                "nud",
                "permanent",
            ],
        );
    }
    let errors = LbErrors::install(&lab);

    for (ok, novip, closed) in [
        (ip4(Host::Ok), ip4(Host::NoVip), ip4(Host::Closed)),
        (ip6(Host::Ok), ip6(Host::NoVip), ip6(Host::Closed)),
    ] {
        // ping: does the real server carry the VIP?
        expect(
            &check(&lab, "ping", &[], ok, None),
            0,
            "echo reply from the VIP",
        );
        expect(&check(&lab, "ping", &[], closed, None), 0, "echo reply");
        let out = check(&lab, "ping", &["-t", "300"], novip, None);
        expect(&out, 1, "no answer within 270 ms");
        assert!(out.stdout.contains("does it carry the VIP"), "{out:?}");

        // udp: the echo service answers from the VIP.
        let echo = Some(UDP_ECHO_PORT);
        let out = check(
            &lab,
            "udp",
            &["--send", "hello\\x00vip", "--expect", "o\\x00v"],
            ok,
            echo,
        );
        expect(&out, 0, "reply of 9 bytes as expected");
        let out = check(
            &lab,
            "udp",
            &["--send", "ping", "--expect", "pong"],
            ok,
            echo,
        );
        expect(&out, 1, r#"without "pong": "ping""#);
        let out = check(
            &lab,
            "udp",
            &[
                "--payload",
                "0102",
                "--expect-hex",
                "0X02",
                "--format",
                "json",
            ],
            ok,
            echo,
        );
        assert_eq!((out.code, failure(&out)), (0, None), "{out:?}");
        // A service bound to 0.0.0.0 answers from the real server's own address.
        let out = check(
            &lab,
            "udp",
            &["--send", "x"],
            ok,
            Some(UDP_WRONG_SOURCE_PORT),
        );
        expect(
            &out,
            1,
            &format!("answered from {ok}, not from the VIP: clients drop this reply"),
        );
        let out = check(
            &lab,
            "udp",
            &["--send", "x", "--format", "json"],
            ok,
            Some(UDP_WRONG_SOURCE_PORT),
        );
        assert_eq!(failure(&out).as_deref(), Some("wrong_source"), "{out:?}");
        // The VIP on lo, nothing on the port: port unreachable from the VIP.
        let out = check(&lab, "udp", &["--format", "json"], closed, echo);
        assert_eq!(
            failure(&out).as_deref(),
            Some("port_unreachable"),
            "{out:?}"
        );
        expect(
            &check(&lab, "udp", &[], closed, echo),
            1,
            &format!(
                "port unreachable (from the VIP: the real server carries the VIP, nothing listens on {UDP_ECHO_PORT})"
            ),
        );
        // No VIP: silence, which proves nothing unless asked to.
        expect(
            &check(&lab, "udp", &["-t", "300"], novip, echo),
            1,
            "no answer within 270 ms",
        );
        expect(
            &check(&lab, "udp", &["-t", "300", "--no-reply-ok"], novip, echo),
            0,
            "no reply and no ICMP unreachable within 270 ms (-t 300 less 30 ms to end in time) (--no-reply-ok counts silence as up)",
        );

        // dns: keepalived's default query (SOA of the root), names, TCP.
        let dns = Some(DNS_PORT);
        expect(
            &check(&lab, "dns", &[], ok, dns),
            0,
            "NOERROR (authoritative), 1 answer: SOA",
        );
        let vip = if ok.is_ipv4() {
            VIP.to_string()
        } else {
            VIP6.to_string()
        };
        let rtype = if ok.is_ipv4() { "A" } else { "AAAA" };
        // Over TCP closed with a FIN: an RST from the LB would be the
        // kernel's, which the count below would catch.
        for tcp in [&[][..], &["--tcp", "--close", "fin"][..]] {
            let mut args = vec!["--name", DNS_NAME, "--type", rtype, "--expect", &vip];
            args.extend_from_slice(tcp);
            expect(
                &check(&lab, "dns", &args, ok, dns),
                0,
                &format!("1 answer: {vip}"),
            );
        }
        let out = check(
            &lab,
            "dns",
            &["--name", DNS_NAME, "--expect", "198.18.0.77"],
            ok,
            dns,
        );
        expect(&out, 1, "missing 198.18.0.77");
        let out = check(
            &lab,
            "dns",
            &["--name", DNS_ABSENT_NAME, "--type", "a", "--format", "json"],
            ok,
            dns,
        );
        assert_eq!(failure(&out).as_deref(), Some("dns"), "{out:?}");
        assert!(out.stdout.contains("rcode NXDOMAIN"), "{out:?}");
        expect(
            &check(&lab, "dns", &[], closed, dns),
            1,
            "port unreachable (from the VIP",
        );
        expect(
            &check(&lab, "dns", &["--tcp"], closed, dns),
            1,
            "connection refused (RST)",
        );
        expect(
            &check(&lab, "dns", &["-t", "300"], novip, dns),
            1,
            "no answer within 270 ms",
        );
    }

    // TCP too: a firewall's reject (an ICMP error quoting our SYN) ends
    // the handshake at once, and the verdict says what came.
    nft(
        &lab,
        lab.ns(Host::Closed),
        "table inet vckr {\n chain in {\n  type filter hook input priority 0;\n  \
         tcp dport 81 reject with icmpx type admin-prohibited\n }\n}\n",
    );
    for (rs, vip) in [
        (ip4(Host::Closed), IpAddr::from(VIP)),
        (ip6(Host::Closed), IpAddr::from(VIP6)),
    ] {
        let out = check(&lab, "tcp", &["--format", "json"], rs, Some(81));
        assert_eq!(failure(&out).as_deref(), Some("unreachable"), "{out:?}");
        assert!(
            out.stdout
                .contains(&format!("administratively prohibited from {vip}")),
            "{out:?}"
        );
        assert!(out.elapsed < Duration::from_millis(500), "{out:?}");
    }

    // Nothing of the above made the LB's kernel send an error: every
    // reply (and the errors about our datagrams) was ours, taken and
    // dropped before the kernel saw it.
    assert_eq!(
        errors.packets(),
        0,
        "the LB's kernel answered a real server with ICMP errors or RSTs: {}",
        sh(
            &lab,
            lab.ns(Host::Ok),
            "nft",
            &["list", "chain", "inet", "vckd", "in"]
        )
    );
    // The count can fail: a datagram to a closed port of the LB itself
    // makes its kernel send a port unreachable, which `ok` counts.
    let _ = lab.udp_exchange(
        Host::Ok,
        SocketAddr::new(LB_IP.into(), 9),
        b"x",
        Duration::from_millis(200),
    );
    assert!(errors.packets() >= 1, "the counter saw no ICMP error");
}

#[test]
fn backup_lb_verdicts() {
    verdicts(Role::Backup);
}

#[test]
fn master_lb_verdicts() {
    verdicts(Role::Master);
}
