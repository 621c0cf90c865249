//! Finding vipcheck's program on an interface, loading and attaching it,
//! detaching it: all from the kernel's own state, so that every process
//! finds the same program whatever its mount namespace.
//!
//! The interface says which program is attached (rtnetlink, anyone may
//! ask). It is vipcheck's when the kernel names it [`PROGRAM_NAME`] and its
//! maps (opened by id, root only) are FLOWS, RINGS, SLOTS and COUNTERS with
//! the layouts this build uses. SLOTS, which only userspace uses, is bound
//! to the program (BPF_PROG_BIND_MAP) so that it lives and is listed with
//! it.
//!
//! The program is attached through netlink with XDP_FLAGS_UPDATE_IF_NOEXIST:
//! the attachment belongs to the interface and stays after the process
//! ends, and of two processes attaching at once (even from mount
//! namespaces that share no lock) the kernel lets one win; the other gets
//! EBUSY, drops its copy and uses the winner's. It is detached with
//! XDP_FLAGS_REPLACE and the program as the expected one, so that a detach
//! never removes a program that is not the one it found.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use aya::maps::{IterableMap, MapData};
use aya::programs::{SchedClassifier, Xdp};
use aya_obj::generated::bpf_map_type;
use checker_common::{
    COUNTERS_MAP, Counter, FLOWS_MAP, FlowKey, FlowOwner, PORT_COUNT, PORTS_MAP, PROGRAM_NAME,
    RINGS_MAP, SLOT_COUNT, SLOTS_MAP, TC_PROGRAM_NAME,
};

use super::lock::{Scope, lock};
use super::netlink::{
    SetError, XDP_FLAGS_DRV_MODE, XDP_FLAGS_REPLACE, XDP_FLAGS_SKB_MODE,
    XDP_FLAGS_UPDATE_IF_NOEXIST, set_xdp,
};
use super::sys::{self, MapInfo};
use super::{CaptureHook, Hook, XdpMode, bpf};
use crate::error::{Error, Result};
use crate::sys::netdev::NetDev;
use crate::sys::rtnl::XdpProgram;

/// The XDP object, built by build.rs from `checker-ebpf`.
static PROGRAM: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/vipcheck-xdp"));

const BPF_PROG_TYPE_SCHED_CLS: u32 = 3;
const BPF_PROG_TYPE_XDP: u32 = 6;

/// What captures on an interface.
pub(super) enum Found {
    /// vipcheck's program, at XDP or TC ingress.
    Ours(Box<Program>),
    /// None of vipcheck's; `xdp`: another's XDP program, if there is one.
    None { xdp: Option<XdpProgram> },
}

