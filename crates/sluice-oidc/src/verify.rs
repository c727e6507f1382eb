//! Validating a JWT from a trusted provider and turning its claims into an identity.

use crate::config::ProviderConfig;
use crate::jwks::{Family, KeyCache};
use base64::Engine;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use sluice_core::{Fault, Identity, IdentityKind};
use std::str::FromStr;

/// Why a JWT was not accepted. Messages are safe to show the client and to audit: they never
/// include the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not three base64url parts of JSON.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// `alg` is not on the provider's allow-list (`none` and `HS*` never are).
    #[error("token algorithm {0:?} is not allowed")]
    AlgorithmNotAllowed(String),
    /// No configured provider has this issuer.
    #[error("token issuer {0:?} is not trusted")]
    UntrustedIssuer(String),
    /// The provider publishes no key with this id (even after refetching its keys).
    #[error("token signed with unknown key {0:?}")]
    UnknownKey(String),
    /// The key's type or pinned algorithm does not fit the token's algorithm.
    #[error("token algorithm does not match its signing key")]
    KeyMismatch,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// `exp` is past (beyond the clock-skew tolerance).
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future (beyond the clock-skew tolerance).
    #[error("token not yet valid")]
    NotYetValid,
    /// `aud` does not name this gateway.
    #[error("token audience is not this gateway")]
    WrongAudience,
    /// `iss` does not match after verification.
    #[error("token issuer does not match")]
    WrongIssuer,
    /// A required claim is missing or has the wrong type.
    #[error("token lacks claim {0:?}")]
    MissingClaim(String),
    /// The provider could not be asked for its keys.
    #[error("identity provider unavailable: {0}")]
    Provider(String),
}

impl JwtError {
    /// Whose fault the refusal is.
    pub fn fault(&self) -> Fault {
        match self {
            JwtError::Provider(_) => Fault::Target,
            _ => Fault::Client,
        }
    }
}

/// Whether a presented credential is a JWT rather than a gateway token.
pub fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.bytes().filter(|b| *b == b'.').count() == 2
}

struct Provider {
    cfg: ProviderConfig,
    keys: KeyCache,
}

/// The trusted providers; cheap to share.
pub struct Verifier {
    providers: Vec<Provider>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|p| &p.cfg.name))
            .finish()
    }
}

fn part(s: &str) -> Result<Map<String, Value>, JwtError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::Malformed("a part is not base64url"))?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::Malformed("a part is not a JSON object"))
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Verifier {
    /// Validates the configs and prepares the key caches (nothing is fetched yet).
    /// The error names the provider by its index in `configs`.
    pub fn new(configs: &[ProviderConfig]) -> Result<Verifier, (usize, String)> {
        let mut providers = Vec::new();
        for (i, cfg) in configs.iter().enumerate() {
            cfg.validate().map_err(|m| (i, m))?;
            if providers.iter().any(|p: &Provider| {
                p.cfg.name == cfg.name || same_issuer(&p.cfg.issuer, &cfg.issuer)
            }) {
                return Err((
                    i,
                    format!(
                        "provider {:?} (or its issuer) is configured twice",
                        cfg.name
                    ),
                ));
            }
            providers.push(Provider {
                keys: KeyCache::new(cfg).map_err(|m| (i, m))?,
                cfg: cfg.clone(),
            });
        }
        Ok(Verifier { providers })
    }

    /// The configuration of the provider with issuer `iss`.
    pub fn provider(&self, iss: &str) -> Option<&ProviderConfig> {
        self.providers
            .iter()
            .find(|p| same_issuer(&p.cfg.issuer, iss))
            .map(|p| &p.cfg)
    }

    /// Every configured provider.
    pub fn configs(&self) -> impl Iterator<Item = &ProviderConfig> {
        self.providers.iter().map(|p| &p.cfg)
    }

    /// Whether any provider is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Checks an access token (a machine's credential) and returns the identity it names.
    pub async fn verify(&self, token: &str) -> Result<Identity, JwtError> {
        self.check(token, Purpose::Access).await
    }

    /// Checks an ID token from `sluice login` (its audience is the login client) and returns
    /// the person it names.
    pub async fn verify_id_token(&self, token: &str) -> Result<Identity, JwtError> {
        self.check(token, Purpose::Login).await
    }

    async fn check(&self, token: &str, purpose: Purpose) -> Result<Identity, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(_), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed("not three parts"));
        };
        let header = part(h)?;
        let unverified = part(p)?;
        let alg = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or(JwtError::Malformed("no alg in the header"))?
            .to_string();
        let iss = unverified
            .get("iss")
            .and_then(Value::as_str)
            .ok_or_else(|| JwtError::MissingClaim("iss".into()))?
            .to_string();
        let provider = self
            .providers
            .iter()
            .find(|p| same_issuer(&p.cfg.issuer, &iss))
            .ok_or_else(|| JwtError::UntrustedIssuer(iss.clone()))?;
        if !provider.cfg.algorithms().contains(&alg) {
            return Err(JwtError::AlgorithmNotAllowed(alg));
        }
        let (Some(family), Ok(algorithm)) = (Family::of(&alg), Algorithm::from_str(&alg)) else {
            return Err(JwtError::AlgorithmNotAllowed(alg));
        };
        let kid = header.get("kid").and_then(Value::as_str);
        let key = provider.keys.key(kid).await?;
        if key.family != family || key.alg.as_ref().is_some_and(|a| *a != alg) {
            return Err(JwtError::KeyMismatch);
        }
        let mut v = Validation::new(algorithm);
        v.set_issuer(&[iss.as_str()]);
        let login = provider.cfg.login.as_ref();
        match (purpose, login) {
            (Purpose::Access, _) => v.set_audience(&provider.cfg.audience),
            (Purpose::Login, Some(l)) => v.set_audience(&[l.client_id.as_str()]),
            (Purpose::Login, None) => return Err(JwtError::WrongAudience),
        }
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.leeway = provider.cfg.clock_skew().as_secs();
        v.validate_nbf = true;
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &v)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => JwtError::BadSignature,
                ErrorKind::ExpiredSignature => JwtError::Expired,
                ErrorKind::ImmatureSignature => JwtError::NotYetValid,
                ErrorKind::InvalidAudience => JwtError::WrongAudience,
                ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(c) => JwtError::MissingClaim(c.clone()),
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    JwtError::KeyMismatch
                }
                _ => JwtError::Malformed("the claims could not be read"),
            })?
            .claims;
        match (purpose, login) {
            (Purpose::Login, Some(l)) => person(&provider.cfg, &l.name_claim, &iss, &claims),
            _ => identity(&provider.cfg, &iss, &claims),
        }
    }
}

