//! A small blocking client for the gateway's REST API.

use anyhow::{anyhow, bail, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;

/// The token to act with: the given one (`--token`, `SLUICE_TOKEN`), else the session token
/// of `sluice login`, else the bootstrap token of `./sluice-data`.
pub fn resolve_token(token: Option<String>) -> anyhow::Result<String> {
    match token.or_else(super::login::stored_token) {
        Some(t) => Ok(t),
        None => std::fs::read_to_string("sluice-data/bootstrap-token")
            .map(|t| t.trim().to_string())
            .map_err(|_| anyhow!("no token: run sluice login, set SLUICE_TOKEN or pass --token")),
    }
}

/// TLS client configuration trusting the gateway's CA (default `./sluice-data/tls/ca.pem`).
pub fn tls_config(ca: Option<PathBuf>) -> anyhow::Result<rustls::ClientConfig> {
    let ca = ca.unwrap_or_else(|| PathBuf::from("sluice-data/tls/ca.pem"));
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(&ca)
        .with_context(|| format!("reading CA certificate {} (set SLUICE_CA)", ca.display()))?;
    for cert in certs {
        roots
            .add(cert.with_context(|| format!("invalid PEM in {}", ca.display()))?)
            .context("invalid CA certificate")?;
    }
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

/// The API of one gateway.
pub struct Api {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Api {
    /// Client for `addr`, trusting `ca`, authenticating with `token`.
    pub fn new(addr: &str, token: Option<String>, ca: Option<PathBuf>) -> anyhow::Result<Api> {
        let token = resolve_token(token)?;
        let tls = tls_config(ca)?;
        let agent = ureq::AgentBuilder::new().tls_config(Arc::new(tls)).build();
        Ok(Api {
            base: addr.trim_end_matches('/').to_string(),
            token,
            agent,
        })
    }

    fn request(&self, method: &str, path: &str) -> ureq::Request {
        self.agent
            .request(method, &format!("{}{}", self.base, path))
            .set("Authorization", &format!("Bearer {}", self.token))
    }

    fn check(r: Result<ureq::Response, ureq::Error>) -> anyhow::Result<ureq::Response> {
        match r {
            Ok(resp) => Ok(resp),
            Err(ureq::Error::Status(code, resp)) => {
                let body: serde_json::Value = resp.into_json().unwrap_or_default();
                let msg = body["error"].as_str().unwrap_or("request failed");
                match body["error_description"].as_str() {
                    Some(d) => bail!("{msg}: {d} (HTTP {code})"),
                    None => bail!("{msg} (HTTP {code})"),
                }
            }
            Err(e) => Err(anyhow!("cannot reach the gateway: {e}")),
        }
    }

    /// GET `path` as JSON.
    pub fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        Ok(Self::check(self.request("GET", path).call())?.into_json()?)
    }

    /// GET `path` as text.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        // Not `into_string`: recordings may be larger than its 10 MB cap.
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut Self::check(self.request("GET", path).call())?.into_reader(),
            &mut text,
        )?;
        Ok(text)
    }

    /// POST JSON to `path`, returning the JSON answer (or `null` when empty).
    pub fn post(&self, path: &str, body: serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let text = Self::check(self.request("POST", path).send_json(body))?.into_string()?;
        Ok(serde_json::from_str(&text).unwrap_or(serde_json::Value::Null))
    }

    /// POST raw bytes to `path`; the answer as a stream.
    pub fn post_bytes(&self, path: &str, body: &[u8]) -> anyhow::Result<impl std::io::Read> {
        let request = self
            .request("POST", path)
            .set("Content-Type", "application/octet-stream");
        Ok(Self::check(request.send_bytes(body))?.into_reader())
    }

    /// POST a form to `path`, returning the JSON answer.
    pub fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> anyhow::Result<serde_json::Value> {
        Ok(Self::check(self.request("POST", path).send_form(form))?.into_json()?)
    }

    /// DELETE `path`.
    pub fn delete(&self, path: &str) -> anyhow::Result<()> {
        Self::check(self.request("DELETE", path).call())?;
        Ok(())
    }
}

/// Percent-encodes a query or path component.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
