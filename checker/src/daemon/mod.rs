//! `vipcheck daemon`: the loop ([`run`]) and its building blocks without
//! I/O: what one target's results mean over time ([`state`]) and when each
//! target is checked next ([`schedule`]). The loop owns the clock and the
//! checks; these only decide.

pub(crate) mod metrics;
#[cfg(test)]
mod observability;
pub(crate) mod outcome;
pub(crate) mod probe;
pub(crate) mod run;
pub(crate) mod schedule;
pub(crate) mod state;
pub(crate) mod track;
