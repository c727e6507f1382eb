//! # sluice-store
//!
//! Persistence for sluice, behind one [`Store`] handle. The embedded default is SQLite in the
//! data dir (WAL mode).
//!
//! ## Layout
//! - [`schema`]: opening the database and its migrations.
//! - [`tokens`]: identities and their tokens (stored as SHA-256 hashes, never in clear).
//! - [`agents`]: enrolled agents, their pinned public keys and one-time enrollment tokens.
//! - [`catalog`]: connections and grants added at runtime.
//! - [`retention`]: expired recordings, legal holds, deleting a recording.
//! - [`reviews`]: held commands and access requests.
//! - [`recordings`]: reading sessions and their hash-chained event logs.
//! - [`writer`]: the one background thread that writes recordings and audit events in batches
//!   (group commit), so the data path never waits on disk unless `strict` asks it to.
//! - [`signing`]: the Ed25519 key that signs session manifests, and their verification.
//! - [`archive`]: moving ended recordings to object storage.
//! - [`audit_log`]: the audit log's hash chain, signed checkpoints and the sinks' cursors.
//! - [`chain`]: the hash chain that makes a recording tamper-evident.
//! - [`crypto`]: random tokens and hashes (ring, the workspace's one crypto backend).

pub mod agents;
pub mod archive;
pub mod audit_log;
pub mod catalog;
pub mod chain;
pub mod crypto;
pub mod recordings;
pub mod retention;
pub mod reviews;
pub mod schema;
pub mod signing;
pub mod ssh_keys;
pub mod tokens;
pub mod writer;

use std::path::Path;
use std::sync::{Arc, Mutex};

pub use recordings::{AuditFilter, AuditPage, EventRow, SessionFilter, SessionPage, SessionRow};
/// The database connection type the store functions take.
pub use rusqlite::Connection as Db;
/// How a transaction takes its lock; read-then-write transactions use `Immediate`, so a
/// concurrent commit makes them wait (busy timeout) instead of failing with SQLITE_BUSY.
pub use rusqlite::TransactionBehavior;
pub use tokens::{IdentityInfo, TokenError, TokenInfo};
pub use writer::{DurabilityMode, NewEvent, RecordWriter, WriteOp};

/// Errors from the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A file in the data dir could not be read or written.
    #[error("data dir error: {0}")]
    Io(#[from] std::io::Error),
    /// Stored JSON could not be decoded.
    #[error("stored record is corrupt: {0}")]
    Json(#[from] serde_json::Error),
    /// The named object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A stored record cannot be decoded.
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    /// The object already exists.
    #[error("{0} already exists")]
    Conflict(String),
    /// The operation is not possible in this configuration.
    #[error("{0}")]
    Refused(String),
    /// The background task failed.
    #[error("store task failed")]
    Task,
}

/// Handle to the store; cheap to clone. Reads and admin writes go through a shared
/// connection on the blocking pool; recordings go through the [`RecordWriter`].
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl Store {
    /// Opens (creating and migrating if needed) the SQLite store at `path`.
    pub fn open_sqlite(path: &Path) -> Result<Store, StoreError> {
        let conn = schema::open(path)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` with the connection on the blocking thread pool.
    pub async fn run<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().map_err(|_| StoreError::Task)?;
            f(&mut guard)
        })
        .await
        .map_err(|_| StoreError::Task)?
    }

    /// Runs `f` with the connection on the calling thread (start-up and tests only).
    pub fn run_sync<R>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut guard = self.conn.lock().map_err(|_| StoreError::Task)?;
        f(&mut guard)
    }
}
