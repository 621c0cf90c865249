//! SIGTERM, SIGINT and SIGHUP as events of the event loop.
//!
//! Not tokio's signal driver: with it, building any runtime made a socket
//! pair and per-signal state for every signal number (22 KiB), which every
//! one-shot check paid before doing anything. Here the handler sets the
//! signal's bit and writes to one eventfd, made on the first [`Signals::catch`];
//! each [`Signals`] waits on its own duplicate of that eventfd and takes the
//! bits of its signals.

// unsafe: signal handlers and their self-pipe (sigaction, write).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// The signals caught and not yet taken, bit `1 << signo`.
static PENDING: AtomicU64 = AtomicU64::new(0);
/// The eventfd the handler writes to (-1 before the first catch).
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// Serialises the first catch (making the eventfd, installing handlers).
static SETUP: Mutex<()> = Mutex::new(());

/// Runs in the signal's context: only async-signal-safe work (an atomic
/// or, a write(2)), errno kept.
extern "C" fn handler(signo: libc::c_int) {
    // SAFETY: __errno_location returns this thread's errno; restoring it
    // keeps the interrupted code's errno intact.
    let errno = unsafe { *libc::__errno_location() };
    PENDING.fetch_or(1 << signo, Ordering::SeqCst);
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to an eventfd; a full
        // counter (EAGAIN) only means a wake-up is pending already.
        unsafe { libc::write(fd, (&raw const one).cast(), 8) };
    }
    // SAFETY: as above.
    unsafe { *libc::__errno_location() = errno };
}

/// Some signals, caught from [`Signals::catch`] on (they no longer end the
/// process) until the process ends.
pub(crate) struct Signals {
    mask: u64,
    wake: AsyncFd<OwnedFd>,
}

impl Signals {
    /// Catches `signals` (SIGTERM, SIGINT, SIGHUP); inside a runtime with
    /// I/O enabled.
    pub(crate) fn catch(signals: &[libc::c_int]) -> io::Result<Signals> {
        let wake = {
            let _setup = SETUP
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut fd = WAKE.load(Ordering::SeqCst);
            if fd < 0 {
                // SAFETY: eventfd takes no pointers.
                fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                WAKE.store(fd, Ordering::SeqCst);
            }
            for &signo in signals {
                install(signo)?;
            }
            duplicate(fd)?
        };
        // SAFETY: `wake` owns its descriptor, which the AsyncFd owns from
        // here on and neither replaces nor closes while registered.
        let wake = unsafe { AsyncFd::register_with_interest(wake, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Signals {
            mask: signals.iter().fold(0, |mask, &signo| mask | 1 << signo),
            wake,
        })
    }

    /// The next of its signals to arrive (at once if one came since the
    /// last call), taken: another [`Signals`] of the same signal does not
    /// see it.
    pub(crate) async fn recv(&self) -> libc::c_int {
        loop {
            let taken = PENDING.fetch_and(!self.mask, Ordering::SeqCst) & self.mask;
            if taken != 0 {
                // One at a time, the others left for the next call.
                let signo = taken.trailing_zeros();
                let rest = taken & !(1 << signo);
                PENDING.fetch_or(rest, Ordering::SeqCst);
                return signo as libc::c_int;
            }
            let Ok(mut ready) = self.wake.readable().await else {
                // The fd cannot fail to be polled; should it, no signal
                // is ever reported rather than a busy loop.
                return std::future::pending().await;
            };
            let mut counter = [0u8; 8];
            // SAFETY: reads at most 8 bytes into a valid buffer; EAGAIN
            // (another Signals drained it) is fine.
            unsafe { libc::read(self.wake.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
            ready.clear_ready();
        }
    }
}

fn install(signo: libc::c_int) -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid; the handler is an extern "C"
    // fn of the signature sa_handler expects; sigaction copies the struct.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = handler as *const () as usize;
        action.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut action.sa_mask);
        if libc::sigaction(signo, &action, std::ptr::null_mut()) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn duplicate(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on an open fd returns a new one we own.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `dup` is a fresh descriptor owned by nothing else.
    Ok(unsafe { OwnedFd::from_raw_fd(dup) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A signal reaches its catcher once, whether it came before the wait
    /// or during it.
    #[test]
    fn signals_arrive_once() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            let hup = Signals::catch(&[libc::SIGHUP]).unwrap();
            // SAFETY: raise sends a signal to this thread; it is caught.
            unsafe { libc::raise(libc::SIGHUP) };
            let got = tokio::time::timeout(std::time::Duration::from_secs(5), hup.recv()).await;
            assert_eq!(got, Ok(libc::SIGHUP));
            // Taken: no second one.
            let again =
                tokio::time::timeout(std::time::Duration::from_millis(50), hup.recv()).await;
            assert!(again.is_err());
            // Raised while waiting.
            let waiter = hup.recv();
            let raiser = async {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                // SAFETY: as above.
                unsafe { libc::raise(libc::SIGHUP) };
            };
            let (got, ()) = tokio::join!(
                tokio::time::timeout(std::time::Duration::from_secs(5), waiter),
                raiser
            );
            assert_eq!(got, Ok(libc::SIGHUP));
        });
    }
}
