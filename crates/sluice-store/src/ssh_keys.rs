//! SSH keys: public keys registered to identities (they log in with them), and the host keys
//! of SSH targets recorded on first contact (trust on first use). The store keeps key text
//! and fingerprints only; parsing keys is the SSH adapter's job.

use crate::tokens::{IdentityRow, TokenError, IDENTITY_COLUMNS};
use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use sluice_core::time::now_micros;
use sluice_core::Identity;

/// A registered identity key, as listed.
#[derive(Clone, Debug, Serialize, Deserialize, schemars::JsonSchema)]
pub struct IdentityKey {
    /// `SHA256:…` fingerprint.
    pub fingerprint: String,
    /// Identity it logs in.
    pub identity: String,
    /// The key in OpenSSH form (`ssh-ed25519 AAAA… comment`).
    pub public_key: String,
    /// Who registered it.
    pub created_by: String,
    /// When, µs since epoch.
    pub created_us: i64,
}

/// Registers `public_key` (fingerprint `fingerprint`) to identity `identity`.
pub fn add_identity_key(
    db: &Connection,
    identity: &str,
    fingerprint: &str,
    public_key: &str,
    created_by: &str,
) -> Result<IdentityKey, StoreError> {
    let exists: Option<String> = db
        .query_row(
            "SELECT name FROM identities WHERE name = ?1",
            [identity],
            |r| r.get(0),
        )
        .optional()?;
    if exists.is_none() {
        return Err(StoreError::NotFound(format!("identity {identity:?}")));
    }
    let key = IdentityKey {
        fingerprint: fingerprint.to_string(),
        identity: identity.to_string(),
        public_key: public_key.to_string(),
        created_by: created_by.to_string(),
        created_us: now_micros(),
    };
    let n = db.execute(
        "INSERT OR IGNORE INTO identity_keys (fingerprint, identity, public_key, created_by, created_us)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![key.fingerprint, key.identity, key.public_key, key.created_by, key.created_us],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!("key {fingerprint}")));
    }
    Ok(key)
}

/// Removes a registered key.
pub fn remove_identity_key(
    db: &Connection,
    identity: &str,
    fingerprint: &str,
) -> Result<(), StoreError> {
    let n = db.execute(
        "DELETE FROM identity_keys WHERE identity = ?1 AND fingerprint = ?2",
        params![identity, fingerprint],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "key {fingerprint} of {identity:?}"
        )));
    }
    Ok(())
}

