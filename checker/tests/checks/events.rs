//! Interface events, in real labs: the LB's eth0 goes down and up, its MTU
//! changes, it is deleted and made again (a new interface: a new index),
//! its XDP program is detached, while a one-shot check is in flight and
//! under the daemon. A check in flight ends within its -t with a reason
//! that names the interface; the daemon recovers (the port of an interface
//! made again is opened anew and the program attached again) and says so
//! in its log; of a deleted interface nothing lingers (program, maps,
//! flows), and `vipcheck xdp status` on the new one is clean.

// unsafe: signals sent to the checks under test.
#![allow(unsafe_code)]

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use xtask::lab::{Background, PREFIX_LEN, PREFIX6_LEN};

/// The one-shot checks' -t: long enough to be in flight at the event.
const TIMEOUT_MS: u64 = 3000;
const POLL: Duration = Duration::from_millis(25);
/// Where the daemon of these tests serves /metrics, in the LB's namespace.
const METRICS_ADDR: &str = "127.0.0.1:9187";

fn ip(lab: &Lab, ns: &str, args: &[&str]) {
    sh(lab, ns, "ip", args);
}

/// The index of the LB's eth0.
fn ifindex(lab: &Lab) -> u32 {
    let out = sh(
        lab,
        lab.lb_ns(),
        "ip",
        &["-o", "link", "show", "dev", LB_IFACE],
    );
    out.split(':')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no index in {out:?}"))
}

fn delete_eth0(lab: &Lab) {
    ip(lab, lab.lb_ns(), &["link", "del", "dev", LB_IFACE]);
}

/// Makes the LB's eth0 again as the lab made it: a veth whose peer `p-lb`
/// is a port of the bridge, with the same MAC and addresses. A new
/// interface, with a new index. (Deleting eth0 deleted its peer too.)
fn recreate_eth0(lab: &Lab) {
    let mac = lab.mac(Host::Lb);
    ip(
        lab,
        lab.switch_ns(),
        &[
            "link",
            "add",
            "p-lb",
            "type",
            "veth",
            "peer",
            "name",
            LB_IFACE,
            "address",
            &mac,
            "netns",
            lab.lb_ns(),
        ],
    );
    ip(
        lab,
        lab.switch_ns(),
        &["link", "set", "p-lb", "master", "br0", "up"],
    );
    let lb = lab.lb_ns();
    ip(lab, lb, &["link", "set", LB_IFACE, "up"]);
    let v4 = format!("{LB_IP}/{PREFIX_LEN}");
    ip(lab, lb, &["address", "add", &v4, "dev", LB_IFACE]);
    let v6 = format!("{}/{PREFIX6_LEN}", Host::Lb.ip6());
    ip(lab, lb, &["address", "add", &v6, "dev", LB_IFACE, "nodad"]);
}

/// What `vipcheck xdp status eth0` says.
#[derive(Debug)]
struct Status {
    /// vipcheck's program attached, by id.
    program: Option<u32>,
    /// Its maps' ids.
    maps: Vec<u32>,
    /// The flow lines (`VIP:80 > LB:PORT (slot N, pid P)`).
    flows: Vec<String>,
    text: String,
}

fn status(lab: &Lab) -> Status {
    let out = run(vipcheck(lab, &["xdp", "status", LB_IFACE]));
    assert_eq!(out.code, 0, "xdp status: {out:?}");
    let text = out.stdout;
    let first = text.lines().next().unwrap_or_default();
    let words: Vec<&str> = first.split_whitespace().collect();
    let program = words
        .windows(2)
        .find(|w| w[0] == "program")
        .and_then(|w| w[1].parse().ok());
    let maps = first
        .split("(maps ")
        .nth(1)
        .unwrap_or_default()
        .trim_end_matches(')')
        .split(", ")
        .filter_map(|m| m.split_whitespace().nth(2)?.parse().ok())
        .collect();
    let flows = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("flows:"))
        .skip(1)
        .map(|l| l.trim().to_owned())
        .collect();
    Status {
        program,
        maps,
        flows,
        text,
    }
}

/// `vipcheck xdp attach eth0` (the checks in flight below are warm, so
/// that their time is their own); what `xdp status` then says.
fn attach(lab: &Lab) -> Status {
    let out = run(vipcheck(lab, &["xdp", "attach", LB_IFACE]));
    assert_eq!(out.code, 0, "xdp attach: {out:?}");
    let status = status(lab);
    assert!(status.program.is_some(), "{status:?}");
    assert_eq!(status.maps.len(), 5, "{status:?}");
    status
}

