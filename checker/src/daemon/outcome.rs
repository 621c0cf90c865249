//! How one check ended, as the daemon counts it (metrics, logs) and as
//! `/probe` reports it.

use std::fmt;

use crate::check::verdict::{Failure, Verdict};
use crate::error::Error;

/// How one check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The server passed the check.
    Healthy,
    /// The server failed it; why.
    Unhealthy(Failure),
    /// The check could not run (no verdict); why.
    Error(Failure),
}

impl Outcome {
    /// The outcome of a check's result.
    pub(crate) fn of(result: &Result<Verdict, Error>) -> Outcome {
        match result {
            Ok(v) => match v.failure {
                None => Outcome::Healthy,
                Some(failure) => Outcome::Unhealthy(failure),
            },
            Err(e) => Outcome::Error(e.failure()),
        }
    }

    /// The `result` label: `healthy`, `unhealthy` or `error`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Outcome::Healthy => "healthy",
            Outcome::Unhealthy(_) => "unhealthy",
            Outcome::Error(_) => "error",
        }
    }

    /// Why it failed; `None` when healthy.
    pub(crate) fn failure(self) -> Option<Failure> {
        match self {
            Outcome::Healthy => None,
            Outcome::Unhealthy(failure) | Outcome::Error(failure) => Some(failure),
        }
    }

    /// The `reason` label of the metrics (a failure code); `None` when healthy.
    pub(crate) fn reason(self) -> Option<&'static str> {
        self.failure().map(Failure::as_str)
    }
}

/// `healthy`, or `unhealthy (refused)`, for logs.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(reason) => write!(f, "{} ({reason})", self.as_str()),
            None => f.write_str(self.as_str()),
        }
    }
}
