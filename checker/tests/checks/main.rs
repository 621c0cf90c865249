//! The checks through the VIP path, in real labs: one test binary (the
//! crate is linked once, not once a file), one module per subject. Each
//! test builds its own lab (namespaces and files named by pid and a
//! counter), so the tests run side by side as before.
//!
//! `cargo test -p checker --test checks [MODULE::]` runs them.

#[path = "../common/mod.rs"]
mod common;

mod datagram;
mod edges;
mod events;
mod http;
mod https;
mod ipv6;
mod smtp;
mod tcp;
