//! The targets file of `vipcheck audit`: TOML, a `[[vip]]` table per VIP
//! and port, a `[[vip.real_server]]` table per real server of it.
//!
//! ```toml
//! [defaults]                 # for every target (optional)
//! iface = "eth0"             # default: the interface of the route to the real server
//! timeout_ms = 1000
//! check = "tcp"              # tcp, http or https
//!
//! [[vip]]
//! address = "10.0.0.100"
//! port = 80
//! check = "http"             # for this VIP's real servers
//! host = "www.example.com"
//! path = "/healthcheck"
//!
//! [[vip.real_server]]
//! address = "10.0.0.42"
//!
//! [[vip.real_server]]
//! address = "10.0.0.43"
//! status = [200, "300-399"]  # this one only
//!
//! [[vip]]
//! address = "fd98:c612:0:1::100"
//! port = 22
//! real_server = [{ address = "fd98:c612:0:1::b" }, { address = "fd98:c612:0:1::c" }]
//! ```
//!
//! Settings, each in `[defaults]`, a `[[vip]]` or a `[[vip.real_server]]`,
//! the innermost one given wins:
//!
//! | key | |
//! | --- | --- |
//! | `iface` | interface to send from |
//! | `capture` | where the capture program is attached when none of vipcheck's is: `auto` (default), `xdp` or `tc` (`--capture`; the command line's wins) |
//! | `check` | `tcp` (default), `http`, `https`, `ping`, `udp`, `dns` or `smtp` |
//! | `timeout_ms` | deadline of each check (default 1000, at most 3600000) |
//! | `interval_ms`, `retry` | how often, and how many failures make it down (for the report) |
//! | `host` | HTTP Host header (default: none given; the check decides) |
//! | `path` | HTTP path, starting with `/` (required for http and https) |
//! | `method` | `GET` (default) or `HEAD` |
//! | `status` | accepted statuses: codes (`200`) and ranges (`"200-299"`); default 200-399 |
//! | `md5` | MD5 of the expected body (hex) |
//! | `verify` | https: verify the certificate (default `true`; `false`: only the handshake, as keepalived's `SSL_GET`) |
//! | `ca` | https: verify against this CA (PEM file) instead of `--ca` or the system's roots |
//! | `sni` | https: the name sent as SNI and verified (default: the `host`'s name) |
//! | `send` | tcp, udp: text sent (escapes `\r \n \t \\ \xNN`); tcp: after the handshake (`tcp --send`) |
//! | `expect` | tcp: a regular expression the server's bytes must match (`tcp --expect`); udp: text the reply must contain; dns: an address or a list, each in the answer |
//! | `payload`, `expect_hex` | udp: the datagram in hex, and what the reply must start with in hex with `X` nibbles (keepalived's `payload`, `require_reply`) |
//! | `min_length`, `max_length` | udp: shortest and longest acceptable reply (bytes) |
//! | `no_reply_ok` | udp: silence (no reply, no ICMP error) is healthy (default `false`) |
//! | `name`, `type`, `tcp` | dns: the name asked (default `.`), its type (default `SOA`; A, AAAA, NS, SOA, MX, TXT, CNAME, PTR, RRSIG, DNSKEY), over TCP (default `false`) |
//! | `helo` | smtp: the EHLO/HELO name (default `smtpchecker.keepalived.org`) |
//!
//! A key of another kind of check than the target's is an error. A udp
//! target, or a dns one over UDP, stands for a UDP virtual server (its
//! track files and snippet say so); the others for TCP ones.
//!
//! A `[[vip]]` needs `address` and `port`, a real server its `address`;
//! addresses are literal IPv4 or IPv6 addresses. An unknown key is an
//! error (a typo must not drop a setting).

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Loaded};
use crate::probe::parse::{
    check_host, check_path, check_unicast, parse_ip, parse_md5, parse_status,
};
use crate::probe::{AuditTarget, CheckSpec, HttpSpec, Method, Probe, Protocol, TlsSpec, Verify};
use crate::xdp::CaptureHook;

mod kinds;