/// Whether the kernel still has the BPF `kind` ("prog" or "map") `id`
/// (ids are global: asked from the root namespace).
fn bpf_exists(kind: &str, id: u32) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("bpftool")
        .success()
}

/// Waits until the kernel has freed every BPF object of `ids` (freeing is
/// deferred past an RCU grace period); the ones still there after
/// `timeout`.
fn wait_freed(kind: &str, ids: &[u32], timeout: Duration) -> Vec<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let left: Vec<u32> = ids
            .iter()
            .copied()
            .filter(|&id| bpf_exists(kind, id))
            .collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(POLL);
    }
}

/// Polls `f` every [`POLL`] until it returns `Some`, at most `timeout`.
fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(t) = f() {
            return Some(t);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// A one-shot `vipcheck tcp -t 3000 eth0 NOVIP VIP 80` in the background:
/// novip lacks the VIP, so its SYN gets no answer and the check is in
/// flight (retransmitting) for its whole -t. Killed by its pid if the test
/// ends first.
struct InFlight<'lab> {
    process: Background<'lab>,
    started: Instant,
}

impl<'lab> InFlight<'lab> {
    /// Starts the check and returns once its TCP flow is registered with
    /// the XDP program (its ARP exchange is over, its SYN sent).
    fn start(lab: &'lab Lab) -> InFlight<'lab> {
        let (rs, vip) = (NOVIP_IP.to_string(), VIP.to_string());
        let timeout = TIMEOUT_MS.to_string();
        let mut cmd = vipcheck(lab, &["tcp", "-t", &timeout, LB_IFACE, &rs, &vip, "80"]);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let check = InFlight {
            process: lab.spawn(&mut cmd).expect("start vipcheck tcp"),
            started,
        };
        let flow = format!("{VIP}:80 > ");
        let registered = poll(Duration::from_millis(TIMEOUT_MS / 2), || {
            let status = status(lab);
            status
                .flows
                .iter()
                .any(|f| f.starts_with(&flow))
                .then_some(())
        });
        assert!(registered.is_some(), "the check's flow never showed");
        check
    }

    /// Waits for the check's end: how it ended, and when. It must end by
    /// its -t (plus 2 s for a slow machine); past that it hangs: killed,
    /// and the test fails.
    fn finish(mut self) -> (Run, Instant) {
        let bound = Duration::from_millis(TIMEOUT_MS) + Duration::from_secs(2);
        let child = self.process.child();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                self.started.elapsed() < bound,
                "the check still runs {:?} after its start (-t {TIMEOUT_MS}): it hangs",
                self.started.elapsed()
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        let ended = Instant::now();
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
            elapsed: ended - self.started,
        };
        (run, ended)
    }
}

/// The bound every one-shot check below must keep: its -t, plus what a
/// process in the debug build takes to start and end (nsenter, the
/// runtime; measured 10-60 ms, given 500).
fn within_timeout(run: &Run) {
    assert!(
        run.elapsed < Duration::from_millis(TIMEOUT_MS + 500),
        "took {:?} with -t {TIMEOUT_MS}: {run:?}",
        run.elapsed
    );
}

#[test]
fn a_check_in_flight_when_its_interface_goes_down_fails_and_names_it() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let before = attach(&lab);

    let check = InFlight::start(&lab);
    ip(&lab, lab.lb_ns(), &["link", "set", LB_IFACE, "down"]);
    let down = Instant::now();
    let (out, ended) = check.finish();
    assert_eq!(out.code, 3, "{out:?}");
    assert_one_clean_line(&out.stderr);
    assert!(out.stderr.starts_with("vipcheck: eth0 is down"), "{out:?}");
    within_timeout(&out);
    let after_down = ended - down;
    // Its flow entry went with it.
    let left = status(&lab);
    assert!(left.flows.is_empty(), "{left:?}");

    // Up again: the program stayed (attached to the interface, which is
    // the same one), and the next check is warm.
    ip(&lab, lab.lb_ns(), &["link", "set", LB_IFACE, "up"]);
    let again = tcp(&lab, OK_IP, &["-t", "1000"]);
    assert_eq!(again.code, 0, "{again:?}");
    assert!(!again.stdout.contains("attach"), "{again:?}");
    assert_eq!(status(&lab).program, before.program);
    println!(
        "down: the check in flight ended {after_down:?} after eth0 went down, \
         {:?} after its start (-t {TIMEOUT_MS}); test {:?}",
        out.elapsed,
        test_start.elapsed()
    );
}

