//! What to check: the plain description a CLI (native or compatible) builds.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::engine::trace::Trace;
use crate::xdp::XdpMode;

/// How the check's TCP connection ends once it has done its job.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum CloseMode {
    /// RST: nothing is left in TIME-WAIT (as the C checkers do).
    #[default]
    Rst,
    /// FIN handshake, for servers that log abrupt closes.
    Fin,
}

/// How replies are captured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Capture {
    /// The shared XDP program takes our replies before the kernel sees them;
    /// the check fails (exit 3) if it cannot be used.
    #[default]
    Require,
    /// No BPF: an AF_PACKET socket copies replies, and the kernel still sees
    /// them. On a backup LB (VIP not local) the kernel answers them with RSTs.
    Off,
}

#[derive(Clone, Debug)]
pub struct Target {
    pub iface: String,
    /// IPv4 or IPv6, the same family as `vip` (the preflight checks).
    pub real_server: IpAddr,
    pub vip: IpAddr,
    pub port: u16,
    /// Source address; the interface's own when `None`.
    pub source: Option<IpAddr>,
    /// Deadline of the whole check.
    pub timeout: Duration,
    /// Each reply of the server (ARP reply, SYN-ACK, each next piece of
    /// the response) must come within this of the one before, as the C
    /// checkers' `-t`; `timeout` still bounds the whole check.
    pub reply_timeout: Option<Duration>,
    pub close: CloseMode,
    pub capture: Capture,
    pub xdp_mode: XdpMode,
    /// Which frames to show on stderr (and vipcheck's diagnostics when any).
    pub trace: Trace,
    /// Write every frame sent and received to this pcap file.
    pub pcap: Option<PathBuf>,
}
