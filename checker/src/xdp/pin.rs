//! The pins of earlier versions. They attached the program through a
//! bpf_link pinned under `/sys/fs/bpf/vipcheck/ns<NETNS>-if<IFINDEX>/`,
//! which only processes of that mount namespace could see. vipcheck pins
//! nothing any more, but such a program is still found (from the
//! interface, as any other) and used, and its pins are removed once its link
//! is defunct (interface gone, or detached): they would hold the old program
//! and its rings in memory. bpffs is never mounted for that.

use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::sys::{link_info, obj_get};
use std::os::fd::AsFd;

const BPFFS: &str = "/sys/fs/bpf";
const PIN_ROOT: &str = "/sys/fs/bpf/vipcheck";
const BPF_FS_MAGIC: i64 = 0xcafe4a11;

/// Removes the pin directories of earlier versions whose link no longer
/// holds a program on an interface. Under the lock.
pub(super) fn sweep() {
    if !is_bpffs(Path::new(BPFFS)) {
        return;
    }
    let Ok(entries) = std::fs::read_dir(PIN_ROOT) else {
        return;
    };
    for dir in entries.flatten().map(|e| e.path()) {
        let live = ["link-skb", "link-native"].iter().any(|name| {
            obj_get(&dir.join(name))
                .and_then(|link| link_info(link.as_fd()))
                .is_ok_and(|info| info.ifindex != 0)
        });
        if !live {
            log::debug!("removing the pins of a detached program: {}", dir.display());
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
    // Only once empty.
    let _ = std::fs::remove_dir(PIN_ROOT);
}

fn is_bpffs(path: &Path) -> bool {
    let c = c_path(path);
    // SAFETY: statfs is plain data; zeroed is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is a valid path string and st a valid buffer.
    unsafe { libc::statfs(c.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC }
}

pub(super) fn c_path(path: &Path) -> std::ffi::CString {
    // Our paths are built from constants: no NUL inside.
    std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap_or_default()
}
