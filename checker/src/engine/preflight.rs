//! Refuses impossible setups before anything is sent or attached.
//!
//! A check that cannot mean anything (a loopback "real server", an
//! interface without Ethernet, a real server behind a gateway, a source
//! address that is not ours) must fail at once with a reason, not after its
//! whole timeout with "unhealthy", and must leave nothing behind: no frame
//! on the wire, no XDP program on the interface. What the kernel knows
//! (the interface, the route) is read over rtnetlink, without privilege.

use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_route::route::RouteType;

use crate::error::{Error, Result};
use crate::probe::Probe;
use crate::sys::netdev::NetDev;
use crate::sys::rtnl;
use crate::wire::egress::Egress;

/// What a check that passed the preflight sends from.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub(crate) dev: NetDev,
    /// Sender and source address of every frame.
    pub(crate) source: IpAddr,
    pub(crate) egress: Egress,
}

/// Where the preflight reads the host's state: the engine's cache of
/// it (or a test's own host).
pub(crate) trait Host {
    fn netdev(&mut self, name: &str) -> Result<NetDev>;
    fn route_to(&mut self, ip: IpAddr) -> std::io::Result<rtnl::Route>;
}

/// Whether a check (and so the capture program) can use `dev`: an
/// Ethernet interface (not loopback, a tunnel or a raw IP link), up. The
/// checks refuse the others, and `vipcheck xdp attach` with them.
pub(crate) fn usable(dev: &crate::sys::netdev::NetDev) -> Result<()> {
    if !dev.ethernet {
        return Err(Error::Interface(format!(
            "{} is not an Ethernet interface, so no frame can be addressed to a real server's MAC \
             through it; give the interface that faces the real servers",
            dev.name
        )));
    }
    if !dev.up {
        return Err(Error::Interface(format!(
            "{0} is down; bring it up first (ip link set {0} up)",
            dev.name
        )));
    }
    Ok(())
}

/// Validates `target` against `host`: every refusal is an [`Error`]
/// with the documented exit status (2 for the arguments, 3 for the
/// interface).
pub(crate) fn check_on(host: &mut impl Host, target: &Probe) -> Result<Plan> {
    unicast("REAL_SERVER", target.real_server)?;
    unicast("VIP", target.vip)?;
    if target.real_server.is_ipv4() != target.vip.is_ipv4() {
        return Err(Error::Usage(format!(
            "REAL_SERVER {} and VIP {} are of different IP families; give both IPv4 or both IPv6",
            target.real_server, target.vip
        )));
    }
    // The check layer gives the route's interface to a probe naming none.
    let Some(iface) = target.iface.as_deref() else {
        return Err(Error::Usage("no interface to send from".into()));
    };
    let dev = host.netdev(iface)?;
    usable(&dev)?;
    let egress = Egress::new(&dev, target.vip);
    let source = match target.source {
        Some(ip) => given_source(ip, &dev, target.vip, &egress)?,
        None => dev.source_for(target.real_server, target.vip)?,
    };
    on_link(&dev, target.real_server, host.route_to(target.real_server))?;
    Ok(Plan {
        dev,
        source,
        egress,
    })
}

/// REAL_SERVER and VIP name one other host each.
pub(crate) fn unicast(what: &str, ip: IpAddr) -> Result<()> {
    let why = if ip.is_unspecified() {
        "unspecified"
    } else if ip == IpAddr::V4(Ipv4Addr::BROADCAST) {
        "the broadcast address"
    } else if ip.is_multicast() {
        "a multicast address"
    } else if ip.is_loopback() {
        "a loopback address"
    } else if matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80) {
        "a link-local address"
    } else {
        return Ok(());
    };
    Err(Error::Usage(format!(
        "{what} {ip} is {why}; {}",
        match what {
            "VIP" => "give the virtual IP that the real servers carry on their loopback",
            _ => "give the real server's own unicast address",
        }
    )))
}

