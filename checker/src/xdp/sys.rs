//! The two bpf(2) calls aya does not expose for links: open a pinned
//! object, and read an XDP link's interface index.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::pin::c_path;

const BPF_OBJ_GET: libc::c_long = 7;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

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

pub(super) fn obj_get(path: &Path) -> io::Result<OwnedFd> {
    let c = c_path(path);
    // bpf_attr for BPF_OBJ_GET: pathname (u64), bpf_fd, file_flags, path_fd.
    let mut attr = [0u64; 3];
    attr[0] = c.as_ptr() as u64;
    // SAFETY: the path pointer stays valid for the call.
    let fd = unsafe { bpf(BPF_OBJ_GET, &mut attr)? };
    // SAFETY: the kernel returned a new fd that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub(super) struct LinkInfo {
    pub(super) prog_id: u32,
    /// 0 once the interface is gone.
    pub(super) ifindex: u32,
}

pub(super) fn link_info(link: &OwnedFd) -> io::Result<LinkInfo> {
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
    // SAFETY: info is a writable buffer of the length given in attr.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr)? };
    const BPF_LINK_TYPE_XDP: u32 = 6;
    if info[0] != BPF_LINK_TYPE_XDP {
        return Err(io::Error::other("pinned link is not an XDP link"));
    }
    Ok(LinkInfo {
        prog_id: info[2],
        ifindex: info[4],
    })
}
