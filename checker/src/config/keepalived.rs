//! keepalived.conf as the input of an audit: its virtual servers' real
//! servers and their checkers, as [`AuditTarget`]s.
//!
//! Reading (`keepalived/reader.rs`) follows keepalived 2.2.7
//! (lib/parser.c), so that a file means here what it means to keepalived:
//!
//! - bytes, not text: a line that is not UTF-8 is kept lossily (comments
//!   and quoted strings are what carry such bytes); a line longer than
//!   1023 bytes is read as several, as `fgets` does; a UTF-8 byte order
//!   mark stays part of the first word (keepalived then reports that word
//!   as unknown; so does vipcheck, with a warning naming the mark);
//! - `#` and `!` start a comment anywhere outside `"quotes"` (`\#`, `\!`
//!   are literal); `{` and `}` outside quotes go on lines of their own;
//! - `$NAME=value` at a line's start defines a parameter (a final `\`
//!   continues it on the next lines); `$NAME` (followed by a blank, `,`,
//!   `)` or the line's end) and `${NAME}` anywhere are replaced, the value
//!   expanded in turn; an unknown one stays as it is; a multi-line one
//!   gives its lines; `$_PWD`, `$_INSTANCE`, `${_RANDOM min max}`,
//!   `$_HASH`, `$_BANG` as keepalived's;
//! - `@NAME line` is read only when NAME is keepalived's config id,
//!   `@^NAME line` only when it is not; without `keepalived -i` (how
//!   vipcheck reads) the id is the host name up to its first dot;
//! - `~SEQ(var, [start, [step,]] end) line`, `~SEQx` (hexadecimal) and
//!   `~LST(var, v1, v2...)` / `~LST({a, b}, {1, 2}, ...)` repeat the line
//!   with the parameters set;
//! - `include PATTERN` (glob(3) with `{a,b}` braces, relative to the
//!   including file) reads what matches and passes over what does not;
//!   `includer` refuses a directory or an unreadable or executable file,
//!   `includem` also a missing file or directory, `includew` also a
//!   wildcard that matches nothing, `includeb` also a missing brace
//!   alternative, `includea` all of these; `include_check` in global_defs
//!   asks the same of every later include. What is refused makes the
//!   whole file an error (keepalived does not start); what is passed over
//!   is [`Skipped`];
//! - blocks are keepalived's: each block kind takes the keywords of
//!   keepalived's tables (`keepalived/keywords.rs`). An unknown keyword,
//!   a `{` it does not expect or a missing one are [`Warning`]s as
//!   `keepalived -t` reports them, with `file:line`, and reading goes on
//!   exactly as keepalived's does (an unknown keyword opens no block: its
//!   `}` ends the block around it).
//!
//! A value keepalived reports and reads past (an invalid address, port,
//! number, MD5, path...) is a [`Warning`] with `file:line`, and the virtual
//! server or real server it belongs to is [`Skipped`] with the reason.
//!
//! Bounded: include depth [`MAX_INCLUDE_DEPTH`](reader::MAX_INCLUDE_DEPTH), [`MAX_FILES`](reader::MAX_FILES) files,
//! [`MAX_LINES`](reader::MAX_LINES) lines after expansion, [`MAX_SEQ_LINES`](reader::MAX_SEQ_LINES) a `~SEQ`,
//! [`MAX_SUBSTITUTIONS`](reader::MAX_SUBSTITUTIONS) and [`MAX_LINE_LEN`](reader::MAX_LINE_LEN) bytes a line, [`MAX_WORDS`](reader::MAX_WORDS)
//! words, [`MAX_WARNINGS`](reader::MAX_WARNINGS) warnings, [`MAX_GROUP_ADDRESSES`] addresses a
//! group; an include loop, or a parameter that expands to itself (which
//! keepalived loops on), is an error with `file:line`.
//!
//! Mapping, for each `virtual_server IP PORT` (IPv4 or IPv6) or
//! `virtual_server group NAME` (each `VIP PORT`, `A.B.C.D-E PORT`,
//! `A.B.C.D-A.B.C.F PORT` or `ADDR/PREFIX PORT` of the
//! `virtual_server_group`, IPv6 alike, the range end in hex; at most
//! [`MAX_GROUP_ADDRESSES`] addresses a group) of `protocol TCP` or `UDP`
//! (none is UDP, as keepalived: warned) and direct routing (`lb_kind DR` or `lvs_method DR`; a real server's own
//! `lvs_method` wins), and each `real_server IP [PORT]` in it (no port:
//! the virtual server's, or the group entry's), each checker (a UDP
//! virtual server's targets carry its protocol):
//!
//! | keepalived | target |
//! | --- | --- |
//! | `TCP_CHECK` | tcp; `connect_port` overrides the port (under a UDP virtual server too: keepalived connects over TCP) |
//! | `DNS_CHECK` | dns over UDP: `type` (SOA; not PTR), `name` (the root); `retry` 3 unless given (`keepalived/checkers.rs`) |
//! | `UDP_CHECK` | udp: `payload` (else keepalived's text), `require_reply [HEX]`, `min_reply_length`, `max_reply_length`, judged as keepalived (`keepalived/checkers.rs`) |
//! | `SMTP_CHECK` | smtp, HELO only: `helo_name`; each `host { }` block a further one of its own connection settings |
//! | `PING_CHECK` | ping (an echo to the VIP; `connect_port` ignored) |
//! | `HTTP_GET`, `SSL_GET` | http, https: one target per `url { path P digest D status_code C... regex R regex_no_match }`; status default 200-299; `virtualhost` (url, checker, real_server or virtual_server level, the innermost wins) is the Host; `SSL_GET` verifies no certificate, as keepalived's, and sends SNI only with `enable_sni` |
//! | `MISC_CHECK` whose `misc_path` runs `check_tcp_raw`, `check_http_get_raw` or `check_http_raw` (any directory) | what that command line checks: IFACE, REAL_SERVER, VIP and PORT from its arguments, its `-t` as the per-reply timeout |
//! | `MISC_CHECK` whose `misc_path` runs `vipcheck tcp\|http\|https\|ping\|udp\|dns\|smtp ...` (any directory) | what that command line checks, parsed by vipcheck's own CLI; its `-t` (or 1 s) is the timeout when shorter than `misc_timeout`; literal addresses only (no name is resolved) |
//!
//! `connect_timeout` (seconds; checker, real_server or virtual_server
//! level; default 5 as keepalived's) and `misc_timeout` are the timeout;
//! `delay_loop` the interval, `retry` (or `nb_get_retry`) the retries,
//! each from the innermost level that gives it.
//!
//! Skipped, with the reason: `virtual_server fwmark N`, a group's
//! `fwmark` entries and entries without a port, a virtual server of
//! `protocol SCTP`, one of `lb_kind NAT` or `TUN` or
//! without a forwarding method (keepalived's default is NAT: warned), a
//! real server of another family than its VIP, a real server without a
//! checker, `BFD_CHECK`, `FILE_CHECK`, a `MISC_CHECK` of another script or of an
//! invalid command line, a checker with a `connect_ip` other than its real
//! server, and an include that matches no file (or a file it passes over).
//! Warned: a direct-routing real server whose port is not its virtual
//! server's (keepalived reports "ports don't match"; its checkers, and
//! vipcheck, check the real server's port), and a virtual server without
//! real servers. Everything else (global_defs, vrrp_*, lb_algo, weight...)
//! is not a check and is ignored.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use super::{ConfigError, Loaded, Skipped, Warning};
use crate::probe::parse::{
    check_host, check_path, check_unicast, parse_ip, parse_md5, parse_port, parse_status,
};
use crate::probe::{AuditTarget, CheckSpec, HttpSpec, Pattern, Probe, Protocol, TlsSpec, Verify};

#[cfg(test)]
pub(crate) mod cases;
mod checkers;
mod keywords;
mod reader;

use reader::Stmt;
#[cfg(test)]
use reader::{MAX_INCLUDE_DEPTH, MAX_WARNINGS};

/// keepalived's default `connect_timeout`.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest timeout taken (one hour, as `vipcheck -t`).
const MAX_TIMEOUT_S: f64 = 3600.0;
/// Most addresses one `virtual_server_group` gives (ranges expanded).
pub(crate) const MAX_GROUP_ADDRESSES: u128 = 4096;

/// Reads keepalived.conf at `path` (and what it includes) into targets.
pub(crate) fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let read = reader::read(path, None, reader::host_config_id())?;
    map(read)
}

/// `text` as the keepalived.conf at `path` (includes are relative to its
/// directory).
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, ConfigError> {
    let read = reader::read(path, Some(text), reader::host_config_id())?;
    map(read)
}

fn map(read: reader::Read) -> Result<Loaded, ConfigError> {
    let mut loaded = Loaded {
        targets: Vec::new(),
        skipped: read.skipped,
        warnings: read.warnings,
    };
    let groups: Vec<&Stmt> = read
        .statements
        .iter()
        .filter(|s| s.key == "virtual_server_group")
        .collect();
    for s in &read.statements {
        if s.key == "virtual_server" {
            missing_parameter(s)?;
            let before = loaded.targets.len();
            if let Err(e) = map_virtual_server(s, &groups, &mut loaded) {
                loaded.targets.truncate(before);
                reject(
                    &mut loaded,
                    e,
                    format!("virtual_server {}", s.args.join(" ")),
                );
            }
        }
    }
    Ok(loaded)
}

/// Keywords of a virtual server's tree whose value keepalived 2.2.7 reads
/// without looking whether it is there: given none, it stops at once
/// ("Configuration line starting `KEY` is missing a parameter after
/// keyword `KEY`", exit 2; `status_code` crashes it). Measured with
/// `keepalived -t`, each keyword of its tables for virtual_server,
/// real_server, the checkers and url given alone: these stop it (the
/// same in every block that has them); the others are read past
/// (UDP_CHECK's `payload` and SMTP_CHECK's `helo_name` with a report).
const PARAMETER_REQUIRED: [&str; 40] = [
    "virtual_server",
    "real_server",
    "status_code",
    "bind_if",
    "bind_port",
    "bindto",
    "connect_ip",
    "connect_port",
    "connect_timeout",
    "delay_before_retry",
    "delay_loop",
    "digest",
    "fwmark",
    "hysteresis",
    "ip_family",
    "lb_algo",
    "lb_kind",
    "lthreshold",
    "lvs_method",
    "lvs_sched",
    "max_reply_length",
    "min_reply_length",
    "misc_timeout",
    "name",
    "nb_get_retry",
    "notify_down",
    "notify_up",
    "path",
    "persistence_engine",
    "persistence_granularity",
    "protocol",
    "quorum",
    "quorum_down",
    "quorum_up",
    "retry",
    "sorry_server",
    "type",
    "uthreshold",
    "warmup",
    "weight",
];

