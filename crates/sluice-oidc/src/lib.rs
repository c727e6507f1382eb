//! # sluice-oidc
//!
//! sluice as an OpenID Connect relying party for machines: a JWT issued by a trusted identity
//! provider (a client-credentials access token, a CI platform's OIDC token) is accepted as a
//! credential and becomes an [`Identity`](sluice_core::Identity).
//!
//! ## Layout
//! - [`config`]: a trusted provider as the config file describes it.
//! - [`jwks`]: discovery and the provider's signing keys, cached, refetched when an unknown
//!   key id shows up (key rotation), at most once a second.
//! - [`verify`]: the checks a token must pass (algorithm allow-list, key, signature, `iss`,
//!   `aud`, `exp`, `nbf` with clock-skew tolerance) and the mapping of its claims to an identity.

pub mod config;
pub mod jwks;
pub mod verify;

pub use config::{ClaimRule, ProviderConfig};
pub use verify::{looks_like_jwt, JwtError, Verifier};
