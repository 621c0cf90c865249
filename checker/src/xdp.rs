//! The shared XDP program of one interface: load, attach, pin, find again,
//! register flows, collect the flows of dead processes, report, detach.
//!
//! One program serves every vipcheck process on an interface. The first one
//! (or `vipcheck xdp attach`) loads and attaches it through a bpf_link and
//! pins program, link and maps under
//! `/sys/fs/bpf/vipcheck/ns<NETNS_INODE>-if<IFINDEX>/`; later processes open
//! the pinned maps and only add and remove flow entries. Interface names and
//! indexes repeat across network namespaces and a namespace's inode can be
//! reused after it is deleted, so the directory is keyed by both and the
//! pinned link is checked to be still attached to this interface before use.

use std::fs::File;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::Ebpf;
use aya::maps::{ArrayOfMaps, HashMap, Map, MapData, PerCpuArray, RingBuf};
use aya::programs::links::FdLink;
use aya::programs::{Xdp, XdpMode as AyaXdpMode};
use checker_common::{
    COUNTERS_MAP, Counter, FLOWS_MAP, FlowKey, FlowOwner, PROGRAM_NAME, RING_SIZE, RINGS_MAP,
    SLOT_COUNT, SLOTS_MAP,
};

use crate::error::{Error, Result};
use crate::netdev::{NetDev, netns_inode};

/// The XDP object, built by build.rs from `checker-ebpf`.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vipcheck-xdp"));

/// Where bpffs is mounted and where our pins live.
const BPFFS: &str = "/sys/fs/bpf";
const PIN_ROOT: &str = "/sys/fs/bpf/vipcheck";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;
/// bpf_map_update_elem flag: fail if the key exists.
const BPF_NOEXIST: u64 = 1;

/// How long past its own deadline a flow entry is kept when its owner cannot
/// be judged by pid (another PID namespace).
const OWNER_GRACE: Duration = Duration::from_secs(10);

/// Attach mode of the XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpMode {
    /// Generic XDP: works on every device (veth, VLAN, bond) and never resets a NIC.
    #[default]
    Skb,
    /// Driver XDP: faster, needs driver support.
    Native,
}

impl XdpMode {
    fn name(self) -> &'static str {
        match self {
            XdpMode::Skb => "skb",
            XdpMode::Native => "native",
        }
    }

    fn link_pin(self) -> String {
        format!("link-{}", self.name())
    }
}

/// Handles on the pinned maps of one interface's program.
pub struct XdpHandle {
    dir: PathBuf,
    flows: HashMap<MapData, FlowKey, u32>,
    rings: ArrayOfMaps<MapData>,
    slots: HashMap<MapData, u32, FlowOwner>,
}

impl XdpHandle {
    /// Opens the program of `dev` if it is pinned and attached, else loads,
    /// attaches and pins it. Serialized by a lock so that two first checks
    /// racing end with exactly one program.
    pub fn open_or_attach(dev: &NetDev, mode: XdpMode) -> Result<XdpHandle> {
        let dir = pin_dir(dev)?;
        let _lock = lock()?;
        if let Some(attached) = Attached::find(&dir, dev)? {
            if attached.mode != mode {
                log::debug!(
                    "XDP program already attached in {} mode; using it",
                    attached.mode.name()
                );
            }
        } else {
            sweep_defunct();
            attach(&dir, dev, mode)?;
        }
        Self::open_maps(dir)
    }

    fn open_maps(dir: PathBuf) -> Result<XdpHandle> {
        Ok(XdpHandle {
            flows: HashMap::try_from(open_map(&dir, FLOWS_MAP)?).map_err(bpf("FLOWS map"))?,
            rings: ArrayOfMaps::try_from(open_map(&dir, RINGS_MAP)?).map_err(bpf("RINGS map"))?,
            slots: HashMap::try_from(open_map(&dir, SLOTS_MAP)?).map_err(bpf("SLOTS map"))?,
            dir,
        })
    }

