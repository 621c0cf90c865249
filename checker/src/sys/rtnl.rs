//! What the kernel of this network namespace says about links and routes,
//! asked over rtnetlink (netlink-packet-route): an interface's type, state,
//! MAC, MTU and XDP program, and which way a packet to an address leaves.
//! None of it needs privilege, so an unprivileged `xdp status` and the
//! checks' preflight see the truth too.

use std::cell::RefCell;
use std::io;
use std::net::IpAddr;

use netlink_packet_core::{
    DecodeError, Emitable, ErrorBuffer, ErrorMessage, NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE,
    NLMSG_ERROR, NLMSG_NOOP, NLMSG_OVERRUN, NetlinkBuffer, NetlinkHeader, NetlinkMessage,
    NetlinkPayload, NlasIterator, Parseable, ParseableParametrized,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    LinkAttribute, LinkExtentMask, LinkFlags, LinkHeader, LinkLayerType, LinkMessage, LinkXdp,
    XdpAttached,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// One network interface as the kernel describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LinkState {
    pub(crate) ifindex: u32,
    pub(crate) name: String,
    /// Ethernet framing (ARPHRD_ETHER): the only kind vipcheck can check through.
    pub(crate) ethernet: bool,
    /// Administratively up (IFF_UP).
    pub(crate) up: bool,
    /// The carrier is there (IFF_LOWER_UP).
    pub(crate) lower_up: bool,
    pub(crate) mac: Option<[u8; 6]>,
    pub(crate) mtu: u32,
    /// The XDP program attached to it, if any (whoever attached it).
    pub(crate) xdp: Option<XdpProgram>,
}

/// An XDP program attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XdpProgram {
    pub(crate) id: u32,
    /// "skb", "native", "offload" or "multi" (several at once).
    pub(crate) mode: &'static str,
}

/// How the kernel would send a packet to an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) kind: RouteType,
    /// The interface it leaves through.
    pub(crate) oif: Option<u32>,
    /// The next hop, when the address is not on-link.
    pub(crate) gateway: Option<IpAddr>,
}

/// Every interface of this network namespace.
pub(crate) fn links() -> io::Result<Vec<LinkState>> {
    let mut message = LinkMessage::default();
    skip_stats(&mut message);
    request(
        RouteNetlinkMessage::GetLink(message),
        NLM_F_REQUEST | NLM_F_DUMP,
    )?
    .iter()
    .filter(|answer| answer.kind == RTM_NEWLINK)
    .map(|answer| link_state(&answer.payload))
    .collect()
}

/// The interface with index `ifindex` (`NotFound` if there is none).
pub(crate) fn link(ifindex: u32) -> io::Result<LinkState> {
    let mut message = LinkMessage::default();
    message.header.index = ifindex;
    get_link(message)
}

/// The interface named `name` (`NotFound` if there is none).
pub(crate) fn link_named(name: &str) -> io::Result<LinkState> {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    get_link(message)
}

/// Without its counters the kernel's answer is a third shorter, and
/// quicker to make and to read.
fn skip_stats(message: &mut LinkMessage) {
    message
        .attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
}

fn get_link(mut message: LinkMessage) -> io::Result<LinkState> {
    skip_stats(&mut message);
    let answers =
        request(RouteNetlinkMessage::GetLink(message), NLM_F_REQUEST).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ENODEV) => io::Error::new(io::ErrorKind::NotFound, "no such interface"),
                _ => e,
            }
        })?;
    let answer = answers
        .iter()
        .find(|answer| answer.kind == RTM_NEWLINK)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such interface"))?;
    link_state(&answer.payload)
}

/// One address of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Address {
    pub(crate) ip: IpAddr,
    pub(crate) prefix_len: u8,
    /// Tentative (duplicate address detection still running) or
    /// dadfailed: it cannot source a check (yet).
    pub(crate) unready: bool,
}

