//! Attaching and detaching an XDP program through rtnetlink (RTM_SETLINK,
//! IFLA_XDP), the attachment that belongs to the interface: it needs no fd
//! or pin to stay, so it outlives the process that made it whatever that
//! process's mount namespace, and the kernel arbitrates concurrent
//! attachers.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkMessage, LinkXdp};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

/// Fail with EBUSY if a program is attached already (never replace one).
pub(super) const XDP_FLAGS_UPDATE_IF_NOEXIST: u32 = 1;
pub(super) const XDP_FLAGS_SKB_MODE: u32 = 2;
pub(super) const XDP_FLAGS_DRV_MODE: u32 = 4;
/// Act only if the attached program is the expected one (else EEXIST).
pub(super) const XDP_FLAGS_REPLACE: u32 = 16;

/// A refusal of the kernel: the errno and its extended-ack message.
#[derive(Debug)]
pub(super) struct SetError {
    pub(super) error: io::Error,
    pub(super) message: Option<String>,
}

impl SetError {
    pub(super) fn errno(&self) -> Option<i32> {
        self.error.raw_os_error()
    }
}

impl fmt::Display for SetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.message {
            Some(message) => write!(f, "{} ({message})", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

/// Its message holds the errno's: no further source.
impl std::error::Error for SetError {}

impl From<io::Error> for SetError {
    fn from(error: io::Error) -> Self {
        SetError {
            error,
            message: None,
        }
    }
}

/// Sets the XDP program of interface `ifindex` to `prog` (None: none),
/// with `flags`; with XDP_FLAGS_REPLACE only if `expected` is attached.
pub(super) fn set_xdp(
    ifindex: u32,
    prog: Option<BorrowedFd<'_>>,
    expected: Option<BorrowedFd<'_>>,
    flags: u32,
) -> Result<(), SetError> {
    let mut xdp = vec![
        LinkXdp::Fd(prog.map_or(-1, |fd| fd.as_raw_fd())),
        LinkXdp::Flags(flags),
    ];
    if let Some(expected) = expected {
        xdp.push(LinkXdp::ExpectedFd(expected.as_raw_fd() as u32));
    }
    let mut message = LinkMessage::default();
    message.header.index = ifindex;
    message.attributes.push(LinkAttribute::Xdp(xdp));

    let mut socket = Socket::new(NETLINK_ROUTE)?;
    // The kernel's reason in words ("Native and generic XDP can't be
    // active at the same time"), without the request echoed back.
    let _ = socket.set_ext_ack(true);
    let _ = socket.set_cap_ack(true);
    socket.bind_auto()?;
    socket.connect(&SocketAddr::new(0, 0))?;
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_ACK;
    header.sequence_number = 1;
    let mut packet = NetlinkMessage::new(
        header,
        NetlinkPayload::from(RouteNetlinkMessage::SetLink(message)),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0)?;

    let mut buf = vec![0u8; 8192];
    loop {
        let size = socket.recv(&mut &mut buf[..], 0)?;
        let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..size])
            .map_err(crate::sys::rtnl::invalid)?;
        if let NetlinkPayload::Error(e) = reply.payload {
            if e.code.is_none() {
                return Ok(());
            }
            let message = (reply.header.flags & NLM_F_ACK_TLVS != 0)
                .then(|| extack_message(&e.header))
                .flatten();
            return Err(SetError {
                error: e.to_io(),
                message,
            });
        }
    }
}

/// NLMSGERR_ATTR_MSG among the TLVs that follow the echoed request header
/// (only the header: NETLINK_CAP_ACK).
fn extack_message(payload: &[u8]) -> Option<String> {
    const NLMSG_HDRLEN: usize = 16;
    const NLMSGERR_ATTR_MSG: u16 = 1;
    let mut tlvs = payload.get(NLMSG_HDRLEN..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            return None;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
            return Some(String::from_utf8_lossy(&text[..end]).into_owned());
        }
        tlvs = tlvs.get(len.next_multiple_of(4)..).unwrap_or_default();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_extack_message() {
        let mut payload = vec![0u8; 16];
        // An unrelated TLV first (NLMSGERR_ATTR_OFFS, u32).
        payload.extend_from_slice(&8u16.to_ne_bytes());
        payload.extend_from_slice(&2u16.to_ne_bytes());
        payload.extend_from_slice(&[0; 4]);
        let text = b"XDP program already attached\0";
        payload.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
        payload.extend_from_slice(&1u16.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            extack_message(&payload).as_deref(),
            Some("XDP program already attached")
        );
        assert_eq!(extack_message(&payload[..20]), None);
        assert_eq!(extack_message(&[]), None);
    }
}
