//! `vipcheck audit`: every target of a targets file or a keepalived.conf
//! ([`crate::config`]) checked once through the VIP path, from one
//! process, a bounded number at a time; what the input holds that cannot
//! be checked is listed with the reason.
//!
//! Each target runs through [`dispatch::run`], as every check does, on
//! one [`Engine`](crate::engine::Engine): one thread, one capture
//! slot and one AF_PACKET socket per interface, one neighbour cache.

use std::rc::Rc;

use crate::check::dispatch::{self, AuditOptions, TlsConfigs, host_of};
use crate::check::verdict::Verdict;
use crate::config;
use crate::engine;
use crate::error::{Error, Result};
use crate::probe::{AuditTarget, CheckSpec, Protocol, Subject};

/// The outcome of one target: its verdict, or why it could not run.
pub(crate) struct Outcome {
    pub(crate) target: AuditTarget,
    pub(crate) subject: Subject,
    pub(crate) result: std::result::Result<Verdict, Error>,
}

/// Checks every target once; the outcomes in the targets' order.
pub(crate) fn run(targets: Vec<AuditTarget>, options: &AuditOptions) -> Result<Vec<Outcome>> {
    let tls = TlsConfigs::new(options);
    tls.prepare(&targets)?;
    let parallel = options.parallel.max(1);
    engine::block_on(async |engine| {
        let permits = Rc::new(tokio::sync::Semaphore::new(parallel));
        let handles: Vec<_> = targets
            .into_iter()
            .map(|target| {
                let (engine, permits, tls) = (engine.clone(), permits.clone(), tls.clone());
                tokio::task::spawn_local(async move {
                    let _permit = permits.acquire().await;
                    let (subject, result) =
                        dispatch::run(&engine, &target.probe, &tls, Some(&target.origin)).await;
                    Outcome {
                        target,
                        subject,
                        result,
                    }
                })
            })
            .collect();
        let mut outcomes = Vec::with_capacity(handles.len());
        for handle in handles {
            if let Ok(outcome) = handle.await {
                outcomes.push(outcome);
            }
        }
        Ok(outcomes)
    })
}

/// What an HTTP(S) check requests: the Host it sends (the given one, else
/// the real server's address, as keepalived) and the path.
fn request(target: &AuditTarget) -> Option<(String, &str)> {
    let spec = target.probe.check.http()?;
    Some((host_of(spec, target.probe.real_server), spec.path.as_str()))
}

/// What a check asks, for REQUEST: HOST/PATH of an HTTP(S) check, the
/// type and name of a DNS query, the HELO name of SMTP, `-` for the
/// others.
fn request_text(target: &AuditTarget) -> String {
    if let Some((host, path)) = request(target) {
        return format!("{host}{path}");
    }
    match &target.probe.check {
        CheckSpec::Dns(dns) => format!("{} {}", dns.rtype, dns.name),
        CheckSpec::Smtp(smtp) => format!("HELO {}", smtp.helo),
        _ => "-".to_string(),
    }
}

/// The text table of an audit: one line per target, then the skipped.
/// REQUEST tells the checks of one real server apart ([`request_text`]);
/// VIP:PORT ends in `/udp` for a check of a UDP virtual server (a TCP one
/// may share its address and port).
pub(crate) fn table(outcomes: &[Outcome], skipped: &[config::Skipped]) -> String {
    let mut out = format!(
        "{:<26} {:<32} {:<5} {:<24} {:<9} {:>9}  {}\n",
        "REAL_SERVER", "VIP:PORT", "CHECK", "REQUEST", "VERDICT", "TIME", "REASON"
    );
    for o in outcomes {
        let mut vip_port =
            std::net::SocketAddr::new(o.target.probe.vip, o.target.probe.port).to_string();
        if o.target.vs_protocol == Protocol::Udp {
            vip_port += "/udp";
        }
        let (verdict, time, reason) = match &o.result {
            Ok(v) => (
                if v.healthy() { "healthy" } else { "unhealthy" },
                format!("{:.1} ms", v.elapsed.as_secs_f64() * 1000.0),
                v.reason.clone(),
            ),
            Err(e) => ("error", String::from("-"), e.to_string()),
        };
        let request = request_text(&o.target);
        out += &format!(
            "{:<26} {:<32} {:<5} {:<24} {:<9} {:>9}  {reason} ({})\n",
            o.target.probe.real_server.to_string(),
            vip_port,
            o.target.probe.check.kind(),
            request,
            verdict,
            time,
            o.target.origin
        );
    }
    for s in skipped {
        out += &format!("skipped: {}: {}: {}\n", s.origin, s.what, s.reason);
    }
    out
}

