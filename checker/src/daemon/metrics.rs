//! Prometheus metrics of `vipcheck daemon`, and the small HTTP server that
//! serves them (`GET /metrics`, text format 0.0.4).
//!
//! Per target (labels `vip`, `port`, `protocol`, `real`, `check`): the
//! damped state,
//! the last raw result and the count of state changes. Per check kind
//! only (bounded cardinality whatever the number of targets): durations,
//! results and failure reasons, the reasons a small closed set
//! ([`FAILURE_REASONS`]): the code of the verdict's or the error's
//! [`Failure`], the same as the JSON output's `failure`.
//!
//! Every method takes `&self`: the metric types are atomics behind the
//! registry, so the daemon shares one [`Metrics`] as an `Arc` with
//! [`serve`], without a lock of its own.

use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use checker_common::Counter as XdpCounter;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[cfg(test)]
use crate::check::verdict::{Failure, Verdict};
pub(crate) use crate::daemon::outcome::Outcome;
use crate::daemon::probe::{Prober, Query, Refused, SCRAPE_TIMEOUT_HEADER, scrape_deadline};
#[cfg(test)]
use crate::error::Error;
use crate::probe::AuditTarget;

/// `Content-Type` of [`Metrics::encode`]'s text (Prometheus text format
/// 0.0.4, which Prometheus, curl and every text parser read).
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds of the check duration buckets (seconds): 1 ms to 10 s, the
/// range of a check's timeout.
pub(crate) const DURATION_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Labels of a target's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TargetLabels {
    pub(crate) vip: String,
    pub(crate) port: u16,
    /// The virtual server's: `tcp` or `udp` (a TCP and a UDP service on
    /// one port are two virtual servers).
    pub(crate) protocol: &'static str,
    pub(crate) real: String,
    /// The track label (see track::TrackKey): the kind, `tcp`, `http`,
    /// `https`, `ping`, `udp`, `dns`, `smtp`, and what tells look-alikes
    /// apart.
    pub(crate) check: String,
}

impl TargetLabels {
    /// The labels of a check of a TCP virtual server.
    pub(crate) fn new(vip: IpAddr, port: u16, real: IpAddr, check: &str) -> TargetLabels {
        TargetLabels {
            vip: vip.to_string(),
            port,
            protocol: "tcp",
            real: real.to_string(),
            check: check.to_string(),
        }
    }
}

