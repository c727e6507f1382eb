//! A trusted identity provider, as written in the config file.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Algorithms accepted when a provider names none: asymmetric only. HMAC (`HS*`) and `none`
/// are never accepted, whatever the config says.
pub const DEFAULT_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// A trusted identity provider.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Short name; machine identities are named `<name>:<identity claim>`.
    pub name: String,
    /// Issuer URL, exactly as in the tokens' `iss`; discovery is `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted audiences (`aud` must contain one).
    #[serde(deserialize_with = "one_or_many")]
    pub audience: Vec<String>,
    /// Accepted signing algorithms (default: RS*, PS*, ES256/384, EdDSA).
    #[serde(default)]
    pub algorithms: Option<Vec<String>>,
    /// JWKS URL, when the provider has no discovery document.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// PEM CA certificate for the provider's TLS (default: the public web roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Tolerated clock difference for `exp` and `nbf`, in seconds (default 60).
    #[serde(default)]
    pub clock_skew_seconds: Option<u64>,
    /// Claim naming the identity (default `sub`).
    #[serde(default = "sub")]
    pub identity_claim: String,
    /// Claim holding the groups: an array, or a space-separated string (default `groups`).
    #[serde(default = "groups")]
    pub groups_claim: String,
    /// Lifetime of the gateway tokens issued for this provider's identities (token exchange),
    /// in seconds (default 3600).
    #[serde(default)]
    pub token_ttl_seconds: Option<u64>,
    /// People signing in with `sluice login` through this provider.
    #[serde(default)]
    pub login: Option<LoginConfig>,
    /// Claim rules: the first rule whose `match` claims all equal the token's names the
    /// identity and adds groups (e.g. match `repository: acme/api` → name `ci-api`).
    #[serde(default)]
    pub rules: Vec<ClaimRule>,
}

/// How people sign in through a provider (`sluice login --device`): the CLI runs the flow as a
/// public client and trades the ID token for a gateway session token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// The CLI's client id at the provider (ID tokens must be for it).
    pub client_id: String,
    /// Scopes asked for (default `openid profile email`).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// Claim naming the person (default `preferred_username`; then `email`, then `sub`).
    #[serde(default = "preferred_username")]
    pub name_claim: String,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(String::from).to_vec()
}

fn preferred_username() -> String {
    "preferred_username".into()
}

/// Maps tokens with given claim values to an identity.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRule {
    /// Claim values that must all be equal (strings; other JSON values compare by their text).
    #[serde(rename = "match")]
    pub matches: BTreeMap<String, String>,
    /// Identity name (default: `<provider>:<identity claim>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Groups added.
    #[serde(default)]
    pub groups: Vec<String>,
}

fn sub() -> String {
    "sub".into()
}

fn groups() -> String {
    "groups".into()
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

impl ProviderConfig {
    /// Checks what serde cannot; the message names the problem.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || self.name.contains(':') {
            return Err(format!(
                "invalid provider name {:?}: non-empty, no ':'",
                self.name
            ));
        }
        if !(self.issuer.starts_with("https://") || self.issuer.starts_with("http://")) {
            return Err(format!("issuer {:?} must be an http(s) URL", self.issuer));
        }
        if self.audience.is_empty() || self.audience.iter().any(String::is_empty) {
            return Err("audience must name at least one non-empty audience".into());
        }
        if let Some(l) = &self.login {
            if l.client_id.is_empty() {
                return Err("login.client_id must not be empty".into());
            }
            if !l.scopes.iter().any(|s| s == "openid") {
                return Err("login.scopes must include openid".into());
            }
        }
        for a in self.algorithms.iter().flatten() {
            if !DEFAULT_ALGORITHMS.contains(&a.as_str()) {
                return Err(format!(
                    "algorithm {a:?} is not accepted: use asymmetric algorithms ({})",
                    DEFAULT_ALGORITHMS.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// The accepted algorithms.
    pub fn algorithms(&self) -> Vec<String> {
        self.algorithms
            .clone()
            .unwrap_or_else(|| DEFAULT_ALGORITHMS.iter().map(|s| s.to_string()).collect())
    }

    /// Lifetime of gateway tokens issued for this provider's identities.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_seconds.unwrap_or(3600).max(1))
    }

    /// The clock-skew tolerance.
    pub fn clock_skew(&self) -> Duration {
        Duration::from_secs(self.clock_skew_seconds.unwrap_or(60))
    }
}
