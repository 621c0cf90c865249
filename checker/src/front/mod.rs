//! What a person or a program meets: the command line ([`cli`]), the C
//! checkers' names ([`compat`]), the audit's table ([`audit`]), the
//! output formats ([`output`]) and the man pages ([`man`]).

pub mod audit;
pub mod cli;
pub mod compat;
pub mod man;
pub mod output;
pub mod run;
