//! Reviews: held commands and access requests, with their approvals.
//!
//! A decision is a read-modify-write of one review inside a transaction ([`update`]), so two
//! approvers deciding at once cannot both win or lose an approval.

use crate::StoreError;
use rusqlite::{params, Connection as Db, OptionalExtension};
use sluice_core::{Review, ReviewKind, ReviewStatus};

/// Stores a new review.
pub fn insert(db: &Db, review: &Review) -> Result<(), StoreError> {
    let n = db.execute(
        "INSERT OR IGNORE INTO reviews
            (id, kind, status, requester, connection, created_us, until_us, body_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            review.id,
            review.kind.as_str(),
            review.status.as_str(),
            review.requester,
            review.connection,
            review.created_us,
            review.access_until_us,
            serde_json::to_string(review)?
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!("review {:?}", review.id)));
    }
    Ok(())
}

/// One review.
pub fn get(db: &Db, id: &str) -> Result<Review, StoreError> {
    let json: Option<String> = db
        .query_row("SELECT body_json FROM reviews WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    match json {
        Some(j) => Ok(serde_json::from_str(&j)?),
        None => Err(StoreError::NotFound(format!("review {id:?}"))),
    }
}

/// Reviews (only pending ones when `pending_only`), newest first: `limit` of them after
/// skipping `offset`.
pub fn list(
    db: &Db,
    pending_only: bool,
    limit: u32,
    offset: u32,
) -> Result<Vec<Review>, StoreError> {
    let sql = if pending_only {
        "SELECT body_json FROM reviews WHERE status = 'pending'
         ORDER BY created_us DESC, id LIMIT ?1 OFFSET ?2"
    } else {
        "SELECT body_json FROM reviews ORDER BY created_us DESC, id LIMIT ?1 OFFSET ?2"
    };
    collect(db, sql, params![limit, offset])
}

/// Applies `change` to review `id` in one transaction and stores the result when `change`
/// accepts it. The outer error is the store's; the inner one is `change`'s refusal.
pub fn update<E>(
    db: &mut Db,
    id: &str,
    change: impl FnOnce(&mut Review) -> Result<(), E>,
) -> Result<Result<Review, E>, StoreError> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut review = get(&tx, id)?;
    if let Err(e) = change(&mut review) {
        return Ok(Err(e));
    }
    tx.execute(
        "UPDATE reviews SET status = ?2, until_us = ?3, body_json = ?4 WHERE id = ?1",
        params![
            review.id,
            review.status.as_str(),
            review.access_until_us,
            serde_json::to_string(&review)?
        ],
    )?;
    tx.commit()?;
    Ok(Ok(review))
}

/// The end of `identity`'s approved access to `connection` that is still running at `now_us`.
pub fn access_until(
    db: &Db,
    identity: &str,
    connection: &str,
    now_us: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(db.query_row(
        "SELECT MAX(until_us) FROM reviews
         WHERE requester = ?1 AND connection = ?2 AND kind = 'access' AND status = 'approved'
           AND until_us > ?3",
        params![identity, connection, now_us],
        |r| r.get(0),
    )?)
}

/// Approved access grants still running at `now_us` (to schedule their expiry at start-up).
pub fn running_access(db: &Db, now_us: i64) -> Result<Vec<Review>, StoreError> {
    collect(
        db,
        "SELECT body_json FROM reviews
         WHERE kind = 'access' AND status = 'approved' AND until_us > ?1",
        params![now_us],
    )
}

/// Closes reviews a previous run left pending: command reviews are cancelled (their session
/// is gone), access requests past their deadline expire. Returns how many changed.
pub fn close_stale(db: &mut Db, now_us: i64) -> Result<usize, StoreError> {
    let pending = collect(
        db,
        "SELECT body_json FROM reviews WHERE status = 'pending'",
        [],
    )?;
    let mut changed = 0;
    for r in pending {
        let status = match r.kind {
            ReviewKind::Command => ReviewStatus::Cancelled,
            ReviewKind::Access if r.deadline_us <= now_us => ReviewStatus::Expired,
            ReviewKind::Access => continue,
        };
        let done = update(db, &r.id, |r| {
            if r.status != ReviewStatus::Pending {
                return Err(());
            }
            r.status = status;
            r.decided_us = Some(now_us);
            Ok(())
        })?;
        changed += usize::from(done.is_ok());
    }
    Ok(changed)
}

fn collect(db: &Db, sql: &str, p: impl rusqlite::Params) -> Result<Vec<Review>, StoreError> {
    let mut stmt = db.prepare(sql)?;
    let rows = stmt.query_map(p, |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for json in rows {
        out.push(serde_json::from_str(&json?)?);
    }
    Ok(out)
}
