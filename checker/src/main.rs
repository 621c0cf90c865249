//! The `vipcheck` binary: parse, run, print one line, exit with the
//! documented status. Everything else lives in the library.
//!
//! keepalived starts it hundreds of times a second, so it starts lean:
//! `main` is the C runtime's entry itself (`no_main`), without std's
//! start-up wrapper, whose work for the main thread's stack-overflow
//! message (reading /proc/self/maps, an alternate signal stack, two
//! signal handlers) was about 80 µs of every check's CPU. What of that
//! wrapper matters here, [`main`] does itself.

// unsafe: the process's own setup: SIGPIPE ignored, fds 0-2 opened, the panic hook.
#![allow(unsafe_code)]
#![no_main]

use std::io::Write as _;
use std::os::raw::{c_char, c_int};

use vipcheck::exit::EXIT_CANNOT_RUN;
use vipcheck::front::run::run;
use vipcheck::note;

/// Called by the C runtime (glibc gives std the arguments before, through
/// `.init_array`, so `std::env::args_os` works as ever).
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    standard_streams_open();
    // A closed pipe is a write error (ignored by `say!` and `note!`), not
    // death by SIGPIPE, as under std's own start-up.
    // SAFETY: setting a signal's disposition to SIG_IGN has no
    // preconditions; no other thread exists yet.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    // A bug must still end in one line and the "cannot run" status, not a
    // backtrace that a keepalived log would mangle.
    std::panic::set_hook(Box::new(|info| {
        note!("vipcheck: internal error: {info}");
    }));
    let code = std::panic::catch_unwind(run).unwrap_or(EXIT_CANNOT_RUN);
    // std flushes stdout when its `main` returns; this one returns to C.
    let _ = std::io::stdout().flush();
    code & 0xff
}

/// As std's start-up: a descriptor 0, 1 or 2 that is closed (a careless
/// parent) is opened on /dev/null, so that no socket or file of the
/// check takes that number and receives its output.
fn standard_streams_open() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of three pollfd for the call.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } < 0 {
        return;
    }
    for pfd in fds {
        if pfd.revents & libc::POLLNVAL != 0 {
            // SAFETY: a NUL-terminated path; the descriptor, the lowest
            // free one (this closed number), is kept for the process.
            unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        }
    }
}
