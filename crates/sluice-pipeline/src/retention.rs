//! Retention: deletes recordings past their connection's retention, skipping legal holds;
//! every deletion is an audit event (`recording.deleted`).

use crate::{audit, Pipeline};
use sluice_core::{Identity, Outcome};
use sluice_store::{retention, StoreError};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Deletes archived recordings from wherever they live outside the database.
pub trait ArchiveStore: Send + Sync {
    /// Deletes the archived recording at `key`.
    fn delete(&self, key: &str) -> Result<(), String>;
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
            if let (Some(key), Some(store)) = (&s.archive, &archive) {
                let (store, key) = (store.clone(), key.clone());
                let gone = tokio::task::spawn_blocking(move || store.delete(&key))
                    .await
                    .map_err(|_| StoreError::Task)?;
                if let Err(why) = gone {
                    let mut e = self.retention_event(by, Outcome::Failure, &s);
                    e.reason = Some(format!("archived recording not deleted: {why}"));
                    self.audit(e);
                    continue;
                }
            }
            let id = s.id.clone();
            if !self
                .store()
                .run(move |c| retention::delete_session(c, &id))
                .await?
            {
                continue;
            }
            let mut e = self.retention_event(by, Outcome::Success, &s);
            e.reason = Some(format!(
                "retention: ended {} µs ago",
                now.saturating_sub(s.ended_us)
            ));
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