/// vipcheck's program on an interface, with its maps open.
pub(super) struct Program {
    pub(super) id: u32,
    pub(super) hook: Hook,
    fd: OwnedFd,
    pub(super) flows: MapData,
    pub(super) rings: MapData,
    pub(super) slots: MapData,
    pub(super) counters: MapData,
    pub(super) ports: MapData,
    /// The maps' ids, by name.
    pub(super) map_ids: Vec<(&'static str, u32)>,
}

/// Which of vipcheck's programs captures on `dev`: at XDP first, then at
/// TC ingress. Without root, an attached program cannot be opened: that
/// is an error ("needs root"), never "none".
pub(super) fn find(dev: &NetDev) -> Result<Found> {
    find_from(dev, None)
}

/// [`find`], starting from `seen`, what the interface said a moment ago
/// (when `dev` was read) of its XDP program, rather than asking again.
pub(super) fn find_from(dev: &NetDev, mut seen: Option<Option<XdpProgram>>) -> Result<Found> {
    // The program may go between reading its id and opening it: ask again.
    for _ in 0..3 {
        let attached = match seen.take() {
            Some(attached) => attached,
            None => {
                crate::sys::rtnl::link(dev.ifindex)
                    .map_err(|e| Error::on_interface(&dev.name, "reading its XDP state", e))?
                    .xdp
            }
        };
        let Some(attached) = attached else {
            return find_tc(dev, None);
        };
        let mode = match attached.mode {
            "skb" => XdpMode::Skb,
            "native" => XdpMode::Native,
            _ => return find_tc(dev, Some(attached)),
        };
        let Some(prog) = open_prog(attached.id, "opening the attached XDP program")? else {
            continue;
        };
        return match identify(attached.id, Hook::Xdp(mode), prog)? {
            Some(program) => Ok(Found::Ours(program)),
            None => find_tc(dev, Some(attached)),
        };
    }
    Err(Error::bpf_found(format!(
        "the XDP program of {} keeps changing",
        dev.name
    )))
}

/// vipcheck's program at tcx ingress of `dev`, if there is one; `xdp`:
/// another's XDP program found first.
fn find_tc(dev: &NetDev, xdp: Option<XdpProgram>) -> Result<Found> {
    let ids = tc_programs(dev)?;
    for id in ids {
        let Some(prog) = open_prog(id, "opening a program at TC ingress")? else {
            continue;
        };
        if let Some(program) = identify(id, Hook::Tc, prog)? {
            return Ok(Found::Ours(program));
        }
    }
    Ok(Found::None { xdp })
}

/// The ids of the programs at tcx ingress of `dev` (empty without tcx).
pub(super) fn tc_programs(dev: &NetDev) -> Result<Vec<u32>> {
    sys::tcx_programs(dev.ifindex).map_err(|e| {
        if e.raw_os_error() == Some(libc::EPERM) {
            Error::privileged("listing the TC ingress programs", "CAP_SYS_ADMIN", e)
        } else {
            Error::on_interface(&dev.name, "reading its TC programs", e)
        }
    })
}

/// [`tc_programs`] by index, for a quick look (errors are the caller's).
pub(super) fn tc_program_ids(ifindex: u32) -> std::io::Result<Vec<u32>> {
    sys::tcx_programs(ifindex)
}

/// Program `id`, opened; None once it is gone.
fn open_prog(id: u32, what: &'static str) -> Result<Option<OwnedFd>> {
    match sys::prog_by_id(id) {
        Ok(fd) => Ok(Some(fd)),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(Error::privileged(what, "CAP_SYS_ADMIN", e)),
    }
}

/// Whether `prog` (program `id`, found at `hook`) is vipcheck's, and its
/// maps if so.
fn identify(id: u32, hook: Hook, prog: OwnedFd) -> Result<Option<Box<Program>>> {
    let info =
        sys::prog_info(prog.as_fd()).map_err(|e| Error::io("reading the BPF program's info", e))?;
    let (prog_type, name) = match hook {
        Hook::Xdp(_) => (BPF_PROG_TYPE_XDP, PROGRAM_NAME),
        Hook::Tc => (BPF_PROG_TYPE_SCHED_CLS, TC_PROGRAM_NAME),
    };
    if info.prog_type != prog_type || info.name != name {
        return Ok(None);
    }
    let mut maps: [Option<MapData>; 5] = Default::default();
    let mut map_ids = Vec::new();
    for &map_id in &info.map_ids {
        let fd = match sys::map_by_id(map_id) {
            Ok(fd) => fd,
            Err(e) => {
                return Err(Error::privileged(
                    "opening the XDP program's maps",
                    "CAP_SYS_ADMIN",
                    e,
                ));
            }
        };
        let map = sys::map_info(fd.as_fd()).map_err(|e| Error::io("reading a map's info", e))?;
        let Some(i) = OURS.iter().position(|&name| name == map.name) else {
            continue;
        };
        if !fits(OURS[i], &map) {
            log::debug!(
                "program {id} is named {name}, but its map {} is not laid out as this \
                 vipcheck's: another version's; not ours",
                map.name
            );
            return Ok(None);
        }
        map_ids.push((OURS[i], map_id));
        maps[i] = Some(MapData::from_fd(fd).map_err(bpf("opening a map"))?);
    }
    if maps[SLOTS].is_none() {
        // Attached by an earlier version, which pinned SLOTS instead.
        if let Some((id, slots)) = unbound_slots(info.btf_id, prog.as_fd()) {
            map_ids.push((SLOTS_MAP, id));
            maps[SLOTS] = Some(slots);
        }
    }
    let [
        Some(flows),
        Some(rings),
        Some(slots),
        Some(counters),
        Some(ports),
    ] = maps
    else {
        log::debug!("program {id} is named {name}, but lacks some of vipcheck's maps; not ours");
        return Ok(None);
    };
    map_ids.sort_by_key(|(name, _)| OURS.iter().position(|n| n == name));
    Ok(Some(Box::new(Program {
        id,
        hook,
        fd: prog,
        flows,
        rings,
        slots,
        counters,
        ports,
        map_ids,
    })))
}

/// Our maps, in the order of `Program`'s fields.
const OURS: [&str; 5] = [FLOWS_MAP, RINGS_MAP, SLOTS_MAP, COUNTERS_MAP, PORTS_MAP];
const SLOTS: usize = 2;

/// Whether a map named as one of ours has the layout this build uses.
fn fits(name: &str, map: &MapInfo) -> bool {
    use std::mem::size_of;
    let (map_type, key, value, entries) = match name {
        FLOWS_MAP => (bpf_map_type::BPF_MAP_TYPE_HASH, size_of::<FlowKey>(), 4, 1),
        RINGS_MAP => (
            bpf_map_type::BPF_MAP_TYPE_ARRAY_OF_MAPS,
            4,
            4,
            SLOT_COUNT as usize,
        ),
        SLOTS_MAP => (
            bpf_map_type::BPF_MAP_TYPE_HASH,
            4,
            size_of::<FlowOwner>(),
            SLOT_COUNT as usize,
        ),
        PORTS_MAP => (bpf_map_type::BPF_MAP_TYPE_ARRAY, 4, 8, PORT_COUNT as usize),
        _ => (
            bpf_map_type::BPF_MAP_TYPE_PERCPU_ARRAY,
            4,
            8,
            Counter::ALL.len(),
        ),
    };
    // The counts are shared through a memory mapping.
    let flags = if name == PORTS_MAP {
        aya_obj::generated::BPF_F_MMAPABLE
    } else {
        0
    };
    map.map_type == map_type as u32
        && map.map_flags & flags == flags
        && map.key_size as usize == key
        && map.value_size as usize == value
        && map.max_entries as usize >= entries
}

/// The SLOTS map of a program that an earlier version loaded (it pinned
/// the map rather than bind it): the map of that name made from the same
/// object, which shares the program's BTF. Bound to the program now, so
/// that the next process finds it at once.
fn unbound_slots(btf_id: u32, prog: BorrowedFd<'_>) -> Option<(u32, MapData)> {
    if btf_id == 0 {
        return None;
    }
    let mut id = 0;
    while let Ok(Some(next)) = sys::next_map_id(id) {
        id = next;
        let Ok(fd) = sys::map_by_id(id) else {
            continue;
        };
        let Ok(map) = sys::map_info(fd.as_fd()) else {
            continue;
        };
        if map.name == SLOTS_MAP && map.btf_id == btf_id && fits(SLOTS_MAP, &map) {
            if let Err(e) = sys::prog_bind_map(prog, fd.as_fd()) {
                log::debug!("binding SLOTS to the program: {e}");
            }
            return MapData::from_fd(fd).ok().map(|data| (id, data));
        }
    }
    None
}

/// The lock scope of `dev`'s attach and detach.
fn interface_scope(dev: &NetDev) -> Result<Scope> {
    Ok(Scope::Interface(
        crate::sys::netdev::netns_inode()?,
        dev.ifindex,
    ))
}

/// Loads and attaches the program to `dev` unless one of vipcheck's is
/// there, under the lock: at XDP in `mode`, or at TC ingress, as `choice`
/// and the interface say ([`CaptureHook::Auto`]: XDP unless another XDP
/// program is attached). Returns the program capturing, and whether this
/// process attached it: a process of another mount namespace may have
/// been first, and then this one uses that program.
pub(super) fn attach(
    dev: &NetDev,
    choice: CaptureHook,
    mode: XdpMode,
) -> Result<(Box<Program>, bool)> {
    let _lock = lock(interface_scope(dev)?)?;
    // Twice at most: an XDP program that came first (another tool) sends
    // an automatic choice to TC.
    for _ in 0..2 {
        let hook = match find(dev)? {
            Found::Ours(program) => return Ok((program, false)),
            Found::None { xdp } => {
                let hook = choice.hook(mode, xdp, &dev.name)?;
                if let (Hook::Tc, Some(program)) = (hook, xdp) {
                    log::debug!(
                        "{} has another XDP program (id {}, {} mode): capturing at TC ingress",
                        dev.name,
                        program.id,
                        program.mode
                    );
                }
                hook
            }
        };
        let started = Instant::now();
        match attach_new(dev, hook) {
            Ok(()) => {
                log::debug!(
                    "loaded and attached the capture program to {} at {} in {:.1} ms",
                    dev.name,
                    hook.name(),
                    started.elapsed().as_secs_f64() * 1000.0
                );
                return match find(dev)? {
                    Found::Ours(program) => Ok((program, true)),
                    Found::None { .. } => Err(Error::bpf_found(format!(
                        "the program attached to {} was detached at once",
                        dev.name
                    ))),
                };
            }
            Err(AttachError::Taken(e)) => {
                // Another program came first: a vipcheck process elsewhere
                // (another mount namespace), or another tool.
                log::debug!("{} has an XDP program already: {e}", dev.name);
            }
            Err(AttachError::Failed(e)) => return Err(e),
        }
    }
    match find(dev)? {
        Found::Ours(program) => Ok((program, false)),
        Found::None { .. } => Err(Error::bpf_found(format!(
            "the XDP program of {} keeps changing",
            dev.name
        ))),
    }
}

enum AttachError {
    /// The XDP hook was taken meanwhile.
    Taken(SetError),
    Failed(Error),
}

/// Loads the program of `hook` and attaches it to `dev`.
fn attach_new(dev: &NetDev, hook: Hook) -> std::result::Result<(), AttachError> {
    let ebpf = load(hook).map_err(AttachError::Failed)?;
    // Our copy of the program and of its maps is dropped on return: only
    // the attachment keeps them (if it was made).
    match hook {
        Hook::Xdp(mode) => {
            let program = xdp_of(&ebpf).map_err(AttachError::Failed)?;
            let prog_fd = program
                .fd()
                .map_err(bpf("program fd"))
                .map_err(AttachError::Failed)?
                .as_fd();
            let flags = XDP_FLAGS_UPDATE_IF_NOEXIST | mode_flag(mode);
            match set_xdp(dev.ifindex, Some(prog_fd), None, flags) {
                Ok(()) => Ok(()),
                Err(e) if matches!(e.errno(), Some(libc::EBUSY | libc::EEXIST)) => {
                    Err(AttachError::Taken(e))
                }
                Err(e) => Err(AttachError::Failed(attach_error(dev, mode, e))),
            }
        }
        Hook::Tc => {
            let program = tc_of(&ebpf).map_err(AttachError::Failed)?;
            let prog_fd = program
                .fd()
                .map_err(bpf("program fd"))
                .map_err(AttachError::Failed)?
                .as_fd();
            sys::tcx_attach_first(dev.ifindex, prog_fd).map_err(|e| {
                AttachError::Failed(match e.raw_os_error() {
                    Some(libc::EPERM) => Error::Privilege {
                        what: "attaching the TC program",
                        needs: "CAP_NET_ADMIN",
                        source: e,
                    },
                    Some(libc::EINVAL | libc::EOPNOTSUPP) => Error::bpf(
                        format!(
                            "attaching to TC ingress of {} (tcx: needs Linux 6.6 or later; \
                             where no other XDP program is attached, --capture xdp works)",
                            dev.name
                        ),
                        e,
                    ),
                    _ => Error::bpf(format!("attaching to TC ingress of {}", dev.name), e),
                })
            })
        }
    }
}

fn attach_error(dev: &NetDev, mode: XdpMode, e: SetError) -> Error {
    if e.errno() == Some(libc::EPERM) {
        return Error::Privilege {
            what: "attaching the XDP program",
            needs: "CAP_NET_ADMIN",
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
    }
    Error::bpf(
        format!("attaching to {} in {} mode", dev.name, mode.name()),
        e,
    )
}

/// Loads the object and the program of `hook`, and binds SLOTS to it
/// (the other program of the object stays unloaded).
fn load(hook: Hook) -> Result<aya::Ebpf> {
    // No kernel BTF: the program uses no CO-RE relocation, and parsing
    // /sys/kernel/btf/vmlinux would triple the process's memory.
    let mut ebpf = aya::EbpfLoader::new()
        .btf(None)
        .load(PROGRAM)
        .map_err(|e| match e {
            aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. }) => {
                Error::privileged("creating BPF maps", "CAP_SYS_ADMIN (or CAP_BPF)", io_error)
            }
            e => Error::bpf("loading the program", e),
        })?;
    let refused = |e| match e {
        aya::programs::ProgramError::SyscallError(s) => Error::privileged(
            "loading the capture program",
            "CAP_SYS_ADMIN (or CAP_BPF)",
            s.io_error,
        ),
        e => Error::bpf("the kernel refused the program", e),
    };
    let name = match hook {
        Hook::Xdp(_) => PROGRAM_NAME,
        Hook::Tc => TC_PROGRAM_NAME,
    };
    let program = ebpf
        .program_mut(name)
        .ok_or_else(|| Error::bpf_found("program missing from the object"))?;
    match hook {
        Hook::Xdp(_) => {
            let program: &mut Xdp = program.try_into().map_err(bpf("program type"))?;
            program.load().map_err(refused)?;
        }
        Hook::Tc => {
            let program: &mut SchedClassifier = program.try_into().map_err(bpf("program type"))?;
            program.load().map_err(refused)?;
        }
    }
    let prog_fd = match hook {
        Hook::Xdp(_) => xdp_of(&ebpf)?.fd(),
        Hook::Tc => tc_of(&ebpf)?.fd(),
    }
    .map_err(bpf("program fd"))?
    .as_fd();
    let slots = ebpf
        .map(SLOTS_MAP)
        .ok_or_else(|| Error::bpf_found("map SLOTS missing from the object"))?;
    let slots =
        aya::maps::HashMap::<_, u32, FlowOwner>::try_from(slots).map_err(bpf("SLOTS map"))?;
    sys::prog_bind_map(prog_fd, slots.map().fd().as_fd()).map_err(|e| {
        Error::bpf(
            "binding the SLOTS map to the program (needs Linux 5.10+)",
            e,
        )
    })?;
    Ok(ebpf)
}

