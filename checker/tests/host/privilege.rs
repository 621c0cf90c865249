//! What vipcheck needs of the kernel's privileges, found in real labs: each
//! command run with exactly the capabilities of the systemd unit
//! (xtask/dist/vipcheck.service: CAP_NET_RAW, CAP_NET_ADMIN, CAP_BPF,
//! CAP_PERFMON, CAP_SYS_ADMIN), with each one of them dropped, with only
//! the ones it needs, and with none; as root limited to them (the unit's
//! way: no User=, a bounding set) and as nobody holding them as ambient
//! capabilities (setpriv). The table of what each command needs is
//! [`NEEDS`]; a run that lacks one of them must exit 3 with one line that
//! names what failed, and one that has them must pass.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;

/// The unit's capabilities, as setpriv names them.
const UNIT: [&str; 5] = ["net_raw", "net_admin", "bpf", "perfmon", "sys_admin"];

/// Who runs vipcheck.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    /// uid 0 with only the given capabilities (its bounding set), as the
    /// systemd unit runs the daemon. It owns the lock file root's checks
    /// made in /run/vipcheck.
    Root,
    /// nobody/nogroup holding the given capabilities as ambient ones, in a
    /// mount namespace of its own whose /run is a tmpfs of nobody's: the
    /// lock file root's checks leave in the host's /run (mode 0600) would
    /// stop it before any capability matters (see
    /// [`nobody_and_the_lock_file_root_leaves`]).
    Nobody,
}

/// `-all,+cap,...` for setpriv.
fn caps_arg(caps: &[&str]) -> String {
    std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// setpriv's arguments that make nobody with exactly `caps`.
fn nobody_with(caps: &[&str]) -> Vec<String> {
    let caps = caps_arg(caps);
    vec![
        "setpriv".into(),
        "--reuid=65534".into(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        format!("--inh-caps={caps}"),
        format!("--ambient-caps={caps}"),
        format!("--bounding-set={caps}"),
    ]
}

/// `vipcheck ARGS` in the LB's namespace, run by `who` with exactly `caps`.
fn as_who(lab: &Lab, who: Who, caps: &[&str], args: &[&str]) -> Command {
    let mut cmd = match who {
        Who::Root => {
            let mut cmd = lab.command(lab.lb_ns(), "setpriv");
            cmd.arg(format!("--bounding-set={}", caps_arg(caps)));
            cmd
        }
        Who::Nobody => {
            // unshare and sh exec: the pid is vipcheck's.
            let mut cmd = lab.command(lab.lb_ns(), "unshare");
            cmd.args([
                "--mount",
                "sh",
                "-c",
                "mount -t tmpfs -o mode=0755,uid=65534,gid=65534 vck-run /run && exec \"$@\"",
                "sh",
            ]);
            cmd.args(nobody_with(caps));
            cmd
        }
    };
    cmd.arg(VIPCHECK).args(args);
    cmd
}

/// How a command finds the interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Prep {
    /// vipcheck's program attached (by root).
    Warm,
    /// vipcheck's TC program attached (by root).
    WarmTc,
    /// No program attached.
    Cold,
}

/// A command, what it needs, and how it passes.
struct Case {
    name: &'static str,
    prep: Prep,
    args: &'static [&'static str],
    /// The capabilities it needs, all of them: found by running it.
    needs: &'static [&'static str],
    /// What its one line on stdout holds when it passes.
    passed: &'static str,
}

const TCP: &[&str] = &["tcp", "eth0", "198.18.0.11", "198.18.0.100", "80"];

