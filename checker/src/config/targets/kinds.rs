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
fn expect_text(
    s: &Settings,
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
        Some(v) => parsed(v, "send", parse_escaped, at)?.0,
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
        (Some(v), _) => parsed(v, "send", parse_escaped, at)?.0,
        (None, Some(v)) => parsed(v, "payload", parse_hex_bytes, at)?.0,
        (None, None) => Vec::new(),
    };
    let expect = match (&expect, &s.expect_hex) {
        (Some(v), _) => Some(UdpExpect::Text(parsed(v, "expect", parse_escaped, at)?.0)),
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

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use crate::config::ConfigError;
    use crate::probe::{CheckSpec, Protocol, Silence, UdpExpect};
    use crate::wire::dns::RecordType;

    /// The check of one target given `settings` (its VIP port 53).
    fn check(settings: &str) -> Result<(CheckSpec, Protocol), ConfigError> {
        let text = format!(
            "[[vip]]\naddress = \"10.0.0.100\"\nport = 53\n{settings}\n\
             [[vip.real_server]]\naddress = \"10.0.0.42\"\n"
        );
        let loaded = load_str(&text, "targets.toml")?;
        let t = &loaded.targets[0];
        Ok((t.probe.check.clone(), t.vs_protocol))
    }

    #[test]
    fn dns_settings() {
        let (CheckSpec::Dns(d), protocol) = check("check = \"dns\"").unwrap() else {
            panic!()
        };
        assert_eq!(
            (d.name.as_str(), d.rtype, d.tcp),
            (".", RecordType::Soa, false)
        );
        assert_eq!(protocol, Protocol::Udp);
        let (CheckSpec::Dns(d), protocol) = check(
            "check = \"dns\"\nname = \"www.example.com\"\ntype = \"ptr\"\n\
             expect = [\"192.0.2.1\", \"2001:db8::1\"]\ntcp = true",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!((d.rtype, d.tcp, d.expect.len()), (RecordType::Ptr, true, 2));
        assert_eq!(protocol, Protocol::Tcp, "a DNS service over TCP");
        let (CheckSpec::Dns(d), _) = check("check = \"dns\"\nexpect = \"192.0.2.1\"").unwrap()
        else {
            panic!()
        };
        assert_eq!(d.expect, ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]);
    }

    #[test]
    fn udp_settings() {
        let (CheckSpec::Udp(u), protocol) = check("check = \"udp\"").unwrap() else {
            panic!()
        };
        assert_eq!(
            (u.payload.len(), u.expect, u.silence),
            (0, None, Silence::Fails)
        );
        assert_eq!(protocol, Protocol::Udp);
        let (CheckSpec::Udp(u), _) = check(
            "check = \"udp\"\nsend = \"ping\\\\r\\\\n\"\nexpect = \"pong\"\nmin_length = 4\n\
             max_length = 64\nno_reply_ok = true",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(u.payload, b"ping\r\n");
        assert_eq!(u.expect, Some(UdpExpect::Text(b"pong".to_vec())));
        assert_eq!((u.min_length, u.max_length), (Some(4), Some(64)));
        assert_eq!(u.silence, Silence::Healthy);
        let (CheckSpec::Udp(u), _) =
            check("check = \"udp\"\npayload = \"de ad\"\nexpect_hex = \"4f Xb\"").unwrap()
        else {
            panic!()
        };
        assert_eq!(u.payload, [0xde, 0xad]);
        assert!(matches!(u.expect, Some(UdpExpect::Pattern(_))));
    }

    #[test]
    fn tcp_send_expect_smtp_and_ping() {
        assert_eq!(check("").unwrap().0, CheckSpec::Tcp);
        let (CheckSpec::TcpExpect(e), _) =
            check("send = \"PING\\\\r\\\\n\"\nexpect = \"^\\\\+PONG\"").unwrap()
        else {
            panic!()
        };
        assert_eq!(e.send, b"PING\r\n");
        assert_eq!(e.expect.unwrap().as_str(), "^\\+PONG");
        let (CheckSpec::TcpExpect(e), _) = check("expect = \"^220 \"").unwrap() else {
            panic!()
        };
        assert!(e.send.is_empty());
        let (CheckSpec::Smtp(s), _) = check("check = \"smtp\"").unwrap() else {
            panic!()
        };
        assert_eq!(
            (s.helo.as_str(), s.helo_only),
            (crate::probe::KEEPALIVED_HELO, false)
        );
        let (CheckSpec::Smtp(s), _) = check("check = \"smtp\"\nhelo = \"lb1.example\"").unwrap()
        else {
            panic!()
        };
        assert_eq!(s.helo, "lb1.example");
        assert_eq!(
            check("check = \"ping\"").unwrap(),
            (CheckSpec::Ping, Protocol::Tcp)
        );
    }

    #[test]
    fn errors_say_where() {
        // (settings on lines 4.., where, what)
        for (settings, line, message) in [
            (
                "check = \"tcp\"\nname = \"x\"",
                5,
                "name is a setting of dns checks, not of tcp",
            ),
            (
                "check = \"http\"\npath = \"/\"\nsend = \"x\"",
                6,
                "send is a setting of tcp and udp",
            ),
            (
                "check = \"udp\"\nhelo = \"x\"",
                5,
                "helo is a setting of smtp checks",
            ),
            (
                "check = \"udp\"\npayload = \"0g\"",
                5,
                "payload: 'g' in \"0g\" is not a hex digit",
            ),
            (
                "check = \"udp\"\nsend = \"a\"\npayload = \"00\"",
                6,
                "not both",
            ),
            (
                "check = \"udp\"\nexpect = \"a\"\nexpect_hex = \"00\"",
                6,
                "not both",
            ),
            ("check = \"udp\"\nexpect = [\"a\"]", 5, "one string"),
            ("check = \"udp\"\nsend = \"\\\\q\"", 5, "unknown escape"),
            ("check = \"dns\"\ntype = \"BOGUS\"", 5, "type: "),
            ("check = \"dns\"\nname = \"a..b\"", 5, "empty label"),
            ("check = \"dns\"\nexpect = [\"x\"]", 5, "expect: "),
            ("expect = \"(\"", 4, "invalid regular expression"),
            ("check = \"smtp\"\nhelo = \"a b\"", 5, "one word"),
            ("check = \"smtq\"", 4, "unknown variant `smtq`"),
        ] {
            let e = check(settings).unwrap_err();
            assert_eq!(
                e.origin,
                format!("targets.toml:{line}"),
                "{settings:?}: {e}"
            );
            assert!(e.message.contains(message), "{settings:?}: {e}");
        }
    }
}
