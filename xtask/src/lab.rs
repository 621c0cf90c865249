//! The test lab: an LVS-DR network built from network namespaces, nothing
//! in the root namespace.
//!
//! ```text
//!                        switch namespace: bridge br0
//!        p-lb ─────────────┬─────────┬─────────┬───── p-cl
//!         │              p-ok      p-nv        │
//!   lb: eth0 198.18.0.1    │         │       closed: eth0 198.18.0.13
//!   (+ VIP if Master)      │         │               lo   VIP, port 80 closed
//!             ok: eth0 198.18.0.11   novip: eth0 198.18.0.12
//!                 lo   VIP, nginx           nginx, no VIP
//! ```
//!
//! The VIP is 198.18.0.100; real servers that have it on `lo` answer ARP
//! only for their own address (`arp_ignore=1`, `arp_announce=2`), as in
//! LVS-DR. No host has 198.18.0.99 ([`ABSENT_IP`]). nginx serves
//! [`INDEX_HTML`] and the [`FILES`] and names itself in [`SERVER_HEADER`].
//! On request, ok and novip also run DNS and SMTP servers, and ok UDP
//! services ([`Lab::start_services`]; see the `services` module: dnsmasq,
//! exim, socat). Real servers send ICMP errors (UDP port unreachable from
//! `closed`'s VIP) without rate limit.
//!
//! A [`Lab`] is a guard: dropping it (also while a test panics) stops its
//! processes and removes its namespaces, files and XDP pins. Labs are
//! independent, so tests may build one each in parallel; leftovers of a
//! process that died are removed by the next [`Lab::up`].
//!
//! ```no_run
//! use xtask::lab::{Host, Lab, Role, OK_IP};
//! let lab = Lab::up(Role::Backup)?;
//! let out = lab
//!     .command(lab.lb_ns(), "curl")
//!     .arg(format!("http://{OK_IP}/"))
//!     .output()?;
//! assert!(out.status.success());
//! # Ok::<(), anyhow::Error>(())
//! ```

// unsafe: libc calls (namespaces, signals, process accounting), each with a SAFETY line.
#![allow(unsafe_code)]

mod fixture;
mod keepalived;
mod naming;
pub(crate) mod netns;
mod nginx;
mod process;
mod services;
mod tls;

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

pub use fixture::{BYTEWISE_BODY, CHUNKED_BODY, FIXTURE_PORT, Fixtures, TEXT_BODY};
pub use keepalived::{
    Keepalived, KeepalivedConfig, LinePattern, Stopped, TrackFile, VrrpScript, log_message,
};
pub use naming::{Owner, PREFIX};
pub use nginx::{FILES, INDEX_HTML, SERVER_HEADER, pseudo_random};
pub use process::Background;
pub use services::{
    DNS_A, DNS_AAAA, DNS_ABSENT_NAME, DNS_NAME, DNS_PORT, DNS_REFUSED_NAME, DNS_SOA_MNAME,
    DNS_SOA_NAME, DNS_SOA_RNAME, DNS_ZONE, SMTP_GREETING, SMTP_MULTILINE_LINES,
    SMTP_MULTILINE_PORT, SMTP_PORT, Services, UDP_ECHO_PORT, UDP_WRONG_SOURCE_PORT, lab_host_name,
    smtp_greeting,
};
pub use tls::{
    CLIENT_CERT_FILE, CLIENT_KEY_FILE, HTTPS_EXPIRED_PORT, HTTPS_MTLS_PORT, HTTPS_PORT,
    HTTPS_SOON_PORT, SOON_DAYS, TLS_NAME,
};

use nginx::Nginx;