/// The IPv4 and IPv6 addresses of interface `ifindex`, in the kernel's
/// order: one dump, which the kernel limits to that interface where it
/// can (strict checking, Linux 4.20), instead of getifaddrs' dump of
/// every link and every address.
pub(crate) fn addresses(ifindex: u32) -> io::Result<Vec<Address>> {
    let mut message = AddressMessage::default();
    message.header.index = ifindex;
    let answers = request(
        RouteNetlinkMessage::GetAddress(message),
        NLM_F_REQUEST | NLM_F_DUMP,
    )?;
    let mut found = Vec::new();
    for answer in answers {
        if answer.kind != RTM_NEWADDR {
            continue;
        }
        let address = AddressMessage::parse(&answer.payload[..]).map_err(invalid)?;
        if address.header.index != ifindex {
            continue;
        }
        let mut flags = AddressFlags::from_bits_truncate(u32::from(address.header.flags.bits()));
        let (mut local, mut peer) = (None, None);
        for attribute in address.attributes {
            match attribute {
                AddressAttribute::Flags(f) => flags = f,
                AddressAttribute::Local(ip) => local = Some(ip),
                AddressAttribute::Address(ip) => peer = Some(ip),
                _ => {}
            }
        }
        // As getifaddrs: IFA_LOCAL is the interface's own address where
        // both are given (a point-to-point link's IFA_ADDRESS is the peer).
        if let Some(ip) = local.or(peer) {
            found.push(Address {
                ip,
                prefix_len: address.header.prefix_len,
                unready: flags.intersects(AddressFlags::Tentative | AddressFlags::Dadfailed),
            });
        }
    }
    Ok(found)
}

/// The route the kernel would take to `dst` (as `ip route get`). An
/// unreachable destination is an error (ENETUNREACH, EHOSTUNREACH).
pub(crate) fn route_to(dst: IpAddr) -> io::Result<Route> {
    let mut message = RouteMessage::default();
    let (family, len) = match dst {
        IpAddr::V4(_) => (AddressFamily::Inet, 32),
        IpAddr::V6(_) => (AddressFamily::Inet6, 128),
    };
    message.header.address_family = family;
    message.header.destination_prefix_length = len;
    message
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(dst)));
    let answers = request(RouteNetlinkMessage::GetRoute(message), NLM_F_REQUEST)?;
    let answer = answers
        .iter()
        .find(|answer| answer.kind == RTM_NEWROUTE)
        .ok_or_else(|| io::Error::other("the kernel sent no route"))?;
    let route = RouteMessage::parse(&answer.payload[..]).map_err(invalid)?;
    let mut found = Route {
        kind: route.header.kind,
        oif: None,
        gateway: None,
    };
    for attribute in route.attributes {
        match attribute {
            RouteAttribute::Oif(index) => found.oif = Some(index),
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => found.gateway = Some(ip.into()),
            RouteAttribute::Gateway(RouteAddress::Inet6(ip)) => found.gateway = Some(ip.into()),
            _ => {}
        }
    }
    Ok(found)
}

/// A link's answer, of which only what vipcheck reads is decoded: the
/// kernel sends dozens of attributes (per-family settings, queues, link
/// kinds), and decoding them all was most of the time spent reading it.
fn link_state(payload: &[u8]) -> io::Result<LinkState> {
    let header = LinkHeader::parse(payload).map_err(invalid)?;
    let mut state = LinkState {
        ifindex: header.index,
        name: String::new(),
        ethernet: header.link_layer_type == LinkLayerType::Ether,
        up: header.flags.contains(LinkFlags::Up),
        lower_up: header.flags.contains(LinkFlags::LowerUp),
        mac: None,
        mtu: 0,
        xdp: None,
    };
    let attributes = payload.get(header.buffer_len()..).unwrap_or_default();
    for nla in NlasIterator::new(attributes) {
        let nla = nla.map_err(invalid)?;
        if !matches!(nla.kind(), IFLA_ADDRESS | IFLA_IFNAME | IFLA_MTU | IFLA_XDP) {
            continue;
        }
        match LinkAttribute::parse_with_param(&nla, header.interface_family).map_err(invalid)? {
            LinkAttribute::IfName(name) => state.name = name,
            LinkAttribute::Address(bytes) => state.mac = bytes.try_into().ok(),
            LinkAttribute::Mtu(mtu) => state.mtu = mtu,
            LinkAttribute::Xdp(xdp) => state.xdp = xdp_program(&xdp),
            _ => {}
        }
    }
    Ok(state)
}

/// The link attributes [`link_state`] decodes (linux/if_link.h).
const IFLA_ADDRESS: u16 = 1;
const IFLA_IFNAME: u16 = 3;
const IFLA_MTU: u16 = 4;
const IFLA_XDP: u16 = 43;
/// The answers' message types (linux/rtnetlink.h).
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;

