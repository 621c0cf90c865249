//! The parsers of a spec's values, shared by every input (command lines,
//! keepalived.conf, targets files): each returns the value, or one line
//! that says what is wrong with it.

use std::net::IpAddr;
use std::ops::RangeInclusive;

/// Longest accepted `-t` (one hour): a check is a probe, not a wait.
pub(crate) const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// `200` or `200-299`.
pub(crate) fn parse_status(s: &str) -> Result<RangeInclusive<u16>, String> {
    let code = |c: &str| -> Result<u16, String> {
        c.trim()
            .parse::<u16>()
            .ok()
            .filter(|c| (100..=999).contains(c))
            .ok_or_else(|| format!("{c:?} is not a status code (100-999)"))
    };
    let range = match s.split_once('-') {
        Some((lo, hi)) => code(lo)?..=code(hi)?,
        None => code(s)?..=code(s)?,
    };
    if range.is_empty() {
        return Err(format!("empty range {s:?}"));
    }
    Ok(range)
}

/// `Name: Value`, with a token name and no line breaks.
pub(crate) fn parse_header(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once(':')
        .ok_or_else(|| format!("{s:?} is not \"Name: Value\""))?;
    let name = name.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("{name:?} is not a header name"));
    }
    if value.contains(['\r', '\n']) {
        return Err("header values cannot contain line breaks".into());
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// An IPv4 or IPv6 address (plain or `[addr]`), or a host name resolved
/// once through the system resolver (its first IPv4 address, else its
/// first IPv6 one), as the C checkers accept.
pub(crate) fn parse_ip_host(s: &str) -> Result<IpAddr, String> {
    use std::net::ToSocketAddrs;
    let bare = s
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(s);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(ip);
    }
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '/') {
        return Err(format!("{s:?} is neither an IP address nor a host name"));
    }
    // `cargo fuzz` builds with cfg(fuzzing): no DNS query for every name a
    // fuzzer makes up.
    if cfg!(fuzzing) {
        return Err(format!(
            "host name {s:?} is not resolved in a fuzzing build"
        ));
    }
    let addrs: Vec<IpAddr> = (s, 0)
        .to_socket_addrs()
        .map_err(|e| format!("host name {s:?} does not resolve ({e})"))?
        .map(|a| a.ip())
        .collect();
    addrs
        .iter()
        .find(|ip| ip.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("host name {s:?} has no address"))
}

/// `-R`: `Name: Value`, or `Name` alone for "present with any value".
pub(crate) fn parse_expected_header(s: &str) -> Result<(String, Option<String>), String> {
    if s.contains(':') {
        return parse_header(s).map(|(name, value)| (name, Some(value)));
    }
    parse_header(&format!("{s}:")).map(|(name, _)| (name, None))
}

pub(crate) fn parse_host(s: &str) -> Result<String, String> {
    crate::wire::http::check_host(s).map(|()| s.to_string())
}

pub(crate) fn parse_path(s: &str) -> Result<String, String> {
    crate::wire::http::check_path(s).map(|()| s.to_string())
}

/// Hex of an `N`-byte digest, lowercased.
pub(crate) fn parse_hex<const N: usize>(s: &str) -> Result<String, String> {
    if s.len() != 2 * N || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!("{s:?} is not {} hex digits", 2 * N));
    }
    Ok(s.to_ascii_lowercase())
}

/// A regular expression; its error in one line (the crate's message draws
/// the pattern with a caret below it over several lines).
pub(crate) fn parse_regex(s: &str) -> Result<regex::bytes::Regex, String> {
    regex::bytes::Regex::new(s).map_err(|e| {
        let text = e.to_string();
        let reason = text
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or_else(|| text.lines().next().unwrap_or("invalid"));
        format!("invalid regular expression: {reason}")
    })
}

/// Bytes with an optional K, M or G suffix (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => t.split_at(i),
        None => (t, ""),
    };
    let shift = match unit.to_ascii_uppercase().trim_end_matches(['B', 'I']) {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => return Err(format!("{s:?} is not a size (like 4096, 512K or 4M)")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1 << shift))
        .ok_or_else(|| format!("{s:?} is not a size (like 4096, 512K or 4M)"))
}

/// A literal IPv4 or IPv6 address (plain or `[addr]`); names are not
/// resolved here.
pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    let bare = s
        .strip_prefix('[')
        .and_then(|v| v.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse()
        .map_err(|_| format!("{:?} is not an IP address", s.escape_debug().to_string()))
}

/// A TCP port, 1-65535.
pub(crate) fn parse_port(s: &str) -> Result<u16, String> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{s:?} is not a TCP port (1-65535)"))
}

/// The validators of the request's parts, shared with the command lines.
pub(crate) use crate::wire::http::{check_host, check_path, parse_md5};

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

/// Bytes given on the command line (a newtype: clap reads an
/// `Option<Vec<u8>>` field as a list of `u8` values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Bytes(pub(crate) Vec<u8>);

/// Text with the escapes `\r \n \t \\ \xNN`, as bytes (`--send`).
pub(crate) fn parse_escaped(s: &str) -> Result<Bytes, String> {
    crate::wire::payload::unescape(s).map(Bytes)
}

/// An EHLO/HELO name: printable ASCII without spaces (`--helo`).
pub(crate) fn parse_helo(s: &str) -> Result<String, String> {
    crate::wire::smtp::check_name(s).map(|()| s.to_string())
}

/// Hex digits, as bytes (keepalived's UDP_CHECK `payload` syntax).
pub(crate) fn parse_hex_bytes(s: &str) -> Result<Bytes, String> {
    crate::wire::payload::parse_payload(s).map(Bytes)
}

/// Hex digits with `X` nibble wildcards (keepalived's `require_reply`).
pub(crate) fn parse_reply_pattern(s: &str) -> Result<crate::wire::payload::ReplyPattern, String> {
    crate::wire::payload::ReplyPattern::parse(s)
}

/// A DNS record type: A, AAAA, NS, SOA, MX, TXT, CNAME, PTR (any case).
pub(crate) fn parse_record_type(s: &str) -> Result<crate::wire::dns::RecordType, String> {
    s.parse()
}