pub const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 100);
pub const LB_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
pub const OK_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 11);
pub const NOVIP_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 12);
pub const CLOSED_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 13);
/// In the lab's subnet, but no host has it: ARP for it gets no answer.
pub const ABSENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 99);
/// Prefix length of the lab's subnet.
pub const PREFIX_LEN: u8 = 24;
/// The lab's IPv6 subnet: a /64 of a ULA /48 (fd98:c612:0::/48), never routed.
pub const PREFIX6: &str = "fd98:c612:0:1";
/// Prefix length of the lab's IPv6 subnet.
pub const PREFIX6_LEN: u8 = 64;
/// The IPv6 VIP: on the lo of `ok` and `closed` (not `novip`), and on the
/// LB's eth0 in the master role.
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0xfd98, 0xc612, 0, 1, 0, 0, 0, 0x100);
/// In the lab's IPv6 subnet, but no host has it: no neighbour advertisement.
pub const ABSENT_IP6: Ipv6Addr = Ipv6Addr::new(0xfd98, 0xc612, 0, 1, 0, 0, 0, 0x99);
/// The interface of every host (the LB included) on the lab's network.
pub const LB_IFACE: &str = "eth0";
/// The port nginx listens on.
pub const HTTP_PORT: u16 = 80;

/// Node name of the switch namespace.
const SWITCH: &str = "sw";
/// How long nginx may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// Where the checker pins its XDP program, maps and link.
const BPFFS: &str = "/sys/fs/bpf";
const PIN_DIR: &str = "/sys/fs/bpf/vipcheck";

/// Whether the LB holds the VIP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    /// VIP not on the LB: the kernel would RST replies to the VIP.
    #[default]
    Backup,
    /// VIP 198.18.0.100/32 also on the LB's eth0.
    Master,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Backup => "backup",
            Role::Master => "master",
        })
    }
}

/// The hosts of a lab; each has its own namespace with an `eth0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Host {
    /// The load balancer, where checks run.
    Lb,
    /// Real server with the VIP on `lo` and nginx: healthy.
    Ok,
    /// Real server with nginx but without the VIP.
    NoVip,
    /// Real server with the VIP on `lo` and nothing on port 80.
    Closed,
}

impl Host {
    pub const ALL: [Host; 4] = [Host::Lb, Host::Ok, Host::NoVip, Host::Closed];
    pub const REAL_SERVERS: [Host; 3] = [Host::Ok, Host::NoVip, Host::Closed];

    /// Address of its eth0.
    pub fn ip(self) -> Ipv4Addr {
        match self {
            Host::Lb => LB_IP,
            Host::Ok => OK_IP,
            Host::NoVip => NOVIP_IP,
            Host::Closed => CLOSED_IP,
        }
    }

    /// IPv6 address of its eth0: the lab's prefix, the same last byte as
    /// its IPv4 address (`fd98:c612:0:1::b` for `ok`).
    pub fn ip6(self) -> Ipv6Addr {
        let last = u16::from(self.ip().octets()[3]);
        Ipv6Addr::new(0xfd98, 0xc612, 0, 1, 0, 0, 0, last)
    }

    /// Short name, as in [`SERVER_HEADER`] and the demo's output.
    pub fn name(self) -> &'static str {
        match self {
            Host::Lb => "lb",
            Host::Ok => "ok",
            Host::NoVip => "novip",
            Host::Closed => "closed",
        }
    }

    /// Suffix of its namespace name, kept short.
    fn node(self) -> &'static str {
        match self {
            Host::Lb => "lb",
            Host::Ok => "ok",
            Host::NoVip => "nv",
            Host::Closed => "cl",
        }
    }

    fn has_vip_on_lo(self) -> bool {
        matches!(self, Host::Ok | Host::Closed)
    }

    fn runs_nginx(self) -> bool {
        matches!(self, Host::Ok | Host::NoVip)
    }

    /// A fixed, locally administered MAC ending in the host's address byte:
    /// readable in captures; labs never share a bridge, so never clash.
    fn mac(self) -> String {
        format!("02:00:c6:12:00:{:02x}", self.ip().octets()[3])
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The running fixture server of a lab (see [`Lab::fixtures`]).
pub struct FixtureGuard<'lab> {
    _fixtures: Fixtures,
    _lab: std::marker::PhantomData<&'lab Lab>,
}

/// A running lab; see the [module documentation](self).
pub struct Lab {
    id: String,
    role: Role,
    switch_ns: String,
    /// Indexed by `Host as usize`.
    host_ns: [String; 4],
    dir: PathBuf,
    /// The running nginx of each host that runs one; a test may stop one
    /// and start it again ([`Lab::stop_nginx`]) while others borrow the lab.
    servers: Mutex<Vec<(Host, Nginx)>>,
}