/// What each command needs (Linux 6.18). CAP_BPF and CAP_PERFMON are
/// never needed: CAP_SYS_ADMIN, which opening the attached program and
/// its maps by id requires (BPF_PROG_GET_FD_BY_ID, BPF_MAP_GET_FD_BY_ID),
/// grants what they grant (loading, creating maps, the verifier's
/// pointer rules). CAP_NET_ADMIN is for the netlink attach and detach
/// only: tcx's attach and detach (BPF_PROG_ATTACH/DETACH) take
/// CAP_NET_ADMIN or CAP_SYS_ADMIN, so at TC ingress CAP_SYS_ADMIN does.
/// CAP_NET_RAW is for the AF_PACKET socket only.
const NEEDS: &[Case] = &[
    Case {
        name: "warm check",
        prep: Prep::Warm,
        args: TCP,
        needs: &["net_raw", "sys_admin"],
        passed: "OK: tcp 198.18.0.100:80 via 198.18.0.11: SYN-ACK (",
    },
    Case {
        name: "cold check",
        prep: Prep::Cold,
        args: TCP,
        needs: &["net_raw", "net_admin", "sys_admin"],
        passed: "ms to attach the capture program)",
    },
    Case {
        name: "xdp status",
        prep: Prep::Warm,
        args: &["xdp", "status", "eth0"],
        needs: &["sys_admin"],
        passed: "eth0: vipcheck XDP program ",
    },
    Case {
        name: "xdp attach",
        prep: Prep::Cold,
        args: &["xdp", "attach", "eth0"],
        needs: &["net_admin", "sys_admin"],
        passed: "eth0: vipcheck XDP program ",
    },
    Case {
        name: "xdp detach",
        prep: Prep::Warm,
        args: &["xdp", "detach", "eth0"],
        needs: &["net_admin", "sys_admin"],
        passed: "eth0: vipcheck XDP program detached",
    },
    Case {
        name: "cold check at tc",
        prep: Prep::Cold,
        args: &[
            "tcp",
            "--capture",
            "tc",
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "80",
        ],
        // The tcx attach takes CAP_NET_ADMIN or CAP_SYS_ADMIN.
        needs: &["net_raw", "sys_admin"],
        passed: "ms to attach the capture program)",
    },
    Case {
        name: "warm check at tc",
        prep: Prep::WarmTc,
        args: TCP,
        needs: &["net_raw", "sys_admin"],
        passed: "OK: tcp 198.18.0.100:80 via 198.18.0.11: SYN-ACK (",
    },
    Case {
        name: "xdp detach at tc",
        prep: Prep::WarmTc,
        args: &["xdp", "detach", "eth0"],
        needs: &["sys_admin"],
        passed: "eth0: vipcheck TC program detached",
    },
    Case {
        name: "check --xdp off",
        prep: Prep::Cold,
        args: &[
            "tcp",
            "--xdp",
            "off",
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "80",
        ],
        needs: &["net_raw"],
        passed: "OK: tcp 198.18.0.100:80 via 198.18.0.11: SYN-ACK (",
    },
];

/// What a run that lacks `cap` says failed (today's wording: the
/// operation, and the kernel's EPERM).
fn failure(case: &Case, cap: &str) -> &'static str {
    match cap {
        "net_raw" => "opening an AF_PACKET socket failed: Operation not permitted",
        "sys_admin" if case.name.ends_with("at tc") => {
            "opening a program at TC ingress failed: Operation not permitted"
        }
        "sys_admin" => "opening the attached XDP program failed: Operation not permitted",
        "net_admin" if case.name == "xdp detach" => {
            "detaching the XDP program failed: Operation not permitted"
        }
        "net_admin" => "attaching the XDP program failed: Operation not permitted",
        _ => unreachable!("{cap} is never needed"),
    }
}

fn prepare(lab: &Lab, prep: Prep) {
    let out = run(vipcheck(lab, &["xdp", "detach", LB_IFACE]));
    assert_eq!(out.code, 0, "xdp detach: {out:?}");
    let capture = match prep {
        Prep::Warm => "xdp",
        Prep::WarmTc => "tc",
        Prep::Cold => return,
    };
    let out = run(vipcheck(
        lab,
        &["xdp", "attach", "--capture", capture, LB_IFACE],
    ));
    assert_eq!(out.code, 0, "xdp attach --capture {capture}: {out:?}");
}