/// A keyword of `vs`'s tree given without the value keepalived cannot
/// start without: an error, as keepalived does not start with the file.
fn missing_parameter(vs: &Stmt) -> Result<(), ConfigError> {
    if vs.args.is_empty() && PARAMETER_REQUIRED.contains(&vs.key.as_str()) {
        return Err(vs.error(format!(
            "{} is missing its parameter: keepalived does not start with this file \
             (\"missing a parameter after keyword `{}`\"); give it a value",
            vs.key, vs.key
        )));
    }
    vs.children().iter().try_for_each(missing_parameter)
}

/// What keepalived reads past with an error report (an invalid address,
/// port, number...) and vipcheck cannot check: skipped, and warned where.
fn reject(loaded: &mut Loaded, e: ConfigError, what: String) {
    loaded.warnings.push(Warning {
        origin: e.origin.clone(),
        message: format!("{}; {what} is not checked", e.message),
    });
    loaded.skipped.push(Skipped {
        origin: e.origin,
        what,
        reason: e.message,
    });
}

impl Stmt {
    /// Its one argument.
    fn arg(&self) -> Result<&str, ConfigError> {
        match self.args.as_slice() {
            [one] => Ok(one),
            [] => Err(self.error(format!("{} needs an argument", self.key))),
            _ => Err(self.error(format!(
                "{} takes one argument (one statement per line)",
                self.key
            ))),
        }
    }

    fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(&self.origin, message)
    }

    fn children(&self) -> &[Stmt] {
        self.block.as_deref().unwrap_or(&[])
    }
}

/// Settings a level gives to the levels inside it.
#[derive(Clone, Debug, Default)]
struct Inherit {
    timeout: Option<Duration>,
    interval: Option<Duration>,
    retry: Option<u32>,
    host: Option<String>,
}

impl Inherit {
    /// These settings with those `block` gives over them.
    fn with(&self, block: &[Stmt]) -> Result<Inherit, ConfigError> {
        let mut out = self.clone();
        for s in block {
            match s.key.as_str() {
                "connect_timeout" => out.timeout = Some(seconds(s, MAX_TIMEOUT_S)?),
                "delay_loop" => out.interval = Some(seconds(s, 86_400.0)?),
                "retry" | "nb_get_retry" => {
                    out.retry = Some(
                        s.arg()?
                            .parse()
                            .map_err(|_| s.error(format!("{} takes a count", s.key)))?,
                    );
                }
                "virtualhost" => {
                    let host = s.arg()?;
                    check_host(host).map_err(|m| s.error(m))?;
                    out.host = Some(host.to_string());
                }
                _ => {}
            }
        }
        Ok(out)
    }
}

/// A duration in seconds (decimals allowed), more than 0, at most `max`.
fn seconds(s: &Stmt, max: f64) -> Result<Duration, ConfigError> {
    let arg = s.arg()?;
    arg.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0 && *v <= max)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            s.error(format!(
                "{} {arg:?}: not a number of seconds (more than 0, at most {max})",
                s.key
            ))
        })
}

fn skip(loaded: &mut Loaded, origin: &str, what: String, reason: String) {
    loaded.skipped.push(Skipped {
        origin: origin.to_string(),
        what,
        reason,
    });
}

fn warn(loaded: &mut Loaded, origin: &str, message: String) {
    loaded.warnings.push(Warning {
        origin: origin.to_string(),
        message,
    });
}

/// One address and port a virtual server answers on.
struct Service {
    vip: IpAddr,
    port: u16,
}

fn map_virtual_server(vs: &Stmt, groups: &[&Stmt], loaded: &mut Loaded) -> Result<(), ConfigError> {
    let what = format!("virtual_server {}", vs.args.join(" "));
    let first = vs.args.first().map(String::as_str);
    let services = match (first, vs.args.get(1)) {
        (Some("fwmark"), _) => {
            skip(
                loaded,
                &vs.origin,
                what,
                "a firewall-mark virtual server has no single VIP and port to check through".into(),
            );
            return Ok(());
        }
        (Some("group"), Some(name)) => {
            let Some(group) = groups.iter().find(|g| g.args.first() == Some(name)) else {
                warn(
                    loaded,
                    &vs.origin,
                    format!("{what}: no virtual_server_group {name} (keepalived ignores it)"),
                );
                skip(
                    loaded,
                    &vs.origin,
                    what,
                    format!("virtual_server_group {name} is not defined"),
                );
                return Ok(());
            };
            group_services(group, loaded)?
        }
        _ => {
            let (vip, port) = match vs.args.as_slice() {
                [ip, port] => (
                    parse_ip(ip).map_err(|m| vs.error(format!("virtual_server: {m}")))?,
                    parse_port(port).map_err(|m| vs.error(format!("virtual_server: {m}")))?,
                ),
                [] | [_] => {
                    return Err(vs.error(
                        "virtual_server needs an address and a port (or fwmark N, group NAME)",
                    ));
                }
                _ => return Err(vs.error("virtual_server takes an address and a port")),
            };
            check_unicast(vip, "VIP").map_err(|m| vs.error(m))?;
            vec![Service { vip, port }]
        }
    };
    let block = vs.children();
    let inherit = Inherit::default().with(block)?;
    let mut real_servers = Vec::new();
    for rs in block.iter().filter(|s| s.key == "real_server") {
        match rs_address(rs) {
            Ok(_) => real_servers.push(rs),
            Err(e) => reject(
                loaded,
                e,
                format!("real_server {} of {what}", rs.args.join(" ")),
            ),
        }
    }
    if real_servers.is_empty() {
        warn(
            loaded,
            &vs.origin,
            format!("Virtual server {what} has no real servers - keepalived ignores it"),
        );
        return Ok(());
    }
    if services.is_empty() {
        return Ok(());
    }
    // keepalived 2.2.7 (check_data.c): an address virtual server without
    // a protocol is UDP.
    let vs_method = method(block, "virtual", loaded)?;
    let mut rs_methods = Vec::new();
    for rs in &real_servers {
        rs_methods.push(method(rs.children(), "real", loaded)?);
    }
    let protocol = match protocol(block, loaded)? {
        None => {
            // Read as keepalived reads it: a UDP service.
            warn(
                loaded,
                &vs.origin,
                format!(
                    "{what}: no protocol set - keepalived defaults to UDP (add `protocol TCP` \
                     for a TCP service)"
                ),
            );
            Protocol::Udp
        }
        Some("TCP") => Protocol::Tcp,
        Some("UDP") => Protocol::Udp,
        Some(proto) => {
            skip(
                loaded,
                &vs.origin,
                what,
                format!("protocol {proto}: vipcheck checks TCP and UDP services"),
            );
            return Ok(());
        }
    };
    // Only direct routing puts the VIP on the real servers: under NAT they
    // are reached at their own address, under TUN through a tunnel, and a
    // check through the VIP path would fail them all. keepalived's default
    // is NAT; a real server's `lvs_method` overrides the virtual server's.
    if rs_methods.iter().all(Option::is_none) {
        match &vs_method {
            None => {
                warn(
                    loaded,
                    &vs.origin,
                    format!(
                        "{what}: no forwarding method set - keepalived uses NAT (add `lb_kind DR` \
                         for direct routing)"
                    ),
                );
                skip(
                    loaded,
                    &vs.origin,
                    what,
                    "no lb_kind: keepalived forwards with NAT (its default), where the real \
                     servers do not carry the VIP"
                        .into(),
                );
                return Ok(());
            }
            Some(kind) if !kind.eq_ignore_ascii_case("DR") => {
                skip(
                    loaded,
                    &vs.origin,
                    what,
                    format!(
                        "lb_kind {kind}: only direct-routing (DR) real servers carry the VIP, \
                         so only they are checked through the VIP path"
                    ),
                );
                return Ok(());
            }
            Some(_) => {}
        }
    }
    let mut nat_warned = false;
    for (rs, rs_method) in real_servers.into_iter().zip(rs_methods) {
        let kind = match rs_method.or_else(|| vs_method.clone()) {
            Some(kind) => kind,
            None => {
                if !nat_warned {
                    nat_warned = true;
                    warn(
                        loaded,
                        &vs.origin,
                        format!(
                            "{what}: no forwarding method set - keepalived uses NAT (add \
                             `lb_kind DR` for direct routing)"
                        ),
                    );
                }
                "NAT".to_string()
            }
        };
        if !kind.eq_ignore_ascii_case("DR") {
            skip(
                loaded,
                &rs.origin,
                format!("real_server {} of {what}", rs.args.join(" ")),
                format!(
                    "lvs_method {kind}: only direct-routing (DR) real servers carry the VIP, \
                     so only they are checked through the VIP path"
                ),
            );
            continue;
        }
        for (i, service) in services.iter().enumerate() {
            let before = loaded.targets.len();
            let first = i == 0;
            if let Err(e) = map_real_server(rs, service, protocol, &inherit, first, loaded) {
                loaded.targets.truncate(before);
                let vs = format!("virtual_server {} {}", service.vip, service.port);
                reject(
                    loaded,
                    e,
                    format!("real_server {} of {vs}", rs.args.join(" ")),
                );
            }
        }
    }
    Ok(())
}

/// The forwarding method a block sets (`lb_kind` or `lvs_method`: `NAT`,
/// `DR` or `TUN`, as keepalived spells them; the last valid one wins, an
/// invalid one is reported and ignored, as keepalived does).
fn method(
    block: &[Stmt],
    server: &str,
    loaded: &mut Loaded,
) -> Result<Option<String>, ConfigError> {
    let mut out = None;
    for s in block
        .iter()
        .filter(|s| s.key == "lb_kind" || s.key == "lvs_method")
    {
        let kind = s
            .args
            .first()
            .ok_or_else(|| s.error(format!("{} needs an argument", s.key)))?;
        if matches!(kind.as_str(), "NAT" | "DR" | "TUN") {
            out = Some(kind.clone());
        } else {
            warn(
                loaded,
                &s.origin,
                format!(
                    "PARSER : unknown [{kind}] routing method for {server} server (NAT, DR or TUN)"
                ),
            );
        }
    }
    Ok(out)
}