impl From<&AuditTarget> for TargetLabels {
    fn from(target: &AuditTarget) -> TargetLabels {
        // The virtual server's port; a check of another port says so in
        // its check label (`tcp-port80`, see track::TrackKey).
        TargetLabels {
            protocol: target.vs_protocol.label(),
            ..TargetLabels::new(
                target.vs_vip,
                target.vs_port,
                target.rs_ip,
                target.probe.check.kind(),
            )
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    check: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    check: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    check: String,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct XdpLabels {
    iface: String,
    /// Where the program captures: `xdp` or `tc`.
    hook: &'static str,
    verdict: &'static str,
}

/// The hooks [`XdpLabels::hook`] names.
const HOOKS: [&str; 2] = ["xdp", "tc"];

#[cfg(test)]
/// Every value of the `reason` label: the codes of [`Failure::ALL`]
/// (verdicts: the server failed the check; then errors: the check could
/// not run).
pub(crate) const FAILURE_REASONS: [&str; Failure::ALL.len()] = {
    let mut codes = [""; Failure::ALL.len()];
    let mut i = 0;
    while i < codes.len() {
        codes[i] = Failure::ALL[i].as_str();
        i += 1;
    }
    codes
};

#[cfg(test)]
/// Why a check failed, from its result: the `reason` label, `None` when
/// healthy.
pub(crate) fn failure_reason(result: &Result<Verdict, Error>) -> Option<&'static str> {
    Outcome::of(result).reason()
}

#[cfg(test)]
/// The metric names an encoding holds (counters with `_total`, the
/// version's `_info`): what the man page must document.
pub(crate) fn exposed_names() -> Vec<String> {
    // Every family shows once it has a series.
    let m = Metrics::new();
    let t = TargetLabels::new(
        IpAddr::from([198, 18, 0, 100]),
        80,
        IpAddr::from([198, 18, 0, 11]),
        "tcp",
    );
    m.observe(&t, Outcome::Healthy, Duration::from_millis(3));
    m.observe(&t, Outcome::Error(Failure::Busy), Duration::from_millis(1));
    m.set_state(&t, Some(true));
    m.state_changed(&t);
    m.set_xdp("eth0", "xdp", &[(XdpCounter::Delivered, 1)]);
    m.set_targets(1);
    m.set_overdue(0);
    m.set_last_cycle(Duration::from_millis(1));
    let mut names: Vec<String> = Vec::new();
    for line in m.encode().lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let name = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        if !name.is_empty() && !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    names
}

type DurationFamily = Family<CheckLabels, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The daemon's metrics and their registry.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    target_up: Family<TargetLabels, Gauge>,
    target_check_ok: Family<TargetLabels, Gauge>,
    state_changes: Family<TargetLabels, Counter>,
    duration: DurationFamily,
    checks: Family<ResultLabels, Counter>,
    failures: Family<ReasonLabels, Counter>,
    xdp_frames: Family<XdpLabels, Counter>,
    targets: Gauge,
    overdue: Gauge,
    last_cycle: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::default();
        let target_up = Family::<TargetLabels, Gauge>::default();
        let target_check_ok = Family::<TargetLabels, Gauge>::default();
        let state_changes = Family::<TargetLabels, Counter>::default();
        let duration: DurationFamily = Family::new_with_constructor(duration_histogram);
        let checks = Family::<ResultLabels, Counter>::default();
        let failures = Family::<ReasonLabels, Counter>::default();
        let xdp_frames = Family::<XdpLabels, Counter>::default();
        let targets = Gauge::default();
        let overdue = Gauge::default();
        let last_cycle = Gauge::<f64, AtomicU64>::default();
        // Help texts get their final period from the registry; counters
        // their `_total`.
        registry.register(
            "vipcheck_target_up",
            "Damped state of a target: 1 up, 0 down (absent before its first result)",
            target_up.clone(),
        );
        registry.register(
            "vipcheck_target_check_ok",
            "Last raw result of a target's check: 1 passed, 0 failed or could not run",
            target_check_ok.clone(),
        );
        registry.register(
            "vipcheck_target_state_changes",
            "Changes of a target's damped state (up to down, down to up); 0 from its first result, which sets the state without a change",
            state_changes.clone(),
        );
        registry.register(
            "vipcheck_check_duration_seconds",
            "Duration of the checks that reached a verdict, by kind",
            duration.clone(),
        );
        registry.register(
            "vipcheck_checks",
            "Checks run, by kind and result (healthy, unhealthy, error: could not run)",
            checks.clone(),
        );
        registry.register(
            "vipcheck_check_failures",
            "Checks that failed or could not run, by kind and reason",
            failures.clone(),
        );
        registry.register(
            "vipcheck_xdp_frames",
            "Frames seen by vipcheck's capture program, by interface, hook (xdp, or tc beside another XDP program) and verdict (the program's own cumulative counters; they restart from 0 when it is loaded again)",
            xdp_frames.clone(),
        );
        registry.register("vipcheck_targets", "Targets checked", targets.clone());
        registry.register(
            "vipcheck_targets_overdue",
            "Targets waiting more than one interval past their due time",
            overdue.clone(),
        );
        registry.register(
            "vipcheck_last_cycle_seconds",
            "Time the last cycle took to check every target once",
            last_cycle.clone(),
        );
        registry.register(
            "vipcheck_build",
            "vipcheck's version",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            target_up,
            target_check_ok,
            state_changes,
            duration,
            checks,
            failures,
            xdp_frames,
            targets,
            overdue,
            last_cycle,
        }
    }