    /// Takes a free capture slot for this process until `deadline` (plus a
    /// grace period) has passed, first freeing the slots of processes that
    /// ended. Its ring is created the first time the slot is used and kept
    /// for later processes, so a warm check changes no map-in-map entry.
    pub fn claim_slot(mut self, iface: &str, deadline: Duration) -> Result<Slot> {
        let owner = current_owner(deadline)?;
        // Under the lock: a collector must not judge a slot that another
        // process is claiming at the same moment.
        let _lock = lock()?;
        let freed = self.collect_dead();
        if freed > 0 {
            log::debug!("freed {freed} capture slots of ended processes");
        }
        // Lowest free slot first: the rings of low slots exist already.
        for index in 0..SLOT_COUNT {
            if self.slots.insert(index, owner, BPF_NOEXIST).is_err() {
                continue;
            }
            let ring = match self.slot_ring(index) {
                Ok(ring) => ring,
                Err(e) => {
                    let _ = self.slots.remove(&index);
                    return Err(e);
                }
            };
            let mut slot = Slot {
                handle: self,
                index,
                ring,
                keys: Vec::new(),
            };
            // Records a previous holder left when it was killed mid-flight.
            slot.drain(|_| {});
            return Ok(slot);
        }
        Err(Error::Busy(format!(
            "all {SLOT_COUNT} capture slots of {iface} are held by running checks; retry later"
        )))
    }

    /// The ring of slot `index`, created and inserted on its first use.
    fn slot_ring(&mut self, index: u32) -> Result<RingBuf<MapData>> {
        let data = match self.rings.get(&index, 0) {
            Ok(data) => data,
            Err(_) => {
                let obj = aya_obj::Map::new_from_params(
                    aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
                    0,
                    0,
                    RING_SIZE,
                    0,
                );
                let data = MapData::create(obj, "vipcheck_ring", None)
                    .map_err(bpf("creating a ring buffer"))?;
                self.rings
                    .set(index, &data, 0)
                    .map_err(bpf("inserting a ring buffer"))?;
                data
            }
        };
        RingBuf::try_from(Map::RingBuf(data)).map_err(bpf("ring buffer"))
    }

    /// Frees the slots (and their flows) whose owner process has ended, or
    /// whose entry is long past its deadline. A dead owner's flow entries
    /// would keep eating those flows' frames, so this runs before every
    /// check. Returns how many slots were freed.
    pub fn collect_dead(&mut self) -> usize {
        let now = boottime_ns();
        let dead: Vec<u32> = self
            .slots
            .iter()
            .filter_map(|entry| entry.ok())
            .filter(|(_, owner)| !is_alive(owner, now))
            .map(|(index, _)| index)
            .collect();
        if dead.is_empty() {
            return 0;
        }
        let stale: Vec<FlowKey> = self
            .flows
            .iter()
            .filter_map(|entry| entry.ok())
            .filter(|(_, slot)| dead.contains(slot))
            .map(|(key, _)| key)
            .collect();
        // Flows first, then their slot: a flow entry always has an owner.
        for key in &stale {
            let _ = self.flows.remove(key);
        }
        for index in &dead {
            let _ = self.slots.remove(index);
        }
        dead.len()
    }

    /// The registered flows with their slot and its owner.
    pub fn flows(&self) -> Vec<(FlowKey, u32, Option<FlowOwner>)> {
        self.flows
            .iter()
            .filter_map(|entry| entry.ok())
            .map(|(key, slot)| (key, slot, self.slots.get(&slot, 0).ok()))
            .collect()
    }

    /// The program's verdict counters, summed over CPUs.
    pub fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        let map = PerCpuArray::<MapData, u64>::try_from(open_map(&self.dir, COUNTERS_MAP)?)
            .map_err(bpf("COUNTERS map"))?;
        Counter::ALL
            .iter()
            .map(|&c| {
                let per_cpu = map.get(&(c as u32), 0).map_err(bpf("reading counters"))?;
                Ok((c, per_cpu.iter().sum()))
            })
            .collect()
    }
}

