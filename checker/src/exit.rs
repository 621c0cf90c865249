//! The exit statuses vipcheck documents (README, `--help`, the man
//! pages): every command and every output format takes them from here.

/// The server passed the check (every target, for an audit).
pub const EXIT_HEALTHY: i32 = 0;
/// The check ran and the server failed it.
pub const EXIT_UNHEALTHY: i32 = 1;
/// The command line is wrong, or its input file unreadable.
pub const EXIT_USAGE: i32 = 2;
/// The check could not run here (privilege, interface, BPF).
pub const EXIT_CANNOT_RUN: i32 = 3;
