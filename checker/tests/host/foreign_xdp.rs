//! vipcheck beside another XDP program on the LB's interface (issue 22):
//! a foreign program attached by netlink in skb mode, then in driver mode,
//! then one loaded by libxdp (xdp-tools' `xdp-loader`), then libxdp's
//! dispatcher. With each, on a backup LB whose real server answers ARP
//! for the VIP (the leak that lets the LB kernel's RSTs reach it): the
//! native checks, an audit and the C names give the right verdicts
//! through the default capture (`--capture auto`: TC ingress, since the
//! XDP hook is taken), the real server sees no RST from the LB meanwhile
//! (and does see them from an AF_PACKET check: the count can fail), and
//! the foreign program is still the one attached, in its mode, afterwards.
//! One lab for every case (a lab costs a second of CI).
//!
//! `cargo test -p checker --test host foreign_xdp::` runs them.

use std::path::PathBuf;
use std::time::Instant;

use crate::common::*;
use xtask::lab::HTTPS_PORT;

/// The foreign attachments, in turn.
const KINDS: [Foreign; 4] = [
    Foreign::Pass(XdpMode::Generic),
    Foreign::Pass(XdpMode::Driver),
    Foreign::Libxdp(XdpMode::Generic),
    Foreign::Dispatcher(XdpMode::Generic),
];

/// What vipcheck says about its TC capture, in one place.
mod tc_capture {
    use crate::common::Run;

    /// `vipcheck xdp status eth0` while a foreign XDP program is attached:
    /// exit 0, and vipcheck's capture is on the TC hook, beside it.
    #[track_caller]
    pub fn assert_status_says_tc(what: &str, status: &Run) {
        assert_eq!(status.code, 0, "{what}: xdp status: {status:?}");
        assert!(
            status.stdout.contains("vipcheck TC program ")
                && status.stdout.contains("attached at TC ingress (tcx)")
                && status.stdout.contains("beside XDP program "),
            "{what}: xdp status does not name the TC hook: {status:?}"
        );
    }

    /// A C name's `-v` trace: the check did not fall back to the
    /// AF_PACKET capture (whose replies the LB's kernel RSTs).
    #[track_caller]
    pub fn assert_not_af_packet(what: &str, out: &Run) {
        assert!(
            !out.stderr.contains("AF_PACKET"),
            "{what}: fell back to AF_PACKET: {out:?}"
        );
    }
}

