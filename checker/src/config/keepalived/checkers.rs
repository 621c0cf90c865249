//! The settings of keepalived's DNS_CHECK, UDP_CHECK and SMTP_CHECK as
//! vipcheck's specs, each judged as keepalived judges it (keepalived
//! 2.2.7: keepalived/check/check_dns.c, check_udp.c, check_smtp.c).
//! PING_CHECK has no settings of its own.
//!
//! A value keepalived reports and reads past (an unknown DNS type, bad
//! hex...) is an error here, as the parent's other values: the real
//! server is then skipped with the reason, rather than checked with a
//! default the operator did not mean.

use super::{ConfigError, Loaded, Stmt, warn};
use crate::probe::{DnsSpec, KEEPALIVED_HELO, Silence, SmtpSpec, UdpExpect, UdpSpec};
use crate::wire::dns::RecordType;
use crate::wire::payload::{KEEPALIVED_DEFAULT_PAYLOAD, ReplyPattern, parse_payload};

/// DNS_CHECK's `retry` when no level gives one (check_dns.c: 3, where the
/// other checkers' is 1).
pub(super) const DNS_DEFAULT_RETRY: u32 = 3;
/// UDP_CHECK's `max_reply_length` when it gives none (check_udp.c: UINT8_MAX).
const DEFAULT_MAX_REPLY: usize = 255;

/// The words of `s` after its keyword, as keepalived joins them for a hex
/// string (single spaces).
fn joined(s: &Stmt) -> String {
    s.args.join(" ")
}

/// A DNS_CHECK's query: `type` (default SOA; the types keepalived
/// accepts, any case: not PTR) and `name` (default the root). Over UDP
/// only, with no address expected: keepalived's query and rule.
pub(super) fn dns(c: &Stmt) -> Result<DnsSpec, ConfigError> {
    let mut rtype = RecordType::Soa;
    let mut name: Option<String> = None;
    for s in c.children() {
        match s.key.as_str() {
            "type" => {
                let word = s.arg()?;
                rtype = word
                    .parse()
                    .ok()
                    .filter(|t| *t != RecordType::Ptr)
                    .ok_or_else(|| {
                        s.error(format!(
                            "DNS_CHECK type {word:?} is not one keepalived asks \
                             (A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG, DNSKEY)"
                        ))
                    })?;
            }
            "name" => {
                if name.is_some() {
                    return Err(s.error("DNS_CHECK name given twice (keepalived keeps the first)"));
                }
                let word = s.arg()?;
                crate::wire::dns::parse_name(word).map_err(|m| s.error(m))?;
                name = Some(word.to_string());
            }
            _ => {}
        }
    }
    Ok(DnsSpec {
        name: match name.as_deref() {
            None | Some("") => ".".to_string(),
            Some(n) => n.to_string(),
        },
        rtype,
        expect: Vec::new(),
        tcp: false,
    })
}

/// A UDP_CHECK's datagram and rule, as check::udp judges it:
/// - `payload HEX`, else keepalived's 32 bytes of text;
/// - silence is healthy ([`Silence::Keepalived`]) unless `require_reply`;
/// - the reply's length (`min_reply_length`, default 0;
///   `max_reply_length`, default 255) and its bytes are judged only when
///   `require_reply` gives HEX (check_udp.c checks them only then; the
///   man page says otherwise).
pub(super) fn udp(c: &Stmt, loaded: &mut Loaded) -> Result<UdpSpec, ConfigError> {
    let mut payload = KEEPALIVED_DEFAULT_PAYLOAD.to_vec();
    let mut require_reply = false;
    let mut pattern = None;
    let (mut min, mut max) = (0, DEFAULT_MAX_REPLY);
    for s in c.children() {
        let hex_error = |m: String| s.error(format!("{}: {m} (Invalid hex string)", s.key));
        match s.key.as_str() {
            "payload" => payload = parse_payload(&joined(s)).map_err(hex_error)?,
            "require_reply" => {
                require_reply = true;
                pattern = if s.args.is_empty() {
                    None
                } else {
                    Some(ReplyPattern::parse(&joined(s)).map_err(hex_error)?)
                };
            }
            "min_reply_length" => min = reply_length(s)?,
            "max_reply_length" => max = reply_length(s)?,
            _ => {}
        }
    }
    if min > max {
        warn(
            loaded,
            &c.origin,
            format!(
                "UDP_CHECK: min_reply_length {min} is more than max_reply_length {max}: \
                 a reply will always fail (keepalived checks it so)"
            ),
        );
    }
    let (expect, min_length, max_length) = match pattern {
        Some(p) => (Some(UdpExpect::Pattern(p)), Some(min), Some(max)),
        None => (None, None, None),
    };
    Ok(UdpSpec {
        payload,
        expect,
        min_length,
        max_length,
        silence: if require_reply {
            Silence::Fails
        } else {
            Silence::Keepalived
        },
    })
}

/// `min_reply_length` or `max_reply_length`: 0 to 65535.
fn reply_length(s: &Stmt) -> Result<usize, ConfigError> {
    let word = s.arg()?;
    word.parse::<u16>()
        .map(usize::from)
        .map_err(|_| s.error(format!("{} {word:?} is not 0 to 65535", s.key)))
}

