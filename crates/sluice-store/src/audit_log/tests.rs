use super::*;
use crate::crypto::random_bytes;
use crate::signing::{KeyRing, KeySource, SigningKey};
use crate::writer::{RecordWriter, WriteOp, WriterSettings};
use sluice_core::statement_audit::{AuditContext, StatementAudit};
use sluice_core::{AuditEvent, Outcome};
use std::sync::Arc;

struct Log {
    dir: std::path::PathBuf,
    db: std::path::PathBuf,
    keys: Arc<KeyRing>,
}

fn log() -> Result<Log, Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("sluice-al-{}", hex(&random_bytes::<6>())));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("a.db");
    crate::schema::open(&db)?;
    let keys = Arc::new(KeyRing::load(KeySource::Managed(dir.join("signing")))?);
    let conn = crate::schema::open_existing(&db)?;
    keys.current().publish(&conn)?;
    Ok(Log { dir, db, keys })
}

impl Drop for Log {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes `n` audit events through the writer, checkpointing after each group in `groups`.
async fn write(l: &Log, groups: &[usize]) -> Result<(), Box<dyn std::error::Error>> {
    let spool = Arc::new(SpoolSignal::default());
    let (w, thread) = RecordWriter::start(
        &l.db,
        WriterSettings {
            keys: Some(l.keys.clone()),
            spool: Some(spool.clone()),
            ..WriterSettings::default()
        },
    )?;
    // Each group ends with an allowed statement's event, built the cheap way.
    let mut session = AuditEvent::new("ctx".into(), "session.start", Outcome::Success);
    session.session_id = Some("s-1".into());
    session.connection = Some("pg".into());
    let context = AuditContext::of(&session);
    for (g, n) in groups.iter().enumerate() {
        for i in 0..*n {
            let id = format!("e-{g}-{i}");
            if i + 1 == *n {
                w.send(WriteOp::StatementAudit(StatementAudit {
                    id,
                    ts_us: 7,
                    action: "statement.allowed",
                    outcome: Outcome::Success,
                    context: context.clone(),
                    statement: Arc::from("SELECT 'x'"),
                }));
            } else {
                let e = AuditEvent::new(id, "session.start", Outcome::Success);
                w.send(WriteOp::Audit(Box::new(e)));
            }
        }
        w.send(WriteOp::Checkpoint);
        w.flush().await?;
    }
    drop(w);
    thread.join().map_err(|_| "writer thread panicked")?;
    Ok(())
}

fn keys(l: &Log) -> Result<BTreeMap<String, String>, Box<dyn std::error::Error>> {
    let conn = crate::schema::open_existing(&l.db)?;
    Ok(crate::signing::public_keys(&conn)?.into_iter().collect())
}

fn read(l: &Log) -> Result<(Vec<ChainedEvent>, Vec<Checkpoint>), Box<dyn std::error::Error>> {
    let conn = crate::schema::open_existing(&l.db)?;
    Ok((after(&conn, 0, 10_000)?, checkpoints(&conn, 1)?))
}

#[tokio::test]
async fn the_writer_chains_events_and_signs_checkpoints() -> Result<(), Box<dyn std::error::Error>>
{
    let l = log()?;
    write(&l, &[3, 2]).await?;
    let (events, cps) = read(&l)?;
    assert_eq!(events.len(), 5);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert_eq!(cps.len(), 2);
    assert_eq!((cps[0].last_seq, cps[1].last_seq), (3, 5));
    let statement: AuditEvent = serde_json::from_str(&events[2].json)?;
    assert_eq!(
        (statement.action.as_str(), statement.statement.as_deref()),
        ("statement.allowed", Some("SELECT 'x'"))
    );
    assert_eq!(statement.session_id.as_deref(), Some("s-1"));
    let ok = verify_segment(None, &events, &cps, &keys(&l)?)?;
    assert_eq!((ok.events, ok.checkpoints, ok.unsealed), (5, 2, 0));
    // A segment starting after the first checkpoint verifies from it.
    let ok = verify_segment(Some(&cps[0]), &events[3..], &cps[1..], &keys(&l)?)?;
    assert_eq!(ok.events, 2);
    Ok(())
}

#[tokio::test]
async fn tampering_is_named() -> Result<(), Box<dyn std::error::Error>> {
    let l = log()?;
    write(&l, &[4, 2]).await?;
    let (events, cps) = read(&l)?;
    let k = keys(&l)?;
    let check = |ev: &[ChainedEvent], cp: &[Checkpoint]| verify_segment(None, ev, cp, &k);

    let mut edited = events.clone();
    edited[1].json = edited[1].json.replace("session.start", "session.kill");
    assert_eq!(check(&edited, &cps), Err(AuditChainError::Hash(2)));

    let mut removed = events.clone();
    removed.remove(2);
    assert_eq!(
        check(&removed, &cps),
        Err(AuditChainError::Missing {
            expected: 3,
            found: 4
        })
    );

    let mut swapped = events.clone();
    swapped.swap(1, 2);
    assert_eq!(
        check(&swapped, &cps),
        Err(AuditChainError::OutOfOrder {
            expected: 2,
            found: 3
        })
    );

    let mut inserted = events.clone();
    let mut fake = inserted[1].clone();
    fake.json = fake.json.replace("e-0-1", "forged");
    inserted.insert(2, ChainedEvent { seq: 3, ..fake });
    for (i, e) in inserted.iter_mut().enumerate().skip(3) {
        e.seq = i as u64 + 1;
    }
    assert_eq!(check(&inserted, &cps), Err(AuditChainError::Hash(3)));

    let truncated = &events[..5];
    assert_eq!(
        check(truncated, &cps),
        Err(AuditChainError::Truncated {
            last: 5,
            checkpoint: 2,
            covered: 6
        })
    );

    // A checkpoint re-signed with another key.
    let other = SigningKey::load_or_create(&l.dir.join("other"))?;
    let mut resigned = cps.clone();
    resigned[1].sig = other.sign(resigned[1].text().as_bytes());
    assert_eq!(
        check(&events, &resigned),
        Err(AuditChainError::Signature(2))
    );

    // A replaced checkpoint (valid signature, but not naming its predecessor).
    let mut replaced = cps.clone();
    replaced[1].prev_hash = checkpoint_genesis();
    replaced[1].sig = l.keys.current().sign(replaced[1].text().as_bytes());
    assert_eq!(
        check(&events, &replaced),
        Err(AuditChainError::CheckpointChain(2, 1))
    );

    // A whole chain rewritten from an edited event on (without the key, checkpoints disagree).
    let mut rewritten = events.clone();
    rewritten[4].json = rewritten[4].json.replace("session.start", "session.kill");
    let mut prev: [u8; 32] = crate::crypto::unhex(&rewritten[3].hash)
        .ok_or("hash is not hex")?
        .try_into()
        .map_err(|_| "hash is not 32 bytes")?;
    for e in rewritten.iter_mut().skip(4) {
        prev = link(&prev, e.seq, &e.json);
        e.hash = hex(&prev);
    }
    assert_eq!(
        check(&rewritten, &cps),
        Err(AuditChainError::CheckpointMismatch(2, 6))
    );
    Ok(())
}

#[tokio::test]
async fn a_rotated_key_keeps_old_checkpoints_verifiable() -> Result<(), Box<dyn std::error::Error>>
{
    let l = log()?;
    write(&l, &[2]).await?;
    let new = l.keys.rotate()?;
    let conn = crate::schema::open_existing(&l.db)?;
    new.publish(&conn)?;
    write(&l, &[0]).await?; // nothing new: no checkpoint
    {
        let spool = Arc::new(SpoolSignal::default());
        let (w, thread) = RecordWriter::start(
            &l.db,
            WriterSettings {
                keys: Some(l.keys.clone()),
                spool: Some(spool),
                ..WriterSettings::default()
            },
        )?;
        w.send(WriteOp::Audit(Box::new(AuditEvent::new(
            "after-rotation".into(),
            "signing.rotate",
            Outcome::Success,
        ))));
        w.send(WriteOp::Checkpoint);
        w.flush().await?;
        drop(w);
        thread.join().map_err(|_| "writer thread panicked")?;
    }
    let (events, cps) = read(&l)?;
    assert_eq!(cps.len(), 2);
    assert_ne!(cps[0].key_id, cps[1].key_id);
    verify_segment(None, &events, &cps, &keys(&l)?)?;
    Ok(())
}

#[tokio::test]
async fn events_logged_before_the_chain_are_chained_on_upgrade(
) -> Result<(), Box<dyn std::error::Error>> {
    let l = log()?;
    {
        let conn = crate::schema::open_existing(&l.db)?;
        for i in 0..3 {
            let e = AuditEvent::new(format!("old-{i}"), "session.start", Outcome::Success);
            conn.execute(
                "INSERT INTO audit_legacy (id, ts_us, action, event_json) VALUES (?1, ?2, ?3, ?4)",
                params![e.id, i, e.action, serde_json::to_string(&e)?],
            )?;
        }
    }
    write(&l, &[2]).await?;
    let (events, cps) = read(&l)?;
    assert_eq!(events.len(), 5);
    assert!(events[0].json.contains("old-0") && events[2].json.contains("old-2"));
    verify_segment(None, &events, &cps, &keys(&l)?)?;
    Ok(())
}
