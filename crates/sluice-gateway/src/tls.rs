//! The listeners' certificate. Without a configured one, the gateway creates its own CA and a
//! server certificate signed by it on first start, in `<data-dir>/tls/`; clients trust
//! `ca.pem`. Keys are written with mode 0600.

use crate::bootstrap::write_private;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Generating the certificate failed.
    #[error("cannot generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// File.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// A PEM file is not valid.
    #[error("{path}: invalid PEM: {message}")]
    Pem {
        /// File.
        path: String,
        /// Cause.
        message: String,
    },
    /// rustls refused the certificate or key.
    #[error("certificate rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Paths of the certificate and key the listeners use.
pub struct CertPaths {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// Generates `<tls_dir>/{ca.pem,ca-key.pem,server.pem,server-key.pem}` unless present. A
/// generated server certificate names `localhost`, the loopback addresses and `hostnames`;
/// when `hostnames` changed (a new `http` connection's host name), the server certificate is
/// issued again by the same CA, so clients that trust `ca.pem` keep trusting it.
pub fn ensure_generated(tls_dir: &Path, hostnames: &[String]) -> Result<CertPaths, TlsError> {
    let paths = CertPaths {
        cert: tls_dir.join("server.pem"),
        key: tls_dir.join("server-key.pem"),
    };
    let file_err = |p: &Path| {
        let path = p.display().to_string();
        move |source| TlsError::File { path, source }
    };
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    for h in hostnames {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let names_file = tls_dir.join("server-names");
    let ca_pem = tls_dir.join("ca.pem");
    let ca_key_pem = tls_dir.join("ca-key.pem");
    if paths.cert.exists() && paths.key.exists() {
        let recorded = std::fs::read_to_string(&names_file).ok();
        let same = match &recorded {
            Some(r) => r.lines().eq(names.iter().map(String::as_str)),
            // Generated before names were recorded: the defaults and the configured ones.
            None => true,
        };
        if same || !ca_key_pem.exists() {
            return Ok(paths);
        }
    }
    std::fs::create_dir_all(tls_dir).map_err(file_err(tls_dir))?;
    let ca_key = match std::fs::read_to_string(&ca_key_pem) {
        Ok(pem) if ca_pem.exists() => KeyPair::from_pem(&pem)?,
        _ => KeyPair::generate()?,
    };
    let ca = ca_params()?.self_signed(&ca_key)?;
    if !ca_pem.exists() || !ca_key_pem.exists() {
        std::fs::write(&ca_pem, ca.pem()).map_err(file_err(&ca_pem))?;
        write_private(&ca_key_pem, ca_key.serialize_pem().as_bytes())
            .map_err(file_err(&ca_key_pem))?;
    }
    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(names.clone())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "sluice gateway");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = params.signed_by(&server_key, &ca, &ca_key)?;
    let ca_text = std::fs::read_to_string(&ca_pem).map_err(file_err(&ca_pem))?;
    write_private(&paths.key, server_key.serialize_pem().as_bytes())
        .map_err(file_err(&paths.key))?;
    std::fs::write(&paths.cert, format!("{}{ca_text}", server.pem()))
        .map_err(file_err(&paths.cert))?;
    std::fs::write(&names_file, names.join("\n")).map_err(file_err(&names_file))?;
    Ok(paths)
}

/// The gateway CA's subject and uses (the same each time, so a CA rebuilt from its key
/// issues certificates that chain to the `ca.pem` written first).
fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sluice gateway CA");
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(ca_params)
}

/// A rustls server config (ring provider) for the certificate at `paths`.
pub fn server_config(paths: &CertPaths, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, TlsError> {
    let pem_err = |p: &Path| {
        let path = p.display().to_string();
        move |e: rustls_pki_types::pem::Error| TlsError::Pem {
            path,
            message: e.to_string(),
        }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&paths.cert)
        .map_err(pem_err(&paths.cert))?
        .collect::<Result<_, _>>()
        .map_err(pem_err(&paths.cert))?;
    let key = PrivateKeyDer::from_pem_file(&paths.key).map_err(pem_err(&paths.key))?;
    let mut cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}