impl Lab {
    /// Builds a new lab, after removing the leftovers of labs whose process
    /// died. Returns once nginx accepts connections. Needs root.
    pub fn up(role: Role) -> Result<Lab> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        prepare()?;
        Lab::create(
            naming::process_id(NEXT.fetch_add(1, Ordering::Relaxed)),
            role,
        )
    }

    /// Builds the demo lab (fixed names `vck-demo-*`) that
    /// `cargo xtask lab up` leaves running for [`Lab::keep`]; fails if it
    /// is already up.
    pub fn up_demo(role: Role) -> Result<Lab> {
        prepare()?;
        if list().iter().any(|lab| lab.owner == Owner::Demo) {
            bail!("the demo lab is already up: `cargo xtask lab down` removes it");
        }
        Lab::create(naming::DEMO_ID.to_owned(), role)
    }

    fn create(id: String, role: Role) -> Result<Lab> {
        let mut lab = Lab {
            switch_ns: naming::ns_name(&id, SWITCH),
            host_ns: Host::ALL.map(|host| naming::ns_name(&id, host.node())),
            dir: lab_dir(&id),
            servers: Default::default(),
            role,
            id,
        };
        // From here on, dropping `lab` on an error removes what was made.
        lab.build()
            .with_context(|| format!("cannot build lab {}", lab.id))?;
        Ok(lab)
    }

    fn build(&mut self) -> Result<()> {
        netns::create(&self.namespaces())?;
        for host in Host::REAL_SERVERS {
            // Set before eth0 exists, so that it inherits them from `default`.
            netns::run_in(self.ns(host), || {
                if host.has_vip_on_lo() {
                    set_lvs_dr_arp()?;
                }
                set_icmp_unlimited()
            })
            .with_context(|| format!("cannot set sysctls in {}", self.ns(host)))?;
        }
        netns::ip_batch(Some(&self.switch_ns), &self.switch_commands(), false)?;
        for host in Host::ALL {
            netns::ip_batch(Some(self.ns(host)), &self.host_commands(host), false)?;
        }
        let docroot = self.docroot();
        nginx::write_docroot(&docroot)?;
        tls::write(&self.tls_dir())?;
        for host in Host::ALL.into_iter().filter(|h| h.runs_nginx()) {
            self.start_nginx(host)?;
        }
        Ok(())
    }

    /// Starts `host`'s nginx (after [`Lab::stop_nginx`]); returns once it
    /// accepts connections.
    pub fn start_nginx(&self, host: Host) -> Result<()> {
        let dir = self.dir.join(host.name());
        let mut server = Nginx::start(
            self.ns(host),
            host.ip(),
            host.name(),
            &dir,
            &self.docroot(),
            &self.tls_dir(),
        )?;
        server.wait_ready(self.lb_ns(), Instant::now() + READY_TIMEOUT)?;
        self.servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((host, server));
        Ok(())
    }

    /// Stops `host`'s nginx (SIGTERM, by pid, and waits for it): its ports
    /// then answer with RSTs, as a real server whose service died.
    pub fn stop_nginx(&self, host: Host) -> Result<()> {
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(i) = servers.iter().position(|(h, _)| *h == host) else {
            bail!("{} runs no nginx", host.name());
        };
        let (_, mut server) = servers.remove(i);
        for status in process::terminate(vec![&mut server.child]) {
            status.context("cannot stop nginx")?;
        }
        Ok(())
    }

    fn switch_commands(&self) -> Vec<String> {
        let mut commands = vec![
            "link set lo up".to_owned(),
            "link add br0 type bridge".to_owned(),
            "link set br0 up".to_owned(),
        ];
        for host in Host::ALL {
            let port = format!("p-{}", host.node());
            commands.push(format!(
                "link add {port} type veth peer name {LB_IFACE} address {} netns {}",
                host.mac(),
                self.ns(host)
            ));
            commands.push(format!("link set {port} master br0 up"));
        }
        commands
    }

    fn host_commands(&self, host: Host) -> Vec<String> {
        let mut commands = vec![
            "link set lo up".to_owned(),
            format!("link set {LB_IFACE} up"),
            format!("address add {}/{PREFIX_LEN} dev {LB_IFACE}", host.ip()),
            // nodad: usable at once (no duplicate detection in a lab).
            format!(
                "address add {}/{PREFIX6_LEN} dev {LB_IFACE} nodad",
                host.ip6()
            ),
        ];
        if host.has_vip_on_lo() {
            commands.push(format!("address add {VIP}/32 dev lo"));
            commands.push(format!("address add {VIP6}/128 dev lo"));
        }
        if host == Host::Lb && self.role == Role::Master {
            commands.push(format!("address add {VIP}/32 dev {LB_IFACE}"));
            commands.push(format!("address add {VIP6}/128 dev {LB_IFACE} nodad"));
        }
        commands
    }

    fn namespaces(&self) -> Vec<String> {
        std::iter::once(&self.switch_ns)
            .chain(&self.host_ns)
            .cloned()
            .collect()
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Namespace of the LB, where checks run.
    pub fn lb_ns(&self) -> &str {
        self.ns(Host::Lb)
    }

    /// Namespace of a host.
    pub fn ns(&self, host: Host) -> &str {
        &self.host_ns[host as usize]
    }

    /// Namespace of the switch: bridge `br0` with ports `p-lb`, `p-ok`,
    /// `p-nv`, `p-cl` (a capture on `br0` sees every host's frames).
    pub fn switch_ns(&self) -> &str {
        &self.switch_ns
    }

    /// MAC address of the host's eth0, as `02:00:c6:12:00:0b`.
    pub fn mac(&self, host: Host) -> String {
        host.mac()
    }

    /// The lab's TLS files (made at its start): `ca.pem`, the CA that
    /// signed the certificates nginx serves on [`HTTPS_PORT`] and
    /// [`HTTPS_SOON_PORT`].
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.join(TLS_DIR)
    }

    /// The lab CA's certificate (PEM), for `vipcheck https --ca`.
    pub fn ca_pem(&self) -> PathBuf {
        self.tls_dir().join(tls::CA_FILE)
    }

    /// Document root served by nginx on ok and novip.
    pub fn docroot(&self) -> PathBuf {
        self.dir.join("www")
    }

    /// A command running `program` in namespace `ns` (through
    /// `nsenter --net`: only the network namespace changes).
    pub fn command(&self, ns: &str, program: impl AsRef<OsStr>) -> Command {
        netns::command(ns, program)
    }

    /// Runs `f` on a thread that has entered namespace `ns`: the sockets it
    /// opens are that namespace's (cheaper than a process).
    pub fn run_in<T: Send>(
        &self,
        ns: &str,
        f: impl FnOnce() -> std::io::Result<T> + Send,
    ) -> std::io::Result<T> {
        netns::run_in(ns, f)
    }

    /// Inode of namespace `ns`: what `/proc/self/ns/net` shows inside it.
    ///
    /// # Panics
    /// If there is no namespace `ns`.
    pub fn netns_inode(&self, ns: &str) -> u64 {
        netns::inode(ns).unwrap_or_else(|e| panic!("no network namespace {ns}: {e}"))
    }

    /// Starts a background process (built with [`Lab::command`]), stopped
    /// with SIGTERM, then SIGKILL, when the returned guard is dropped, which
    /// the borrow makes happen before the lab is dropped.
    pub fn spawn(&self, cmd: &mut Command) -> Result<Background<'_>> {
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {cmd:?}"))?;
        Ok(Background::new(child))
    }

    /// Starts the project's HTTP test server on `host` (port
    /// [`FIXTURE_PORT`]); it stops when the returned guard is dropped,
    /// which the borrow makes happen before the lab is dropped.
    pub fn fixtures(&self, host: Host) -> Result<FixtureGuard<'_>> {
        Ok(FixtureGuard {
            _fixtures: Fixtures::start(self.ns(host))?,
            _lab: std::marker::PhantomData,
        })
    }

    /// Starts keepalived in the LB's namespace with `config`'s scripts
    /// (see [`Keepalived::start`]); it stops when the returned guard is
    /// dropped, which the borrow makes happen before the lab is dropped.
    pub fn keepalived(&self, config: &KeepalivedConfig) -> Result<Keepalived<'_>> {
        Keepalived::start(self, config)
    }

    /// Leaves the lab running after this process ends. Meant for the demo
    /// lab ([`Lab::up_demo`]), which [`down_all`] removes; the lab of a
    /// process is removed by the next [`Lab::up`] once the process is gone.
    pub fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut servers = self
            .servers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let servers = servers.iter_mut().map(|(_, s)| &mut s.child).collect();
        for status in process::terminate(servers) {
            warn_on_error(status.map(drop).context("cannot stop nginx"));
        }
        warn_on_error(remove(&self.id, &self.namespaces()));
    }
}

