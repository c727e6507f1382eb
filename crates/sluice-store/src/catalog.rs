//! Connections and grants added at runtime (the config file's own are not stored here).

use crate::StoreError;
use rusqlite::{params, Connection as Db};
use sluice_core::{Connection, ConnectionName, Grant};

/// Stores a runtime connection; fails if the name is taken.
pub fn add_connection(db: &Db, conn: &Connection) -> Result<(), StoreError> {
    let n = db.execute(
        "INSERT OR IGNORE INTO connections (name, spec_json) VALUES (?1, ?2)",
        params![conn.name.0, serde_json::to_string(conn)?],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "connection {:?}",
            conn.name.0
        )));
    }
    Ok(())
}

/// Removes a runtime connection and its grants.
pub fn remove_connection(db: &Db, name: &str) -> Result<(), StoreError> {
    let n = db.execute("DELETE FROM connections WHERE name = ?1", [name])?;
    if n == 0 {
        return Err(StoreError::NotFound(format!("connection {name:?}")));
    }
    db.execute("DELETE FROM grants WHERE connection = ?1", [name])?;
    Ok(())
}

/// All runtime connections.
pub fn list_connections(db: &Db) -> Result<Vec<Connection>, StoreError> {
    let mut stmt = db.prepare("SELECT spec_json FROM connections ORDER BY name")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for json in rows {
        out.push(serde_json::from_str(&json?)?);
    }
    Ok(out)
}

/// Stores a runtime grant; fails if it exists.
pub fn add_grant(db: &Db, group: &str, connection: &str) -> Result<(), StoreError> {
    let n = db.execute(
        "INSERT OR IGNORE INTO grants (grp, connection) VALUES (?1, ?2)",
        params![group, connection],
    )?;
    if n == 0 {
        return Err(StoreError::Conflict(format!(
            "grant of {connection:?} to {group:?}"
        )));
    }
    Ok(())
}

/// Removes a runtime grant.
pub fn remove_grant(db: &Db, group: &str, connection: &str) -> Result<(), StoreError> {
    let n = db.execute(
        "DELETE FROM grants WHERE grp = ?1 AND connection = ?2",
        params![group, connection],
    )?;
    if n == 0 {
        return Err(StoreError::NotFound(format!(
            "grant of {connection:?} to {group:?}"
        )));
    }
    Ok(())
}

/// All runtime grants.
pub fn list_grants(db: &Db) -> Result<Vec<Grant>, StoreError> {
    let mut stmt = db.prepare("SELECT grp, connection FROM grants ORDER BY grp, connection")?;
    let rows = stmt.query_map([], |r| {
        Ok(Grant {
            group: r.get(0)?,
            connection: ConnectionName(r.get(1)?),
            from_config: false,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