    /// Records one check of `target` that took `duration`: its raw result,
    /// its count by result and reason, and (when it reached a verdict) its
    /// duration. An error sets the raw result to 0: the check did not pass.
    pub(crate) fn observe(&self, target: &TargetLabels, outcome: Outcome, duration: Duration) {
        let check = &target.check;
        self.target_check_ok
            .get_or_create(target)
            .set(i64::from(outcome == Outcome::Healthy));
        self.checks
            .get_or_create(&ResultLabels {
                check: check.clone(),
                result: outcome.as_str(),
            })
            .inc();
        if let Some(reason) = outcome.reason() {
            self.failures
                .get_or_create(&ReasonLabels {
                    check: check.clone(),
                    reason,
                })
                .inc();
        }
        if !matches!(outcome, Outcome::Error(_)) {
            self.duration
                .get_or_create(&CheckLabels {
                    check: check.clone(),
                })
                .observe(duration.as_secs_f64());
        }
    }

    /// Sets a target's damped state: `Some(true)` up, `Some(false)` down,
    /// `None` unknown (the series is removed).
    pub(crate) fn set_state(&self, target: &TargetLabels, up: Option<bool>) {
        match up {
            Some(up) => {
                self.target_up.get_or_create(target).set(i64::from(up));
            }
            None => {
                self.target_up.remove(target);
            }
        }
    }

    /// Counts a change of a target's damped state.
    pub(crate) fn state_changed(&self, target: &TargetLabels) {
        self.state_changes.get_or_create(target).inc();
    }

    /// A target's first result set its state: its change count starts at
    /// 0, so a target that never changed still has the series.
    pub(crate) fn state_known(&self, target: &TargetLabels) {
        let _ = self.state_changes.get_or_create(target);
    }

    /// Forgets a target (removed by a reload): its series leave /metrics.
    /// The per-kind counts keep what it contributed.
    pub(crate) fn remove_target(&self, target: &TargetLabels) {
        self.target_up.remove(target);
        self.target_check_ok.remove(target);
        self.state_changes.remove(target);
    }

    /// Mirrors the capture program's counters on `iface`, at `hook` (read
    /// by the daemon each cycle). They are cumulative in the program; a
    /// value lower than the last one means the program was loaded again,
    /// and the series restarts from it, as Prometheus expects of a counter
    /// reset. The series of the other hook (a program at XDP before, at
    /// TC now) go.
    pub(crate) fn set_xdp(&self, iface: &str, hook: &'static str, counters: &[(XdpCounter, u64)]) {
        for other in HOOKS.into_iter().filter(|&h| h != hook) {
            self.remove_hook(iface, other);
        }
        for (counter, value) in counters {
            let labels = XdpLabels {
                iface: iface.to_string(),
                hook,
                verdict: counter.name(),
            };
            let current = self.xdp_frames.get(&labels).map_or(0, |c| c.get());
            if *value < current {
                self.xdp_frames.remove(&labels);
            }
            let series = self.xdp_frames.get_or_create(&labels);
            series.inc_by(value.saturating_sub(series.get()));
        }
    }

    /// Forgets an interface's capture counters (no target uses it any more).
    pub(crate) fn remove_xdp(&self, iface: &str) {
        for hook in HOOKS {
            self.remove_hook(iface, hook);
        }
    }

    fn remove_hook(&self, iface: &str, hook: &'static str) {
        for counter in XdpCounter::ALL {
            self.xdp_frames.remove(&XdpLabels {
                iface: iface.to_string(),
                hook,
                verdict: counter.name(),
            });
        }
    }

    pub(crate) fn set_targets(&self, n: usize) {
        self.targets.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_overdue(&self, n: usize) {
        self.overdue.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn set_last_cycle(&self, took: Duration) {
        self.last_cycle.set(took.as_secs_f64());
    }

    /// Every metric, in the Prometheus text format ([`CONTENT_TYPE`]).
    pub(crate) fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail, nor can encoding these labels.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry);
        text
    }
}

