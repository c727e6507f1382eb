//! Opening the SQLite database and bringing its schema up to date.

use crate::StoreError;
use rusqlite::Connection;
use std::path::Path;

/// Ordered migrations; the index + 1 is the schema version (`PRAGMA user_version`).
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE identities (
    name        TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    subject     TEXT,
    groups_json TEXT NOT NULL,
    created_us  INTEGER NOT NULL
);
CREATE TABLE tokens (
    id          TEXT PRIMARY KEY,
    identity    TEXT NOT NULL REFERENCES identities(name),
    hash        BLOB NOT NULL UNIQUE,
    created_us  INTEGER NOT NULL,
    expires_us  INTEGER,
    revoked_us  INTEGER
);
CREATE TABLE connections (
    name        TEXT PRIMARY KEY,
    spec_json   TEXT NOT NULL
);
CREATE TABLE grants (
    grp         TEXT NOT NULL,
    connection  TEXT NOT NULL,
    PRIMARY KEY (grp, connection)
);
CREATE TABLE sessions (
    id            TEXT PRIMARY KEY,
    identity      TEXT NOT NULL,
    identity_kind TEXT NOT NULL,
    subject       TEXT,
    groups_json   TEXT NOT NULL,
    connection    TEXT NOT NULL,
    protocol      TEXT NOT NULL,
    client_addr   TEXT NOT NULL,
    target        TEXT NOT NULL,
    started_us    INTEGER NOT NULL,
    ended_us      INTEGER,
    end_reason    TEXT,
    event_count   INTEGER,
    final_hash    TEXT
);
CREATE INDEX sessions_started ON sessions(started_us);
-- A session's events, stored in chunks: one row per session per commit, holding
-- consecutive events as lines of `seq \t ts_us \t kind \t hash \t event-json`.
CREATE TABLE event_chunks (
    session_id  TEXT NOT NULL,
    first_seq   INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE UNIQUE INDEX event_chunks_session ON event_chunks(session_id, first_seq);
CREATE TABLE audit (
    id          TEXT PRIMARY KEY,
    ts_us       INTEGER NOT NULL,
    action      TEXT NOT NULL,
    event_json  TEXT NOT NULL
);
CREATE INDEX audit_ts ON audit(ts_us);
"#,
    r#"
ALTER TABLE identities ADD COLUMN blocked_us INTEGER;
ALTER TABLE identities ADD COLUMN blocked_reason TEXT;
"#,
    r#"
-- Held commands and access requests. The review itself is JSON; the columns are what
-- queries filter on.
CREATE TABLE reviews (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    status      TEXT NOT NULL,
    requester   TEXT NOT NULL,
    connection  TEXT NOT NULL,
    created_us  INTEGER NOT NULL,
    until_us    INTEGER,
    body_json   TEXT NOT NULL
);
CREATE INDEX reviews_status ON reviews(status, created_us);
CREATE INDEX reviews_access ON reviews(requester, connection, kind, status);
"#,
    r#"
-- The OIDC issuer of identities a provider vouched for (people and machines).
ALTER TABLE identities ADD COLUMN issuer TEXT;
"#,
    r#"
-- Signed session manifests and the public keys that verify them.
ALTER TABLE sessions ADD COLUMN manifest_sig TEXT;
ALTER TABLE sessions ADD COLUMN manifest_key TEXT;
CREATE TABLE signing_keys (
    key_id      TEXT PRIMARY KEY,
    public_hex  TEXT NOT NULL,
    created_us  INTEGER NOT NULL
);
"#,
    r#"
-- The audit log as a hash chain: seq orders it (appends to the rowid tree, nothing else is
-- indexed), hash covers the previous hash and the event. Events logged before the chain
-- existed wait in audit_legacy until the writer chains them at its start.
ALTER TABLE audit RENAME TO audit_legacy;
DROP INDEX audit_ts;
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,
    ts_us       INTEGER NOT NULL,
    action      TEXT NOT NULL,
    event_json  TEXT NOT NULL,
    hash        TEXT NOT NULL
);
-- Signed checkpoints of the audit chain; each names the previous one.
CREATE TABLE audit_checkpoints (
    seq         INTEGER PRIMARY KEY,
    ts_us       INTEGER NOT NULL,
    last_seq    INTEGER NOT NULL,
    last_hash   TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    sig         TEXT NOT NULL
);
-- How far each audit sink has delivered (the spool is the audit table itself).
CREATE TABLE audit_cursors (
    sink        TEXT PRIMARY KEY,
    seq         INTEGER NOT NULL
);
-- Legal holds: a held session (or every session of a held identity) is never deleted.
CREATE TABLE legal_holds (
    id          TEXT PRIMARY KEY,
    session_id  TEXT,
    identity    TEXT,
    reason      TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_us  INTEGER NOT NULL
);
-- Where a recording's events live when not in event_chunks (object storage).
ALTER TABLE sessions ADD COLUMN archive TEXT;
CREATE INDEX sessions_ended ON sessions(ended_us);
"#,
    r#"
-- Agents: relays inside private networks that dial out to the gateway. The public key is
-- pinned at enrollment (or given by an admin); the one-time enrollment token is kept only
-- as a SHA-256 hash and cleared when used.
CREATE TABLE agents (
    name              TEXT PRIMARY KEY,
    public_key        BLOB,
    token_hash        BLOB,
    token_expires_us  INTEGER,
    created_by        TEXT NOT NULL,
    created_us        INTEGER NOT NULL,
    enrolled_us       INTEGER,
    revoked_us        INTEGER
);
"#,
    r#"
-- SSH public keys registered to identities (login by key), by SHA-256 fingerprint.
CREATE TABLE identity_keys (
    fingerprint TEXT PRIMARY KEY,
    identity    TEXT NOT NULL REFERENCES identities(name),
    public_key  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_us  INTEGER NOT NULL
);
CREATE INDEX identity_keys_identity ON identity_keys(identity);
-- SSH host keys of targets seen first and enforced from then on (trust on first use).
CREATE TABLE known_hosts (
    connection  TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    public_key  TEXT NOT NULL,
    first_us    INTEGER NOT NULL,
    PRIMARY KEY (connection, host, port)
);
"#,
];

/// Opens the database at `path`, sets WAL mode and applies pending migrations.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    configure(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a further connection to an existing database (the writer thread's).
pub fn open_existing(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path)?;
    configure(&conn)?;
    Ok(conn)
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // With WAL, NORMAL syncs at checkpoints; FULL syncs every commit. The writer batches
    // commits, so FULL costs one fsync per batch, which is what the durability promise needs.
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