/// The protocol a virtual server's block sets: `TCP`, `UDP` or `SCTP` (any
/// case, as keepalived), the last valid one; an unknown one is reported
/// and ignored, as keepalived does.
fn protocol(block: &[Stmt], loaded: &mut Loaded) -> Result<Option<&'static str>, ConfigError> {
    let mut out = None;
    for s in block.iter().filter(|s| s.key == "protocol") {
        let proto = s.arg()?;
        match ["TCP", "UDP", "SCTP"]
            .into_iter()
            .find(|p| p.eq_ignore_ascii_case(proto))
        {
            Some(p) => out = Some(p),
            None => warn(
                loaded,
                &s.origin,
                format!("Unknown protocol {proto} - ignoring"),
            ),
        }
    }
    Ok(out)
}

/// The addresses and ports of a `virtual_server_group`: `VIP PORT`,
/// `A.B.C.D-E PORT` (last byte range), `A.B.C.D-A.B.C.E PORT`,
/// `ADDR/PREFIX PORT`, IPv6 alike (`-E` then ranges the last 16 bits,
/// in hex); `fwmark` entries are skipped.
fn group_services(group: &Stmt, loaded: &mut Loaded) -> Result<Vec<Service>, ConfigError> {
    let name = group.args.first().cloned().unwrap_or_default();
    let mut out = Vec::new();
    let mut total: u128 = 0;
    for entry in group.children() {
        let what = format!(
            "{} {} of virtual_server_group {name}",
            entry.key,
            entry.args.join(" ")
        );
        if entry.key == "fwmark" {
            skip(
                loaded,
                &entry.origin,
                what,
                "a firewall mark has no single VIP and port to check through".into(),
            );
            continue;
        }
        let port = match entry.args.first() {
            Some(p) if p.trim_start_matches('0').is_empty() => None,
            Some(p) => Some(
                parse_port(p)
                    .map_err(|m| entry.error(format!("virtual_server_group {name}: {m}")))?,
            ),
            None => None,
        };
        let Some(port) = port else {
            skip(
                loaded,
                &entry.origin,
                what,
                "no port: the service takes every port, name one to check".into(),
            );
            continue;
        };
        let (start, end) = group_range(&entry.key)
            .map_err(|m| entry.error(format!("virtual_server_group {name}: {m}")))?;
        let count = match (start, end) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u32::from(b) - u32::from(a)) as u128 + 1,
            (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(b) - u128::from(a) + 1,
            _ => unreachable!("group_range gives one family"),
        };
        if total + count > MAX_GROUP_ADDRESSES {
            skip(
                loaded,
                &entry.origin,
                what,
                format!(
                    "{count} addresses: more than vipcheck checks in one group \
                     ({MAX_GROUP_ADDRESSES} a group); name fewer"
                ),
            );
            continue;
        }
        total += count;
        for i in 0..count {
            let vip = match start {
                IpAddr::V4(a) => IpAddr::V4((u32::from(a) + i as u32).into()),
                IpAddr::V6(a) => IpAddr::V6((u128::from(a) + i).into()),
            };
            check_unicast(vip, "VIP").map_err(|m| entry.error(m))?;
            out.push(Service { vip, port });
        }
    }
    if group.children().is_empty() {
        warn(
            loaded,
            &group.origin,
            format!("virtual server group {name} has no entries - keepalived removes it"),
        );
    }
    Ok(out)
}

/// First and last address of a group entry's address (start <= end).
fn group_range(addr: &str) -> Result<(IpAddr, IpAddr), String> {
    let v6 = addr.contains(':');
    let (base, suffix) = match addr.find(['-', '/']) {
        Some(i) => (&addr[..i], Some((&addr[i..i + 1], &addr[i + 1..]))),
        None => (addr, None),
    };
    let start = parse_ip(base)?;
    if start.is_ipv6() != v6 {
        return Err(format!("{addr:?} is not an IP address"));
    }
    let bad = || format!("{addr:?} is not an address range");
    let end = match suffix {
        None => start,
        Some(("/", bits)) => {
            let bits: u32 = bits.parse().map_err(|_| bad())?;
            match start {
                IpAddr::V4(a) if (1..=32).contains(&bits) => {
                    let host = u32::MAX.checked_shr(bits).unwrap_or(0);
                    if u32::from(a) & host != 0 {
                        return Err(format!("{addr:?}: address mask bits not empty"));
                    }
                    IpAddr::V4((u32::from(a) | host).into())
                }
                IpAddr::V6(a) if (1..=128).contains(&bits) => {
                    let host = u128::MAX.checked_shr(bits).unwrap_or(0);
                    if u128::from(a) & host != 0 {
                        return Err(format!("{addr:?}: address mask bits not empty"));
                    }
                    IpAddr::V6((u128::from(a) | host).into())
                }
                _ => return Err(format!("{addr:?}: invalid netmask")),
            }
        }
        Some((_, last)) if (!v6 && last.contains('.')) || (v6 && last.contains(':')) => {
            let end = parse_ip(last)?;
            if end.is_ipv6() != v6 {
                return Err(format!("{addr:?}: range address families do not match"));
            }
            end
        }
        Some((_, last)) => match start {
            IpAddr::V4(a) => {
                let e: u32 = last.parse().ok().filter(|e| *e <= 255).ok_or_else(bad)?;
                IpAddr::V4(((u32::from(a) & !0xff) | e).into())
            }
            IpAddr::V6(a) => {
                let e = u16::from_str_radix(last, 16).map_err(|_| bad())?;
                IpAddr::V6(((u128::from(a) & !0xffff) | e as u128).into())
            }
        },
    };
    let ordered = match (start, end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => u32::from(a) <= u32::from(b),
        (IpAddr::V6(a), IpAddr::V6(b)) => u128::from(a) <= u128::from(b),
        _ => false,
    };
    if !ordered {
        return Err(format!("{addr:?}: the range ends before it starts"));
    }
    Ok((start, end))
}

/// A real server's address and port (when given).
fn rs_address(rs: &Stmt) -> Result<(IpAddr, Option<u16>), ConfigError> {
    let (ip, port) = match rs.args.as_slice() {
        [ip] => (ip, None),
        [ip, port] => (ip, Some(port)),
        [] => return Err(rs.error("real_server needs an address (and a port)")),
        _ => return Err(rs.error("real_server takes an address and a port")),
    };
    let real_server = parse_ip(ip).map_err(|m| rs.error(format!("real_server: {m}")))?;
    let port = match port {
        Some(p) => Some(parse_port(p).map_err(|m| rs.error(format!("real_server: {m}")))?),
        None => None,
    };
    check_unicast(real_server, "real server").map_err(|m| rs.error(m))?;
    Ok((real_server, port))
}

/// A checker of keepalived that is not mapped, and why.
fn unmapped_reason(key: &str) -> Option<&'static str> {
    Some(match key {
        "BFD_CHECK" => "BFD follows a session, not the service through the VIP",
        "FILE_CHECK" => "reads a local file; nothing is checked on the wire",
        _ => return None,
    })
}

/// The checkers vipcheck maps.
const MAPPED: [&str; 8] = [
    "TCP_CHECK",
    "HTTP_GET",
    "SSL_GET",
    "MISC_CHECK",
    "DNS_CHECK",
    "UDP_CHECK",
    "SMTP_CHECK",
    "PING_CHECK",
];

fn map_real_server(
    rs: &Stmt,
    service: &Service,
    protocol: Protocol,
    inherit: &Inherit,
    first_service: bool,
    loaded: &mut Loaded,
) -> Result<(), ConfigError> {
    let (real_server, rs_port) = rs_address(rs)?;
    let (vip, vs_port) = (service.vip, service.port);
    let port = rs_port.unwrap_or(vs_port);
    let name = format!("real_server {real_server} {port} of virtual_server {vip} {vs_port}");
    if real_server.is_ipv4() != vip.is_ipv4() {
        loaded.skipped.push(Skipped {
            origin: rs.origin.clone(),
            what: name,
            reason:
                "the real server and the VIP are of different families (LVS-DR forwards within one)"
                    .into(),
        });
        return Ok(());
    }
    if port != vs_port && first_service {
        warn(
            loaded,
            &rs.origin,
            format!(
                "real_server {real_server} {port}: its port is not the virtual server's \
                 {vs_port}, and direct routing (DR) cannot change the port (keepalived: \
                 \"ports don't match\"): clients reach the real server on port {vs_port}, \
                 while keepalived's checkers, and vipcheck, check port {port}"
            ),
        );
    }
    let vs_host = inherit.host.clone();
    let inherit = inherit.with(rs.children())?;
    let base = Base {
        real_server,
        vip,
        port,
        vs_port,
        protocol,
        vs_host,
        name: &name,
    };
    let mut checkers = 0;
    for c in rs.children() {
        let key = c.key.as_str();
        let known = MAPPED.contains(&key);
        let skip = |reason: String, loaded: &mut Loaded| {
            loaded.skipped.push(Skipped {
                origin: c.origin.clone(),
                what: format!("{key} of {name}"),
                reason,
            });
        };
        if let Some(reason) = unmapped_reason(key) {
            checkers += 1;
            skip(reason.into(), loaded);
        } else if known {
            checkers += 1;
            // SMTP_CHECK's deprecated `host` blocks are further SMTP
            // checkers of their own connection settings (check_smtp.c).
            let hosts = c
                .children()
                .iter()
                .filter(|s| key == "SMTP_CHECK" && s.key == "host");
            // A host block's helo_name is its SMTP_CHECK's: the block
            // takes none of its own.
            let smtp = (key == "SMTP_CHECK").then(|| checkers::smtp(c, loaded));
            for c in std::iter::once(c).chain(hosts) {
                let inherit = inherit.with(c.children())?;
                if let Some(ip) = other_connect_ip(c, real_server)? {
                    loaded.skipped.push(Skipped {
                        origin: c.origin.clone(),
                        what: format!("{} of {name}", c.key),
                        reason: format!(
                            "connect_ip {ip}: keepalived checks another address than the real server"
                        ),
                    });
                    continue;
                }
                map_checker(key, c, smtp.as_ref(), &base, &inherit, loaded)?;
            }
        } else if c.block.is_some() || key.ends_with("_CHECK") || key.ends_with("_GET") {
            checkers += 1;
            skip("not a checker vipcheck knows".into(), loaded);
        }
    }
    if checkers == 0 {
        loaded.skipped.push(Skipped {
            origin: rs.origin.clone(),
            what: name,
            reason: "it has no checker (keepalived keeps it up without checking)".into(),
        });
    }
    Ok(())
}

