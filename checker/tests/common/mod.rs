//! Helpers of the lab tests: run vipcheck in a lab's LB namespace and read
//! what it and the XDP program report.

// unsafe: libc calls of the lab harness (signals, getrusage, kill).
#![allow(unsafe_code)]
#![allow(dead_code, unused_imports)] // each test binary uses its own subset

use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub use xtask::lab::{
    ABSENT_IP, CLOSED_IP, Host, LB_IFACE, LB_IP, Lab, NOVIP_IP, OK_IP, Role, VIP,
};

pub const VIPCHECK: &str = env!("CARGO_BIN_EXE_vipcheck");

/// A lab of `role`; these tests need root and fail (not skip) without it.
pub fn lab(role: Role) -> Lab {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(euid, 0, "the lab tests need root (network namespaces, XDP)");
    Lab::up(role).expect("lab up")
}

/// `vipcheck ARGS` in the LB namespace.
pub fn vipcheck(lab: &Lab, args: &[&str]) -> Command {
    let mut cmd = lab.command(lab.lb_ns(), VIPCHECK);
    cmd.args(args);
    cmd
}

/// The outcome of one run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

pub fn run(mut cmd: Command) -> Run {
    let start = Instant::now();
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run vipcheck");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

/// `vipcheck tcp [extra...] eth0 RS VIP 80`.
pub fn tcp(lab: &Lab, real_server: std::net::Ipv4Addr, extra: &[&str]) -> Run {
    let rs = real_server.to_string();
    let vip = VIP.to_string();
    let mut args = vec!["tcp"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[LB_IFACE, &rs, &vip, "80"]);
    run(vipcheck(lab, &args))
}

/// `vipcheck xdp status eth0` as (counter name → value, number of flows).
pub fn xdp_status(lab: &Lab) -> (Vec<(String, u64)>, usize) {
    let out = run(vipcheck(lab, &["xdp", "status", LB_IFACE]));
    assert_eq!(out.code, 0, "xdp status: {out:?}");
    let mut counters = Vec::new();
    let mut flows = None;
    for line in out.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["flows:", n] => flows = n.parse().ok(),
            [name, value] => {
                if let Ok(v) = value.parse() {
                    counters.push((name.to_string(), v));
                }
            }
            _ => {}
        }
    }
    (counters, flows.expect("flows line in xdp status"))
}

pub fn counter(counters: &[(String, u64)], name: &str) -> u64 {
    counters
        .iter()
        .find(|(n, _)| n == name)
        .map_or_else(|| panic!("no counter {name} in {counters:?}"), |(_, v)| *v)
}

/// Exactly one line, and no sign of a panic.
pub fn assert_one_clean_line(text: &str) {
    assert_eq!(text.trim_end().lines().count(), 1, "not one line: {text:?}");
    assert!(!text.contains("panicked"), "panic: {text}");
    assert!(!text.contains("RUST_BACKTRACE"), "backtrace: {text}");
}

