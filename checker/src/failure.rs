//! Why a check failed, as a stable code: the bottom of the crate with the
//! exit statuses ([`crate::exit`]), so that a verdict and an error
//! ([`crate::error::Error::failure`]) both name one without reaching into
//! each other.

use std::fmt;

/// Why a check failed, as a stable code: the JSON output's `failure`, the
/// daemon's `reason` label, and what the Nagios state and exit status
/// derive from. The first codes are verdicts (the check ran and the
/// server failed it), the last four errors (the check could not run, see
/// [`crate::error::Error::failure`]). Each check sets its code where it
/// decides the failure; the verdict's `reason` says the same in words,
/// which may change without moving a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Failure {
    /// No ARP reply (IPv4) or neighbour advertisement (IPv6) from the
    /// real server.
    NoNeighbour,
    /// No SYN-ACK through the VIP (the kernel path: no connection).
    NoAnswer,
    /// The server refused the connection (RST to the SYN).
    Refused,
    /// The server reset the connection after the handshake.
    Reset,
    /// Connected, then the response did not come (whole) in time.
    Timeout,
    /// The TLS session failed (certificate, alert, handshake not done).
    Tls,
    /// HTTPS: only the certificate's expiry within `--cert-days` failed
    /// (Nagios: WARNING).
    CertExpiring,
    /// The HTTP status is not one expected.
    Status,
    /// An expected header is missing or has another value.
    Header,
    /// The body failed a validation (digest, `--body`, regex).
    Body,
    /// Not an acceptable HTTP response (malformed, too large, ended early).
    Http,
    /// An ICMP port unreachable from the VIP: the real server carries the
    /// VIP, but nothing listens on the port.
    PortUnreachable,
    /// Another ICMP error about our packet (host, network or protocol
    /// unreachable, prohibited, time exceeded).
    Unreachable,
    /// A UDP reply from another address than the VIP (the real server's
    /// own): clients drop it.
    WrongSource,
    /// The reply is not the one expected (UDP payload or length, TCP
    /// `--expect`).
    Reply,
    /// Not an acceptable DNS reply (an RCODE other than NOERROR,
    /// truncated, malformed, an expected address missing).
    Dns,
    /// The SMTP dialogue failed (greeting, EHLO/HELO or QUIT not answered
    /// as it must be).
    Smtp,
    /// A signal (SIGTERM, SIGINT) ended the check before its verdict.
    Interrupted,
    /// Any other failure of a check that ran (the kernel path's socket
    /// errors).
    Other,
    /// Could not run: every capture slot is taken.
    Busy,
    /// Could not run: loading, attaching or using the XDP program failed,
    /// or another XDP program is attached.
    Xdp,
    /// Could not run: no such interface, or it lacks what the check needs.
    Interface,
    /// Could not run: any other error (usage, privilege, system call).
    Error,
}

impl Failure {
    #[cfg(test)]
    /// Every code, verdicts first, then errors.
    pub(crate) const ALL: [Failure; 23] = [
        Failure::NoNeighbour,
        Failure::NoAnswer,
        Failure::Refused,
        Failure::Reset,
        Failure::Timeout,
        Failure::Tls,
        Failure::CertExpiring,
        Failure::Status,
        Failure::Header,
        Failure::Body,
        Failure::Http,
        Failure::PortUnreachable,
        Failure::Unreachable,
        Failure::WrongSource,
        Failure::Reply,
        Failure::Dns,
        Failure::Smtp,
        Failure::Interrupted,
        Failure::Other,
        Failure::Busy,
        Failure::Xdp,
        Failure::Interface,
        Failure::Error,
    ];

    /// The snake_case code: the JSON `failure` and the metrics `reason`.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Failure::NoNeighbour => "no_neighbour",
            Failure::NoAnswer => "no_answer",
            Failure::Refused => "refused",
            Failure::Reset => "reset",
            Failure::Timeout => "timeout",
            Failure::Tls => "tls",
            Failure::CertExpiring => "cert_expiring",
            Failure::Status => "status",
            Failure::Header => "header",
            Failure::Body => "body",
            Failure::Http => "http",
            Failure::PortUnreachable => "port_unreachable",
            Failure::Unreachable => "unreachable",
            Failure::WrongSource => "wrong_source",
            Failure::Reply => "reply",
            Failure::Dns => "dns",
            Failure::Smtp => "smtp",
            Failure::Interrupted => "interrupted",
            Failure::Other => "other",
            Failure::Busy => "busy",
            Failure::Xdp => "xdp",
            Failure::Interface => "interface",
            Failure::Error => "error",
        }
    }

    #[cfg(test)]
    /// Whether the check ran (a failing verdict) rather than could not
    /// run (an error). `interrupted` is a verdict: the one-shot checks
    /// and the daemon turn the signal into one.
    pub(crate) const fn ran(self) -> bool {
        !matches!(
            self,
            Failure::Busy | Failure::Xdp | Failure::Interface | Failure::Error
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As its code, a JSON string.
impl serde::Serialize for Failure {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes are an interface (dashboards, alerts, JSON consumers):
    /// pinned, in order; a change here is a breaking change.
    #[test]
    fn failure_codes_are_pinned() {
        let codes: Vec<&str> = Failure::ALL.iter().map(|f| f.as_str()).collect();
        assert_eq!(
            codes,
            [
                "no_neighbour",
                "no_answer",
                "refused",
                "reset",
                "timeout",
                "tls",
                "cert_expiring",
                "status",
                "header",
                "body",
                "http",
                "port_unreachable",
                "unreachable",
                "wrong_source",
                "reply",
                "dns",
                "smtp",
                "interrupted",
                "other",
                "busy",
                "xdp",
                "interface",
                "error",
            ]
        );
        let ran: Vec<&str> = Failure::ALL
            .iter()
            .filter(|f| !f.ran())
            .map(|f| f.as_str())
            .collect();
        assert_eq!(ran, ["busy", "xdp", "interface", "error"]);
        // The README's table documents each, and whether the check ran.
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"));
        for failure in Failure::ALL {
            let row = format!("| `{failure}` | ");
            let line = readme
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("no README row for {failure}"));
            assert_eq!(
                line.ends_with(" | no |") || line.contains(" | no ("),
                !failure.ran(),
                "{line}"
            );
            assert_eq!(
                serde_json::to_string(&failure).unwrap(),
                format!("\"{failure}\"")
            );
        }
    }
}