/// Largest request read (head included).
pub(crate) const MAX_REQUEST: usize = 8 * 1024;
/// Time a connection has to send its request and take the response.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// Serves `metrics` on `listener` until the task is dropped: `GET` (or
/// `HEAD`) `/metrics` answers 200 with [`Metrics::encode`], `GET /probe`
/// a check of one target now (through `prober`: see [`super::probe`];
/// 404 without one), any other path 404, any other method 405. One
/// request per connection, each connection in its own task
/// (`tokio::spawn`: runs on the daemon's current-thread runtime, inside or
/// outside its LocalSet), bounded by [`MAX_REQUEST`], [`CONNECTION_TIMEOUT`]
/// (to send the request, and to take the answer) and [`MAX_CONNECTIONS`].
pub(crate) async fn serve(listener: TcpListener, metrics: Arc<Metrics>, prober: Option<Prober>) {
    serve_within(listener, metrics, prober, CONNECTION_TIMEOUT).await;
}

/// [`serve`] with another connection timeout (the tests').
async fn serve_within(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    prober: Option<Prober>,
    timeout: Duration,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            // Never closed.
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors, or a connection aborted before
                // it was accepted: wait a little rather than spin.
                log::warn!("metrics: accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (metrics, prober) = (metrics.clone(), prober.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = connection(stream, &metrics, prober.as_ref(), timeout).await {
                log::debug!("metrics: {e}");
            }
        });
    }
}

/// The head of a request, as far as it matters here.
struct Head {
    method: String,
    /// The request target: path and query.
    target: String,
    /// [`SCRAPE_TIMEOUT_HEADER`]'s value.
    scrape_timeout: Option<String>,
}

/// Reads one request (within `timeout`), answers it, closes.
async fn connection(
    mut stream: TcpStream,
    metrics: &Metrics,
    prober: Option<&Prober>,
    timeout: Duration,
) -> io::Result<()> {
    let head = match tokio::time::timeout(timeout, read_head(&mut stream)).await {
        // Silent too long: closed without an answer.
        Err(_) => return Ok(()),
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(head))) => head,
        Ok(Err(e)) => return Err(e),
    };
    let response = match head {
        Ok(head) => respond(&head, metrics, prober).await,
        Err(response) => response,
    };
    tokio::time::timeout(timeout, async {
        stream.write_all(&response.bytes()).await?;
        stream.shutdown().await
    })
    .await
    .unwrap_or(Ok(()))
}

/// One request's head; `None` when the peer closed before a whole one,
/// an error response when it is not one.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<Result<Head, Response>>> {
    let mut request = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let room = MAX_REQUEST.saturating_sub(request.len()).min(chunk.len());
        if room == 0 {
            return Ok(Some(Err(Response::plain(
                431,
                "Request Header Fields Too Large",
            ))));
        }
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            // Closed before a whole request: nobody to answer.
            return Ok(None);
        }
        request.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&request) {
            Ok(httparse::Status::Complete(_)) => {
                let scrape_timeout = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(SCRAPE_TIMEOUT_HEADER))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                return Ok(Some(Ok(Head {
                    method: parsed.method.unwrap_or("").to_string(),
                    target: parsed.path.unwrap_or("").to_string(),
                    scrape_timeout,
                })));
            }
            Ok(httparse::Status::Partial) => {}
            Err(httparse::Error::TooManyHeaders) => {
                return Ok(Some(Err(Response::plain(
                    431,
                    "Request Header Fields Too Large",
                ))));
            }
            Err(_) => return Ok(Some(Err(Response::plain(400, "Bad Request")))),
        }
    }
}

