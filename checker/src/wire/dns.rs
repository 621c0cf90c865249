//! DNS over the check's UDP datagram or TCP stream: the query, and the
//! judgement of a reply, without I/O.
//!
//! The query is written by hand (RFC 1035 §4.1: a header and one question);
//! the reply's sections are read by simple-dns (its only dependency is
//! bitflags). The reply is judged on keepalived's DNS_CHECK rule
//! (keepalived/check/check_dns.c, `dns_recv_thread`), which reads only the
//! 12-byte header:
//!
//! - a datagram shorter than a header, with another id, or with QR clear
//!   is ignored, and keepalived waits on for another until its timeout
//!   ([`DnsProblem::is_stray`] tells these apart so the engine can do the
//!   same);
//! - RCODE (the header's 4 bits) other than NOERROR fails the check;
//! - anything else passes: keepalived checks neither the question section,
//!   nor ANCOUNT, nor TC, nor the rest of the message.
//!
//! [`judge`] adds two failures keepalived does not have: a truncated reply
//! (TC set: its answer section is incomplete, ask again over TCP) and a
//! message that does not parse past its header. [`keepalived_rule`] is the
//! header rule alone, for a check that must answer as keepalived would.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use simple_dns::rdata::RData;
use simple_dns::{Name, Packet, TYPE};

/// Bytes of a DNS header.
pub const HEADER_LEN: usize = 12;
/// Largest DNS message over TCP (its length prefix is 16 bits).
pub const MAX_MESSAGE: usize = 65535;
/// Answers a description lists before `...`.
const DESCRIBE_ANSWERS: usize = 4;
/// Characters of one answer's data a description shows.
const DESCRIBE_CHARS: usize = 64;

/// A query type: those keepalived's DNS_CHECK accepts (`type`, matched
/// case-insensitively: A, NS, CNAME, SOA, MX, TXT, AAAA, RRSIG, DNSKEY),
/// and PTR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    A,
    Aaaa,
    Ns,
    Soa,
    Mx,
    Txt,
    Cname,
    Ptr,
    Rrsig,
    Dnskey,
}

impl RecordType {
    pub const ALL: [RecordType; 10] = [
        RecordType::A,
        RecordType::Aaaa,
        RecordType::Ns,
        RecordType::Soa,
        RecordType::Mx,
        RecordType::Txt,
        RecordType::Cname,
        RecordType::Ptr,
        RecordType::Rrsig,
        RecordType::Dnskey,
    ];

    /// The type's number on the wire (RFC 1035 §3.2.2 and later).
    pub fn code(self) -> u16 {
        match self {
            RecordType::A => 1,
            RecordType::Ns => 2,
            RecordType::Cname => 5,
            RecordType::Soa => 6,
            RecordType::Ptr => 12,
            RecordType::Mx => 15,
            RecordType::Txt => 16,
            RecordType::Aaaa => 28,
            RecordType::Rrsig => 46,
            RecordType::Dnskey => 48,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordType::A => "A",
            RecordType::Aaaa => "AAAA",
            RecordType::Ns => "NS",
            RecordType::Soa => "SOA",
            RecordType::Mx => "MX",
            RecordType::Txt => "TXT",
            RecordType::Cname => "CNAME",
            RecordType::Ptr => "PTR",
            RecordType::Rrsig => "RRSIG",
            RecordType::Dnskey => "DNSKEY",
        }
    }
}

impl FromStr for RecordType {
    type Err = String;

    /// Case-insensitive, as keepalived's `dns_type_lookup` (strcasecmp).
    fn from_str(s: &str) -> Result<Self, String> {
        RecordType::ALL
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = RecordType::ALL.iter().map(|t| t.name()).collect();
                format!("{s:?} is not a DNS type ({})", names.join(", "))
            })
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One question, as keepalived's DNS_CHECK asks it: class IN, one
/// question, no EDNS, RD as set (keepalived sets it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Absolute, in text (`example.com.`, `.`), checked by [`parse_name`].
    name: String,
    pub rtype: RecordType,
    pub recursion_desired: bool,
}