/// A capture slot held by this process: the XDP program copies the frames
/// of the flows registered on it into its ring. Dropping it removes those
/// flows, then frees the slot.
pub struct Slot {
    handle: XdpHandle,
    index: u32,
    ring: RingBuf<MapData>,
    keys: Vec<FlowKey>,
}

impl Slot {
    /// Sends the frames of `key` to this slot. False if another live
    /// process already registered the same key (two checks resolving the
    /// same real server from the same address share one ARP key).
    pub fn register(&mut self, key: FlowKey) -> Result<bool> {
        match self.handle.flows.insert(key, self.index, BPF_NOEXIST) {
            Ok(()) => {
                self.keys.push(key);
                Ok(true)
            }
            Err(aya::maps::MapError::SyscallError(e))
                if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Ok(false)
            }
            Err(e) => Err(Error::Bpf(format!("registering a flow: {e}"))),
        }
    }

    /// Stops capturing `key`.
    pub fn unregister(&mut self, key: &FlowKey) {
        if let Some(i) = self.keys.iter().position(|k| k == key) {
            let _ = self.handle.flows.remove(key);
            self.keys.swap_remove(i);
        }
    }

    /// Takes every record waiting in the ring, calling `f` with each frame.
    pub fn drain(&mut self, mut f: impl FnMut(&[u8])) {
        while let Some(item) = self.ring.next() {
            if let Some(frame) = crate::stack::record_frame(&item) {
                f(frame);
            }
        }
    }
}

impl AsRawFd for Slot {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_raw_fd()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        for key in self.keys.drain(..) {
            let _ = self.handle.flows.remove(&key);
        }
        let _ = self.handle.slots.remove(&self.index);
    }
}

/// The owner entry of this process for a flow that ends within `deadline`.
fn current_owner(deadline: Duration) -> Result<FlowOwner> {
    let pid = std::process::id();
    Ok(FlowOwner {
        pid,
        _pad: 0,
        start_time: start_time(pid).ok_or_else(|| {
            Error::io("reading /proc/self/stat", io::Error::other("no start time"))
        })?,
        expires_ns: boottime_ns() + (deadline + OWNER_GRACE).as_nanos() as u64,
        pid_ns: pid_ns(),
    })
}

/// Whether the owner may still be using its flow: its process (same pid and
/// start time) still runs, judged only in our own PID namespace; and in any
/// case not long past its deadline.
fn is_alive(owner: &FlowOwner, now_ns: u64) -> bool {
    if now_ns > owner.expires_ns {
        return false;
    }
    if owner.pid_ns != pid_ns() {
        return true;
    }
    start_time(owner.pid) == Some(owner.start_time)
}

/// Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat).
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid")
        .map(|m| m.ino())
        .unwrap_or(0)
}

fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What is pinned for an interface, verified against the kernel.
struct Attached {
    mode: XdpMode,
    program_id: u32,
}

impl Attached {
    /// Finds the pinned link in `dir` and checks that it is still attached
    /// to `dev`. A stale directory (namespace gone, interface gone, pins
    /// half-made) is removed.
    fn find(dir: &Path, dev: &NetDev) -> Result<Option<Attached>> {
        if !dir.exists() {
            return Ok(None);
        }
        for mode in [XdpMode::Skb, XdpMode::Native] {
            let Ok(link) = obj_get(&dir.join(mode.link_pin())) else {
                continue;
            };
            let info = link_info(&link).map_err(|e| Error::io("reading XDP link info", e))?;
            if info.ifindex == dev.ifindex {
                return Ok(Some(Attached {
                    mode,
                    program_id: info.prog_id,
                }));
            }
        }
        log::debug!("removing stale pins in {}", dir.display());
        std::fs::remove_dir_all(dir)
            .map_err(|e| Error::io(format!("removing stale pins {}", dir.display()), e))?;
        Ok(None)
    }
}

