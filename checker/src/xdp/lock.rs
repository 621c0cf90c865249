//! One lock over loading, attaching and detaching the program and over
//! taking and collecting capture slots: an flock on `/run/vipcheck.lock`.
//!
//! `/run` is where the lock is shared widest without being open to other
//! users: `ip netns exec` gives vipcheck its own /sys (no shared
//! /sys/fs/bpf) but keeps the host's /run, and only root can create a file
//! there, so no user can hold the lock to stop the checks. A process with
//! another /run (a container) does not share it: the kernel still keeps
//! two attaches from ending with two programs (the loser uses the winner's
//! program); what the lock adds is not loading the program twice, and a
//! collector never freeing a slot that another process is taking at that
//! moment.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

use crate::error::{Error, Result};

const LOCK_FILE: &str = "/run/vipcheck.lock";

/// Held until dropped. `None`: no lock file could be made (no writable
/// /run); going on without the lock.
pub(super) struct Lock(#[allow(dead_code)] Option<File>);

pub(super) fn lock() -> Result<Lock> {
    // Read-only is enough for flock, and cheaper to open than for writing;
    // the file is created once.
    let opened = match File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(LOCK_FILE)
    {
        Err(e) if e.kind() == io::ErrorKind::NotFound => File::options()
            .write(true)
            .create(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(LOCK_FILE),
        opened => opened,
    };
    let file = match opened {
        Ok(file) => file,
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            return Err(Error::privileged("opening /run/vipcheck.lock", e));
        }
        Err(e) => {
            log::debug!("no lock ({LOCK_FILE}: {e}); going on without it");
            return Ok(Lock(None));
        }
    };
    // SAFETY: flock on a valid fd; the lock is released when `file` is closed.
    while unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(Error::io("locking /run/vipcheck.lock", e));
        }
    }
    Ok(Lock(Some(file)))
}