impl Query {
    /// A query for `name` (`""` or `"."` is the root, keepalived's default;
    /// a trailing dot is optional: the name is always absolute). An empty
    /// label (`a..b`, `.a`) is refused, as keepalived's `dns_name_handler`
    /// does, and so is a label over 63 bytes or a name over 255.
    pub fn new(id: u16, name: &str, rtype: RecordType) -> Result<Query, String> {
        Ok(Query {
            id,
            name: parse_name(name)?,
            rtype,
            recursion_desired: true,
        })
    }

    /// The name asked, absolute (`example.com.`, `.`).
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// The query as a UDP payload.
    pub fn encode(&self) -> Vec<u8> {
        // RFC 1035 §4.1.1: id, flags (opcode QUERY, RD as set), QDCOUNT 1,
        // no answer, authority or additional record (no EDNS).
        let mut out = Vec::with_capacity(HEADER_LEN + self.name.len() + 1 + 4);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.push(if self.recursion_desired { 0x01 } else { 0 });
        out.push(0);
        out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        // §4.1.2: QNAME as labels, each after its length (at most 63, as
        // parse_name checked), then the root's zero byte; QTYPE; QCLASS IN.
        for label in self.name.split('.').filter(|l| !l.is_empty()) {
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
        out.extend_from_slice(&self.rtype.code().to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes());
        out
    }

    /// The query as sent over TCP: the payload after its 2-byte length.
    pub fn encode_tcp(&self) -> Vec<u8> {
        let payload = self.encode();
        let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
        let mut out = Vec::with_capacity(payload.len() + 2);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&payload);
        out
    }
}

/// A query name from text (see [`Query::new`]), absolute: `example.com.`,
/// `.` for the root. Labels are split at every dot, as keepalived's
/// `dns_make_query` does (no escapes).
pub(crate) fn parse_name(name: &str) -> Result<String, String> {
    if name.is_empty() || name == "." {
        return Ok(".".to_string());
    }
    let relative = name.strip_suffix('.').unwrap_or(name);
    if relative.split('.').any(str::is_empty) {
        return Err(format!("DNS name {name:?} has an empty label"));
    }
    if let Some(label) = relative.split('.').find(|l| l.len() > 63) {
        return Err(format!(
            "DNS name {name:?}: label {label:?} is longer than 63 bytes"
        ));
    }
    if name.chars().any(|c| !c.is_ascii_graphic()) {
        return Err(format!(
            "DNS name {name:?} has a space, a control or a non-ASCII character"
        ));
    }
    // On the wire (RFC 1035 §3.1): each label after its length byte, then
    // the root's zero byte: the text's length, its trailing dot, one more.
    if relative.len() + 2 > 255 {
        return Err(format!("DNS name {name:?} is longer than 255 bytes"));
    }
    Ok(format!("{relative}."))
}

/// Why a reply is not acceptable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnsProblem {
    /// Fewer bytes than a DNS header.
    TooShort {
        len: usize,
    },
    WrongId {
        expected: u16,
        got: u16,
    },
    /// QR clear: a query, not a response.
    NotResponse,
    /// RCODE other than NOERROR.
    Rcode(u8),
    /// TC set: the server cut the answer to fit a datagram.
    Truncated,
    /// The message does not parse past its header.
    Malformed(String),
}

impl DnsProblem {
    /// A datagram keepalived ignores (it waits on for another until its
    /// timeout): too short, another id, or not a response.
    pub fn is_stray(&self) -> bool {
        matches!(
            self,
            DnsProblem::TooShort { .. } | DnsProblem::WrongId { .. } | DnsProblem::NotResponse
        )
    }
}

impl fmt::Display for DnsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DnsProblem::TooShort { len } => write!(
                f,
                "reply of {len} bytes, shorter than a DNS header ({HEADER_LEN})"
            ),
            DnsProblem::WrongId { expected, got } => {
                write!(f, "reply id {got:#06x} is not the query's {expected:#06x}")
            }
            DnsProblem::NotResponse => write!(f, "the reply is a query (QR bit clear)"),
            DnsProblem::Rcode(code) => write!(f, "rcode {}", rcode_name(*code)),
            DnsProblem::Truncated => write!(f, "truncated reply (TC): use --tcp"),
            DnsProblem::Malformed(what) => write!(f, "malformed reply: {what}"),
        }
    }
}

impl std::error::Error for DnsProblem {}

/// An RCODE's name (RFC 1035, 2136, 6895), or its number.
pub fn rcode_name(code: u8) -> String {
    let name = match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        _ => return code.to_string(),
    };
    name.to_string()
}