/// Checks the privilege and removes the leftovers of labs whose process
/// died (a SIGKILLed test run), which would otherwise pile up.
fn prepare() -> Result<()> {
    crate::require_root("the lab (network namespaces)")?;
    warn_on_error(remove_labs(|owner| !owner.is_alive()).map(drop));
    Ok(())
}

/// A lab found on this machine.
#[derive(Debug)]
pub struct LabInfo {
    /// `demo`, or `<pid>-<n>`.
    pub id: String,
    pub owner: Owner,
    pub namespaces: Vec<String>,
}

impl LabInfo {
    /// The lab CA's certificate (PEM) for `vipcheck https --ca`, as
    /// [`Lab::ca_pem`] of the process that made the lab.
    pub fn ca_pem(&self) -> PathBuf {
        lab_dir(&self.id).join(TLS_DIR).join(tls::CA_FILE)
    }
}

/// The temporary directory of lab `id` (TLS files, nginx's, ...).
fn lab_dir(id: &str) -> PathBuf {
    std::env::temp_dir().join(naming::dir_name(id))
}

/// The TLS files' directory in a lab's directory.
const TLS_DIR: &str = "tls";

/// The labs on this machine (of every process), by id.
pub fn list() -> Vec<LabInfo> {
    let mut labs: Vec<LabInfo> = Vec::new();
    let mut names = netns::list();
    names.sort();
    for name in names {
        let Some((id, _)) = naming::split_ns_name(&name) else {
            continue;
        };
        match labs.iter_mut().find(|lab| lab.id == id) {
            Some(lab) => lab.namespaces.push(name),
            None => labs.push(LabInfo {
                id: id.to_owned(),
                owner: Owner::of_id(id).expect("split_ns_name checked the id"),
                namespaces: vec![name],
            }),
        }
    }
    labs
}

