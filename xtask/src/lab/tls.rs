//! The lab's TLS material, made at each lab's start with rcgen: a CA of its
//! own, a server certificate for [`TLS_NAME`] valid for a year, one for the
//! same name that expires in [`SOON_DAYS`] days, one that expired
//! yesterday, and a client certificate. nginx serves the first on
//! [`HTTPS_PORT`] (and, requiring a client certificate from the CA, on
//! [`HTTPS_MTLS_PORT`]), the second on [`HTTPS_SOON_PORT`], the expired one
//! on [`HTTPS_EXPIRED_PORT`].

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// The name the lab's server certificates are for.
pub const TLS_NAME: &str = "lab.example";
/// HTTPS with the certificate valid for a year.
pub const HTTPS_PORT: u16 = 443;
/// HTTPS with the certificate that expires in [`SOON_DAYS`] days.
pub const HTTPS_SOON_PORT: u16 = 8443;
/// HTTPS with the certificate that expired yesterday.
pub const HTTPS_EXPIRED_PORT: u16 = 8444;
/// HTTPS that requires a client certificate signed by the lab's CA.
pub const HTTPS_MTLS_PORT: u16 = 8445;
/// Days the short certificate has left.
pub const SOON_DAYS: i64 = 5;

/// File names inside the lab's TLS directory.
pub const CA_FILE: &str = "ca.pem";
pub(crate) const CERT_FILE: &str = "lab.pem";
pub(crate) const KEY_FILE: &str = "lab.key";
pub(crate) const SOON_CERT_FILE: &str = "soon.pem";
pub(crate) const SOON_KEY_FILE: &str = "soon.key";
pub(crate) const EXPIRED_CERT_FILE: &str = "expired.pem";
pub(crate) const EXPIRED_KEY_FILE: &str = "expired.key";
/// The client certificate and key, for `vipcheck https --client-cert`.
pub const CLIENT_CERT_FILE: &str = "client.pem";
pub const CLIENT_KEY_FILE: &str = "client.key";

/// Writes the CA and both server certificates with their keys into `dir`.
pub(crate) fn write(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir)?;
    let now = time::OffsetDateTime::now_utc();
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.distinguished_name
        .push(DnType::CommonName, "vipcheck lab CA");
    ca.not_before = now - time::Duration::days(1);
    ca.not_after = now + time::Duration::days(3650);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)
        .context("cannot make the lab's CA")?;
    fs::write(dir.join(CA_FILE), ca.pem())?;
    for (cert_file, key_file, days) in [
        (CERT_FILE, KEY_FILE, 365),
        (SOON_CERT_FILE, SOON_KEY_FILE, SOON_DAYS),
        (EXPIRED_CERT_FILE, EXPIRED_KEY_FILE, -1),
        (CLIENT_CERT_FILE, CLIENT_KEY_FILE, 365),
    ] {
        let mut params = CertificateParams::new(vec![TLS_NAME.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, TLS_NAME);
        if cert_file == CLIENT_CERT_FILE {
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
        params.not_before = now - time::Duration::days(10);
        // Half a day more, so that the whole days left are exactly `days`.
        params.not_after = now + time::Duration::days(days) + time::Duration::hours(12);
        let key = KeyPair::generate()?;
        let cert = params
            .signed_by(&key, &ca)
            .with_context(|| format!("cannot make {cert_file}"))?;
        fs::write(dir.join(cert_file), cert.pem())?;
        fs::write(dir.join(key_file), key.serialize_pem())?;
    }
    Ok(())
}