/// One run of the matrix.
struct Outcome {
    case: &'static str,
    caps: String,
    run: Run,
}

/// Runs every case of [`NEEDS`] as `who`: with the unit's five, with each
/// of them dropped, with only what the case needs, with none. Returns the
/// outcomes (printed as a table) and what did not match the table.
fn matrix(lab: &Lab, who: Who) -> (Vec<Outcome>, Vec<String>) {
    let mut outcomes = Vec::new();
    let mut wrong = Vec::new();
    for case in NEEDS {
        let mut sets: Vec<(String, Vec<&str>)> = vec![("the unit's five".into(), UNIT.to_vec())];
        for drop in UNIT {
            let caps = UNIT.iter().copied().filter(|c| *c != drop).collect();
            sets.push((format!("all but {drop}"), caps));
        }
        sets.push((
            format!("only {}", case.needs.join("+")),
            case.needs.to_vec(),
        ));
        sets.push(("none".into(), Vec::new()));
        for (label, caps) in sets {
            prepare(lab, case.prep);
            let out = run(as_who(lab, who, &caps, case.args));
            let missing = case.needs.iter().find(|c| !caps.contains(c));
            let ok = match missing {
                None => out.code == 0 && out.stdout.contains(case.passed),
                Some(cap) => {
                    out.code == 3
                        && out.stderr.trim_end().lines().count() == 1
                        && out.stderr.starts_with("vipcheck: ")
                        && (caps.is_empty() || out.stderr.contains(failure(case, cap)))
                }
            };
            if !ok {
                wrong.push(format!(
                    "{who:?} {} with {label}: expected {}, got {out:?}",
                    case.name,
                    match missing {
                        None => "a pass".to_string(),
                        Some(cap) => format!("exit 3 for want of {cap}"),
                    }
                ));
            }
            outcomes.push(Outcome {
                case: case.name,
                caps: label,
                run: out,
            });
        }
    }
    // No failed run left a flow behind.
    prepare(lab, Prep::Warm);
    let (_, flows) = xdp_status(lab);
    assert_eq!(flows, 0, "flows left");
    (outcomes, wrong)
}

fn print_table(who: Who, outcomes: &[Outcome]) {
    let mut table = format!("{who:?}:\n");
    for o in outcomes {
        let said = if o.run.code == 0 {
            o.run.stdout.trim_end()
        } else {
            o.run.stderr.trim_end()
        };
        table += &format!(
            "  {:<16} {:<24} exit {}  {}\n",
            o.case,
            o.caps,
            o.run.code,
            said.chars().take(150).collect::<String>()
        );
    }
    println!("{table}");
}

fn check_matrix(who: Who) {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let (outcomes, wrong) = matrix(&lab, who);
    print_table(who, &outcomes);
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    println!(
        "{who:?}: {} runs, test {:?}",
        outcomes.len(),
        test_start.elapsed()
    );
}

#[test]
fn root_needs_only_net_raw_net_admin_and_sys_admin() {
    check_matrix(Who::Root);
}

#[test]
fn nobody_needs_only_net_raw_net_admin_and_sys_admin() {
    check_matrix(Who::Nobody);
}

/// The run that lacks one capability says which (the error's
/// "vipcheck needs root (...)" names CAP_NET_RAW, CAP_NET_ADMIN and
/// CAP_BPF, whatever failed: not CAP_SYS_ADMIN when that is missing, and
/// the netlink attach and detach failing for want of CAP_NET_ADMIN are not
/// said to be privilege errors at all).
#[test]
fn a_missing_capability_is_named() {
    let lab = lab(Role::Backup);
    let mut unnamed = Vec::new();
    for case in NEEDS {
        for cap in case.needs {
            let caps: Vec<&str> = UNIT.iter().copied().filter(|c| c != cap).collect();
            prepare(&lab, case.prep);
            let out = run(as_who(&lab, Who::Root, &caps, case.args));
            let name = format!("CAP_{}", cap.to_uppercase());
            if out.code != 3 || !out.stderr.contains(&name) {
                unnamed.push(format!(
                    "{} without {name}: {}",
                    case.name,
                    out.stderr.trim_end()
                ));
            }
        }
    }
    assert!(unnamed.is_empty(), "\n{}", unnamed.join("\n"));
}