/// The address a checker's `connect_ip` names when it is not the real
/// server's.
fn other_connect_ip(c: &Stmt, real_server: IpAddr) -> Result<Option<IpAddr>, ConfigError> {
    let Some(s) = c.children().iter().find(|s| s.key == "connect_ip") else {
        return Ok(None);
    };
    let ip = parse_ip(s.arg()?).map_err(|m| s.error(format!("connect_ip: {m}")))?;
    Ok((ip != real_server).then_some(ip))
}

/// The targets of checker `c` of kind `key` (an SMTP_CHECK's `host`
/// block has its SMTP_CHECK's key, and `smtp` its dialogue).
fn map_checker(
    key: &str,
    c: &Stmt,
    smtp: Option<&crate::probe::SmtpSpec>,
    base: &Base,
    inherit: &Inherit,
    loaded: &mut Loaded,
) -> Result<(), ConfigError> {
    let check = match key {
        "HTTP_GET" | "SSL_GET" => return map_http(c, base, inherit, loaded),
        "MISC_CHECK" => return map_misc(c, base, inherit, loaded),
        "TCP_CHECK" => CheckSpec::Tcp,
        "PING_CHECK" => CheckSpec::Ping,
        "UDP_CHECK" => CheckSpec::Udp(checkers::udp(c, loaded)?),
        "SMTP_CHECK" => CheckSpec::Smtp(smtp.expect("an SMTP_CHECK's dialogue").clone()),
        "DNS_CHECK" => {
            let inherit = Inherit {
                retry: inherit.retry.or(Some(checkers::DNS_DEFAULT_RETRY)),
                ..inherit.clone()
            };
            let check = CheckSpec::Dns(checkers::dns(c)?);
            loaded.targets.push(base.target(c, &inherit, check)?);
            return Ok(());
        }
        _ => unreachable!("{key} is not in MAPPED"),
    };
    loaded.targets.push(base.target(c, inherit, check)?);
    Ok(())
}

/// What every target of a real server shares.
struct Base<'a> {
    real_server: IpAddr,
    vip: IpAddr,
    /// The real server's port (the virtual server's when it gives none).
    port: u16,
    vs_port: u16,
    protocol: Protocol,
    /// The virtual server's `virtualhost` (SSL_GET's SNI).
    vs_host: Option<String>,
    name: &'a str,
}

impl Base<'_> {
    /// The target of checker `c` (its `connect_port` over the port).
    fn target(
        &self,
        c: &Stmt,
        inherit: &Inherit,
        check: CheckSpec,
    ) -> Result<AuditTarget, ConfigError> {
        let mut port = self.port;
        for s in c.children().iter().filter(|s| s.key == "connect_port") {
            port = parse_port(s.arg()?).map_err(|m| s.error(format!("connect_port: {m}")))?;
        }
        if check == CheckSpec::Ping {
            // An echo has no port: PING_CHECK takes connect_port and
            // ignores it, and so does the target's label.
            port = self.port;
        }
        Ok(AuditTarget {
            probe: Probe {
                timeout: inherit.timeout.unwrap_or(DEFAULT_TIMEOUT),
                ..Probe::new(self.real_server, self.vip, port, check)
            },
            vs_vip: self.vip,
            vs_port: self.vs_port,
            vs_protocol: self.protocol,
            rs_ip: self.real_server,
            rs_port: self.port,
            interval: inherit.interval,
            retry: inherit.retry,
            origin: c.origin.clone(),
        })
    }
}

fn map_http(
    c: &Stmt,
    base: &Base,
    inherit: &Inherit,
    loaded: &mut Loaded,
) -> Result<(), ConfigError> {
    let urls: Vec<&Stmt> = c.children().iter().filter(|s| s.key == "url").collect();
    if urls.is_empty() {
        loaded.skipped.push(Skipped {
            origin: c.origin.clone(),
            what: format!("{} of {}", c.key, base.name),
            reason: "no url block: nothing to request".into(),
        });
        return Ok(());
    }
    for url in urls {
        let inherit = inherit.with(url.children())?;
        let mut spec = HttpSpec {
            host: inherit.host.clone(),
            ..HttpSpec::default()
        };
        let mut path = None;
        let mut no_match = false;
        let mut invalid_regex = None;
        for s in url.children() {
            match s.key.as_str() {
                "path" => {
                    let p = s.arg()?;
                    check_path(p).map_err(|m| s.error(m))?;
                    path = Some(p.to_string());
                }
                "digest" => spec.md5 = Some(parse_md5(s.arg()?).map_err(|m| s.error(m))?),
                "status_code" => {
                    if s.args.is_empty() {
                        return Err(s.error("status_code needs a code or a range"));
                    }
                    for a in &s.args {
                        spec.statuses.push(
                            parse_status(a).map_err(|m| s.error(format!("status_code: {m}")))?,
                        );
                    }
                }
                "regex" => {
                    let re = s.arg()?;
                    match regex::bytes::Regex::new(re) {
                        Ok(re) => spec.regex.push(Pattern(re)),
                        Err(e) => {
                            invalid_regex = Some(format!("invalid regular expression {re:?}: {e}"));
                        }
                    }
                }
                "regex_no_match" => no_match = true,
                _ => {}
            }
        }
        let Some(path) = path else {
            return Err(url.error("url without a path"));
        };
        if let Some(reason) = invalid_regex {
            loaded.skipped.push(Skipped {
                origin: url.origin.clone(),
                what: format!("{} of {}", c.key, base.name),
                reason,
            });
            continue;
        }
        spec.path = path;
        if no_match {
            spec.regex_absent = std::mem::take(&mut spec.regex);
        }
        if spec.statuses.is_empty() {
            spec.statuses.push(200..=299);
        }
        let check = if c.key == "SSL_GET" {
            CheckSpec::Https(spec, ssl_get_tls(c, url, base)?)
        } else {
            CheckSpec::Http(spec)
        };
        let mut target = base.target(c, &inherit, check)?;
        target.origin = url.origin.clone();
        loaded.targets.push(target);
    }
    Ok(())
}

/// The TLS of keepalived's `SSL_GET` (check_ssl.c): no verification (no
/// SSL_VERIFY_PEER); SNI only with `enable_sni`, naming the url's, the
/// checker's or the virtual server's `virtualhost` (not the real
/// server's), else none. (keepalived 2.2.7 has no `sni_name`: the reader
/// reports it as an unknown keyword, as `keepalived -t` does.)
fn ssl_get_tls(c: &Stmt, url: &Stmt, base: &Base) -> Result<TlsSpec, ConfigError> {
    let mut enable = false;
    for s in c.children() {
        match (s.key.as_str(), s.args.first().map(String::as_str)) {
            ("enable_sni", None | Some("true" | "on" | "yes")) => enable = true,
            ("enable_sni", Some("false" | "off" | "no")) => enable = false,
            // keepalived reports an error and ignores the setting.
            ("enable_sni", Some(_)) => {}
            _ => {}
        }
    }
    let virtualhost = |block: &[Stmt]| {
        block
            .iter()
            .rfind(|s| s.key == "virtualhost")
            .and_then(|s| s.args.first().cloned())
    };
    let name = virtualhost(url.children())
        .or_else(|| virtualhost(c.children()))
        .or_else(|| base.vs_host.clone());
    Ok(TlsSpec {
        verify: Verify::KeepalivedSslGet,
        no_sni: !enable || name.is_none(),
        sni: name.filter(|_| enable),
        ..TlsSpec::default()
    })
}

fn map_misc(
    c: &Stmt,
    base: &Base,
    inherit: &Inherit,
    loaded: &mut Loaded,
) -> Result<(), ConfigError> {
    let what = format!("MISC_CHECK of {}", base.name);
    let mut skip = |origin: &str, reason: String| {
        loaded.skipped.push(Skipped {
            origin: origin.to_string(),
            what: what.clone(),
            reason,
        });
    };
    let Some(path_stmt) = c.children().iter().find(|s| s.key == "misc_path") else {
        skip(&c.origin, "no misc_path: nothing to run".into());
        return Ok(());
    };
    let command = path_stmt.args.join(" ");
    let words = match split_command(&command) {
        Ok(w) if !w.is_empty() => w,
        Ok(_) => {
            skip(&path_stmt.origin, "misc_path is empty".into());
            return Ok(());
        }
        Err(m) => {
            skip(&path_stmt.origin, format!("misc_path: {m}"));
            return Ok(());
        }
    };
    let script = Path::new(&words[0])
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let mut timeout = DEFAULT_TIMEOUT;
    for s in c.children().iter().filter(|s| s.key == "misc_timeout") {
        timeout = seconds(s, MAX_TIMEOUT_S)?;
    }
    let line = if script == "vipcheck" {
        let args: Vec<std::ffi::OsString> = words[1..].iter().map(Into::into).collect();
        match crate::probe::c_line::by_shape(&args) {
            // A C checker's command line under vipcheck's own name (what
            // keepalived runs through a symlink with
            // enable_script_security): vipcheck reads it by its shape.
            Some(name) => crate::probe::c_line::parse_line(name, &words[1..]).map_err(|m| {
                format!("invalid {name} command line (read by its shape after vipcheck): {m}")
            }),
            // The native command line of a check: `vipcheck tcp|dns|... ARGS`.
            None => match words.iter().skip(1).find(|w| !w.starts_with('-')) {
                Some(sub) if CHECKS.contains(&sub.as_str()) => {
                    native_line(&words[1..]).map(|(line, t)| {
                        timeout = timeout.min(t);
                        line
                    })
                }
                _ => Err(format!(
                    "{}: not a `vipcheck {}` command line, nor a C checker's",
                    words.join(" "),
                    CHECKS.join("|")
                )),
            },
        }
    } else if crate::probe::c_line::NAMES.contains(&script) {
        crate::probe::c_line::parse_line(script, &words[1..])
            .map_err(|m| format!("invalid {script} command line: {m}"))
    } else {
        Err(format!(
            "{} is not one of vipcheck, {}: what it checks is unknown",
            words[0],
            crate::probe::c_line::NAMES.join(", ")
        ))
    };
    let line = match line {
        Ok(line) => line,
        Err(reason) => {
            skip(&path_stmt.origin, reason);
            return Ok(());
        }
    };
    // What the line checks, run as an audit target: its trace, close,
    // pcap and capture are the command line's, not the audit's.
    loaded.targets.push(AuditTarget {
        probe: Probe {
            iface: line.iface,
            timeout,
            reply_timeout: line.reply_timeout,
            ..Probe::new(line.real_server, line.vip, line.port, line.check)
        },
        vs_vip: base.vip,
        vs_port: base.vs_port,
        vs_protocol: base.protocol,
        rs_ip: base.real_server,
        rs_port: base.port,
        interval: inherit.interval,
        retry: inherit.retry,
        origin: path_stmt.origin.clone(),
    });
    Ok(())
}