/// `--source`: one of IFACE's own addresses, never the VIP.
fn given_source(ip: IpAddr, dev: &NetDev, vip: IpAddr, egress: &Egress) -> Result<IpAddr> {
    if egress.allows_source(ip) {
        return Ok(ip);
    }
    let tentative = dev
        .ipv6
        .iter()
        .any(|c| IpAddr::V6(c.addr) == ip && c.is_global() && !c.ready);
    let why = if tentative {
        "is not ready: duplicate address detection has not passed (tentative or failed)".to_string()
    } else if ip == vip {
        "is the VIP: frames from it would teach the real servers (and every host of the \
         segment) that the VIP is at this LB"
            .to_string()
    } else if ip.is_loopback() || ip.is_unspecified() {
        "is not an address frames can come from".to_string()
    } else {
        let own: Vec<String> = dev
            .ipv4
            .iter()
            .map(|c| (IpAddr::V4(c.addr), c.prefix_len))
            .chain(
                dev.ipv6
                    .iter()
                    .filter(|c| c.can_source())
                    .map(|c| (IpAddr::V6(c.addr), c.prefix_len)),
            )
            .filter(|(a, _)| *a != vip && a.is_ipv4() == ip.is_ipv4())
            .map(|(a, len)| format!("{a}/{len}"))
            .collect();
        format!(
            "is not an address of {} ({})",
            dev.name,
            match own.as_slice() {
                [] => "it has none but the VIP".to_string(),
                own => format!("its own: {}", own.join(", ")),
            }
        )
    };
    Err(Error::Usage(format!(
        "--source {ip} {why}; leave --source out or give an address of {}",
        dev.name
    )))
}

/// The kernel's route to the real server leaves through `dev` with no
/// gateway: LVS-DR forwards by MAC, so a real server is on the LB's link.
fn on_link(dev: &NetDev, real_server: IpAddr, route: std::io::Result<rtnl::Route>) -> Result<()> {
    let route = match route {
        Ok(route) => route,
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH)
            ) =>
        {
            return Err(Error::Usage(format!(
                "REAL_SERVER {real_server} is not on the link of {} (this host has no route to it); \
                 LVS-DR needs real servers on the load balancer's link",
                dev.name
            )));
        }
        Err(e) => {
            return Err(Error::io(
                format!("looking up the route to {real_server}"),
                e,
            ));
        }
    };
    let refuse = |why: String| Err(Error::Usage(format!("REAL_SERVER {real_server} {why}")));
    match route.kind {
        RouteType::Unicast => {}
        RouteType::Local => return refuse("is an address of this host, not a real server".into()),
        RouteType::Broadcast => return refuse("is a broadcast address".into()),
        RouteType::Multicast => return refuse("is a multicast address".into()),
        other => return refuse(format!("has a route of type {other:?} on this host")),
    }
    if let Some(gateway) = route.gateway {
        return refuse(format!(
            "is reached through the gateway {gateway}, not on the link of {}; LVS-DR needs real \
             servers on the load balancer's link",
            dev.name
        ));
    }
    match route.oif {
        Some(oif) if oif != dev.ifindex => {
            let other = rtnl::link(oif).map_or_else(|_| format!("interface {oif}"), |l| l.name);
            refuse(format!(
                "is reached through {other}, not {}; give {other} as IFACE if it faces the real servers",
                dev.name
            ))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_up_ethernet_interfaces_are_usable() {
        let dev = |ethernet: bool, up: bool| crate::sys::netdev::NetDev {
            name: "x0".into(),
            ifindex: 2,
            mac: Default::default(),
            mtu: 1500,
            ethernet,
            up,
            xdp_seen: None,
            ipv4: Vec::new(),
            ipv6: Vec::new(),
        };
        assert!(usable(&dev(true, true)).is_ok());
        let refused = |d| match usable(&d) {
            Err(Error::Interface(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(dev(false, true)).contains("not an Ethernet interface"));
        assert!(refused(dev(true, false)).contains("x0 is down"));
    }

    #[test]
    fn only_unicast_addresses_name_a_host() {
        for bad in [
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "239.1.2.3",
            "127.0.0.1",
            "::",
            "::1",
            "ff02::1",
            "fe80::1",
        ] {
            let ip: IpAddr = bad.parse().unwrap();
            for what in ["REAL_SERVER", "VIP"] {
                let e = unicast(what, ip).unwrap_err();
                assert_eq!(crate::exit::of_error(&e), 2, "{bad}");
                assert!(
                    e.to_string().starts_with(&format!("{what} {bad} is ")),
                    "{e}"
                );
            }
        }
        assert!(unicast("VIP", Ipv4Addr::new(198, 18, 0, 100).into()).is_ok());
        assert!(unicast("VIP", "fd98:c612:0:1::100".parse().unwrap()).is_ok());
    }
}
