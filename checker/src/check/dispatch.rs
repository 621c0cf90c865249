//! The one way a [`Probe`] is checked: [`run`] on an engine (the audit
//! and the daemon, several at once), [`once`] in a runtime of its own
//! (`vipcheck tcp|http|https` and the C checkers' names). Either picks the
//! tcp, http or https check; the HTTP(S) check's runtime form is built
//! from the probe's spec in [`http_check`] only, its TLS client
//! configuration in [`TlsConfigs`] only.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;

use crate::check;
use crate::check::verdict::Verdict;
use crate::engine::{self, Engine};
use crate::error::{Error, Result};
use crate::probe::Subject;
use crate::probe::{
    AuditTarget, CheckSpec, Expect, HttpCheck, HttpSpec, Probe, TlsSetup, TlsSpec, Verify,
};
use crate::wire::http::Limits;
use crate::xdp::Rings;

/// How an audit runs.
#[derive(Clone, Debug)]
pub(crate) struct AuditOptions {
    /// Checks at once.
    pub(crate) parallel: usize,
    /// HTTPS: trust this CA instead of the system's roots (when
    /// verifying).
    pub(crate) ca: Option<PathBuf>,
    /// HTTPS: verify every certificate, also where the input says not to
    /// (keepalived's `SSL_GET`, a targets file's `verify = false`).
    pub(crate) verify_tls: bool,
    /// HTTPS: the name sent as SNI and verified, for every target.
    pub(crate) sni: Option<String>,
    /// HTTPS: verify no certificate.
    pub(crate) insecure: bool,
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

/// A client configuration's key: what it trusts, whether it sends no SNI,
/// and the client certificate and key of mutual TLS.
type ConfigKey = (Trust, bool, Option<PathBuf>, Option<PathBuf>);

/// The TLS client configurations of an audit, a daemon or a one-shot
/// check: one per way of verifying (a CA file is read once), of sending
/// SNI or not, and of client certificate, built when first needed.
pub(crate) struct TlsConfigs {
    options: AuditOptions,
    built: RefCell<HashMap<ConfigKey, Arc<rustls::ClientConfig>>>,
}

impl TlsConfigs {
    pub(crate) fn new(options: &AuditOptions) -> Rc<TlsConfigs> {
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
            Verify::Insecure => Trust::Nothing(crate::check::tls::NOT_VERIFIED_INSECURE),
            _ if options.insecure => Trust::Nothing(crate::check::tls::NOT_VERIFIED_INSECURE),
            Verify::KeepalivedSslGet if !options.verify_tls => {
                Trust::Nothing(crate::check::tls::NOT_VERIFIED_SSL_GET)
            }
            Verify::Ca(ca) => Trust::Roots(Some(ca.clone())),
            Verify::KeepalivedSslGet | Verify::Roots => Trust::Roots(options.ca.clone()),
        }
    }

    /// The configuration of a check of `spec`, and why it verifies
    /// nothing (`None`: it verifies). A CA that cannot be read is a usage
    /// error.
    pub(crate) fn get(
        &self,
        spec: &TlsSpec,
    ) -> Result<(Arc<rustls::ClientConfig>, Option<&'static str>)> {
        let trust = self.trust(spec);
        let unverified = match &trust {
            Trust::Nothing(why) => Some(*why),
            Trust::Roots(_) => None,
        };
        // --sni is sent, whatever the target says.
        let no_sni = spec.no_sni && self.options.sni.is_none();
        let key = (
            trust,
            no_sni,
            spec.client_cert.clone(),
            spec.client_key.clone(),
        );
        if let Some(config) = self.built.borrow().get(&key) {
            return Ok((config.clone(), unverified));
        }
        let config = crate::check::tls::config(&crate::check::tls::TlsOptions {
            ca: match &key.0 {
                Trust::Roots(ca) => ca.clone(),
                Trust::Nothing(_) => None,
            },
            insecure: unverified.is_some(),
            no_sni,
            client_cert: key.2.clone(),
            client_key: key.3.clone(),
        })?;
        self.built.borrow_mut().insert(key, config.clone());
        Ok((config, unverified))
    }

