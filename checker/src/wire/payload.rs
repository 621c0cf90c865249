//! Payloads written as text, without I/O: keepalived's UDP_CHECK hex
//! strings (`payload`, `require_reply` with `X` wildcards) and its
//! comparison of a reply with `require_reply`, and monitoring-plugins
//! check_tcp's `--escape` escapes for `--send`. The rest of keepalived's
//! UDP verdict (silence, lengths) is a `probe::UdpSpec` judged by
//! `check::udp` (config::keepalived maps UDP_CHECK to it).
//!
//! keepalived: lib/parser.c `read_hex_str`, keepalived/check/check_udp.c
//! `check_udp_reply`. check_tcp: lib/utils_base.c `np_escaped_string`.

use std::fmt;

/// What keepalived's UDP_CHECK sends when it has no `payload`: 32 bytes
/// of its text `keepalived check - ` repeated (layer4.c `set_buf`,
/// `UDP_BUFSIZE`). (keepalived.conf(5) says "a random payload": it is not.)
pub(crate) const KEEPALIVED_DEFAULT_PAYLOAD: &[u8; 32] = b"keepalived check - keepalived ch";
/// Longest hex string's bytes (keepalived counts them in a u16).
const MAX_HEX_BYTES: usize = 65535;

/// Bytes and wildcards from a keepalived hex string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ReplyPattern {
    data: Vec<u8>,
    /// Bits of each byte that are not compared (`X` nibbles: 0x0f, 0xf0).
    ignore: Vec<u8>,
}

/// Parses a keepalived hex string, as `read_hex_str` does: hex digits in
/// either case; spaces and tabs separate words (keepalived's config
/// tokenizer turns any run of them into one space); within a word every two
/// digits are a byte and an odd last digit is a byte of its own (`f` is
/// 0x0f, so `Ab12f 3 456` is AB 12 0F 03 45 06); with `wildcards`, `X` or
/// `x` stands for a nibble that is not compared. Nothing (no digit at all)
/// is an error, as in keepalived.
fn parse_hex(text: &str, wildcards: bool) -> Result<ReplyPattern, String> {
    let nibble = |c: char| -> Result<(u8, u8), String> {
        match c {
            '0'..='9' | 'a'..='f' | 'A'..='F' => {
                Ok((u8::try_from(c.to_digit(16).unwrap_or(0)).unwrap_or(0), 0))
            }
            'x' | 'X' if wildcards => Ok((0, 0x0f)),
            _ => Err(format!(
                "{c:?} in {text:?} is not a hex digit{}",
                if wildcards { " or X" } else { "" }
            )),
        }
    };
    let mut data = Vec::new();
    let mut ignore = Vec::new();
    for word in text.split([' ', '\t']).filter(|w| !w.is_empty()) {
        let chars: Vec<char> = word.chars().collect();
        for pair in chars.chunks(2) {
            let (mut value, mut mask) = nibble(pair[0])?;
            if let Some(&low) = pair.get(1) {
                let (v, m) = nibble(low)?;
                value = value << 4 | v;
                mask = mask << 4 | m;
            }
            if data.len() == MAX_HEX_BYTES {
                return Err(format!("hex string longer than {MAX_HEX_BYTES} bytes"));
            }
            data.push(value);
            ignore.push(mask);
        }
    }
    if data.is_empty() {
        return Err(format!("{text:?} has no hex digits"));
    }
    Ok(ReplyPattern { data, ignore })
}

/// A UDP_CHECK `payload`: hex, no wildcards.
pub(crate) fn parse_payload(text: &str) -> Result<Vec<u8>, String> {
    parse_hex(text, false).map(|p| p.data)
}

impl ReplyPattern {
    /// A `require_reply` hex string (`X` wildcards allowed).
    pub(crate) fn parse(text: &str) -> Result<ReplyPattern, String> {
        parse_hex(text, true)
    }

    pub(crate) fn len(&self) -> usize {
        self.data.len()
    }

