//! The input of `vipcheck audit`: many targets at once, from a TOML
//! targets file ([`targets`]) or from keepalived.conf ([`keepalived`]).
//!
//! Both end in the same plain data, [`Loaded`]: the targets to check and
//! what could not be mapped ([`Skipped`], with the reason), so nothing in
//! the input is silently ignored. Nothing here touches the network or
//! resolves a name: addresses are literal IPs. Errors carry `file:line`.

pub mod keepalived;
pub mod targets;

use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One check to run: a real server through a VIP.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AuditTarget {
    /// Interface to send from; `None`: the interface of the route to the
    /// real server.
    pub iface: Option<String>,
    pub real_server: IpAddr,
    pub vip: IpAddr,
    /// The port the check connects to (keepalived's `connect_port`, else
    /// the real server's port).
    pub port: u16,
    /// The virtual server's address and port, as the input writes them:
    /// the LVS service the check stands for (track files, labels and the
    /// snippet are keyed by them, and by the real server's below). A
    /// MISC_CHECK's command line may check another address or port.
    pub vs_vip: IpAddr,
    pub vs_port: u16,
    /// The real server's address and port, as the input writes them (the
    /// virtual server's port when it gives none).
    pub rs_ip: IpAddr,
    pub rs_port: u16,
    pub check: CheckSpec,
    /// Deadline of the whole check.
    pub timeout: Duration,
    /// Each reply must come within this of the one before (the C
    /// checkers' `-t`); `None`: only `timeout` applies.
    pub reply_timeout: Option<Duration>,
    /// How often the source checks it (keepalived's `delay_loop`).
    pub interval: Option<Duration>,
    /// Failures before the source declares it down (keepalived's `retry`).
    pub retry: Option<u32>,
    /// `file:line` the target comes from, for messages.
    pub origin: String,
}

/// What to check.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CheckSpec {
    Tcp,
    Http(HttpSpec),
    /// The request over TLS, and how the certificate is judged.
    Https(HttpSpec, TlsSpec),
}

impl CheckSpec {
    /// `tcp`, `http` or `https`.
    pub fn kind(&self) -> &'static str {
        match self {
            CheckSpec::Tcp => "tcp",
            CheckSpec::Http(_) => "http",
            CheckSpec::Https(..) => "https",
        }
    }

    /// The HTTP request of an http or https check.
    pub fn http(&self) -> Option<&HttpSpec> {
        match self {
            CheckSpec::Tcp => None,
            CheckSpec::Http(spec) | CheckSpec::Https(spec, _) => Some(spec),
        }
    }
}

/// How an HTTPS check judges the server's certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TlsSpec {
    pub verify: Verify,
    /// The TLS server name: sent as SNI (unless `no_sni`) and, when
    /// verifying, looked for in the certificate. `None`: the Host's name
    /// (the request's `host`, else the real server's address, which sends
    /// no SNI).
    pub sni: Option<String>,
    /// Send no SNI (keepalived's `SSL_GET` without `enable_sni`).
    pub no_sni: bool,
}

/// Whether and against what the certificate is verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum Verify {
    /// Against the command line's `--ca`, else the system's roots.
    #[default]
    Roots,
    /// Against this CA (PEM).
    Ca(PathBuf),
    /// Not at all, as keepalived's `SSL_GET` (check_ssl.c never sets
    /// SSL_VERIFY_PEER): the handshake must succeed, the certificate's
    /// facts are reported.
    KeepalivedSslGet,
}

/// Request method of an HTTP check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Method {
    #[default]
    Get,
    Head,
}

/// An HTTP(S) request and what its response must satisfy (every field
/// given must hold).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct HttpSpec {
    /// Host header; `None`: the source gave none (keepalived then sends
    /// the address it connects to).
    pub host: Option<String>,
    /// Starts with `/`.
    pub path: String,
    pub method: Method,
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// The status must be in one of these; empty: no status check.
    pub statuses: Vec<RangeInclusive<u16>>,
    /// Response headers that must be present (with this value when given).
    pub response_headers: Vec<(String, Option<String>)>,
    /// The exact expected body.
    pub body: Option<String>,
    /// MD5 of the body, lowercase hex.
    pub md5: Option<String>,
    /// Regular expressions the body must match.
    pub regex: Vec<String>,
    /// Regular expressions the body must not match.
    pub regex_absent: Vec<String>,
}

/// Something of the input that is not checked, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// `file:line`.
    pub origin: String,
    /// What it is, e.g. `virtual_server fwmark 1` or `DNS_CHECK of
    /// real_server 10.0.0.42 80`.
    pub what: String,
    pub reason: String,
}

/// What an input file gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    pub targets: Vec<AuditTarget>,
    pub skipped: Vec<Skipped>,
    /// What the reader noticed and read past (what `keepalived -t`
    /// reports, and meanings worth a look); print each one.
    pub warnings: Vec<Warning>,
}

