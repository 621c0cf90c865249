//! `vipcheck udp`: one datagram to the VIP through the real server's MAC,
//! and its reply judged: from the VIP (a reply from the real server's own
//! address is what a service bound to 0.0.0.0 sends, and clients drop
//! it), of an acceptable length, with what it must contain. An ICMP
//! error quoting our datagram says why nothing came.

use std::net::{IpAddr, SocketAddr};

use crate::check::datagram::Datagram;
use crate::check::ping::unreachable;
use crate::check::run as run_flow;
use crate::check::verdict::{Failure, Verdict};
use crate::engine::Engine;
use crate::error::Result;
use crate::probe::{Probe, Silence, UdpExpect, UdpSpec};
use crate::wire::datagram::{IcmpError, Reply, parse};

/// One check on `engine` (several may run at once).
pub(crate) async fn check(engine: &Engine, target: &Probe, spec: &UdpSpec) -> Result<Verdict> {
    let what = format!(
        "udp {} via {}",
        SocketAddr::new(target.vip, target.port),
        target.real_server
    );
    run_flow(engine, target, &what, async |flow: &mut Datagram| {
        flow.send(&spec.payload)?;
        let (failure, reason) = exchange(flow, spec, |reply| Some(judge(spec, reply))).await?;
        Ok(flow.path.verdict(failure, &what, reason))
    })
    .await
}

/// Waits for the reply to the datagram sent on `flow` and judges it with
/// `judge` (the payload of a reply from the VIP; `None`: not a reply to
/// ours, wait on); an ICMP error, a reply from another address, or
/// silence are judged here, as `spec` says.
pub(crate) async fn exchange(
    flow: &mut Datagram,
    spec: &UdpSpec,
    mut judge: impl FnMut(&[u8]) -> Option<(Option<Failure>, String)>,
) -> Result<(Option<Failure>, String)> {
    let vip = flow.vip();
    loop {
        let frames = flow.receive().await?;
        if frames.is_empty() {
            return Ok(silence(flow, spec.silence));
        }
        for frame in &frames {
            match parse(frame) {
                Some(Reply::Udp { from, payload }) if from.ip() == vip => {
                    if let Some(verdict) = judge(payload) {
                        flow.answered();
                        return Ok(verdict);
                    }
                }
                Some(Reply::Udp { from, .. }) => {
                    flow.answered();
                    return Ok((Some(Failure::WrongSource), wrong_source(from.ip())));
                }
                Some(Reply::Error { from, error }) => {
                    return Ok(icmp_error(error, from, vip, flow.path.remote_port));
                }
                _ => {}
            }
        }
    }
}

/// Silence until the deadline, as `silence` judges it.
fn silence(flow: &Datagram, silence: Silence) -> (Option<Failure>, String) {
    match silence {
        Silence::Fails => {
            flow.path.unanswered();
            (Some(Failure::NoAnswer), flow.path.no_answer())
        }
        Silence::Healthy => (
            None,
            format!(
                "no reply and no ICMP unreachable within {} (--no-reply-ok counts silence as up)",
                flow.path.window()
            ),
        ),
        Silence::Keepalived => (
            None,
            "no reply and no ICMP unreachable (keepalived's UDP_CHECK counts silence as up)"
                .to_string(),
        ),
    }
}

/// The verdict of an ICMP error from `from` about our datagram to `vip:port`.
pub(crate) fn icmp_error(
    error: IcmpError,
    from: IpAddr,
    vip: IpAddr,
    port: u16,
) -> (Option<Failure>, String) {
    if error == IcmpError::PortUnreachable && from == vip {
        return (
            Some(Failure::PortUnreachable),
            format!(
                "port unreachable (from the VIP: the real server carries the VIP, nothing listens on {port})"
            ),
        );
    }
    (Some(Failure::Unreachable), unreachable(error, from))
}

/// Why a reply from `from` fails the check.
pub(crate) fn wrong_source(from: IpAddr) -> String {
    format!(
        "answered from {from}, not from the VIP: clients drop this reply (a UDP service bound to {} without IP_PKTINFO?)",
        if from.is_ipv4() { "0.0.0.0" } else { "[::]" }
    )
}

/// The verdict of a reply `payload` from the VIP.
pub(crate) fn judge(spec: &UdpSpec, payload: &[u8]) -> (Option<Failure>, String) {
    let len = payload.len();
    if let Some(min) = spec.min_length
        && len < min
    {
        return (
            Some(Failure::Reply),
            format!("reply of {len} bytes, shorter than {min}"),
        );
    }
    if let Some(max) = spec.max_length
        && len > max
    {
        return (
            Some(Failure::Reply),
            format!("reply of {len} bytes, longer than {max}"),
        );
    }
    match &spec.expect {
        Some(UdpExpect::Text(text)) if !contains(payload, text) => (
            Some(Failure::Reply),
            format!(
                "reply of {len} bytes without \"{}\": \"{}\"",
                text.escape_ascii(),
                shown(payload)
            ),
        ),
        Some(UdpExpect::Pattern(pattern)) => match pattern.mismatch(payload) {
            Some(at) => (
                Some(Failure::Reply),
                format!(
                    "reply byte {at} is {:02X}, not as in {pattern}: \"{}\"",
                    payload[at],
                    shown(payload)
                ),
            ),
            None => (None, format!("reply of {len} bytes as expected")),
        },
        Some(UdpExpect::Text(_)) => (None, format!("reply of {len} bytes as expected")),
        None => (None, format!("reply of {len} bytes from the VIP")),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// The first bytes of a reply, escaped for one line.
pub(crate) fn shown(payload: &[u8]) -> String {
    const SHOWN: usize = 64;
    let mut text = payload[..payload.len().min(SHOWN)]
        .escape_ascii()
        .to_string();
    if payload.len() > SHOWN {
        text.push_str("...");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_judged_by_length_then_content() {
        let spec = UdpSpec {
            expect: Some(UdpExpect::Text(b"pong".to_vec())),
            min_length: Some(4),
            max_length: Some(8),
            ..UdpSpec::default()
        };
        assert_eq!(judge(&spec, b"a pong").0, None);
        assert_eq!(judge(&spec, b"pon").0, Some(Failure::Reply));
        assert!(judge(&spec, b"pon").1.contains("shorter than 4"));
        assert!(judge(&spec, b"123456789").1.contains("longer than 8"));
        let (failure, reason) = judge(&spec, b"ping\r\n");
        assert_eq!(failure, Some(Failure::Reply));
        assert!(reason.contains(r#"without "pong": "ping\r\n""#), "{reason}");
        assert_eq!(judge(&UdpSpec::default(), b"").0, None);
    }

    #[test]
    fn icmp_errors_name_their_cause() {
        let vip: IpAddr = "198.18.0.100".parse().unwrap();
        let rs: IpAddr = "198.18.0.11".parse().unwrap();
        let (f, r) = icmp_error(IcmpError::PortUnreachable, vip, vip, 53);
        assert_eq!(f, Some(Failure::PortUnreachable));
        assert!(r.contains("nothing listens on 53"), "{r}");
        let (f, r) = icmp_error(IcmpError::HostUnreachable, rs, vip, 53);
        assert_eq!(f, Some(Failure::Unreachable));
        assert_eq!(r, "host unreachable from 198.18.0.11");
        assert!(wrong_source(rs).starts_with("answered from 198.18.0.11, not from the VIP"));
    }
}
