//! TLS over the check's TCP stream: rustls's sans-IO client connection
//! between the userspace stack's bytes and the HTTP parser. No kernel
//! socket: ciphertext goes in and out through the same flow as plain HTTP.
//!
//! Verification is rustls's (webpki) against the system's roots, a CA file
//! (`--ca`), or nothing (`--insecure`, said in the verdict). A failure is
//! named by its cause: unknown issuer, name mismatch, expired, an alert
//! from the server.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore};

use crate::error::{Error, Result};

/// What the verdict says of a session `--insecure` verified nothing in.
pub(crate) const NOT_VERIFIED_INSECURE: &str = "not verified: --insecure";
/// What the verdict says of a keepalived `SSL_GET`'s session (keepalived
/// verifies no certificate).
pub(crate) const NOT_VERIFIED_SSL_GET: &str = "not verified, as keepalived's SSL_GET";

/// How a TLS client configuration is set up (built from a check's
/// [`TlsSpec`](crate::probe::TlsSpec) by
/// [`TlsConfigs`](crate::check::dispatch::TlsConfigs)).
#[derive(Clone, Debug, Default)]
pub(crate) struct TlsOptions {
    /// Send no SNI (the certificate is still verified against the name).
    pub(crate) no_sni: bool,
    /// Trust this CA (PEM) instead of the system roots.
    pub(crate) ca: Option<PathBuf>,
    /// Verify nothing.
    pub(crate) insecure: bool,
    /// Mutual TLS: our certificate chain and key (PEM).
    pub(crate) client_cert: Option<PathBuf>,
    pub(crate) client_key: Option<PathBuf>,
}

/// What the session was, for the verdict and the JSON output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TlsFacts {
    /// "TLSv1.3", "TLSv1.2".
    pub(crate) version: String,
    pub(crate) cipher_suite: String,
    pub(crate) subject: String,
    pub(crate) issuer: String,
    /// Whole days until the certificate expires (negative once expired).
    pub(crate) days_left: i64,
    /// Nothing was verified, and why (`not verified: --insecure`, `not
    /// verified, as keepalived's SSL_GET`); `None`: verified.
    pub(crate) unverified: Option<&'static str>,
}

/// A client configuration built once per check.
pub(crate) fn config(options: &TlsOptions) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        builder.with_root_certificates(roots(options)?)
    };
    let mut config = match (&options.client_cert, &options.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(std::iter::Iterator::collect::<std::result::Result<Vec<_>, _>>)
                .map_err(|e| Error::Usage(format!("--client-cert {}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| Error::Usage(format!("--client-key {}: {e}", key.display())))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::Usage(format!("--client-cert/--client-key: {e}")))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(Error::Usage(
                "--client-cert and --client-key go together".into(),
            ));
        }
    };
    config.enable_sni = !options.no_sni;
    Ok(Arc::new(config))
}

fn roots(options: &TlsOptions) -> Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match &options.ca {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(std::iter::Iterator::collect::<std::result::Result<Vec<_>, _>>)
                .map_err(|e| Error::Usage(format!("--ca {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(Error::Usage(format!(
                    "--ca {}: no CA certificate in it",
                    path.display()
                )));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    Ok(roots)
}

/// The TLS server name (SNI and verification) of an HTTPS check: `--sni`,
/// else the Host without its `:port` (an IPv6 literal without brackets).
/// Checked before anything is sent: a name rustls cannot use is a usage
/// error, not a failure after the handshake.
pub(crate) fn server_name(sni: Option<&str>, host: &str) -> Result<String> {
    let name = match sni {
        Some(sni) => sni.to_string(),
        None => match host.strip_prefix('[').and_then(|h| h.split_once(']')) {
            Some((v6, _)) => v6.to_string(),
            None => match host.rsplit_once(':') {
                Some((name, port)) if !name.contains(':') && port.parse::<u16>().is_ok() => {
                    name.to_string()
                }
                _ => host.to_string(),
            },
        },
    };
    ServerName::try_from(name.clone()).map_err(|_| {
        Error::Usage(format!(
            "{name:?} is not a TLS server name (a DNS name or an IP address); give one with --sni"
        ))
    })?;
    Ok(name)
}

/// One TLS session over the check's byte stream.
pub(crate) struct Session {
    conn: ClientConnection,
    unverified: Option<&'static str>,
}

