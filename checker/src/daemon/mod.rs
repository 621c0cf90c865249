//! The building blocks of `vipcheck daemon`, each without I/O: what one
//! target's results mean over time ([`state`]) and when each target is
//! checked next ([`schedule`]). The daemon loop owns the clock and the
//! checks; these only decide.

pub mod schedule;
pub mod state;
