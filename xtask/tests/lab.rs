//! Checks of the lab itself. They need root and build real namespaces:
//! `cargo test -p xtask --test lab` (add `-- --nocapture` for the timings).

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use xtask::lab::{
    ABSENT_IP, CLOSED_IP, FILES, Host, INDEX_HTML, LB_IFACE, Lab, NOVIP_IP, OK_IP, Role,
    SERVER_HEADER, VIP, VIP6, pseudo_random,
};

const NEEDS_ROOT: &str = "needs root: builds network namespaces";

fn curl(lab: &Lab, args: &[&str]) -> Output {
    lab.command(lab.lb_ns(), "curl")
        .args(["-sS", "--max-time", "3"])
        .args(args)
        .output()
        .expect("curl runs")
}

fn addresses(ns: &str, dev: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-br", "address", "show", "dev", dev])
        .output()
        .expect("ip runs");
    String::from_utf8(out.stdout).unwrap()
}

fn sysctl(lab: &Lab, host: Host, name: &str) -> String {
    let out = lab
        .command(lab.ns(host), "cat")
        .arg(Path::new("/proc/sys/net/ipv4/conf").join(name))
        .output()
        .expect("cat runs");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn namespace_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

/// Pids of the processes in namespace `ns` (as `ip netns pids` finds them).
fn pids_in(lab: &Lab, ns: &str) -> Vec<u32> {
    use std::os::unix::fs::MetadataExt;
    let inode = lab.netns_inode(ns);
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse().ok()?;
            (std::fs::metadata(e.path().join("ns/net")).ok()?.ino() == inode).then_some(pid)
        })
        .collect()
}

fn netns_inode(ns: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(Path::new("/run/netns").join(ns))
        .unwrap()
        .ino()
}