/// Default `timeout_ms`.
pub(crate) const DEFAULT_TIMEOUT_MS: u64 = 1000;
/// Largest `timeout_ms` (as `vipcheck -t`).
const MAX_TIMEOUT_MS: u64 = crate::probe::parse::MAX_TIMEOUT_MS;
/// Most targets in one file.
pub(crate) const MAX_TARGETS: usize = 100_000;

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Tcp,
    Http,
    Https,
    Ping,
    Udp,
    Dns,
    Smtp,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tcp => "tcp",
            Kind::Http => "http",
            Kind::Https => "https",
            Kind::Ping => "ping",
            Kind::Udp => "udp",
            Kind::Dns => "dns",
            Kind::Smtp => "smtp",
        }
    }
}

/// `expect`: text (udp), a regular expression (tcp), or addresses (dns:
/// one or a list).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum ExpectValue {
    One(String),
    Many(Vec<String>),
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Status {
    Code(u16),
    Range(String),
}

/// Declares a table struct with the settings every level may give.
macro_rules! with_settings {
    ($(#[$outer:meta])* $name:ident { $($(#[$m:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$outer])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($(#[$m])* $field: $ty,)*
            iface: Option<String>,
            capture: Option<CaptureHook>,
            check: Option<Kind>,
            timeout_ms: Option<Spanned<u64>>,
            interval_ms: Option<u64>,
            retry: Option<u32>,
            host: Option<Spanned<String>>,
            path: Option<Spanned<String>>,
            method: Option<Method>,
            status: Option<Spanned<Vec<Status>>>,
            md5: Option<Spanned<String>>,
            verify: Option<bool>,
            ca: Option<Spanned<String>>,
            sni: Option<Spanned<String>>,
            name: Option<Spanned<String>>,
            r#type: Option<Spanned<String>>,
            tcp: Option<bool>,
            send: Option<Spanned<String>>,
            payload: Option<Spanned<String>>,
            expect: Option<Spanned<ExpectValue>>,
            expect_hex: Option<Spanned<String>>,
            min_length: Option<usize>,
            max_length: Option<usize>,
            no_reply_ok: Option<bool>,
            helo: Option<Spanned<String>>,
        }

        impl $name {
            /// Its settings alone.
            #[allow(dead_code, reason = "Settings itself needs no copy of its settings")]
            fn settings(&self) -> Settings {
                Settings {
                    iface: self.iface.clone(),
                    capture: self.capture,
                    check: self.check,
                    timeout_ms: self.timeout_ms.clone(),
                    interval_ms: self.interval_ms,
                    retry: self.retry,
                    host: self.host.clone(),
                    path: self.path.clone(),
                    method: self.method,
                    status: self.status.clone(),
                    md5: self.md5.clone(),
                    verify: self.verify,
                    ca: self.ca.clone(),
                    sni: self.sni.clone(),
                    name: self.name.clone(),
                    r#type: self.r#type.clone(),
                    tcp: self.tcp,
                    send: self.send.clone(),
                    payload: self.payload.clone(),
                    expect: self.expect.clone(),
                    expect_hex: self.expect_hex.clone(),
                    min_length: self.min_length,
                    max_length: self.max_length,
                    no_reply_ok: self.no_reply_ok,
                    helo: self.helo.clone(),
                }
            }
        }
    };
}

with_settings!(
    #[derive(Default)]
    Settings {}
);

/// The file: `[defaults]` and `[[vip]]`, nothing else.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Top {
    #[serde(default)]
    defaults: Settings,
    #[serde(default)]
    vip: Vec<Spanned<Vip>>,
}

with_settings!(Vip {
    address: Spanned<String>,
    port: Spanned<u16>,
    #[serde(default)]
    real_server: Vec<Spanned<RealServer>>,
});

with_settings!(RealServer {
    address: Spanned<String>,
});

