//! vipcheck: health checks of LVS-DR real servers through the path real
//! traffic takes (destination IP = VIP, destination MAC = the real server's).
//!
//! Data flows one way: [`cli`] builds a [`target::Target`]; [`check`] opens
//! a flow on the [`engine`] ([`netdev`], [`xdp`], [`packet`], [`resolve`]), drives
//! the userspace stack ([`stack`]), speaks [`http`] over it where asked, and
//! ends in a [`verdict::Verdict`].

pub mod audit;
mod buffers;
pub mod check;
pub mod cli;
pub mod compat;
pub mod config;
pub mod daemon;
pub mod egress;
pub mod engine;
pub mod error;
pub mod http;
pub mod metrics;
pub mod ndp;
pub mod netdev;
pub mod output;
pub mod packet;
pub mod preflight;
pub mod resolve;
pub mod rtnl;
pub mod signals;
#[cfg(test)]
mod sim;
pub mod stack;
pub mod target;
pub mod tls;
pub mod trace;
pub mod track;
pub mod verdict;
pub mod xdp;
