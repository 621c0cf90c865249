//! AF_PACKET sockets: whole Ethernet frames in and out of one interface,
//! below the kernel's IP stack. This is how frames addressed to the VIP but
//! to the real server's MAC leave the load balancer.

// unsafe: AF_PACKET socket calls (socket, bind, setsockopt, sendto, recv).
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

pub(crate) const ETH_P_ALL: u16 = 0x0003;

/// A non-blocking AF_PACKET raw socket bound to one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
}

impl PacketSocket {
    /// Opens a socket on `ifindex` that receives frames of `protocol`
    /// (an ethertype; 0 receives nothing, for a send-only socket).
    pub fn open(ifindex: u32, protocol: u16) -> Result<PacketSocket> {
        // Protocol 0 at creation, the real one at bind: a socket created
        // with a protocol is hooked at once, and re-hooking it at bind makes
        // the kernel wait for an RCU grace period (milliseconds).
        // SAFETY: plain socket(2) call; the fd is owned right after.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if fd < 0 {
            return Err(Error::privileged(
                "opening an AF_PACKET socket",
                "CAP_NET_RAW",
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = protocol.to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: addr is a valid sockaddr_ll of the size passed.
        let ret = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if ret < 0 {
            return Err(Error::io(
                "binding the AF_PACKET socket",
                io::Error::last_os_error(),
            ));
        }
        Ok(PacketSocket { fd })
    }

    /// Sends one whole Ethernet frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a valid buffer of frame.len() bytes.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Receives one frame of our protocol, or `WouldBlock`. Frames the
    /// interface itself sent (PACKET_OUTGOING) are skipped.
    pub(crate) fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and from are valid for the sizes passed.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if from.sll_pkttype != libc::PACKET_OUTGOING {
                return Ok(n as usize);
            }
        }
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }
}