/// The checks whose native command line a MISC_CHECK may run.
const CHECKS: [&str; 7] = ["tcp", "http", "https", "ping", "udp", "dns", "smtp"];

/// `tcp|smtp|http|https ARGS...` (the words after `vipcheck`) as vipcheck's own
/// command line parses them, and its `-t` (the whole check's deadline:
/// keepalived's misc_timeout also ends it). Addresses must be literal:
/// reading a configuration resolves no host name.
fn native_line(words: &[String]) -> Result<(Probe, Duration), String> {
    use crate::probe::args::{
        CheckArgs, DnsArgs, HttpArgs, HttpsArgs, PingArgs, SmtpArgs, TcpArgs, UdpArgs,
        usage_message,
    };
    use clap::Args;
    // `-v` before the subcommand, as the command line takes it.
    let verbose =
        |w: &String| w == "--verbose" || (w.len() > 1 && w[1..].bytes().all(|b| b == b'v'));
    let words = &words[words
        .iter()
        .take_while(|w| w.starts_with('-') && verbose(w))
        .count()..];
    let sub = words[0].as_str();
    let cmd = match sub {
        "tcp" => TcpArgs::augment_args(clap::Command::new("tcp")),
        "ping" => PingArgs::augment_args(clap::Command::new("ping")),
        "udp" => UdpArgs::augment_args(clap::Command::new("udp")),
        "dns" => DnsArgs::augment_args(clap::Command::new("dns")),
        "smtp" => SmtpArgs::augment_args(clap::Command::new("smtp")),
        "http" => HttpArgs::augment_args(clap::Command::new("http")),
        _ => HttpsArgs::augment_args(clap::Command::new("https")),
    };
    // Which options take a value, to find the positional words.
    let mut shorts = Vec::new();
    let mut longs = Vec::new();
    for a in cmd.get_arguments() {
        if a.is_positional() || !a.get_action().takes_values() {
            continue;
        }
        shorts.extend(a.get_short());
        longs.extend(a.get_long().map(str::to_string));
    }
    let mut positional = Vec::new();
    let mut it = words[1..].iter();
    while let Some(w) = it.next() {
        if w == "--" {
            positional.extend(it.by_ref());
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            if !long.contains('=') && longs.iter().any(|l| l == long) {
                it.next();
            }
        } else if w.len() > 1 && w.starts_with('-') {
            let flags: Vec<char> = w[1..].chars().collect();
            if let Some(i) = flags.iter().position(|f| shorts.contains(f))
                && i + 1 == flags.len()
            {
                it.next();
            }
        } else {
            positional.push(w);
        }
    }
    for (i, name) in [(1, "REAL_SERVER"), (2, "VIP")] {
        if let Some(w) = positional.get(i) {
            parse_ip(w).map_err(|_| {
                format!(
                    "{name} {w:?} is not an IP address: names are not resolved while reading \
                     keepalived.conf (give the address)"
                )
            })?;
        }
    }
    let argv: Vec<std::ffi::OsString> = std::iter::once("vipcheck")
        .chain(words.iter().map(String::as_str))
        .map(Into::into)
        .collect();
    let parsed = CheckArgs::try_parse(&argv)
        .ok_or("not a vipcheck check's command line")?
        .map_err(|e| {
            format!(
                "invalid vipcheck command line: {} (see 'vipcheck {sub} --help')",
                usage_message(&e)
            )
        })?;
    let (to, port, run, check) = match parsed {
        // With --send/--expect, what the command line checks.
        CheckArgs::Tcp(a) => {
            let check = a.probe().check;
            (a.flow.to, a.flow.port, a.flow.run, check)
        }
        CheckArgs::Ping(a) => (a.to, 0, a.run, CheckSpec::Ping),
        CheckArgs::Udp(a) => {
            let check = a.probe().check;
            (a.flow.to, a.flow.port, a.flow.run, check)
        }
        CheckArgs::Dns(a) => {
            let check = a.probe().check;
            (a.flow.to, a.flow.port, a.flow.run, check)
        }
        CheckArgs::Smtp(a) => {
            let check = a.probe().check;
            (a.flow.to, a.flow.port, a.flow.run, check)
        }
        CheckArgs::Http(a) => {
            let spec = native_http(&a)?;
            (a.flow.to, a.flow.port, a.flow.run, CheckSpec::Http(spec))
        }
        CheckArgs::Https(a) => {
            let tls = [
                ("--cert-days", a.cert_days.is_some()),
                ("--client-cert", a.client_cert.is_some()),
            ];
            if let Some((name, _)) = tls.iter().find(|(_, given)| *given) {
                return Err(format!("{name}: an audit target has no such TLS setting"));
            }
            // As the command line itself judges the certificate.
            let verify = match (&a.ca, a.insecure) {
                (Some(ca), _) => Verify::Ca(ca.clone()),
                (None, true) => Verify::KeepalivedSslGet,
                (None, false) => Verify::Roots,
            };
            let tls = TlsSpec {
                verify,
                sni: a.sni.clone(),
                no_sni: a.no_sni,
                ..TlsSpec::default()
            };
            let spec = native_http(&a.http)?;
            let flow = a.http.flow;
            (flow.to, flow.port, flow.run, CheckSpec::Https(spec, tls))
        }
    };
    check_unicast(to.real_server, "real server")?;
    check_unicast(to.vip, "VIP")?;
    if to.real_server.is_ipv4() != to.vip.is_ipv4() {
        return Err("the real server and the VIP are of different families".into());
    }
    let timeout = Duration::from_millis(run.timeout);
    let line = Probe {
        iface: Some(to.iface),
        ..Probe::new(to.real_server, to.vip, port, check)
    };
    Ok((line, timeout))
}

/// The request and expectations of `vipcheck http ...`.
fn native_http(a: &crate::probe::args::HttpArgs) -> Result<HttpSpec, String> {
    if a.sha256.is_some() {
        return Err("--sha256: an audit target checks a body by MD5 (-A) only".into());
    }
    let mut spec = a.spec();
    if spec.statuses.is_empty() {
        spec.statuses = vec![200..=399];
    }
    // --max-body is not an audit target's setting: the default.
    spec.max_body = HttpSpec::default().max_body;
    Ok(spec)
}

/// A command line split as a shell would: whitespace between words,
/// `'...'` literal, `"..."` with `\"` and `\\`, `\` escaping outside quotes.
fn split_command(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("unterminated ' quote".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("unterminated \" quote".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("unterminated \" quote".into()),
                    }
                }
            }
            '\\' => {
                let c = chars.next().ok_or("a trailing \\")?;
                word.get_or_insert_with(String::new).push(c);
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh directory with `files` (name, text) in it.
    fn dir_with(files: &[(&str, &str)]) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "vipcheck-keepalived-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    /// `text` read as /etc/keepalived/keepalived.conf; keepalived must
    /// agree on whether it can be read (see `cases::keepalived_agrees_on`).
    fn load_text(text: &str) -> Result<Loaded, ConfigError> {
        let ours = load_str(text, Path::new("/etc/keepalived/keepalived.conf"));
        if let Err(e) = cases::keepalived_agrees_on(text, &ours) {
            panic!("keepalived and vipcheck disagree on {text:?}: {e}");
        }
        ours
    }

    const README: &str = r#"
! Configuration File for keepalived
global_defs {
   router_id LVS_A
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.100
    }
}

