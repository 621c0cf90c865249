//! Kernel objects, each behind a small typed wrapper: AF_PACKET sockets
//! ([`packet`]), rtnetlink ([`rtnl`]), network interfaces ([`netdev`]),
//! signals ([`signals`]) and the frame buffers ([`buffers`]).

pub(crate) mod buffers;
pub mod netdev;
pub mod packet;
pub(crate) mod rtnl;
pub(crate) mod signals;