    /// Builds what the command line gives (`--ca`, whatever the targets)
    /// and what the HTTPS targets of `targets` need: a CA file that cannot
    /// be read is an error before any check runs.
    pub(crate) fn prepare(&self, targets: &[AuditTarget]) -> Result<()> {
        self.get(&TlsSpec::default())?;
        for target in targets {
            if let CheckSpec::Https(_, tls) = &target.probe.check {
                self.get(tls)
                    .map_err(|e| Error::Usage(format!("{}: {e}", target.origin)))?;
            }
        }
        Ok(())
    }
}

/// Checks `probe` once on `engine`: what was checked (with the route's
/// interface when the probe names none), and the verdict or why the check
/// could not run. An error in building the check (a TLS server name
/// rustls cannot use) is said to come from `origin` when given.
pub(crate) async fn run(
    engine: &Engine,
    probe: &Probe,
    tls: &TlsConfigs,
    origin: Option<&str>,
) -> (Subject, std::result::Result<Verdict, Error>) {
    // Until the check runs, what was checked is as the probe says.
    let given = probe;
    let probe = match &given.iface {
        Some(_) => Cow::Borrowed(given),
        None => match engine.route_interface(given.real_server) {
            Ok(iface) => Cow::Owned(Probe {
                iface: Some(iface),
                ..given.clone()
            }),
            Err(e) => return (Subject::from(given), Err(e)),
        },
    };
    let http = match http_check(&probe, tls) {
        Ok(http) => http,
        Err(e) => {
            let e = match origin {
                Some(origin) => Error::Usage(format!("{origin}: {e}")),
                None => e,
            };
            return (Subject::from(given), Err(e));
        }
    };
    let result = check(engine, &probe, http.as_ref()).await;
    (Subject::from(&*probe), result)
}

/// Checks `probe` once, in a runtime of its own (`http`: its HTTP(S)
/// check, as [`http_check`] built it).
pub(crate) fn once(probe: &Probe, http: Option<&HttpCheck>) -> Result<Verdict> {
    let rings = match http {
        Some(_) => Rings::Large,
        None => Rings::SmallFirst,
    };
    engine::one_shot(rings, async |engine| check(&engine, probe, http).await)
}

/// The check of `probe`'s spec, or its HTTP(S) check `http`.
async fn check(engine: &Engine, probe: &Probe, http: Option<&HttpCheck>) -> Result<Verdict> {
    if let Some(http) = http {
        return check::http::run_async(engine, probe, http).await;
    }
    match &probe.check {
        CheckSpec::Ping => check::ping::check(engine, probe).await,
        CheckSpec::Udp(spec) => check::udp::check(engine, probe, spec).await,
        CheckSpec::Dns(spec) => check::dns::check(engine, probe, spec).await,
        CheckSpec::TcpExpect(spec) => check::expect::check(engine, probe, spec).await,
        CheckSpec::Smtp(spec) => check::smtp::check(engine, probe, spec).await,
        // An http(s) spec always comes with its `http` check, built above.
        CheckSpec::Tcp | CheckSpec::Http(_) | CheckSpec::Https(..) => {
            check::tcp::check(engine, probe).await
        }
    }
}

/// The runtime form of `probe`'s HTTP(S) check (`None`: a tcp check), its
/// TLS client configuration from `tls`. A TLS server name rustls cannot
/// use, or a CA or client file that cannot be read, is a usage error.
pub(crate) fn http_check(probe: &Probe, tls: &TlsConfigs) -> Result<Option<HttpCheck>> {
    let (spec, tls_spec) = match &probe.check {
        CheckSpec::Tcp
        | CheckSpec::Ping
        | CheckSpec::Udp(_)
        | CheckSpec::Dns(_)
        | CheckSpec::TcpExpect(_)
        | CheckSpec::Smtp(_) => {
            return Ok(None);
        }
        CheckSpec::Http(spec) => (spec, None),
        CheckSpec::Https(spec, tls_spec) => (spec, Some(tls_spec)),
    };
    let host = host_of(spec, probe.real_server);
    let regexes = |list: &[crate::probe::Pattern]| list.iter().map(|p| p.0.clone()).collect();
    let tls = match tls_spec {
        Some(tls_spec) => {
            // SNI: --sni, the spec's, else the Host's name (none when
            // that is an address, as keepalived sends none without a
            // virtualhost).
            let sni = tls.options.sni.as_deref().or(tls_spec.sni.as_deref());
            let name = crate::check::tls::server_name(sni, &host)?;
            let (config, unverified) = tls.get(tls_spec)?;
            Some(TlsSetup {
                config,
                name,
                unverified,
                cert_days: tls_spec.cert_days,
            })
        }
        None => None,
    };
    Ok(Some(HttpCheck {
        method: spec.method,
        host,
        path: spec.path.clone(),
        headers: spec.headers.clone(),
        expect: Expect {
            statuses: spec.statuses.clone(),
            headers: spec.response_headers.clone(),
            body: spec.body.clone().map(String::into_bytes),
            md5: spec.md5.clone(),
            sha256: spec.sha256.clone(),
            regex: regexes(&spec.regex),
            regex_absent: regexes(&spec.regex_absent),
        },
        limits: Limits {
            max_body: spec.max_body,
            ..Limits::default()
        },
        trace_heads: probe.trace.heads,
        trace_body: probe.trace.body,
        trace_c: probe.trace.c_format,
        tls,
    }))
}