/// Removes the pins of programs whose interface is gone (its namespace was
/// deleted): they would hold the program and its rings in memory forever.
/// Runs only when a program is loaded, under the lock.
fn sweep_defunct() {
    let Ok(entries) = std::fs::read_dir(PIN_ROOT) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        let defunct = [XdpMode::Skb, XdpMode::Native].iter().any(|mode| {
            obj_get(&dir.join(mode.link_pin()))
                .and_then(|link| link_info(&link))
                .is_ok_and(|info| info.ifindex == 0)
        });
        if defunct {
            log::debug!("removing pins of a deleted interface: {}", dir.display());
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

fn attach(dir: &Path, dev: &NetDev, mode: XdpMode) -> Result<()> {
    // No kernel BTF: the program uses no CO-RE relocation, and parsing
    // /sys/kernel/btf/vmlinux would triple the process's memory.
    let mut ebpf = aya::EbpfLoader::new()
        .btf(None)
        .load(PROGRAM)
        .map_err(|e| match e {
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) => {
                Error::privileged("creating BPF maps", io_error)
            }
            e => Error::Bpf(format!("loading the program: {e}")),
        })?;
    let program: &mut Xdp = ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or_else(|| Error::Bpf("program missing from the object".into()))?
        .try_into()
        .map_err(bpf("program type"))?;
    program.load().map_err(|e| match e {
        aya::programs::ProgramError::SyscallError(s) => {
            Error::privileged("loading the XDP program", s.io_error)
        }
        e => Error::Bpf(format!("the kernel refused the program: {e}")),
    })?;
    let aya_mode = match mode {
        XdpMode::Skb => AyaXdpMode::Skb,
        XdpMode::Native => AyaXdpMode::Driver,
    };
    let link_id = program
        .attach_to_if_index(dev.ifindex, aya_mode)
        .map_err(|e| match e {
            aya::programs::ProgramError::SyscallError(s)
                if s.io_error.raw_os_error() == Some(libc::EBUSY)
                    || s.io_error.raw_os_error() == Some(libc::EEXIST) =>
            {
                Error::ForeignXdp(dev.name.clone())
            }
            e => Error::Bpf(format!(
                "attaching to {} in {} mode: {e}",
                dev.name,
                mode.name()
            )),
        })?;
    let link = FdLink::try_from(program.take_link(link_id).map_err(bpf("taking the link"))?)
        .map_err(|_| {
            // The kernel fell back to a netlink attachment, which cannot be
            // pinned and would outlive us unmanaged: refuse.
            Error::Bpf("the kernel does not support XDP bpf_links (needs Linux 5.9+)".into())
        })?;

    // Pin into a temporary directory and rename it into place, so that a
    // reader never sees a half-made directory.
    // (bpffs refuses names with a dot.)
    let tmp = PathBuf::from(format!("{}-tmp{}", dir.display(), std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    create_private_dir(&tmp)?;
    let pinned = pin_all(&mut ebpf, link, &tmp, mode).and_then(|()| {
        std::fs::rename(&tmp, dir).map_err(|e| Error::io("renaming the pin directory", e))
    });
    if pinned.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    pinned
}

/// Pins program, maps and link into `dir`. The link goes last: once it is
/// pinned, the program stays attached after we exit.
fn pin_all(ebpf: &mut Ebpf, link: FdLink, dir: &Path, mode: XdpMode) -> Result<()> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or_else(|| Error::Bpf("program missing from the object".into()))?
        .pin(dir.join("prog"))
        .map_err(bpf("pinning the program"))?;
    for name in [FLOWS_MAP, RINGS_MAP, SLOTS_MAP, COUNTERS_MAP] {
        ebpf.map(name)
            .ok_or_else(|| Error::Bpf(format!("map {name} missing from the object")))?
            .pin(dir.join(name))
            .map_err(bpf("pinning a map"))?;
    }
    link.pin(dir.join(mode.link_pin()))
        .map_err(bpf("pinning the link"))?;
    Ok(())
}

/// Removes the program from `dev` (unpinning the link detaches it).
/// Returns false if none was attached.
pub fn detach(dev: &NetDev) -> Result<bool> {
    let dir = pin_dir(dev)?;
    let _lock = lock()?;
    let attached = Attached::find(&dir, dev)?.is_some();
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|e| Error::io(format!("removing {}", dir.display()), e))?;
    }
    Ok(attached)
}

