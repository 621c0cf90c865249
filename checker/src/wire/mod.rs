//! What goes on the wire, without I/O: frames built and parsed (ARP, NDP,
//! TCP segments), the demultiplexer that mirrors the XDP program's parse,
//! the rule of what vipcheck may send ([`egress`]), one-line frame
//! descriptions for traces, and the HTTP response parser. Every function
//! here is pure: bytes in, bytes or facts out.

pub mod arp;
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