/// Waits until process `pid` (started through nsenter) is in the namespace.
fn wait_until_in(pid: u32, inode: u64) {
    use std::os::unix::fs::MetadataExt;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino()
        != inode
    {
        assert!(
            Instant::now() < deadline,
            "{pid} does not enter the namespace"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie (state Z) has left its namespace already.
    !stat.is_empty() && !stat.contains(") Z ")
}

/// Everything the lab named, to check it is gone after the drop.
fn names(lab: &Lab) -> Vec<String> {
    let mut names: Vec<String> = Host::ALL.iter().map(|&h| lab.ns(h).to_owned()).collect();
    names.push(lab.switch_ns().to_owned());
    names
}

fn assert_removed(names: &[String], pids: &[u32], docroot: &Path) {
    for ns in names {
        assert!(!namespace_exists(ns), "{ns} still exists");
    }
    for &pid in pids {
        assert!(!alive(pid), "process {pid} still runs");
    }
    assert!(!docroot.exists(), "{} still exists", docroot.display());
}

#[test]
fn backup_lab_serves_http_and_is_removed_on_drop() {
    let start = Instant::now();
    let lab = Lab::up(Role::Backup).expect(NEEDS_ROOT);
    let up = start.elapsed();

    let index = curl(&lab, &["-i", &format!("http://{OK_IP}/")]);
    assert!(index.status.success(), "{index:?}");
    let index = String::from_utf8(index.stdout).unwrap();
    assert!(index.ends_with(INDEX_HTML), "{index}");
    assert!(index.contains(&format!("{SERVER_HEADER}: ok")), "{index}");
    let novip = curl(&lab, &["-i", &format!("http://{NOVIP_IP}/")]);
    assert!(String::from_utf8_lossy(&novip.stdout).contains(&format!("{SERVER_HEADER}: novip")));

    for (name, size) in FILES {
        let body = curl(&lab, &[&format!("http://{OK_IP}/{name}")]);
        assert!(body.status.success(), "{name}: {body:?}");
        assert_eq!(body.stdout.len(), size, "{name}");
        assert!(body.stdout == pseudo_random(size), "{name} content");
    }

    let closed = curl(&lab, &[&format!("http://{CLOSED_IP}/")]);
    let stderr = String::from_utf8_lossy(&closed.stderr);
    assert_eq!(closed.status.code(), Some(7), "{stderr}");
    assert!(stderr.contains("Couldn't connect"), "{stderr}");

    let ping_absent = lab
        .command(lab.lb_ns(), "ping")
        .args(["-c1", "-W1", &ABSENT_IP.to_string()])
        .output()
        .unwrap();
    assert!(!ping_absent.status.success());

    let vip = format!("{VIP}/32");
    assert!(addresses(lab.ns(Host::Ok), "lo").contains(&vip));
    assert!(addresses(lab.ns(Host::Closed), "lo").contains(&vip));
    assert!(!addresses(lab.ns(Host::NoVip), "lo").contains(&vip));
    assert!(!addresses(lab.lb_ns(), LB_IFACE).contains(&vip));
    for host in [Host::Ok, Host::Closed] {
        for conf in ["all", "eth0"] {
            assert_eq!(sysctl(&lab, host, &format!("{conf}/arp_ignore")), "1");
            assert_eq!(sysctl(&lab, host, &format!("{conf}/arp_announce")), "2");
        }
    }
    for host in Host::ALL {
        let link = Command::new("ip")
            .args(["-n", lab.ns(host), "-br", "link", "show", "dev", LB_IFACE])
            .output()
            .unwrap();
        let link = String::from_utf8(link.stdout).unwrap();
        assert!(link.contains(&lab.mac(host)), "{host}: {link}");
        assert!(link.contains(" UP "), "{host}: {link}");
    }
    let lb_inode = lab.netns_inode(lab.lb_ns());
    let inside = lab
        .command(lab.lb_ns(), "readlink")
        .arg("/proc/self/ns/net")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(inside.stdout).unwrap().trim(),
        format!("net:[{lb_inode}]")
    );

    // Pins of the checker's XDP program for the LB's eth0 go with the lab
    // (checked where the checker has made its pin directory).
    let pin = Path::new("/sys/fs/bpf/vipcheck").join(format!("ns{lb_inode}-if2"));
    let pinned = pin.parent().unwrap().is_dir() && std::fs::create_dir(&pin).is_ok();

    let names = names(&lab);
    let nginx: Vec<u32> = [Host::Ok, Host::NoVip]
        .iter()
        .flat_map(|&h| pids_in(&lab, lab.ns(h)))
        .collect();
    assert_eq!(nginx.len(), 2, "one nginx per web server");
    let docroot = lab.docroot();
    let start = Instant::now();
    drop(lab);
    let down = start.elapsed();
    assert_removed(&names, &nginx, &docroot);
    assert!(!pin.exists(), "{} still exists", pin.display());
    eprintln!("lab up {up:?}, down {down:?}; XDP pin removal checked: {pinned}");
}

#[test]
fn master_lab_has_the_vip_on_the_lb() {
    let lab = Lab::up(Role::Master).expect(NEEDS_ROOT);
    assert_eq!(lab.role(), Role::Master);
    assert!(addresses(lab.lb_ns(), LB_IFACE).contains(&format!("{VIP}/32")));
    assert!(addresses(lab.ns(Host::Ok), "lo").contains(&format!("{VIP}/32")));
    let index = curl(&lab, &[&format!("http://{OK_IP}/")]);
    assert_eq!(index.stdout, INDEX_HTML.as_bytes());
}

#[test]
fn labs_side_by_side_are_independent() {
    let labs: Vec<Lab> = std::thread::scope(|s| {
        let handles: Vec<_> = [Role::Backup, Role::Master, Role::Backup]
            .into_iter()
            .map(|role| s.spawn(move || Lab::up(role).expect(NEEDS_ROOT)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for lab in &labs {
        let index = curl(lab, &[&format!("http://{OK_IP}/")]);
        assert_eq!(index.stdout, INDEX_HTML.as_bytes());
    }
    let mut all: Vec<String> = labs.iter().flat_map(names).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 15, "distinct namespaces");
    drop(labs);
    for ns in &all {
        assert!(!namespace_exists(ns), "{ns} still exists");
    }
}

#[test]
fn a_panicking_test_still_removes_its_lab() {
    let mut seen = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = Lab::up(Role::Backup).expect(NEEDS_ROOT);
        seen = Some((names(&lab), lab.docroot()));
        panic!("test failure inside a lab");
    }));
    assert!(result.is_err());
    let (names, docroot) = seen.unwrap();
    assert_removed(&names, &[], &docroot);
}

#[test]
fn background_processes_are_stopped() {
    let lab = Lab::up(Role::Backup).expect(NEEDS_ROOT);
    let pcap = lab.docroot().join("lb.pcap");
    let mut dump = lab.command(lab.lb_ns(), "tcpdump");
    // Without --immediate-mode, packets wait up to 1 s in the capture
    // buffer and a stop loses them.
    dump.args(["--immediate-mode", "-i", LB_IFACE, "-U", "-w"])
        .arg(&pcap)
        .args(["tcp", "port", "80"])
        .stderr(Stdio::null());
    let dump = lab.spawn(&mut dump).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !pcap.exists() {
        assert!(Instant::now() < deadline, "tcpdump does not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(curl(&lab, &[&format!("http://{OK_IP}/")]).status.success());
    // tcpdump drops what it has not read when it stops: wait for the pcap
    // header (24 bytes) and at least the handshake to be written.
    while std::fs::metadata(&pcap).unwrap().len() < 24 + 3 * 54 {
        assert!(Instant::now() < deadline, "tcpdump captures nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = dump.stop().unwrap();
    assert!(status.success(), "{status}");

    // A process the test forgot still goes with the lab.
    let mut forgotten = lab
        .command(lab.ns(Host::Closed), "sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let closed_inode = lab.netns_inode(lab.ns(Host::Closed));
    wait_until_in(forgotten.id(), closed_inode);
    let names = names(&lab);
    drop(lab);
    assert_eq!(forgotten.wait().unwrap().signal(), Some(libc::SIGKILL));
    for ns in &names {
        assert!(!namespace_exists(ns));
    }
}

#[test]
fn leftovers_of_a_dead_process_are_removed() {
    // The leftovers are made while their owner lives, so that the Lab::up
    // of a test running beside this one cannot remove them half-made.
    let mut owner = Command::new("sleep").arg("60").spawn().unwrap();
    let id = format!("{}-0", owner.id());
    let ns_lb = format!("vck-{id}-lb");
    let ns_sw = format!("vck-{id}-sw");
    let dir = std::env::temp_dir().join(format!("vck-{id}"));
    let add = Command::new("ip")
        .args(["-b", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .and_then(|mut ip| {
            use std::io::Write;
            ip.stdin
                .take()
                .unwrap()
                .write_all(format!("netns add {ns_lb}\nnetns add {ns_sw}\n").as_bytes())?;
            ip.wait()
        })
        .expect(NEEDS_ROOT);
    assert!(add.success());
    std::fs::create_dir_all(dir.join("www")).unwrap();
    let mut orphan = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{ns_lb}"))
        .args(["sleep", "60"])
        .spawn()
        .unwrap();
    wait_until_in(orphan.id(), netns_inode(&ns_lb));
    owner.kill().unwrap();
    owner.wait().unwrap();

    let lab = Lab::up(Role::Backup).expect(NEEDS_ROOT);
    assert!(!namespace_exists(&ns_lb));
    assert!(!namespace_exists(&ns_sw));
    assert!(!dir.exists());
    assert_eq!(orphan.wait().unwrap().signal(), Some(libc::SIGKILL));
    assert!(namespace_exists(lab.lb_ns()));
}

#[test]
fn keepalived_runs_scripts_and_logs_each_result() {
    use xtask::lab::{KeepalivedConfig, VrrpScript};
    let lab = Lab::up(Role::Backup).expect(NEEDS_ROOT);
    let config = KeepalivedConfig::new([
        VrrpScript::new("good", "/bin/true", 1),
        VrrpScript::new("bad", "/bin/false", 1),
    ]);
    let start = Instant::now();
    let keepalived = lab.keepalived(&config).expect("keepalived starts");
    let started = start.elapsed();
    let within = Duration::from_secs(3);
    let good = keepalived.wait_for("VRRP_Script(good) succeeded", within);
    let bad = keepalived.wait_for("VRRP_Script(bad) failed", within);
    let results = start.elapsed();
    let log = keepalived.lines().join("\n");
    assert!(good.is_some(), "{log}");
    let bad = bad.unwrap_or_else(|| panic!("{log}"));
    assert!(bad.ends_with("(exited with status 1)"), "{bad}");
    // A few more runs of each: good stays good.
    let flap = keepalived.wait_for("VRRP_Script(good) failed", Duration::from_millis(2500));
    assert_eq!(flap, None, "{}", keepalived.lines().join("\n"));

    let pids = keepalived.pids();
    let vrrp = keepalived.vrrp_pid().expect("a VRRP pid file");
    assert!(
        pids.contains(&keepalived.pid()) && pids.contains(&vrrp),
        "{pids:?}"
    );
    let stop = Instant::now();
    drop(keepalived);
    let stopped = stop.elapsed();
    for &pid in &pids {
        assert!(!alive(pid), "keepalived process {pid} still runs");
    }
    assert_eq!(
        pids_in(&lab, lab.lb_ns()),
        Vec::<u32>::new(),
        "processes left in the LB"
    );
    eprintln!(
        "keepalived ready after {started:?}, both results after {results:?}, \
         stopped in {stopped:?}; pids {pids:?}"
    );
}

#[test]
fn lab_speaks_ipv6_and_hides_the_ipv6_vip_from_neighbour_discovery() {
    let lab = Lab::up(Role::Backup).expect("lab up");
    // nginx answers on the real servers' own IPv6 addresses, HTTP and HTTPS.
    let ok6 = format!("http://[{}]/", Host::Ok.ip6());
    let out = curl(&lab, &["-sf", "-m", "2", &ok6]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), INDEX_HTML);
    let https = curl(
        &lab,
        &[
            "-sf",
            "-m",
            "2",
            "--cacert",
            lab.ca_pem().to_str().unwrap(),
            "--resolve",
            &format!("lab.example:443:[{}]", Host::Ok.ip6()),
            "https://lab.example/",
        ],
    );
    assert!(https.status.success(), "{https:?}");
    // VIP6 on the lo of ok and closed, not novip; no real server answers
    // neighbour solicitations for it (LVS-DR), so from the backup LB, which
    // lacks it, the VIP6 is unreachable.
    for host in [Host::Ok, Host::Closed] {
        assert!(
            addresses(lab.ns(host), "lo").contains(&VIP6.to_string()),
            "{host}"
        );
    }
    assert!(!addresses(lab.ns(Host::NoVip), "lo").contains(&VIP6.to_string()));
    let vip6 = curl(&lab, &["-s", "-m", "2", &format!("http://[{VIP6}]/")]);
    assert!(
        !vip6.status.success(),
        "a real server answered ND for the VIP6: {vip6:?}"
    );
}

/// Runs `program` in the LB's namespace; its stdout.
fn lb_output(lab: &Lab, program: &str, args: &[&str]) -> String {
    let out = lab
        .command(lab.lb_ns(), program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn dig(lab: &Lab, args: &[&str]) -> String {
    let mut all = vec!["+time=1", "+tries=1"];
    all.extend_from_slice(args);
    lb_output(lab, "dig", &all)
}

/// An SMTP dialogue through bash's /dev/tcp from the LB: what the server
/// said to EHLO, RCPT and QUIT.
fn smtp_dialogue(lab: &Lab, ip: &str, port: u16) -> String {
    let script = format!(
        "exec 3<>/dev/tcp/{ip}/{port} && \
         printf 'EHLO lb\\r\\nMAIL FROM:<a@lb>\\r\\nRCPT TO:<b@ok>\\r\\nQUIT\\r\\n' >&3 && \
         timeout 3 cat <&3"
    );
    lb_output(lab, "bash", &["-c", &script])
}

#[test]
fn services_answer_dns_smtp_and_udp_and_stop_on_drop() {
    use std::net::{IpAddr, SocketAddr};
    use xtask::lab::{
        DNS_AAAA, DNS_ABSENT_NAME, DNS_NAME, DNS_REFUSED_NAME, DNS_SOA_MNAME, SMTP_MULTILINE_LINES,
        SMTP_MULTILINE_PORT, SMTP_PORT, UDP_ECHO_PORT, UDP_WRONG_SOURCE_PORT, smtp_greeting,
    };
    let lab = Lab::up(Role::Backup).expect(NEEDS_ROOT);
    let start = Instant::now();
    let dns = lab.start_dns().expect("dnsmasq starts");
    let dns_up = start.elapsed();
    let smtp = lab.start_smtp().expect("exim starts");
    let smtp_up = start.elapsed() - dns_up;
    let udp = lab.start_udp().expect("socat starts");
    let udp_up = start.elapsed() - dns_up - smtp_up;

    // DNS, from both servers, UDP and TCP, IPv4 and IPv6.
    let ok = OK_IP.to_string();
    let ok6 = Host::Ok.ip6().to_string();
    let novip = NOVIP_IP.to_string();
    let at = |ip: &str| format!("@{ip}");
    assert_eq!(
        dig(&lab, &[&at(&ok), DNS_NAME, "A", "+short"]).trim(),
        VIP.to_string()
    );
    assert_eq!(
        dig(&lab, &[&at(&ok6), DNS_NAME, "AAAA", "+short"]).trim(),
        DNS_AAAA.to_string()
    );
    assert_eq!(
        dig(&lab, &["+tcp", &at(&novip), DNS_NAME, "A", "+short"]).trim(),
        VIP.to_string()
    );
    // keepalived's DNS_CHECK default: `. SOA`, NOERROR.
    let soa = dig(&lab, &[&at(&ok), ".", "SOA"]);
    assert!(
        soa.contains("status: NOERROR") && soa.contains(" aa"),
        "{soa}"
    );
    assert!(soa.contains(&format!("SOA\t{DNS_SOA_MNAME}.")), "{soa}");
    let absent = dig(&lab, &[&at(&novip), DNS_ABSENT_NAME, "A"]);
    assert!(
        absent.contains("status: NXDOMAIN") && absent.contains(" aa"),
        "{absent}"
    );
    let outside = dig(&lab, &["+tcp", &at(&ok6), DNS_REFUSED_NAME, "A"]);
    assert!(outside.contains("status: REFUSED"), "{outside}");

    // SMTP: greeting, EHLO, every RCPT refused, QUIT.
    let said = smtp_dialogue(&lab, &ok, SMTP_PORT);
    let lines: Vec<&str> = said.lines().map(str::trim_end).collect();
    assert_eq!(lines[0], smtp_greeting(Host::Ok), "{said}");
    assert!(lines[1].starts_with("250-ok.lab.test Hello lb"), "{said}");
    assert!(lines.iter().any(|l| l.starts_with("550 ")), "{said}");
    assert!(lines.last().unwrap().starts_with("221 "), "{said}");
    let said = smtp_dialogue(&lab, &Host::NoVip.ip6().to_string(), SMTP_MULTILINE_PORT);
    let banner: Vec<&str> = said.lines().take_while(|l| l.starts_with("220")).collect();
    assert_eq!(banner.len(), SMTP_MULTILINE_LINES, "{said}");
    assert!(banner[0].starts_with("220-novip.lab.test "), "{said}");
    assert!(
        banner[SMTP_MULTILINE_LINES - 1].starts_with("220 "),
        "{said}"
    );

    // UDP to the VIP: the LB cannot reach it through its kernel, so a
    // test-only route sends the VIPs to ok (removed with the lab, also on
    // failure).
    let route = |family: &str, dest: String, via: String| {
        let status = Command::new("ip")
            .args([
                "-n",
                lab.lb_ns(),
                family,
                "route",
                "add",
                &dest,
                "via",
                &via,
            ])
            .status()
            .unwrap();
        assert!(status.success(), "route {dest} via {via}");
    };
    route("-4", format!("{VIP}/32"), ok.clone());
    route("-6", format!("{VIP6}/128"), ok6.clone());
    let timeout = Duration::from_secs(1);
    for (vip, own) in [
        (IpAddr::from(VIP), IpAddr::from(OK_IP)),
        (IpAddr::from(VIP6), IpAddr::from(Host::Ok.ip6())),
    ] {
        let to = SocketAddr::new(vip, UDP_ECHO_PORT);
        let (reply, from) = lab.udp_exchange(Host::Lb, to, b"echo", timeout).unwrap();
        assert_eq!((reply.as_slice(), from), (&b"echo"[..], to));
        // The wildcard-bound service answers from ok's own address.
        let to = SocketAddr::new(vip, UDP_WRONG_SOURCE_PORT);
        let (reply, from) = lab.udp_exchange(Host::Lb, to, b"who", timeout).unwrap();
        assert_eq!(reply, b"who");
        assert_eq!(from, SocketAddr::new(own, UDP_WRONG_SOURCE_PORT));
    }
    // `closed` answers every datagram to a closed port with ICMP port
    // unreachable, also many in a row: no rate limit there.
    for (family, dest) in [("-4", format!("{VIP}/32")), ("-6", format!("{VIP6}/128"))] {
        let status = Command::new("ip")
            .args(["-n", lab.lb_ns(), family, "route", "replace", &dest])
            .args([
                "via",
                &if family == "-4" {
                    CLOSED_IP.to_string()
                } else {
                    Host::Closed.ip6().to_string()
                },
            ])
            .status()
            .unwrap();
        assert!(status.success());
    }
    for vip in [IpAddr::from(VIP), IpAddr::from(VIP6)] {
        let refused = lab
            .run_in(lab.lb_ns(), || {
                let any: SocketAddr = if vip.is_ipv4() {
                    "0.0.0.0:0".parse().unwrap()
                } else {
                    "[::]:0".parse().unwrap()
                };
                let socket = std::net::UdpSocket::bind(any)?;
                socket.connect(SocketAddr::new(vip, UDP_ECHO_PORT))?;
                socket.set_read_timeout(Some(timeout))?;
                let mut refused = 0;
                for _ in 0..100 {
                    socket.send(b"x")?;
                    let mut buf = [0; 16];
                    match socket.recv(&mut buf) {
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
                        other => panic!("{vip}: {other:?}"),
                    }
                }
                Ok(refused)
            })
            .unwrap();
        assert_eq!(refused, 100, "{vip}");
    }
    for (family, dest) in [("-4", format!("{VIP}/32")), ("-6", format!("{VIP6}/128"))] {
        let status = Command::new("ip")
            .args(["-n", lab.lb_ns(), family, "route", "del", &dest])
            .status()
            .unwrap();
        assert!(status.success());
    }

    let pids: Vec<u32> = [&dns, &smtp, &udp].iter().flat_map(|s| s.pids()).collect();
    let stop = Instant::now();
    drop((dns, smtp, udp));
    let stopped = stop.elapsed();
    for &pid in &pids {
        assert!(!alive(pid), "service process {pid} still runs");
    }
    let out = smtp_dialogue_fails(&lab, &ok);
    assert!(out, "port 25 still open after the drop");
    eprintln!(
        "ready after: dns {dns_up:?}, smtp {smtp_up:?}, udp {udp_up:?}; \
         stopped in {stopped:?}; pids {pids:?}"
    );
}

fn smtp_dialogue_fails(lab: &Lab, ip: &str) -> bool {
    !lab.command(lab.lb_ns(), "bash")
        .args(["-c", &format!("exec 3<>/dev/tcp/{ip}/25")])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn start_services_runs_each_server_in_its_host_and_the_lab_stops_them() {
    let lab = Lab::up(Role::Backup).expect(NEEDS_ROOT);
    let services = lab.start_services().expect("services start");
    let pids = services.pids();
    // dnsmasq and exim on ok and novip, four socats on ok.
    assert_eq!(pids.len(), 8, "{pids:?}");
    let ok = pids_in(&lab, lab.ns(Host::Ok));
    let novip = pids_in(&lab, lab.ns(Host::NoVip));
    assert_eq!(
        pids.iter().filter(|p| ok.contains(p)).count(),
        6,
        "{pids:?} {ok:?}"
    );
    assert_eq!(
        pids.iter().filter(|p| novip.contains(p)).count(),
        2,
        "{pids:?} {novip:?}"
    );
    assert!(pids_in(&lab, lab.ns(Host::Closed)).is_empty());
    // Forgotten guard: the lab's drop still ends every process.
    std::mem::forget(services);
    drop(lab);
    for &pid in &pids {
        assert!(!alive(pid), "service process {pid} still runs");
    }
}
