//! vipcheck: health checks of LVS-DR real servers through the path real
//! traffic takes (destination IP = VIP, destination MAC = the real server's).
//!
//! Data flows one way: [`cli`] builds a [`target::Target`]; [`check`] opens
//! a flow on the [`engine`] ([`netdev`], [`xdp`], [`packet`], [`resolve`]), drives
//! the userspace stack ([`stack`]), speaks [`http`] over it where asked, and
//! ends in a [`verdict::Verdict`].

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
