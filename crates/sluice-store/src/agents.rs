//! Agents: their pinned public keys, one-time enrollment tokens and revocation.

use crate::crypto::{hex, random_bytes, sha256};
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sluice_core::time::now_micros;
use sluice_core::Secret;

/// An agent as stored (never its enrollment token).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct AgentRecord {
    /// Name connections use in `via:`.
    pub name: String,
    /// The pinned Ed25519 public key (32 bytes), once enrolled.
    #[serde(with = "hex_key")]
    #[schemars(with = "Option<String>")]
    pub public_key: Option<Vec<u8>>,
    /// Who created it.
    pub created_by: String,
    /// When it was created.
    pub created_us: i64,
    /// When its key was pinned.
    pub enrolled_us: Option<i64>,
    /// When its enrollment token stops working, while unused.
    pub token_expires_us: Option<i64>,
    /// When it was revoked, if it was.
    pub revoked_us: Option<i64>,
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(key: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(k) => s.serialize_some(&crate::crypto::hex(k)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let s: Option<String> = Option::deserialize(d)?;
        Ok(s.and_then(|s| crate::crypto::unhex(&s)))
    }
}

/// Creates agent `name`. With `public_key` the key is pinned at once (no token); otherwise a
/// one-time enrollment token valid for `ttl_us` is returned.
pub fn create(
    db: &Connection,
    name: &str,
    public_key: Option<&[u8]>,
    ttl_us: i64,
    created_by: &str,
) -> Result<(AgentRecord, Option<Secret<String>>), StoreError> {
    let now = now_micros();
    let token = public_key
        .is_none()
        .then(|| format!("sle_{}", hex(&random_bytes::<32>())));
    let expires = token.as_ref().map(|_| now.saturating_add(ttl_us));
    let n = db.execute(
        "INSERT OR IGNORE INTO agents
             (name, public_key, token_hash, token_expires_us, created_by, created_us, enrolled_us)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            name,
            public_key,
            token.as_ref().map(|t| sha256(t.as_bytes()).to_vec()),
            expires,
            created_by,
            now,
            public_key.map(|_| now),
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!("agent {name:?}")));
    }
    Ok((get(db, name)?, token.map(Secret::new)))
}

/// Trades a valid, unused, unexpired enrollment token for a pinned `public_key`; returns the
/// agent. The token stops working whatever the outcome of a later call.
pub fn enroll(
    db: &Connection,
    token: &Secret<String>,
    public_key: &[u8],
) -> Result<AgentRecord, StoreError> {
    let hash = sha256(token.expose().as_bytes());
    let name: Option<(String, Option<i64>, Option<i64>)> = db
        .query_row(
            "SELECT name, token_expires_us, revoked_us FROM agents WHERE token_hash = ?1",
            [&hash[..]],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let refused = || StoreError::Refused("invalid or already used enrollment token".into());
    let Some((name, expires, revoked)) = name else {
        return Err(refused());
    };
    if revoked.is_some() {
        return Err(StoreError::Refused(format!("agent {name:?} is revoked")));
    }
    let now = now_micros();
    if expires.is_some_and(|e| e <= now) {
        return Err(StoreError::Refused("enrollment token expired".into()));
    }
    db.execute(
        "UPDATE agents SET public_key = ?2, enrolled_us = ?3, token_hash = NULL,
             token_expires_us = NULL WHERE name = ?1",
        params![name, public_key, now],
    )?;
    get(db, &name)
}

/// One agent.
pub fn get(db: &Connection, name: &str) -> Result<AgentRecord, StoreError> {
    db.query_row(&select("WHERE name = ?1"), [name], row)
        .optional()?
        .ok_or_else(|| StoreError::NotFound(format!("agent {name:?}")))
}

/// All agents, by name.
pub fn list(db: &Connection) -> Result<Vec<AgentRecord>, StoreError> {
    let mut stmt = db.prepare(&select("ORDER BY name"))?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes an agent: its key and any unused token stop working. Revoking twice is not an
/// error; an unknown name is.
pub fn revoke(db: &Connection, name: &str) -> Result<AgentRecord, StoreError> {
    db.execute(
        "UPDATE agents SET revoked_us = ?2, token_hash = NULL, token_expires_us = NULL
         WHERE name = ?1 AND revoked_us IS NULL",
        params![name, now_micros()],
    )?;
    get(db, name)
}

fn select(tail: &str) -> String {
    format!(
        "SELECT name, public_key, created_by, created_us, enrolled_us, token_expires_us, \
         revoked_us FROM agents {tail}"
    )
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentRecord> {
    Ok(AgentRecord {
        name: r.get(0)?,
        public_key: r.get(1)?,
        created_by: r.get(2)?,
        created_us: r.get(3)?,
        enrolled_us: r.get(4)?,
        token_expires_us: r.get(5)?,
        revoked_us: r.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Result<Connection, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("sluice-agents-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(crate::schema::open(&dir.join("db.sqlite"))?)
    }

    #[test]
    fn token_enrolls_once_and_revocation_sticks() -> Result<(), Box<dyn std::error::Error>> {
        let db = db()?;
        let (rec, token) = create(&db, "edge", None, 60_000_000, "admin")?;
        assert!(rec.public_key.is_none());
        let token = token.ok_or("missing")?;
        let key = [7u8; 32];
        let rec = enroll(&db, &token, &key)?;
        assert_eq!(rec.public_key.as_deref(), Some(&key[..]));
        assert!(matches!(
            enroll(&db, &token, &key),
            Err(StoreError::Refused(_))
        ));
        assert!(matches!(
            create(&db, "edge", None, 1, "admin"),
            Err(StoreError::Conflict(_))
        ));
        assert!(revoke(&db, "edge")?.revoked_us.is_some());
        assert!(matches!(revoke(&db, "nope"), Err(StoreError::NotFound(_))));
        Ok(())
    }

    #[test]
    fn expired_and_revoked_tokens_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let db = db()?;
        let (_, token) = create(&db, "old", None, 0, "admin")?;
        assert!(matches!(
            enroll(&db, &token.ok_or("missing")?, &[1; 32]),
            Err(StoreError::Refused(m)) if m.contains("expired")
        ));
        let (_, token) = create(&db, "gone", None, 60_000_000, "admin")?;
        revoke(&db, "gone")?;
        assert!(enroll(&db, &token.ok_or("missing")?, &[1; 32]).is_err());
        let (rec, token) = create(&db, "pinned", Some(&[2; 32]), 0, "admin")?;
        assert!(token.is_none());
        assert!(rec.enrolled_us.is_some());
        Ok(())
    }
}
