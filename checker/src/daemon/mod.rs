//! `vipcheck daemon`: the loop ([`run`]) and its building blocks without
//! I/O: what one target's results mean over time ([`state`]) and when each
//! target is checked next ([`schedule`]). The loop owns the clock and the
//! checks; these only decide.

pub mod metrics;
pub mod run;
pub mod schedule;
pub mod state;
pub mod track;
