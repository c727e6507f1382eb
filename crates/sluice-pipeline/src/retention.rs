//! Retention: deletes recordings past their connection's retention, skipping legal holds;
//! every deletion is an audit event (`recording.deleted`).

use crate::{audit, Pipeline};
use sluice_core::{Identity, Outcome};
use sluice_store::{retention, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// A boxed future, as [`ArchiveStore`] returns.
pub type ArchiveFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, String>> + Send + 'a>>;

/// Where recordings live outside the database (object storage).
pub trait ArchiveStore: Send + Sync {
    /// Deletes the archived recording at `key`.
    fn delete<'a>(&'a self, key: &'a str) -> ArchiveFuture<'a, ()>;
}

/// How long recordings are kept.
#[derive(Debug, Clone, Default)]
pub struct RetentionPolicy {
    /// For connections without their own.
    pub default: Option<Duration>,
    /// By connection name.
    pub per_connection: BTreeMap<String, Duration>,
}

impl RetentionPolicy {
    /// Whether anything is ever deleted.
    pub fn is_active(&self) -> bool {
        self.default.is_some() || !self.per_connection.is_empty()
    }
}

/// Sessions deleted in one pass at most (the next pass continues).
const PASS_LIMIT: usize = 10_000;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl Pipeline {
    /// Deletes every expired, unheld recording; the ids deleted. `by` is who asked (an admin
    /// through the API), or `None` for the background job.
    pub async fn apply_retention(
        &self,
        policy: &RetentionPolicy,
        archive: Option<Arc<dyn ArchiveStore>>,
        by: Option<&Identity>,
    ) -> Result<Vec<String>, StoreError> {
        if !policy.is_active() {
            return Ok(Vec::new());
        }
        let default = policy.default.map(micros);
        let overrides: BTreeMap<String, i64> = policy
            .per_connection
            .iter()
            .map(|(k, v)| (k.clone(), micros(*v)))
            .collect();
        let now = sluice_core::time::now_micros();
        let expired = self
            .store()
            .run(move |c| retention::expired(c, now, default, &overrides, PASS_LIMIT))
            .await?;
        let mut deleted = Vec::new();
        for s in expired {
            // The row goes first, with the hold re-checked in the same transaction; only then
            // the archived object (named by the row as it was deleted, not as first read).
            let id = s.id.clone();
            let Some(archived) = self
                .store()
                .run(move |c| retention::delete_session(c, &id))
                .await?
            else {
                continue;
            };
            let mut e = self.retention_event(by, Outcome::Success, &s);
            e.reason = Some(format!(
                "retention: ended {} days ago",
                now.saturating_sub(s.ended_us) / 86_400_000_000
            ));
            if let Some(key) = archived {
                let gone = match &archive {
                    Some(store) => store.delete(&key).await,
                    None => Err("no object storage is configured".into()),
                };
                if let Err(why) = gone {
                    e.outcome = Outcome::Failure;
                    e.reason = Some(format!(
                        "session deleted, but its archived recording {key} was not: {why}"
                    ));
                }
            }
            self.audit(e);
            deleted.push(s.id);
        }
        Ok(deleted)
    }

    fn retention_event(
        &self,
        by: Option<&Identity>,
        outcome: Outcome,
        s: &retention::Expired,
    ) -> sluice_core::AuditEvent {
        let mut e = match by {
            Some(i) => audit::by(i, "recording.deleted", outcome),
            None => audit::event("recording.deleted", outcome),
        };
        e.session_id = Some(s.id.clone());
        e.connection = Some(s.connection.clone());
        e.target = Some(s.identity.clone());
        e
    }
}