/// The C names linked to vipcheck (`vipcheck compat install`, hard links
/// beside the binary, as keepalived needs them) and the audit's targets
/// file, in one directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::path::Path::new(VIPCHECK)
            .with_file_name(format!("vck-foreign-xdp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let scratch = Scratch(dir);
        let out = std::process::Command::new(VIPCHECK)
            .args(["compat", "install"])
            .arg(&scratch.0)
            .output()
            .unwrap();
        assert!(out.status.success(), "compat install: {out:?}");
        scratch
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `real`'s kernel answers ARP for the VIP on its eth0 (as a real server
/// whose `arp_ignore` was forgotten): the backup LB's kernel can then
/// deliver RSTs addressed to the VIP, so a leaked reply shows.
fn answers_arp_for_the_vip(lab: &Lab, real: Host) {
    sh(
        lab,
        lab.ns(real),
        "sysctl",
        &[
            "-q",
            "-w",
            "net.ipv4.conf.all.arp_ignore=0",
            "net.ipv4.conf.eth0.arp_ignore=0",
        ],
    );
}

/// `vipcheck https --ca CA eth0 RS VIP 443 lab.example /`.
fn https(lab: &Lab, rs: std::net::Ipv4Addr) -> Run {
    let ca = lab.ca_pem();
    let mut args = http_args(rs, HTTPS_PORT, "/", &["--ca", ca.to_str().unwrap()]);
    args[0] = "https".into();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(vipcheck(lab, &args))
}

/// A C name (hard link in `scratch`) with `args`, in the LB namespace.
fn c_name(lab: &Lab, scratch: &Scratch, name: &str, args: &[&str]) -> Run {
    let mut cmd = lab.command(lab.lb_ns(), scratch.path(name));
    cmd.args(args);
    run(cmd)
}

#[track_caller]
fn expect(what: &str, out: &Run, code: i32) {
    assert_eq!(out.code, code, "{what}: {out:?}");
    assert!(!out.stderr.contains("panicked"), "{what}: {out:?}");
}

/// The targets file of the audit: ok by tcp, http and https, closed by
/// tcp (refused).
fn targets(lab: &Lab, scratch: &Scratch) -> String {
    let path = scratch.path("targets.toml");
    let ca = lab.ca_pem();
    std::fs::write(
        &path,
        format!(
            "[defaults]\niface = \"{LB_IFACE}\"\ntimeout_ms = 1000\n\n\
             [[vip]]\naddress = \"{VIP}\"\nport = 80\ncheck = \"tcp\"\n\
             real_server = [{{ address = \"{OK_IP}\" }}, {{ address = \"{CLOSED_IP}\" }}]\n\n\
             [[vip]]\naddress = \"{VIP}\"\nport = 80\ncheck = \"http\"\nhost = \"lab.example\"\npath = \"/\"\n\
             real_server = [{{ address = \"{OK_IP}\" }}]\n\n\
             [[vip]]\naddress = \"{VIP}\"\nport = {HTTPS_PORT}\ncheck = \"https\"\nhost = \"lab.example\"\npath = \"/\"\nca = \"{}\"\n\
             real_server = [{{ address = \"{OK_IP}\" }}]\n",
            ca.display()
        ),
    )
    .unwrap();
    path.to_string_lossy().into_owned()
}

/// Every check kind against a healthy and an unhealthy real server, with
/// `foreign` attached: right verdicts.
fn verdicts(lab: &Lab, scratch: &Scratch, targets: &str, kind: Foreign) {
    let k = format!("{kind:?}");
    let what = |check: &str| format!("{k}: {check}");
    expect(&what("tcp ok"), &tcp(lab, OK_IP, &[]), 0);
    expect(&what("tcp closed"), &tcp(lab, CLOSED_IP, &[]), 1);
    let novip = tcp(lab, NOVIP_IP, &["-t", "300"]);
    expect(&what("tcp novip"), &novip, 1);
    assert!(novip.stdout.contains("no answer"), "{k}: {novip:?}");
    expect(&what("http ok"), &http(lab, OK_IP, 80, "/", &[]), 0);
    expect(&what("http closed"), &http(lab, CLOSED_IP, 80, "/", &[]), 1);
    expect(&what("https ok"), &https(lab, OK_IP), 0);
    expect(&what("https closed"), &https(lab, CLOSED_IP), 1);

    let audit = run(vipcheck(lab, &["audit", "--targets", targets]));
    expect(&what("audit"), &audit, 1);
    let rows = |verdict: &str| {
        audit
            .stdout
            .lines()
            .filter(|l| l.contains(&format!(" {verdict} ")))
            .map(|l| l.split_whitespace().next().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
    };
    let ok = OK_IP.to_string();
    assert_eq!(rows("healthy"), [&*ok, &*ok, &*ok], "{k}: audit: {audit:?}");
    assert_eq!(
        rows("unhealthy"),
        [CLOSED_IP.to_string()],
        "{k}: audit: {audit:?}"
    );

    let vip = VIP.to_string();
    let closed = CLOSED_IP.to_string();
    let tcp_ok = c_name(
        lab,
        scratch,
        "check_tcp_raw",
        &["-v", "-t", "500", LB_IFACE, &ok, &vip, "80"],
    );
    expect(&what("check_tcp_raw ok"), &tcp_ok, 0);
    tc_capture::assert_not_af_packet(&what("check_tcp_raw -v"), &tcp_ok);
    expect(
        &what("check_tcp_raw closed"),
        &c_name(
            lab,
            scratch,
            "check_tcp_raw",
            &["-t", "500", LB_IFACE, &closed, &vip, "80"],
        ),
        1,
    );
    let http_ok = c_name(
        lab,
        scratch,
        "check_http_raw",
        &[
            "-v",
            "-t",
            "500",
            "-S",
            "200",
            LB_IFACE,
            &ok,
            &vip,
            "80",
            "lab.example",
            "/",
        ],
    );
    expect(&what("check_http_raw ok"), &http_ok, 0);
    tc_capture::assert_not_af_packet(&what("check_http_raw -v"), &http_ok);
}

#[test]
fn checks_beside_a_foreign_xdp_program() {
    let lab = lab(Role::Backup);
    let scratch = Scratch::new();
    let targets = targets(&lab, &scratch);
    answers_arp_for_the_vip(&lab, Host::Ok);
    // Bare RSTs: the LB kernel's answer to a segment with an ACK (every
    // reply of a real server has one); the checks' own aborts and the C
    // names' RST-ACK close carry an ACK.
    let rsts = RstCounter::install(&lab, Rsts::Bare);
    assert_eq!(
        xdp_ids(&lab, LB_IFACE),
        Vec::<u32>::new(),
        "an XDP program before the test"
    );

    for kind in KINDS {
        let started = Instant::now();
        let foreign = ForeignXdp::attach_kind(&lab, kind);
        println!(
            "foreign_xdp: {kind:?}: program {} ({}) attached",
            foreign.id, foreign.name
        );
        let before = rsts.packets();
        verdicts(&lab, &scratch, &targets, kind);
        let leaked = rsts.packets() - before;
        assert_eq!(
            leaked, 0,
            "{kind:?}: the LB's kernel answered the real server with {leaked} RSTs"
        );
        foreign.assert_still_attached();

        // vipcheck's own commands leave the foreign program alone too.
        let attach = run(vipcheck(&lab, &["xdp", "attach", LB_IFACE]));
        assert_eq!(attach.code, 0, "{kind:?}: xdp attach: {attach:?}");
        let status = run(vipcheck(&lab, &["xdp", "status", LB_IFACE]));
        tc_capture::assert_status_says_tc(&format!("{kind:?}"), &status);
        foreign.assert_still_attached();
        let detach = run(vipcheck(&lab, &["xdp", "detach", LB_IFACE]));
        assert_eq!(detach.code, 0, "{kind:?}: xdp detach: {detach:?}");
        foreign.assert_still_attached();

        // The control: an AF_PACKET check's SYN-ACK reaches the LB's
        // kernel through this foreign program, and its RST reaches the
        // real server, so the count above could fail. (Its verdict does
        // not matter: the RST may reach the server first. That RST also
        // fails the http and https checks through an AF_PACKET capture:
        // "connection reset by the server before a response".)
        let before = rsts.packets();
        let control = tcp(&lab, OK_IP, &["--xdp", "off"]);
        // The RST may still wait for the LB's ARP for the VIP.
        let deadline = Instant::now() + std::time::Duration::from_secs(1);
        while rsts.packets() == before && Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            rsts.packets() > before,
            "{kind:?}: no RST arrived from an AF_PACKET check: the test cannot tell: {control:?}"
        );
        foreign.assert_still_attached();

        drop(foreign);
        assert_eq!(
            xdp_ids(&lab, LB_IFACE),
            Vec::<u32>::new(),
            "{kind:?}: an XDP program left after the foreign one was detached"
        );
        println!("foreign_xdp: {kind:?}: {:?}", started.elapsed());
    }
}
