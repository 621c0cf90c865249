//! `vipcheck audit` in a real lab: a keepalived.conf and a targets file
//! whose real servers are the lab's, checked through the VIP path from one
//! process.

use std::path::PathBuf;

use crate::common::*;
use xtask::lab::VIP6;

/// A scratch directory for the input files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vck-audit-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str, content: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn audit_of_a_keepalived_conf() {
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("keepalived");
    let ok6 = Host::Ok.ip6();
    // The checks live in an included file: includes are followed.
    scratch.file(
        "reals.conf",
        &format!(
            "real_server {OK_IP} 80 {{\n  TCP_CHECK {{\n    connect_timeout 1\n  }}\n}}\n\
             real_server {NOVIP_IP} 80 {{\n  HTTP_GET {{\n    url {{\n      path /\n      status_code 200\n    }}\n    connect_timeout 1\n  }}\n}}\n\
             real_server {CLOSED_IP} 80 {{\n  MISC_CHECK {{\n    misc_path \"/usr/local/bin/check_tcp_raw -t 300 {LB_IFACE} {CLOSED_IP} {VIP} 80\"\n  }}\n}}\n\
             real_server {OK_IP} 53 {{\n  DNS_CHECK {{\n    name lab.example\n  }}\n}}\n\
             real_server {ABSENT_IP} 80 {{\n  TCP_CHECK {{\n    connect_timeout 1\n  }}\n}}\n"
        ),
    );
    // HTTP_GET with a digest and a status code, and check_http_raw, on a
    // second virtual server (what nginx serves at / is the lab's index).
    let index = std::fs::read(lab.docroot().join("index.html")).unwrap();
    let digest = {
        use md5::{Digest, Md5};
        hex::encode(Md5::digest(&index))
    };
    let wrong = "0123456789abcdef0123456789abcdef";
    scratch.file(
        "web.conf",
        &format!(
            "virtual_server {VIP} 8080 {{\n  lb_kind DR\n  protocol TCP\n\
               real_server {OK_IP} 80 {{\n    HTTP_GET {{\n      url {{\n        path /\n        digest {digest}\n        status_code 200\n      }}\n      url {{\n        path /index.html\n        digest {wrong}\n      }}\n      connect_timeout 1\n    }}\n  }}\n\
               real_server {NOVIP_IP} 80 {{\n    MISC_CHECK {{\n      misc_path \"/usr/local/bin/check_http_raw -t 300 -S 200 {LB_IFACE} {NOVIP_IP} {VIP} 80 lab.example /\"\n    }}\n  }}\n\
               real_server {CLOSED_IP} 80 {{\n    MISC_CHECK {{\n      misc_path \"check_http_raw -t 300 -S 200 {LB_IFACE} {CLOSED_IP} {VIP} 80 lab.example /\"\n    }}\n  }}\n\
             }}\n"
        ),
    );
    let conf = scratch.file(
        "keepalived.conf",
        &format!(
            "global_defs {{\n  router_id lab\n}}\n\
             virtual_server {VIP} 80 {{\n  lb_kind DR\n  protocol TCP\n  delay_loop 5\n  include reals.*\n}}\n\
             include web.conf\n\
             virtual_server fwmark 7 {{\n  real_server {OK_IP} 80 {{\n    TCP_CHECK {{ }}\n  }}\n}}\n\
             virtual_server {VIP6} 80 {{\n  lb_kind DR\n  protocol TCP\n  real_server {ok6} 80 {{\n    HTTP_GET {{\n      url {{\n        path /\n      }}\n      virtualhost lab.example\n    }}\n  }}\n}}\n"
        ),
    );
    assert_keepalived_reads(&conf);
    let out = run(vipcheck(&lab, &["audit", "--keepalived", &conf]));
    assert_eq!(out.code, 1, "not every real server is healthy: {out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    let row = |rs: &str, check: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("{rs} ")) && l.contains(&format!(" {check} ")))
            .unwrap_or_else(|| panic!("no {rs} {check} row: {}", out.stdout))
            .to_string()
    };
    assert!(
        row(&OK_IP.to_string(), "tcp").contains(" healthy "),
        "{out:?}"
    );
    let novip = row(&NOVIP_IP.to_string(), "http");
    assert!(
        novip.contains(" unhealthy ") && novip.contains("no answer"),
        "{novip}"
    );
    let closed = row(&CLOSED_IP.to_string(), "tcp");
    assert!(
        closed.contains(" unhealthy ") && closed.contains("refused (RST)"),
        "{closed}"
    );
    assert!(
        row(&ok6.to_string(), "http").contains(" healthy "),
        "{out:?}"
    );
    let absent = row(&ABSENT_IP.to_string(), "tcp");
    assert!(
        absent.contains(" unhealthy ") && absent.contains("no ARP reply"),
        "{absent}"
    );
    // On the second virtual server (VIP:8080 in the table, port 80 on the
    // real servers): the right digest passes, the wrong one fails, and the
    // check_http_raw lines check what their command lines say.
    let web: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains(&format!("{VIP}:80 ")) && l.contains("web.conf:"))
        .collect();
    let ok_web: Vec<_> = web
        .iter()
        .filter(|l| l.starts_with(&format!("{OK_IP} ")))
        .collect();
    assert_eq!(ok_web.len(), 2, "two urls of one HTTP_GET: {}", out.stdout);
    assert_eq!(
        ok_web.iter().filter(|l| l.contains(" healthy ")).count(),
        1,
        "the right digest passes, the wrong one fails: {}",
        out.stdout
    );
    assert!(
        ok_web
            .iter()
            .any(|l| l.contains(" unhealthy ") && l.contains("MD5")),
        "{}",
        out.stdout
    );
    for (rs, why) in [(NOVIP_IP, "no answer"), (CLOSED_IP, "refused")] {
        let line = web
            .iter()
            .find(|l| l.starts_with(&format!("{rs} ")))
            .unwrap_or_else(|| panic!("no check_http_raw row of {rs}: {}", out.stdout));
        assert!(line.contains(" unhealthy ") && line.contains(why), "{line}");
    }
    // DNS_CHECK through the VIP: this lab's ok carries the VIP and runs
    // no DNS server, so the query meets a port unreachable from the VIP.
    let dns = row(&OK_IP.to_string(), "dns");
    assert!(
        dns.contains(" unhealthy ") && dns.contains("port unreachable (from the VIP"),
        "{dns}"
    );
    assert!(out.stdout.contains("virtual_server fwmark 7"), "{out:?}");
    assert!(
        out.stdout.contains("reals.conf:"),
        "origins name the included file: {out:?}"
    );

    // JSON: one object per target with its origin, one per skipped.
    let json = run(vipcheck(
        &lab,
        &["audit", "--keepalived", &conf, "--format", "json"],
    ));
    assert_eq!(json.code, 1, "{json:?}");
    let objects: Vec<serde_json::Value> = json
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    let targets: Vec<_> = objects
        .iter()
        .filter(|o| o.get("verdict").is_some())
        .collect();
    let skipped: Vec<_> = objects
        .iter()
        .filter(|o| o.get("skipped").is_some())
        .collect();
    assert_eq!((targets.len(), skipped.len()), (10, 1), "{}", json.stdout);
    assert!(targets.iter().all(|t| t["origin"].is_string()));
    // `failure`: null exactly when healthy, else a code.
    assert!(
        targets
            .iter()
            .all(|t| (t["verdict"] == "healthy") == t["failure"].is_null()
                && (t["failure"].is_null() || t["failure"].is_string())),
        "{}",
        json.stdout
    );
    let absent = targets
        .iter()
        .find(|t| t["target"]["real_server"] == ABSENT_IP.to_string() && t["check"] == "tcp")
        .expect("the absent real server's tcp check");
    assert_eq!(absent["failure"], "no_neighbour", "{absent}");
    assert_eq!(
        targets.iter().filter(|t| t["verdict"] == "healthy").count(),
        3,
        "{}",
        json.stdout
    );

    // Nagios: one line for the whole audit, the worst state (CRITICAL: 2).
    let nagios = run(vipcheck(
        &lab,
        &["audit", "--keepalived", &conf, "--format", "nagios"],
    ));
    assert_eq!(nagios.code, 2, "{nagios:?}");
    assert_eq!(nagios.stdout.lines().count(), 1, "{nagios:?}");
    assert!(
        nagios.stdout.starts_with(
            "VIPCHECK CRITICAL - 10 targets: 3 healthy, 7 unhealthy, 0 could not run, 1 skipped"
        ) && nagios
            .stdout
            .contains(" | healthy=3;;;0 unhealthy=7;;;0 error=0;;;0 skipped=1;;;0 slowest="),
        "{nagios:?}"
    );

    // A file that is wrong: exit 2, one line with file:line.
    let broken = scratch.file("broken.conf", "includem missing.conf\n");
    let bad = run(vipcheck(&lab, &["audit", "--keepalived", &broken]));
    assert_eq!(bad.code, 2, "{bad:?}");
    assert_one_clean_line(&bad.stderr);
    assert!(bad.stderr.contains("broken.conf:"), "{bad:?}");
}

