//! The shared capture program of one interface: load, attach, find again,
//! register flows, collect the flows of dead processes, report, detach.
//!
//! One program serves every vipcheck process on an interface. The first one
//! (or `vipcheck xdp attach`) loads it and attaches it, at XDP through
//! netlink or at TC ingress through tcx without a link: either way an
//! attachment that belongs to the interface. Later processes find it from
//! the interface (program id, then its maps by id: see [`program`]), open
//! its maps and only add and remove flow entries. Nothing is pinned, so a
//! process sees the same program whatever its mount namespace (`ip netns
//! exec`, a container, `nsenter --net`).
//!
//! XDP is the default: it takes our replies before the kernel allocates
//! anything for them. An interface whose XDP hook another program holds
//! (a DDoS filter, libxdp's dispatcher, ...) gets the TC program instead,
//! first at tcx ingress: the other program runs first and untouched, and
//! what it passes of ours is taken before the IP stack sees it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use aya::maps::{ArrayOfMaps, HashMap, Map, MapData, PerCpuArray, RingBuf};
use checker_common::{
    Counter, FRAME_HEADER_LEN, FlowKey, FlowOwner, RING_SIZE, SLOT_COUNT, SMALL_RING_FIRST,
    SMALL_RING_SIZE,
};

use crate::error::{Error, Result};
use crate::sys::netdev::NetDev;
use crate::sys::rtnl::XdpProgram;

mod lock;
mod netlink;
mod owner;
mod ports;
mod program;
mod sys;

use lock::{Scope, lock};
use owner::{boottime_ns, current_owner, is_alive};
use ports::PortCounts;
pub(crate) use program::detach;
use program::{Found, Program, foreign};

/// bpf_map_update_elem flag: fail if the key exists.
const BPF_NOEXIST: u64 = 1;

/// Attach mode of the XDP program.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum XdpMode {
    /// Generic XDP: works on every device (veth, VLAN, bond) and never resets a NIC.
    #[default]
    Skb,
    /// Driver XDP: faster, needs driver support.
    Native,
}

impl XdpMode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            XdpMode::Skb => "skb",
            XdpMode::Native => "native",
        }
    }
}

/// Where the capture program is attached, when none of vipcheck's is yet
/// (`--capture`). One of vipcheck's that is attached serves, wherever it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CaptureHook {
    /// XDP, unless another XDP program is attached (in any mode, libxdp's
    /// dispatcher included): then TC ingress.
    #[default]
    Auto,
    /// XDP only; another XDP program is an error.
    Xdp,
    /// TC ingress (tcx, Linux 6.6+), first, beside whatever else is there.
    Tc,
}

impl CaptureHook {
    /// The hook to attach to on `iface`, whose XDP program (another's) is
    /// `xdp`, if any.
    fn hook(self, mode: XdpMode, xdp: Option<XdpProgram>, iface: &str) -> Result<Hook> {
        match (self, xdp) {
            (CaptureHook::Xdp, Some(program)) => Err(foreign(iface, program)),
            (CaptureHook::Xdp | CaptureHook::Auto, None) => Ok(Hook::Xdp(mode)),
            (CaptureHook::Auto, Some(_)) => Ok(Hook::Tc),
            (CaptureHook::Tc, _) => Ok(Hook::Tc),
        }
    }
}

/// Where vipcheck's program captures on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hook {
    Xdp(XdpMode),
    /// TC ingress, through tcx.
    Tc,
}

impl Hook {
    /// "XDP (skb mode)", "XDP (native mode)", "TC ingress".
    pub(crate) fn name(self) -> &'static str {
        match self {
            Hook::Xdp(XdpMode::Skb) => "XDP (skb mode)",
            Hook::Xdp(XdpMode::Native) => "XDP (native mode)",
            Hook::Tc => "TC ingress",
        }
    }

    /// "xdp" or "tc", as `--capture` names them.
    pub(crate) fn short(self) -> &'static str {
        match self {
            Hook::Xdp(_) => "xdp",
            Hook::Tc => "tc",
        }
    }
}

/// What [`XdpHandle::open_or_attach`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Attach {
    /// The program was attached already, at this hook.
    Found(Hook),
    /// This process loaded and attached it.
    Loaded,
}

/// Which capture slots a claim takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rings {
    /// Slots with a ring of [`RING_SIZE`]: any check, many flows.
    Large,
    /// A slot with a small ring first (one handshake: a one-shot tcp
    /// check), a large one when every small one is taken.
    SmallFirst,
}