#[test]
fn a_check_in_flight_when_its_interface_is_deleted_fails_and_leaves_nothing() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let before = attach(&lab);
    let old_index = ifindex(&lab);

    let check = InFlight::start(&lab);
    delete_eth0(&lab);
    let deleted = Instant::now();
    let (out, ended) = check.finish();
    assert_eq!(out.code, 3, "{out:?}");
    assert_one_clean_line(&out.stderr);
    assert!(out.stderr.starts_with("vipcheck: eth0 is gone"), "{out:?}");
    within_timeout(&out);
    let after_delete = ended - deleted;

    // Nothing lingers: the program went with the interface, its maps with
    // the last process holding them (vipcheck pins nothing).
    let program = before.program.unwrap();
    assert_eq!(
        wait_freed("prog", &[program], Duration::from_secs(3)),
        Vec::<u32>::new(),
        "the program of the deleted eth0 lingers"
    );
    assert_eq!(
        wait_freed("map", &before.maps, Duration::from_secs(3)),
        Vec::<u32>::new(),
        "maps of the deleted eth0 linger"
    );
    let gone = run(vipcheck(&lab, &["xdp", "status", LB_IFACE]));
    assert_eq!(gone.code, 3, "{gone:?}");
    assert!(
        gone.stderr.contains("no interface named \"eth0\""),
        "{gone:?}"
    );

    // Made again: a clean interface, which the next check attaches to.
    recreate_eth0(&lab);
    let new_index = ifindex(&lab);
    assert_ne!(new_index, old_index, "the kernel reused the index");
    let clean = status(&lab);
    assert!(
        clean
            .text
            .contains("eth0: no vipcheck XDP program attached"),
        "{clean:?}"
    );
    assert_eq!(clean.program, None, "{clean:?}");
    let cold = tcp(&lab, OK_IP, &["-t", "1000"]);
    assert_eq!(cold.code, 0, "{cold:?}");
    assert!(
        cold.stdout.contains("ms to attach the capture program)"),
        "{cold:?}"
    );
    let after = status(&lab);
    assert!(
        after.program.is_some() && after.program != before.program,
        "{after:?}"
    );
    assert!(after.flows.is_empty(), "{after:?}");
    println!(
        "delete: the check in flight ended {after_delete:?} after eth0 was deleted, \
         {:?} after its start (-t {TIMEOUT_MS}); eth0 index {old_index} -> {new_index}; test {:?}",
        out.elapsed,
        test_start.elapsed()
    );
}

#[test]
fn an_mtu_change_under_a_check_in_flight_changes_nothing_else() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let before = attach(&lab);

    let check = InFlight::start(&lab);
    ip(&lab, lab.lb_ns(), &["link", "set", LB_IFACE, "mtu", "1280"]);
    let (out, _) = check.finish();
    // The verdict it would have had anyway: novip lacks the VIP.
    assert_eq!(out.code, 1, "{out:?}");
    assert_one_clean_line(&out.stdout);
    assert!(
        out.stdout.contains(&format!(
            "no answer within {} ms (-t {TIMEOUT_MS} less 30 ms to end in time)",
            TIMEOUT_MS - 30
        )),
        "{out:?}"
    );
    within_timeout(&out);
    // The program stays (skb mode minds no MTU), and a check at the new
    // MTU fetches 20 KiB through it.
    let after = status(&lab);
    assert_eq!(after.program, before.program, "{after:?}");
    assert!(after.flows.is_empty(), "{after:?}");
    let fetched = http(&lab, OK_IP, 80, "/20k.bin", &["-t", "2000"]);
    assert_eq!(fetched.code, 0, "{fetched:?}");
    assert!(
        fetched.stdout.contains("200 OK, 20480 body bytes"),
        "{fetched:?}"
    );
    assert!(!fetched.stdout.contains("attach"), "{fetched:?}");
    println!(
        "mtu: the check in flight took {:?} (-t {TIMEOUT_MS}); test {:?}",
        out.elapsed,
        test_start.elapsed()
    );
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vck-events-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// `vipcheck daemon` in the LB's namespace, its stderr in a file; stopped
/// by its pid when dropped (SIGTERM, then SIGKILL).
struct Daemon<'lab> {
    process: Background<'lab>,
    log: PathBuf,
}

