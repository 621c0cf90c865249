//! `GET /probe` on the daemon's metrics listener, blackbox_exporter's
//! model: `/probe?module=tcp&target=VIP:PORT&real=REAL_SERVER` checks one
//! target of the loaded configuration now, on the daemon's own engine, and
//! answers `probe_success`, `probe_duration_seconds` and the failure code.
//!
//! Only targets the daemon follows can be probed: a query that names no
//! loaded target is answered 404 before anything is sent, so the endpoint
//! cannot be used to scan a network. A probe neither moves the target's
//! state nor its metrics, nor its schedule. At most [`MAX_PROBES`] run at
//! once (a probe storm cannot starve the schedule); more are answered 503.
//!
//! This module parses the query and the scrape timeout header and writes
//! the answer (no I/O); the HTTP side is in `metrics`, the check itself
//! in `run` (where the targets are).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};

use crate::daemon::outcome::Outcome;
use crate::probe::Protocol;

/// Probes in flight at once (running or waiting for the daemon's loop).
pub(crate) const MAX_PROBES: usize = 8;

/// The header in which Prometheus sends its scrape timeout.
pub(crate) const SCRAPE_TIMEOUT_HEADER: &str = "X-Prometheus-Scrape-Timeout-Seconds";

/// The most a probe's deadline keeps below the scrape timeout (for the
/// answer to travel back): 10% of it, at most this.
const MAX_MARGIN: Duration = Duration::from_millis(500);

/// A probe's deadline is never shorter than this.
const MIN_DEADLINE: Duration = Duration::from_millis(1);

/// What a `/probe` query asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Query {
    /// A check kind (`tcp`, `http`, ...) or a target's whole check label
    /// (`http-healthz`, `tcp-port80`).
    pub(crate) module: String,
    /// The virtual server.
    pub(crate) target: SocketAddr,
    /// The real server, and its port when given.
    pub(crate) real: IpAddr,
    pub(crate) real_port: Option<u16>,
    /// The virtual server's protocol, when given (a TCP and a UDP virtual
    /// server on one port are two).
    pub(crate) protocol: Option<Protocol>,
}

impl Query {
    /// Parses the query string of a `/probe` request (what follows `?`,
    /// percent-encoded as Prometheus sends it). Parameters other than
    /// `module`, `target`, `real` and `protocol` are ignored.
    pub(crate) fn parse(query: &str) -> Result<Query, String> {
        let (mut module, mut target, mut real, mut protocol) = (None, None, None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (decode(key)?, decode(value)?);
            let slot = match key.as_str() {
                "module" => &mut module,
                "target" => &mut target,
                "real" => &mut real,
                "protocol" => &mut protocol,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(format!("{key} given twice"));
            }
        }
        let module = module.ok_or("no module (tcp, http, https, ping, udp, dns, smtp)")?;
        if module.is_empty()
            || module.len() > 200
            || !module
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("module {module:?}: not a check (tcp, http, ...)"));
        }
        let target = target.ok_or("no target (VIP:PORT)")?;
        let target = target
            .parse::<SocketAddr>()
            .map_err(|_| format!("target {target:?}: not VIP:PORT ([VIP]:PORT for IPv6)"))?;
        let real = real.ok_or("no real (the real server's address)")?;
        let (real, real_port) = parse_real(&real)
            .ok_or_else(|| format!("real {real:?}: not an address (or ADDRESS:PORT)"))?;
        if real.is_ipv4() != target.is_ipv4() {
            return Err("target and real: not of one family".into());
        }
        let protocol = match protocol.as_deref() {
            None => None,
            Some("tcp") => Some(Protocol::Tcp),
            Some("udp") => Some(Protocol::Udp),
            Some(other) => return Err(format!("protocol {other:?}: not tcp or udp")),
        };
        Ok(Query {
            module,
            target,
            real,
            real_port,
            protocol,
        })
    }
}