/// A message the kernel sent that does not decode.
pub(crate) fn invalid(e: DecodeError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

fn xdp_program(attributes: &[LinkXdp]) -> Option<XdpProgram> {
    let mut id = None;
    let mut mode = None;
    for attribute in attributes {
        match attribute {
            LinkXdp::ProgId(prog) => id = Some(*prog),
            LinkXdp::Attached(attached) => {
                mode = match attached {
                    XdpAttached::None => return None,
                    XdpAttached::SocketBuffer => Some("skb"),
                    XdpAttached::Driver => Some("native"),
                    XdpAttached::Hardware => Some("offload"),
                    _ => Some("multi"),
                }
            }
            _ => {}
        }
    }
    Some(XdpProgram {
        id: id.unwrap_or(0),
        mode: mode?,
    })
}

/// One answer of the kernel: its message type and its payload, which
/// the caller decodes as far as it needs.
struct Answer {
    kind: u16,
    payload: Vec<u8>,
}

thread_local! {
    /// This thread's rtnetlink socket and the last sequence number sent on
    /// it: a check's three requests (link, addresses, route) share one
    /// socket instead of making and closing three.
    static SOCKET: RefCell<Option<(Socket, u32)>> = const { RefCell::new(None) };
}

/// Sends one request and collects the answers: all parts of a dump, or
/// the one answer. A netlink error becomes the `io::Error` it carries.
fn request(message: RouteNetlinkMessage, flags: u16) -> io::Result<Vec<Answer>> {
    SOCKET.with(|cell| {
        let mut cached = cell.borrow_mut();
        let (socket, sequence) = match cached.take() {
            Some(cached) => cached,
            None => (open()?, 0),
        };
        let sequence = sequence.wrapping_add(1);
        let answers = exchange(&socket, sequence, message, flags)?;
        // Kept only after a complete exchange: a socket with part of an
        // answer still unread is closed.
        *cached = Some((socket, sequence));
        Ok(answers)
    })
}

fn open() -> io::Result<Socket> {
    let socket = Socket::new(NETLINK_ROUTE)?;
    // Dumps filtered by the request's fields (an address dump by
    // interface). A kernel without it dumps everything; the caller
    // filters anyway.
    let _ = socket.set_netlink_get_strict_chk(true);
    // Connected to the kernel (port 0), which binds it too: only the
    // kernel's answers are read, never another process's messages.
    socket.connect(&SocketAddr::new(0, 0))?;
    Ok(socket)
}

fn exchange(
    socket: &Socket,
    sequence: u32,
    message: RouteNetlinkMessage,
    flags: u16,
) -> io::Result<Vec<Answer>> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = sequence;
    let mut packet = NetlinkMessage::new(header, NetlinkPayload::from(message));
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;

    let dump = flags & NLM_F_DUMP != 0;
    let mut answers = Vec::new();
    // Not zeroed: the kernel writes what is read, and a dump's 64 KiB
    // cleared for a message of a few hundred bytes were sixteen page
    // faults of every check.
    let mut buf = Vec::with_capacity(64 * 1024);
    loop {
        buf.clear();
        socket.recv(&mut buf, 0)?;
        let mut rest = &buf[..];
        while !rest.is_empty() {
            let message = NetlinkBuffer::new_checked(rest).map_err(invalid)?;
            // Messages start 4-byte aligned (NLMSG_ALIGN).
            let len = (message.length() as usize).next_multiple_of(4);
            if message.sequence_number() != sequence {
                // Not an answer to this request.
                rest = rest.get(len..).unwrap_or_default();
                continue;
            }
            match message.message_type() {
                NLMSG_DONE => return Ok(answers),
                NLMSG_ERROR => {
                    let payload = message.payload();
                    let error = ErrorBuffer::new_checked(&payload)
                        .and_then(|b| ErrorMessage::parse(&b))
                        .map_err(invalid)?;
                    return match error.code {
                        Some(_) => Err(error.to_io()),
                        None => Ok(answers),
                    };
                }
                NLMSG_NOOP | NLMSG_OVERRUN => {}
                kind => {
                    answers.push(Answer {
                        kind,
                        payload: message.payload().to_vec(),
                    });
                    if !dump {
                        return Ok(answers);
                    }
                }
            }
            rest = rest.get(len..).unwrap_or_default();
        }
    }
}