fn mode_flag(mode: XdpMode) -> u32 {
    match mode {
        XdpMode::Skb => XDP_FLAGS_SKB_MODE,
        XdpMode::Native => XDP_FLAGS_DRV_MODE,
    }
}

/// Removes vipcheck's program from `dev` (from XDP or TC ingress), and
/// only it. Returns the hook it was at, or None if none of vipcheck's was
/// attached (nothing, or others' programs).
pub(crate) fn detach(dev: &NetDev) -> Result<Option<Hook>> {
    // Without root this fails (an attached program cannot be opened),
    // before taking the lock.
    if !matches!(find(dev)?, Found::Ours(_)) {
        return Ok(None);
    }
    let _lock = lock(interface_scope(dev)?)?;
    let Found::Ours(program) = find(dev)? else {
        return Ok(None);
    };
    let mode = match program.hook {
        Hook::Xdp(mode) => mode,
        Hook::Tc => {
            sys::tcx_detach(dev.ifindex, program.fd.as_fd()).map_err(|e| {
                if e.raw_os_error() == Some(libc::EPERM) {
                    Error::Privilege {
                        what: "detaching the TC program",
                        needs: "CAP_NET_ADMIN",
                        source: e,
                    }
                } else {
                    Error::bpf(format!("detaching from TC ingress of {}", dev.name), e)
                }
            })?;
            return Ok(Some(Hook::Tc));
        }
    };
    let flags = XDP_FLAGS_REPLACE | mode_flag(mode);
    match set_xdp(dev.ifindex, None, Some(program.fd.as_fd()), flags) {
        Ok(()) => {}
        // Held by a bpf_link (an earlier version attached it so).
        Err(e) if e.errno() == Some(libc::EBUSY) => {
            if !detach_link(dev.ifindex, program.id)? {
                return Err(Error::bpf(format!("detaching from {}", dev.name), e));
            }
        }
        Err(e) if e.errno() == Some(libc::EEXIST) => {
            return Err(Error::bpf_found(format!(
                "the XDP program of {} changed while vipcheck was detaching its own: \
                 nothing detached",
                dev.name
            )));
        }
        Err(e) if e.errno() == Some(libc::EPERM) => {
            return Err(Error::Privilege {
                what: "detaching the XDP program",
                needs: "CAP_NET_ADMIN",
                source: std::io::Error::from_raw_os_error(libc::EPERM),
            });
        }
        Err(e) => return Err(Error::bpf(format!("detaching from {}", dev.name), e)),
    }
    Ok(Some(program.hook))
}

