//! Recordings in S3-compatible object storage (`storage: {type: s3}`): a background job moves
//! each ended, signed session's events out of the database into one object
//! (`<prefix><session id>.rec`); the database keeps the session row with its signed manifest
//! and the object's key. Reads fetch the object; `sluice verify` checks it against the
//! manifest exactly as before, so an object altered in the bucket is caught.

use crate::config::S3Config;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};
use sluice_core::Outcome;
use sluice_pipeline::retention::{ArchiveFuture, ArchiveStore};
use sluice_pipeline::{audit, Pipeline};
use sluice_store::{archive, recordings, EventRow, StoreError};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// Sessions moved per pass.
const PASS: usize = 100;

/// The bucket recordings are moved to.
pub struct Archive {
    store: Box<dyn ObjectStore>,
    prefix: String,
}

/// The storage settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("storage: {0}")]
pub struct ArchiveError(String);

impl Archive {
    /// Connects nothing yet; checks the settings and reads the credentials from the environment.
    pub fn new(cfg: &S3Config) -> Result<Archive, ArchiveError> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&cfg.bucket)
            .with_region(cfg.region.as_deref().unwrap_or("us-east-1"))
            .with_allow_http(cfg.allow_http)
            // A read waits at most this long for a bucket that is down; the archive job
            // retries on its own schedule anyway.
            .with_retry(object_store::RetryConfig {
                backoff: object_store::BackoffConfig::default(),
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
            });
        if let Some(e) = &cfg.endpoint {
            b = b.with_endpoint(e);
        }
        let env = |var: &String| {
            std::env::var(var)
                .map_err(|_| ArchiveError(format!("environment variable {var} is not set")))
        };
        if let Some(v) = &cfg.access_key_env {
            b = b.with_access_key_id(env(v)?);
        }
        if let Some(v) = &cfg.secret_key_env {
            b = b.with_secret_access_key(env(v)?);
        }
        let store = b.build().map_err(|e| ArchiveError(e.to_string()))?;
        Ok(Archive {
            store: Box::new(store),
            prefix: cfg.prefix.clone().unwrap_or_else(|| "recordings/".into()),
        })
    }

    fn key(&self, session_id: &str) -> String {
        format!("{}{session_id}.rec", self.prefix)
    }

    /// The events of the recording archived at `key`.
    pub async fn events(&self, session_id: &str, key: &str) -> Result<Vec<EventRow>, StoreError> {
        let got = self
            .store
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| StoreError::Corrupt(format!("archived recording {key}: {e}")))?;
        let bytes = got
            .bytes()
            .await
            .map_err(|e| StoreError::Corrupt(format!("archived recording {key}: {e}")))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| StoreError::Corrupt(format!("archived recording {key} is not UTF-8")))?;
        recordings::decode_body(session_id, text)
    }

    /// Moves every due recording; how many.
    pub async fn run_once(&self, pipeline: &Pipeline) -> Result<usize, StoreError> {
        let due = pipeline.store().run(|c| archive::pending(c, PASS)).await?;
        let mut moved = 0;
        for id in due {
            let sid = id.clone();
            let body = pipeline
                .store()
                .run(move |c| archive::body(c, &sid))
                .await?;
            let key = self.key(&id);
            if let Err(e) = self
                .store
                .put(
                    &ObjectPath::from(key.as_str()),
                    PutPayload::from(body.into_bytes()),
                )
                .await
            {
                warn!(session = %id, error = %e, "recording not archived; retrying later");
                return Ok(moved);
            }
            let (sid, k) = (id.clone(), key.clone());
            match pipeline
                .store()
                .run(move |c| archive::mark_archived(c, &sid, &k))
                .await
            {
                Ok(()) => {}
                Err(StoreError::NotFound(_)) => {
                    // Retention deleted the session during the upload: no orphan object.
                    let _ = self.store.delete(&ObjectPath::from(key.as_str())).await;
                    continue;
                }
                Err(e) => return Err(e),
            }
            let mut e = audit::event("recording.archived", Outcome::Success);
            e.session_id = Some(id);
            e.target = Some(key);
            pipeline.audit(e);
            moved += 1;
        }
        Ok(moved)
    }
}

impl ArchiveStore for Archive {
    fn delete<'a>(&'a self, key: &'a str) -> ArchiveFuture<'a, ()> {
        Box::pin(async move {
            self.store
                .delete(&ObjectPath::from(key))
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// One pass of the archive job (`runtime` runs it every few seconds): moves what is due, logs.
pub async fn archive_pass(pipeline: Pipeline, archive: Arc<Archive>) {
    match archive.run_once(&pipeline).await {
        Ok(0) => {}
        Ok(n) => info!(sessions = n, "recordings moved to object storage"),
        Err(e) => warn!(error = %e, "archiving recordings failed"),
    }
}