/// The keys registered to `identity` (all identities when `None`).
pub fn list_identity_keys(
    db: &Connection,
    identity: Option<&str>,
) -> Result<Vec<IdentityKey>, StoreError> {
    let mut stmt = db.prepare(
        "SELECT fingerprint, identity, public_key, created_by, created_us FROM identity_keys
         WHERE ?1 IS NULL OR identity = ?1 ORDER BY identity, created_us",
    )?;
    let rows = stmt.query_map([identity], |r| {
        Ok(IdentityKey {
            fingerprint: r.get(0)?,
            identity: r.get(1)?,
            public_key: r.get(2)?,
            created_by: r.get(3)?,
            created_us: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The identity a key with `fingerprint` logs in, or why it may not.
pub fn identity_by_key(
    db: &Connection,
    fingerprint: &str,
) -> Result<Result<Identity, TokenError>, StoreError> {
    identity_where(
        db,
        "FROM identity_keys k JOIN identities i ON i.name = k.identity WHERE k.fingerprint = ?1",
        fingerprint,
    )
}

/// The identity named `name` (an SSH certificate names its identity); blocked identities
/// are refused.
pub fn identity_by_name(
    db: &Connection,
    name: &str,
) -> Result<Result<Identity, TokenError>, StoreError> {
    identity_where(db, "FROM identities i WHERE i.name = ?1", name)
}

fn identity_where(
    db: &Connection,
    from_where: &str,
    param: &str,
) -> Result<Result<Identity, TokenError>, StoreError> {
    let row = db
        .query_row(
            &format!("SELECT {IDENTITY_COLUMNS} {from_where}"),
            [param],
            |r| IdentityRow::read(r, 0),
        )
        .optional()?;
    let Some(identity) = row else {
        return Ok(Err(TokenError::Unknown));
    };
    if identity.blocked_us.is_some() {
        return Ok(Err(TokenError::Blocked));
    }
    Ok(Ok(identity.into_identity(None)?))
}

/// What the store knows of a target's host key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeyCheck {
    /// The key matches the one recorded.
    Known,
    /// No key was recorded; this one now is.
    Recorded,
    /// Another key was recorded (the target changed keys, or someone is in the middle).
    Mismatch {
        /// The key recorded first.
        expected: String,
    },
}

/// Checks `public_key` (OpenSSH form without comment) against the key recorded for the
/// connection's target, recording it if none is (trust on first use).
pub fn check_host_key(
    db: &Connection,
    connection: &str,
    host: &str,
    port: u16,
    public_key: &str,
) -> Result<HostKeyCheck, StoreError> {
    db.execute(
        "INSERT OR IGNORE INTO known_hosts (connection, host, port, public_key, first_us)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![connection, host, port, public_key, now_micros()],
    )?;
    if db.changes() == 1 {
        return Ok(HostKeyCheck::Recorded);
    }
    let known: String = db.query_row(
        "SELECT public_key FROM known_hosts WHERE connection = ?1 AND host = ?2 AND port = ?3",
        params![connection, host, port],
        |r| r.get(0),
    )?;
    Ok(if known == public_key {
        HostKeyCheck::Known
    } else {
        HostKeyCheck::Mismatch { expected: known }
    })
}

/// Forgets the recorded host key of a connection's target (after a legitimate key change).
pub fn forget_host_key(db: &Connection, connection: &str) -> Result<usize, StoreError> {
    Ok(db.execute(
        "DELETE FROM known_hosts WHERE connection = ?1",
        [connection],
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::IdentityKind;

    fn db() -> Result<Connection, Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("sluice-sshkeys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(crate::schema::open(&dir.join("t.db"))?)
    }

    #[test]
    fn keys_log_in_their_identity_until_it_is_blocked() -> Result<(), Box<dyn std::error::Error>> {
        let db = db()?;
        crate::tokens::upsert_identity(&db, "alice", IdentityKind::User, &["dev".into()])?;
        assert!(matches!(
            add_identity_key(&db, "nobody", "SHA256:x", "ssh-ed25519 AAAA", "admin"),
            Err(StoreError::NotFound(_))
        ));
        add_identity_key(&db, "alice", "SHA256:a", "ssh-ed25519 AAAA", "admin")?;
        assert!(matches!(
            add_identity_key(&db, "alice", "SHA256:a", "ssh-ed25519 AAAA", "admin"),
            Err(StoreError::Conflict(_))
        ));
        let who = identity_by_key(&db, "SHA256:a")??;
        assert_eq!(
            (who.name.as_str(), who.groups),
            ("alice", vec!["dev".to_string()])
        );
        assert_eq!(identity_by_key(&db, "SHA256:b")?, Err(TokenError::Unknown));
        crate::tokens::block(&db, "alice", None)?;
        assert_eq!(identity_by_key(&db, "SHA256:a")?, Err(TokenError::Blocked));
        assert_eq!(list_identity_keys(&db, Some("alice"))?.len(), 1);
        remove_identity_key(&db, "alice", "SHA256:a")?;
        assert!(list_identity_keys(&db, None)?.is_empty());
        Ok(())
    }

    #[test]
    fn the_first_host_key_is_recorded_then_enforced() -> Result<(), Box<dyn std::error::Error>> {
        let db = db()?;
        assert_eq!(
            check_host_key(&db, "c", "h", 22, "k1")?,
            HostKeyCheck::Recorded
        );
        assert_eq!(
            check_host_key(&db, "c", "h", 22, "k1")?,
            HostKeyCheck::Known
        );
        assert_eq!(
            check_host_key(&db, "c", "h", 22, "k2")?,
            HostKeyCheck::Mismatch {
                expected: "k1".into()
            }
        );
        assert_eq!(forget_host_key(&db, "c")?, 1);
        assert_eq!(
            check_host_key(&db, "c", "h", 22, "k2")?,
            HostKeyCheck::Recorded
        );
        Ok(())
    }
}