/// JSON Lines: each target's object as `--format json` prints it, with
/// its `origin`; then one `{"skipped": ...}` object per skipped construct.
pub(crate) fn json_lines(outcomes: &[Outcome], skipped: &[config::Skipped]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let kind = o.target.probe.check.kind();
        let line = match &o.result {
            Ok(v) => {
                crate::front::output::verdict(
                    v,
                    &o.subject,
                    kind,
                    crate::probe::args::Format::Json,
                    Default::default(),
                )
                .0
            }
            Err(e) => {
                crate::front::output::failed(
                    e,
                    Some(&o.subject),
                    kind,
                    crate::probe::args::Format::Json,
                )
                .0
            }
        };
        let mut value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        value["origin"] = serde_json::Value::from(o.target.origin.clone());
        if let Some((host, path)) = request(&o.target) {
            value["request"] = serde_json::json!({ "host": host, "path": path });
        }
        out += &value.to_string();
        out.push('\n');
    }
    for s in skipped {
        let value = serde_json::json!({
            "skipped": { "origin": s.origin, "what": s.what, "reason": s.reason }
        });
        out += &value.to_string();
        out.push('\n');
    }
    out
}

/// `--format nagios`: one monitoring-plugins line for the whole audit
/// (the counts, the first failures, perfdata) and the worst state as the
/// exit status: CRITICAL (a real server failed) over WARNING (only a
/// certificate's near expiry) over UNKNOWN (a check could not run) over OK.
pub(crate) fn nagios_summary(outcomes: &[Outcome], skipped: &[config::Skipped]) -> (String, i32) {
    use crate::exit::Nagios;
    let rank = |s: Nagios| match s {
        Nagios::Ok => 0,
        Nagios::Unknown => 1,
        Nagios::Warning => 2,
        Nagios::Critical => 3,
    };
    let (mut healthy, mut unhealthy, mut errors) = (0usize, 0usize, 0usize);
    let mut worst = Nagios::Ok;
    let mut failed: Vec<String> = Vec::new();
    let mut slowest = std::time::Duration::ZERO;
    for o in outcomes {
        let state = match &o.result {
            Ok(v) => {
                slowest = slowest.max(v.elapsed);
                if v.healthy() {
                    healthy += 1;
                } else {
                    unhealthy += 1;
                    failed.push(format!("{}: {}", v.what, v.reason));
                }
                crate::exit::nagios(v.failure, v.elapsed, None, None)
            }
            Err(e) => {
                errors += 1;
                failed.push(format!("{}: {e}", o.target.origin));
                Nagios::Unknown
            }
        };
        if rank(state) > rank(worst) {
            worst = state;
        }
    }
    let mut text = format!(
        "{} targets: {healthy} healthy, {unhealthy} unhealthy, {errors} could not run, {} skipped",
        outcomes.len(),
        skipped.len()
    );
    if !failed.is_empty() {
        const SHOWN: usize = 3;
        text += &format!("; {}", failed[..failed.len().min(SHOWN)].join("; "));
        if failed.len() > SHOWN {
            text += &format!("; and {} more", failed.len() - SHOWN);
        }
    }
    let perfdata = format!(
        "healthy={healthy};;;0 unhealthy={unhealthy};;;0 error={errors};;;0 skipped={};;;0 \
         slowest={:.6}s;;;0",
        skipped.len(),
        slowest.as_secs_f64()
    );
    (
        crate::front::output::nagios_line(worst, &text, Some(&perfdata)),
        worst as i32,
    )
}

