//! The library's error type: why a check could not produce a verdict.
//!
//! A server that fails a check is not an error (that is a [`Verdict`]); an
//! error means the check could not run as asked. Each variant maps to the
//! documented exit status, and its message is one line that names the cause
//! and, where there is one, what to do.
//!
//! [`Verdict`]: crate::check::verdict::Verdict

use std::io;

use crate::failure::Failure;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// No such network interface here (exit 3).
    #[error("no interface named {0:?} in this network namespace")]
    NoInterface(String),
    /// The interface lacks something the check needs, such as an IPv4 address (exit 3).
    #[error("{0}")]
    Interface(String),
    /// Missing privilege (exit 3): what failed, and the capability it
    /// needs.
    #[error(
        "{what} failed: {source}; it needs {needs} (run vipcheck as root, or with CAP_NET_RAW, \
         CAP_NET_ADMIN and CAP_SYS_ADMIN)"
    )]
    Privilege {
        what: &'static str,
        /// `CAP_NET_RAW`, ..., or what else the operation needs.
        needs: &'static str,
        #[source]
        source: io::Error,
    },
    /// Another XDP program (not vipcheck's) is attached to the interface;
    /// vipcheck never replaces it (exit 3).
    #[error(
        "another XDP program (id {id}, {mode} mode) is attached to {iface}; vipcheck does not replace it (use --capture auto or tc to capture at TC ingress beside it, or detach it)"
    )]
    ForeignXdp {
        iface: String,
        /// The program's id.
        id: u32,
        /// "skb", "native", "offload" or "multi".
        mode: &'static str,
    },
    /// Every capture slot is taken by running checks (exit 3).
    #[error("{0}")]
    Busy(String),
    /// Loading, attaching or using the XDP program failed (exit 3): what
    /// failed and, when aya or the kernel said why, its error (the
    /// message: `XDP: what: cause`).
    #[error("XDP: {what}{}", caused(.source.as_deref()))]
    Bpf {
        what: String,
        #[source]
        source: Option<BoxedError>,
    },
    /// A frame broke the rule of what vipcheck may send, and was not sent
    /// (exit 3). The checks' preflight makes this unreachable; it stays as
    /// the last guard.
    #[error("{0}")]
    Refused(String),
    /// A signal (SIGTERM, SIGINT) ended the check before its verdict; the
    /// checks turn it into a failing verdict (exit 1).
    #[error("interrupted by {0}")]
    Interrupted(&'static str),
    /// Any other system call failure (exit 3).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

/// The cause of an [`Error::Bpf`]: aya's error, or the kernel's.
pub(crate) type BoxedError = Box<dyn std::error::Error + Send + Sync>;

/// `: cause`, or nothing.
fn caused(source: Option<&(dyn std::error::Error + Send + Sync)>) -> String {
    source.map_or_else(String::new, |e| format!(": {e}"))
}

impl Error {
    /// Why the check could not run, as a code: the JSON output's
    /// `failure` and the daemon's `reason` label.
    pub(crate) fn failure(&self) -> Failure {
        match self {
            Error::Interrupted(_) => Failure::Interrupted,
            Error::Busy(_) => Failure::Busy,
            Error::Bpf { .. } | Error::ForeignXdp { .. } => Failure::Xdp,
            Error::NoInterface(_) | Error::Interface(_) => Failure::Interface,
            Error::Usage(_) | Error::Privilege { .. } | Error::Refused(_) | Error::Io { .. } => {
                Failure::Error
            }
        }
    }

    /// [`Error::Bpf`]: `what` failed, because of `source` (aya's error or
    /// the kernel's).
    pub(crate) fn bpf(what: impl Into<String>, source: impl Into<BoxedError>) -> Self {
        Error::Bpf {
            what: what.into(),
            source: Some(source.into()),
        }
    }

    /// [`Error::Bpf`] that vipcheck found itself (no underlying error).
    pub(crate) fn bpf_found(what: impl Into<String>) -> Self {
        Error::Bpf {
            what: what.into(),
            source: None,
        }
    }

    /// Wraps an I/O error, classifying missing privilege separately.
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }

    /// A system call on interface `iface` failed: errors that mean the
    /// interface is down or gone say so by name.
    pub(crate) fn on_interface(iface: &str, what: &str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::ENETDOWN) => Error::Interface(format!("{iface} is down ({what})")),
            Some(libc::ENXIO | libc::ENODEV) => {
                Error::Interface(format!("{iface} is gone ({what})"))
            }
            _ => Error::io(format!("{what} on {iface}"), source),
        }
    }

    /// For system calls that need privilege: EPERM/EACCES become
    /// [`Error::Privilege`] naming what the call `needs`.
    pub(crate) fn privileged(what: &'static str, needs: &'static str, source: io::Error) -> Self {
        match source.raw_os_error() {
            Some(libc::EPERM | libc::EACCES) => Error::Privilege {
                what,
                needs,
                source,
            },
            _ => Error::io(what, source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An XDP error keeps aya's (or the kernel's) error as its source, and
    /// says it in its one line as before: `XDP: what: cause`.
    #[test]
    fn bpf_errors_keep_their_cause() {
        let e = Error::bpf("loading the program", io::Error::other("no BTF"));
        assert_eq!(e.to_string(), "XDP: loading the program: no BTF");
        let source = std::error::Error::source(&e).expect("a source");
        assert_eq!(source.to_string(), "no BTF");
        assert!(source.downcast_ref::<io::Error>().is_some());
        let e = Error::bpf_found("program missing from the object");
        assert_eq!(e.to_string(), "XDP: program missing from the object");
        assert!(std::error::Error::source(&e).is_none());
        assert_eq!(e.failure(), Failure::Xdp);
    }

    /// `main` turns a panic into one line and exit status 3
    /// by catching it: the unwinder linked in statically (build.rs) must
    /// walk the frames, or the process aborts instead.
    #[test]
    fn a_panic_unwinds_to_its_catcher() {
        #[inline(never)]
        fn deep(n: u32) -> u32 {
            if n == 0 {
                panic!("at the bottom");
            }
            deep(n - 1) + 1
        }
        let caught = std::panic::catch_unwind(|| deep(std::hint::black_box(8)));
        assert!(caught.is_err());
    }
}
