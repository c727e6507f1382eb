//! Who is acting: an authenticated identity with its groups.

use serde::{Deserialize, Serialize};

/// The kind of an identity, recorded with every session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum IdentityKind {
    /// A person (OIDC login).
    User,
    /// A machine holding a gateway-issued token.
    ServiceAccount,
    /// A machine presenting a JWT from a trusted identity provider.
    Machine,
    /// The bootstrap administrator created on first start.
    Bootstrap,
}

impl IdentityKind {
    /// Stable text form used in the store and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::User => "user",
            IdentityKind::ServiceAccount => "service_account",
            IdentityKind::Machine => "machine",
            IdentityKind::Bootstrap => "bootstrap",
        }
    }

    /// Parses the text form written by [`IdentityKind::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(IdentityKind::User),
            "service_account" => Some(IdentityKind::ServiceAccount),
            "machine" => Some(IdentityKind::Machine),
            "bootstrap" => Some(IdentityKind::Bootstrap),
            _ => None,
        }
    }
}

/// An authenticated identity, as it was at the moment of authentication.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Identity {
    /// Unique name (service account name, or the user's preferred name).
    pub name: String,
    /// What kind of principal this is.
    pub kind: IdentityKind,
    /// OIDC subject, when the identity came from an IdP.
    pub subject: Option<String>,
    /// OIDC issuer, when the identity came from an IdP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Groups at authentication time; grants are given to groups.
    pub groups: Vec<String>,
    /// Id of the token that authenticated this identity (never the token itself).
    pub token_id: Option<String>,
}

impl Identity {
    /// True when the identity belongs to `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// True when the identity may administer the gateway.
    pub fn is_admin(&self) -> bool {
        self.kind == IdentityKind::Bootstrap || self.in_group("admin")
    }
}