impl Settings {
    /// These settings with `inner`'s over them.
    fn over(&self, inner: Settings) -> Settings {
        Settings {
            iface: inner.iface.or_else(|| self.iface.clone()),
            capture: inner.capture.or(self.capture),
            check: inner.check.or(self.check),
            timeout_ms: inner.timeout_ms.or_else(|| self.timeout_ms.clone()),
            interval_ms: inner.interval_ms.or(self.interval_ms),
            retry: inner.retry.or(self.retry),
            host: inner.host.or_else(|| self.host.clone()),
            path: inner.path.or_else(|| self.path.clone()),
            method: inner.method.or(self.method),
            status: inner.status.or_else(|| self.status.clone()),
            md5: inner.md5.or_else(|| self.md5.clone()),
            verify: inner.verify.or(self.verify),
            ca: inner.ca.or_else(|| self.ca.clone()),
            sni: inner.sni.or_else(|| self.sni.clone()),
            name: inner.name.or_else(|| self.name.clone()),
            r#type: inner.r#type.or_else(|| self.r#type.clone()),
            tcp: inner.tcp.or(self.tcp),
            send: inner.send.or_else(|| self.send.clone()),
            payload: inner.payload.or_else(|| self.payload.clone()),
            expect: inner.expect.or_else(|| self.expect.clone()),
            expect_hex: inner.expect_hex.or_else(|| self.expect_hex.clone()),
            min_length: inner.min_length.or(self.min_length),
            max_length: inner.max_length.or(self.max_length),
            no_reply_ok: inner.no_reply_ok.or(self.no_reply_ok),
            helo: inner.helo.or_else(|| self.helo.clone()),
        }
    }
}

/// Reads the targets file at `path`.
pub(crate) fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let name = path.display().to_string();
    let text = super::read_file(path, &name)?;
    load_str(&text, &name)
}

/// `text` as the targets file named `name` (for messages).
pub fn load_str(text: &str, name: &str) -> Result<Loaded, ConfigError> {
    // Byte offset of each line's start: a line number is a binary search,
    // not a count from the top (a file of 10,000 targets has 60,000 lines).
    let starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let at = |span: std::ops::Range<usize>| {
        let line = starts.partition_point(|&start| start <= span.start);
        format!("{name}:{line}")
    };
    let top: Top = toml::from_str(text).map_err(|e| {
        let origin = e.span().map_or_else(|| name.to_string(), &at);
        ConfigError::new(origin, e.message().trim_end().to_string())
    })?;
    let mut loaded = Loaded::default();
    for vip in &top.vip {
        let vip_span = vip.span();
        let vip = vip.get_ref();
        let vip_addr = address(&vip.address, &at, "VIP")?;
        let port = *vip.port.get_ref();
        if port == 0 {
            return Err(ConfigError::new(
                at(vip.port.span()),
                "port 0 is not a TCP port",
            ));
        }
        if vip.real_server.is_empty() {
            return Err(ConfigError::new(
                at(vip_span),
                format!("VIP {vip_addr} port {port} has no [[vip.real_server]]"),
            ));
        }
        let vip_settings = top.defaults.over(vip.settings());
        for rs in &vip.real_server {
            let origin = at(rs.span());
            let rs = rs.get_ref();
            let real_server = address(&rs.address, &at, "real server")?;
            if real_server.is_ipv4() != vip_addr.is_ipv4() {
                return Err(ConfigError::new(
                    at(rs.address.span()),
                    format!(
                        "real server {real_server} and VIP {vip_addr} are of different families"
                    ),
                ));
            }
            let s = vip_settings.over(rs.settings());
            if loaded.targets.len() >= MAX_TARGETS {
                return Err(ConfigError::new(
                    origin,
                    format!("more than {MAX_TARGETS} targets"),
                ));
            }
            loaded
                .targets
                .push(target(&s, real_server, vip_addr, port, origin, &at)?);
        }
    }
    Ok(loaded)
}

fn address(
    s: &Spanned<String>,
    at: &impl Fn(std::ops::Range<usize>) -> String,
    what: &str,
) -> Result<IpAddr, ConfigError> {
    let ip = parse_ip(s.get_ref()).map_err(|m| ConfigError::new(at(s.span()), m))?;
    check_unicast(ip, what).map_err(|m| ConfigError::new(at(s.span()), m))?;
    Ok(ip)
}

