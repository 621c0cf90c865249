//! Locks over loading, attaching and detaching the program of one
//! interface, and over taking and collecting the capture slots of one
//! program: open-file-description byte-range locks (F_OFD_SETLKW) on one
//! byte each of `/run/vipcheck/lock`, so that a check on one interface never
//! waits for an attach on another (an attach takes ~50-100 ms).
//!
//! `/run` is where the lock is shared widest without being open to other
//! users: `ip netns exec` gives vipcheck its own /sys (no shared
//! /sys/fs/bpf) but keeps the host's /run, and only root can create a file
//! there, so no user can hold the lock to stop the checks. In a directory
//! of its own so that the systemd unit (`ProtectSystem=strict`) can give
//! the daemon write access to it alone (`RuntimeDirectory=vipcheck`). A process with
//! another /run (a container) does not share it: the kernel still keeps
//! two attaches from ending with two programs (the loser uses the winner's
//! program); what the lock adds is not loading the program twice, and a
//! collector never freeing a slot that another process is taking at that
//! moment.

// unsafe: flock(2) and the lock file's mode.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

use crate::error::{Error, Result};

const LOCK_DIR: &str = "/run/vipcheck";
const LOCK_FILE: &str = "/run/vipcheck/lock";

/// Held until dropped. `None`: no lock file could be made (no writable
/// /run); going on without the lock.
pub(super) struct Lock(#[allow(dead_code)] Option<File>);

/// What a lock serializes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scope {
    /// Loading, attaching, detaching on one interface: (netns inode, ifindex).
    Interface(u64, u32),
    /// Taking and collecting the capture slots of one program (its id).
    Slots(u32),
}

impl Scope {
    /// The byte of the lock file that stands for this scope: interfaces
    /// below 2^40, programs above (a hash collision only serializes two
    /// scopes that needed not be).
    fn offset(self) -> i64 {
        match self {
            Scope::Interface(netns, ifindex) => {
                let mixed = netns.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ u64::from(ifindex);
                (mixed % (1 << 40)) as i64
            }
            Scope::Slots(program) => (1 << 40) + i64::from(program),
        }
    }
}

pub(super) fn lock(scope: Scope) -> Result<Lock> {
    // Write access: a write (exclusive) lock needs it. Created once, with
    // its directory (made only when missing: one system call less for
    // every check after the first).
    let open = || {
        File::options()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(LOCK_FILE)
    };
    let opened = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match std::fs::DirBuilder::new().mode(0o755).create(LOCK_DIR) {
                // 0755 whatever the umask: keepalived runs its scripts
                // with umask 0177, and a first check made there would
                // leave a directory that only root with CAP_DAC_OVERRIDE
                // can enter (a unit with fewer capabilities then fails).
                Ok(()) => {
                    use std::os::unix::fs::PermissionsExt;
                    let all_may_enter = std::fs::Permissions::from_mode(0o755);
                    if let Err(e) = std::fs::set_permissions(LOCK_DIR, all_may_enter) {
                        log::debug!("{LOCK_DIR}: cannot set its mode to 0755: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => log::debug!("no lock directory ({LOCK_DIR}: {e})"),
            }
            open()
        }
        opened => opened,
    };
    let file = match opened {
        Ok(file) => file,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            return Err(Error::privileged(
                "opening /run/vipcheck/lock",
                "write access to /run/vipcheck/lock (root's, mode 0600)",
                e,
            ));
        }
        Err(e) => {
            log::debug!("no lock ({LOCK_FILE}: {e}); going on without it");
            return Ok(Lock(None));
        }
    };
    // SAFETY: flock is plain data; zeroed is a valid value.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = libc::F_WRLCK as libc::c_short;
    range.l_whence = libc::SEEK_SET as libc::c_short;
    range.l_start = scope.offset();
    range.l_len = 1;
    // SAFETY: fcntl on a valid fd with a valid flock; an OFD lock is
    // released when `file` (its open file description) is closed.
    while unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLKW, &range) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(Error::io("locking /run/vipcheck/lock", e));
        }
    }
    Ok(Lock(Some(file)))
}