/// What a token is presented for.
#[derive(Clone, Copy)]
enum Purpose {
    /// A machine's access token, for this gateway's audience.
    Access,
    /// A person's ID token from `sluice login`, for the login client.
    Login,
}

/// The person an ID token names.
fn person(
    cfg: &ProviderConfig,
    name_claim: &str,
    iss: &str,
    claims: &Map<String, Value>,
) -> Result<Identity, JwtError> {
    let name = [name_claim, "email", "sub"]
        .iter()
        .find_map(|c| claims.get(*c).and_then(text))
        .ok_or_else(|| JwtError::MissingClaim(name_claim.to_string()))?;
    let mut groups = groups_of(cfg, claims);
    groups.sort();
    groups.dedup();
    Ok(Identity {
        name,
        kind: IdentityKind::User,
        subject: claims.get("sub").and_then(text),
        issuer: Some(iss.to_string()),
        groups,
        token_id: None,
    })
}

fn groups_of(cfg: &ProviderConfig, claims: &Map<String, Value>) -> Vec<String> {
    match claims.get(&cfg.groups_claim) {
        Some(Value::Array(a)) => a.iter().filter_map(text).collect(),
        Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

fn same_issuer(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The identity `claims` name under `cfg`'s rules.
fn identity(
    cfg: &ProviderConfig,
    iss: &str,
    claims: &Map<String, Value>,
) -> Result<Identity, JwtError> {
    let subject = claims.get("sub").and_then(text);
    let named = claims
        .get(&cfg.identity_claim)
        .and_then(text)
        .ok_or_else(|| JwtError::MissingClaim(cfg.identity_claim.clone()))?;
    let mut groups = groups_of(cfg, claims);
    let mut name = format!("{}:{named}", cfg.name);
    let rule = cfg.rules.iter().find(|r| {
        r.matches
            .iter()
            .all(|(k, want)| claims.get(k).and_then(text).as_deref() == Some(want.as_str()))
    });
    if let Some(r) = rule {
        if let Some(n) = &r.name {
            name = n.clone();
        }
        groups.extend(r.groups.iter().cloned());
    }
    groups.sort();
    groups.dedup();
    Ok(Identity {
        name,
        kind: IdentityKind::Machine,
        subject,
        issuer: Some(iss.to_string()),
        groups,
        // Only gateway tokens have ids here (what logout revokes); a JWT is the provider's.
        token_id: None,
    })
}

#[cfg(test)]
mod tests;
