//! Identities and the tokens that authenticate them.
//!
//! A token is `slc_` + 64 hex digits of CSPRNG output. Only its SHA-256 is stored; the clear
//! token is returned once, at creation.

use crate::crypto::{hex, random_bytes, sha256};
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sluice_core::time::now_micros;
use sluice_core::{Identity, IdentityKind, Secret};

/// Why a presented token was not accepted.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// No such token.
    #[error("unknown token")]
    Unknown,
    /// The token's lifetime is over.
    #[error("token expired")]
    Expired,
    /// The token was revoked.
    #[error("token revoked")]
    Revoked,
    /// The identity is blocked.
    #[error("identity is blocked")]
    Blocked,
}

/// A token as listed: everything but the secret.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TokenInfo {
    /// Token id (not the secret).
    pub id: String,
    /// Identity it authenticates.
    pub identity: String,
    /// Identity kind.
    pub kind: String,
    /// Creation time, µs since epoch.
    pub created_us: i64,
    /// Expiry, µs since epoch; `None` never expires.
    pub expires_us: Option<i64>,
    /// Revocation time, if revoked.
    pub revoked_us: Option<i64>,
}

/// Creates (or updates the groups of) an identity.
pub fn upsert_identity(
    conn: &Connection,
    name: &str,
    kind: IdentityKind,
    groups: &[String],
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO identities (name, kind, groups_json, created_us) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT(name) DO UPDATE SET groups_json = excluded.groups_json",
        params![
            name,
            kind.as_str(),
            serde_json::to_string(groups)?,
            now_micros()
        ],
    )?;
    Ok(())
}

/// What the store says about an identity a trusted provider vouched for.
#[derive(Debug, PartialEq, Eq)]
pub enum External {
    /// Known (or now recorded) and not blocked.
    Admitted,
    /// Blocked.
    Blocked,
    /// The name belongs to an identity of another kind or issuer (a service account, the
    /// bootstrap admin, a person from another provider): the token may not take it over.
    NameTaken,
}

/// Records an identity authenticated by a trusted provider (so it can be listed and blocked)
/// and says whether it may act. It reads first and writes only when the identity is new or
/// its groups or subject changed, so a token in steady use costs one read.
pub fn remember_external(conn: &Connection, identity: &Identity) -> Result<External, StoreError> {
    struct Stored {
        kind: String,
        issuer: Option<String>,
        subject: Option<String>,
        groups: String,
        blocked: Option<i64>,
    }
    let row = conn
        .query_row(
            "SELECT kind, issuer, subject, groups_json, blocked_us FROM identities WHERE name = ?1",
            [&identity.name],
            |r| {
                Ok(Stored {
                    kind: r.get(0)?,
                    issuer: r.get(1)?,
                    subject: r.get(2)?,
                    groups: r.get(3)?,
                    blocked: r.get(4)?,
                })
            },
        )
        .optional()?;
    let groups = serde_json::to_string(&identity.groups)?;
    match row {
        None => {
            let inserted = conn.execute(
                "INSERT INTO identities (name, kind, subject, issuer, groups_json, created_us)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO NOTHING",
                params![
                    identity.name,
                    identity.kind.as_str(),
                    identity.subject,
                    identity.issuer,
                    groups,
                    now_micros()
                ],
            )?;
            if inserted == 0 {
                // Recorded by a concurrent login just now: judge that row.
                return remember_external(conn, identity);
            }
            Ok(External::Admitted)
        }
        Some(s) if s.kind != identity.kind.as_str() || s.issuer != identity.issuer => {
            Ok(External::NameTaken)
        }
        Some(s) => {
            if s.blocked.is_some() {
                return Ok(External::Blocked);
            }
            if s.subject != identity.subject || s.groups != groups {
                conn.execute(
                    "UPDATE identities SET groups_json = ?2, subject = ?3 WHERE name = ?1",
                    params![identity.name, groups, identity.subject],
                )?;
            }
            Ok(External::Admitted)
        }
    }
}

/// Creates a service account with one token. Fails if the name is taken.
pub fn create_service_account(
    conn: &mut Connection,
    name: &str,
    groups: &[String],
    ttl_us: Option<i64>,
) -> Result<(TokenInfo, Secret<String>), StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let exists: Option<String> = tx
        .query_row("SELECT name FROM identities WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Conflict(format!("identity {name:?}")));
    }
    upsert_identity(&tx, name, IdentityKind::ServiceAccount, groups)?;
    let issued = issue_token(&tx, name, IdentityKind::ServiceAccount, ttl_us)?;
    tx.commit()?;
    Ok(issued)
}

/// Issues a new token for an existing identity.
pub fn issue_token(
    conn: &Connection,
    identity: &str,
    kind: IdentityKind,
    ttl_us: Option<i64>,
) -> Result<(TokenInfo, Secret<String>), StoreError> {
    let token = format!("slc_{}", hex(&random_bytes::<32>()));
    let id = format!("tok_{}", hex(&random_bytes::<8>()));
    let now = now_micros();
    let expires = ttl_us.map(|t| now.saturating_add(t));
    conn.execute(
        "INSERT INTO tokens (id, identity, hash, created_us, expires_us) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, identity, &sha256(token.as_bytes())[..], now, expires],
    )?;
    let info = TokenInfo {
        id,
        identity: identity.to_string(),
        kind: kind.as_str().to_string(),
        created_us: now,
        expires_us: expires,
        revoked_us: None,
    };
    Ok((info, Secret::new(token)))
}

