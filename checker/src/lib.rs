//! vipcheck: health checks of LVS-DR real servers through the path real
//! traffic takes (destination IP = VIP, destination MAC = the real server's).
//!
//! Data flows one way: every input (the command line, the C checkers'
//! names, a targets file, keepalived.conf) builds a [`probe::Probe`], what
//! to check; [`check::dispatch`] runs it: it opens a flow on the
//! [`engine`] ([`sys`], [`xdp`]), drives the userspace stack, speaks HTTP
//! ([`wire`]) over it where asked, and ends in a
//! [`check::verdict::Verdict`].

pub mod check;
pub mod config;
pub mod daemon;
pub mod engine;
pub mod error;
pub mod exit;
pub mod failure;
pub mod front;
pub mod probe;
#[cfg(test)]
mod sim;
pub mod sys;
pub mod wire;
pub mod xdp;
