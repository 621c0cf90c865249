//! Who holds a capture slot, and whether that process still runs.

// unsafe: reading a process's start time and pid namespace.
#![allow(unsafe_code)]

use std::io;
use std::time::Duration;

use checker_common::FlowOwner;

use crate::error::{Error, Result};

/// How long past its own deadline a slot is kept when its owner cannot be
/// judged by pid (another PID namespace).
const OWNER_GRACE: Duration = Duration::from_secs(10);

/// The owner entry of this process for a flow that ends within `deadline`.
pub(super) fn current_owner(deadline: Duration) -> Result<FlowOwner> {
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
pub(super) fn is_alive(owner: &FlowOwner, now_ns: u64) -> bool {
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
    use std::io::Read;
    // Read into room for any stat line (52 numbers and a 16-byte name): one
    // read and the one that finds the end, not read_to_string's six
    // growing ones (a procfs file has no size to go by).
    let mut stat = Vec::with_capacity(1024);
    std::fs::File::open(format!("/proc/{pid}/stat"))
        .ok()?
        .take(1024)
        .read_to_end(&mut stat)
        .ok()?;
    // The command name (field 2) may hold spaces, parentheses and bytes
    // that are not UTF-8: split after the last ')'.
    let rest = std::str::from_utf8(&stat[stat.iter().rposition(|&b| b == b')')? + 1..]).ok()?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

fn pid_ns() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

pub(super) fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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