/// `ADDR`, `[V6]`, `ADDR:PORT` or `[V6]:PORT`.
fn parse_real(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, None));
    }
    if let Some(v6) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
        return Some((IpAddr::V6(v6.parse().ok()?), None));
    }
    let addr = text.parse::<SocketAddr>().ok()?;
    Some((addr.ip(), Some(addr.port())))
}

/// Percent-decoding of one query component (`+` is a space, as in forms).
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("{text:?}: a bad percent escape"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("{text:?}: not UTF-8"))
}

/// The deadline a scrape timeout header allows the check (`None`: no
/// header): its value less 10% of it, at most [`MAX_MARGIN`] less.
pub(crate) fn scrape_deadline(header: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(header) = header else {
        return Ok(None);
    };
    let seconds: f64 = header
        .trim()
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s < 1e9)
        .ok_or_else(|| format!("{SCRAPE_TIMEOUT_HEADER}: {header:?}: not a number of seconds"))?;
    let timeout = Duration::from_secs_f64(seconds);
    let margin = (timeout / 10).min(MAX_MARGIN);
    Ok(Some((timeout - margin).max(MIN_DEADLINE)))
}

/// A probe on its way to the daemon's loop.
pub(crate) struct Request {
    pub(crate) query: Query,
    /// The deadline the scrape timeout allows, if any.
    pub(crate) limit: Option<Duration>,
    /// Held until the check ends: the count of probes in flight.
    pub(crate) permit: OwnedSemaphorePermit,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// The daemon's answer to a [`Request`].
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Reply {
    /// No loaded target matches: nothing was sent.
    NotFound,
    /// The check ran.
    Done(Probed),
}

/// One probe's result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Probed {
    pub(crate) outcome: Outcome,
    pub(crate) took: Duration,
    /// The target's check label (`http`, `http-healthz`).
    pub(crate) check: String,
    pub(crate) protocol: &'static str,
    /// The check's deadline.
    pub(crate) timeout: Duration,
}

impl Probed {
    /// The answer's body, in the Prometheus text format.
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        let mut gauge = |name: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(text, "{name}{labels} {value}");
            }
        };
        gauge(
            "probe_success",
            "Whether the check passed (1) or not (0).",
            &[(
                String::new(),
                u8::from(self.outcome == Outcome::Healthy).to_string(),
            )],
        );
        gauge(
            "probe_duration_seconds",
            "How long the check took.",
            &[(String::new(), self.took.as_secs_f64().to_string())],
        );
        gauge(
            "probe_vipcheck_timeout_seconds",
            "The check's deadline: the target's timeout, or less for the scrape timeout.",
            &[(String::new(), self.timeout.as_secs_f64().to_string())],
        );
        gauge(
            "probe_vipcheck_failure",
            "Why the check failed or could not run: vipcheck's failure code (absent when it passed).",
            &self
                .outcome
                .reason()
                .map(|code| (format!("{{code=\"{code}\"}}"), "1".to_string()))
                .into_iter()
                .collect::<Vec<_>>(),
        );
        gauge(
            "probe_vipcheck_info",
            "The target's check label, its virtual server's protocol and the result (healthy, unhealthy, error: could not run).",
            &[(
                format!(
                    "{{check=\"{}\",protocol=\"{}\",result=\"{}\"}}",
                    self.check,
                    self.protocol,
                    self.outcome.as_str()
                ),
                "1".to_string(),
            )],
        );
        text
    }
}

/// The HTTP side's handle on the daemon's loop: where probes go, and the
/// count of those in flight.
#[derive(Clone, Debug)]
pub(crate) struct Prober {
    requests: mpsc::UnboundedSender<Request>,
    permits: Arc<Semaphore>,
}

/// Why a probe got no result.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// [`MAX_PROBES`] are in flight.
    Busy,
    /// No loaded target matches.
    NotFound,
    /// The daemon is stopping, or the check did not end within the scrape
    /// timeout.
    Gone,
}