impl Daemon<'_> {
    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits at most `timeout` for the log to hold `count` lines
    /// containing `pattern`; the last of them.
    fn wait_lines(&self, pattern: &str, count: usize, timeout: Duration) -> String {
        poll(timeout, || {
            let log = self.log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains(pattern)).collect();
            (lines.len() >= count).then(|| lines[count - 1].to_owned())
        })
        .unwrap_or_else(|| {
            panic!(
                "not {count} lines with {pattern:?} within {timeout:?}; log:\n{}",
                self.log()
            )
        })
    }

    fn count(&self, pattern: &str) -> usize {
        self.log().lines().filter(|l| l.contains(pattern)).count()
    }
}

/// The daemon's healthy TCP checks so far, from /metrics.
fn healthy_checks(lab: &Lab) -> f64 {
    let out = lab
        .command(lab.lb_ns(), "curl")
        .args(["-sS", "--fail", "-m", "2"])
        .arg(format!("http://{METRICS_ADDR}/metrics"))
        .output()
        .expect("curl");
    assert!(out.status.success(), "metrics: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| {
            l.strip_prefix("vipcheck_checks_total{check=\"tcp\",result=\"healthy\"} ")?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[test]
fn the_daemon_rides_out_interface_events_and_says_so() {
    rides_out("xdp", "XDP (skb mode)", "XDP");
}

/// The same at TC ingress (`--capture tc`): the TC program detached by
/// someone else, the interface made again.
#[test]
fn the_daemon_rides_out_interface_events_at_tc_ingress() {
    rides_out("tc", "TC ingress", "TC");
}

/// The daemon through MTU changes, down/up, its interface deleted and made
/// again, its program detached under it; `capture`: its `--capture`,
/// `hook`: how vipcheck names that hook, `short`: in "the XDP program".
fn rides_out(capture: &str, hook: &str, short: &str) {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let scratch = Scratch::new(&format!("daemon-{capture}"));
    let targets = scratch.0.join("targets.toml");
    fs::write(
        &targets,
        format!(
            "[defaults]\niface = \"{LB_IFACE}\"\ntimeout_ms = 300\ninterval_ms = 300\n\
             check = \"tcp\"\n\n[[vip]]\naddress = \"{VIP}\"\nport = 80\n\n\
             [[vip.real_server]]\naddress = \"{OK_IP}\"\n"
        ),
    )
    .unwrap();
    let log = scratch.0.join("daemon.log");
    let mut cmd = vipcheck(
        &lab,
        &[
            "daemon",
            "--targets",
            targets.to_str().unwrap(),
            "--metrics",
            METRICS_ADDR,
            "--rise",
            "2",
            "--fall",
            "2",
            "--capture",
            capture,
        ],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap());
    // nsenter execs vipcheck: the pid is the daemon's own.
    let mut daemon = Daemon {
        process: lab.spawn(&mut cmd).expect("start vipcheck daemon"),
        log,
    };
    let pid = daemon.process.pid();
    const UP: &str = "(tcp) is up";
    const DOWN: &str = "(tcp) is down";
    let wait = Duration::from_secs(5);
    daemon.wait_lines("(tcp) is up (first check): SYN-ACK", 1, wait);
    let first = status(&lab);
    assert!(first.program.is_some(), "{first:?}");
    let mut timeline = vec![format!("up {:?}", test_start.elapsed())];

    // MTU 1280 for 1.5 s (5 intervals): checks go on passing, the program
    // stays.
    let healthy = healthy_checks(&lab);
    ip(&lab, lab.lb_ns(), &["link", "set", LB_IFACE, "mtu", "1280"]);
    std::thread::sleep(Duration::from_millis(1500));
    let passed = healthy_checks(&lab) - healthy;
    assert!(passed >= 3.0, "{passed} checks passed at MTU 1280");
    ip(&lab, lab.lb_ns(), &["link", "set", LB_IFACE, "mtu", "1500"]);
    assert_eq!(daemon.count(DOWN), 0, "{}", daemon.log());
    assert_eq!(status(&lab).program, first.program);

    // Down: the target goes down, saying why; up: it comes back, on the
    // same program.
    ip(&lab, lab.lb_ns(), &["link", "set", LB_IFACE, "down"]);
    let line = daemon.wait_lines(DOWN, 1, wait);
    assert!(line.contains("after 2 failures: eth0 is down"), "{line}");
    ip(&lab, lab.lb_ns(), &["link", "set", LB_IFACE, "up"]);
    daemon.wait_lines(UP, 2, wait);
    assert_eq!(status(&lab).program, first.program);
    timeline.push(format!("down/up {:?}", test_start.elapsed()));

    // Deleted: down, and the daemon closes its port of the gone eth0;
    // nothing of it lingers although the daemon runs on.
    let old_index = ifindex(&lab);
    delete_eth0(&lab);
    let deleted = Instant::now();
    daemon.wait_lines(DOWN, 2, wait);
    let closed = daemon.wait_lines("eth0 is gone: its port is closed", 1, wait);
    assert!(
        closed.starts_with("vipcheck daemon: eth0 is gone: its port is closed"),
        "{closed}"
    );
    let program = first.program.unwrap();
    assert_eq!(
        wait_freed("prog", &[program], Duration::from_secs(3)),
        Vec::<u32>::new(),
        "the program of the deleted eth0 lingers"
    );
    assert_eq!(
        wait_freed("map", &first.maps, Duration::from_secs(3)),
        Vec::<u32>::new(),
        "the daemon holds maps of the deleted eth0"
    );
    timeline.push(format!("gone, freed {:?}", deleted.elapsed()));

    // Made again: the daemon attaches the program to the new eth0 and
    // says so; the target comes back up.
    recreate_eth0(&lab);
    let recreated = Instant::now();
    let new_index = ifindex(&lab);
    assert_ne!(new_index, old_index, "the kernel reused the index");
    daemon.wait_lines(UP, 3, wait);
    let back = daemon.wait_lines("eth0 is back", 1, wait);
    assert!(
        back.starts_with(&format!(
            "vipcheck daemon: eth0 is back (index {new_index}, was {old_index}): \
             capture program attached again at {hook} (id "
        )),
        "{back}"
    );
    timeline.push(format!("back up {:?}", recreated.elapsed()));
    let now = status(&lab);
    assert!(
        now.program.is_some() && now.program != first.program,
        "{now:?}"
    );
    let own = format!("pid {pid})");
    assert!(
        now.flows.iter().all(|f| f.ends_with(&own)),
        "flows of another process on the new eth0: {now:?}"
    );

    // Its program detached under it: closed, attached again, up again.
    let downs = daemon.count(DOWN);
    let ups = daemon.count(UP);
    let detach = run(vipcheck(&lab, &["xdp", "detach", LB_IFACE]));
    assert_eq!(detach.code, 0, "{detach:?}");
    let detached = Instant::now();
    daemon.wait_lines(
        &format!("the {short} program of eth0 was detached or replaced"),
        1,
        wait,
    );
    daemon.wait_lines(
        &format!("eth0: its port is open again: capture program attached again at {hook}"),
        1,
        wait,
    );
    if daemon.count(DOWN) > downs {
        daemon.wait_lines(UP, ups + 1, wait);
    }
    let last = daemon
        .log()
        .lines()
        .rfind(|l| l.contains(UP) || l.contains(DOWN))
        .map(str::to_owned);
    assert!(
        last.as_deref().is_some_and(|l| l.contains(UP)),
        "{}",
        daemon.log()
    );
    let attached = poll(wait, || {
        let s = status(&lab);
        s.program.filter(|p| Some(*p) != now.program)
    });
    assert!(attached.is_some(), "not attached again: {}", daemon.log());
    timeline.push(format!("detached, attached again {:?}", detached.elapsed()));

    // SIGTERM: ends at once, every flow removed.
    let child = daemon.process.child();
    // SAFETY: plain syscall; the pid is our unreaped child's.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) }, 0);
    let status_code = poll(Duration::from_secs(3), || child.try_wait().ok().flatten());
    let log = daemon.log();
    assert_eq!(status_code.and_then(|s| s.code()), Some(0), "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert_eq!(status(&lab).flows, Vec::<String>::new());
    println!(
        "daemon: {}; test {:?}\n{log}",
        timeline.join(", "),
        test_start.elapsed()
    );
}
