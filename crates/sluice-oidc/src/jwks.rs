//! A provider's signing keys: found through discovery, cached, and refetched when a token
//! names a key id the cache does not know (the provider rotated its keys). Refetches happen
//! at most once a second (a second one waits), and a key id still unknown after a refetch is
//! refused at once for a minute, so tokens with made-up key ids cannot make the gateway hammer
//! the provider. Known keys are read without waiting for a fetch in progress; once an hour
//! one verification refreshes them (a withdrawn key then stops working) while the others, and
//! that one too if the provider is down, go on with the keys they know.

use crate::config::ProviderConfig;
use crate::verify::JwtError;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::DecodingKey;
use rustls_pki_types::pem::PemObject;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tracing::{info, warn};

/// Cached keys are refetched after this long even if every kid is known.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// At most one refetch per this interval.
const MIN_REFETCH: Duration = Duration::from_secs(1);
/// Network limit per request to the provider.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The key family a JWK holds, to match the token's algorithm against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// RS*, PS*.
    Rsa,
    /// ES*.
    Ec,
    /// EdDSA.
    Okp,
}

impl Family {
    /// The family an algorithm name needs.
    pub fn of(alg: &str) -> Option<Family> {
        match alg {
            "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => Some(Family::Rsa),
            "ES256" | "ES384" => Some(Family::Ec),
            "EdDSA" => Some(Family::Okp),
            _ => None,
        }
    }
}

/// One usable signing key.
pub struct Key {
    /// Key id.
    pub kid: Option<String>,
    /// The algorithm the provider pinned for the key, if it did.
    pub alg: Option<String>,
    /// Its family.
    pub family: Family,
    /// The verification key.
    pub decoding: DecodingKey,
}

/// Key ids still unknown after a refetch are refused without another one for this long.
const UNKNOWN_FOR: Duration = Duration::from_secs(60);

struct Keys {
    list: Vec<Arc<Key>>,
    fetched: Option<Instant>,
}

struct Fetch {
    jwks_uri: Option<String>,
    unknown: HashMap<String, Instant>,
}

/// The signing keys of one provider.
pub struct KeyCache {
    issuer: String,
    agent: ureq::Agent,
    keys: RwLock<Keys>,
    fetch: Mutex<Fetch>,
}