/// The Host header of `spec`: keepalived sends the address it connects to
/// when no virtualhost is given, the real server's.
pub(crate) fn host_of(spec: &HttpSpec, real_server: IpAddr) -> String {
    spec.host.clone().unwrap_or_else(|| match real_server {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    })
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
        let keepalived = Trust::Nothing(crate::check::tls::NOT_VERIFIED_SSL_GET);
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
            Trust::Nothing(crate::check::tls::NOT_VERIFIED_INSECURE)
        );
        // Configurations are built once per trust; an unreadable CA is an
        // error.
        let configs = TlsConfigs::new(&AuditOptions::default());
        let (a, why) = configs.get(&ssl_get).unwrap();
        let (b, _) = configs.get(&ssl_get).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(why, Some(crate::check::tls::NOT_VERIFIED_SSL_GET));
        assert!(
            configs
                .get(&spec(Verify::Ca("/nonexistent.pem".into())))
                .is_err()
        );
    }

    #[test]
    fn the_http_check_is_built_from_the_spec() {
        use crate::probe::{Pattern, Probe};
        let pattern = |re: &str| Pattern(regex::bytes::Regex::new(re).unwrap());
        let spec = HttpSpec {
            path: "/health".into(),
            sha256: Some("ab".repeat(32)),
            regex: vec![pattern("ok|fine")],
            max_body: 7,
            ..HttpSpec::default()
        };
        let tls = TlsSpec {
            verify: Verify::Insecure,
            cert_days: Some(9),
            ..TlsSpec::default()
        };
        let mut probe = Probe::new(
            "198.18.0.11".parse().unwrap(),
            "198.18.0.100".parse().unwrap(),
            443,
            CheckSpec::Https(spec.clone(), tls),
        );
        probe.trace.heads = true;
        let configs = TlsConfigs::new(&AuditOptions::default());
        let built = http_check(&probe, &configs).unwrap().unwrap();
        // No Host given: the real server's address, as keepalived sends.
        assert_eq!(
            (built.host.as_str(), built.path.as_str()),
            ("198.18.0.11", "/health")
        );
        assert_eq!(built.expect.sha256, spec.sha256);
        assert_eq!(built.expect.regex[0].as_str(), "ok|fine");
        assert_eq!(built.limits.max_body, 7);
        assert!(built.trace_heads && !built.trace_body && !built.trace_c);
        let setup = built.tls.unwrap();
        assert_eq!(setup.cert_days, Some(9));
        assert_eq!(
            setup.unverified,
            Some(crate::check::tls::NOT_VERIFIED_INSECURE)
        );
        let tcp = Probe {
            check: CheckSpec::Tcp,
            ..probe
        };
        assert!(http_check(&tcp, &configs).unwrap().is_none());
        // A spec is the same (the daemon's identity) by its patterns' text.
        assert_eq!(pattern("ok|fine"), spec.regex[0]);
        assert_ne!(pattern("ok"), spec.regex[0]);
        let set: std::collections::HashSet<_> = [pattern("a"), pattern("a")].into();
        assert_eq!(set.len(), 1);
    }
}
