//! `vipcheck daemon`: every target of a keepalived.conf or a targets file
//! checked every interval on one [`Engine`], damped by rise/fall, exposed
//! as Prometheus metrics and keepalived track files.
//!
//! One thread: the loop starts the checks that are due ([`Schedule`]),
//! each a task on the engine; their results come back on a channel and
//! move the target's [`Health`], its metrics and its track file. SIGHUP
//! reloads the input (unchanged targets keep their state); SIGTERM or
//! SIGINT end every flow at its next wait and the loop within 1 s.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::schedule::Schedule;
use super::state::{Health, State};
use crate::check::dispatch::{self as audit, AuditOptions, TlsConfigs};
use crate::check::verdict::Verdict;
use crate::config::{Input, Loaded};
use crate::daemon::metrics::{Metrics, Outcome, TargetLabels};
use crate::daemon::probe::{self, Probed, Prober, Reply};
use crate::daemon::track::{self, TrackDir, TrackKey};
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::note;
use crate::probe::AuditTarget;
use crate::probe::args::CaptureArgs;

/// How long the running checks have to end after SIGTERM.
const STOP_GRACE: Duration = Duration::from_millis(600);
/// How often the daemon's own gauges (targets, overdue, XDP counters) are
/// brought up to date.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub(crate) struct DaemonOptions {
    pub(crate) input: Input,
    /// Serve /metrics here.
    pub(crate) metrics: Option<SocketAddr>,
    /// Write one keepalived track file per target here.
    pub(crate) track_dir: Option<PathBuf>,
    /// Successes in a row that bring a down target up.
    pub(crate) rise: u32,
    /// Failures in a row that take an up target down, unless the input
    /// gives `retry` (then retry + 1, as keepalived counts).
    pub(crate) fall: u32,
    /// Checks at once.
    pub(crate) parallel: usize,
    /// Interval of targets whose input gives none.
    pub(crate) interval: Duration,
    /// HTTPS: trust this CA instead of the system's roots, or verify nothing.
    pub(crate) tls: AuditOptions,
    /// Where the checks capture, for every target (`--capture`).
    pub(crate) capture: CaptureArgs,
}

/// One target as the daemon follows it.
struct Tracked {
    target: AuditTarget,
    health: Health,
    labels: TargetLabels,
    track: TrackKey,
    /// The last verdict's reason, for the log line of a state change.
    last_reason: String,
}

/// What a finished check sends back to the loop.
struct Done {
    id: u64,
    result: std::result::Result<Verdict, Error>,
    took: Duration,
}

struct Daemon {
    options: DaemonOptions,
    targets: HashMap<u64, Tracked>,
    /// A target's [`AuditTarget::identity`] → its id.
    ids: HashMap<AuditTarget, u64>,
    next_id: u64,
    schedule: Schedule<u64>,
    metrics: Arc<Metrics>,
    track: Option<TrackDir>,
    /// The interfaces whose XDP counters the metrics show.
    xdp_ifaces: HashSet<String>,
    /// Targets not yet checked in the current cycle, and when it began.
    cycle: (HashSet<u64>, Instant),
    /// `GET /probe`'s requests (with `--metrics`); the loop takes it.
    probes: Option<tokio::sync::mpsc::UnboundedReceiver<probe::Request>>,
    /// Why the daemon cannot check at all (missing privilege): it stops
    /// with exit 3 rather than report every target down, which through
    /// the track files would take every real server out.
    fatal: Option<String>,
}