/// Runs `program args` in namespace `ns` and returns its stdout; panics on failure.
pub fn sh(lab: &Lab, ns: &str, program: &str, args: &[&str]) -> String {
    let out = lab
        .command(ns, program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `cmd` and also returns its peak resident set size in KiB (from
/// wait4's rusage: the process itself, as nsenter execs it).
// Reaped by wait4 below, which std's Child cannot do (it needs the rusage).
pub fn run_measured(cmd: Command) -> (Run, u64) {
    let (run, usage) = run_usage(cmd);
    (run, usage.max_rss_kib)
}

/// What a process used, from wait4's rusage.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub max_rss_kib: u64,
    /// User plus system CPU time.
    pub cpu: Duration,
}

/// Runs `cmd` and returns what it used (see [`run_measured`]).
#[allow(clippy::zombie_processes)]
pub fn run_usage(mut cmd: Command) -> (Run, Usage) {
    use std::io::Read;
    let start = Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn vipcheck");
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
    let mut status = 0;
    // SAFETY: rusage is plain data; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, writing into valid locals.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (
        Run {
            code,
            stdout,
            stderr,
            elapsed: start.elapsed(),
        },
        Usage {
            max_rss_kib: usage.ru_maxrss as u64,
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
        },
    )
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
}

/// `vipcheck http [extra...] eth0 RS VIP PORT HOST PATH`.
pub fn http_args(
    real_server: std::net::Ipv4Addr,
    port: u16,
    path: &str,
    extra: &[&str],
) -> Vec<String> {
    let mut args: Vec<String> = vec!["http".into()];
    args.extend(extra.iter().map(std::string::ToString::to_string));
    args.extend([
        LB_IFACE.to_string(),
        real_server.to_string(),
        VIP.to_string(),
        port.to_string(),
        "lab.example".to_string(),
        path.to_string(),
    ]);
    args
}

pub fn http(
    lab: &Lab,
    real_server: std::net::Ipv4Addr,
    port: u16,
    path: &str,
    extra: &[&str],
) -> Run {
    let args = http_args(real_server, port, path, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(vipcheck(lab, &args))
}

/// Loads an nftables ruleset (`nft -f -`) in namespace `ns`.
pub fn nft(lab: &Lab, ns: &str, ruleset: &str) {
    use std::io::Write;
    let mut child = lab
        .command(ns, "nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ruleset.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft rejected:\n{ruleset}");
}

/// The packets counted by the one `counter` of an nftables chain in `ns`
/// (`family table chain`, as `nft list chain` takes them).
pub fn nft_packets(lab: &Lab, ns: &str, chain: [&str; 3]) -> u64 {
    let mut args = vec!["list", "chain"];
    args.extend(chain);
    let listing = sh(lab, ns, "nft", &args);
    let words: Vec<&str> = listing.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "packets")
        .expect("counter in nft listing");
    words[at + 1].parse().expect("packet count")
}

/// Which RSTs from the LB an [`RstCounter`] counts.
pub enum Rsts {
    /// Every segment with RST set.
    All,
    /// RSTs without ACK: a kernel's answer to a segment that has one.
    Bare,
}

/// Counts, in `ok`'s namespace (an nft counter at prerouting), the TCP
/// RSTs that the LB sends.
pub struct RstCounter<'a> {
    lab: &'a Lab,
}

impl<'a> RstCounter<'a> {
    pub fn install(lab: &'a Lab, which: Rsts) -> Self {
        let flags = match which {
            Rsts::All => "tcp flags & rst == rst",
            Rsts::Bare => "tcp flags & (rst | ack) == rst",
        };
        nft(
            lab,
            lab.ns(Host::Ok),
            &format!(
                "table ip vckrst {{\n chain in {{\n  type filter hook prerouting priority -300;\n  \
                 ip saddr {LB_IP} {flags} counter\n }}\n}}\n"
            ),
        );
        RstCounter { lab }
    }

    pub fn packets(&self) -> u64 {
        nft_packets(self.lab, self.lab.ns(Host::Ok), ["ip", "vckrst", "in"])
    }
}

/// `ip -d link show dev IFACE` in the LB namespace, word by word.
fn link_words(lab: &Lab, iface: &str) -> Vec<String> {
    sh(
        lab,
        lab.lb_ns(),
        "ip",
        &["-d", "link", "show", "dev", iface],
    )
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

/// The XDP program ids attached to `iface` in the LB namespace, as
/// `ip -d link show` lists them (`prog/xdp id N`).
pub fn xdp_ids(lab: &Lab, iface: &str) -> Vec<u32> {
    link_words(lab, iface)
        .windows(3)
        .filter(|w| w[0] == "prog/xdp" && w[1] == "id")
        .map(|w| w[2].parse().expect("program id"))
        .collect()
}

/// How a foreign XDP program is attached to the LB's eth0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// skb mode: `ip link set ... xdpgeneric`, xdp-tools' `-m skb`.
    Generic,
    /// Driver (native) mode: `ip link set ... xdpdrv`, `-m native`.
    Driver,
}

impl XdpMode {
    /// iproute2's keyword for the mode.
    pub fn ip_keyword(self) -> &'static str {
        match self {
            XdpMode::Generic => "xdpgeneric",
            XdpMode::Driver => "xdpdrv",
        }
    }

    /// xdp-tools' name of the mode (`-m`).
    pub fn xdp_tools(self) -> &'static str {
        match self {
            XdpMode::Generic => "skb",
            XdpMode::Driver => "native",
        }
    }
}