#[test]
fn audit_of_a_targets_file() {
    let lab = lab(Role::Master);
    let scratch = Scratch::new("targets");
    let targets = scratch.file(
        "targets.toml",
        &format!(
            "[defaults]\niface = \"{LB_IFACE}\"\ntimeout_ms = 1000\n\n\
             [[vip]]\naddress = \"{VIP}\"\nport = 80\ncheck = \"http\"\nhost = \"lab.example\"\npath = \"/\"\n\n\
             [[vip.real_server]]\naddress = \"{OK_IP}\"\n\n\
             [[vip.real_server]]\naddress = \"{CLOSED_IP}\"\ncheck = \"tcp\"\n"
        ),
    );
    let out = run(vipcheck(&lab, &["audit", "--targets", &targets]));
    // closed refuses port 80: not all healthy.
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.lines().count() >= 3, "{out:?}");
    let only_ok = scratch.file(
        "ok.toml",
        &format!(
            "[[vip]]\naddress = \"{VIP}\"\nport = 80\n\n[[vip.real_server]]\naddress = \"{OK_IP}\"\n"
        ),
    );
    let ok = run(vipcheck(&lab, &["audit", "--targets", &only_ok]));
    assert_eq!(ok.code, 0, "every real server healthy: {ok:?}");
    // The interface comes from the route when the file gives none.
    assert!(ok.stdout.contains(" healthy "), "{ok:?}");
    let typo = scratch.file(
        "typo.toml",
        "[[vip]]\naddres = \"198.18.0.100\"\nport = 80\n",
    );
    let bad = run(vipcheck(&lab, &["audit", "--targets", &typo]));
    assert_eq!(bad.code, 2, "{bad:?}");
    assert_one_clean_line(&bad.stderr);
}