/// Runs the daemon until SIGTERM or SIGINT; its exit status.
pub(crate) fn run(options: DaemonOptions) -> Result<i32> {
    let mut loaded = options
        .input
        .load_checkable()
        .map_err(|e| Error::Usage(e.to_string()))?;
    options.capture.apply(&mut loaded.targets);
    let tls = TlsConfigs::new(&options.tls);
    tls.prepare(&loaded.targets)?;
    let track = match &options.track_dir {
        Some(dir) => Some(TrackDir::new(dir).map_err(|e| {
            Error::io(format!("creating the track directory {}", dir.display()), e)
        })?),
        None => None,
    };
    // Bound before anything runs: a taken address is a clear error at once.
    let listener = match options.metrics {
        Some(addr) => Some(bind(addr)?),
        None => None,
    };
    engine::block_on(async |engine| {
        let metrics = Arc::new(Metrics::new());
        let mut probes = None;
        if let Some(listener) = listener {
            let listener = tokio::net::TcpListener::from_std(listener)
                .map_err(|e| Error::io("serving the metrics", e))?;
            let (prober, requests) = Prober::new();
            probes = Some(requests);
            tokio::task::spawn_local(crate::daemon::metrics::serve(
                listener,
                metrics.clone(),
                Some(prober),
            ));
        }
        let mut daemon = Daemon {
            schedule: Schedule::new(options.parallel.max(1), seed()),
            options: options.clone(),
            targets: HashMap::new(),
            ids: HashMap::new(),
            next_id: 0,
            metrics,
            track,
            xdp_ifaces: HashSet::new(),
            cycle: (HashSet::new(), Instant::now()),
            probes,
            fatal: None,
        };
        daemon.apply(loaded, Instant::now());
        daemon.serve(&engine, tls).await
    })
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| Error::io(format!("listening on {addr} for --metrics"), e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io("serving the metrics", e))?;
    Ok(listener)
}