/// What `vipcheck xdp status` shows.
pub struct Status {
    pub mode: &'static str,
    pub program_id: u32,
    pub pin_dir: PathBuf,
    pub counters: Vec<(Counter, u64)>,
    pub flows: Vec<(FlowKey, u32, Option<FlowOwner>)>,
    /// Rare events the program logged (aya-log) since the last status.
    pub events: Vec<String>,
}

pub fn status(dev: &NetDev) -> Result<Option<Status>> {
    let dir = pin_dir(dev)?;
    let Some(attached) = Attached::find(&dir, dev)? else {
        return Ok(None);
    };
    let handle = XdpHandle::open_maps(dir.clone())?;
    Ok(Some(Status {
        mode: attached.mode.name(),
        program_id: attached.program_id,
        pin_dir: dir,
        counters: handle.counters()?,
        flows: handle.flows(),
        events: program_events(attached.program_id),
    }))
}

/// Takes the records the program logged with aya-log (ring full, ...).
/// Never per packet, so there are few; reading them consumes them.
fn program_events(program_id: u32) -> Vec<String> {
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<Vec<String>>>);
    impl log::Log for Collect {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            if let Ok(mut events) = self.0.lock() {
                events.push(format!("{}: {}", record.level(), record.args()));
            }
        }
        fn flush(&self) {}
    }

    let collect = Collect::default();
    match aya_log::EbpfLogger::init_from_id_with_logger(program_id, collect.clone()) {
        Ok(mut logger) => logger.flush(),
        Err(e) => log::debug!("no program log: {e}"),
    }
    let events = collect.0.lock().map(|e| e.clone());
    events.unwrap_or_default()
}

/// The interfaces of this network namespace that have our program pinned.
pub fn attached_here() -> Result<Vec<NetDev>> {
    let prefix = format!("ns{}-if", netns_inode()?);
    ensure_bpffs()?;
    let Ok(entries) = std::fs::read_dir(PIN_ROOT) else {
        return Ok(Vec::new());
    };
    let mut devs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(ifindex) = name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|i| i.parse::<u32>().ok())
        else {
            continue;
        };
        let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: buf has IF_NAMESIZE bytes, as if_indextoname requires.
        if unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) }.is_null() {
            continue;
        }
        // SAFETY: on success buf holds a NUL-terminated name.
        let ifname = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
        devs.push(NetDev::lookup(&ifname.to_string_lossy())?);
    }
    Ok(devs)
}

/// The (remote, local) endpoints of an IPv4 flow key (ports 0 for ARP).
pub fn endpoints(key: &FlowKey) -> (SocketAddrV4, SocketAddrV4) {
    let addr = |a: &[u8; 16]| Ipv4Addr::new(a[0], a[1], a[2], a[3]);
    (
        SocketAddrV4::new(addr(&key.remote_addr), u16::from_be_bytes(key.remote_port)),
        SocketAddrV4::new(addr(&key.local_addr), u16::from_be_bytes(key.local_port)),
    )
}

/// The pin directory of `dev`, mounting bpffs first if needed.
fn pin_dir(dev: &NetDev) -> Result<PathBuf> {
    ensure_bpffs()?;
    create_private_dir(Path::new(PIN_ROOT))?;
    Ok(Path::new(PIN_ROOT).join(format!("ns{}-if{}", netns_inode()?, dev.ifindex)))
}