/// An accepted reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// AA: the server is authoritative for the name.
    pub authoritative: bool,
    /// The A and AAAA records' addresses of the answer section, in order.
    pub addresses: Vec<IpAddr>,
    /// Every answer record, as `TYPE data` (data cut to a few dozen
    /// characters).
    pub records: Vec<String>,
    /// Records in the authority section.
    pub authorities: usize,
}

impl Answer {
    /// One line for a verdict: `NOERROR, 2 answers: 198.18.0.100, 198.18.0.101`
    /// (addresses bare, other records as `TYPE data`).
    pub fn describe(&self) -> String {
        let mut text = String::from("NOERROR");
        if self.authoritative {
            text.push_str(" (authoritative)");
        }
        match self.records.len() {
            0 => {
                text.push_str(", no answer");
                if self.authorities > 0 {
                    text.push_str(&format!(
                        " ({} authority record{})",
                        self.authorities,
                        plural(self.authorities)
                    ));
                }
            }
            n => {
                text.push_str(&format!(", {n} answer{}: ", plural(n)));
                let shown: Vec<&str> = self
                    .records
                    .iter()
                    .take(DESCRIBE_ANSWERS)
                    .map(|r| {
                        r.strip_prefix("A ")
                            .or_else(|| r.strip_prefix("AAAA "))
                            .unwrap_or(r)
                    })
                    .collect();
                text.push_str(&shown.join(", "));
                if n > DESCRIBE_ANSWERS {
                    text.push_str(", ...");
                }
            }
        }
        text
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// keepalived's rule alone (see the module's doc): Ok if keepalived's
/// DNS_CHECK counts `reply` a success.
pub fn keepalived_rule(query_id: u16, reply: &[u8]) -> Result<(), DnsProblem> {
    let Some(header) = reply.get(..HEADER_LEN) else {
        return Err(DnsProblem::TooShort { len: reply.len() });
    };
    let id = u16::from_be_bytes([header[0], header[1]]);
    if id != query_id {
        return Err(DnsProblem::WrongId {
            expected: query_id,
            got: id,
        });
    }
    let flags = u16::from_be_bytes([header[2], header[3]]);
    if flags & 0x8000 == 0 {
        return Err(DnsProblem::NotResponse);
    }
    let rcode = (flags & 0x000f) as u8;
    if rcode != 0 {
        return Err(DnsProblem::Rcode(rcode));
    }
    Ok(())
}

/// Judges `reply` to `query`: keepalived's rule, then TC, then the
/// message parsed for its answer section. Never panics; memory is bounded
/// by the reply's size.
pub fn judge(query: &Query, reply: &[u8]) -> Result<Answer, DnsProblem> {
    keepalived_rule(query.id, reply)?;
    let flags = u16::from_be_bytes([reply[2], reply[3]]);
    if flags & 0x0200 != 0 {
        return Err(DnsProblem::Truncated);
    }
    let message = Packet::parse(reply).map_err(|e| DnsProblem::Malformed(e.to_string()))?;
    let mut addresses = Vec::new();
    let mut records = Vec::with_capacity(message.answers.len());
    for record in &message.answers {
        let data = match &record.rdata {
            RData::A(a) => {
                let ip = std::net::Ipv4Addr::from(a.address);
                addresses.push(IpAddr::V4(ip));
                ip.to_string()
            }
            RData::AAAA(a) => {
                let ip = std::net::Ipv6Addr::from(a.address);
                addresses.push(IpAddr::V6(ip));
                ip.to_string()
            }
            other => cut(&rdata_text(other), DESCRIBE_CHARS),
        };
        let rtype = type_name(record.rdata.type_code());
        if data.is_empty() {
            records.push(rtype);
        } else {
            records.push(format!("{rtype} {data}"));
        }
    }
    Ok(Answer {
        authoritative: flags & 0x0400 != 0,
        addresses,
        records,
        authorities: message.name_servers.len(),
    })
}

/// A type's name: ours, simple-dns's, or `TYPE<n>` (RFC 3597).
fn type_name(t: TYPE) -> String {
    let code = u16::from(t);
    if let Some(ours) = RecordType::ALL.into_iter().find(|r| r.code() == code) {
        return ours.name().to_string();
    }
    match t {
        TYPE::Unknown(n) => format!("TYPE{n}"),
        known => format!("{known:?}"),
    }
}

/// A name in zone-file text, absolute: `host.example.`, `.` for the root.
fn name_text(name: &Name<'_>) -> String {
    let text = name.to_string();
    if text.is_empty() {
        ".".to_string()
    } else {
        format!("{text}.")
    }
}

/// A record's data as short text: names absolute, as in a zone file for
/// the usual types; the rest as simple-dns shows it.
fn rdata_text(rdata: &RData<'_>) -> String {
    let text = match rdata {
        RData::NS(n) => name_text(&n.0),
        RData::CNAME(n) => name_text(&n.0),
        RData::PTR(n) => name_text(&n.0),
        RData::MX(mx) => format!("{} {}", mx.preference, name_text(&mx.exchange)),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            name_text(&soa.mname),
            name_text(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            name_text(&srv.target)
        ),
        RData::TXT(txt) => String::try_from(txt.clone())
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        RData::Empty(_) => String::new(),
        RData::NULL(_, data) => format!("({} bytes)", data.get_data().len()),
        other => format!("{other:?}"),
    };
    // One line: control characters escaped.
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// At most `max` characters of `s`, with `...` when there were more.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Ok if every address of `expected` is among the answer's; else the
/// missing ones, in `expected`'s order.
pub fn expect_addresses(answer: &Answer, expected: &[IpAddr]) -> Result<(), Vec<IpAddr>> {
    let missing: Vec<IpAddr> = expected
        .iter()
        .filter(|a| !answer.addresses.contains(a))
        .copied()
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing)
    }
}

/// The first message of a TCP stream (RFC 1035 §4.2.2: each message
/// follows its 2-byte length).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpFrame<'a> {
    /// A whole message, and the stream bytes it took (with its length).
    Complete { message: &'a [u8], used: usize },
    /// `needed` more bytes are wanted before the first message is whole.
    Incomplete { needed: usize },
}

/// The first complete message in `stream` (the bytes read so far). A
/// reader never needs more than `2 + MAX_MESSAGE` bytes buffered.
pub fn tcp_frame(stream: &[u8]) -> TcpFrame<'_> {
    let Some(prefix) = stream.get(..2) else {
        return TcpFrame::Incomplete {
            needed: 2 - stream.len(),
        };
    };
    let len = usize::from(u16::from_be_bytes([prefix[0], prefix[1]]));
    match stream.get(2..2 + len) {
        Some(message) => TcpFrame::Complete {
            message,
            used: 2 + len,
        },
        None => TcpFrame::Incomplete {
            needed: 2 + len - stream.len(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::rdata::{A, AAAA, CNAME, MX, SOA, TXT};
    use simple_dns::{CLASS, PacketFlag, QCLASS, QTYPE, Question, ResourceRecord};
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A name for simple-dns, from text with or without its trailing dot.
    fn dns_name(name: &str) -> Name<'_> {
        Name::new_unchecked(name.strip_suffix('.').unwrap_or(name))
    }

    fn reply_to(query: &Query, rcode: u8, answers: Vec<ResourceRecord<'_>>) -> Vec<u8> {
        let mut message = Packet::new_reply(query.id);
        message.set_flags(PacketFlag::RECURSION_DESIRED);
        assert_eq!(rcode, 0, "rcodes are set on the bytes");
        message.questions.push(Question::new(
            dns_name(&query.name),
            QTYPE::TYPE(TYPE::from(query.rtype.code())),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        message.answers = answers;
        message.build_bytes_vec().unwrap()
    }

    fn record<'a>(name: &'a str, rdata: RData<'a>) -> ResourceRecord<'a> {
        ResourceRecord::new(dns_name(name), CLASS::IN, 60, rdata)
    }

    fn a(name: &str, ip: [u8; 4]) -> ResourceRecord<'_> {
        record(
            name,
            RData::A(A {
                address: u32::from(Ipv4Addr::from(ip)),
            }),
        )
    }

    #[test]
    fn record_types_parse_case_insensitively_and_display() {
        assert_eq!("aaaa".parse(), Ok(RecordType::Aaaa));
        assert_eq!("Soa".parse(), Ok(RecordType::Soa));
        assert_eq!("dnskey".parse(), Ok(RecordType::Dnskey));
        for t in RecordType::ALL {
            assert_eq!(t.to_string().parse(), Ok(t));
            assert_eq!(u16::from(TYPE::from(t.code())), t.code());
            assert_eq!(format!("{:?}", TYPE::from(t.code())), t.name());
            assert_eq!(type_name(TYPE::from(t.code())), t.name());
        }
        let err = "SRV".parse::<RecordType>().unwrap_err();
        assert!(err.contains("not a DNS type"), "{err}");
    }

    #[test]
    fn query_encodes_as_keepalived_does() {
        // keepalived's dns_make_query: RD, one question, class IN, no EDNS.
        let q = Query::new(0x1234, "example.com", RecordType::A).unwrap();
        let bytes = q.encode();
        let mut expected = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
        assert_eq!(bytes, expected);
        // Trailing dot or not, the same name.
        let q2 = Query::new(0x1234, "example.com.", RecordType::A).unwrap();
        assert_eq!(q2.encode(), expected);
        assert_eq!(q.name(), "example.com.");
        // TCP: the length first.
        let tcp = q.encode_tcp();
        assert_eq!(&tcp[..2], &(expected.len() as u16).to_be_bytes());
        assert_eq!(&tcp[2..], &expected[..]);
    }

    #[test]
    fn root_query_is_keepalived_default() {
        // Default type SOA, name "" (the root): 12 + 1 + 4 bytes.
        for name in ["", "."] {
            let q = Query::new(7, name, RecordType::Soa).unwrap();
            let bytes = q.encode();
            assert_eq!(&bytes[12..], b"\x00\x00\x06\x00\x01");
            assert_eq!(q.name(), ".");
        }
        let mut no_rd = Query::new(7, ".", RecordType::Soa).unwrap();
        no_rd.recursion_desired = false;
        assert_eq!(no_rd.encode()[2], 0);
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["a..b", ".a", "..", "a b", "é.com"] {
            assert!(Query::new(1, name, RecordType::A).is_err(), "{name}");
        }
        let long_label = "a".repeat(64);
        assert!(Query::new(1, &long_label, RecordType::A).is_err());
        let long_name = vec!["a".repeat(60); 5].join(".");
        assert!(Query::new(1, &long_name, RecordType::A).is_err());
        assert!(Query::new(1, "_dns._udp.example", RecordType::Txt).is_ok());
    }

    #[test]
    fn accepts_noerror_with_addresses() {
        let q = Query::new(42, "www.example", RecordType::A).unwrap();
        let reply = reply_to(
            &q,
            0,
            vec![
                a("www.example.", [198, 18, 0, 100]),
                a("www.example.", [198, 18, 0, 101]),
            ],
        );
        let answer = judge(&q, &reply).unwrap();
        assert_eq!(
            answer.addresses,
            vec![
                IpAddr::from([198, 18, 0, 100]),
                IpAddr::from([198, 18, 0, 101])
            ]
        );
        assert_eq!(
            answer.describe(),
            "NOERROR, 2 answers: 198.18.0.100, 198.18.0.101"
        );
        assert_eq!(
            expect_addresses(&answer, &[IpAddr::from([198, 18, 0, 101])]),
            Ok(())
        );
        assert_eq!(
            expect_addresses(
                &answer,
                &[IpAddr::from([198, 18, 0, 100]), IpAddr::from([10, 0, 0, 1])]
            ),
            Err(vec![IpAddr::from([10, 0, 0, 1])])
        );
    }

    #[test]
    fn aaaa_cname_and_soa_are_described() {
        let q = Query::new(9, "v6.example", RecordType::Aaaa).unwrap();
        let cname = record(
            "v6.example.",
            RData::CNAME(CNAME(dns_name("host.example."))),
        );
        let aaaa = record(
            "host.example.",
            RData::AAAA(AAAA {
                address: u128::from(Ipv6Addr::LOCALHOST),
            }),
        );
        let answer = judge(&q, &reply_to(&q, 0, vec![cname, aaaa])).unwrap();
        assert_eq!(answer.addresses, vec![IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert_eq!(
            answer.describe(),
            "NOERROR, 2 answers: CNAME host.example., ::1"
        );

        let q = Query::new(9, ".", RecordType::Soa).unwrap();
        let soa = record(
            ".",
            RData::SOA(SOA {
                mname: dns_name("ns.lab.test."),
                rname: dns_name("hostmaster.lab.test."),
                serial: 1,
                refresh: 1200,
                retry: 180,
                expire: 1_209_600,
                minimum: 600,
            }),
        );
        let mut reply = reply_to(&q, 0, vec![soa]);
        reply[2] |= 0x04; // AA
        let answer = judge(&q, &reply).unwrap();
        assert!(answer.addresses.is_empty());
        // As the lab's dnsmasq answers keepalived's default query.
        assert_eq!(
            answer.describe(),
            "NOERROR (authoritative), 1 answer: SOA ns.lab.test. hostmaster.lab.test. 1 1200 180 1209600 600"
        );
    }

    #[test]
    fn mx_txt_and_unknown_types_are_described() {
        let q = Query::new(4, "example", RecordType::Mx).unwrap();
        let mx = record(
            "example.",
            RData::MX(MX {
                preference: 10,
                exchange: dns_name("mail.example."),
            }),
        );
        let txt = record(
            "example.",
            RData::TXT(TXT::new().with_string("v=spf1 -all").unwrap()),
        );
        let mut reply = reply_to(&q, 0, vec![mx, txt]);
        // An answer of type 99 (SPF, unknown to simple-dns' parser) with 3
        // bytes of data, and one of an empty type 4242: ANCOUNT 4.
        reply[7] = 4;
        reply.extend_from_slice(&[0xc0, 12, 0, 99, 0, 1, 0, 0, 0, 60, 0, 3, 2, b'h', b'i']);
        reply.extend_from_slice(&[0xc0, 12, 0x10, 0x92, 0, 1, 0, 0, 0, 60, 0, 0]);
        let answer = judge(&q, &reply).unwrap();
        assert_eq!(
            answer.records,
            vec![
                "MX 10 mail.example.",
                "TXT v=spf1 -all",
                "TYPE99 (3 bytes)",
                "TYPE4242"
            ]
        );
        assert!(answer.addresses.is_empty());
    }

    #[test]
    fn query_bytes_are_pinned() {
        // RFC 1035 §4.1: id, flags 0x0100 (RD), QDCOUNT 1, the three other
        // counts 0; QNAME, QTYPE, QCLASS IN (1).
        let root = Query::new(0xbeef, ".", RecordType::Soa).unwrap();
        assert_eq!(
            root.encode(),
            [
                0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header
                0, // the root: a single zero byte
                0, 6, 0, 1, // SOA, IN
            ]
        );
        let www = Query::new(0x0001, "www.lab.test", RecordType::A).unwrap();
        assert_eq!(
            www.encode(),
            [
                0x00, 0x01, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header
                3, b'w', b'w', b'w', 3, b'l', b'a', b'b', 4, b't', b'e', b's', b't',
                0, // name
                0, 1, 0, 1, // A, IN
            ]
        );
        assert_eq!(www.encode_tcp()[..2], [0, 30]);
        // simple-dns reads our query as we meant it.
        let bytes = www.encode();
        let parsed = Packet::parse(&bytes).unwrap();
        assert_eq!(parsed.id(), 1);
        assert!(parsed.has_flags(PacketFlag::RECURSION_DESIRED));
        assert_eq!(parsed.questions.len(), 1);
        assert_eq!(parsed.questions[0].qname.to_string(), "www.lab.test");
    }

    #[test]
    fn empty_answer_is_accepted_as_keepalived_does() {
        // keepalived checks no ANCOUNT: NOERROR with no answer passes.
        let q = Query::new(3, "example", RecordType::Mx).unwrap();
        let answer = judge(&q, &reply_to(&q, 0, vec![])).unwrap();
        assert_eq!(answer.describe(), "NOERROR, no answer");
        assert_eq!(
            expect_addresses(&answer, &[IpAddr::from([1, 2, 3, 4])]),
            Err(vec![IpAddr::from([1, 2, 3, 4])])
        );
    }

    #[test]
    fn rcodes_fail() {
        let q = Query::new(5, "nx.example", RecordType::A).unwrap();
        for (code, name) in [(3, "NXDOMAIN"), (2, "SERVFAIL"), (5, "REFUSED"), (15, "15")] {
            let mut reply = reply_to(&q, 0, vec![]);
            reply[3] |= code;
            let err = judge(&q, &reply).unwrap_err();
            assert_eq!(err, DnsProblem::Rcode(code));
            assert_eq!(err.to_string(), format!("rcode {name}"));
            assert!(!err.is_stray());
        }
    }

    #[test]
    fn stray_datagrams_are_told_apart() {
        let q = Query::new(0xabcd, "example", RecordType::A).unwrap();
        let reply = reply_to(&q, 0, vec![]);
        let err = judge(&q, &reply[..11]).unwrap_err();
        assert_eq!(err, DnsProblem::TooShort { len: 11 });
        assert!(err.is_stray());

        let mut other = reply.clone();
        other[1] ^= 1;
        let err = judge(&q, &other).unwrap_err();
        assert_eq!(
            err,
            DnsProblem::WrongId {
                expected: 0xabcd,
                got: 0xabcc
            }
        );
        assert_eq!(err.to_string(), "reply id 0xabcc is not the query's 0xabcd");
        assert!(err.is_stray());

        // Our own query echoed back.
        let err = judge(&q, &q.encode()).unwrap_err();
        assert_eq!(err, DnsProblem::NotResponse);
        assert!(err.is_stray());
    }

    #[test]
    fn truncated_and_malformed_fail_where_keepalived_passes() {
        let q = Query::new(1, "example", RecordType::Txt).unwrap();
        let mut reply = reply_to(&q, 0, vec![a("example.", [1, 1, 1, 1])]);
        let mut tc = reply.clone();
        tc[2] |= 0x02;
        assert_eq!(judge(&q, &tc), Err(DnsProblem::Truncated));
        assert_eq!(
            DnsProblem::Truncated.to_string(),
            "truncated reply (TC): use --tcp"
        );
        assert_eq!(keepalived_rule(1, &tc), Ok(()));

        reply.truncate(reply.len() - 3);
        let err = judge(&q, &reply).unwrap_err();
        assert!(matches!(err, DnsProblem::Malformed(_)), "{err:?}");
        assert!(err.to_string().starts_with("malformed reply: "));
        assert_eq!(keepalived_rule(1, &reply), Ok(()));

        // A bare header, QR set: keepalived's success, and ours (no question,
        // no answer).
        let header = [0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(judge(&q, &header).unwrap().describe(), "NOERROR, no answer");
    }

    #[test]
    fn garbage_never_panics() {
        let q = Query::new(0x0101, "example", RecordType::A).unwrap();
        let mut state = 0x1234_5678_u32;
        for len in 0..600 {
            let mut bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            if bytes.len() >= 4 {
                bytes[0] = 1;
                bytes[1] = 1;
                bytes[2] |= 0x80;
                bytes[2] &= !0x02;
                bytes[3] &= 0xf0;
            }
            let _ = judge(&q, &bytes);
        }
        // A compression pointer to itself.
        let mut looped = vec![1, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        looped.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert!(matches!(judge(&q, &looped), Err(DnsProblem::Malformed(_))));
    }

    #[test]
    fn tcp_frames() {
        assert_eq!(tcp_frame(&[]), TcpFrame::Incomplete { needed: 2 });
        assert_eq!(tcp_frame(&[0]), TcpFrame::Incomplete { needed: 1 });
        assert_eq!(tcp_frame(&[0, 3, 1]), TcpFrame::Incomplete { needed: 2 });
        assert_eq!(
            tcp_frame(&[0, 3, 1, 2, 3, 9]),
            TcpFrame::Complete {
                message: &[1, 2, 3],
                used: 5
            }
        );
        assert_eq!(
            tcp_frame(&[0, 0]),
            TcpFrame::Complete {
                message: &[],
                used: 2
            }
        );
        assert_eq!(
            tcp_frame(&[0xff, 0xff]),
            TcpFrame::Incomplete {
                needed: MAX_MESSAGE
            }
        );
        let q = Query::new(8, "example", RecordType::A).unwrap();
        let reply = reply_to(&q, 0, vec![a("example.", [9, 9, 9, 9])]);
        let mut stream = (reply.len() as u16).to_be_bytes().to_vec();
        stream.extend_from_slice(&reply);
        let TcpFrame::Complete { message, .. } = tcp_frame(&stream) else {
            panic!("incomplete");
        };
        assert_eq!(
            judge(&q, message).unwrap().addresses,
            vec![IpAddr::from([9, 9, 9, 9])]
        );
    }
}