impl Daemon {
    async fn serve(&mut self, engine: &Rc<Engine>, tls: Rc<TlsConfigs>) -> Result<i32> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Done>();
        let hangup = crate::sys::signals::Signals::catch(&[libc::SIGHUP])
            .map_err(|e| Error::io("catching SIGHUP", e))?;
        let mut housekeeping = tokio::time::interval(HOUSEKEEPING);
        let mut probes = self.probes.take();
        // The probes running: reaped as they end, awaited at the end (their
        // flows' entries go with them, as the scheduled checks').
        let mut probing = tokio::task::JoinSet::new();
        note!(
            "vipcheck daemon: checking {} targets ({} at once){}{}",
            self.targets.len(),
            self.schedule.limit(),
            match &self.options.metrics {
                Some(addr) => format!(", metrics on http://{addr}/metrics"),
                None => String::new(),
            },
            match &self.track {
                Some(dir) => format!(", track files in {}", dir.dir().display()),
                None => String::new(),
            }
        );
        loop {
            for id in self.schedule.start_due(Instant::now()) {
                let Some(tracked) = self.targets.get(&id) else {
                    continue;
                };
                let (target, engine, tx, tls) = (
                    tracked.target.clone(),
                    engine.clone(),
                    tx.clone(),
                    tls.clone(),
                );
                tokio::task::spawn_local(async move {
                    let begun = Instant::now();
                    let (_, result) =
                        audit::run(&engine, &target.probe, &tls, Some(&target.origin)).await;
                    let _ = tx.send(Done {
                        id,
                        result,
                        took: begun.elapsed(),
                    });
                });
            }
            let wake = self
                .schedule
                .next_wake()
                .unwrap_or_else(|| Instant::now() + HOUSEKEEPING);
            tokio::select! {
                done = rx.recv() => if let Some(done) = done {
                    self.finished(done, Instant::now());
                    if self.fatal.is_some() {
                        engine.stop.raise("a missing privilege");
                        break;
                    }
                },
                () = tokio::time::sleep_until(wake.into()) => {}
                _ = hangup.recv() => self.reload(&tls, Instant::now()),
                Some(request) = next_probe(&mut probes) => {
                    self.probe(request, engine, &tls, &mut probing);
                }
                Some(_) = probing.join_next(), if !probing.is_empty() => {}
                _ = housekeeping.tick() => self.housekeeping(engine, Instant::now()),
                _ = engine.stop.stopped() => break,
            }
        }
        // Every flow ends at its next wait; collect them (their entries go
        // with them), for a bounded time.
        let grace = Instant::now() + STOP_GRACE;
        while self.schedule.running() > 0 {
            tokio::select! {
                done = rx.recv() => match done {
                    Some(done) => { self.schedule.finish(&done.id, Instant::now()); }
                    None => break,
                },
                () = tokio::time::sleep_until(grace.into()) => break,
            }
        }
        let _ = tokio::time::timeout_at(grace.into(), async {
            while probing.join_next().await.is_some() {}
        })
        .await;
        if let Some(why) = &self.fatal {
            note!(
                "vipcheck daemon: cannot check here: {why}; stopping rather than report every target down"
            );
            return Ok(crate::exit::EXIT_CANNOT_RUN);
        }
        note!(
            "vipcheck daemon: stopped by {}",
            engine.stop.raised().unwrap_or("a signal")
        );
        Ok(0)
    }

    /// A check's result: the target's state, metrics and track file.
    fn finished(&mut self, done: Done, now: Instant) {
        if !self.schedule.finish(&done.id, now) {
            return; // removed by a reload while it ran
        }
        if let Err(e @ Error::Privilege { .. }) = &done.result {
            self.fatal = Some(e.to_string());
            return;
        }
        let Some(tracked) = self.targets.get_mut(&done.id) else {
            return;
        };
        let healthy = matches!(&done.result, Ok(v) if v.healthy());
        tracked.last_reason = match &done.result {
            Ok(v) => v.reason.clone(),
            Err(e) => e.to_string(),
        };
        self.metrics
            .observe(&tracked.labels, Outcome::of(&done.result), done.took);
        if let Some(change) = tracked.health.observe(healthy) {
            let up = tracked.health.state() == State::Up;
            self.metrics.set_state(&tracked.labels, Some(up));
            if change.from == State::Unknown {
                self.metrics.state_known(&tracked.labels);
            } else {
                self.metrics.state_changed(&tracked.labels);
            }
            let target = &tracked.target;
            note!(
                "vipcheck daemon: {} via {}:{} ({}{}) is {}{}: {} ({})",
                target.rs_ip,
                target.vs_vip,
                target.vs_port,
                tracked.labels.check,
                checking_elsewhere(target),
                change.to,
                match change.from {
                    State::Unknown => " (first check)".to_string(),
                    _ if up => format!(" after {} successes", tracked.health.rise()),
                    _ => format!(" after {} failures", tracked.health.fall()),
                },
                tracked.last_reason,
                tracked.target.origin
            );
            if let Some(track) = &mut self.track {
                let name = tracked.track.file_name();
                if let Err(e) = track.set(&name, up) {
                    note!("vipcheck daemon: cannot write the track file {name}: {e}");
                }
            }
        }
        let (pending, started) = &mut self.cycle;
        pending.remove(&done.id);
        if pending.is_empty() {
            self.metrics.set_last_cycle(now.duration_since(*started));
            *pending = self.targets.keys().copied().collect();
            *started = now;
        }
    }

    /// `GET /probe`: checks the loaded target the query names now, as a
    /// task beside the scheduled checks on the same engine, within the
    /// scrape timeout's deadline when shorter than the target's. Its
    /// result goes to the request only: the target's state, metrics and
    /// schedule stay as they are. No target: nothing is sent.
    fn probe(
        &self,
        request: probe::Request,
        engine: &Rc<Engine>,
        tls: &Rc<TlsConfigs>,
        probing: &mut tokio::task::JoinSet<()>,
    ) {
        let Some(tracked) = self.probed(&request.query) else {
            let _ = request.reply.send(Reply::NotFound);
            return;
        };
        let mut target = tracked.target.clone();
        if let Some(limit) = request.limit {
            let probe = &mut target.probe;
            probe.timeout = probe.timeout.min(limit);
            probe.reply_timeout = probe.reply_timeout.map(|t| t.min(limit));
        }
        let (check, protocol) = (tracked.labels.check.clone(), tracked.labels.protocol);
        let (engine, tls) = (engine.clone(), tls.clone());
        probing.spawn_local(async move {
            let _permit = request.permit;
            let begun = Instant::now();
            let (_, result) = audit::run(&engine, &target.probe, &tls, Some(&target.origin)).await;
            let _ = request.reply.send(Reply::Done(Probed {
                outcome: Outcome::of(&result),
                took: begun.elapsed(),
                check,
                protocol,
                timeout: target.probe.timeout,
            }));
        });
    }

    /// The loaded target a probe names: its virtual server, real server
    /// (and port, protocol when given), and either its whole check label
    /// (`http-healthz`) or its kind (`http`: the first such in file order).
    fn probed(&self, query: &probe::Query) -> Option<&Tracked> {
        let mut candidates: Vec<(u64, &Tracked)> = self
            .targets
            .iter()
            .filter(|(_, t)| {
                let target = &t.target;
                (target.vs_vip, target.vs_port) == (query.target.ip(), query.target.port())
                    && target.rs_ip == query.real
                    && query.real_port.is_none_or(|port| port == target.rs_port)
                    && query.protocol.is_none_or(|p| p == target.vs_protocol)
            })
            .map(|(id, t)| (*id, t))
            .collect();
        candidates.sort_by_key(|(id, _)| *id);
        let by_label = candidates
            .iter()
            .find(|(_, t)| t.labels.check == query.module);
        by_label
            .or_else(|| {
                candidates
                    .iter()
                    .find(|(_, t)| t.target.probe.check.kind() == query.module)
            })
            .map(|(_, t)| *t)
    }

    /// The daemon's own gauges, and the XDP program's counters. The ports
    /// of interfaces that went away (or whose XDP program was detached)
    /// are closed, and the next check through them opens them again: each
    /// such event is a line of the log ("eth0 is gone: ...", "eth0 is back
    /// (index 7, was 3): XDP program attached again ...").
    fn housekeeping(&mut self, engine: &Engine, now: Instant) {
        for event in engine.port_events() {
            note!("vipcheck daemon: {event}");
        }
        self.metrics.set_targets(self.targets.len());
        self.metrics.set_overdue(self.schedule.overdue(now));
        let mut shown = HashSet::new();
        for port in engine.ports() {
            if let (Some(counters), Some(hook)) = (port.counters(), port.hook()) {
                self.metrics
                    .set_xdp(&port.dev.name, hook.short(), &counters);
                shown.insert(port.dev.name.clone());
            }
        }
        // An interface gone (its port closed) or no longer captured on:
        // its series go too, rather than stay at their last values.
        for gone in self.xdp_ifaces.difference(&shown) {
            self.metrics.remove_xdp(gone);
        }
        self.xdp_ifaces = shown;
    }

    /// SIGHUP: the input again. A target whose [`AuditTarget::identity`] is unchanged
    /// keeps its state, schedule, metrics and track file whatever else
    /// changed (timeouts, interval, retry: taken from its next check on);
    /// a file that no longer loads changes nothing.
    /// A CA file of the new input that cannot be read fails the reload
    /// too (rather than every check of its targets).
    fn reload(&mut self, tls: &TlsConfigs, now: Instant) {
        let loaded = self
            .options
            .input
            .load_checkable()
            .map_err(|e| e.to_string())
            .and_then(|mut loaded| {
                self.options.capture.apply(&mut loaded.targets);
                tls.prepare(&loaded.targets).map_err(|e| e.to_string())?;
                Ok(loaded)
            });
        match loaded {
            Ok(loaded) => self.apply(loaded, now),
            Err(e) => {
                note!("vipcheck daemon: reload failed, still checking the previous targets: {e}");
            }
        }
    }

    /// Makes the followed targets those of `loaded`.
    fn apply(&mut self, loaded: Loaded, now: Instant) {
        // In input order (the first of two targets of one identity counts),
        // so that the labels given to look-alike targets (`http`,
        // `http-healthz`) follow the file as `vipcheck keepalived snippet`
        // prints them.
        let mut seen = HashSet::new();
        let wanted: Vec<(AuditTarget, AuditTarget)> = loaded
            .targets
            .into_iter()
            .filter_map(|target| {
                let identity = target.identity();
                seen.insert(identity.clone()).then_some((identity, target))
            })
            .collect();
        let gone: Vec<(AuditTarget, u64)> = self
            .ids
            .iter()
            .filter(|(identity, _)| !seen.contains(*identity))
            .map(|(identity, id)| (identity.clone(), *id))
            .collect();
        for (identity, id) in &gone {
            self.ids.remove(identity);
            self.schedule.remove(id);
            self.cycle.0.remove(id);
            if let Some(tracked) = self.targets.remove(id) {
                self.metrics.remove_target(&tracked.labels);
                if let Some(track) = &mut self.track {
                    let _ = track.remove(&tracked.track.file_name());
                }
            }
        }
        let mut added = 0;
        let mut taken: HashSet<String> =
            self.targets.values().map(|t| t.track.file_name()).collect();
        for (identity, target) in wanted {
            let fall = target
                .retry
                .map_or(self.options.fall, |r| r.saturating_add(1));
            let interval = target.interval.unwrap_or(self.options.interval);
            if let Some(id) = self.ids.get(&identity) {
                // The same check: its state, track file and metrics stay;
                // the rest of its settings are the file's now.
                if let Some(tracked) = self.targets.get_mut(id) {
                    if tracked.target.interval.unwrap_or(self.options.interval) != interval {
                        self.schedule.add(*id, interval, now);
                    }
                    tracked.health.set_thresholds(self.options.rise, fall);
                    tracked.target = target;
                }
                continue;
            }
            let id = self.next_id;
            self.next_id += 1;
            let track = track::distinct(TrackKey::from(&target), &target, &mut taken);
            let mut labels = TargetLabels::from(&target);
            labels.check = track.check.clone();
            self.schedule.add(id, interval, now);
            self.ids.insert(identity, id);
            self.targets.insert(
                id,
                Tracked {
                    health: Health::new(self.options.rise, fall),
                    labels,
                    track,
                    target,
                    last_reason: String::new(),
                },
            );
            added += 1;
        }
        for skipped in &loaded.skipped {
            note!(
                "vipcheck daemon: skipped: {}: {}: {}",
                skipped.origin,
                skipped.what,
                skipped.reason
            );
        }
        if !gone.is_empty() || self.next_id != added {
            note!(
                "vipcheck daemon: reloaded: {} targets ({added} added, {} removed)",
                self.targets.len(),
                gone.len()
            );
        }
        self.metrics.set_targets(self.targets.len());
    }
}

/// What a log line adds when the check connects elsewhere than the
/// virtual and real server it stands for: `, checking port 80` (a
/// `connect_port`), `, checking 10.0.0.5 via 10.0.0.200:80` (a MISC_CHECK's
/// command line).
fn checking_elsewhere(target: &AuditTarget) -> String {
    let (vs_vip, vs_port, rs_ip) = (target.vs_vip, target.vs_port, target.rs_ip);
    let target = &target.probe;
    if (target.real_server, target.vip) != (rs_ip, vs_vip) {
        format!(
            ", checking {} via {}",
            target.real_server,
            std::net::SocketAddr::new(target.vip, target.port)
        )
    } else if target.port != vs_port {
        format!(", checking port {}", target.port)
    } else {
        String::new()
    }
}

/// The next `/probe` request; never, without a metrics listener.
async fn next_probe(
    probes: &mut Option<tokio::sync::mpsc::UnboundedReceiver<probe::Request>>,
) -> Option<probe::Request> {
    match probes {
        Some(probes) => probes.recv().await,
        None => std::future::pending().await,
    }
}

/// The schedule's jitter differs from one daemon to the next.
fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
}