/// Which foreign XDP program [`ForeignXdp`] attaches, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Foreign {
    /// `r0 = XDP_PASS; exit` (named `vck_foreign`), loaded with bpf(2),
    /// pinned and attached by netlink with `ip link set ... pinned`.
    Pass(XdpMode),
    /// xdp-tools' `xdp-loader load -m MODE eth0 xdpfilt_alw_all.o` (the
    /// program of `xdp-filter load` with its default policy, which passes
    /// everything): libxdp puts it behind its dispatcher where the kernel
    /// can (freplace), else attaches it alone ("Falling back to loading
    /// single prog without dispatcher", as on these machines).
    Libxdp(XdpMode),
    /// libxdp's dispatcher itself (xdp-tools' `xdp-dispatcher.o`, no
    /// component: it passes everything), loaded and pinned with bpftool
    /// and attached by netlink (`ip link set ... pinned`), as libxdp
    /// attaches it where it can.
    Dispatcher(XdpMode),
}

impl Foreign {
    pub fn mode(self) -> XdpMode {
        match self {
            Foreign::Pass(mode) | Foreign::Libxdp(mode) | Foreign::Dispatcher(mode) => mode,
        }
    }
}

/// A file of xdp-tools' BPF objects (Debian: `/usr/lib/<triplet>/bpf/`).
pub fn xdp_tools_object(name: &str) -> std::path::PathBuf {
    let mut dirs = vec![std::path::PathBuf::from("/usr/lib/bpf")];
    for entry in std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
    {
        dirs.push(entry.path().join("bpf"));
    }
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
        .unwrap_or_else(|| panic!("no {name} of xdp-tools (cargo xtask setup installs it)"))
}

/// Where libxdp pins (its dispatchers' programs and components).
const LIBXDP_DIR: &str = "/sys/fs/bpf/xdp";

/// The XDP program attached to `iface` in the LB namespace, as
/// `ip -d link show` lists it (`prog/xdp id N name NAME`): (id, name).
pub fn xdp_attached(lab: &Lab, iface: &str) -> Option<(u32, String)> {
    link_words(lab, iface)
        .windows(5)
        .find(|w| w[0] == "prog/xdp" && w[1] == "id" && w[3] == "name")
        .map(|w| (w[2].parse().expect("program id"), w[4].clone()))
}

/// An XDP program that is not vipcheck's, attached to the LB's eth0 as
/// another tool would (see [`Foreign`]); detached (and unpinned) on drop,
/// also when the test fails.
pub struct ForeignXdp<'a> {
    lab: &'a Lab,
    pin: Option<std::path::PathBuf>,
    /// libxdp's directory on bpffs was made by this attach.
    libxdp_dir: bool,
    pub kind: Foreign,
    /// The id of the program attached to eth0 right after the attach.
    pub id: u32,
    /// Its name, as `ip -d link show` gives it.
    pub name: String,
}

impl<'a> ForeignXdp<'a> {
    /// [`Foreign::Pass`] in skb mode.
    pub fn attach(lab: &'a Lab) -> Self {
        Self::attach_kind(lab, Foreign::Pass(XdpMode::Generic))
    }

    pub fn attach_kind(lab: &'a Lab, kind: Foreign) -> Self {
        use std::os::fd::AsRawFd;
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);

