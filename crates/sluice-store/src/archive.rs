//! Moving ended recordings to object storage: which sessions are due, the recording as one
//! object body, and the switch-over (the database row keeps the manifest and names the object).

use crate::StoreError;
use rusqlite::{params, Connection};

/// Ended, signed sessions whose events are still in the database, oldest first.
pub fn pending(db: &Connection, limit: usize) -> Result<Vec<String>, StoreError> {
    let mut stmt = db.prepare(
        "SELECT id FROM sessions WHERE ended_us IS NOT NULL AND archive IS NULL
         AND manifest_sig IS NOT NULL ORDER BY ended_us LIMIT ?1",
    )?;
    let rows = stmt.query_map([limit as i64], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The session's recording as one body (its stored lines, in order; see
/// [`crate::recordings::decode_body`]).
pub fn body(db: &Connection, session_id: &str) -> Result<String, StoreError> {
    let mut stmt =
        db.prepare("SELECT body FROM event_chunks WHERE session_id = ?1 ORDER BY first_seq")?;
    let chunks = stmt.query_map([session_id], |r| r.get::<_, String>(0))?;
    let mut out = String::new();
    for c in chunks {
        out.push_str(&c?);
    }
    Ok(out)
}

/// Records that the session's recording now lives at `key` and drops its events from the
/// database, in one transaction; `NotFound` when the session was deleted meanwhile.
pub fn mark_archived(db: &mut Connection, session_id: &str, key: &str) -> Result<(), StoreError> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let updated = tx.execute(
        "UPDATE sessions SET archive = ?2 WHERE id = ?1",
        params![session_id, key],
    )?;
    if updated == 0 {
        // Deleted (retention) while it was being uploaded.
        return Err(StoreError::NotFound(format!("session {session_id:?}")));
    }
    tx.execute(
        "DELETE FROM event_chunks WHERE session_id = ?1",
        [session_id],
    )?;
    tx.commit()?;
    Ok(())
}