/// An SMTP_CHECK's dialogue: HELO (never EHLO) with `helo_name`.
pub(super) fn smtp(c: &Stmt, loaded: &mut Loaded) -> SmtpSpec {
    let mut helo: Option<&str> = None;
    for s in c.children().iter().filter(|s| s.key == "helo_name") {
        if helo.is_some() {
            // keepalived reports it, and the later one replaces the first.
            warn(
                loaded,
                &s.origin,
                "SMTP_CHECK: helo_name given twice - the later one is used".into(),
            );
        }
        match s.args.first() {
            Some(name) => helo = Some(name),
            // keepalived reports it and keeps its default.
            None => warn(loaded, &s.origin, "SMTP_CHECK helo name missing".into()),
        }
    }
    SmtpSpec {
        helo: helo.unwrap_or(KEEPALIVED_HELO).to_string(),
        helo_only: true,
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use super::*;
    use crate::check::udp::judge;
    use crate::check::verdict::Failure;
    use crate::probe::CheckSpec;
    use std::path::Path;

    /// A UDP virtual server whose real server has `checker` with
    /// `settings`, read (and by keepalived too: it reads every text these
    /// tests read).
    fn read(checker: &str, settings: &str) -> Loaded {
        let text = format!(
            "virtual_server 10.0.0.100 53 {{\n protocol UDP\n lb_kind DR\n\
             real_server 10.0.0.42 53 {{\n {checker} {{\n{settings}\n }}\n }}\n}}\n"
        );
        let loaded = load_str(&text, Path::new("/etc/keepalived/keepalived.conf"));
        super::super::cases::keepalived_agrees_on(&text, &loaded).unwrap();
        loaded.unwrap()
    }

    /// The UdpSpec of a UDP_CHECK with `settings`.
    fn udp_spec(settings: &str) -> UdpSpec {
        let loaded = read("UDP_CHECK", settings);
        let [target] = loaded.targets.as_slice() else {
            panic!("{loaded:#?}")
        };
        let CheckSpec::Udp(spec) = &target.probe.check else {
            panic!("{:?}", target.probe.check)
        };
        spec.clone()
    }

    fn verdict(spec: &UdpSpec, reply: &[u8]) -> Option<Failure> {
        judge(spec, reply).0
    }

    // keepalived's verdicts (check_udp.c udp_check_thread,
    // check_udp_reply; layer4.c udp_socket_state) through the mapping and
    // check::udp::judge. An ICMP unreachable fails whatever the spec
    // (check::udp::exchange); silence is the spec's `silence`.

    #[test]
    fn without_require_reply_silence_and_any_reply_pass() {
        let spec = udp_spec("");
        assert_eq!(spec.silence, Silence::Keepalived);
        assert_eq!(spec.payload, KEEPALIVED_DEFAULT_PAYLOAD);
        assert_eq!(verdict(&spec, &[0; 1000]), None, "lengths unchecked");
        // Lengths without a pattern are not checked, as keepalived.
        let spec = udp_spec("min_reply_length 10\nmax_reply_length 20");
        assert_eq!(verdict(&spec, b"x"), None);
        assert_eq!(verdict(&spec, &[0; 100]), None);
    }

    #[test]
    fn require_reply_alone_fails_silence_only() {
        let spec = udp_spec("payload 01 02\nrequire_reply");
        assert_eq!(spec.payload, [1, 2]);
        assert_eq!(spec.silence, Silence::Fails);
        assert_eq!(
            verdict(&spec, &[0; 1000]),
            None,
            "no pattern: lengths unchecked"
        );
        assert_eq!(verdict(&spec, b""), None);
    }

    #[test]
    fn require_reply_hex_judges_lengths_then_bytes() {
        let spec = udp_spec("require_reply 4f 4b\nmin_reply_length 2");
        assert_eq!(spec.silence, Silence::Fails);
        assert_eq!(verdict(&spec, b"OK\n"), None);
        let (f, why) = judge(&spec, b"O");
        assert_eq!(f, Some(Failure::Reply));
        assert!(why.contains("shorter than 2"), "{why}");
        let (f, why) = judge(&spec, &[b'O'; 256]);
        assert_eq!(f, Some(Failure::Reply));
        assert!(why.contains("longer than 255"), "default max: {why}");
        let (f, why) = judge(&spec, b"NO");
        assert_eq!(f, Some(Failure::Reply));
        assert!(why.starts_with("reply byte 0 is 4E"), "{why}");
        // Wildcards, and a reply shorter than the pattern that is its
        // prefix (min 0).
        let spec = udp_spec("require_reply AB xX 1x");
        assert_eq!(verdict(&spec, &[0xab, 0x77, 0x1f]), None);
        assert_eq!(verdict(&spec, &[0xab]), None);
        assert_eq!(verdict(&spec, &[]), None);
        assert_eq!(verdict(&spec, &[0xab, 0, 0x20]), Some(Failure::Reply));
    }

    #[test]
    fn dns_defaults_and_types() {
        let spec = |settings: &str| {
            let loaded = read("DNS_CHECK", settings);
            match loaded.targets.as_slice() {
                [t] => {
                    let CheckSpec::Dns(spec) = &t.probe.check else {
                        panic!("{:?}", t.probe.check)
                    };
                    assert_eq!(t.retry, Some(DNS_DEFAULT_RETRY));
                    Ok(spec.clone())
                }
                _ => Err(loaded.skipped[0].reason.clone()),
            }
        };
        let d = spec("").unwrap();
        assert_eq!(
            (d.name.as_str(), d.rtype, d.tcp),
            (".", RecordType::Soa, false)
        );
        let d = spec("type aaaa\nname www.example.com.").unwrap();
        assert_eq!(
            (d.name.as_str(), d.rtype),
            ("www.example.com.", RecordType::Aaaa)
        );
        assert!(spec("type PTR").unwrap_err().contains("\"PTR\""));
        assert!(spec("type BOGUS").unwrap_err().contains("\"BOGUS\""));
        assert!(spec("name a..b").unwrap_err().contains("empty label"));
    }
}