fn target(
    s: &Settings,
    real_server: IpAddr,
    vip: IpAddr,
    port: u16,
    origin: String,
    at: &impl Fn(std::ops::Range<usize>) -> String,
) -> Result<AuditTarget, ConfigError> {
    let timeout_ms = match &s.timeout_ms {
        Some(t) if !(1..=MAX_TIMEOUT_MS).contains(t.get_ref()) => {
            return Err(ConfigError::new(
                at(t.span()),
                format!("timeout_ms {} is not 1 to {MAX_TIMEOUT_MS}", t.get_ref()),
            ));
        }
        Some(t) => *t.get_ref(),
        None => DEFAULT_TIMEOUT_MS,
    };
    let kind = s.check.unwrap_or(Kind::Tcp);
    kinds::misplaced(s, kind, at)?;
    let check = match kind {
        Kind::Tcp => kinds::tcp(s, at)?,
        Kind::Ping => CheckSpec::Ping,
        Kind::Udp => CheckSpec::Udp(kinds::udp(s, at)?),
        Kind::Dns => CheckSpec::Dns(kinds::dns(s, at)?),
        Kind::Smtp => CheckSpec::Smtp(kinds::smtp(s, at)?),
        Kind::Http => CheckSpec::Http(http_spec(s, &origin, at)?),
        Kind::Https => CheckSpec::Https(http_spec(s, &origin, at)?, tls_spec(s, at)?),
    };
    // A datagram service is a UDP virtual server (its snippet and track
    // files say so); the others are TCP ones.
    let vs_protocol = match &check {
        CheckSpec::Udp(_) => Protocol::Udp,
        CheckSpec::Dns(dns) if !dns.tcp => Protocol::Udp,
        _ => Protocol::Tcp,
    };
    Ok(AuditTarget {
        probe: Probe {
            iface: s.iface.clone(),
            hook: s.capture.unwrap_or_default(),
            timeout: Duration::from_millis(timeout_ms),
            ..Probe::new(real_server, vip, port, check)
        },
        vs_vip: vip,
        vs_port: port,
        vs_protocol,
        rs_ip: real_server,
        rs_port: port,
        interval: s.interval_ms.map(Duration::from_millis),
        retry: s.retry,
        origin,
    })
}

/// How an https target judges the certificate: `verify` (default true),
/// against `ca` (else --ca or the system's roots), for `sni`.
fn tls_spec(
    s: &Settings,
    at: &impl Fn(std::ops::Range<usize>) -> String,
) -> Result<TlsSpec, ConfigError> {
    let verify = match (s.verify.unwrap_or(true), &s.ca) {
        (false, Some(ca)) => {
            return Err(ConfigError::new(
                at(ca.span()),
                "ca is for verifying; this target has verify = false",
            ));
        }
        (false, None) => Verify::KeepalivedSslGet,
        (true, Some(ca)) if ca.get_ref().is_empty() => {
            return Err(ConfigError::new(at(ca.span()), "ca is empty"));
        }
        (true, Some(ca)) => Verify::Ca(ca.get_ref().into()),
        (true, None) => Verify::Roots,
    };
    let sni = match &s.sni {
        Some(name) => Some(
            crate::check::tls::server_name(Some(name.get_ref()), "")
                .map_err(|e| ConfigError::new(at(name.span()), format!("sni: {e}")))?,
        ),
        None => None,
    };
    Ok(TlsSpec {
        verify,
        sni,
        ..TlsSpec::default()
    })
}