impl Rings {
    /// The slots to try, in order.
    fn order(self) -> impl Iterator<Item = u32> {
        let small = match self {
            Rings::Large => 0..0,
            Rings::SmallFirst => SMALL_RING_FIRST..SLOT_COUNT,
        };
        small.chain(0..SMALL_RING_FIRST)
    }
}

/// Handles on the maps of one interface's program.
pub(crate) struct XdpHandle {
    /// The program's id: the scope of the slot lock.
    program_id: u32,
    hook: Hook,
    flows: HashMap<MapData, FlowKey, u32>,
    rings: ArrayOfMaps<MapData>,
    slots: HashMap<MapData, u32, FlowOwner>,
    counters: PerCpuArray<MapData, u64>,
    ports: PortCounts,
}

impl XdpHandle {
    /// Opens vipcheck's program on `dev`, found from the interface (at XDP
    /// or TC ingress); when there is none, loads it and attaches it where
    /// `choice` says, at XDP in `mode`. Two processes attaching at once
    /// (from any mount namespace) end with one program, which both use.
    /// Says which it did. Another program on `dev` is never replaced; with
    /// `--capture xdp`, another XDP program is [`Error::ForeignXdp`].
    pub(crate) fn open_or_attach(
        dev: &NetDev,
        choice: CaptureHook,
        mode: XdpMode,
    ) -> Result<(XdpHandle, Attach)> {
        // What `dev` says is attached, if it was read just now (a one-shot
        // check's preflight): one rtnetlink request less. A program gone
        // since is asked for again; one attached since is found by the
        // attach, which asks under the lock.
        let seen = dev.xdp_seen_within(Duration::from_millis(50));
        let (program, attach) = match program::find_from(dev, seen)? {
            Found::Ours(program) => {
                let hook = program.hook;
                (program, Attach::Found(hook))
            }
            Found::None { xdp } => {
                // Refused before taking the lock, as the attach would.
                choice.hook(mode, xdp, &dev.name)?;
                match program::attach(dev, choice, mode)? {
                    (program, true) => (program, Attach::Loaded),
                    (program, false) => {
                        let hook = program.hook;
                        (program, Attach::Found(hook))
                    }
                }
            }
        };
        Ok((Self::open(program)?, attach))
    }

    /// The id of the program whose maps these are.
    pub(crate) fn program_id(&self) -> u32 {
        self.program_id
    }

    /// Where that program captures.
    pub(crate) fn hook(&self) -> Hook {
        self.hook
    }

    fn open(program: Box<Program>) -> Result<XdpHandle> {
        let program = *program;
        let map = |data| Map::from_map_data(data).map_err(bpf("opening a map"));
        Ok(XdpHandle {
            program_id: program.id,
            hook: program.hook,
            ports: PortCounts::map(program.ports)
                .map_err(|e| Error::bpf("mapping the PORTS map", e))?,
            flows: HashMap::try_from(map(program.flows)?).map_err(bpf("FLOWS map"))?,
            rings: ArrayOfMaps::try_from(map(program.rings)?).map_err(bpf("RINGS map"))?,
            slots: HashMap::try_from(map(program.slots)?).map_err(bpf("SLOTS map"))?,
            counters: PerCpuArray::try_from(map(program.counters)?).map_err(bpf("COUNTERS map"))?,
        })
    }