/// The identity columns a query selects from `identities i`, in the order
/// [`IdentityRow::read`] reads them.
pub(crate) const IDENTITY_COLUMNS: &str =
    "i.name, i.kind, i.subject, i.groups_json, i.blocked_us, i.issuer";

/// An identity as stored, before it is admitted.
pub(crate) struct IdentityRow {
    name: String,
    kind: String,
    subject: Option<String>,
    groups_json: String,
    /// When it was blocked, if it is.
    pub blocked_us: Option<i64>,
    issuer: Option<String>,
}

impl IdentityRow {
    /// Reads [`IDENTITY_COLUMNS`] starting at column `at`.
    pub(crate) fn read(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<IdentityRow> {
        Ok(IdentityRow {
            name: r.get(at)?,
            kind: r.get(at + 1)?,
            subject: r.get(at + 2)?,
            groups_json: r.get(at + 3)?,
            blocked_us: r.get(at + 4)?,
            issuer: r.get(at + 5)?,
        })
    }

    /// The identity, authenticated by token `token_id` (or by other means when `None`).
    pub(crate) fn into_identity(self, token_id: Option<String>) -> Result<Identity, StoreError> {
        Ok(Identity {
            name: self.name,
            kind: IdentityKind::parse(&self.kind).unwrap_or(IdentityKind::ServiceAccount),
            subject: self.subject,
            issuer: self.issuer,
            groups: serde_json::from_str(&self.groups_json)?,
            token_id,
        })
    }
}

/// Resolves a presented token to its identity, or says why it is not accepted.
pub fn authenticate(
    conn: &Connection,
    token: &Secret<String>,
) -> Result<Result<Identity, TokenError>, StoreError> {
    let hash = sha256(token.expose().as_bytes());
    let row = conn
        .query_row(
            &format!(
                "SELECT t.id, t.expires_us, t.revoked_us, {IDENTITY_COLUMNS}
                 FROM tokens t JOIN identities i ON i.name = t.identity WHERE t.hash = ?1"
            ),
            [&hash[..]],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Option<i64>>(1)?,
                    r.get::<_, Option<i64>>(2)?,
                    IdentityRow::read(r, 3)?,
                ))
            },
        )
        .optional()?;
    let Some((id, expires, revoked, identity)) = row else {
        return Ok(Err(TokenError::Unknown));
    };
    if identity.blocked_us.is_some() {
        return Ok(Err(TokenError::Blocked));
    }
    if revoked.is_some() {
        return Ok(Err(TokenError::Revoked));
    }
    if expires.is_some_and(|e| e <= now_micros()) {
        return Ok(Err(TokenError::Expired));
    }
    Ok(Ok(identity.into_identity(Some(id))?))
}

/// Lists all tokens, without secrets, newest first.
pub fn list(conn: &Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT t.id, t.identity, i.kind, t.created_us, t.expires_us, t.revoked_us
         FROM tokens t JOIN identities i ON i.name = t.identity ORDER BY t.created_us DESC",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TokenInfo {
            id: r.get(0)?,
            identity: r.get(1)?,
            kind: r.get(2)?,
            created_us: r.get(3)?,
            expires_us: r.get(4)?,
            revoked_us: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a token by id. Revoking twice is not an error; an unknown id is.
pub fn revoke(conn: &Connection, token_id: &str) -> Result<TokenInfo, StoreError> {
    conn.execute(
        "UPDATE tokens SET revoked_us = ?2 WHERE id = ?1 AND revoked_us IS NULL",
        params![token_id, now_micros()],
    )?;
    list(conn)?
        .into_iter()
        .find(|t| t.id == token_id)
        .ok_or_else(|| StoreError::NotFound(format!("token {token_id:?}")))
}

/// An identity as listed.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityInfo {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: String,
    /// Groups.
    pub groups: Vec<String>,
    /// When it was blocked, if it is.
    pub blocked_us: Option<i64>,
    /// Why it was blocked.
    pub blocked_reason: Option<String>,
}

/// Lists identities.
pub fn identities(conn: &Connection) -> Result<Vec<IdentityInfo>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT name, kind, groups_json, blocked_us, blocked_reason FROM identities ORDER BY name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, Option<i64>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (name, kind, groups, blocked_us, blocked_reason) = row?;
        out.push(IdentityInfo {
            name,
            kind,
            groups: serde_json::from_str(&groups)?,
            blocked_us,
            blocked_reason,
        });
    }
    Ok(out)
}

/// Blocks an identity and revokes all its tokens; returns how many tokens were revoked.
pub fn block(conn: &Connection, name: &str, reason: Option<&str>) -> Result<usize, StoreError> {
    let now = now_micros();
    let n = conn.execute(
        "UPDATE identities SET blocked_us = ?2, blocked_reason = ?3 WHERE name = ?1",
        params![name, now, reason],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("identity {name:?}")));
    }
    Ok(conn.execute(
        "UPDATE tokens SET revoked_us = ?2 WHERE identity = ?1 AND revoked_us IS NULL",
        params![name, now],
    )?)
}

/// Lifts a block (revoked tokens stay revoked; issue new ones).
pub fn unblock(conn: &Connection, name: &str) -> Result<(), StoreError> {
    let n = conn.execute(
        "UPDATE identities SET blocked_us = NULL, blocked_reason = NULL WHERE name = ?1",
        params![name],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("identity {name:?}")));
    }
    Ok(())
}

/// True when a bootstrap identity already exists.
pub fn has_bootstrap(conn: &Connection) -> Result<bool, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM identities WHERE kind = 'bootstrap'",
        [],
        |r| r.get(0),
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests;
