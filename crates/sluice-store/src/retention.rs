//! Retention: which ended sessions are past their keep-until time, legal holds that exempt
//! sessions from deletion, and deleting a recording.

use crate::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeMap;

/// A session whose recording has expired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    /// Session id.
    pub id: String,
    /// Its identity.
    pub identity: String,
    /// Its connection.
    pub connection: String,
    /// When it ended.
    pub ended_us: i64,
    /// Where its events live when not in the database (object key).
    pub archive: Option<String>,
}

/// Ended sessions older than their connection's retention (`overrides`, else `default`), not
/// under a legal hold, oldest first, at most `limit`.
pub fn expired(
    db: &Connection,
    now_us: i64,
    default_us: Option<i64>,
    overrides: &BTreeMap<String, i64>,
    limit: usize,
) -> Result<Vec<Expired>, StoreError> {
    let oldest_cut = overrides
        .values()
        .copied()
        .chain(default_us)
        .min()
        .map(|keep| now_us.saturating_sub(keep));
    let Some(cut) = oldest_cut else {
        return Ok(Vec::new());
    };
    let mut stmt = db.prepare(
        "SELECT s.id, s.identity, s.connection, s.ended_us, s.archive FROM sessions s
         WHERE s.ended_us IS NOT NULL AND s.ended_us < ?1
           AND NOT EXISTS (SELECT 1 FROM legal_holds h
                           WHERE h.session_id = s.id OR h.identity = s.identity)
         ORDER BY s.ended_us",
    )?;
    let rows = stmt.query_map([cut], |r| {
        Ok(Expired {
            id: r.get(0)?,
            identity: r.get(1)?,
            connection: r.get(2)?,
            ended_us: r.get(3)?,
            archive: r.get(4)?,
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        let keep = overrides.get(&row.connection).copied().or(default_us);
        if keep.is_some_and(|k| row.ended_us < now_us.saturating_sub(k)) {
            out.push(row);
            if out.len() >= limit {
                break;
            }
        }
    }
    Ok(out)
}

/// Deletes a session's recording and row, unless a hold appeared meanwhile. `None` when
/// nothing was deleted; otherwise the object key its events were archived at, read in the same
/// transaction (the caller deletes that object after the row is gone, never before).
pub fn delete_session(db: &mut Connection, id: &str) -> Result<Option<Option<String>>, StoreError> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let held: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM legal_holds h JOIN sessions s ON s.id = ?1
                        WHERE h.session_id = s.id OR h.identity = s.identity)",
        [id],
        |r| r.get(0),
    )?;
    if held {
        return Ok(None);
    }
    let archive: Option<Option<String>> = tx
        .query_row("SELECT archive FROM sessions WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(archive) = archive else {
        return Ok(None);
    };
    tx.execute("DELETE FROM event_chunks WHERE session_id = ?1", [id])?;
    tx.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok(Some(archive))
}

/// A legal hold.
#[derive(
    Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Hold {
    /// Hold id (`hold-…`).
    pub id: String,
    /// Held session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Held identity (all of its sessions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Why (case number…).
    pub reason: String,
    /// Who placed it.
    pub created_by: String,
    /// When.
    pub created_us: i64,
}

/// Places a hold.
pub fn add_hold(db: &Connection, h: &Hold) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO legal_holds (id, session_id, identity, reason, created_by, created_us)
         VALUES (?1,?2,?3,?4,?5,?6)",
        params![
            h.id,
            h.session_id,
            h.identity,
            h.reason,
            h.created_by,
            h.created_us
        ],
    )?;
    Ok(())
}

/// Every hold, oldest first.
pub fn list_holds(db: &Connection) -> Result<Vec<Hold>, StoreError> {
    let mut stmt = db.prepare(
        "SELECT id, session_id, identity, reason, created_by, created_us FROM legal_holds
         ORDER BY created_us",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Hold {
            id: r.get(0)?,
            session_id: r.get(1)?,
            identity: r.get(2)?,
            reason: r.get(3)?,
            created_by: r.get(4)?,
            created_us: r.get(5)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Lifts a hold; the hold as it was.
pub fn remove_hold(db: &Connection, id: &str) -> Result<Hold, StoreError> {
    let hold = list_holds(db)?
        .into_iter()
        .find(|h| h.id == id)
        .ok_or_else(|| StoreError::NotFound(format!("hold {id:?}")))?;
    db.execute("DELETE FROM legal_holds WHERE id = ?1", [id])?;
    Ok(hold)
}

/// Whether the session exists.
pub fn session_exists(db: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(db
        .query_row("SELECT 1 FROM sessions WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}