    /// Takes a free capture slot for this process until `deadline` (plus a
    /// grace period) has passed, first freeing the slots of processes that
    /// ended. Its ring is created the first time the slot is used and kept
    /// for later processes, so a warm check changes no map-in-map entry.
    pub(crate) fn claim_slot(
        mut self,
        iface: &str,
        timeout: Duration,
        deadline: Instant,
        rings: Rings,
    ) -> Result<Slot> {
        let owner = current_owner(timeout)?;
        let index = loop {
            if let Some(index) = self.take_free_slot(owner, rings)? {
                break index;
            }
            if Instant::now() >= deadline {
                return Err(Error::Busy(format!(
                    "all {} capture slots of {iface} were held by running checks until the deadline",
                    rings.order().count()
                )));
            }
            // Only when every slot is taken: a warm check holds one for
            // about a millisecond.
            std::thread::sleep(Duration::from_millis(2));
        };
        // Outside the lock: creating a slot's first ring makes the kernel
        // wait for an RCU grace period, and the slot is ours already.
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
            collected: None,
        };
        // Records a previous holder left when it was killed mid-flight.
        slot.drain(|_| {});
        Ok(slot)
    }

    /// Frees the slots of ended processes and takes the first free one of
    /// `rings` (low slots of each kind already have their rings). Under
    /// the lock: a collector must not judge a slot that another process is
    /// taking at that moment.
    fn take_free_slot(&mut self, owner: FlowOwner, rings: Rings) -> Result<Option<u32>> {
        let _lock = lock(Scope::Slots(self.program_id))?;
        let freed = self.collect_dead();
        if freed > 0 {
            log::debug!("freed {freed} capture slots of ended processes");
        }
        Ok(rings
            .order()
            .find(|&index| self.slots.insert(index, owner, BPF_NOEXIST).is_ok()))
    }

    /// The ring of slot `index`, created and inserted on its first use
    /// (small from [`SMALL_RING_FIRST`] on; large where the kernel takes
    /// only rings of the template's size, before Linux 5.10).
    fn slot_ring(&mut self, index: u32) -> Result<RingBuf<MapData>> {
        let data = match self.rings.get(&index, 0) {
            Ok(data) => data,
            Err(_) if index >= SMALL_RING_FIRST => self
                .insert_ring(index, SMALL_RING_SIZE)
                .or_else(|_| self.insert_ring(index, RING_SIZE))?,
            Err(_) => self.insert_ring(index, RING_SIZE)?,
        };
        RingBuf::try_from(Map::RingBuf(data)).map_err(bpf("ring buffer"))
    }

    fn insert_ring(&mut self, index: u32, size: u32) -> Result<MapData> {
        let obj = aya_obj::Map::new_from_params(
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
            0,
            0,
            size,
            0,
        );
        let data =
            MapData::create(obj, "vipcheck_ring", None).map_err(bpf("creating a ring buffer"))?;
        self.rings
            .set(index, &data, 0)
            .map_err(bpf("inserting a ring buffer"))?;
        Ok(data)
    }

    /// Frees the slots (and their flows) whose owner process has ended, or
    /// whose entry is long past its deadline. A dead owner's flow entries
    /// would keep eating those flows' frames, so this runs before every
    /// check. Returns how many slots were freed.
    pub(crate) fn collect_dead(&mut self) -> usize {
        let now = boottime_ns();
        let dead: Vec<u32> = self
            .slots
            .iter()
            .filter_map(std::result::Result::ok)
            .filter(|(_, owner)| !is_alive(owner, now))
            .map(|(index, _)| index)
            .collect();
        if dead.is_empty() {
            return 0;
        }
        let stale: Vec<FlowKey> = self
            .flows
            .iter()
            .filter_map(std::result::Result::ok)
            .filter(|(_, slot)| dead.contains(slot))
            .map(|(key, _)| key)
            .collect();
        // Flows first, then their slot: a flow entry always has an owner.
        for key in &stale {
            self.remove_flow(key);
        }
        for index in &dead {
            let _ = self.slots.remove(index);
        }
        dead.len()
    }

    /// Inserts a flow for slot `index`, counted in PORTS first (so that the
    /// program never sees a flow whose port counts zero).
    fn insert_flow(
        &mut self,
        key: FlowKey,
        index: u32,
    ) -> std::result::Result<(), aya::maps::MapError> {
        self.ports.add(&key);
        let inserted = self.flows.insert(key, index, BPF_NOEXIST);
        if inserted.is_err() {
            self.ports.sub(&key);
        }
        inserted
    }

    /// Removes a flow; uncounts it in PORTS if this call removed it
    /// (another process collecting the dead may have been first).
    fn remove_flow(&mut self, key: &FlowKey) {
        if self.flows.remove(key).is_ok() {
            self.ports.sub(key);
        }
    }

    /// The registered flows with their slot and its owner.
    pub(crate) fn flows(&self) -> Vec<(FlowKey, u32, Option<FlowOwner>)> {
        // Walking a hash map while entries are removed can restart from
        // its beginning and list a key twice: each key once.
        let mut seen = std::collections::HashSet::new();
        self.flows
            .iter()
            .filter_map(std::result::Result::ok)
            .filter(|(key, _)| seen.insert(*key))
            .map(|(key, slot)| (key, slot, self.slots.get(&slot, 0).ok()))
            .collect()
    }

    /// The program's verdict counters, summed over CPUs.
    pub(crate) fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        Counter::ALL
            .iter()
            .map(|&c| {
                let per_cpu = self
                    .counters
                    .get(&(c as u32), 0)
                    .map_err(bpf("reading counters"))?;
                Ok((c, per_cpu.iter().sum()))
            })
            .collect()
    }
}

/// A capture slot held by this process: the XDP program copies the frames
/// of the flows registered on it into its ring. Dropping it removes those
/// flows, then frees the slot.
pub(crate) struct Slot {
    handle: XdpHandle,
    index: u32,
    ring: RingBuf<MapData>,
    keys: Vec<FlowKey>,
    /// When a taken key last made this slot collect the dead.
    collected: Option<Instant>,
}