impl Session {
    /// A client session for `name` (SNI and verification); `unverified`:
    /// the config verifies nothing, and why (said in the facts).
    pub(crate) fn new(
        config: Arc<ClientConfig>,
        name: &str,
        unverified: Option<&'static str>,
    ) -> Result<Session> {
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| Error::Usage(format!("{name:?} is not a TLS server name")))?;
        let conn = ClientConnection::new(config, server_name)
            .map_err(|e| Error::Usage(format!("TLS: {e}")))?;
        Ok(Session { conn, unverified })
    }

    /// Queues plaintext (sent once the handshake is done).
    pub(crate) fn write(&mut self, plain: &[u8]) {
        // Into rustls's own buffer: cannot fail short of memory.
        let _ = self.conn.writer().write_all(plain);
    }

    /// Moves the ciphertext rustls wants to send into `out`.
    pub(crate) fn take_outgoing(&mut self, out: &mut Vec<u8>) {
        while self.conn.wants_write() {
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
    }

    /// Feeds ciphertext from the server; appends the plaintext it yields
    /// to `plain`. `Err` names why the session failed.
    pub(crate) fn feed(
        &mut self,
        mut cipher: &[u8],
        plain: &mut Vec<u8>,
    ) -> std::result::Result<(), String> {
        while !cipher.is_empty() {
            match self.conn.read_tls(&mut cipher) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(format!("TLS: {e}")),
            }
            self.conn.process_new_packets().map_err(|e| describe(&e))?;
            let mut buf = [0u8; 16 * 1024];
            loop {
                match self.conn.reader().read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => plain.extend_from_slice(&buf[..n]),
                    // WouldBlock: no more plaintext for now.
                    Err(_) => break,
                }
            }
        }
        Ok(())
    }

    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// The negotiated session and the server's certificate, once the
    /// handshake is done.
    pub(crate) fn facts(&self) -> Option<TlsFacts> {
        if self.conn.is_handshaking() {
            return None;
        }
        let version = match self.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_string(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_string(),
            other => format!("{other:?}"),
        };
        let cipher_suite = format!("{:?}", self.conn.negotiated_cipher_suite()?.suite());
        let cert = self.conn.peer_certificates()?.first()?;
        let (subject, issuer, not_after) = certificate_names(cert.as_ref())?;
        let now = UnixTime::now().as_secs() as i64;
        Some(TlsFacts {
            version,
            cipher_suite,
            subject,
            issuer,
            days_left: (not_after - now).div_euclid(86_400),
            unverified: self.unverified,
        })
    }
}

/// Subject, issuer and notAfter (Unix seconds) of a DER certificate.
fn certificate_names(der: &[u8]) -> Option<(String, String, i64)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some((
        cert.subject().to_string(),
        cert.issuer().to_string(),
        cert.validity().not_after.timestamp(),
    ))
}

/// A TLS failure, by its cause.
fn describe(e: &rustls::Error) -> String {
    use rustls::Error as E;
    let cause = match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "certificate from an unknown issuer (give its CA with --ca, or --insecure)".into()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate not valid for the name (name mismatch; see --sni)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet".into()
            }
            other => format!("invalid certificate: {other:?}"),
        },
        E::AlertReceived(alert) => format!("handshake alert from the server: {alert:?}"),
        other => other.to_string(),
    };
    format!("TLS: {cause}")
}

/// `--insecure`: accepts any certificate, still checks the signatures of
/// the handshake (so the session is real, only unauthenticated).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> std::result::Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_from_the_host() {
        assert_eq!(
            server_name(None, "www.example.com").unwrap(),
            "www.example.com"
        );
        assert_eq!(
            server_name(None, "www.example.com:8443").unwrap(),
            "www.example.com"
        );
        assert_eq!(server_name(None, "[fd00::1]:443").unwrap(), "fd00::1");
        assert_eq!(server_name(None, "198.18.0.11").unwrap(), "198.18.0.11");
        assert_eq!(
            server_name(Some("lab.example"), "x:1").unwrap(),
            "lab.example"
        );
        let e = server_name(Some("not a name"), "h").unwrap_err();
        assert_eq!(crate::exit::of_error(&e), 2);
        assert!(server_name(None, "a b").is_err());
    }
}