/// What a request gets.
async fn respond(head: &Head, metrics: &Metrics, prober: Option<&Prober>) -> Response {
    let (path, query) = head
        .target
        .split_once('?')
        .unwrap_or((head.target.as_str(), ""));
    let method = head.method.as_str();
    match (path, prober) {
        ("/metrics", _) => match method {
            "GET" | "HEAD" => Response {
                status: 200,
                reason: "OK",
                content_type: CONTENT_TYPE,
                extra: "",
                body: metrics.encode(),
                head_only: method == "HEAD",
            },
            _ => Response {
                extra: "Allow: GET, HEAD\r\n",
                ..Response::plain(405, "Method Not Allowed")
            },
        },
        ("/probe", Some(prober)) => match method {
            "GET" => probe(prober, query, head.scrape_timeout.as_deref()).await,
            _ => Response {
                extra: "Allow: GET\r\n",
                ..Response::plain(405, "Method Not Allowed")
            },
        },
        _ => Response::plain(404, "Not Found"),
    }
}

/// `GET /probe?QUERY`: 200 with the probe's result, 400 for a malformed
/// query or scrape timeout, 404 when no loaded target matches, 503 when
/// [`super::probe::MAX_PROBES`] are in flight or the daemon is stopping.
async fn probe(prober: &Prober, query: &str, scrape_timeout: Option<&str>) -> Response {
    let parsed = Query::parse(query).and_then(|query| {
        let limit = scrape_deadline(scrape_timeout)?;
        Ok((query, limit))
    });
    let (query, limit) = match parsed {
        Ok(parsed) => parsed,
        Err(why) => return Response::because(400, "Bad Request", &why),
    };
    // The scrape gives up at its timeout: no use waiting longer.
    let wait = scrape_timeout.and_then(|t| t.trim().parse::<f64>().ok());
    let wait = wait.map(|s| Duration::from_secs_f64(s) + Duration::from_millis(100));
    match prober.probe(query, limit, wait).await {
        Ok(probed) => Response {
            status: 200,
            reason: "OK",
            content_type: CONTENT_TYPE,
            extra: "",
            body: probed.encode(),
            head_only: false,
        },
        Err(Refused::NotFound) => Response::because(
            404,
            "Not Found",
            "no target of the loaded configuration has this module, target and real",
        ),
        Err(Refused::Busy) => {
            Response::because(503, "Service Unavailable", "too many probes in flight")
        }
        Err(Refused::Gone) => Response::because(
            503,
            "Service Unavailable",
            "the probe did not end in time, or the daemon is stopping",
        ),
    }
}

/// An HTTP/1.1 response that closes the connection.
struct Response {
    status: u16,
    reason: &'static str,
    content_type: &'static str,
    /// Further header lines, each ending in CRLF.
    extra: &'static str,
    body: String,
    /// HEAD: the head of the GET response, without its body.
    head_only: bool,
}

impl Response {
    /// An error status with its reason as a text body.
    fn plain(status: u16, reason: &'static str) -> Response {
        Response {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            extra: "",
            body: format!("{reason}\n"),
            head_only: false,
        }
    }

    /// An error status with its reason and why as a text body.
    fn because(status: u16, reason: &'static str, why: &str) -> Response {
        Response {
            body: format!("{reason}: {why}\n"),
            ..Response::plain(status, reason)
        }
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
            self.status,
            self.reason,
            self.content_type,
            self.body.len(),
            self.extra
        )
        .into_bytes();
        if !self.head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::verdict::Details;

    fn labels() -> TargetLabels {
        TargetLabels::new(
            "198.18.0.100".parse().unwrap(),
            80,
            "198.18.0.11".parse().unwrap(),
            "tcp",
        )
    }

    const SERIES: &str =
        r#"{vip="198.18.0.100",port="80",protocol="tcp",real="198.18.0.11",check="tcp"}"#;

    fn verdict(failure: Option<Failure>, reason: &str) -> Result<Verdict, Error> {
        Ok(Verdict {
            failure,
            what: "tcp 198.18.0.100:80 via 198.18.0.11".into(),
            reason: reason.into(),
            elapsed: Duration::from_millis(3),
            attached: None,
            details: Details::default(),
        })
    }