/// Detaches the XDP link that attaches program `prog_id` to `ifindex`,
/// wherever (or whether) it is pinned. False if there is none.
fn detach_link(ifindex: u32, prog_id: u32) -> Result<bool> {
    let mut id = 0;
    while let Some(next) = sys::next_link_id(id).map_err(|e| Error::io("listing BPF links", e))? {
        id = next;
        let Ok(link) = sys::link_by_id(id) else {
            continue;
        };
        let Ok(info) = sys::link_info(link.as_fd()) else {
            continue;
        };
        if info.link_type == sys::BPF_LINK_TYPE_XDP
            && info.prog_id == prog_id
            && info.ifindex == ifindex
        {
            sys::link_detach(link.as_fd()).map_err(|e| Error::io("detaching the XDP link", e))?;
            return Ok(true);
        }
    }
    Ok(false)
}

/// The XDP program of the loaded object.
fn xdp_of(ebpf: &aya::Ebpf) -> Result<&Xdp> {
    ebpf.program(PROGRAM_NAME)
        .ok_or_else(|| Error::bpf_found("program missing from the object"))?
        .try_into()
        .map_err(bpf("program type"))
}

/// The TC program of the loaded object.
fn tc_of(ebpf: &aya::Ebpf) -> Result<&SchedClassifier> {
    ebpf.program(TC_PROGRAM_NAME)
        .ok_or_else(|| Error::bpf_found("program missing from the object"))?
        .try_into()
        .map_err(bpf("program type"))
}
/// The error for another program than vipcheck's attached to `iface`.
pub(super) fn foreign(iface: &str, program: crate::sys::rtnl::XdpProgram) -> Error {
    Error::ForeignXdp {
        iface: iface.to_string(),
        id: program.id,
        mode: program.mode,
    }
}