/// Removes the demo lab and the leftovers of processes that died; labs of
/// running processes are left alone. Returns the ids removed.
pub fn down_all() -> Result<Vec<String>> {
    remove_labs(|owner| owner == Owner::Demo || !owner.is_alive())
}

/// Removes the labs whose owner `select` picks, and their temporary
/// directories (also those without namespaces: a process that died early).
fn remove_labs(select: impl Fn(Owner) -> bool) -> Result<Vec<String>> {
    // Parallel tests would otherwise race to remove the same leftovers and
    // warn about what the other removed first.
    static REMOVING: Mutex<()> = Mutex::new(());
    let _turn = REMOVING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    for lab in list().into_iter().filter(|lab| select(lab.owner)) {
        match remove(&lab.id, &lab.namespaces) {
            Ok(()) => removed.push(lab.id),
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    let tmp = std::env::temp_dir();
    for entry in std::fs::read_dir(&tmp).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(naming::split_dir_name) else {
            continue;
        };
        if Owner::of_id(id).is_some_and(&select) && !removed.iter().any(|r| r == id) {
            match remove_dir(&entry.path()) {
                Ok(()) => removed.push(id.to_owned()),
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
    }
    if !errors.is_empty() {
        bail!("{}", errors.join("; "));
    }
    Ok(removed)
}

/// Removes what lab `id` made, as far as it exists: processes in its
/// namespaces (a namespace with processes outlives its deletion), the XDP
/// pins of its LB, the namespaces, the temporary directory.
fn remove(id: &str, namespaces: &[String]) -> Result<()> {
    let lb_inode = netns::inode(&naming::ns_name(id, Host::Lb.node())).ok();
    // Held open until the end, so that no namespace is freed and its inode
    // given to a new one (another lab's) while we kill by inode.
    let held: Vec<(File, u64)> = namespaces
        .iter()
        .filter_map(|ns| {
            let file = File::open(netns::path(ns)).ok()?;
            let inode = file.metadata().ok()?.ino();
            Some((file, inode))
        })
        .collect();
    let inodes: Vec<u64> = held.iter().map(|(_, inode)| *inode).collect();
    netns::kill_processes_in(&inodes);
    if let Some(inode) = lb_inode {
        remove_xdp_pins(inode);
    }
    let deleted = netns::delete(namespaces);
    // A process that opened a namespace just before the deletion may have
    // entered it after the first pass and would keep it alive, nameless.
    netns::kill_processes_in(&inodes);
    drop(held);
    let dir = std::env::temp_dir().join(naming::dir_name(id));
    deleted.and(remove_dir(&dir))
}

/// Removes a directory tree; one already gone is fine.
fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("cannot remove {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// The checker pins per network namespace and interface
/// (`ns<INODE>-if<INDEX>`); a pin of a deleted namespace would keep its
/// program and maps alive and could be mistaken for a later namespace's
/// that gets the same inode.
fn remove_xdp_pins(lb_inode: u64) {
    if !is_bpffs(BPFFS) {
        return;
    }
    let prefix = format!("ns{lb_inode}-if");
    for entry in std::fs::read_dir(PIN_DIR).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn is_bpffs(path: &str) -> bool {
    let path = std::ffi::CString::new(path).expect("no NUL in path");
    // SAFETY: statfs fills the zeroed buffer; the path is NUL-terminated.
    unsafe {
        let mut buf: libc::statfs = std::mem::zeroed();
        libc::statfs(path.as_ptr(), &mut buf) == 0 && buf.f_type == libc::BPF_FS_MAGIC
    }
}

/// LVS-DR real servers answer ARP only for addresses of the interface asked
/// on, and announce only their own address, never the VIP on `lo`.
fn set_lvs_dr_arp() -> std::io::Result<()> {
    for conf in ["all", "default"] {
        let dir = Path::new("/proc/sys/net/ipv4/conf").join(conf);
        std::fs::write(dir.join("arp_ignore"), "1")?;
        std::fs::write(dir.join("arp_announce"), "2")?;
    }
    Ok(())
}

/// No rate limit on the ICMP errors a real server sends (port unreachable
/// for UDP to a closed port, `closed` above all), so that tests are
/// deterministic however many datagrams they send: `icmp_ratelimit` (per
/// destination) alone is not enough, the global token bucket
/// (`icmp_msgs_per_sec`, shared by every namespace of the machine) also
/// limits the types in `icmp_ratemask`; an empty mask exempts every type
/// from both. The IPv6 sysctls work the same way. All are per namespace.
fn set_icmp_unlimited() -> std::io::Result<()> {
    let sys = Path::new("/proc/sys/net");
    std::fs::write(sys.join("ipv4/icmp_ratelimit"), "0")?;
    std::fs::write(sys.join("ipv4/icmp_ratemask"), "0")?;
    std::fs::write(sys.join("ipv6/icmp/ratelimit"), "0")?;
    std::fs::write(sys.join("ipv6/icmp/ratemask"), "\n")
}

/// Cleanup goes on after an error; say what was left behind, never panic.
fn warn_on_error(result: Result<()>) {
    if let Err(e) = result {
        let _ = writeln!(std::io::stderr(), "warning: lab: {e:#}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lab status` names the CA file the lab's process wrote.
    #[test]
    fn a_listed_lab_names_its_ca() {
        let info = LabInfo {
            id: "7-0".into(),
            owner: Owner::of_id("7-0").unwrap(),
            namespaces: Vec::new(),
        };
        let lab = Lab {
            switch_ns: String::new(),
            host_ns: Host::ALL.map(|_| String::new()),
            dir: lab_dir("7-0"),
            servers: Default::default(),
            role: Role::Backup,
            id: "7-0".into(),
        };
        assert_eq!(info.ca_pem(), lab.ca_pem());
        assert!(info.ca_pem().ends_with("vck-7-0/tls/ca.pem"));
        std::mem::forget(lab);
    }
}
