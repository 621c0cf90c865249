//! `vipcheck audit`: every target of a targets file or a keepalived.conf
//! ([`crate::config`]) checked once through the VIP path, from one
//! process, a bounded number at a time; what the input holds that cannot
//! be checked is listed with the reason.
//!
//! Each target runs the one-shot check's own code ([`check::tcp::check`],
//! [`check::http::run_async`]) on one [`Engine`]: one thread, one capture
//! slot and one AF_PACKET socket per interface, one neighbour cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::check;
use crate::check::http::{Expect, HttpCheck, Method, TlsSetup};
use crate::config::{self, AuditTarget, CheckSpec, HttpSpec, TlsSpec, Verify};
use crate::engine::trace::Trace;
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::output::Subject;
use crate::target::{Capture, CloseMode, Target};
use crate::verdict::Verdict;
use crate::wire::http::Limits;
use crate::xdp::XdpMode;

/// How an audit runs.
#[derive(Clone, Debug)]
pub struct AuditOptions {
    /// Checks at once.
    pub parallel: usize,
    /// HTTPS: trust this CA instead of the system's roots (when
    /// verifying).
    pub ca: Option<PathBuf>,
    /// HTTPS: verify every certificate, also where the input says not to
    /// (keepalived's `SSL_GET`, a targets file's `verify = false`).
    pub verify_tls: bool,
    /// HTTPS: the name sent as SNI and verified, for every target.
    pub sni: Option<String>,
    /// HTTPS: verify no certificate.
    pub insecure: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            parallel: 16,
            ca: None,
            verify_tls: false,
            sni: None,
            insecure: false,
        }
    }
}

/// What an HTTPS check trusts: nothing (and why it says so), or the
/// system's roots or a CA file.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Trust {
    Nothing(&'static str),
    Roots(Option<PathBuf>),
}

/// The TLS client configurations of an audit or a daemon: one per way of
/// verifying (a CA file is read once) and of sending SNI or not, built
/// when first needed.
pub struct TlsConfigs {
    options: AuditOptions,
    built: RefCell<HashMap<(Trust, bool), Arc<rustls::ClientConfig>>>,
}

impl TlsConfigs {
    pub fn new(options: &AuditOptions) -> Rc<TlsConfigs> {
        Rc::new(TlsConfigs {
            options: options.clone(),
            built: RefCell::new(HashMap::new()),
        })
    }

    /// What a check of `spec` trusts under these options: `--insecure`
    /// nothing, `--verify-tls` (or `--ca`) verifies every target, else the
    /// spec says.
    fn trust(&self, spec: &TlsSpec) -> Trust {
        let options = &self.options;
        match &spec.verify {
            _ if options.insecure => Trust::Nothing(crate::tls::NOT_VERIFIED_INSECURE),
            Verify::KeepalivedSslGet if !options.verify_tls => {
                Trust::Nothing(crate::tls::NOT_VERIFIED_SSL_GET)
            }
            Verify::Ca(ca) => Trust::Roots(Some(ca.clone())),
            Verify::KeepalivedSslGet | Verify::Roots => Trust::Roots(options.ca.clone()),
        }
    }

    /// The configuration of a check of `spec`, and why it verifies
    /// nothing (`None`: it verifies). A CA that cannot be read is a usage
    /// error.
    pub fn get(&self, spec: &TlsSpec) -> Result<(Arc<rustls::ClientConfig>, Option<&'static str>)> {
        let trust = self.trust(spec);
        let unverified = match &trust {
            Trust::Nothing(why) => Some(*why),
            Trust::Roots(_) => None,
        };
        // --sni is sent, whatever the target says.
        let no_sni = spec.no_sni && self.options.sni.is_none();
        let key = (trust, no_sni);
        if let Some(config) = self.built.borrow().get(&key) {
            return Ok((config.clone(), unverified));
        }
        let config = crate::tls::config(&crate::tls::TlsOptions {
            ca: match &key.0 {
                Trust::Roots(ca) => ca.clone(),
                Trust::Nothing(_) => None,
            },
            insecure: unverified.is_some(),
            no_sni,
            ..crate::tls::TlsOptions::default()
        })?;
        self.built.borrow_mut().insert(key, config.clone());
        Ok((config, unverified))
    }

    /// Builds what the command line gives (`--ca`, whatever the targets)
    /// and what the HTTPS targets of `targets` need: a CA file that cannot
    /// be read is an error before any check runs.
    pub fn prepare(&self, targets: &[AuditTarget]) -> Result<()> {
        self.get(&TlsSpec::default())?;
        for target in targets {
            if let CheckSpec::Https(_, tls) = &target.check {
                self.get(tls)
                    .map_err(|e| Error::Usage(format!("{}: {e}", target.origin)))?;
            }
        }
        Ok(())
    }
}

/// The outcome of one target: its verdict, or why it could not run.
pub struct Outcome {
    pub target: AuditTarget,
    pub subject: Subject,
    pub result: std::result::Result<Verdict, Error>,
}

/// Checks every target once; the outcomes in the targets' order.
pub fn run(targets: Vec<AuditTarget>, options: &AuditOptions) -> Result<Vec<Outcome>> {
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
    tls: &TlsConfigs,
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

/// The one-shot check's target (and HTTP check) of an audit target.
fn prepare(
    engine: &Engine,
    target: &AuditTarget,
    tls: &TlsConfigs,
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
        CheckSpec::Https(spec, tls_spec) => Some(http_check(spec, target, Some((tls, tls_spec)))?),
    };
    Ok((plan, http))
}