virtual_server 10.0.0.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    protocol TCP

    real_server 10.0.0.42 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 3
            retry 2
        }
    }
    real_server 10.0.0.43 80 {
        weight 1
        HTTP_GET {
            url {
              path /healthcheck
              digest d36f8f9425c4a8000ad9c4a97185aca5
            }
            url {
              path /status
              status_code 200 300-399
            }
            virtualhost www.example.com
            connect_port 8080
        }
    }
    real_server 10.0.0.44 80 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check_http_raw -t 500 -S 200 -R 'Server: nginx' eth1 10.0.0.44 10.0.0.100 80 www.example.com /hc"
            misc_timeout 2
        }
    }
    real_server 10.0.0.45 {
        SSL_GET {
            url {
                path /
                virtualhost secure.example.com
            }
        }
    }
}
"#;

    #[test]
    fn readme_example() {
        let loaded = load_text(README).unwrap();
        assert_eq!(loaded.skipped, vec![]);
        let t = &loaded.targets;
        assert_eq!(t.len(), 5, "{t:#?}");
        let vip: IpAddr = "10.0.0.100".parse().unwrap();

        assert_eq!(t[0].probe.real_server.to_string(), "10.0.0.42");
        assert_eq!((t[0].probe.vip, t[0].probe.port), (vip, 80));
        assert_eq!(t[0].probe.check, CheckSpec::Tcp);
        assert_eq!(t[0].probe.timeout, Duration::from_secs(3));
        assert_eq!(t[0].interval, Some(Duration::from_secs(6)));
        assert_eq!(t[0].retry, Some(2));
        assert_eq!(t[0].probe.iface, None);
        assert_eq!(t[0].origin, "/etc/keepalived/keepalived.conf:24");

        let CheckSpec::Http(h) = &t[1].probe.check else {
            panic!("{:?}", t[1].probe.check)
        };
        assert_eq!(t[1].probe.port, 8080);
        assert_eq!(h.host.as_deref(), Some("www.example.com"));
        assert_eq!(h.path, "/healthcheck");
        assert_eq!(h.md5.as_deref(), Some("d36f8f9425c4a8000ad9c4a97185aca5"));
        assert_eq!(h.statuses, vec![200..=299]);
        assert_eq!(t[1].probe.timeout, DEFAULT_TIMEOUT);
        assert_eq!(t[1].origin, "/etc/keepalived/keepalived.conf:32");
        let CheckSpec::Http(h) = &t[2].probe.check else {
            panic!()
        };
        assert_eq!(h.path, "/status");
        assert_eq!(h.statuses, vec![200..=200, 300..=399]);
        assert_eq!(h.md5, None);

        assert_eq!(t[3].probe.iface.as_deref(), Some("eth1"));
        assert_eq!(t[3].probe.real_server.to_string(), "10.0.0.44");
        assert_eq!(t[3].probe.timeout, Duration::from_secs(2));
        assert_eq!(t[3].probe.reply_timeout, Some(Duration::from_millis(500)));
        let CheckSpec::Http(h) = &t[3].probe.check else {
            panic!()
        };
        assert_eq!(h.statuses, vec![200..=200]);
        assert_eq!(
            h.response_headers,
            vec![("Server".to_string(), Some("nginx".to_string()))]
        );
        assert_eq!(
            (h.host.as_deref(), h.path.as_str()),
            (Some("www.example.com"), "/hc")
        );

        assert_eq!(t[4].probe.port, 80);
        let CheckSpec::Https(h, _) = &t[4].probe.check else {
            panic!()
        };
        assert_eq!(h.host.as_deref(), Some("secure.example.com"));
    }

    #[test]
    fn misc_check_c_names() {
        let conf = r#"
virtual_server 10.0.0.100 80 {
  protocol TCP
  lb_kind DR
  real_server 10.0.0.42 80 {
    MISC_CHECK {
      misc_path "/opt/vipcheck/check_tcp_raw -c -t 250 eth0 10.0.0.42 10.0.0.100 80"
    }
    MISC_CHECK {
      misc_path /usr/bin/check_http_get_raw eth0 10.0.0.42 10.0.0.100 80 h /p D36F8F9425C4A8000AD9C4A97185ACA5
    }
    MISC_CHECK {
      misc_path "/usr/lib/nagios/plugins/check_http -H 10.0.0.42"
    }
    MISC_CHECK {
      misc_path "check_http_raw eth0 10.0.0.42 10.0.0.100 80 h /p"
    }
    MISC_CHECK {
      misc_timeout 3
    }
  }
}
"#;
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets.len(), 2, "{loaded:#?}");
        assert_eq!(loaded.targets[0].probe.check, CheckSpec::Tcp);
        assert_eq!(
            loaded.targets[0].probe.reply_timeout,
            Some(Duration::from_millis(250))
        );
        let CheckSpec::Http(h) = &loaded.targets[1].probe.check else {
            panic!()
        };
        assert_eq!(h.md5.as_deref(), Some("d36f8f9425c4a8000ad9c4a97185aca5"));
        assert!(h.statuses.is_empty());
        let reasons: Vec<&str> = loaded.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(
            reasons[0].contains("check_http is not one of"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("invalid check_http_raw command line"),
            "{reasons:?}"
        );
        assert!(
            reasons[1].contains("at least one validation"),
            "{reasons:?}"
        );
        assert!(reasons[2].contains("no misc_path"), "{reasons:?}");
        assert_eq!(
            loaded.skipped[0].origin,
            "/etc/keepalived/keepalived.conf:13"
        );
    }

    #[test]
    fn smtp_check_speaks_helo_as_keepalived() {
        let conf = r#"
virtual_server 10.0.0.100 25 {
  protocol TCP
  lb_kind DR
  real_server 10.0.0.42 25 {
    SMTP_CHECK {
    }
    SMTP_CHECK {
      helo_name first.example
      helo_name "lb1.example"
      connect_port 2525
      connect_timeout 2
    }
    SMTP_CHECK {
      helo_name "a b"
    }
    SMTP_CHECK {
      host {
        connect_ip 10.0.0.43
      }
    }
  }
}
"#;
        let loaded = load_text(conf).unwrap();
        let smtp = |helo: &str| {
            CheckSpec::Smtp(crate::probe::SmtpSpec {
                helo: helo.into(),
                helo_only: true,
            })
        };
        let t = &loaded.targets;
        assert_eq!(t.len(), 4, "{loaded:#?}");
        assert_eq!(t[0].probe.check, smtp(crate::probe::KEEPALIVED_HELO));
        assert_eq!((t[0].probe.port, t[0].probe.timeout), (25, DEFAULT_TIMEOUT));
        // helo_name given twice: the later one, as keepalived keeps.
        assert_eq!(t[1].probe.check, smtp("lb1.example"));
        assert_eq!(t[1].probe.port, 2525);
        assert_eq!(t[1].probe.timeout, Duration::from_secs(2));
        // Sent as written, as keepalived sends it.
        assert_eq!(t[2].probe.check, smtp("a b"));
        // A host block is a further checker of its own address: another
        // address than the real server's is skipped; its SMTP_CHECK stays.
        assert_eq!(t[3].probe.check, smtp(crate::probe::KEEPALIVED_HELO));
        let reasons: Vec<&str> = loaded.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("connect_ip 10.0.0.43"), "{reasons:?}");
    }

    /// `-v`, `-vv` or `--verbose` before the subcommand, as the command
    /// line takes them; any other option there is not a check's line.
    #[test]
    fn misc_check_native_verbose_before_the_subcommand() {
        let conf = r#"
virtual_server 10.0.0.100 80 {
  protocol TCP
  lb_kind DR
  real_server 10.0.0.42 80 {
    MISC_CHECK {
      misc_path "/usr/sbin/vipcheck -vv tcp -t 300 eth0 10.0.0.42 10.0.0.100 8080"
    }
    MISC_CHECK {
      misc_path "vipcheck --verbose -v http -S 204 eth0 10.0.0.42 10.0.0.100 80 h /x"
    }
    MISC_CHECK {
      misc_path "vipcheck -x tcp eth0 10.0.0.42 10.0.0.100 80"
    }
  }
}
"#;
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets.len(), 2, "{loaded:#?}");
        let tcp = &loaded.targets[0].probe;
        assert_eq!((tcp.port, tcp.check.clone()), (8080, CheckSpec::Tcp));
        assert_eq!(tcp.timeout, Duration::from_millis(300));
        let CheckSpec::Http(http) = &loaded.targets[1].probe.check else {
            panic!("{:?}", loaded.targets[1].probe.check)
        };
        assert_eq!(
            (http.path.as_str(), http.statuses.clone()),
            ("/x", vec![204..=204])
        );
        assert_eq!(loaded.skipped.len(), 1, "{loaded:#?}");
    }

    #[test]
    fn misc_check_native_smtp_and_tcp_expect() {
        let conf = r#"
virtual_server 10.0.0.100 25 {
  protocol TCP
  lb_kind DR
  real_server 10.0.0.42 25 {
    MISC_CHECK {
      misc_path "/usr/sbin/vipcheck smtp -t 500 --helo lb1.example eth0 10.0.0.42 10.0.0.100 25"
    }
    MISC_CHECK {
      misc_path "/usr/sbin/vipcheck -v tcp --send 'QUIT\r\n' --expect 221 eth0 10.0.0.42 10.0.0.100 2525"
    }
    MISC_CHECK {
      misc_path "/usr/sbin/vipcheck smtp --helo 'a b' eth0 10.0.0.42 10.0.0.100 25"
    }
  }
}
"#;
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets.len(), 2, "{loaded:#?}");
        let smtp = &loaded.targets[0].probe;
        assert_eq!(
            smtp.check,
            CheckSpec::Smtp(crate::probe::SmtpSpec {
                helo: "lb1.example".into(),
                helo_only: false,
            })
        );
        assert_eq!(smtp.timeout, Duration::from_millis(500));
        let tcp = &loaded.targets[1].probe;
        assert_eq!(tcp.port, 2525);
        let CheckSpec::TcpExpect(spec) = &tcp.check else {
            panic!("{:?}", tcp.check)
        };
        assert_eq!(spec.send, b"QUIT\r\n");
        assert_eq!(
            spec.expect.as_ref().map(crate::probe::Pattern::as_str),
            Some("221")
        );
        let reasons: Vec<&str> = loaded.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(reasons[0].contains("is not an EHLO name"), "{reasons:?}");
    }

    #[test]
    fn misc_check_native_ping_udp_and_dns() {
        let conf = r#"
virtual_server 10.0.0.100 53 {
  protocol UDP
  lb_kind DR
  real_server 10.0.0.42 53 {
    MISC_CHECK {
      misc_path "/usr/sbin/vipcheck dns --name www.example --type AAAA --tcp eth0 10.0.0.42 10.0.0.100 53"
    }
    MISC_CHECK {
      misc_path "vipcheck ping -t 300 eth0 10.0.0.42 10.0.0.100"
    }
    MISC_CHECK {
      misc_path "vipcheck udp --send 'hi\n' --expect-hex 6869 eth0 10.0.0.42 10.0.0.100 53"
    }
  }
}
"#;
        let loaded = load_text(conf).unwrap();
        let kinds: Vec<&str> = loaded
            .targets
            .iter()
            .map(|t| t.probe.check.kind())
            .collect();
        assert_eq!(kinds, ["dns", "ping", "udp"], "{loaded:#?}");
        let CheckSpec::Dns(dns) = &loaded.targets[0].probe.check else {
            unreachable!()
        };
        assert_eq!((dns.name.as_str(), dns.tcp), ("www.example", true));
        assert_eq!(loaded.targets[1].probe.timeout, Duration::from_millis(300));
        let CheckSpec::Udp(udp) = &loaded.targets[2].probe.check else {
            unreachable!()
        };
        assert_eq!(udp.payload, b"hi\n");
        assert!(loaded.skipped.is_empty(), "{:?}", loaded.skipped);
    }

    #[test]
    fn nested_includes_with_a_glob() {
        let dir = dir_with(&[
            (
                "keepalived.conf",
                "global_defs {\n}\ninclude conf.d/*.conf\ninclude /nonexistent/dir/*.conf\n",
            ),
            (
                "conf.d/b.conf",
                "virtual_server 10.0.0.101 443 {\n  protocol TCP\n  lb_kind DR\n  include ../rs/*.inc\n}\n",
            ),
            (
                "conf.d/a.conf",
                "virtual_server 10.0.0.100 80 {\n protocol TCP\n lb_kind DR\n real_server 10.0.0.42 80 {\n  TCP_CHECK {\n  }\n }\n}\n",
            ),
            ("conf.d/ignored.txt", "this is not read {"),
            (
                "rs/one.inc",
                "real_server 10.0.0.50 443 {\n  SSL_GET {\n    url {\n      path /\n    }\n  }\n}\n",
            ),
        ]);
        let loaded = load(&dir.join("keepalived.conf")).unwrap();
        assert_eq!(loaded.targets.len(), 2, "{loaded:#?}");
        assert_eq!(loaded.targets[0].probe.vip.to_string(), "10.0.0.100");
        assert!(loaded.targets[0].origin.ends_with("conf.d/a.conf:5"));
        assert_eq!(loaded.targets[1].probe.vip.to_string(), "10.0.0.101");
        assert!(matches!(
            loaded.targets[1].probe.check,
            CheckSpec::Https(..)
        ));
        assert!(
            loaded.targets[1].origin.ends_with("rs/../rs/one.inc:3")
                || loaded.targets[1].origin.ends_with("rs/one.inc:3")
        );
        assert_eq!(loaded.skipped.len(), 1);
        assert_eq!(loaded.skipped[0].reason, "matches no file");
        assert!(loaded.skipped[0].origin.ends_with("keepalived.conf:4"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn include_loop_is_an_error() {
        let dir = dir_with(&[
            ("keepalived.conf", "include a.conf\n"),
            ("a.conf", "include b.conf\n"),
            ("b.conf", "include a.conf\n"),
            ("self.conf", "include *.conf\n"),
        ]);
        let e = load(&dir.join("keepalived.conf")).unwrap_err();
        assert!(e.origin.ends_with("b.conf:1"), "{e}");
        assert!(e.message.contains("include loop"), "{e}");
        let e = load(&dir.join("self.conf")).unwrap_err();
        assert!(e.message.contains("include loop"), "{e}");
        let e = load(&dir.join("missing.conf")).unwrap_err();
        assert!(e.message.contains("cannot open"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn include_depth_is_bounded() {
        let names: Vec<String> = (0..=MAX_INCLUDE_DEPTH + 1)
            .map(|i| format!("{i}.conf"))
            .collect();
        let texts: Vec<String> = (0..=MAX_INCLUDE_DEPTH + 1)
            .map(|i| format!("include {}.conf\n", i + 1))
            .collect();
        let files: Vec<(&str, &str)> = names
            .iter()
            .zip(&texts)
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let dir = dir_with(&files);
        let e = load(&dir.join("0.conf")).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn ipv6_virtual_servers() {
        let conf = "virtual_server fd98:c612:0:1::100 443 {\n\
                    protocol TCP\n lb_kind DR\n\
                    real_server fd98:c612:0:1::b 443 {\n\
                    SSL_GET {\n url {\n path /hc\n status_code 204\n }\n connect_timeout 1.5\n }\n }\n\
                    real_server 10.0.0.42 443 {\n TCP_CHECK {\n }\n }\n}\n";
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets.len(), 1);
        let t = &loaded.targets[0];
        assert_eq!(t.probe.vip.to_string(), "fd98:c612:0:1::100");
        assert_eq!(t.probe.real_server.to_string(), "fd98:c612:0:1::b");
        assert_eq!(t.probe.timeout, Duration::from_millis(1500));
        let CheckSpec::Https(h, _) = &t.probe.check else {
            panic!()
        };
        assert_eq!(
            (h.host.as_deref(), h.statuses.clone()),
            (None, vec![204..=204])
        );
        assert_eq!(loaded.skipped.len(), 1);
        assert!(loaded.skipped[0].reason.contains("different families"));
    }

    #[test]
    fn only_direct_routing_is_checked() {
        let conf = r"
virtual_server 10.0.0.100 80 {
  protocol TCP
  lb_kind NAT
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.101 80 {
  protocol TCP
  lb_kind TUN
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.102 80 {
  protocol tcp
  lb_kind DR
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.103 80 {
  protocol TCP
  lb_kind dr
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.104 80 {
  protocol TCP
  lb_kind NAT
  real_server 10.0.0.42 80 {
    lvs_method DR
    TCP_CHECK { }
  }
  real_server 10.0.0.43 80 { TCP_CHECK { } }
}
";
        let loaded = load_text(conf).unwrap();
        let vips: Vec<String> = loaded
            .targets
            .iter()
            .map(|t| format!("{} {}", t.probe.vip, t.probe.real_server))
            .collect();
        assert_eq!(vips, ["10.0.0.102 10.0.0.42", "10.0.0.104 10.0.0.42"]);
        let reasons: Vec<&str> = loaded.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert!(reasons[0].starts_with("lb_kind NAT") && reasons[1].starts_with("lb_kind TUN"));
        // keepalived spells the methods in capitals: `dr` is reported and
        // ignored, and the default, NAT, applies.
        assert!(reasons[2].starts_with("no lb_kind"), "{reasons:?}");
        assert!(reasons[3].starts_with("lvs_method NAT"), "{reasons:?}");
        let warned: Vec<&str> = loaded.warnings.iter().map(|w| w.message.as_str()).collect();
        assert_eq!(
            warned,
            [
                "PARSER : unknown [dr] routing method for virtual server (NAT, DR or TUN)",
                "virtual_server 10.0.0.103 80: no forwarding method set - keepalived uses NAT \
                 (add `lb_kind DR` for direct routing)"
            ]
        );
    }

    #[test]
    fn every_skipped_kind() {
        let conf = r"
virtual_server_group G {
  fwmark 7
  10.0.0.100
}
virtual_server fwmark 1 {
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server group G {
  protocol TCP
  lb_kind DR
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.100 53 {
  protocol SCTP
  real_server 10.0.0.42 53 {
    DNS_CHECK {
    }
  }
}
virtual_server 10.0.0.101 80 {
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.102 80 {
  protocol TCP
  real_server 10.0.0.42 80 { TCP_CHECK { } }
}
virtual_server 10.0.0.100 25 {
  protocol TCP
  lb_kind DR
  persistence_timeout 50
  real_server 10.0.0.42 25 {
    weight 2
    DNS_CHECK {
      type A
    }
    SMTP_CHECK {
    }
    UDP_CHECK {
    }
    BFD_CHECK {
    }
    PING_CHECK {
    }
    FILE_CHECK {
    }
    TCP_CHECK {
      connect_ip 10.0.0.9
    }
    HTTP_GET {
    }
  }
  real_server 10.0.0.43 25 {
    weight 1
    inhibit_on_failure
  }
  real_server 10.0.0.44 25
}
";
        let loaded = load_text(conf).unwrap();
        // DNS_CHECK, SMTP_CHECK, UDP_CHECK, PING_CHECK of 10.0.0.42 25.
        let kinds: Vec<&str> = loaded
            .targets
            .iter()
            .map(|t| t.probe.check.kind())
            .collect();
        assert_eq!(kinds, ["dns", "smtp", "udp", "ping"]);
        let got: Vec<(usize, &str, &str)> = loaded
            .skipped
            .iter()
            .map(|s| {
                let line = s.origin.rsplit(':').next().unwrap().parse().unwrap();
                (line, s.what.as_str(), s.reason.as_str())
            })
            .collect();
        let lines: Vec<usize> = got.iter().map(|g| g.0).collect();
        assert_eq!(
            lines,
            vec![6, 3, 4, 14, 21, 24, 41, 45, 47, 50, 53, 57],
            "{got:#?}"
        );
        assert!(got[0].1 == "virtual_server fwmark 1" && got[0].2.contains("firewall-mark"));
        assert!(got[1].1 == "fwmark 7 of virtual_server_group G");
        assert!(got[2].2.starts_with("no port"));
        assert!(got[3].2.contains("protocol SCTP"));
        // No protocol is UDP, as keepalived: read, then skipped as NAT.
        assert!(got[4].2.starts_with("no lb_kind"), "{got:?}");
        assert!(got[5].2.contains("NAT"), "{got:?}");
        assert!(
            got[6]
                .1
                .starts_with("BFD_CHECK of real_server 10.0.0.42 25")
        );
        assert!(got[7].1.starts_with("FILE_CHECK"));
        assert!(got[8].2.contains("connect_ip 10.0.0.9"));
        assert!(got[9].2.contains("no url block"));
        assert!(got[10].1.starts_with("real_server 10.0.0.43") && got[10].2.contains("no checker"));
        assert!(got[11].1.starts_with("real_server 10.0.0.44"));
        let warned: Vec<String> = warnings(conf);
        assert_eq!(
            warned,
            vec![
                "58: Missing '{' at beginning of configuration block",
                "21: virtual_server 10.0.0.101 80: no protocol set - keepalived defaults to UDP \
                 (add `protocol TCP` for a TCP service)",
                "21: virtual_server 10.0.0.101 80: no forwarding method set - keepalived uses NAT \
                 (add `lb_kind DR` for direct routing)",
                "24: virtual_server 10.0.0.102 80: no forwarding method set - keepalived uses NAT \
                 (add `lb_kind DR` for direct routing)",
            ]
        );
    }

    #[test]
    fn malformed_input_says_where() {
        // A TCP, direct-routing virtual server: line 1 opens it, its
        // protocol and lb_kind are lines 2 and 3.
        let vs = "virtual_server 10.0.0.100 80 {\nprotocol TCP\nlb_kind DR\n";
        let cases = [
            (
                "\nvirtual_server 10.0.0.100\n{\n}\n".to_string(),
                ":2: virtual_server needs an address and a port",
            ),
            (
                "virtual_server 10.0.0.300 80 {\n}\n".into(),
                ":1: virtual_server: \"10.0.0.300\" is not an IP address",
            ),
            (
                "virtual_server 10.0.0.100 0 {\n}\n".into(),
                ":1: virtual_server: \"0\" is not a TCP port",
            ),
            (
                "virtual_server 224.0.0.1 80 {\n}\n".into(),
                ":1: VIP 224.0.0.1 is not a unicast address",
            ),
            (
                format!("{vs}real_server 10.0.0.x 80 {{\n}}\n}}\n"),
                ":4: real_server: \"10.0.0.x\" is not an IP address",
            ),
            (
                format!(
                    "{vs}real_server 10.0.0.42 {{\nHTTP_GET {{\nurl {{\ndigest abc\n}}\n}}\n}}\n}}\n"
                ),
                ":7: \"abc\" is not an MD5",
            ),
            (
                format!(
                    "{vs}real_server 10.0.0.42 {{\nHTTP_GET {{\nurl {{\nstatus_code 200\n}}\n}}\n}}\n}}\n"
                ),
                ":6: url without a path",
            ),
            (
                format!(
                    "{vs}real_server 10.0.0.42 {{\nHTTP_GET {{\nurl {{\npath / digest x\n}}\n}}\n}}\n}}\n"
                ),
                ":7: path takes one argument",
            ),
            (
                "virtual_server 10.0.0.100 80 {\ndelay_loop -1\n}\n".into(),
                ":2: delay_loop \"-1\": not a number of seconds",
            ),
        ];
        // keepalived reports each and reads on: vipcheck warns where, and
        // does not check what it belongs to.
        for (text, want) in cases {
            let loaded = load_text(&text).unwrap();
            assert_eq!(loaded.targets, vec![], "{text:?}");
            let got: Vec<String> = loaded
                .warnings
                .iter()
                .map(|w| format!("{}: {}", w.origin, w.message))
                .collect();
            assert!(
                got.iter()
                    .any(|g| g.starts_with("/etc/keepalived/keepalived.conf:")
                        && g.contains(want)
                        && g.contains("is not checked")),
                "{text:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_missing_parameter_refuses_the_file_as_keepalived() {
        let vs = "virtual_server 10.0.0.100 80 {\nprotocol TCP\nlb_kind DR\n";
        for (text, want) in [
            (
                format!("{vs}real_server\n}}\n"),
                ":4: real_server is missing",
            ),
            (
                format!("{vs}real_server 10.0.0.42 {{\nTCP_CHECK {{\nconnect_port\n}}\n}}\n}}\n"),
                ":6: connect_port is missing",
            ),
            (
                format!("{vs}delay_loop\nreal_server 10.0.0.42 {{\nTCP_CHECK {{\n}}\n}}\n}}\n"),
                ":4: delay_loop is missing",
            ),
            (
                "virtual_server\n".to_string(),
                ":1: virtual_server is missing",
            ),
            (
                format!("{vs}real_server 10.0.0.42 {{\nDNS_CHECK {{\ntype\n}}\n}}\n}}\n"),
                ":6: type is missing",
            ),
            (
                format!(
                    "{vs}real_server 10.0.0.42 {{\nUDP_CHECK {{\nmin_reply_length\n}}\n}}\n}}\n"
                ),
                ":6: min_reply_length is missing",
            ),
        ] {
            let e = load_text(&text).unwrap_err().to_string();
            assert!(
                e.starts_with("/etc/keepalived/keepalived.conf") && e.contains(want),
                "{text:?}: {e}"
            );
        }
        // Read past by keepalived: a warning at most.
        let text = format!(
            "{vs}virtualhost\nreal_server 10.0.0.42 {{\nMISC_CHECK {{\nmisc_path\n}}\n}}\n}}\n"
        );
        assert!(load_text(&text).is_ok());
    }

    /// The warnings of `text`, as `LINE: MESSAGE`.
    fn warnings(text: &str) -> Vec<String> {
        cases::lines(&load_text(text).unwrap())
    }

    #[test]
    fn braces_are_read_as_keepalived_reads_them() {
        // Each is what `keepalived -t` reports, and it reads on.
        let cases: [(&str, &[&str]); 6] = [
            (
                "virtual_server 10.0.0.100 80 {\n protocol TCP\n lb_kind DR\n real_server 10.0.0.42 80 {\n",
                &["4: There are 2 missing '}'s or extra '{'s"],
            ),
            (
                "global_defs {\n}\n}\n",
                &["3: Extra '}' found", "3: Unknown keyword '}'"],
            ),
            (
                "{\n",
                &[
                    "1: Unexpected '{' - ignoring",
                    "1: There are 1 missing '}'s or extra '{'s",
                ],
            ),
            (
                "vrrp_script x {\n script \"unterminated\n}\n",
                &[
                    "2: Unterminated quote 'script \"unterminated'",
                    "2: Unmatched quote: 'script \"unterminated'",
                ],
            ),
            ("include\n", &["1: Unknown keyword 'include'"]),
            (
                "global_defs\n router_id a\n",
                // The parent reads global_defs; the others pass over it,
                // and read router_id at the top level.
                &[
                    "2: Unknown keyword 'router_id'",
                    "2: Missing '{' at beginning of configuration block",
                ],
            ),
        ];
        for (text, want) in cases {
            assert_eq!(warnings(text), want, "{text:?}");
        }
    }

    #[test]
    fn unknown_blocks_do_not_nest() {
        // keepalived opens a block only for a keyword that has one: an
        // unknown keyword's `{` is "unexpected", so nesting is bounded by
        // the keyword tables, and the warnings by MAX_WARNINGS.
        let text = "a {\n".repeat(5000) + &"}\n".repeat(5000);
        let loaded = load_text(&text).unwrap();
        assert_eq!(loaded.warnings.len(), MAX_WARNINGS + 1);
        assert!(loaded.warnings[0].message.contains("Unknown keyword 'a'"));
        assert!(
            loaded.warnings[MAX_WARNINGS]
                .message
                .contains("more warnings")
        );
    }

    #[test]
    fn comments_braces_and_inheritance() {
        let conf = "virtual_server 10.0.0.100 80 { # comment { not a brace\n\
                    protocol TCP\n lb_kind DR\n\
                    virtualhost vs.example.com\n connect_timeout 2\n retry 4\n\
                    real_server 10.0.0.42 80{\n virtualhost rs.example.com ! another\n delay_loop 9\n\
                    HTTP_GET\n {\n url { path /a }\n url {\n path /b\n virtualhost url.example.com\n regex \"ok|fine\"\n regex_no_match\n }\n nb_get_retry 7\n }}}\n";
        let loaded = load_text(conf).unwrap();
        let t = &loaded.targets;
        assert_eq!(t.len(), 2, "{loaded:#?}");
        assert_eq!(
            (t[0].probe.timeout, t[0].interval, t[0].retry),
            (
                Duration::from_secs(2),
                Some(Duration::from_secs(9)),
                Some(7)
            )
        );
        let (CheckSpec::Http(a), CheckSpec::Http(b)) = (&t[0].probe.check, &t[1].probe.check)
        else {
            panic!()
        };
        assert_eq!(
            (a.host.as_deref(), a.path.as_str()),
            (Some("rs.example.com"), "/a")
        );
        assert_eq!(b.host.as_deref(), Some("url.example.com"));
        assert_eq!((b.regex.len(), b.regex_absent[0].as_str()), (0, "ok|fine"));
    }

    #[test]
    fn an_invalid_regex_skips_its_url() {
        let conf = "virtual_server 10.0.0.100 80 {\n protocol TCP\n lb_kind DR\n real_server 10.0.0.42 80 {\n\
                    HTTP_GET {\n url { path /a }\n url {\n path /b\n regex \"(\"\n }\n }}}\n";
        let loaded = load_text(conf).unwrap();
        assert_eq!(loaded.targets.len(), 1, "{loaded:#?}");
        assert_eq!(loaded.skipped.len(), 1, "{loaded:#?}");
        assert!(
            loaded.skipped[0]
                .reason
                .starts_with("invalid regular expression \"(\""),
            "{loaded:#?}"
        );
    }

    #[test]
    fn command_split() {
        assert_eq!(
            split_command(r#"/bin/x -R 'Server: nginx' -B "a \"b\"" c\ d"#).unwrap(),
            vec!["/bin/x", "-R", "Server: nginx", "-B", "a \"b\"", "c d"]
        );
        assert!(split_command("'open").is_err());
        assert_eq!(split_command("  ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn ssl_get_verifies_nothing_and_targets_keep_their_ports() {
        let conf = r#"
virtual_server 10.0.0.100 443 {
  protocol TCP
  lb_kind DR
  real_server 10.0.0.42 443 {
    SSL_GET { url { path / } }
    TCP_CHECK { connect_port 80 }
  }
  real_server 10.0.0.43 {
    SSL_GET { virtualhost www.example.com
      url { path /hc } }
  }
}
virtual_server 10.0.0.100 22 {
  protocol TCP
  lb_kind DR
  real_server 10.0.0.42 22 {
    MISC_CHECK {
      misc_path "/opt/vipcheck/check_tcp_raw -t 250 eth0 10.0.0.42 10.0.0.100 80"
    }
  }
}
"#;
        let t = load_text(conf).unwrap().targets;
        assert_eq!(t.len(), 4);
        let keepalived = TlsSpec {
            verify: Verify::KeepalivedSslGet,
            sni: None,
            no_sni: true,
            ..TlsSpec::default()
        };
        let CheckSpec::Https(h, tls) = &t[0].probe.check else {
            panic!("{:?}", t[0].probe.check)
        };
        assert_eq!((h.host.as_deref(), tls), (None, &keepalived));
        // The virtualhost is the Host; without enable_sni, no SNI (and
        // still no verification).
        let CheckSpec::Https(h, tls) = &t[2].probe.check else {
            panic!("{:?}", t[2].probe.check)
        };
        assert_eq!(
            (h.host.as_deref(), tls),
            (Some("www.example.com"), &keepalived)
        );
        // (checked port, virtual server's, real server's)
        let ports: Vec<_> = t
            .iter()
            .map(|t| (t.probe.port, t.vs_port, t.rs_port))
            .collect();
        assert_eq!(
            ports,
            [
                (443, 443, 443),
                (80, 443, 443),
                (443, 443, 443),
                (80, 22, 22)
            ]
        );
    }

    #[test]
    fn ssl_get_sends_sni_as_keepalived() {
        // (the SSL_GET's settings, the real server's) → (SNI, no_sni)
        let sni = |checker: &str, rs: &str| {
            let conf = format!(
                "virtual_server 10.0.0.100 443 {{\n protocol TCP\n lb_kind DR\n virtualhost vs.example\n\
                 real_server 10.0.0.42 443 {{\n {rs}\n SSL_GET {{\n {checker}\n\
                 url {{\n path /\n }}\n }}\n }}\n}}\n"
            );
            let t = load_text(&conf).unwrap().targets;
            let CheckSpec::Https(_, tls) = &t[0].probe.check else {
                panic!("{:?}", t[0].probe.check)
            };
            assert_eq!(tls.verify, Verify::KeepalivedSslGet);
            (tls.sni.clone(), tls.no_sni)
        };
        let some = |name: &str| (Some(name.to_string()), false);
        // keepalived sends none unless enable_sni is set.
        assert_eq!(sni("", ""), (None, true));
        assert_eq!(sni("virtualhost c.example", ""), (None, true));
        assert_eq!(sni("enable_sni", ""), some("vs.example"));
        assert_eq!(
            sni("enable_sni yes\nvirtualhost c.example", ""),
            some("c.example")
        );
        assert_eq!(
            sni("enable_sni off\nvirtualhost c.example", ""),
            (None, true)
        );
        assert_eq!(sni("enable_sni bogus", ""), (None, true));
        // 2.2.7 has no sni_name: an unknown keyword, ignored.
        assert_eq!(
            sni("sni_name n.example\nvirtualhost c.example", ""),
            (None, true)
        );
        // The real server's virtualhost is its Host, not its SNI.
        assert_eq!(
            sni("enable_sni", "virtualhost rs.example"),
            some("vs.example")
        );
    }
}
