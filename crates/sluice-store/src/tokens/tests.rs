use super::*;

fn store_path() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-tok-{}", hex(&random_bytes::<6>())));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("t.db")
}

fn store() -> Connection {
    crate::schema::open(&store_path()).unwrap()
}

/// A read-then-write transaction must wait for a concurrent writer, not fail with
/// SQLITE_BUSY (what a deferred transaction does when another connection commits between
/// its read and its write).
#[test]
fn admin_writes_wait_for_a_concurrent_writer() {
    let path = store_path();
    let mut c = crate::schema::open(&path).unwrap();
    let other = path.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        let w = crate::schema::open_existing(&other).unwrap();
        // Commit as often as possible, to land between the reads and writes below.
        w.pragma_update(None, "synchronous", "OFF").unwrap();
        ready_tx.send(()).unwrap();
        let mut n = 0u32;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && n < 1_000_000 {
            w.execute(
                "INSERT INTO audit (id, ts_us, action, event_json, hash) VALUES (?1, 0, 'x', '{}', '')",
                [format!("e{n}")],
            )
            .unwrap();
            n += 1;
        }
    });
    ready.recv().unwrap();
    for i in 0..500 {
        create_service_account(&mut c, &format!("sa{i}"), &[], None).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
}

#[test]
fn token_authenticates_until_revoked() {
    let mut c = store();
    let (info, token) =
        create_service_account(&mut c, "ci", &["engineering".into()], None).unwrap();
    let id = authenticate(&c, &token).unwrap().unwrap();
    assert_eq!(id.name, "ci");
    assert_eq!(id.groups, vec!["engineering".to_string()]);
    revoke(&c, &info.id).unwrap();
    assert_eq!(authenticate(&c, &token).unwrap(), Err(TokenError::Revoked));
}

#[test]
fn expired_and_unknown_tokens_are_refused() {
    let mut c = store();
    let (_, token) = create_service_account(&mut c, "old", &[], Some(-1)).unwrap();
    assert_eq!(authenticate(&c, &token).unwrap(), Err(TokenError::Expired));
    let bogus = Secret::new("slc_nope".to_string());
    assert_eq!(authenticate(&c, &bogus).unwrap(), Err(TokenError::Unknown));
}

#[test]
fn secrets_are_stored_hashed() {
    let mut c = store();
    let (_, token) = create_service_account(&mut c, "h", &[], None).unwrap();
    let stored: Vec<u8> = c
        .query_row("SELECT hash FROM tokens", [], |r| r.get(0))
        .unwrap();
    assert_ne!(stored, token.expose().as_bytes());
    assert_eq!(stored.len(), 32);
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
fn a_provider_cannot_take_over_a_local_or_foreign_name() {
    let mut c = store();
    create_service_account(&mut c, "ci", &["engineering".into()], None).unwrap();
    assert_eq!(
        remember_external(&c, &person("ci", "https://idp", &["admin"])).unwrap(),
        External::NameTaken
    );
    assert_eq!(
        remember_external(&c, &person("alice", "https://idp", &["a"])).unwrap(),
        External::Admitted
    );
    assert_eq!(
        remember_external(&c, &person("alice", "https://other-idp", &["admin"])).unwrap(),
        External::NameTaken
    );
    // The same person again, with new groups: admitted and updated.
    assert_eq!(
        remember_external(&c, &person("alice", "https://idp", &["b"])).unwrap(),
        External::Admitted
    );
    let groups: String = c
        .query_row(
            "SELECT groups_json FROM identities WHERE name = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(groups, r#"["b"]"#);
    block(&c, "alice", None).unwrap();
    assert_eq!(
        remember_external(&c, &person("alice", "https://idp", &["b"])).unwrap(),
        External::Blocked
    );
}