/// A scratch directory (readable by nobody), removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("vck-priv-{}-{name}", std::process::id()));
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

/// The first state line of a daemon run by `who` with `caps`, on a cold
/// or warm interface; it is stopped (by its pid) once it has said it.
fn daemon_first_state(lab: &Lab, scratch: &Scratch, who: Who, caps: &[&str], prep: Prep) -> String {
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
    prepare(lab, prep);
    let mut cmd = as_who(
        lab,
        who,
        caps,
        &["daemon", "--targets", targets.to_str().unwrap()],
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap());
    let daemon = lab.spawn(&mut cmd).expect("start vipcheck daemon");
    let deadline = Instant::now() + Duration::from_secs(5);
    let line = loop {
        let text = fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .find(|l| l.contains("(first check)") || l.contains("cannot check here"))
        {
            break line.to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "no first check within 5 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(25));
    };
    // A daemon that can check goes on (and stops on SIGTERM with 0); one
    // that cannot stops by itself with 3 rather than report every target
    // down.
    let status = daemon.stop().expect("stop the daemon");
    let expected = if line.contains("cannot check here") {
        3
    } else {
        0
    };
    assert_eq!(status.code(), Some(expected), "{status:?}: {line}");
    line
}

#[test]
fn the_daemon_needs_what_a_cold_check_needs() {
    let test_start = Instant::now();
    let lab = lab(Role::Backup);
    let scratch = Scratch::new("daemon");
    let minimal = ["net_raw", "net_admin", "sys_admin"];
    let mut table = String::new();
    for who in [Who::Root, Who::Nobody] {
        for prep in [Prep::Cold, Prep::Warm] {
            let line = daemon_first_state(&lab, &scratch, who, &minimal, prep);
            assert!(
                line.contains("(tcp) is up (first check): SYN-ACK"),
                "{who:?} {prep:?}: {line}"
            );
            table += &format!("  {who:?} {prep:?} {minimal:?}: {line}\n");
        }
        // Warm, it only checks: no CAP_NET_ADMIN (until it must attach
        // again: an interface made again, see the events tests).
        let warm = ["net_raw", "sys_admin"];
        let line = daemon_first_state(&lab, &scratch, who, &warm, Prep::Warm);
        assert!(
            line.contains("(tcp) is up (first check): SYN-ACK"),
            "{who:?}: {line}"
        );
        table += &format!("  {who:?} Warm {warm:?}: {line}\n");
        for cap in minimal {
            let caps: Vec<&str> = minimal.iter().copied().filter(|c| *c != cap).collect();
            let line = daemon_first_state(&lab, &scratch, who, &caps, Prep::Cold);
            // Without CAP_SYS_ADMIN (and without CAP_BPF, which the
            // minimal set lacks) the load fails first.
            let said = match cap {
                "sys_admin" => "creating BPF maps failed: Operation not permitted",
                cap => failure(&NEEDS[1], cap),
            };
            assert!(
                line.contains("cannot check here: ") && line.contains(said),
                "{who:?} without {cap}: {line}"
            );
            table += &format!("  {who:?} Cold {caps:?}: {line}\n");
        }
    }
    println!("{table}test {:?}", test_start.elapsed());
}

/// keepalived runs its scripts with umask 0177: the first check of a boot
/// made there still leaves /run/vipcheck enterable (0755), else the
/// daemon's unit, root without CAP_DAC_OVERRIDE, could not open the lock.
#[test]
fn the_lock_directory_is_0755_under_keepalived_umask() {
    let lab = lab(Role::Backup);
    let mut cmd = lab.command(lab.lb_ns(), "unshare");
    cmd.args([
        "--mount",
        "sh",
        "-c",
        "mount -t tmpfs -o mode=0755 vck-run /run && umask 0177 && \
         \"$0\" tcp eth0 198.18.0.11 198.18.0.100 80 >/dev/null && \
         stat -c %a /run/vipcheck /run/vipcheck/lock",
        VIPCHECK,
    ]);
    let out = run(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "755\n600\n", "{out:?}");
}

/// The lock file a root check leaves (`/run/vipcheck/lock`, root's, mode
/// 0600) stops nobody whatever its capabilities: every check and `xdp
/// attach`/`detach` take it, and opening it fails with EACCES, said as a
/// privilege error; `xdp status` takes no lock. Where /run has no
/// /run/vipcheck and nobody cannot make it, checks go on without the lock.
/// Each case in a mount namespace of its own with a fresh /run.
#[test]
fn nobody_and_the_lock_file_root_leaves() {
    let lab = lab(Role::Backup);
    // Root's check makes /run/vipcheck/lock in the fresh /run, as on a
    // host (and attaches the program; `cold`: root detaches it again);
    // then nobody with `caps` runs `args`.
    let after_root = |cold: bool, caps: &[&str], args: &[&str]| {
        let script = format!(
            "mount -t tmpfs -o mode=0755 vck-run /run && \
             \"$0\" tcp eth0 198.18.0.11 198.18.0.100 80 >/dev/null && {}\
             ls -l /run/vipcheck/lock >&2 && exec \"$@\"",
            if cold {
                "\"$0\" xdp detach eth0 >/dev/null && "
            } else {
                ""
            }
        );
        let mut cmd = lab.command(lab.lb_ns(), "unshare");
        cmd.args(["--mount", "sh", "-c", &script, VIPCHECK]);
        cmd.args(nobody_with(caps)).arg(VIPCHECK).args(args);
        run(cmd)
    };
    for args in [TCP, &["xdp", "detach", "eth0"][..]] {
        let out = after_root(false, &UNIT, args);
        assert_eq!(out.code, 3, "{args:?}: {out:?}");
        let mut lines = out.stderr.lines();
        let ls = lines.next().unwrap_or_default();
        assert!(ls.starts_with("-rw------- 1 root root"), "{out:?}");
        assert_eq!(
            lines.next().unwrap_or_default(),
            "vipcheck: opening /run/vipcheck/lock failed: Permission denied (os error 13); \
             it needs write access to /run/vipcheck/lock (root's, mode 0600) (run vipcheck as \
             root, or with CAP_NET_RAW, CAP_NET_ADMIN and CAP_SYS_ADMIN)",
            "{args:?}: {out:?}"
        );
    }
    // Cold: refused before anything is attached.
    let out = after_root(true, &UNIT, TCP);
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("opening /run/vipcheck/lock failed"),
        "{out:?}"
    );
    assert!(
        xdp_ids(&lab, LB_IFACE).is_empty(),
        "attached without the lock"
    );
    prepare(&lab, Prep::Warm);
    let status = after_root(false, &["sys_admin"], &["xdp", "status", "eth0"]);
    assert_eq!(status.code, 0, "{status:?}");

    // A fresh /run (root's, 0755) without /run/vipcheck: the user nobody
    // cannot make the lock file, goes on without it, and the check runs.
    let mut cmd = lab.command(lab.lb_ns(), "unshare");
    cmd.args([
        "--mount",
        "sh",
        "-c",
        "mount -t tmpfs -o mode=0755 vck-run /run && exec \"$@\"",
        "sh",
    ]);
    cmd.args(nobody_with(&["net_raw", "sys_admin"]))
        .arg(VIPCHECK)
        .args(TCP);
    let out = run(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("OK: "), "{out:?}");
}
