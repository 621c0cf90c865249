//! The host's side: the XDP program itself, vipcheck beside another XDP
//! program, the privileges vipcheck needs, mount namespaces, and the LB's
//! safety under load and abuse, in real labs. One test binary, one module
//! per subject; each test builds its own lab. The load that `safety` makes
//! shares the cores only with tests that put no tight bound on a time
//! (those are in `checks` and `operate`).
//!
//! `cargo test -p checker --test host [MODULE::]` runs them;
//! `cargo test -p checker --test host xdp::per_frame_costs -- --ignored`
//! the XDP cost benchmark (`cargo xtask bench` does).

#[path = "../common/mod.rs"]
mod common;

mod foreign_xdp;
mod mountns;
mod privilege;
mod safety;
mod xdp;
