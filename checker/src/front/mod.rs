//! What a person or a program meets: the command line ([`cli`]), the C
//! checkers' names ([`compat`]), the audit's table ([`audit`]), the
//! output formats ([`output`]) and the man pages ([`man`]).

pub(crate) mod audit;
pub mod cli;
pub(crate) mod compat;
pub(crate) mod man;
pub(crate) mod output;
pub mod run;