fn http_spec(
    s: &Settings,
    origin: &str,
    at: &impl Fn(std::ops::Range<usize>) -> String,
) -> Result<HttpSpec, ConfigError> {
    let err = |span: std::ops::Range<usize>, m: String| ConfigError::new(at(span), m);
    let Some(path) = &s.path else {
        return Err(ConfigError::new(
            origin,
            "an http or https check needs a path",
        ));
    };
    check_path(path.get_ref()).map_err(|m| err(path.span(), m))?;
    if let Some(host) = &s.host {
        check_host(host.get_ref()).map_err(|m| err(host.span(), m))?;
    }
    let md5 = match &s.md5 {
        Some(m) => Some(parse_md5(m.get_ref()).map_err(|e| err(m.span(), e))?),
        None => None,
    };
    let mut statuses = Vec::new();
    if let Some(list) = &s.status {
        for st in list.get_ref() {
            let range = match st {
                Status::Code(c) => parse_status(&c.to_string()),
                Status::Range(r) => parse_status(r),
            };
            statuses.push(range.map_err(|m| err(list.span(), format!("status: {m}")))?);
        }
    }
    if statuses.is_empty() {
        statuses.push(200..=399);
    }
    Ok(HttpSpec {
        host: s.host.as_ref().map(|h| h.get_ref().clone()),
        path: path.get_ref().clone(),
        method: s.method.unwrap_or_default(),
        statuses,
        md5,
        ..HttpSpec::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Loaded, ConfigError> {
        load_str(text, "targets.toml")
    }

    const EXAMPLE: &str = r#"
[defaults]                 # for every target (optional)
iface = "eth0"             # default: the interface of the route to the real server
timeout_ms = 1000
check = "tcp"              # tcp, http or https

[[vip]]
address = "10.0.0.100"
port = 80
check = "http"             # for this VIP's real servers
host = "www.example.com"
path = "/healthcheck"

[[vip.real_server]]
address = "10.0.0.42"

[[vip.real_server]]
address = "10.0.0.43"
status = [200, "300-399"]  # this one only

[[vip]]
address = "fd98:c612:0:1::100"
port = 22
real_server = [{ address = "fd98:c612:0:1::b" }, { address = "fd98:c612:0:1::c", iface = "eth1", timeout_ms = 300, capture = "tc" }]
"#;

    #[test]
    fn example_and_defaults() {
        let loaded = load(EXAMPLE).unwrap();
        assert_eq!(loaded.skipped, vec![]);
        let t = &loaded.targets;
        assert_eq!(t.len(), 4);
        assert_eq!(t[0].probe.iface.as_deref(), Some("eth0"));
        assert_eq!(
            (t[0].probe.vip.to_string(), t[0].probe.port),
            ("10.0.0.100".into(), 80)
        );
        assert_eq!(t[0].probe.real_server.to_string(), "10.0.0.42");
        assert_eq!(t[0].probe.timeout, Duration::from_millis(1000));
        assert_eq!(t[0].origin, "targets.toml:14");
        let CheckSpec::Http(h) = &t[0].probe.check else {
            panic!("{:?}", t[0].probe.check)
        };
        assert_eq!(h.host.as_deref(), Some("www.example.com"));
        assert_eq!(h.path, "/healthcheck");
        assert_eq!(h.statuses, vec![200..=399]);
        let CheckSpec::Http(h) = &t[1].probe.check else {
            panic!()
        };
        assert_eq!(h.statuses, vec![200..=200, 300..=399]);
        // The second VIP takes the global check (tcp) and iface.
        assert_eq!(t[2].probe.check, CheckSpec::Tcp);
        assert_eq!(t[2].probe.iface.as_deref(), Some("eth0"));
        assert_eq!(t[2].probe.vip.to_string(), "fd98:c612:0:1::100");
        assert_eq!(t[2].probe.real_server.to_string(), "fd98:c612:0:1::b");
        assert_eq!(t[3].probe.iface.as_deref(), Some("eth1"));
        assert_eq!(t[3].probe.timeout, Duration::from_millis(300));
        assert_eq!(t[2].probe.hook, CaptureHook::Auto);
        assert_eq!(t[3].probe.hook, CaptureHook::Tc);
        let bad =
            load("[defaults]\ncapture = \"tcx\"\n[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n");
        assert!(
            bad.as_ref()
                .is_err_and(|e| e.to_string().contains("unknown variant `tcx`")),
            "{bad:?}"
        );
    }

    #[test]
    fn no_defaults_at_all() {
        let loaded = load(
            "[[vip]]\naddress = \"[fd00::100]\"\nport = 443\ncheck = \"https\"\npath = \"/\"\nmethod = \"HEAD\"\nmd5 = \"D36F8F9425C4A8000AD9C4A97185ACA5\"\n[[vip.real_server]]\naddress = \"fd00::2\"\ninterval_ms = 2000\nretry = 3\n",
        )
        .unwrap();
        let t = &loaded.targets[0];
        assert_eq!(t.probe.iface, None);
        assert_eq!(t.probe.timeout, Duration::from_millis(DEFAULT_TIMEOUT_MS));
        assert_eq!(
            (t.interval, t.retry),
            (Some(Duration::from_secs(2)), Some(3))
        );
        let CheckSpec::Https(h, _) = &t.probe.check else {
            panic!()
        };
        assert_eq!(h.method, Method::Head);
        assert_eq!(h.host, None);
        assert_eq!(h.md5.as_deref(), Some("d36f8f9425c4a8000ad9c4a97185aca5"));
        assert_eq!(load("").unwrap(), Loaded::default());
    }

    #[test]
    fn errors_say_where() {
        let cases = [
            (
                "[defaults]\ntimeout = 5\n",
                "targets.toml:2",
                "unknown field `timeout`",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n[[vip.real_server]]\nadress = \"10.0.0.2\"\n",
                "targets.toml:5",
                "unknown field `adress`",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n[[vip.real_server]]\niface = \"eth0\"\n",
                "targets.toml:4",
                "missing field `address`",
            ),
            (
                "[[vip]]\nport = 80\n",
                "targets.toml:1",
                "missing field `address`",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n",
                "targets.toml:1",
                "has no [[vip.real_server]]",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n[[vip.real_server]]\naddress = \"10.0.0.x\"\n",
                "targets.toml:5",
                "is not an IP address",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n[[vip.real_server]]\naddress = \"fd00::1\"\n",
                "targets.toml:5",
                "different families",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 70000\n",
                "targets.toml:3",
                "",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\ncheck = \"http\"\n[[vip.real_server]]\naddress = \"10.0.0.2\"\n",
                "targets.toml:5",
                "needs a path",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\ncheck = \"ftp\"\n",
                "targets.toml:4",
                "unknown variant `ftp`",
            ),
            (
                "[defaults]\ntimeout_ms = 0\n[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n[[vip.real_server]]\naddress = \"10.0.0.2\"\n",
                "targets.toml:2",
                "timeout_ms 0",
            ),
            (
                "[defaults]\ncheck = \"http\"\npath = \"/\"\nstatus = [\"299-200\"]\n[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n[[vip.real_server]]\naddress = \"10.0.0.2\"\n",
                "targets.toml:4",
                "status: empty range",
            ),
            (
                "[[vip]]\naddress = \"10.0.0.1\"\nport = 80\n[[vip.real_server]]\naddress = \"10.0.0.2\"\ncheck = \"http\"\npath = \"x\"\n",
                "targets.toml:7",
                "is not a path",
            ),
            ("[other]\n", "targets.toml:1", "unknown field `other`"),
            ("[[vip]\n", "targets.toml:1", ""),
        ];
        for (text, origin, message) in cases {
            let e = load(text).unwrap_err();
            assert_eq!(e.origin, origin, "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
        }
    }

    #[test]
    fn reads_a_file() {
        let path =
            std::env::temp_dir().join(format!("vipcheck-targets-{}.toml", std::process::id()));
        std::fs::write(&path, EXAMPLE).unwrap();
        let loaded = super::load(&path).unwrap();
        assert_eq!(loaded.targets.len(), 4);
        assert!(
            loaded.targets[0]
                .origin
                .starts_with(&path.display().to_string())
        );
        let _ = std::fs::remove_file(&path);
        assert!(
            super::load(&path)
                .unwrap_err()
                .message
                .contains("cannot open")
        );
    }

    #[test]
    fn https_verification_settings() {
        let base =
            "[[vip]]\naddress = \"10.0.0.100\"\nport = 443\ncheck = \"https\"\npath = \"/\"\n";
        let tls = |extra: &str| -> Result<TlsSpec, ConfigError> {
            let loaded = load_str(
                &format!("{base}{extra}[[vip.real_server]]\naddress = \"10.0.0.42\"\n"),
                "t.toml",
            )?;
            let t = &loaded.targets[0];
            assert_eq!((t.probe.port, t.vs_port, t.rs_port), (443, 443, 443));
            match &t.probe.check {
                CheckSpec::Https(_, tls) => Ok(tls.clone()),
                other => panic!("{other:?}"),
            }
        };
        // Verified by default, as before.
        assert_eq!(tls("").unwrap(), TlsSpec::default());
        assert_eq!(
            tls("verify = false\n").unwrap().verify,
            Verify::KeepalivedSslGet
        );
        assert_eq!(
            tls("ca = \"/etc/ssl/lab.pem\"\nsni = \"lab.example\"\n").unwrap(),
            TlsSpec {
                verify: Verify::Ca("/etc/ssl/lab.pem".into()),
                sni: Some("lab.example".into()),
                ..TlsSpec::default()
            }
        );
        let e = tls("verify = false\nca = \"x.pem\"\n").unwrap_err();
        assert!(
            e.origin.starts_with("t.toml:") && e.message.contains("verify = false"),
            "{e}"
        );
        assert!(tls("sni = \"not a name\"\n").is_err());
    }
}