/// Something of the input that is read, but maybe not as its author
/// meant: `file:line` and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// `file:line`.
    pub origin: String,
    pub message: String,
}

impl fmt::Display for Warning {
    /// `FILE:LINE: warning: MESSAGE`, one line (control characters of
    /// the input escaped).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: ", self.origin)?;
        for c in self.message.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// Prints each warning as one line on stderr: `vipcheck: FILE:LINE:
/// warning: ...` (a closed stderr is ignored, as by every `note!`).
pub fn print_warnings(loaded: &Loaded) {
    for w in &loaded.warnings {
        crate::note!("vipcheck: {w}");
    }
}

impl Loaded {
    /// Why `path` gives nothing to check, when it gives no target: a
    /// daemon or an audit of it would check nothing and say all is well.
    pub fn nothing_to_check(&self, path: &Path) -> Option<ConfigError> {
        if !self.targets.is_empty() {
            return None;
        }
        let why = match self.skipped.first() {
            None => "it has no virtual_server (or target) with a real server to check".to_string(),
            Some(first) => format!(
                "each of its {} entries is skipped, the first at {}: {}: {}",
                self.skipped.len(),
                first.origin,
                first.what,
                first.reason
            ),
        };
        Some(ConfigError::new(
            path.display().to_string(),
            format!("nothing to check: {why}; is it the right file?"),
        ))
    }
}

/// A file that cannot be read as asked: where and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// `file:line`, or `file` when no line applies.
    pub origin: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(origin: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            origin: origin.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Largest input file read (bytes).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// Reads a whole UTF-8 file, bounded by [`MAX_FILE_BYTES`].
pub(crate) fn read_file(path: &Path, origin: &str) -> Result<String, ConfigError> {
    let bytes = read_bytes(path, origin)?;
    String::from_utf8(bytes).map_err(|e| {
        ConfigError::new(
            origin,
            format!(
                "{} is not UTF-8 (byte {} is not): save it as UTF-8",
                path.display(),
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads a whole file as bytes, bounded by [`MAX_FILE_BYTES`].
pub(crate) fn read_bytes(path: &Path, origin: &str) -> Result<Vec<u8>, ConfigError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| ConfigError::new(origin, format!("cannot open {}: {e}", path.display())))?;
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| ConfigError::new(origin, format!("cannot read {}: {e}", path.display())))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::new(
            origin,
            format!(
                "{} is larger than {} MiB",
                path.display(),
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    Ok(text)
}

/// A literal IPv4 or IPv6 address (plain or `[addr]`); names are not
/// resolved here.
pub fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse()
        .map_err(|_| format!("{:?} is not an IP address", s.escape_debug().to_string()))
}

/// A TCP port, 1-65535.
pub fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{s:?} is not a TCP port (1-65535)"))
}

/// The validators of the request's parts, shared with the command lines.
pub use crate::wire::http::{check_host, check_path, parse_md5};

/// `200` or `200-299` (codes 100-999).
pub fn parse_status(s: &str) -> Result<RangeInclusive<u16>, String> {
    crate::cli::parse_status(s)
}

/// Whether the address can be a real server or VIP at all.
pub(crate) fn check_unicast(ip: IpAddr, what: &str) -> Result<(), String> {
    let bad = match ip {
        IpAddr::V4(v4) => v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast(),
        IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
    } || ip.is_loopback();
    if bad {
        return Err(format!("{what} {ip} is not a unicast address"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_parsers() {
        assert_eq!(parse_ip("[fd00::1]").unwrap().to_string(), "fd00::1");
        assert!(parse_ip("10.0.0.256").is_err());
        assert!(parse_ip("www.example.com").is_err());
        assert_eq!(parse_port("80"), Ok(80));
        assert!(parse_port("0").is_err() && parse_port("65536").is_err());
        assert_eq!(
            parse_md5("D36F8F9425C4A8000AD9C4A97185ACA5").unwrap(),
            "d36f8f9425c4a8000ad9c4a97185aca5"
        );
        assert!(parse_md5("xyz").is_err());
        assert!(check_path("/ok").is_ok() && check_path("nope").is_err());
        assert!(check_host("a b").is_err());
        assert_eq!(parse_status("200-299"), Ok(200..=299));
        assert!(check_unicast("127.0.0.1".parse().unwrap(), "VIP").is_err());
        assert_eq!(
            ConfigError::new("a.conf:3", "bad").to_string(),
            "a.conf:3: bad"
        );
        let w = Warning {
            origin: "a.conf:4".into(),
            message: "Unknown keyword 'a\x0bb'".into(),
        };
        assert_eq!(
            w.to_string(),
            "a.conf:4: warning: Unknown keyword 'a\\u{b}b'"
        );
    }
}