impl KeyCache {
    /// A cache for `cfg`'s provider; nothing is fetched until a token needs a key.
    pub fn new(cfg: &ProviderConfig) -> Result<KeyCache, String> {
        let mut builder = ureq::AgentBuilder::new().timeout(TIMEOUT);
        if let Some(ca) = &cfg.ca_file {
            let mut roots = rustls::RootCertStore::empty();
            let certs = rustls_pki_types::CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            for cert in certs {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", ca.display()))?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
            builder = builder.tls_config(Arc::new(tls));
        }
        Ok(KeyCache {
            issuer: cfg.issuer.trim_end_matches('/').to_string(),
            agent: builder.build(),
            keys: RwLock::new(Keys {
                list: Vec::new(),
                fetched: None,
            }),
            fetch: Mutex::new(Fetch {
                jwks_uri: cfg.jwks_uri.clone(),
                unknown: HashMap::new(),
            }),
        })
    }

    /// The cached key `kid`, whether the cache is older than [`MAX_AGE`], and when it was
    /// fetched.
    fn cached(&self, kid: Option<&str>) -> (Option<Arc<Key>>, bool, Option<Instant>) {
        match self.keys.read() {
            Ok(k) => {
                let stale = k.fetched.is_none_or(|t| t.elapsed() >= MAX_AGE);
                (find(&k.list, kid), stale, k.fetched)
            }
            Err(_) => (None, true, None),
        }
    }

    fn replace(&self, list: Vec<Arc<Key>>) {
        if let Ok(mut k) = self.keys.write() {
            k.list = list;
            k.fetched = Some(Instant::now());
        }
    }

    /// The key with id `kid` (or the only key, when the token names none).
    pub async fn key(&self, kid: Option<&str>) -> Result<Arc<Key>, JwtError> {
        match self.cached(kid) {
            (Some(k), false, _) => return Ok(k),
            // A known key in an old cache: one task refreshes it (a key the provider has
            // withdrawn stops working); the others, and that task if the provider is down,
            // go on with the known key.
            (Some(k), true, _) => {
                let Ok(mut f) = self.fetch.try_lock() else {
                    return Ok(k);
                };
                return match self.refetch(&mut f).await {
                    Ok(list) => {
                        let found = find(&list, kid);
                        self.replace(list);
                        found.ok_or_else(|| unknown(kid))
                    }
                    Err(_) => Ok(k),
                };
            }
            (None, _, _) => {}
        }
        let mut f = self.fetch.lock().await;
        // Another task may have fetched while this one waited.
        let (found, _, fetched) = self.cached(kid);
        if let Some(k) = found {
            return Ok(k);
        }
        if let Some(k) = kid {
            if f.unknown.get(k).is_some_and(|t| t.elapsed() < UNKNOWN_FOR) {
                return Err(unknown(kid));
            }
        }
        if let Some(t) = fetched {
            if let Some(wait) = MIN_REFETCH.checked_sub(t.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
        let list = match self.refetch(&mut f).await {
            Ok(l) => l,
            Err(e) => {
                if let Ok(mut k) = self.keys.write() {
                    k.fetched = Some(Instant::now());
                }
                return Err(e);
            }
        };
        let found = find(&list, kid);
        self.replace(list);
        found.ok_or_else(|| {
            if let Some(k) = kid {
                if f.unknown.len() >= 1024 {
                    f.unknown.clear();
                }
                f.unknown.insert(k.to_string(), Instant::now());
            }
            unknown(kid)
        })
    }

    async fn refetch(&self, st: &mut Fetch) -> Result<Vec<Arc<Key>>, JwtError> {
        let jwks_uri = match &st.jwks_uri {
            Some(u) => u.clone(),
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                let doc = self.get_json(url).await?;
                let uri = doc["jwks_uri"]
                    .as_str()
                    .ok_or_else(|| JwtError::Provider("discovery document has no jwks_uri".into()))?
                    .to_string();
                if doc["issuer"].as_str().map(|i| i.trim_end_matches('/')) != Some(&self.issuer) {
                    return Err(JwtError::Provider(
                        "discovery document names another issuer".into(),
                    ));
                }
                st.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let set: JwkSet = serde_json::from_value(self.get_json(jwks_uri).await?)
            .map_err(|e| JwtError::Provider(format!("invalid JWKS: {e}")))?;
        let keys: Vec<Arc<Key>> = set.keys.iter().filter_map(usable).map(Arc::new).collect();
        info!(issuer = %self.issuer, keys = keys.len(), "fetched signing keys");
        st.unknown.clear();
        Ok(keys)
    }

    async fn get_json(&self, url: String) -> Result<serde_json::Value, JwtError> {
        let agent = self.agent.clone();
        let got = tokio::task::spawn_blocking(move || match agent.get(&url).call() {
            Ok(r) => r
                .into_json::<serde_json::Value>()
                .map_err(|e| format!("invalid JSON from {url}: {e}")),
            Err(ureq::Error::Status(code, _)) => Err(format!("{url} answered HTTP {code}")),
            Err(ureq::Error::Transport(t)) => Err(format!("cannot reach {url}: {}", t.kind())),
        })
        .await
        .map_err(|_| JwtError::Provider("fetch task failed".into()))?;
        got.map_err(|e| {
            warn!(issuer = %self.issuer, error = %e, "identity provider unavailable");
            JwtError::Provider(e)
        })
    }
}

fn unknown(kid: Option<&str>) -> JwtError {
    JwtError::UnknownKey(kid.unwrap_or("(none)").to_string())
}

fn find(keys: &[Arc<Key>], kid: Option<&str>) -> Option<Arc<Key>> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned(),
        None if keys.len() == 1 => keys.first().cloned(),
        None => None,
    }
}

/// A JWK usable for verification: asymmetric, meant for signatures.
fn usable(jwk: &Jwk) -> Option<Key> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| !matches!(u, jsonwebtoken::jwk::PublicKeyUse::Signature))
    {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(_) => Family::Ec,
        AlgorithmParameters::OctetKeyPair(_) => Family::Okp,
        // A symmetric key in a JWKS would let anyone who read it sign tokens.
        AlgorithmParameters::OctetKey(_) => return None,
    };
    let alg = jwk
        .common
        .key_algorithm
        .and_then(|a| serde_json::to_value(a).ok())
        .and_then(|v| v.as_str().map(str::to_string));
    Some(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        family,
        decoding: DecodingKey::from_jwk(jwk).ok()?,
    })
}
