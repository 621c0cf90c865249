//! `vipcheck audit`: every target of a targets file or a keepalived.conf
//! ([`crate::config`]) checked once through the VIP path, from one
//! process, a bounded number at a time; what the input holds that cannot
//! be checked is listed with the reason.
//!
//! Each target runs the one-shot check's own code ([`check::tcp::check`],
//! [`check::http::run_async`]) on one [`Engine`]: one thread, one capture
//! slot and one AF_PACKET socket per interface, one neighbour cache.

use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::check;
use crate::check::http::{Expect, HttpCheck, Method, TlsSetup};
use crate::config::{self, AuditTarget, CheckSpec, HttpSpec};
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::http::Limits;
use crate::output::Subject;
use crate::target::{Capture, CloseMode, Target};
use crate::trace::Trace;
use crate::verdict::Verdict;
use crate::xdp::XdpMode;

/// How an audit runs.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// Checks at once.
    pub parallel: usize,
    /// HTTPS: trust this CA instead of the system's roots.
    pub ca: Option<PathBuf>,
    /// HTTPS: verify no certificate.
    pub insecure: bool,
}

/// The outcome of one target: its verdict, or why it could not run.
pub struct Outcome {
    pub target: AuditTarget,
    pub subject: Subject,
    pub result: std::result::Result<Verdict, Error>,
}