impl Slot {
    /// Sends the frames of `key` to this slot. False if another live
    /// process already registered the same key (two checks resolving the
    /// same real server from the same address share one ARP key).
    pub(crate) fn register(&mut self, key: FlowKey) -> Result<bool> {
        for attempt in 0..2 {
            match self.handle.insert_flow(key, self.index) {
                Ok(()) => {
                    self.keys.push(key);
                    return Ok(true);
                }
                Err(aya::maps::MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::EEXIST) =>
                {
                    // The key may be a process's that was killed after
                    // this one took its slot (a long-lived engine claims
                    // once): collect the dead, then try once more.
                    // At most every 100 ms: a live holder (another check
                    // resolving the same real server) is waited for by
                    // retrying, not by collecting each time.
                    let due = self
                        .collected
                        .is_none_or(|at| at.elapsed() >= Duration::from_millis(100));
                    if attempt > 0 || !due {
                        return Ok(false);
                    }
                    self.collected = Some(Instant::now());
                    if self.collect_dead()? == 0 {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(Error::bpf("registering a flow", e)),
            }
        }
        Ok(false)
    }

    /// Frees the slots and flows of processes that ended (under the slot
    /// lock, as a claim does); how many slots. A long-lived engine calls
    /// it now and then: otherwise only a claim collects.
    pub(crate) fn collect_dead(&mut self) -> Result<usize> {
        let _lock = lock(Scope::Slots(self.handle.program_id))?;
        Ok(self.handle.collect_dead())
    }

    /// Stops capturing `key`.
    pub(crate) fn unregister(&mut self, key: &FlowKey) {
        if let Some(i) = self.keys.iter().position(|k| k == key) {
            self.handle.remove_flow(key);
            self.keys.swap_remove(i);
        }
    }

    /// Keeps the slot this process's for `lease` more: a long-running
    /// engine renews it well before it expires, or a later check would
    /// judge it stale and free it.
    pub(crate) fn renew(&mut self, lease: Duration) -> Result<()> {
        let owner = current_owner(lease)?;
        self.handle
            .slots
            .insert(self.index, owner, 0)
            .map_err(bpf("renewing the capture slot"))
    }

    /// The program's verdict counters, summed over CPUs.
    pub(crate) fn counters(&self) -> Result<Vec<(Counter, u64)>> {
        self.handle.counters()
    }

    /// Where the program captures.
    pub(crate) fn hook(&self) -> Hook {
        self.handle.hook
    }

    /// Takes every record waiting in the ring, calling `f` with each frame.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(&[u8])) {
        while let Some(item) = self.ring.next() {
            if let Some(frame) = record_frame(&item) {
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
        for key in std::mem::take(&mut self.keys) {
            self.handle.remove_flow(&key);
        }
        let _ = self.handle.slots.remove(&self.index);
    }
}

/// What `vipcheck xdp status` finds on an interface.
pub(crate) enum Status {
    /// None of vipcheck's programs; `xdp`: another's XDP program, if any;
    /// `tc`: the ids of others' programs at tcx ingress.
    None {
        xdp: Option<XdpProgram>,
        tc: Vec<u32>,
    },
    /// Ours, with what it reports.
    Ours(Box<Report>),
}

/// What the program of an interface reports.
pub(crate) struct Report {
    pub(crate) hook: Hook,
    /// Another's XDP program on the interface (beside ours at TC).
    pub(crate) foreign_xdp: Option<XdpProgram>,
    /// The other programs at tcx ingress (after ours, when ours is there).
    pub(crate) foreign_tc: Vec<u32>,
    pub(crate) program_id: u32,
    /// The ids of its maps by name (FLOWS, RINGS, SLOTS, COUNTERS), for
    /// `bpftool map dump id N`.
    pub(crate) maps: Vec<(&'static str, u32)>,
    pub(crate) counters: Vec<(Counter, u64)>,
    pub(crate) flows: Vec<(FlowKey, u32, Option<FlowOwner>)>,
    /// Rare events the program logged (aya-log) since the last status.
    pub(crate) events: Vec<String>,
}

/// Map ids as `FLOWS id 12, RINGS id 13, ...`.
pub(crate) fn map_list(maps: &[(&'static str, u32)]) -> String {
    maps.iter()
        .map(|(name, id)| format!("{name} id {id}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The XDP state of `dev`. The kernel tells anyone whether a program is
/// attached; whether it is vipcheck's needs root (to open it): without
/// root that is an error (exit 3), never "nothing attached".
pub(crate) fn status(dev: &NetDev) -> Result<Status> {
    let found = program::find(dev)?;
    let tc = program::tc_programs(dev)?;
    let program = match found {
        Found::None { xdp } => return Ok(Status::None { xdp, tc }),
        Found::Ours(program) => program,
    };
    let foreign_xdp = match program.hook {
        Hook::Tc => crate::sys::rtnl::link(dev.ifindex)
            .map_err(|e| Error::on_interface(&dev.name, "reading its XDP state", e))?
            .xdp
            .filter(|x| x.id != program.id),
        Hook::Xdp(_) => None,
    };
    let (program_id, hook, maps) = (program.id, program.hook, program.map_ids.clone());
    let foreign_tc = tc.into_iter().filter(|&id| id != program_id).collect();
    let handle = XdpHandle::open(program)?;
    Ok(Status::Ours(Box::new(Report {
        hook,
        foreign_xdp,
        foreign_tc,
        program_id,
        maps,
        counters: handle.counters()?,
        flows: handle.flows(),
        events: program_events(program_id),
    })))
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

/// The interfaces of this network namespace that have an XDP program
/// attached or a program at tcx ingress (vipcheck's or another's), as
/// the kernel reports them. Listing tcx needs privileges: without them
/// this is an error, never "nothing attached".
pub(crate) fn attached_here() -> Result<Vec<NetDev>> {
    let links = crate::sys::rtnl::links()
        .map_err(|e| Error::io("listing the interfaces (rtnetlink)", e))?;
    let mut devs = Vec::new();
    for link in &links {
        let dev = NetDev::lookup(&link.name)?;
        if link.xdp.is_some() || !program::tc_programs(&dev)?.is_empty() {
            devs.push(dev);
        }
    }
    Ok(devs)
}

/// Whether program `id` still captures on `ifindex` at `hook` (a port of
/// a long-running engine is closed once it does not).
pub(crate) fn still_attached(ifindex: u32, hook: Hook, id: u32, xdp: Option<XdpProgram>) -> bool {
    match hook {
        Hook::Xdp(_) => xdp.map(|x| x.id) == Some(id),
        Hook::Tc => program::tc_program_ids(ifindex).is_ok_and(|ids| ids.contains(&id)),
    }
}

/// The (remote, local) endpoints of a flow key (ports 0 for ARP and NDP).
pub(crate) fn endpoints(key: &FlowKey) -> (SocketAddr, SocketAddr) {
    let v6 = matches!(
        key.family,
        checker_common::FAMILY_IPV6 | checker_common::FAMILY_NDP
    );
    let addr = |a: &[u8; 16]| -> IpAddr {
        if v6 {
            Ipv6Addr::from(*a).into()
        } else {
            Ipv4Addr::new(a[0], a[1], a[2], a[3]).into()
        }
    };
    (
        SocketAddr::new(addr(&key.remote_addr), u16::from_be_bytes(key.remote_port)),
        SocketAddr::new(addr(&key.local_addr), u16::from_be_bytes(key.local_port)),
    )
}

/// The frame inside one ring-buffer record (header + frame bytes), if the
/// record holds as many bytes as its header says (public for the fuzz
/// targets).
pub fn record_frame(record: &[u8]) -> Option<&[u8]> {
    let len = u32::from_ne_bytes(record.get(..4)?.try_into().ok()?) as usize;
    record.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN.checked_add(len)?)
}

/// Maps an aya error to [`Error::Bpf`] with what we were doing.
fn bpf<E: std::error::Error + Send + Sync + 'static>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::bpf(what, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_bounded() {
        let mut record = vec![0u8; FRAME_HEADER_LEN + 4];
        record[..4].copy_from_slice(&4u32.to_ne_bytes());
        assert_eq!(record_frame(&record).map(<[u8]>::len), Some(4));
        record[..4].copy_from_slice(&5u32.to_ne_bytes());
        assert_eq!(record_frame(&record), None);
        record[..4].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert_eq!(record_frame(&record), None);
        assert_eq!(record_frame(&[1, 2]), None);
    }

    #[test]
    fn small_rings_first_then_large_ones_large_only_large() {
        let small_first: Vec<u32> = Rings::SmallFirst.order().collect();
        let large: Vec<u32> = Rings::Large.order().collect();
        assert_eq!(small_first.len(), SLOT_COUNT as usize);
        assert_eq!(small_first[0], SMALL_RING_FIRST);
        assert_eq!(small_first[(SLOT_COUNT - SMALL_RING_FIRST) as usize], 0);
        assert_eq!(large, (0..SMALL_RING_FIRST).collect::<Vec<_>>());
        assert!(small_first.ends_with(&large));
    }
}
