//! The bpf(2) calls aya 0.14 does not expose: open programs, maps and links
//! by id and read their info in one call, bind a map to a program, detach a
//! link, attach to and query tcx ingress without a link.

// unsafe: the bpf(2) calls aya does not expose.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use aya_obj::generated::{bpf_map_info, bpf_prog_info};

const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_MAP_GET_FD_BY_ID: libc::c_long = 14;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;
const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
const BPF_LINK_GET_FD_BY_ID: libc::c_long = 30;
const BPF_LINK_GET_NEXT_ID: libc::c_long = 31;
const BPF_LINK_DETACH: libc::c_long = 34;
const BPF_PROG_BIND_MAP: libc::c_long = 35;

/// bpf(2) with `attr` as the (prefix of the) command's `union bpf_attr`.
///
/// # Safety
/// `attr` must be a valid bpf_attr prefix for `cmd`, and every pointer in
/// it must be valid for what the kernel reads or writes through it.
unsafe fn bpf<T>(cmd: libc::c_long, attr: &mut [T]) -> io::Result<libc::c_long> {
    // SAFETY: the caller vouches for the contents of attr; its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(ret)
}

/// A new fd returned by bpf(2).
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the kernel returned a new fd that nobody else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// An object by id (bpf_attr: the id, next_id, open_flags). ENOENT once
/// the object is gone; EPERM without CAP_SYS_ADMIN.
fn get_fd_by_id(cmd: libc::c_long, id: u32) -> io::Result<OwnedFd> {
    let mut attr = [id, 0, 0];
    // SAFETY: plain integers.
    Ok(owned(unsafe { bpf(cmd, &mut attr)? }))
}

pub(super) fn prog_by_id(id: u32) -> io::Result<OwnedFd> {
    get_fd_by_id(BPF_PROG_GET_FD_BY_ID, id)
}

pub(super) fn map_by_id(id: u32) -> io::Result<OwnedFd> {
    get_fd_by_id(BPF_MAP_GET_FD_BY_ID, id)
}

/// BPF_OBJ_GET_INFO_BY_FD into `info` (bpf_attr: bpf_fd, info_len, info).
///
/// # Safety
/// `T` must be the kernel's info struct for the object behind `fd` (or a
/// prefix of it), and every pointer the caller put in it must be valid for
/// what the kernel writes through it.
unsafe fn info_by_fd<T>(fd: BorrowedFd<'_>, info: &mut T) -> io::Result<()> {
    let ptr = info as *mut T as u64;
    let mut attr = [
        fd.as_raw_fd() as u32,
        std::mem::size_of::<T>() as u32,
        ptr as u32,
        (ptr >> 32) as u32,
    ];
    // SAFETY: info is writable for its size, as the caller vouches.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)? };
    Ok(())
}

/// What vipcheck needs to know of a loaded program.
pub(super) struct ProgInfo {
    pub(super) prog_type: u32,
    pub(super) name: String,
    pub(super) btf_id: u32,
    pub(super) map_ids: Vec<u32>,
}

pub(super) fn prog_info(fd: BorrowedFd<'_>) -> io::Result<ProgInfo> {
    // Ours uses 6; a program with more is not ours.
    let mut map_ids = [0u32; 32];
    // SAFETY: bpf_prog_info is plain data; zeroed is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    info.nr_map_ids = map_ids.len() as u32;
    info.map_ids = map_ids.as_mut_ptr() as u64;
    // SAFETY: map_ids is writable for nr_map_ids ids and outlives the call.
    unsafe { info_by_fd(fd, &mut info)? };
    let count = (info.nr_map_ids as usize).min(map_ids.len());
    Ok(ProgInfo {
        prog_type: info.type_,
        name: c_name(&info.name),
        btf_id: info.btf_id,
        map_ids: map_ids[..count].to_vec(),
    })
}

/// What vipcheck needs to know of a map.
pub(super) struct MapInfo {
    pub(super) map_type: u32,
    pub(super) name: String,
    pub(super) key_size: u32,
    pub(super) value_size: u32,
    pub(super) max_entries: u32,
    pub(super) map_flags: u32,
    pub(super) btf_id: u32,
}

pub(super) fn map_info(fd: BorrowedFd<'_>) -> io::Result<MapInfo> {
    // SAFETY: bpf_map_info is plain data; zeroed is a valid value.
    let mut info: bpf_map_info = unsafe { std::mem::zeroed() };
    // SAFETY: bpf_map_info holds no pointer.
    unsafe { info_by_fd(fd, &mut info)? };
    Ok(MapInfo {
        map_type: info.type_,
        name: c_name(&info.name),
        key_size: info.key_size,
        value_size: info.value_size,
        max_entries: info.max_entries,
        map_flags: info.map_flags,
        btf_id: info.btf_id,
    })
}