        ensure_bpffs();
        let mode = kind.mode();
        // From here on, dropping `foreign` detaches what was attached.
        let mut foreign = ForeignXdp {
            lab,
            pin: None,
            // libxdp (xdp-loader) makes its directory on bpffs: removed on
            // drop when it was not there before (and is empty).
            libxdp_dir: matches!(kind, Foreign::Libxdp(_) | Foreign::Dispatcher(_))
                && !std::path::Path::new(LIBXDP_DIR).exists(),
            kind,
            id: 0,
            name: String::new(),
        };
        match kind {
            Foreign::Pass(_) | Foreign::Dispatcher(_) => {
                let pin = std::path::PathBuf::from(format!(
                    "/sys/fs/bpf/vck_foreign_{}_{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::Relaxed)
                ));
                if kind == Foreign::Pass(mode) {
                    let prog = bpf_sys::load_pass_program(c"vck_foreign").expect("BPF_PROG_LOAD");
                    bpf_sys::pin(prog.as_raw_fd(), &pin).expect("BPF_OBJ_PIN");
                } else {
                    // bpftool, not `ip link ... obj`: iproute2's loader
                    // leaves its own directories on bpffs.
                    let object = xdp_tools_object("xdp-dispatcher.o");
                    sh(
                        lab,
                        lab.lb_ns(),
                        "bpftool",
                        &[
                            "prog",
                            "load",
                            object.to_str().unwrap(),
                            pin.to_str().unwrap(),
                            "type",
                            "xdp",
                        ],
                    );
                }
                foreign.pin = Some(pin.clone());
                sh(
                    lab,
                    lab.lb_ns(),
                    "ip",
                    &[
                        "link",
                        "set",
                        "dev",
                        LB_IFACE,
                        mode.ip_keyword(),
                        "pinned",
                        pin.to_str().unwrap(),
                    ],
                );
            }
            Foreign::Libxdp(_) => {
                let object = xdp_tools_object("xdpfilt_alw_all.o");
                // nsenter --net: libxdp pins (its dispatcher's) on the
                // host's bpffs, which `ip netns exec` would hide.
                sh(
                    lab,
                    lab.lb_ns(),
                    "xdp-loader",
                    &[
                        "load",
                        "-m",
                        mode.xdp_tools(),
                        LB_IFACE,
                        object.to_str().unwrap(),
                    ],
                );
            }
        }
        let (id, name) =
            xdp_attached(lab, LB_IFACE).unwrap_or_else(|| panic!("{kind:?}: nothing attached"));
        foreign.id = id;
        foreign.name = name;
        foreign.assert_still_attached();
        foreign
    }

    /// The foreign program is still the one attached to eth0, in its mode
    /// (the same id as right after the attach), and the only one.
    #[track_caller]
    pub fn assert_still_attached(&self) {
        assert_eq!(
            xdp_ids(self.lab, LB_IFACE),
            [self.id],
            "{:?}: the foreign program {} ({}) is no longer the one attached",
            self.kind,
            self.id,
            self.name
        );
        let link = sh(
            self.lab,
            self.lab.lb_ns(),
            "ip",
            &["-d", "link", "show", "dev", LB_IFACE],
        );
        // `ip link` names the mode: `xdpgeneric` (skb) or `xdp` (driver).
        let word = match self.kind.mode() {
            XdpMode::Generic => "xdpgeneric",
            XdpMode::Driver => "xdp",
        };
        assert!(
            link.split_whitespace().any(|w| w == word),
            "{:?}: not in {word} mode: {link}",
            self.kind
        );
        if matches!(self.kind, Foreign::Libxdp(_) | Foreign::Dispatcher(_)) {
            // libxdp sees it too: the dispatcher and its component, or
            // the program alone where the kernel has no freplace.
            let status = sh(
                self.lab,
                self.lab.lb_ns(),
                "xdp-loader",
                &["status", LB_IFACE],
            );
            let wanted = match self.kind {
                Foreign::Libxdp(_) => "xdpfilt_alw_all",
                _ => "xdp_dispatcher",
            };
            assert!(
                status.contains(&self.id.to_string()) && status.contains(wanted),
                "{:?}: xdp-loader status does not list {} ({wanted}):\n{status}",
                self.kind,
                self.id
            );
        }
    }
}

impl Drop for ForeignXdp<'_> {
    fn drop(&mut self) {
        let mode = self.kind.mode();
        if matches!(self.kind, Foreign::Libxdp(_)) {
            // Also removes the dispatcher's pins where there is one.
            let _ = self
                .lab
                .command(self.lab.lb_ns(), "xdp-loader")
                .args(["unload", "-a", LB_IFACE])
                .output();
        }
        // What is left in the mode, if it is ours (or the attach stopped
        // half-way): never a program attached after ours went.
        let link = self
            .lab
            .command(self.lab.lb_ns(), "ip")
            .args(["-d", "link", "show", "dev", LB_IFACE])
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
            .unwrap_or_default();
        let ours = format!("prog/xdp id {} ", self.id);
        if self.id == 0 || link.contains(&ours) {
            let _ = self
                .lab
                .command(self.lab.lb_ns(), "ip")
                .args(["link", "set", "dev", LB_IFACE, mode.ip_keyword(), "off"])
                .status();
        }
        if let Some(pin) = &self.pin {
            let _ = std::fs::remove_file(pin);
        }
        if self.libxdp_dir {
            let _ = std::fs::remove_dir(LIBXDP_DIR);
        }
    }
}

/// Mounts bpffs on /sys/fs/bpf when it is not there (as bpftool does).
pub fn ensure_bpffs() {
    let path = c"/sys/fs/bpf";
    // SAFETY: statfs fills the zeroed buffer; the path is NUL-terminated.
    let mounted = unsafe {
        let mut buf: libc::statfs = std::mem::zeroed();
        libc::statfs(path.as_ptr(), &mut buf) == 0 && buf.f_type == libc::BPF_FS_MAGIC
    };
    if !mounted {
        // SAFETY: valid NUL-terminated strings.
        let ret = unsafe {
            libc::mount(
                c"bpf".as_ptr(),
                path.as_ptr(),
                c"bpf".as_ptr(),
                0,
                c"mode=0700".as_ptr().cast(),
            )
        };
        assert_eq!(ret, 0, "mount bpffs: {}", std::io::Error::last_os_error());
    }
}