    /// keepalived's comparison: only the first min(reply, pattern) bytes
    /// are compared, so a reply shorter than the pattern matches if it is
    /// a prefix of it (even an empty one), and one longer matches if the
    /// pattern is its prefix. The first byte that differs, if any.
    pub(crate) fn mismatch(&self, reply: &[u8]) -> Option<usize> {
        reply
            .iter()
            .zip(self.data.iter().zip(&self.ignore))
            .position(|(&got, (&want, &ignore))| (got ^ want) & !ignore != 0)
    }

    pub(crate) fn matches(&self, reply: &[u8]) -> bool {
        self.mismatch(reply).is_none()
    }

    /// Byte `i` as written: two hex digits, `X` for an ignored nibble.
    fn byte_text(&self, i: usize) -> String {
        let digit = |v: u8, ignored: bool| {
            if ignored {
                'X'
            } else {
                char::from_digit(u32::from(v), 16)
                    .unwrap_or('?')
                    .to_ascii_uppercase()
            }
        };
        let (v, m) = (self.data[i], self.ignore[i]);
        [digit(v >> 4, m & 0xf0 != 0), digit(v & 0x0f, m & 0x0f != 0)]
            .iter()
            .collect()
    }
}

impl fmt::Display for ReplyPattern {
    /// Bytes as upper-case hex pairs separated by spaces (`AB 0X 03`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes: Vec<String> = (0..self.data.len()).map(|i| self.byte_text(i)).collect();
        f.write_str(&bytes.join(" "))
    }
}

/// Escapes for `--send` (and `--quit`) text: check_tcp's `--escape` ones,
/// `\n`, `\r`, `\t` and `\\`, and `\xNN` (two hex digits, any byte). Any
/// other backslash is an error, where check_tcp drops the backslash and
/// keeps the next character (see [`unescape_check_tcp`]).
pub(crate) fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let after = &rest[at + 1..];
        let mut chars = after.chars();
        let used = match chars.next() {
            Some('n') => {
                out.push(b'\n');
                1
            }
            Some('r') => {
                out.push(b'\r');
                1
            }
            Some('t') => {
                out.push(b'\t');
                1
            }
            Some('\\') => {
                out.push(b'\\');
                1
            }
            Some('x') => {
                let digits = after
                    .get(1..3)
                    .filter(|d| d.len() == 2 && d.chars().all(|c| c.is_ascii_hexdigit()));
                let Some(digits) = digits else {
                    return Err(format!("\\x in {text:?} wants two hex digits (\\x0d)"));
                };
                out.push(u8::from_str_radix(digits, 16).map_err(|e| e.to_string())?);
                3
            }
            Some(c) => {
                return Err(format!(
                    "unknown escape \\{c} in {text:?} (known: \\n \\r \\t \\\\ \\xNN)"
                ));
            }
            None => return Err(format!("{text:?} ends in a lone backslash")),
        };
        rest = &after[used..];
    }
    out.extend_from_slice(rest.as_bytes());
    Ok(out)
}

