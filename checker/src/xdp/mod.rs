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

use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use aya::maps::{ArrayOfMaps, HashMap, Map, MapData, PerCpuArray, RingBuf};
use checker_common::{
    COUNTERS_MAP, Counter, FLOWS_MAP, FRAME_HEADER_LEN, FlowKey, FlowOwner, RING_SIZE, RINGS_MAP,
    SLOT_COUNT, SLOTS_MAP,
};

use crate::error::{Error, Result};
use crate::netdev::NetDev;
use crate::rtnl::XdpProgram;

mod owner;
mod pin;
mod sys;

use owner::{boottime_ns, current_owner, is_alive};
pub use pin::detach;
use pin::{Attached, attach, lock, open_map, pin_dir, sweep_defunct};

/// bpf_map_update_elem flag: fail if the key exists.
const BPF_NOEXIST: u64 = 1;

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
    pub fn name(self) -> &'static str {
        match self {
            XdpMode::Skb => "skb",
            XdpMode::Native => "native",
        }
    }

    fn link_pin(self) -> String {
        format!("link-{}", self.name())
    }
}

/// What [`XdpHandle::open_or_attach`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// The program was attached already, in this mode.
    Found(XdpMode),
    /// This process loaded and attached it.
    Loaded,
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
    /// attaches (in `mode`) and pins it. Serialized by a lock so that two
    /// first checks racing end with exactly one program. Says which it did.
    pub fn open_or_attach(dev: &NetDev, mode: XdpMode) -> Result<(XdpHandle, Attach)> {
        let dir = pin_dir(dev)?;
        let _lock = lock()?;
        let attach_result = if let Some(attached) = Attached::find(&dir, dev)? {
            Attach::Found(attached.mode)
        } else {
            let started = Instant::now();
            sweep_defunct();
            attach(&dir, dev, mode)?;
            log::debug!(
                "loaded and attached the XDP program to {} in {} mode in {:.1} ms",
                dev.name,
                mode.name(),
                started.elapsed().as_secs_f64() * 1000.0
            );
            Attach::Loaded
        };
        Ok((Self::open_maps(dir)?, attach_result))
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
    pub fn claim_slot(mut self, iface: &str, timeout: Duration, deadline: Instant) -> Result<Slot> {
        let owner = current_owner(timeout)?;
        let index = loop {
            if let Some(index) = self.take_free_slot(owner)? {
                break index;
            }
            if Instant::now() >= deadline {
                return Err(Error::Busy(format!(
                    "all {SLOT_COUNT} capture slots of {iface} were held by running checks until the deadline"
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
        };
        // Records a previous holder left when it was killed mid-flight.
        slot.drain(|_| {});
        Ok(slot)
    }

    /// Frees the slots of ended processes and takes the lowest free one
    /// (low slots already have their rings). Under the lock: a collector
    /// must not judge a slot that another process is taking at that moment.
    fn take_free_slot(&mut self, owner: FlowOwner) -> Result<Option<u32>> {
        let _lock = lock()?;
        let freed = self.collect_dead();
        if freed > 0 {
            log::debug!("freed {freed} capture slots of ended processes");
        }
        Ok((0..SLOT_COUNT).find(|&index| self.slots.insert(index, owner, BPF_NOEXIST).is_ok()))
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
        for key in self.keys.drain(..) {
            let _ = self.handle.flows.remove(&key);
        }
        let _ = self.handle.slots.remove(&self.index);
    }
}

/// What `vipcheck xdp status` finds on an interface.
pub enum Status {
    /// No XDP program at all.
    None,
    /// An XDP program that is not vipcheck's (no pins of ours for it).
    Foreign(XdpProgram),
    /// Ours, with what it reports.
    Ours(Box<Report>),
}

/// What the program of an interface reports.
pub struct Report {
    pub mode: &'static str,
    pub program_id: u32,
    pub pin_dir: PathBuf,
    pub counters: Vec<(Counter, u64)>,
    pub flows: Vec<(FlowKey, u32, Option<FlowOwner>)>,
    /// Rare events the program logged (aya-log) since the last status.
    pub events: Vec<String>,
}

/// The XDP state of `dev`, as far as this process can see it. The kernel
/// tells anyone whether a program is attached; our pins need root, and a
/// private /sys/fs/bpf (`ip netns exec`) hides them: both are errors here
/// (exit 3), never "nothing attached".
pub fn status(dev: &NetDev) -> Result<Status> {
    let link = crate::rtnl::link(dev.ifindex)
        .map_err(|e| Error::on_interface(&dev.name, "reading its XDP state", e))?;
    let Some(program) = link.xdp else {
        return Ok(Status::None);
    };
    let dir = pin_dir(dev)?;
    match Attached::find(&dir, dev)? {
        Some(attached) if attached.program_id == program.id => {
            let handle = XdpHandle::open_maps(dir.clone())?;
            Ok(Status::Ours(Box::new(Report {
                mode: attached.mode.name(),
                program_id: attached.program_id,
                pin_dir: dir,
                counters: handle.counters()?,
                flows: handle.flows(),
                events: program_events(attached.program_id),
            })))
        }
        _ if pin::private_mounts() => Err(Error::Interface(format!(
            "an XDP program (id {}) is attached to {}, but this process has a private \
             /sys/fs/bpf where vipcheck's pins are not visible (as under ip netns exec); \
             run vipcheck with nsenter --net=/run/netns/NAME",
            program.id, dev.name
        ))),
        _ => Ok(Status::Foreign(program)),
    }
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
/// attached (vipcheck's or another), as the kernel reports them.
pub fn attached_here() -> Result<Vec<NetDev>> {
    let links =
        crate::rtnl::links().map_err(|e| Error::io("listing the interfaces (rtnetlink)", e))?;
    links
        .iter()
        .filter(|link| link.xdp.is_some())
        .map(|link| NetDev::lookup(&link.name))
        .collect()
}

/// The (remote, local) endpoints of an IPv4 flow key (ports 0 for ARP).
pub fn endpoints(key: &FlowKey) -> (SocketAddrV4, SocketAddrV4) {
    let addr = |a: &[u8; 16]| Ipv4Addr::new(a[0], a[1], a[2], a[3]);
    (
        SocketAddrV4::new(addr(&key.remote_addr), u16::from_be_bytes(key.remote_port)),
        SocketAddrV4::new(addr(&key.local_addr), u16::from_be_bytes(key.local_port)),
    )
}

/// The frame inside one ring-buffer record (header + frame bytes).
fn record_frame(record: &[u8]) -> Option<&[u8]> {
    let len = u32::from_ne_bytes(record.get(..4)?.try_into().ok()?) as usize;
    record.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN.checked_add(len)?)
}

/// Maps an aya error to [`Error::Bpf`] with what we were doing.
fn bpf<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> Error {
    move |e| Error::Bpf(format!("{what}: {e}"))
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
}