/// The audit's exit status ([`crate::exit::of_audit`]).
pub(crate) fn exit_code(outcomes: &[Outcome]) -> i32 {
    crate::exit::of_audit(
        outcomes
            .iter()
            .any(|o| matches!(&o.result, Ok(v) if !v.healthy())),
        outcomes.iter().any(|o| o.result.is_err()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nagios_summary_counts_and_takes_the_worst_state() {
        use crate::check::verdict::Details;
        use crate::failure::Failure;
        use std::time::Duration;
        let conf = "virtual_server 10.0.0.100 80 {\n lb_kind DR\n\
                    real_server 10.0.0.42 80 {\n TCP_CHECK {\n }\n }\n\
                    real_server 10.0.0.43 80 {\n TCP_CHECK {\n }\n }\n\
                    real_server 10.0.0.44 80 {\n TCP_CHECK {\n }\n }\n}\n";
        let loaded = config::keepalived::load_str(
            conf,
            std::path::Path::new("/etc/keepalived/keepalived.conf"),
        )
        .unwrap();
        let verdict = |failure: Option<Failure>, ms: u64| {
            Ok(Verdict {
                failure,
                what: "tcp x".into(),
                reason: "why".into(),
                elapsed: Duration::from_millis(ms),
                attached: None,
                details: Details::default(),
            })
        };
        let outcomes = |results: Vec<std::result::Result<Verdict, Error>>| -> Vec<Outcome> {
            loaded
                .targets
                .iter()
                .cloned()
                .zip(results)
                .map(|(target, result)| Outcome {
                    subject: Subject::from(&target.probe),
                    target,
                    result,
                })
                .collect()
        };
        let skipped = [config::Skipped {
            origin: "k:1".into(),
            what: "w".into(),
            reason: "r".into(),
        }];
        let all_ok = outcomes(vec![verdict(None, 1), verdict(None, 2), verdict(None, 3)]);
        let (line, exit) = nagios_summary(&all_ok, &skipped);
        assert_eq!(exit, 0);
        assert_eq!(
            line,
            "VIPCHECK OK - 3 targets: 3 healthy, 0 unhealthy, 0 could not run, 1 skipped \
             | healthy=3;;;0 unhealthy=0;;;0 error=0;;;0 skipped=1;;;0 slowest=0.003000s;;;0"
        );
        let not_run = outcomes(vec![
            verdict(None, 1),
            Err(Error::NoInterface("eth9".into())),
            verdict(Some(Failure::CertExpiring), 1),
        ]);
        let (line, exit) = nagios_summary(&not_run, &[]);
        assert!(
            line.starts_with(
                "VIPCHECK WARNING - 3 targets: 1 healthy, 1 unhealthy, 1 could not run"
            ),
            "{line}"
        );
        assert_eq!(exit, 1);
        let failed = outcomes(vec![
            Err(Error::NoInterface("eth9".into())),
            verdict(Some(Failure::NoAnswer), 1),
            verdict(None, 1),
        ]);
        let (line, exit) = nagios_summary(&failed, &[]);
        assert!(
            line.starts_with("VIPCHECK CRITICAL - ") && line.contains("tcp x: why"),
            "{line}"
        );
        assert_eq!(exit, 2);
        let (line, exit) =
            nagios_summary(&outcomes(vec![Err(Error::NoInterface("eth9".into()))]), &[]);
        assert!(line.starts_with("VIPCHECK UNKNOWN - 1 targets"), "{line}");
        assert_eq!(exit, 3);
        assert_eq!(line.lines().count(), 1);
    }

    #[test]
    fn the_table_names_udp_services_and_what_dns_and_smtp_ask() {
        let conf = "virtual_server 10.0.0.100 53 {\n protocol UDP\n lb_kind DR\n\
                    real_server 10.0.0.42 53 {\n DNS_CHECK {\n type A\n name example.com\n }\n\
                    UDP_CHECK {\n }\n }\n}\n\
                    virtual_server 10.0.0.100 25 {\n protocol TCP\n lb_kind DR\n\
                    real_server 10.0.0.42 25 {\n SMTP_CHECK {\n }\n }\n}\n";
        let loaded = config::keepalived::load_str(
            conf,
            std::path::Path::new("/etc/keepalived/keepalived.conf"),
        )
        .unwrap();
        let outcomes: Vec<Outcome> = loaded
            .targets
            .into_iter()
            .map(|target| Outcome {
                subject: Subject::from(&target.probe),
                target,
                result: Err(Error::Usage("not run".into())),
            })
            .collect();
        let text = table(&outcomes, &[]);
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().take(5).collect())
            .collect();
        assert_eq!(
            rows,
            [
                ["10.0.0.42", "10.0.0.100:53/udp", "dns", "A", "example.com"],
                ["10.0.0.42", "10.0.0.100:53/udp", "udp", "-", "error"],
                [
                    "10.0.0.42",
                    "10.0.0.100:25",
                    "smtp",
                    "HELO",
                    "smtpchecker.keepalived.org"
                ],
            ]
        );
    }
}