    #[test]
    fn encode_after_observations() {
        let m = Metrics::new();
        let t = labels();
        m.observe(&t, Outcome::Healthy, Duration::from_millis(3));
        m.set_state(&t, Some(true));
        m.state_changed(&t);
        m.observe(
            &t,
            Outcome::Unhealthy(Failure::NoAnswer),
            Duration::from_millis(970),
        );
        m.observe(&t, Outcome::Error(Failure::Busy), Duration::from_millis(1));
        m.set_targets(1);
        m.set_overdue(0);
        m.set_last_cycle(Duration::from_millis(1500));
        let text = m.encode();
        for line in [
            format!("vipcheck_target_up{SERIES} 1"),
            format!("vipcheck_target_check_ok{SERIES} 0"),
            format!("vipcheck_target_state_changes_total{SERIES} 1"),
            "# TYPE vipcheck_target_state_changes_total counter".into(),
            r#"vipcheck_checks_total{check="tcp",result="healthy"} 1"#.into(),
            r#"vipcheck_checks_total{check="tcp",result="unhealthy"} 1"#.into(),
            r#"vipcheck_checks_total{check="tcp",result="error"} 1"#.into(),
            r#"vipcheck_check_failures_total{check="tcp",reason="no_answer"} 1"#.into(),
            r#"vipcheck_check_failures_total{check="tcp",reason="busy"} 1"#.into(),
            "# TYPE vipcheck_check_duration_seconds histogram".into(),
            r#"vipcheck_check_duration_seconds_bucket{check="tcp",le="0.001"} 0"#.into(),
            r#"vipcheck_check_duration_seconds_bucket{check="tcp",le="0.005"} 1"#.into(),
            r#"vipcheck_check_duration_seconds_bucket{check="tcp",le="1"} 2"#.into(),
            r#"vipcheck_check_duration_seconds_bucket{check="tcp",le="+Inf"} 2"#.into(),
            r#"vipcheck_check_duration_seconds_count{check="tcp"} 2"#.into(),
            "vipcheck_targets 1".into(),
            "vipcheck_targets_overdue 0".into(),
            "vipcheck_last_cycle_seconds 1.5".into(),
            format!(
                r#"vipcheck_build_info{{version="{}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "no line {line:?} in\n{text}"
            );
        }
        // Text format 0.0.4: no OpenMetrics end marker.
        assert!(!text.contains("# EOF"));
    }

