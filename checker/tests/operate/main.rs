//! vipcheck as it is run: audits, the daemon, the command line and the
//! C-compatible names, in real labs (the command-line table without one).
//! One test binary, one module per subject; each test builds its own lab
//! and scratch directory (named by pid, module and counter), so the tests
//! run side by side as before.
//!
//! `cargo test -p checker --test operate [MODULE::]` runs them.

#[path = "../common/mod.rs"]
mod common;

mod audit;
mod cli_table;
mod compat;
mod daemon;
