//! What goes on the wire, without I/O: frames built and parsed (ARP, NDP,
//! TCP segments), the demultiplexer that mirrors the XDP program's parse,
//! the rule of what vipcheck may send ([`egress`]), one-line frame
//! descriptions for traces, the HTTP response parser, the DNS query and
//! reply judge, the SMTP reply parser and dialogue, and the payloads
//! written as text (keepalived's UDP_CHECK hex, check_tcp's escapes).
//! Every function here is pure: bytes in, bytes or facts out.

pub mod arp;
pub mod datagram;
pub mod demux;
pub(crate) mod describe;
pub mod dns;
pub mod egress;
pub mod http;
pub mod ndp;
// Used by the checks being added (udp, tcp --send): allowed until then.
#[allow(dead_code)]
pub(crate) mod payload;
pub mod segment;
// Used by the smtp check being added: allowed until then.
#[allow(dead_code)]
pub(crate) mod smtp;