/// check_tcp's own `np_escaped_string`, exactly: `\n`, `\r`, `\t`, `\\`;
/// a backslash before any other character is dropped (`bo\gus` is
/// `bogus`); a lone backslash at the end ends the string there (C reads a
/// NUL). For check_tcp command lines taken as they are.
pub(crate) fn unescape_check_tcp(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 1;
            match bytes.get(i) {
                Some(b'n') => out.push(b'\n'),
                Some(b'r') => out.push(b'\r'),
                Some(b't') => out.push(b'\t'),
                Some(&b) => out.push(b),
                None => break,
            }
        } else {
            out.push(bytes[i]);
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_as_keepalived_man_page() {
        // keepalived.conf(5): "Ab12f 3 456 546443123" is
        // AB 12 0F 03 45 06 54 64 43 12 03.
        assert_eq!(
            parse_payload("Ab12f 3 456 546443123").unwrap(),
            [
                0xab, 0x12, 0x0f, 0x03, 0x45, 0x06, 0x54, 0x64, 0x43, 0x12, 0x03
            ]
        );
        assert_eq!(
            parse_payload("\tde ad\t\tbe ef ").unwrap(),
            [0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(parse_payload("00").unwrap(), [0]);
    }

    #[test]
    fn hex_errors() {
        for bad in ["", "   ", "0g", "12 zz", "0x12", "1X", "é"] {
            let err = parse_payload(bad).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
        }
        // X only in require_reply.
        assert!(ReplyPattern::parse("1X").is_ok());
        assert!(ReplyPattern::parse("0x12").is_ok(), "x is a wildcard there");
        assert!(ReplyPattern::parse("1Y").is_err());
        assert_eq!(
            parse_payload(&"0".repeat(2 * 65535)).map(|p| p.len()),
            Ok(65535)
        );
        assert!(parse_payload(&"0".repeat(2 * 65535 + 1)).is_err());
    }

    #[test]
    fn wildcards_ignore_nibbles() {
        let p = ReplyPattern::parse("AB xX 1x X").unwrap();
        assert_eq!(p.to_string(), "AB XX 1X 0X");
        assert_eq!(p.len(), 4);
        assert!(p.matches(&[0xab, 0x77, 0x1f, 0x0e]));
        assert!(p.matches(&[0xab, 0x00, 0x10, 0x00]));
        assert!(!p.matches(&[0xab, 0x00, 0x20, 0x00]));
        // A lone X is the low nibble of 0X: the high one must be 0.
        assert!(!p.matches(&[0xab, 0x00, 0x10, 0x10]));
        assert_eq!(p.mismatch(&[0xab, 0x00, 0x10, 0x10]), Some(3));
    }

    #[test]
    fn prefix_semantics_both_ways() {
        let p = ReplyPattern::parse("01 02 03").unwrap();
        assert!(p.matches(&[1, 2, 3]));
        assert!(p.matches(&[1, 2]), "a shorter reply that is a prefix");
        assert!(p.matches(&[]), "even an empty one");
        assert!(p.matches(&[1, 2, 3, 4, 5]), "the pattern is its prefix");
        assert!(!p.matches(&[1, 3]));
    }

    #[test]
    fn default_payload_is_keepalived_text() {
        assert_eq!(&KEEPALIVED_DEFAULT_PAYLOAD[..19], b"keepalived check - ");
        assert_eq!(KEEPALIVED_DEFAULT_PAYLOAD.len(), 32);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            unescape("GET / HTTP/1.0\\r\\n\\r\\n").unwrap(),
            b"GET / HTTP/1.0\r\n\r\n"
        );
        assert_eq!(unescape("a\\tb\\\\c").unwrap(), b"a\tb\\c");
        assert_eq!(unescape("\\x00\\xff\\x0D").unwrap(), [0, 0xff, 0x0d]);
        assert_eq!(unescape("plain é").unwrap(), "plain é".as_bytes());
        for (bad, what) in [
            ("bo\\gus", "unknown escape \\g"),
            ("end\\", "lone backslash"),
            ("\\x1", "two hex digits"),
            ("\\xzz", "two hex digits"),
            ("\\x1é", "two hex digits"),
        ] {
            let err = unescape(bad).unwrap_err();
            assert!(err.contains(what), "{bad}: {err}");
        }
    }

    #[test]
    fn check_tcp_escapes_exactly() {
        // monitoring-plugins lib/tests/test_utils.c.
        for (text, want) in [
            ("bob\\n", "bob\n"),
            ("rhuba\\rb", "rhuba\rb"),
            ("ba\\nge\\r", "ba\nge\r"),
            ("\\rabbi\\t", "\rabbi\t"),
            ("and\\\\or", "and\\or"),
            ("bo\\gus", "bogus"),
            ("everything", "everything"),
            ("no\\x41", "nox41"),
            ("end\\", "end"),
        ] {
            assert_eq!(unescape_check_tcp(text), want.as_bytes(), "{text}");
        }
    }
}
