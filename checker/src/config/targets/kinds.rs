//! The settings of a targets file's `tcp` (with `send`/`expect`), `udp`,
//! `dns` and `smtp` checks, as their command lines take them: the same
//! parsers, the same defaults.

use std::ops::Range;

use toml::Spanned;

use super::{ExpectValue, Kind, Settings};
use crate::config::ConfigError;
use crate::probe::parse::{
    parse_escaped, parse_hex_bytes, parse_ip, parse_record_type, parse_reply_pattern,
};
use crate::probe::{
    CheckSpec, DnsSpec, ExpectSpec, KEEPALIVED_HELO, Silence, SmtpSpec, UdpExpect, UdpSpec,
};

/// A key given for a kind of check that does not take it: an error, as an
/// unknown key is (a setting must not be dropped unsaid). Settings of a
/// level apply to every real server below it, so only the target's own
/// kind is judged.
pub(super) fn misplaced(
    s: &Settings,
    kind: Kind,
    at: &impl Fn(Range<usize>) -> String,
) -> Result<(), ConfigError> {
    use Kind::{Dns, Smtp, Tcp, Udp};
    let spans = [
        ("name", s.name.as_ref().map(Spanned::span), &[Dns][..]),
        ("type", s.r#type.as_ref().map(Spanned::span), &[Dns]),
        ("send", s.send.as_ref().map(Spanned::span), &[Tcp, Udp]),
        ("payload", s.payload.as_ref().map(Spanned::span), &[Udp]),
        (
            "expect",
            s.expect.as_ref().map(Spanned::span),
            &[Tcp, Udp, Dns],
        ),
        (
            "expect_hex",
            s.expect_hex.as_ref().map(Spanned::span),
            &[Udp],
        ),
        ("helo", s.helo.as_ref().map(Spanned::span), &[Smtp]),
    ];
    for (key, span, kinds) in spans {
        if let Some(span) = span
            && !kinds.contains(&kind)
        {
            return Err(ConfigError::new(
                at(span),
                format!(
                    "{key} is a setting of {} checks, not of {}",
                    names(kinds),
                    kind.name()
                ),
            ));
        }
    }
    Ok(())
}

fn names(kinds: &[Kind]) -> String {
    kinds
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A string value through `parse`, its error at the value.
fn parsed<T>(
    v: &Spanned<String>,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    at: &impl Fn(Range<usize>) -> String,
) -> Result<T, ConfigError> {
    parse(v.get_ref()).map_err(|m| ConfigError::new(at(v.span()), format!("{key}: {m}")))
}

/// `expect` as one string (tcp, udp).
fn expect_text<'a>(
    s: &'a Settings,
    kind: &str,
    at: &impl Fn(Range<usize>) -> String,
) -> Result<Option<Spanned<String>>, ConfigError> {
    match &s.expect {
        None => Ok(None),
        Some(e) => match e.get_ref() {
            ExpectValue::One(text) => Ok(Some(Spanned::new(e.span(), text.clone()))),
            ExpectValue::Many(_) => Err(ConfigError::new(
                at(e.span()),
                format!("expect of a {kind} check is one string"),
            )),
        },
    }
}

/// `tcp`: the handshake alone, or with `send` (escapes as `--send`) and
/// `expect` (a regular expression) the dialogue of `tcp --send/--expect`.
pub(super) fn tcp(
    s: &Settings,
    at: &impl Fn(Range<usize>) -> String,
) -> Result<CheckSpec, ConfigError> {
    let expect = expect_text(s, "tcp", at)?;
    if s.send.is_none() && expect.is_none() {
        return Ok(CheckSpec::Tcp);
    }
    let send = match &s.send {
        Some(v) => parsed(v, "send", parse_escaped, at)?,
        None => Vec::new(),
    };
    let expect = match &expect {
        Some(v) => Some(parsed(
            v,
            "expect",
            |p| {
                regex::bytes::Regex::new(p)
                    .map(Into::into)
                    .map_err(|e| format!("invalid regular expression: {e}"))
            },
            at,
        )?),
        None => None,
    };
    Ok(CheckSpec::TcpExpect(ExpectSpec { send, expect }))
}

/// `udp`: `send` (text) or `payload` (hex), `expect` (text) or
/// `expect_hex` (keepalived's `require_reply` syntax), `min_length`,
/// `max_length`, `no_reply_ok`: as `vipcheck udp` takes them.
pub(super) fn udp(
    s: &Settings,
    at: &impl Fn(Range<usize>) -> String,
) -> Result<UdpSpec, ConfigError> {
    let both = |a: &Option<Spanned<String>>, b: &Option<Spanned<String>>, what: &str| match (a, b) {
        (Some(_), Some(v)) => Err(ConfigError::new(at(v.span()), what.to_string())),
        _ => Ok(()),
    };
    both(
        &s.send,
        &s.payload,
        "give send (text) or payload (hex), not both",
    )?;
    let expect = expect_text(s, "udp", at)?;
    both(
        &expect,
        &s.expect_hex,
        "give expect (text) or expect_hex, not both",
    )?;
    let payload = match (&s.send, &s.payload) {
        (Some(v), _) => parsed(v, "send", parse_escaped, at)?,
        (None, Some(v)) => parsed(v, "payload", parse_hex_bytes, at)?,
        (None, None) => Vec::new(),
    };
    let expect = match (&expect, &s.expect_hex) {
        (Some(v), _) => Some(UdpExpect::Text(parsed(v, "expect", parse_escaped, at)?)),
        (None, Some(v)) => Some(UdpExpect::Pattern(parsed(
            v,
            "expect_hex",
            parse_reply_pattern,
            at,
        )?)),
        (None, None) => None,
    };
    Ok(UdpSpec {
        payload,
        expect,
        min_length: s.min_length,
        max_length: s.max_length,
        silence: if s.no_reply_ok.unwrap_or(false) {
            Silence::Healthy
        } else {
            Silence::Fails
        },
    })
}

/// `dns`: `name` (default the root), `type` (default SOA), `expect` (an
/// address or a list: each must be answered), `tcp`.
pub(super) fn dns(
    s: &Settings,
    at: &impl Fn(Range<usize>) -> String,
) -> Result<DnsSpec, ConfigError> {
    let name = match &s.name {
        Some(v) => {
            parsed(v, "name", crate::wire::dns::parse_name, at)?;
            v.get_ref().clone()
        }
        None => ".".to_string(),
    };
    let rtype = match &s.r#type {
        Some(v) => parsed(v, "type", parse_record_type, at)?,
        None => crate::wire::dns::RecordType::Soa,
    };
    let mut expect = Vec::new();
    if let Some(e) = &s.expect {
        let list = match e.get_ref() {
            ExpectValue::One(one) => std::slice::from_ref(one),
            ExpectValue::Many(many) => many.as_slice(),
        };
        for addr in list {
            let ip = parse_ip(addr)
                .map_err(|m| ConfigError::new(at(e.span()), format!("expect: {m}")))?;
            expect.push(ip);
        }
    }
    Ok(DnsSpec {
        name,
        rtype,
        expect,
        tcp: s.tcp.unwrap_or(false),
    })
}

/// `smtp`: `helo` (default keepalived's name); EHLO, then HELO if the
/// server refuses it.
pub(super) fn smtp(
    s: &Settings,
    at: &impl Fn(Range<usize>) -> String,
) -> Result<SmtpSpec, ConfigError> {
    let helo = match &s.helo {
        Some(v) => {
            let name = v.get_ref();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ConfigError::new(
                    at(v.span()),
                    format!("helo {name:?}: one word, without spaces"),
                ));
            }
            name.clone()
        }
        None => KEEPALIVED_HELO.to_string(),
    };
    Ok(SmtpSpec {
        helo,
        helo_only: false,
    })
}
