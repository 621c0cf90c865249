//! keepalived.conf files as keepalived 2.2.7 reads them: each test reads
//! files of [`CASES`], and [`keepalived_agrees`] has keepalived itself
//! (`keepalived -t -f FILE`) read every one of them.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::*;

/// In a case's text: this host's config id (its short host name), what
/// `@NAME` lines are matched against without `keepalived -i`.
const HOST: &str = "@@HOST@@";

/// In a case's text: 1100 `A`s (a line longer than keepalived's 1023
/// bytes).
const LONG: &str = "@@LONG@@";

/// One keepalived.conf (the first file) and the files it includes: name
/// and bytes. A name ending `.sh` is made executable.
type Case = (&'static str, &'static [(&'static str, &'static [u8])]);

/// Every keepalived.conf the tests below read. A case's name says whether
/// vipcheck reads it: `*_refused` ones are refused (keepalived refuses
/// them too: exit 4 or 6), the others are read (keepalived exit 0, or 5
/// when it reports something and runs anyway).
const CASES: &[Case] = &[
    (
        "params",
        &[(
            "keepalived.conf",
            b"$VIP=10.0.0.100
$PORT=80
$RS_OPTS=weight 1
$CHECK=TCP_CHECK { \\
    connect_timeout 3 \\
}
virtual_server $VIP ${PORT} {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 $PORT {
        $RS_OPTS
        $CHECK
    }
    real_server 10.0.0.43 80 {
        HTTP_GET {
            url {
                path /$UNKNOWN
            }
        }
    }
}
",
        )],
    ),
    (
        "conditional",
        &[(
            "keepalived.conf",
            b"@@@HOST@@ $PROTO=TCP
@^@@HOST@@ $PROTO=UDP
@nosuchhost-vipcheck virtual_server 10.0.0.1 80 {
virtual_server 10.0.0.100 80 {
    protocol $PROTO
    lb_kind DR
    lb_algo rr
    @^@@HOST@@ real_server 10.0.0.41 80 {
    real_server 10.0.0.42 80 {
        TCP_CHECK {
        }
    }
}
",
        )],
    ),
    (
        "seq",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.100 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
~SEQ(n, 41, 43) real_server 10.0.0.$n 80 { TCP_CHECK { } }
~SEQ(n, 60, 2, 64) real_server 10.0.0.$n 80 { TCP_CHECK { } }
~LST({ip, port}, {10.0.0.70, 80}, {10.0.0.71, 80}) real_server $ip $port { TCP_CHECK { } }
}
virtual_server fd00::100 443 {
    protocol TCP
    lb_kind DR
    lb_algo rr
~SEQx(h, 9, 11) real_server fd00::$h 443 { TCP_CHECK { } }
}
",
        )],
    ),
    (
        "includes",
        &[
            (
                "keepalived.conf",
                b"include nothere.conf
includer nothere.conf
includem conf.d/*.none
include {rs/a,rs/zz}.inc
include conf.d
include x.sh
includea vs.conf
",
            ),
            ("conf.d/empty.txt", b""),
            (
                "vs.conf",
                b"virtual_server 10.0.0.100 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    includer rs/b.inc
}
",
            ),
            ("rs/a.inc", b"! read at the top level: nothing\n"),
            (
                "rs/b.inc",
                b"real_server 10.0.0.42 80 {\n    TCP_CHECK {\n    }\n}\n",
            ),
            ("x.sh", b"#!/bin/sh\n"),
        ],
    ),
    (
        "includem_refused",
        &[("keepalived.conf", b"includem nothere.conf\n")],
    ),
    (
        "includew_refused",
        &[
            ("keepalived.conf", b"includew conf.d/*.none\n"),
            ("conf.d/empty.txt", b""),
        ],
    ),
    (
        "includeb_refused",
        &[
            ("keepalived.conf", b"includeb {a,zz}.inc\n"),
            ("a.inc", b"! a\n"),
        ],
    ),
    (
        "includer_dir_refused",
        &[
            ("keepalived.conf", b"includer conf.d\n"),
            ("conf.d/empty.txt", b""),
        ],
    ),
    (
        "includer_exec_refused",
        &[
            ("keepalived.conf", b"includer x.sh\n"),
            ("x.sh", b"#!/bin/sh\n"),
        ],
    ),
    (
        "include_check_refused",
        &[(
            "keepalived.conf",
            b"global_defs {\n    include_check\n}\ninclude nothere.conf\n",
        )],
    ),
    (
        "latin1",
        &[(
            "keepalived.conf",
            b"! Verantwortlich: J\xfcrgen M\xfcller
global_defs {
    router_id LVS_\xfc
}
virtual_server 10.0.0.100 80 { # f\xfcr www
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 80 {
        HTTP_GET {
            url {
                path /gr\xfc\xdfe
            }
        }
    }
}
",
        )],
    ),
    (
        "bom",
        &[(
            "keepalived.conf",
            b"\xef\xbb\xbfglobal_defs {
    router_id LVS_A
}
virtual_server 10.0.0.100 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 80 {
        TCP_CHECK {
        }
    }
}
",
        )],
    ),
    (
        "group",
        &[(
            "keepalived.conf",
            b"virtual_server_group WEB {
    10.0.0.100 80
    10.0.0.110-112 80
    10.0.0.120/31 443
    10.1.0.0/16 8080
    fwmark 5 inet
}
virtual_server_group WEB6 {
    fd00::100-102 80
}
virtual_server group WEB {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 {
        TCP_CHECK {
        }
    }
}
virtual_server group WEB6 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server fd00::42 80 {
        TCP_CHECK {
        }
    }
}
",
        )],
    ),
    (
        "misc_native",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.100 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 80 {
        MISC_CHECK {
            misc_path \"/usr/local/sbin/vipcheck tcp -t 800 eth0 10.0.0.42 10.0.0.100 80\"
            misc_timeout 2
        }
        MISC_CHECK {
            misc_path \"/usr/bin/vipcheck http -S 200 -R 'Server: nginx' eth1 10.0.0.42 10.0.0.100 80 www.example.com /hc\"
        }
        MISC_CHECK {
            misc_path \"vipcheck https -M head eth1 10.0.0.42 10.0.0.100 443 www.example.com /\"
        }
        MISC_CHECK {
            misc_path \"/usr/bin/vipcheck tcp eth0 rs1.example.com 10.0.0.100 80\"
        }
        MISC_CHECK {
            misc_path \"/usr/bin/vipcheck https --insecure eth1 10.0.0.42 10.0.0.100 443 h /\"
        }
        MISC_CHECK {
            misc_path \"/usr/bin/vipcheck tcp eth0 10.0.0.42 10.0.0.100\"
        }
        MISC_CHECK {
            misc_path \"/usr/bin/vipcheck -t 500 eth0 10.0.0.42 10.0.0.100 80\"
        }
    }
}
",
        )],
    ),
    (
        "checkers",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.100 53 {
    protocol UDP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 53 {
        DNS_CHECK {
            type aaaa
            name www.example.com
        }
        UDP_CHECK {
            payload Ab12f 3 456
            require_reply 4f Xb
            min_reply_length 2
            max_reply_length 512
        }
        PING_CHECK {
        }
        TCP_CHECK {
        }
    }
}
virtual_server 10.0.0.100 25 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 25 {
        SMTP_CHECK {
            helo_name \"mail.example.com\"
            connect_timeout 3
        }
    }
}
",
        )],
    ),
    (
        "smtp_hosts",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.100 25 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 25 {
        SMTP_CHECK {
            helo_name
            host {
                connect_ip 10.0.0.42
                connect_port 587
            }
            host {
                connect_ip 10.0.0.9
            }
        }
    }
}
",
        )],
    ),
    (
        "checker_values",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.100 53 {
    protocol UDP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 53 {
        DNS_CHECK {
            type PTR
        }
    }
    real_server 10.0.0.43 53 {
        DNS_CHECK {
            type BOGUS
        }
    }
    real_server 10.0.0.44 53 {
        UDP_CHECK {
            payload 0g
        }
    }
    real_server 10.0.0.45 53 {
        UDP_CHECK {
            require_reply zz
        }
    }
    real_server 10.0.0.46 53 {
        UDP_CHECK {
            min_reply_length 10
            max_reply_length 5
        }
    }
    real_server 10.0.0.47 53 {
        DNS_CHECK {
            name a..b
        }
    }
}
",
        )],
    ),
    (
        "no_protocol",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.100 80 {
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 80 {
        TCP_CHECK {
        }
    }
}
",
        )],
    ),
    (
        "unknown_keywords",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.100 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 80 {
        TCP_CHECK {
            conect_timeout 3
        }
    }
    real_sever 10.0.0.43 80 {
        TCP_CHECK {
        }
    }
}
virtual_server 10.0.0.101 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.44 80 {
        TCP_CHECK {
        }
    }
}
",
        )],
    ),
    (
        "dr_port",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.100 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 8080 {
        TCP_CHECK {
        }
    }
}
",
        )],
    ),
    (
        "methods",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.103 80 {
    protocol TCP
    lb_kind dr
    lb_algo rr
    real_server 10.0.0.42 80 {
        TCP_CHECK {
        }
    }
}
virtual_server 10.0.0.104 80 {
    protocol tcp
    lb_kind NAT
    lb_algo rr
    real_server 10.0.0.42 80 {
        lvs_method DR
        TCP_CHECK {
        }
    }
}
",
        )],
    ),
    (
        "long_line",
        &[(
            "keepalived.conf",
            b"global_defs {
    router_id @@LONG@@
}
",
        )],
    ),
    (
        "bad_values",
        &[(
            "keepalived.conf",
            b"virtual_server 10.0.0.300 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.42 80 {
        TCP_CHECK {
        }
    }
}
virtual_server 10.0.0.100 80 {
    protocol TCP
    lb_kind DR
    lb_algo rr
    real_server 10.0.0.x 80 {
        TCP_CHECK {
        }
    }
    real_server 10.0.0.43 80 {
        HTTP_GET {
            url {
                path /
                digest abc
            }
        }
    }
    real_server 10.0.0.44 80 {
        TCP_CHECK {
        }
    }
}
",
        )],
    ),
    (
        "vrrp_and_values",
        &[(
            "keepalived.conf",
            b"global_defs {
    router_id LVS_A
    notification_email {
        root@localhost
    }
}
static_ipaddress {
    10.0.0.100/32 dev lo
}
vrrp_script chk {
    script \"/bin/true\"
    interval 2
}
vrrp_track_process web {
    process nginx
}
",
        )],
    ),
];

/// Writes case `name` into a fresh directory; the path of its main file.
fn case(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let (_, files) = CASES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no case {name}"));
    let dir = std::env::temp_dir().join(format!(
        "vipcheck-cases-{}-{}-{name}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let host = reader::host_config_id().unwrap_or_default();
    for (file, bytes) in *files {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let text = replace_bytes(bytes, HOST.as_bytes(), host.as_bytes());
        let text = replace_bytes(&text, LONG.as_bytes(), "A".repeat(1100).as_bytes());
        std::fs::write(&path, text).unwrap();
        if file.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    dir.join(files[0].0)
}

fn replace_bytes(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn load_case(name: &str) -> Result<Loaded, ConfigError> {
    let path = case(name);
    let loaded = load(&path);
    let _ = std::fs::remove_dir_all(path.parent().unwrap());
    loaded
}

/// `LINE: MESSAGE` of each warning.
pub(super) fn lines(loaded: &Loaded) -> Vec<String> {
    loaded
        .warnings
        .iter()
        .map(|w| {
            let line = w.origin.rsplit(':').next().unwrap();
            format!("{line}: {}", w.message)
        })
        .collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn parameters_are_substituted() {
    let loaded = load_case("params").unwrap();
    assert_eq!(loaded.warnings, vec![], "{loaded:#?}");
    let t = &loaded.targets;
    assert_eq!(t.len(), 2, "{loaded:#?}");
    assert_eq!((t[0].probe.vip, t[0].probe.port), (ip("10.0.0.100"), 80));
    assert_eq!(t[0].probe.real_server, ip("10.0.0.42"));
    assert_eq!(t[0].probe.check, CheckSpec::Tcp);
    // From the multi-line $CHECK.
    assert_eq!(t[0].probe.timeout, Duration::from_secs(3));
    assert!(t[0].origin.ends_with(":13"), "{}", t[0].origin);
    // An unknown parameter stays as it is, as in keepalived.
    let CheckSpec::Http(h) = &t[1].probe.check else {
        panic!("{:?}", t[1].probe.check)
    };
    assert_eq!(h.path, "/$UNKNOWN");
}

#[test]
fn parameter_expansion_is_bounded() {
    // keepalived itself loops for ever on these.
    let e = load_str(
        "$A=$A\nvirtual_server $A 80 {\n}\n",
        Path::new("/etc/keepalived/keepalived.conf"),
    )
    .unwrap_err();
    assert!(e.origin.ends_with(":2"), "{e}");
    assert!(e.message.contains("uses the parameter itself"), "{e}");
    let e = load_str(
        "$A=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx $A\nvirtual_server $A 80 {\n}\n",
        Path::new("/etc/keepalived/keepalived.conf"),
    )
    .unwrap_err();
    assert!(e.message.contains("longer than"), "{e}");
    let e = load_str(
        "$M=a \\\n$M\n$M\n",
        Path::new("/etc/keepalived/keepalived.conf"),
    )
    .unwrap_err();
    assert!(e.message.contains("lines after"), "{e}");
    let e = load_str(
        "~SEQ(n, 1, 1000000) x$n\n",
        Path::new("/etc/keepalived/keepalived.conf"),
    )
    .unwrap_err();
    assert!(e.message.contains("more than 100000"), "{e}");
    // Nested sequences multiply: the line bound ends them.
    let e = load_str(
        "~SEQ(a, 1, 1000) ~SEQ(b, 1, 1000) x\n",
        Path::new("/etc/keepalived/keepalived.conf"),
    )
    .unwrap_err();
    assert!(e.message.contains("lines after"), "{e}");
}

#[test]
fn conditional_lines_match_the_host_name() {
    let loaded = load_case("conditional").unwrap();
    assert_eq!(loaded.warnings, vec![], "{loaded:#?}");
    let t = &loaded.targets;
    assert_eq!(t.len(), 1, "{loaded:#?}");
    assert_eq!(t[0].probe.real_server, ip("10.0.0.42"));
    assert_eq!(loaded.skipped, vec![]);
}

#[test]
fn sequences_expand() {
    let loaded = load_case("seq").unwrap();
    let rs: Vec<String> = loaded
        .targets
        .iter()
        .map(|t| t.probe.real_server.to_string())
        .collect();
    assert_eq!(
        rs,
        [
            "10.0.0.41",
            "10.0.0.42",
            "10.0.0.43",
            "10.0.0.60",
            "10.0.0.62",
            "10.0.0.64",
            "10.0.0.70",
            "10.0.0.71",
            "fd00::9",
            "fd00::a",
            "fd00::b"
        ],
        "{loaded:#?}"
    );
    assert_eq!(loaded.warnings, vec![]);
    assert!(loaded.targets[0].origin.ends_with(":5"));
}

#[test]
fn include_variants() {
    let loaded = load_case("includes").unwrap();
    assert_eq!(loaded.targets.len(), 1, "{loaded:#?}");
    assert_eq!(loaded.targets[0].probe.real_server, ip("10.0.0.42"));
    assert!(loaded.targets[0].origin.ends_with("rs/b.inc:2"));
    let got: Vec<(String, &str)> = loaded
        .skipped
        .iter()
        .map(|s| {
            let line = s.origin.rsplit(':').next().unwrap().to_string();
            (line, s.reason.as_str())
        })
        .collect();
    let reasons: Vec<&str> = got.iter().map(|g| g.1).collect();
    let at: Vec<&str> = got.iter().map(|g| g.0.as_str()).collect();
    assert_eq!(at, ["1", "2", "3", "4", "5", "6"], "{got:#?}");
    assert_eq!(reasons[..3], ["matches no file"; 3]);
    assert!(reasons[3].starts_with("some of its files"));
    assert!(reasons[4].contains("is a directory"));
    assert!(reasons[5].contains("not a regular non-executable file"));
    assert_eq!(loaded.warnings, vec![]);

    for (name, want) in [
        ("includem_refused", "Config files missing"),
        ("includew_refused", "No config files matched"),
        ("includeb_refused", "Some config files missing"),
        ("includer_dir_refused", "is a directory"),
        ("includer_exec_refused", "not a regular non-executable file"),
        ("include_check_refused", "Config files missing"),
    ] {
        let e = load_case(name).unwrap_err();
        assert!(e.message.contains(want), "{name}: {e}");
        assert!(e.message.contains("keepalived refuses"), "{name}: {e}");
        assert!(e.origin.ends_with(":1") || e.origin.ends_with(":4"), "{e}");
    }
}

#[test]
fn bytes_that_are_not_utf8() {
    let loaded = load_case("latin1").unwrap();
    assert_eq!(loaded.warnings, vec![], "{loaded:#?}");
    assert_eq!(loaded.targets.len(), 1);
    let CheckSpec::Http(h) = &loaded.targets[0].probe.check else {
        panic!()
    };
    // Kept lossily.
    assert_eq!(h.path, "/gr\u{fffd}\u{fffd}e");
}

#[test]
fn a_byte_order_mark_is_part_of_the_first_word() {
    let loaded = load_case("bom").unwrap();
    assert_eq!(
        lines(&loaded),
        [
            "1: the file starts with a UTF-8 byte order mark: keepalived reads it as part of \
             the first word (remove it)",
            "1: Unknown keyword '\u{feff}global_defs'",
            "1: Unexpected '{' - ignoring",
            "2: Unknown keyword 'router_id'",
            "3: Unknown keyword '}'",
        ]
    );
    // The rest is read.
    assert_eq!(loaded.targets.len(), 1);
}

#[test]
fn virtual_server_groups() {
    let loaded = load_case("group").unwrap();
    let got: Vec<String> = loaded
        .targets
        .iter()
        .map(|t| format!("{} {} {}", t.probe.vip, t.probe.port, t.probe.real_server))
        .collect();
    assert_eq!(
        got,
        [
            "10.0.0.100 80 10.0.0.42",
            "10.0.0.110 80 10.0.0.42",
            "10.0.0.111 80 10.0.0.42",
            "10.0.0.112 80 10.0.0.42",
            "10.0.0.120 443 10.0.0.42",
            "10.0.0.121 443 10.0.0.42",
            "fd00::100 80 fd00::42",
            "fd00::101 80 fd00::42",
            "fd00::102 80 fd00::42",
        ],
        "{loaded:#?}"
    );
    let skipped: Vec<(&str, &str)> = loaded
        .skipped
        .iter()
        .map(|s| (s.what.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:#?}");
    assert!(skipped[0].0.starts_with("10.1.0.0/16 8080") && skipped[0].1.contains("65536"));
    assert!(skipped[1].0.starts_with("fwmark 5") && skipped[1].1.contains("firewall mark"));
    assert_eq!(loaded.warnings, vec![]);
    assert_eq!(
        group_range("fd00::1-1f").unwrap().1,
        ip("fd00::1f"),
        "the IPv6 range end is hex"
    );
    assert!(group_range("10.0.0.5-3").is_err());
    assert!(group_range("10.0.0.1/24").is_err());
}

#[test]
fn misc_check_runs_vipcheck() {
    let loaded = load_case("misc_native").unwrap();
    let t = &loaded.targets;
    assert_eq!(t.len(), 5, "{loaded:#?}");
    assert_eq!(t[0].probe.check, CheckSpec::Tcp);
    assert_eq!(t[0].probe.iface.as_deref(), Some("eth0"));
    assert_eq!(t[0].probe.timeout, Duration::from_millis(800));
    let CheckSpec::Http(h) = &t[1].probe.check else {
        panic!("{:?}", t[1].probe.check)
    };
    assert_eq!(
        t[1].probe.timeout,
        Duration::from_secs(1),
        "vipcheck's default -t"
    );
    assert_eq!(h.statuses, vec![200..=200]);
    assert_eq!(
        h.response_headers,
        vec![("Server".into(), Some("nginx".into()))]
    );
    assert_eq!(
        (h.host.as_deref(), h.path.as_str()),
        (Some("www.example.com"), "/hc")
    );
    let CheckSpec::Https(h, tls) = &t[2].probe.check else {
        panic!("{:?}", t[2].probe.check)
    };
    assert_eq!(
        (t[2].probe.port, h.method),
        (443, crate::probe::Method::Head)
    );
    assert_eq!(h.statuses, vec![200..=399]);
    // Native https verifies, as on its command line; --insecure does not.
    assert_eq!(tls.verify, crate::probe::Verify::Roots);
    let CheckSpec::Https(_, tls) = &t[3].probe.check else {
        panic!("{:?}", t[3].probe.check)
    };
    assert_eq!(tls.verify, crate::probe::Verify::KeepalivedSslGet);
    // A C line under vipcheck's own name (a symlink resolved by
    // keepalived's script security) is known by its shape.
    assert_eq!(t[4].probe.check, CheckSpec::Tcp);
    assert_eq!(t[4].probe.reply_timeout, Some(Duration::from_millis(500)));
    let reasons: Vec<&str> = loaded.skipped.iter().map(|s| s.reason.as_str()).collect();
    assert_eq!(reasons.len(), 2, "{reasons:#?}");
    assert!(reasons[0].contains("names are not resolved"), "{reasons:?}");
    assert!(
        reasons[1].starts_with("invalid vipcheck command line"),
        "{reasons:?}"
    );
}

#[test]
fn dns_udp_ping_smtp_checkers() {
    use crate::probe::{Protocol, Silence, UdpExpect};
    let loaded = load_case("checkers").unwrap();
    assert_eq!(
        (loaded.warnings.len(), loaded.skipped.len()),
        (0, 0),
        "{loaded:#?}"
    );
    let t = &loaded.targets;
    let kinds: Vec<&str> = t.iter().map(|t| t.probe.check.kind()).collect();
    assert_eq!(kinds, ["dns", "udp", "ping", "tcp", "smtp"]);
    // A UDP virtual server's checkers, TCP_CHECK included (keepalived
    // connects over TCP whatever the service's protocol).
    assert!(t[..4].iter().all(|t| t.vs_protocol == Protocol::Udp));
    assert_eq!(t[4].vs_protocol, Protocol::Tcp);
    let CheckSpec::Dns(dns) = &t[0].probe.check else {
        panic!()
    };
    assert_eq!(
        (dns.name.as_str(), dns.rtype, dns.tcp),
        ("www.example.com", crate::wire::dns::RecordType::Aaaa, false)
    );
    assert_eq!((t[0].retry, t[0].probe.port), (Some(3), 53));
    let CheckSpec::Udp(udp) = &t[1].probe.check else {
        panic!()
    };
    assert_eq!(udp.payload, [0xab, 0x12, 0x0f, 0x03, 0x45, 0x06]);
    let Some(UdpExpect::Pattern(p)) = &udp.expect else {
        panic!("{udp:?}")
    };
    assert_eq!(p.to_string(), "4F XB");
    assert_eq!((udp.min_length, udp.max_length), (Some(2), Some(512)));
    assert_eq!(udp.silence, Silence::Fails);
    assert_eq!((t[1].retry, t[2].retry), (None, None));
    let CheckSpec::Smtp(smtp) = &t[4].probe.check else {
        panic!()
    };
    assert_eq!(
        (smtp.helo.as_str(), smtp.helo_only),
        ("mail.example.com", true)
    );
    assert_eq!(
        (t[4].probe.port, t[4].probe.timeout),
        (25, Duration::from_secs(3))
    );
}

#[test]
fn smtp_host_blocks_are_further_checkers() {
    let loaded = load_case("smtp_hosts").unwrap();
    let t = &loaded.targets;
    // The SMTP_CHECK itself and its first host (port 587); the second
    // host connects to another address.
    let ports: Vec<u16> = t.iter().map(|t| t.probe.port).collect();
    assert_eq!(ports, [25, 587], "{loaded:#?}");
    for t in t {
        let CheckSpec::Smtp(smtp) = &t.probe.check else {
            panic!()
        };
        assert_eq!(smtp.helo, crate::probe::KEEPALIVED_HELO);
    }
    assert_eq!(loaded.skipped.len(), 1);
    assert!(
        loaded.skipped[0]
            .what
            .starts_with("host of real_server 10.0.0.42 25")
    );
    assert!(loaded.skipped[0].reason.contains("connect_ip 10.0.0.9"));
    assert!(loaded.skipped[0].origin.ends_with(":12"));
    // keepalived: "SMTP_CHECK helo name missing", and its default.
    assert_eq!(lines(&loaded), ["7: SMTP_CHECK helo name missing"]);
}

#[test]
fn checker_values_keepalived_reports() {
    // keepalived -t reports lines 7, 12, 17, 22, 29 and 33 and runs:
    // vipcheck warns, and skips what it cannot check as meant.
    let loaded = load_case("checker_values").unwrap();
    let t = &loaded.targets;
    assert_eq!(t.len(), 1, "{loaded:#?}");
    assert_eq!(t[0].probe.real_server, ip("10.0.0.46"));
    let CheckSpec::Udp(udp) = &t[0].probe.check else {
        panic!()
    };
    assert_eq!(
        (udp.min_length, udp.max_length),
        (None, None),
        "no require_reply HEX"
    );
    let w = lines(&loaded);
    let at: Vec<&str> = w.iter().map(|l| l.split(':').next().unwrap()).collect();
    assert_eq!(at, ["7", "12", "17", "22", "26", "33"], "{w:#?}");
    assert!(w[0].contains("\"PTR\""), "{w:?}");
    assert!(w[2].contains("Invalid hex string"), "{w:?}");
    assert!(w[4].contains("will always fail"), "{w:?}");
    assert!(w[5].contains("empty label"), "{w:?}");
    assert_eq!(loaded.skipped.len(), 5);
}

#[test]
fn no_protocol_is_udp() {
    // keepalived makes it a UDP service, and warns: so does vipcheck,
    // and checks it as one.
    let loaded = load_case("no_protocol").unwrap();
    assert_eq!(loaded.targets.len(), 1, "{loaded:#?}");
    assert_eq!(loaded.targets[0].vs_protocol, crate::probe::Protocol::Udp);
    assert_eq!(loaded.targets[0].probe.check, CheckSpec::Tcp);
    assert_eq!(
        lines(&loaded),
        [
            "1: virtual_server 10.0.0.100 80: no protocol set - keepalived defaults to UDP \
          (add `protocol TCP` for a TCP service)"
        ]
    );
    assert_eq!(loaded.skipped, vec![]);
}

#[test]
fn unknown_keywords_are_reported_and_reading_goes_on() {
    let loaded = load_case("unknown_keywords").unwrap();
    assert_eq!(
        lines(&loaded),
        [
            "7: Unknown keyword 'conect_timeout'",
            "10: Unknown keyword 'real_sever'",
            "10: Unexpected '{' - ignoring",
            "11: Unknown keyword 'TCP_CHECK'",
            "11: Unexpected '{' - ignoring",
            "13: Unknown keyword '}'",
            "14: Unknown keyword '}'",
        ]
    );
    let t = &loaded.targets;
    assert_eq!(t.len(), 2, "{loaded:#?}");
    // conect_timeout is no timeout: keepalived's default applies.
    assert_eq!(
        (t[0].probe.real_server, t[0].probe.timeout),
        (ip("10.0.0.42"), DEFAULT_TIMEOUT)
    );
    assert_eq!(t[1].probe.real_server, ip("10.0.0.44"));
    assert!(loaded.warnings[0].origin.ends_with("keepalived.conf:7"));
}

#[test]
fn a_direct_routing_real_server_on_another_port() {
    let loaded = load_case("dr_port").unwrap();
    assert_eq!(loaded.targets.len(), 1);
    assert_eq!(loaded.targets[0].probe.port, 8080);
    let w = lines(&loaded);
    assert_eq!(w.len(), 1);
    assert!(
        w[0].starts_with("5: real_server 10.0.0.42 8080: its port is not the virtual server's 80"),
        "{w:?}"
    );
}

#[test]
fn forwarding_methods_as_keepalived_spells_them() {
    let loaded = load_case("methods").unwrap();
    assert_eq!(loaded.targets.len(), 1, "{loaded:#?}");
    assert_eq!(loaded.targets[0].probe.vip, ip("10.0.0.104"));
    assert_eq!(
        lines(&loaded),
        [
            "3: PARSER : unknown [dr] routing method for virtual server (NAT, DR or TUN)",
            "1: virtual_server 10.0.0.103 80: no forwarding method set - keepalived uses NAT \
             (add `lb_kind DR` for direct routing)",
        ]
    );
}

#[test]
fn a_line_longer_than_keepalived_reads_is_two() {
    let loaded = load_case("long_line").unwrap();
    // keepalived's fgets reads 1023 bytes: "    router_id " and 1009 As,
    // then the 91 others, a word of their own.
    assert_eq!(
        lines(&loaded),
        [format!("2: Unknown keyword '{}'", "A".repeat(91))]
    );
}

#[test]
fn values_keepalived_reads_past_are_warned_and_not_checked() {
    // keepalived -t: "Invalid virtual server IP address/port" (line 1),
    // "Invalid real server ip address/port" (14), "digest 'abc' character
    // length should be 32" (22), and it runs.
    let loaded = load_case("bad_values").unwrap();
    let t = &loaded.targets;
    assert_eq!(t.len(), 1, "{loaded:#?}");
    assert_eq!(t[0].probe.real_server, ip("10.0.0.44"));
    let at: Vec<String> = lines(&loaded)
        .iter()
        .map(|l| l.split(':').next().unwrap().to_string())
        .collect();
    assert_eq!(at, ["1", "14", "22"], "{loaded:#?}");
    assert!(loaded.warnings[2].message.contains("is not an MD5"));
    assert_eq!(loaded.skipped.len(), 3);
}

#[test]
fn vrrp_blocks_and_value_blocks_are_known() {
    let loaded = load_case("vrrp_and_values").unwrap();
    assert_eq!(loaded.warnings, vec![], "{loaded:#?}");
    assert_eq!(loaded.targets, vec![]);
}

/// Runs `keepalived -t -f FILE`; its exit status, or `None` when
/// keepalived is not installed.
fn keepalived_test(path: &Path) -> Option<(i32, String)> {
    const KEEPALIVED: &str = "/usr/sbin/keepalived";
    if !Path::new(KEEPALIVED).exists() {
        return None;
    }
    use std::os::unix::process::CommandExt;
    // Its own process group: keepalived may signal its group.
    let out = std::process::Command::new(KEEPALIVED)
        .args(["-t", "-f"])
        .arg(path)
        .process_group(0)
        .output()
        .expect("running keepalived -t");
    let status = out.status.code().unwrap_or(-1);
    Some((status, String::from_utf8_lossy(&out.stderr).into_owned()))
}

/// Whether keepalived (`keepalived -t -f`) and vipcheck agree that the
/// keepalived.conf `text` can be read (keepalived exits 0 or 5 and runs;
/// 4 or 6 and does not), `ours` being vipcheck's reading of it; `Err`
/// says how they differ. Without keepalived: `Ok` (SKIPPED said), unless
/// CI is set. Every configuration the unit tests read goes through this.
pub(crate) fn keepalived_agrees_on(
    text: &str,
    ours: &Result<Loaded, ConfigError>,
) -> Result<(), String> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let dir = std::env::temp_dir().join(format!(
        "vipcheck-agree-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keepalived.conf");
    std::fs::write(&path, text).unwrap();
    let ran = keepalived_test(&path);
    let _ = std::fs::remove_dir_all(&dir);
    let Some((status, stderr)) = ran else {
        if std::env::var_os("CI").is_some() {
            panic!("/usr/sbin/keepalived is not installed (CI is set)");
        }
        eprintln!("SKIPPED: /usr/sbin/keepalived is not installed");
        return Ok(());
    };
    let keepalived_reads = match status {
        // Killed by a signal: keepalived 2.2.7 crashes on a few files
        // (`status_code` without a code); no verdict to compare.
        -1 => return Ok(()),
        0 | 5 => true,
        // A security warning (scripts without enable_script_security):
        // keepalived runs them all the same.
        6 if stderr.contains("SECURITY VIOLATION") => true,
        // A parameter missing after a keyword (2), a file or include
        // it refuses (4, 6): keepalived does not start.
        2 | 4 | 6 => false,
        other => return Err(format!("keepalived -t exited {other}: {stderr}")),
    };
    if ours.is_ok() != keepalived_reads {
        return Err(format!(
            "keepalived -t exited {status} ({stderr}); vipcheck: {ours:?}"
        ));
    }
    Ok(())
}

/// keepalived reads every case vipcheck reads, and refuses every one it
/// refuses: `keepalived -t` exits 0 (clean) or 5 (it reported
/// something, and runs) for the first, 4 or 6 (it does not run) for the
/// second. vipcheck warns when keepalived reports something, and only
/// then.
#[test]
fn keepalived_agrees() {
    let names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    for name in names {
        let path = case(name);
        let Some((status, stderr)) = keepalived_test(&path) else {
            if std::env::var_os("CI").is_some() {
                panic!("/usr/sbin/keepalived is not installed (CI is set)");
            }
            eprintln!("SKIPPED: /usr/sbin/keepalived is not installed");
            return;
        };
        let ours = load(&path);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        let keepalived_reads = match status {
            0 | 5 => true,
            4 | 6 => false,
            other => panic!("{name}: keepalived -t exited {other}: {stderr}"),
        };
        assert_eq!(
            ours.is_ok(),
            keepalived_reads,
            "{name}: keepalived -t exited {status} ({stderr}); vipcheck: {ours:?}"
        );
        assert_eq!(ours.is_ok(), !name.ends_with("_refused"), "{name}");
        if let Ok(loaded) = ours {
            let warned = &loaded.warnings;
            assert_eq!(
                !warned.is_empty(),
                status != 0,
                "{name}: vipcheck warns {warned:?}; keepalived -t exited {status}: {stderr}"
            );
        }
    }
}

#[test]
fn include_check_words_as_keepalived() {
    let loaded = load_str(
        "global_defs {\n include_check \"\" match\n}\n",
        Path::new("/etc/keepalived/keepalived.conf"),
    )
    .unwrap();
    assert_eq!(
        lines(&loaded),
        [
            "2: Unknown include_check type '' - ignoring",
            "2: Duplicate include_check 'match' specified - ignoring",
        ]
    );
}