    #[test]
    fn state_and_removal() {
        let m = Metrics::new();
        let t = labels();
        m.set_state(&t, Some(false));
        assert!(
            m.encode()
                .contains(&format!("vipcheck_target_up{SERIES} 0"))
        );
        // Unknown again: absent.
        m.set_state(&t, None);
        assert!(!m.encode().contains("vipcheck_target_up{"));
        m.set_state(&t, Some(true));
        m.state_changed(&t);
        m.observe(&t, Outcome::Healthy, Duration::from_millis(1));
        m.remove_target(&t);
        let text = m.encode();
        assert!(!text.contains(SERIES), "{text}");
        // What it contributed to the per-kind counts stays.
        assert!(text.contains(r#"vipcheck_checks_total{check="tcp",result="healthy"} 1"#));
    }

    #[test]
    fn xdp_counters_are_mirrored() {
        let m = Metrics::new();
        let line = |hook: &str, v: u64| {
            format!(
                r#"vipcheck_xdp_frames_total{{iface="eth0",hook="{hook}",verdict="drop_delivered"}} {v}"#
            )
        };
        m.set_xdp(
            "eth0",
            "xdp",
            &[(XdpCounter::Delivered, 10), (XdpCounter::PassMiss, 3)],
        );
        assert!(m.encode().contains(&line("xdp", 10)));
        m.set_xdp("eth0", "xdp", &[(XdpCounter::Delivered, 25)]);
        assert!(m.encode().contains(&line("xdp", 25)));
        // Reloaded program: starts again from its value.
        m.set_xdp("eth0", "xdp", &[(XdpCounter::Delivered, 4)]);
        let text = m.encode();
        assert!(text.contains(&line("xdp", 4)), "{text}");
        assert!(text.contains(
            r#"vipcheck_xdp_frames_total{iface="eth0",hook="xdp",verdict="pass_miss"} 3"#
        ));
        // Now at TC: the XDP series go.
        m.set_xdp("eth0", "tc", &[(XdpCounter::Delivered, 1)]);
        let text = m.encode();
        assert!(text.contains(&line("tc", 1)), "{text}");
        assert!(!text.contains(r#"hook="xdp""#), "{text}");
        m.remove_xdp("eth0");
        assert!(!m.encode().contains("iface=\"eth0\""));
    }

    #[test]
    fn failure_reasons() {
        assert_eq!(failure_reason(&verdict(None, "SYN-ACK")), None);
        assert_eq!(
            Outcome::of(&verdict(Some(Failure::Refused), "connection refused (RST)")),
            Outcome::Unhealthy(Failure::Refused)
        );
        let errors = [
            (Error::Busy("all 256 slots busy".into()), "busy"),
            (Error::bpf_found("load failed"), "xdp"),
            (Error::NoInterface("eth9".into()), "interface"),
            (
                Error::Interface("eth0 is down (sending)".into()),
                "interface",
            ),
            (Error::Interrupted("SIGTERM"), "interrupted"),
            (Error::Usage("bad".into()), "error"),
            (Error::io("socket", io::Error::other("x")), "error"),
        ];
        for (e, want) in errors {
            assert_eq!(failure_reason(&Err(e)), Some(want));
        }
        // The label set is the enum's codes, nothing else.
        assert_eq!(FAILURE_REASONS.len(), Failure::ALL.len());
        for (label, failure) in FAILURE_REASONS.iter().zip(Failure::ALL) {
            assert_eq!(*label, failure.as_str());
        }
        assert_eq!(
            Outcome::of(&verdict(Some(Failure::Refused), "connection refused (RST)")).to_string(),
            "unhealthy (refused)"
        );
    }

    /// Sends `request` to the server on `addr`, returns the whole answer.
    async fn fetch(addr: std::net::SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request).await.unwrap();
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        String::from_utf8(answer).unwrap()
    }

    #[test]
    fn serves_metrics_over_http() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let metrics = Arc::new(Metrics::new());
            metrics.set_targets(7);
            let server = tokio::spawn(serve(listener, metrics.clone(), None));

            let answer = fetch(
                addr,
                b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
            )
            .await;
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(head.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
            assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
            assert!(body.lines().any(|l| l == "vipcheck_targets 7"), "{body}");

            // HEAD: the same head, no body.
            let answer = fetch(addr, b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
            assert!(answer.ends_with("\r\n\r\n"));

            let answer = fetch(addr, b"GET / HTTP/1.1\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
            let answer = fetch(addr, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
            assert!(answer.contains("\r\nAllow: GET, HEAD\r\n"));
            let answer = fetch(addr, b"\x16\x03\x01 not http\r\n\r\n").await;
            assert!(
                answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                "{answer}"
            );

            // A head past 8 KiB is refused, not buffered on.
            let mut big = b"GET /metrics HTTP/1.1\r\n".to_vec();
            while big.len() <= MAX_REQUEST {
                big.extend_from_slice(
                    b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n",
                );
            }
            let mut stream = TcpStream::connect(addr).await.unwrap();
            // The server may close before taking it all.
            let _ = stream.write_all(&big).await;
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            let answer = String::from_utf8_lossy(&answer);
            assert!(answer.starts_with("HTTP/1.1 431 "), "{answer}");

            // Still serving after all that.
            let answer = fetch(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"));
            server.abort();
        });
    }

    #[test]
    fn serves_probes_over_http() {
        use crate::daemon::probe::{Probed, Reply};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (prober, mut requests) = Prober::new();
            let server = tokio::spawn(serve(listener, Arc::new(Metrics::new()), Some(prober)));
            // The daemon's side: real 198.18.0.11 is a target, refused.
            let (seen, mut limits) = tokio::sync::mpsc::unbounded_channel();
            let daemon = tokio::spawn(async move {
                while let Some(request) = requests.recv().await {
                    let _ = seen.send(request.limit);
                    let reply = if request.query.real.to_string() == "198.18.0.11" {
                        Reply::Done(Probed {
                            outcome: Outcome::Unhealthy(Failure::Refused),
                            took: Duration::from_millis(2),
                            check: "tcp".into(),
                            protocol: "tcp",
                            timeout: request.limit.unwrap_or(Duration::from_secs(1)),
                        })
                    } else {
                        Reply::NotFound
                    };
                    let _ = request.reply.send(reply);
                }
            });
            let answer = fetch(
                addr,
                b"GET /probe?module=tcp&target=198.18.0.100%3A80&real=198.18.0.11 HTTP/1.1\r\n\
                  X-Prometheus-Scrape-Timeout-Seconds: 2\r\n\r\n",
            )
            .await;
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
            assert!(head.contains(&format!("Content-Type: {CONTENT_TYPE}\r\n")));
            assert!(body.lines().any(|l| l == "probe_success 0"), "{body}");
            assert!(body.contains("probe_vipcheck_failure{code=\"refused\"} 1"));
            assert_eq!(limits.recv().await, Some(Some(Duration::from_millis(1800))));

            let answer = fetch(
                addr,
                b"GET /probe?module=tcp&target=198.18.0.100:80&real=198.18.0.12 HTTP/1.1\r\n\r\n",
            )
            .await;
            assert!(answer.starts_with("HTTP/1.1 404 Not Found\r\n"), "{answer}");
            assert_eq!(limits.recv().await, Some(None));
            // Malformed: never reaches the daemon.
            for request in [
                &b"GET /probe?module=tcp&target=198.18.0.100&real=198.18.0.12 HTTP/1.1\r\n\r\n"[..],
                b"GET /probe?module=tcp&target=198.18.0.100:80&real=198.18.0.11 HTTP/1.1\r\n\
                  X-Prometheus-Scrape-Timeout-Seconds: -1\r\n\r\n",
            ] {
                let answer = fetch(addr, request).await;
                assert!(
                    answer.starts_with("HTTP/1.1 400 Bad Request\r\n"),
                    "{answer}"
                );
            }
            let answer = fetch(addr, b"HEAD /probe?module=tcp HTTP/1.1\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 405 "), "{answer}");
            assert!(answer.contains("\r\nAllow: GET\r\n"), "{answer}");
            assert!(
                limits.try_recv().is_err(),
                "a malformed probe reached the daemon"
            );
            server.abort();
            daemon.abort();

            // Without a prober (the tests'), /probe is not served.
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(serve(listener, Arc::new(Metrics::new()), None));
            let answer = fetch(addr, b"GET /probe?module=tcp HTTP/1.1\r\n\r\n").await;
            assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
            server.abort();
        });
    }

    #[test]
    fn a_silent_connection_is_closed() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let timeout = Duration::from_millis(200);
            let server = tokio::spawn(serve_within(
                listener,
                Arc::new(Metrics::new()),
                None,
                timeout,
            ));
            let mut stream = TcpStream::connect(addr).await.unwrap();
            // Half a request, then nothing: closed after the timeout,
            // without an answer.
            stream.write_all(b"GET /metr").await.unwrap();
            let started = std::time::Instant::now();
            let mut answer = Vec::new();
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
            assert!(matches!(read, Ok(Ok(0))), "{read:?}");
            assert!(started.elapsed() >= Duration::from_millis(150));
            server.abort();
        });
    }
}