/// The few bpf(2) calls the tests make themselves.
pub mod bpf_sys {
    use std::io;
    use std::os::fd::{FromRawFd, OwnedFd, RawFd};
    use std::os::unix::ffi::OsStrExt;

    const BPF_PROG_LOAD: libc::c_long = 5;
    const BPF_OBJ_PIN: libc::c_long = 6;
    const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
    const BPF_PROG_TYPE_XDP: u32 = 6;

    fn bpf(cmd: libc::c_long, attr: &mut [u8]) -> io::Result<libc::c_long> {
        // SAFETY: every caller fills attr as the command's bpf_attr, with
        // pointers that outlive the call.
        let ret = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), attr.len()) };
        if ret < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(ret)
    }

    fn put(attr: &mut [u8], at: usize, bytes: &[u8]) {
        attr[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// `r0 = XDP_PASS; exit`, GPL, named `name`.
    pub fn load_pass_program(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
        load_returning(BPF_PROG_TYPE_XDP, 2, name)
    }

    /// A TC program that does nothing: `r0 = TC_ACT_UNSPEC ("next"); exit`.
    pub fn load_tc_pass_program(name: &std::ffi::CStr) -> io::Result<OwnedFd> {
        const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
        load_returning(BPF_PROG_TYPE_SCHED_CLS, -1, name)
    }

    /// `r0 = value; exit` as a program of `prog_type`, GPL, named `name`.
    fn load_returning(prog_type: u32, value: i32, name: &std::ffi::CStr) -> io::Result<OwnedFd> {
        let v = value.to_le_bytes();
        let insns: [u8; 16] = [
            0xb7, 0, 0, 0, v[0], v[1], v[2], v[3], // mov64 r0, value
            0x95, 0, 0, 0, 0, 0, 0, 0, // exit
        ];
        let license = c"GPL";
        // union bpf_attr for BPF_PROG_LOAD: prog_type, insn_cnt, insns,
        // license, log_level, log_size, log_buf, kern_version, prog_flags,
        // prog_name[16] (at 48), prog_ifindex, expected_attach_type.
        let mut attr = [0u8; 72];
        put(&mut attr, 0, &prog_type.to_ne_bytes());
        put(&mut attr, 4, &2u32.to_ne_bytes());
        put(&mut attr, 8, &(insns.as_ptr() as u64).to_ne_bytes());
        put(&mut attr, 16, &(license.as_ptr() as u64).to_ne_bytes());
        let name = name.to_bytes();
        put(&mut attr, 48, &name[..name.len().min(15)]);
        let fd = bpf(BPF_PROG_LOAD, &mut attr)?;
        // SAFETY: a new fd that nobody else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    /// BPF_PROG_TEST_RUN of `frame`, `repeat` times: (return value, mean
    /// nanoseconds per run as the kernel measured it).
    pub fn test_run(fd: RawFd, frame: &[u8], repeat: u32) -> io::Result<(u32, u32)> {
        const BPF_PROG_TEST_RUN: i64 = 10;
        // bpf_attr.test: prog_fd, retval, data_size_in, data_size_out,
        // data_in, data_out, repeat, duration, ...
        let mut attr = [0u8; 80];
        put(&mut attr, 0, &(fd as u32).to_ne_bytes());
        put(&mut attr, 8, &(frame.len() as u32).to_ne_bytes());
        put(&mut attr, 16, &(frame.as_ptr() as u64).to_ne_bytes());
        put(&mut attr, 32, &repeat.to_ne_bytes());
        bpf(BPF_PROG_TEST_RUN, &mut attr)?;
        let word = |at: usize| u32::from_ne_bytes(attr[at..at + 4].try_into().unwrap());
        Ok((word(4), word(36)))
    }

    pub fn prog_id(fd: RawFd) -> io::Result<u32> {
        // The start of struct bpf_prog_info: type, id.
        let mut info = [0u8; 8];
        let mut attr = [0u8; 16];
        put(&mut attr, 0, &(fd as u32).to_ne_bytes());
        put(&mut attr, 4, &(info.len() as u32).to_ne_bytes());
        put(&mut attr, 8, &(info.as_mut_ptr() as u64).to_ne_bytes());
        bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
        Ok(u32::from_ne_bytes(info[4..8].try_into().unwrap()))
    }

    pub fn pin(fd: RawFd, path: &std::path::Path) -> io::Result<()> {
        let path = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("no NUL");
        // bpf_attr for BPF_OBJ_PIN: pathname, bpf_fd, file_flags.
        let mut attr = [0u8; 16];
        put(&mut attr, 0, &(path.as_ptr() as u64).to_ne_bytes());
        put(&mut attr, 8, &(fd as u32).to_ne_bytes());
        bpf(BPF_OBJ_PIN, &mut attr)?;
        Ok(())
    }
}

/// Drops `percent`% of the TCP frames in both directions on `host`'s side
/// (nftables, table `inet vckloss`).
pub fn add_loss(lab: &Lab, host: Host, percent: u32) {
    let drop = format!("meta l4proto tcp numgen random mod 100 < {percent} counter drop;");
    nft(
        lab,
        lab.ns(host),
        &format!(
            "table inet vckloss {{\n\
             chain in {{ type filter hook input priority 0; {drop} }}\n\
             chain out {{ type filter hook output priority 0; {drop} }}\n}}"
        ),
    );
}

/// Runs `runs` commands made by `make`, ten at a time, and counts those
/// that exit 0; prints the stdout of those that fail.
pub fn passes(runs: usize, make: impl Fn() -> Command) -> usize {
    const PARALLEL: usize = 10;
    (0..runs.div_ceil(PARALLEL))
        .map(|batch| {
            let children: Vec<_> = (0..PARALLEL.min(runs - batch * PARALLEL))
                .map(|_| {
                    let mut cmd = make();
                    cmd.stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::null());
                    cmd.spawn().expect("spawn")
                })
                .collect();
            children
                .into_iter()
                .filter_map(|c| c.wait_with_output().ok())
                .filter(|out| {
                    if !out.status.success() {
                        println!("failed: {}", String::from_utf8_lossy(&out.stdout).trim());
                    }
                    out.status.success()
                })
                .count()
        })
        .sum()
}

/// Runs `f` on a thread that has entered the network namespace `ns`:
/// sockets it opens (AF_PACKET included) and interfaces it looks up are
/// that namespace's.
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("network namespace {ns}: {e}"));
    std::thread::scope(|s| {
        s.spawn(move || {
            // SAFETY: plain syscall on a valid fd; it moves only this thread.
            let ret = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(ret, 0, "setns {ns}: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Runs 10 checks (`check` returns the exit status; each must be 0) in a
/// thread while the LB's kernel fetches `url` 5 times with curl (each must
/// succeed): checks and the LB's own traffic side by side.
pub fn checks_beside_curl(lab: &Lab, url: &str, check: impl Fn() -> i32 + Sync) {
    std::thread::scope(|s| {
        let checks = s.spawn(|| (0..10).map(|_| check()).collect::<Vec<_>>());
        for _ in 0..5 {
            let out = lab
                .command(lab.lb_ns(), "curl")
                .args(["-sS", "-o", "/dev/null", "-m", "2", url])
                .output()
                .expect("curl");
            assert!(
                out.status.success(),
                "kernel connection to {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let codes = checks.join().unwrap();
        assert!(codes.iter().all(|&c| c == 0), "check exits: {codes:?}");
    });
}

/// What `keepalived -t -f PATH` (its configuration test) says: its exit
/// status (-1 when killed by a signal) and its complaints.
pub fn keepalived_config_test(path: &std::path::Path) -> (i32, String) {
    let out = std::process::Command::new("/usr/sbin/keepalived")
        .args(["-t", "-f"])
        .arg(path)
        .output()
        .expect("keepalived -t (cargo xtask setup installs keepalived)");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// keepalived reads the keepalived.conf at `path` (as vipcheck does, where a
/// test reads it): `keepalived -t` exits 0, or 5 (it reported something and
/// runs), or 6 for scripts without enable_script_security alone (it runs
/// them all the same).
pub fn assert_keepalived_reads(path: impl AsRef<std::path::Path>) {
    let path = path.as_ref();
    let (code, said) = keepalived_config_test(path);
    let reads = matches!(code, 0 | 5) || (code == 6 && said.contains("SECURITY VIOLATION"));
    assert!(
        reads,
        "keepalived -t does not read {}: exit {code}: {said}",
        path.display()
    );
}