fn http_check(
    spec: &HttpSpec,
    target: &AuditTarget,
    tls: Option<(&TlsConfigs, &TlsSpec)>,
) -> Result<HttpCheck> {
    let host = host_of(spec, target);
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
            Some((configs, tls_spec)) => {
                let (config, unverified) = configs
                    .get(tls_spec)
                    .map_err(|e| Error::Usage(format!("{}: {e}", target.origin)))?;
                // SNI: --sni, the target's, else the Host's name (none
                // when that is an address, as keepalived sends none
                // without a virtualhost).
                let sni = configs.options.sni.as_deref().or(tls_spec.sni.as_deref());
                Some(TlsSetup {
                    config,
                    name: crate::tls::server_name(sni, &host)
                        .map_err(|e| Error::Usage(format!("{}: {e}", target.origin)))?,
                    unverified,
                    cert_days: None,
                })
            }
            None => None,
        },
    })
}

/// What an HTTP(S) check requests: the Host it sends (the given one, else
/// the real server's address, as keepalived) and the path.
fn request(target: &AuditTarget) -> Option<(String, &str)> {
    let spec = target.check.http()?;
    Some((host_of(spec, target), spec.path.as_str()))
}

/// The Host header of `spec`: keepalived sends the address it connects to
/// when no virtualhost is given, the real server's.
fn host_of(spec: &HttpSpec, target: &AuditTarget) -> String {
    spec.host
        .clone()
        .unwrap_or_else(|| match target.real_server {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        })
}

/// The text table of an audit: one line per target, then the skipped.
/// REQUEST tells the checks of one real server apart: HOST/PATH of an
/// HTTP(S) check, `-` for TCP.
pub fn table(outcomes: &[Outcome], skipped: &[config::Skipped]) -> String {
    let mut out = format!(
        "{:<26} {:<32} {:<5} {:<24} {:<9} {:>9}  {}\n",
        "REAL_SERVER", "VIP:PORT", "CHECK", "REQUEST", "VERDICT", "TIME", "REASON"
    );
    for o in outcomes {
        let vip_port = std::net::SocketAddr::new(o.target.vip, o.target.port).to_string();
        let (verdict, time, reason) = match &o.result {
            Ok(v) => (
                if v.healthy() { "healthy" } else { "unhealthy" },
                format!("{:.1} ms", v.elapsed.as_secs_f64() * 1000.0),
                v.reason.clone(),
            ),
            Err(e) => ("error", String::from("-"), e.to_string()),
        };
        let request = match request(&o.target) {
            Some((host, path)) => format!("{host}{path}"),
            None => "-".to_string(),
        };
        out += &format!(
            "{:<26} {:<32} {:<5} {:<24} {:<9} {:>9}  {reason} ({})\n",
            o.target.real_server.to_string(),
            vip_port,
            o.target.check.kind(),
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
                    e.failure(),
                    Some(&o.subject),
                    kind,
                    crate::output::Format::Json,
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

/// 1 when a real server failed its check; else 3 when a check could not
/// run here (not root, no such interface, BPF refused: as the daemon,
/// which stops with 3 rather than report real servers down); else 0,
/// every target healthy.
pub fn exit_code(outcomes: &[Outcome]) -> i32 {
    if outcomes
        .iter()
        .any(|o| matches!(&o.result, Ok(v) if !v.healthy()))
    {
        1
    } else if outcomes.iter().any(|o| o.result.is_err()) {
        crate::exit::EXIT_CANNOT_RUN
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_an_https_check_trusts() {
        let spec = |verify| TlsSpec {
            verify,
            ..TlsSpec::default()
        };
        let ssl_get = spec(Verify::KeepalivedSslGet);
        let ca = spec(Verify::Ca("t.pem".into()));
        let trust = |options: AuditOptions, spec: &TlsSpec| TlsConfigs::new(&options).trust(spec);
        let keepalived = Trust::Nothing(crate::tls::NOT_VERIFIED_SSL_GET);
        // keepalived's SSL_GET verifies nothing unless asked to.
        assert_eq!(trust(AuditOptions::default(), &ssl_get), keepalived);
        let verify = AuditOptions {
            verify_tls: true,
            ca: Some("cmd.pem".into()),
            ..AuditOptions::default()
        };
        assert_eq!(
            trust(verify.clone(), &ssl_get),
            Trust::Roots(Some("cmd.pem".into()))
        );
        // A target's own CA wins over --ca; the default verifies against
        // --ca, else the system's roots.
        assert_eq!(trust(verify, &ca), Trust::Roots(Some("t.pem".into())));
        assert_eq!(
            trust(AuditOptions::default(), &spec(Verify::Roots)),
            Trust::Roots(None)
        );
        let insecure = AuditOptions {
            insecure: true,
            ..AuditOptions::default()
        };
        assert_eq!(
            trust(insecure, &ca),
            Trust::Nothing(crate::tls::NOT_VERIFIED_INSECURE)
        );
        // Configurations are built once per trust; an unreadable CA is an
        // error.
        let configs = TlsConfigs::new(&AuditOptions::default());
        let (a, why) = configs.get(&ssl_get).unwrap();
        let (b, _) = configs.get(&ssl_get).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(why, Some(crate::tls::NOT_VERIFIED_SSL_GET));
        assert!(
            configs
                .get(&spec(Verify::Ca("/nonexistent.pem".into())))
                .is_err()
        );
    }
}