/// Checks every target once; the outcomes in the targets' order.
pub fn run(targets: Vec<AuditTarget>, options: &AuditOptions) -> Result<Vec<Outcome>> {
    let tls = tls_config(options)?;
    let parallel = options.parallel.max(1);
    engine::block_on(async |engine| {
        let permits = Rc::new(tokio::sync::Semaphore::new(parallel));
        let handles: Vec<_> = targets
            .into_iter()
            .map(|target| {
                let (engine, permits, tls) = (engine.clone(), permits.clone(), tls.clone());
                tokio::task::spawn_local(async move {
                    let _permit = permits.acquire().await;
                    let (subject, result) = check_one(&engine, &target, &tls).await;
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

/// Checks `target` once on `engine`: what was checked, and the verdict or
/// why the check could not run.
pub async fn check_one(
    engine: &Engine,
    target: &AuditTarget,
    tls: &Arc<rustls::ClientConfig>,
) -> (Subject, std::result::Result<Verdict, Error>) {
    match prepare(engine, target, tls) {
        Ok((plan, http)) => {
            let result = match &http {
                Some(http) => check::http::run_async(engine, &plan, http).await,
                None => check::tcp::check(engine, &plan).await,
            };
            (Subject::from(&plan), result)
        }
        Err(e) => (
            Subject {
                iface: target.iface.clone().unwrap_or_default(),
                real_server: target.real_server,
                vip: target.vip,
                port: target.port,
            },
            Err(e),
        ),
    }
}

/// One TLS client configuration for every HTTPS target.
pub fn tls_config(options: &AuditOptions) -> Result<Arc<rustls::ClientConfig>> {
    crate::tls::config(&crate::tls::TlsOptions {
        ca: options.ca.clone(),
        insecure: options.insecure,
        ..crate::tls::TlsOptions::default()
    })
}

/// The one-shot check's target (and HTTP check) of an audit target.
fn prepare(
    engine: &Engine,
    target: &AuditTarget,
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> Result<(Target, Option<HttpCheck>)> {
    let iface = match &target.iface {
        Some(iface) => iface.clone(),
        None => engine.route_interface(target.real_server)?,
    };
    let plan = Target {
        iface,
        real_server: target.real_server,
        vip: target.vip,
        port: target.port,
        source: None,
        timeout: target.timeout,
        reply_timeout: target.reply_timeout,
        close: CloseMode::Rst,
        capture: Capture::Require,
        xdp_mode: XdpMode::Skb,
        trace: Trace::default(),
        pcap: None,
    };
    let http = match &target.check {
        CheckSpec::Tcp => None,
        CheckSpec::Http(spec) => Some(http_check(spec, target, None)?),
        CheckSpec::Https(spec) => Some(http_check(spec, target, Some(tls))?),
    };
    Ok((plan, http))
}

fn http_check(
    spec: &HttpSpec,
    target: &AuditTarget,
    tls: Option<&std::sync::Arc<rustls::ClientConfig>>,
) -> Result<HttpCheck> {
    // keepalived sends the address it connects to when no virtualhost is
    // given: the real server's.
    let host = spec
        .host
        .clone()
        .unwrap_or_else(|| match target.real_server {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        });
    let regexes = |list: &[String]| -> Result<Vec<regex::bytes::Regex>> {
        list.iter()
            .map(|re| {
                regex::bytes::Regex::new(re).map_err(|e| {
                    Error::Usage(format!(
                        "{}: invalid regular expression {re:?}: {e}",
                        target.origin
                    ))
                })
            })
            .collect()
    };
    Ok(HttpCheck {
        method: match spec.method {
            config::Method::Get => Method::Get,
            config::Method::Head => Method::Head,
        },
        host: host.clone(),
        path: spec.path.clone(),
        headers: spec.headers.clone(),
        expect: Expect {
            statuses: spec.statuses.clone(),
            headers: spec.response_headers.clone(),
            body: spec.body.clone().map(String::into_bytes),
            md5: spec.md5.clone(),
            sha256: None,
            regex: regexes(&spec.regex)?,
            regex_absent: regexes(&spec.regex_absent)?,
        },
        limits: Limits::default(),
        trace_heads: false,
        trace_body: false,
        trace_c: false,
        tls: match tls {
            Some(config) => Some(TlsSetup {
                config: config.clone(),
                name: crate::tls::server_name(None, spec.host.as_deref().unwrap_or(&host))
                    .map_err(|e| Error::Usage(format!("{}: {e}", target.origin)))?,
                insecure: false,
                cert_days: None,
            }),
            None => None,
        },
    })
}

/// The text table of an audit: one line per target, then the skipped.
pub fn table(outcomes: &[Outcome], skipped: &[config::Skipped]) -> String {
    let mut out = format!(
        "{:<26} {:<32} {:<5} {:<9} {:>9}  {}\n",
        "REAL_SERVER", "VIP:PORT", "CHECK", "VERDICT", "TIME", "REASON"
    );
    for o in outcomes {
        let vip_port = std::net::SocketAddr::new(o.target.vip, o.target.port).to_string();
        let (verdict, time, reason) = match &o.result {
            Ok(v) => (
                if v.healthy { "healthy" } else { "unhealthy" },
                format!("{:.1} ms", v.elapsed.as_secs_f64() * 1000.0),
                v.reason.clone(),
            ),
            Err(e) => ("error", String::from("-"), e.to_string()),
        };
        out += &format!(
            "{:<26} {:<32} {:<5} {:<9} {:>9}  {reason} ({})\n",
            o.target.real_server.to_string(),
            vip_port,
            o.target.check.kind(),
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
pub fn json_lines(outcomes: &[Outcome], skipped: &[config::Skipped]) -> String {
    let mut out = String::new();
    for o in outcomes {
        let kind = o.target.check.kind();
        let line = match &o.result {
            Ok(v) => {
                crate::output::verdict(
                    v,
                    &o.subject,
                    kind,
                    crate::output::Format::Json,
                    Default::default(),
                )
                .0
            }
            Err(e) => {
                crate::output::error(
                    &e.to_string(),
                    e.exit_code(),
                    Some(&o.subject),
                    kind,
                    crate::output::Format::Json,
                )
                .0
            }
        };
        let mut value: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        value["origin"] = serde_json::Value::from(o.target.origin.clone());
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

/// 1 when a real server failed its check; else 3 when a check could not
/// run here (not root, no such interface, BPF refused: as the daemon,
/// which stops with 3 rather than report real servers down); else 0,
/// every target healthy.
pub fn exit_code(outcomes: &[Outcome]) -> i32 {
    if outcomes
        .iter()
        .any(|o| matches!(&o.result, Ok(v) if !v.healthy))
    {
        1
    } else if outcomes.iter().any(|o| o.result.is_err()) {
        crate::error::EXIT_CANNOT_RUN
    } else {
        0
    }
}
