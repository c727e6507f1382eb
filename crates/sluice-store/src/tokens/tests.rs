use super::*;

fn store_path() -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("sluice-tok-{}", hex(&random_bytes::<6>())));
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join("t.db"))
}

fn store() -> Result<Connection, Box<dyn std::error::Error>> {
    Ok(crate::schema::open(&store_path()?)?)
}

/// A read-then-write transaction must wait for a concurrent writer, not fail with
/// SQLITE_BUSY (what a deferred transaction does when another connection commits between
/// its read and its write).
#[test]
fn admin_writes_wait_for_a_concurrent_writer() -> Result<(), Box<dyn std::error::Error>> {
    let path = store_path()?;
    let mut c = crate::schema::open(&path)?;
    let other = path.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || -> Result<(), String> {
        let w = crate::schema::open_existing(&other).map_err(|e| e.to_string())?;
        // Commit as often as possible, to land between the reads and writes below.
        w.pragma_update(None, "synchronous", "OFF")
            .map_err(|e| e.to_string())?;
        ready_tx.send(()).map_err(|e| e.to_string())?;
        let mut n = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && n < 1_000_000 {
            w.execute(
                "INSERT INTO audit (id, ts_us, action, event_json, hash) VALUES (?1, 0, 'x', '{}', '')",
                [format!("e{n}")],
            )
            .map_err(|e| e.to_string())?;
            n += 1;
        }
        Ok(())
    });
    ready.recv()?;
    for i in 0..500 {
        create_service_account(&mut c, &format!("sa{i}"), &[], None)?;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().map_err(|_| "writer thread panicked")??;
    Ok(())
}

#[test]
fn token_authenticates_until_revoked() -> Result<(), Box<dyn std::error::Error>> {
    let mut c = store()?;
    let (info, token) = create_service_account(&mut c, "ci", &["engineering".into()], None)?;
    let id = authenticate(&c, &token)??;
    assert_eq!(id.name, "ci");
    assert_eq!(id.groups, vec!["engineering".to_string()]);
    revoke(&c, &info.id)?;
    assert_eq!(authenticate(&c, &token)?, Err(TokenError::Revoked));
    Ok(())
}

#[test]
fn expired_and_unknown_tokens_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let mut c = store()?;
    let (_, token) = create_service_account(&mut c, "old", &[], Some(-1))?;
    assert_eq!(authenticate(&c, &token)?, Err(TokenError::Expired));
    let bogus = Secret::new("slc_nope".to_string());
    assert_eq!(authenticate(&c, &bogus)?, Err(TokenError::Unknown));
    Ok(())
}

#[test]
fn secrets_are_stored_hashed() -> Result<(), Box<dyn std::error::Error>> {
    let mut c = store()?;
    let (_, token) = create_service_account(&mut c, "h", &[], None)?;
    let stored: Vec<u8> = c.query_row("SELECT hash FROM tokens", [], |r| r.get(0))?;
    assert_ne!(stored, token.expose().as_bytes());
    assert_eq!(stored.len(), 32);
    Ok(())
}

fn person(name: &str, issuer: &str, groups: &[&str]) -> Identity {
    Identity {
        name: name.into(),
        kind: IdentityKind::User,
        subject: Some(name.into()),
        issuer: Some(issuer.into()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        token_id: None,
    }
}

#[test]
fn a_provider_cannot_take_over_a_local_or_foreign_name() -> Result<(), Box<dyn std::error::Error>> {
    let mut c = store()?;
    create_service_account(&mut c, "ci", &["engineering".into()], None)?;
    assert_eq!(
        remember_external(&c, &person("ci", "https://idp", &["admin"]))?,
        External::NameTaken
    );
    assert_eq!(
        remember_external(&c, &person("alice", "https://idp", &["a"]))?,
        External::Admitted
    );
    assert_eq!(
        remember_external(&c, &person("alice", "https://other-idp", &["admin"]))?,
        External::NameTaken
    );
    // The same person again, with new groups: admitted and updated.
    assert_eq!(
        remember_external(&c, &person("alice", "https://idp", &["b"]))?,
        External::Admitted
    );
    let groups: String = c.query_row(
        "SELECT groups_json FROM identities WHERE name = 'alice'",
        [],
        |r| r.get(0),
    )?;
    assert_eq!(groups, r#"["b"]"#);
    block(&c, "alice", None)?;
    assert_eq!(
        remember_external(&c, &person("alice", "https://idp", &["b"]))?,
        External::Blocked
    );
    Ok(())
}