impl Prober {
    /// A prober, and the receiver of its requests (the daemon's loop).
    pub(crate) fn new() -> (Prober, mpsc::UnboundedReceiver<Request>) {
        let (requests, rx) = mpsc::unbounded_channel();
        let prober = Prober {
            requests,
            permits: Arc::new(Semaphore::new(MAX_PROBES)),
        };
        (prober, rx)
    }

    /// Runs the probe `query` within `limit` (the scrape timeout's
    /// deadline), waiting at most `wait` for its result.
    pub(crate) async fn probe(
        &self,
        query: Query,
        limit: Option<Duration>,
        wait: Option<Duration>,
    ) -> Result<Probed, Refused> {
        let permit = self
            .permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::Busy)?;
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request {
                query,
                limit,
                permit,
                reply,
            })
            .map_err(|_| Refused::Gone)?;
        let answer = match wait {
            Some(wait) => tokio::time::timeout(wait, answer)
                .await
                .map_err(|_| Refused::Gone)?,
            None => answer.await,
        };
        match answer {
            Ok(Reply::Done(probed)) => Ok(probed),
            Ok(Reply::NotFound) => Err(Refused::NotFound),
            Err(_) => Err(Refused::Gone),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::verdict::Failure;

    fn q(text: &str) -> Result<Query, String> {
        Query::parse(text)
    }

    #[test]
    fn parses_a_query() {
        let query = q("module=http&target=198.18.0.100:80&real=198.18.0.11").unwrap();
        assert_eq!(
            query,
            Query {
                module: "http".into(),
                target: "198.18.0.100:80".parse().unwrap(),
                real: "198.18.0.11".parse().unwrap(),
                real_port: None,
                protocol: None,
            }
        );
        // Percent-encoded as Prometheus sends it, in any order, with
        // parameters of its own (ignored) and a real server's port.
        let query = q(
            "real=198.18.0.11%3A8080&debug=true&target=198.18.0.100%3a80&\
             module=http-healthz&protocol=udp",
        )
        .unwrap();
        assert_eq!(query.module, "http-healthz");
        assert_eq!(query.target, "198.18.0.100:80".parse().unwrap());
        assert_eq!(query.real_port, Some(8080));
        assert_eq!(query.protocol, Some(Protocol::Udp));
        // IPv6.
        let query = q(
            "module=tcp&target=%5Bfd98%3Ac612%3A0%3A1%3A%3A100%5D%3A443&\
             real=fd98:c612:0:1::11",
        )
        .unwrap();
        assert_eq!(
            query.target,
            "[fd98:c612:0:1::100]:443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(query.real, "fd98:c612:0:1::11".parse::<IpAddr>().unwrap());
        let query = q("module=tcp&target=[fd98::100]:443&real=[fd98::11]").unwrap();
        assert_eq!(query.real, "fd98::11".parse::<IpAddr>().unwrap());
        let query = q("module=tcp&target=[fd98::100]:443&real=[fd98::11]:80").unwrap();
        assert_eq!(query.real_port, Some(80));
    }

    #[test]
    fn refuses_malformed_queries() {
        for (query, why) in [
            ("", "no module"),
            ("target=198.18.0.100:80&real=198.18.0.11", "no module"),
            ("module=tcp&real=198.18.0.11", "no target"),
            ("module=tcp&target=198.18.0.100:80", "no real"),
            (
                "module=tcp&target=198.18.0.100&real=198.18.0.11",
                "not VIP:PORT",
            ),
            (
                "module=tcp&target=fd98::100:80&real=fd98::11",
                "not VIP:PORT",
            ),
            (
                "module=tcp&target=example.com:80&real=198.18.0.11",
                "not VIP:PORT",
            ),
            (
                "module=tcp&target=198.18.0.100:80&real=10.0.0.0/8",
                "not an address",
            ),
            (
                "module=tcp&target=198.18.0.100:80&real=fd98::11",
                "one family",
            ),
            (
                "module=TCP&target=198.18.0.100:80&real=198.18.0.11",
                "not a check",
            ),
            (
                "module=&target=198.18.0.100:80&real=198.18.0.11",
                "not a check",
            ),
            (
                "module=tcp&module=http&target=1.2.3.4:80&real=1.2.3.5",
                "twice",
            ),
            (
                "module=tcp&target=1.2.3.4:80&real=1.2.3.5&protocol=sctp",
                "not tcp",
            ),
            ("module=tcp&target=1.2.3.4%3&real=1.2.3.5", "percent escape"),
            (
                "module=tcp&target=1.2.3.4%zz80&real=1.2.3.5",
                "percent escape",
            ),
            ("module=tcp%FF&target=1.2.3.4:80&real=1.2.3.5", "not UTF-8"),
        ] {
            let err = q(query).expect_err(query);
            assert!(err.contains(why), "{query}: {err}");
        }
    }

    #[test]
    fn scrape_timeout_header() {
        assert_eq!(scrape_deadline(None), Ok(None));
        let ms = |ms| Ok(Some(Duration::from_millis(ms)));
        // 10% less, at most 0.5 s less.
        assert_eq!(scrape_deadline(Some("1")), ms(900));
        assert_eq!(scrape_deadline(Some("0.5")), ms(450));
        assert_eq!(scrape_deadline(Some("10")), ms(9500));
        assert_eq!(scrape_deadline(Some(" 2.5 ")), ms(2250));
        for bad in ["", "0", "-1", "NaN", "inf", "1s", "1e99"] {
            assert!(scrape_deadline(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn encodes_a_result() {
        let probed = Probed {
            outcome: Outcome::Unhealthy(Failure::Refused),
            took: Duration::from_micros(1200),
            check: "tcp".into(),
            protocol: "tcp",
            timeout: Duration::from_secs(1),
        };
        let text = probed.encode();
        for line in [
            "# TYPE probe_success gauge",
            "probe_success 0",
            "probe_duration_seconds 0.0012",
            "probe_vipcheck_timeout_seconds 1",
            "probe_vipcheck_failure{code=\"refused\"} 1",
            "probe_vipcheck_info{check=\"tcp\",protocol=\"tcp\",result=\"unhealthy\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
        let healthy = Probed {
            outcome: Outcome::Healthy,
            ..probed
        }
        .encode();
        assert!(healthy.lines().any(|l| l == "probe_success 1"), "{healthy}");
        assert!(!healthy.contains("probe_vipcheck_failure{"), "{healthy}");
    }

    #[test]
    fn at_most_max_probes_in_flight() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (prober, mut rx) = Prober::new();
            let query = q("module=tcp&target=1.2.3.4:80&real=1.2.3.5").unwrap();
            let mut waiting = Vec::new();
            for _ in 0..MAX_PROBES {
                let (prober, query) = (prober.clone(), query.clone());
                waiting.push(tokio::spawn(async move {
                    prober.probe(query, None, None).await
                }));
            }
            let mut held = Vec::new();
            for _ in 0..MAX_PROBES {
                held.push(rx.recv().await.unwrap());
            }
            assert_eq!(
                prober.probe(query.clone(), None, None).await,
                Err(Refused::Busy)
            );
            // One answered: room for one more.
            let first = held.remove(0);
            first.reply.send(Reply::NotFound).unwrap();
            drop(first.permit);
            assert_eq!(waiting.remove(0).await.unwrap(), Err(Refused::NotFound));
            let next = tokio::spawn({
                let (prober, query) = (prober.clone(), query.clone());
                async move {
                    prober
                        .probe(query, None, Some(Duration::from_millis(50)))
                        .await
                }
            });
            let request = rx.recv().await.unwrap();
            // Not answered in time.
            assert_eq!(next.await.unwrap(), Err(Refused::Gone));
            drop(request);
            // The daemon gone: its requests dropped unanswered.
            drop(held);
            for w in waiting {
                assert_eq!(w.await.unwrap(), Err(Refused::Gone));
            }
        });
    }
}