fn c_name(name: &[libc::c_char; 16]) -> String {
    let bytes: Vec<u8> = name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The id after `start` of every map, or of every link: None at the end.
fn next_id(cmd: libc::c_long, start: u32) -> io::Result<Option<u32>> {
    // bpf_attr: start_id, next_id, open_flags.
    let mut attr = [start, 0, 0];
    // SAFETY: plain integers.
    match unsafe { bpf(cmd, &mut attr) } {
        Ok(_) => Ok(Some(attr[1])),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn next_map_id(start: u32) -> io::Result<Option<u32>> {
    next_id(BPF_MAP_GET_NEXT_ID, start)
}

pub(super) fn next_link_id(start: u32) -> io::Result<Option<u32>> {
    next_id(BPF_LINK_GET_NEXT_ID, start)
}

pub(super) fn link_by_id(id: u32) -> io::Result<OwnedFd> {
    get_fd_by_id(BPF_LINK_GET_FD_BY_ID, id)
}

/// Adds `map` to the maps `prog` holds (Linux 5.10+), as if the program
/// used it: the map then lives as long as the program and is listed in
/// its `map_ids`. Binding a map twice is a no-op.
pub(super) fn prog_bind_map(prog: BorrowedFd<'_>, map: BorrowedFd<'_>) -> io::Result<()> {
    // bpf_attr for BPF_PROG_BIND_MAP: prog_fd, map_fd, flags.
    let mut attr = [prog.as_raw_fd() as u32, map.as_raw_fd() as u32, 0];
    // SAFETY: plain integers.
    unsafe { bpf(BPF_PROG_BIND_MAP, &mut attr)? };
    Ok(())
}

/// Detaches a link from its hook (the link object stays, defunct).
pub(super) fn link_detach(link: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = [link.as_raw_fd() as u32];
    // SAFETY: plain integers.
    unsafe { bpf(BPF_LINK_DETACH, &mut attr)? };
    Ok(())
}

pub(super) struct LinkInfo {
    pub(super) link_type: u32,
    pub(super) prog_id: u32,
    /// For an XDP link; 0 once the interface is gone or the link detached.
    pub(super) ifindex: u32,
}

/// bpf_link_info's type.
pub(super) const BPF_LINK_TYPE_XDP: u32 = 6;

pub(super) fn link_info(link: BorrowedFd<'_>) -> io::Result<LinkInfo> {
    // struct bpf_link_info: type, id, prog_id (u32 each), then an 8-aligned
    // union whose xdp member starts with the ifindex (offset 16).
    let mut info = [0u32; 32];
    // SAFETY: a prefix of bpf_link_info, with no pointer in it.
    unsafe { info_by_fd(link, &mut info)? };
    Ok(LinkInfo {
        link_type: info[0],
        prog_id: info[2],
        ifindex: info[4],
    })
}

/// bpf_attach_type of TC ingress through tcx (Linux 6.6+).
const BPF_TCX_INGRESS: u32 = 46;
/// Attach before the program given as relative (none: before all of them).
const BPF_F_BEFORE: u32 = 1 << 3;

/// Attaches `prog` to tcx ingress of `ifindex` as the first program,
/// without a link: the attachment belongs to the interface, as an XDP
/// program attached through netlink does, and outlives this process.
/// Programs attached there already stay, after it.
pub(super) fn tcx_attach_first(ifindex: u32, prog: BorrowedFd<'_>) -> io::Result<()> {
    // bpf_attr for BPF_PROG_ATTACH: target_ifindex, attach_bpf_fd,
    // attach_type, attach_flags, replace_bpf_fd, relative_fd, then the
    // expected revision (u64, 0: any).
    let mut attr = [
        ifindex,
        prog.as_raw_fd() as u32,
        BPF_TCX_INGRESS,
        BPF_F_BEFORE,
        0,
        0,
        0,
        0,
    ];
    // SAFETY: plain integers.
    unsafe { bpf(BPF_PROG_ATTACH, &mut attr)? };
    Ok(())
}

/// Detaches `prog` (and only it) from tcx ingress of `ifindex`.
pub(super) fn tcx_detach(ifindex: u32, prog: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = [
        ifindex,
        prog.as_raw_fd() as u32,
        BPF_TCX_INGRESS,
        0,
        0,
        0,
        0,
        0,
    ];
    // SAFETY: plain integers.
    unsafe { bpf(BPF_PROG_DETACH, &mut attr)? };
    Ok(())
}

/// The ids of the programs at tcx ingress of `ifindex`, in the order they
/// run. Empty where the kernel has no tcx (before Linux 6.6: EINVAL).
pub(super) fn tcx_programs(ifindex: u32) -> io::Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let ptr = ids.as_mut_ptr() as u64;
    // bpf_attr for BPF_PROG_QUERY: target_ifindex, attach_type,
    // query_flags, attach_flags, prog_ids (u64), prog_cnt, padding,
    // prog_attach_flags, link_ids, link_attach_flags, revision (u64 each).
    let mut attr = [0u32; 16];
    attr[0] = ifindex;
    attr[1] = BPF_TCX_INGRESS;
    attr[4] = ptr as u32;
    attr[5] = (ptr >> 32) as u32;
    attr[6] = ids.len() as u32;
    // SAFETY: prog_ids points to room for prog_cnt ids, alive for the call.
    match unsafe { bpf(BPF_PROG_QUERY, &mut attr) } {
        Ok(_) => Ok(ids[..(attr[6] as usize).min(ids.len())].to_vec()),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}