/// Mounts bpffs on /sys/fs/bpf when it is not there (as bpftool does).
fn ensure_bpffs() -> Result<()> {
    if is_bpffs(Path::new(BPFFS)) {
        return Ok(());
    }
    let target = c_path(Path::new(BPFFS));
    // SAFETY: all arguments are valid NUL-terminated strings or null.
    let ret = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            target.as_ptr(),
            c"bpf".as_ptr(),
            0,
            c"mode=0700".as_ptr().cast(),
        )
    };
    if ret != 0 {
        return Err(Error::privileged(
            "mounting bpffs on /sys/fs/bpf",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

fn is_bpffs(path: &Path) -> bool {
    let c = c_path(path);
    // SAFETY: statfs is plain data; zeroed is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid path string and st a valid buffer.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC }
}

fn create_private_dir(path: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::privileged("creating the pin directory", e)),
    }
}

/// An exclusive lock over attach and detach, on the pin root directory.
fn lock() -> Result<File> {
    let dir = File::open(PIN_ROOT).map_err(|e| Error::io(format!("opening {PIN_ROOT}"), e))?;
    // SAFETY: flock on a valid fd; the lock is released when `dir` is closed.
    if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(Error::io(
            "locking the pin directory",
            io::Error::last_os_error(),
        ));
    }
    Ok(dir)
}

fn open_map(dir: &Path, name: &str) -> Result<Map> {
    let data = MapData::from_pin(dir.join(name)).map_err(bpf("opening a pinned map"))?;
    Map::from_map_data(data).map_err(bpf("opening a pinned map"))
}

fn c_path(path: &Path) -> std::ffi::CString {
    // Our paths are built from constants and numbers: no NUL inside.
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}

/// Maps an aya error to [`Error::Bpf`] with what we were doing.
fn bpf<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Bpf(format!("{what}: {e}"))
}

// The two bpf(2) calls aya does not expose for links: open a pinned object,
// and read an XDP link's interface index.

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path);
    // bpf_attr for BPF_OBJ_GET: pathname (u64), bpf_fd, file_flags, path_fd.
    let mut attr = [0u64; 3];
    attr[0] = c.as_ptr() as u64;
    // SAFETY: attr is a valid bpf_attr prefix of the size passed; the path
    // outlives the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

struct LinkInfo {
    prog_id: u32,
    /// 0 once the interface is gone.
    ifindex: u32,
}

fn link_info(link: &OwnedFd) -> io::Result<LinkInfo> {
    // struct bpf_link_info: type, id, prog_id (u32 each), then an 8-aligned
    // union whose xdp member starts with the ifindex (offset 16).
    let mut info = [0u32; 32];
    // bpf_attr for BPF_OBJ_GET_INFO_BY_FD: bpf_fd, info_len, info (u64).
    let mut attr = [0u32; 4];
    attr[0] = link.as_raw_fd() as u32;
    attr[1] = std::mem::size_of_val(&info) as u32;
    let ptr = info.as_mut_ptr() as u64;
    attr[2] = ptr as u32;
    attr[3] = (ptr >> 32) as u32;
    // SAFETY: attr is a valid bpf_attr prefix; info a writable buffer of the
    // length given in it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_OBJ_GET_INFO_BY_FD,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    const BPF_LINK_TYPE_XDP: u32 = 6;
    if info[0] != BPF_LINK_TYPE_XDP {
        return Err(io::Error::other("pinned link is not an XDP link"));
    }
    Ok(LinkInfo {
        prog_id: info[2],
        ifindex: info[4],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_start_time_is_readable() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn owner_liveness() {
        let me = current_owner(Duration::from_secs(1)).unwrap();
        let now = boottime_ns();
        assert!(is_alive(&me, now));
        assert!(!is_alive(&me, me.expires_ns + 1));
        let reused_pid = FlowOwner {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!is_alive(&reused_pid, now));
        let elsewhere = FlowOwner {
            pid_ns: me.pid_ns + 1,
            start_time: 0,
            ..me
        };
        assert!(is_alive(&elsewhere, now));
    }
}
