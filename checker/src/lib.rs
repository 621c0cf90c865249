//! vipcheck: health checks of LVS-DR real servers through the path real
//! traffic takes (destination IP = VIP, destination MAC = the real server's).
//!
//! Data flows one way: every input (the command line, the C checkers'
//! names, a targets file, keepalived.conf) builds a [`probe::Probe`], what
//! to check; [`check::dispatch`] runs it: it opens a flow on the
//! [`engine`] ([`sys`], [`xdp`]), drives the userspace stack, speaks HTTP
//! ([`wire`]) over it where asked, and ends in a
//! [`check::verdict::Verdict`].
//!
//! The modules are layers; each imports only from its own layer and those
//! below it (ARCHITECTURE.md; `cargo xtask layers` checks it). From the
//! bottom up, as one check flows through them:
//!
//! | layer | |
//! | --- | --- |
//! | [`exit`], [`failure`], [`error`] | exit statuses, failure codes, the error type |
//! | [`sys`] | kernel objects: AF_PACKET, rtnetlink, interfaces, signals, buffers |
//! | [`wire`] | frames, datagrams and the HTTP, DNS and SMTP parsers, without I/O |
//! | [`xdp`] | the shared XDP program that captures our flows' replies |
//! | [`probe`] | what to check, from any input, and its value parsers |
//! | [`engine`] | one thread, many flows: ports, neighbours, the smoltcp stack |
//! | [`check`] | a probe on an engine to a [`check::verdict::Verdict`] |
//! | [`config`] | keepalived.conf and targets files to probes |
//! | [`daemon`] | checks every interval: state, metrics, track files |
//! | [`front`] | the command lines, the audit, the output formats |

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
