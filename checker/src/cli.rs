//! The native command line (`vipcheck tcp|xdp ...`).

use std::net::Ipv4Addr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::target::{Capture, CloseMode, Target};
use crate::xdp::XdpMode;

#[derive(Debug, Parser)]
#[command(
    name = "vipcheck",
    version,
    about = "Health checks of LVS-DR real servers through the VIP path",
    long_about = "Health checks of LVS-DR real servers through the VIP path: frames whose \
destination IP is the VIP and whose destination MAC is the real server's, as the load \
balancer forwards real traffic. An XDP program on the interface takes the replies before \
the kernel sees them, so a backup LB needs no VIP and no iptables rule.\n\n\
Exit status: 0 healthy, 1 unhealthy, 2 usage error, 3 the check could not run here."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// TCP handshake with REAL_SERVER for VIP:PORT (healthy on SYN-ACK).
    Tcp(TcpArgs),
    /// Manage the shared XDP program of an interface.
    Xdp {
        #[command(subcommand)]
        action: XdpAction,
    },
}

#[derive(Debug, Args)]
pub struct TcpArgs {
    #[command(flatten)]
    pub flow: FlowArgs,
    /// How to end the connection after the handshake.
    #[arg(long, value_enum, default_value_t = CloseMode::Rst)]
    pub close: CloseMode,
}

/// What every check of a real server through a VIP takes.
#[derive(Debug, Args)]
pub struct FlowArgs {
    /// Interface of the load balancer to send from (the one facing the real servers).
    #[arg(value_name = "IFACE")]
    pub iface: String,
    /// The real server's own IPv4 address (used only to learn its MAC by ARP).
    #[arg(value_name = "REAL_SERVER")]
    pub real_server: Ipv4Addr,
    /// The virtual IP: destination address of every packet.
    #[arg(value_name = "VIP")]
    pub vip: Ipv4Addr,
    /// The service's TCP port.
    #[arg(value_name = "PORT", value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// Deadline of the whole check, in milliseconds.
    #[arg(short, long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub timeout: u64,
    /// Source address (default: the interface's address in the real server's subnet).
    #[arg(long, value_name = "IP")]
    pub source: Option<Ipv4Addr>,
    /// Capture replies with the shared XDP program (require) or an AF_PACKET socket (off;
    /// a backup LB's kernel will answer the real server with RSTs).
    #[arg(long, value_enum, default_value_t = Capture::Require)]
    pub xdp: Capture,
    /// Attach mode when this check loads the XDP program.
    #[arg(long, value_enum, default_value_t = XdpMode::Skb)]
    pub xdp_mode: XdpMode,
    /// Trace every frame on stderr (repeatable).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum XdpAction {
    /// Load and attach the program to IFACE (checks do it on demand too).
    Attach {
        iface: String,
        #[arg(long, value_enum, default_value_t = XdpMode::Skb)]
        xdp_mode: XdpMode,
    },
    /// Detach the program from IFACE and remove its pins.
    Detach { iface: String },
    /// Show mode, counters and live flows (of IFACE, or of every interface here).
    Status { iface: Option<String> },
}

impl FlowArgs {
    pub fn target(&self) -> Target {
        Target {
            iface: self.iface.clone(),
            real_server: self.real_server,
            vip: self.vip,
            port: self.port,
            source: self.source,
            timeout: Duration::from_millis(self.timeout),
            close: CloseMode::default(),
            capture: self.xdp,
            xdp_mode: self.xdp_mode,
            verbosity: self.verbose,
        }
    }
}

impl TcpArgs {
    pub fn target(&self) -> Target {
        Target {
            close: self.close,
            ..self.flow.target()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("vipcheck").chain(args.iter().copied()))
    }

    #[test]
    fn tcp_defaults() {
        let cli = parse(&["tcp", "eth0", "198.18.0.11", "198.18.0.100", "80"]).unwrap();
        let Command::Tcp(args) = cli.command else {
            panic!("not tcp")
        };
        let t = args.target();
        assert_eq!(t.timeout, Duration::from_millis(1000));
        assert_eq!(t.close, CloseMode::Rst);
        assert_eq!(t.capture, Capture::Require);
        assert_eq!(t.xdp_mode, XdpMode::Skb);
    }

    #[test]
    fn options() {
        let cli = parse(&[
            "tcp",
            "-vv",
            "-t",
            "500",
            "--close",
            "fin",
            "--xdp",
            "off",
            "eth0",
            "198.18.0.11",
            "198.18.0.100",
            "443",
        ])
        .unwrap();
        let Command::Tcp(args) = cli.command else {
            panic!("not tcp")
        };
        let t = args.target();
        assert_eq!((t.verbosity, t.port, t.close), (2, 443, CloseMode::Fin));
        assert_eq!(t.capture, Capture::Off);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            &["tcp", "eth0", "198.18.0.999", "198.18.0.100", "80"][..],
            &["tcp", "eth0", "198.18.0.11", "vip", "80"],
            &["tcp", "eth0", "198.18.0.11", "198.18.0.100", "0"],
            &["tcp", "eth0", "198.18.0.11", "198.18.0.100", "65536"],
            &["tcp", "eth0", "198.18.0.11", "198.18.0.100"],
            &[
                "tcp",
                "-t",
                "0",
                "eth0",
                "198.18.0.11",
                "198.18.0.100",
                "80",
            ],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