/// keepalived's SSL_GET verifies no certificate: from a keepalived.conf,
/// the lab's certificate (its own CA, a name that is not the address
/// checked) passes, with its facts shown as not verified; asked to verify,
/// it fails, and passes with the CA and the name.
#[test]
fn ssl_get_as_keepalived_judges_it() {
    use xtask::lab::{HTTPS_EXPIRED_PORT, HTTPS_PORT};
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("ssl-get");
    let conf = scratch.file(
        "keepalived.conf",
        &format!(
            "virtual_server {VIP} {HTTPS_PORT} {{\n  protocol TCP\n  lb_kind DR\n\
               real_server {OK_IP} {HTTPS_PORT} {{\n    SSL_GET {{\n      url {{\n        path /\n        status_code 200\n      }}\n      connect_timeout 2\n    }}\n  }}\n}}\n\
             virtual_server {VIP} {HTTPS_EXPIRED_PORT} {{\n  protocol TCP\n  lb_kind DR\n\
               real_server {OK_IP} {HTTPS_EXPIRED_PORT} {{\n    SSL_GET {{\n      virtualhost lab.example\n      url {{\n        path /\n      }}\n      connect_timeout 2\n    }}\n  }}\n}}\n"
        ),
    );
    assert_keepalived_reads(&conf);
    let ca = lab.ca_pem();
    let ca = ca.to_str().unwrap();
    let audit = |extra: &[&str]| {
        let mut args = vec!["audit", "--keepalived", &conf];
        args.extend_from_slice(extra);
        run(vipcheck(&lab, &args))
    };
    let rows = |out: &Run| -> Vec<String> {
        out.stdout
            .lines()
            .filter(|l| l.starts_with(&format!("{OK_IP} ")))
            .map(str::to_string)
            .collect()
    };

    let plain = audit(&[]);
    assert_eq!(plain.code, 0, "{plain:?}");
    let r = rows(&plain);
    assert_eq!(r.len(), 2, "{plain:?}");
    for row in &r {
        for needle in [
            " https ",
            " healthy ",
            "200 OK",
            "certificate CN=lab.example from CN=vipcheck lab CA",
            "(not verified, as keepalived's SSL_GET)",
        ] {
            assert!(row.contains(needle), "{needle:?} not in {row}");
        }
    }

    // The REQUEST column: the Host sent (the address without a
    // virtualhost) and the path.
    assert!(r[0].contains(&format!(" {OK_IP}/ ")), "{}", r[0]);
    assert!(r[1].contains(" lab.example/ "), "{}", r[1]);

    // Verification asked: the lab's CA is unknown; with it, the address
    // is not the certificate's name; with --sni, the valid one passes and
    // the expired one fails.
    let verify = audit(&["--verify-tls"]);
    assert_eq!(verify.code, 1, "{verify:?}");
    let r = rows(&verify);
    assert!(r.iter().all(|r| r.contains(" unhealthy ")), "{verify:?}");
    assert!(r[0].contains("unknown issuer"), "{verify:?}");
    let by_address = audit(&["--ca", ca]);
    assert_eq!(by_address.code, 1, "{by_address:?}");
    let r = rows(&by_address);
    assert!(r[0].contains("name mismatch"), "{by_address:?}");
    let named = audit(&["--ca", ca, "--sni", "lab.example"]);
    assert_eq!(named.code, 1, "{named:?}");
    let r = rows(&named);
    assert!(
        r[0].contains(" healthy ") && !r[0].contains("not verified"),
        "{named:?}"
    );
    assert!(r[1].contains("certificate expired"), "{named:?}");

    // JSON says whether the certificate was verified.
    let json = audit(&["--format", "json"]);
    let first: serde_json::Value =
        serde_json::from_str(json.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["tls"]["verified"], false, "{json:?}");
    assert_eq!(first["verdict"], "healthy", "{json:?}");
    assert_eq!(first["request"]["host"], OK_IP.to_string(), "{json:?}");
    assert_eq!(first["request"]["path"], "/", "{json:?}");
}
