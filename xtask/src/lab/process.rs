//! Processes a lab starts: stopped by pid, SIGTERM first so they can
//! finish their output (a capture file), SIGKILL when they do not exit.

// unsafe: libc calls (namespaces, signals, process accounting), each with a SAFETY line.
#![allow(unsafe_code)]

use std::marker::PhantomData;
use std::process::{Child, ExitStatus};
use std::time::{Duration, Instant};

use super::Lab;

/// How long a process may take to exit after SIGTERM.
const GRACE: Duration = Duration::from_secs(2);

pub(crate) fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        // SAFETY: plain syscall; callers pass pids of processes that cannot
        // have been reaped and reused (unwaited children, or a /proc scan).
        unsafe { libc::kill(pid, signal) };
    }
}

/// Stops the children (all at once, so their grace periods overlap) and
/// reaps them.
pub(crate) fn terminate(mut children: Vec<&mut Child>) -> Vec<std::io::Result<ExitStatus>> {
    for child in &mut children {
        if let Ok(None) = child.try_wait() {
            signal(child.id(), libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + GRACE;
    children
        .iter_mut()
        .map(|child| {
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => break Ok(status),
                    Ok(None) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Ok(None) => {
                        let _ = child.kill();
                        break child.wait();
                    }
                    Err(e) => break Err(e),
                }
            }
        })
        .collect()
}

/// A background process started by [`Lab::spawn`]. Dropping it (at the
/// latest when the test ends or panics, always before its lab) stops it.
#[derive(Debug)]
pub struct Background<'lab> {
    child: Child,
    _lab: PhantomData<&'lab Lab>,
}

impl Background<'_> {
    pub(crate) fn new(child: Child) -> Self {
        Background {
            child,
            _lab: PhantomData,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The process, to read pipes set up on the spawned command.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Stops the process now (SIGTERM, then SIGKILL after a grace period)
    /// and returns how it ended. `tcpdump -U -w FILE` has flushed FILE once
    /// this returns, but drops the packets it has not read yet: run it with
    /// `--immediate-mode` and wait for what you expect to be in FILE.
    pub fn stop(mut self) -> std::io::Result<ExitStatus> {
        self.stop_now()
    }

    fn stop_now(&mut self) -> std::io::Result<ExitStatus> {
        terminate(vec![&mut self.child])
            .pop()
            .expect("one child, one status")
    }
}

impl Drop for Background<'_> {
    fn drop(&mut self) {
        let _ = self.stop_now();
    }
}
