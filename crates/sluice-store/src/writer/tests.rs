use super::*;
use crate::crypto::{hex, random_bytes};

fn event(seq: u64) -> WriteOp {
    WriteOp::Event(NewEvent {
        session_id: "s".into(),
        seq,
        ts_us: 1,
        kind: "query",
        data_json: "{}".into(),
        hash: [0; 32],
    })
}

fn count(path: &Path) -> Result<i64, Box<dyn std::error::Error>> {
    let c = schema::open_existing(path)?;
    Ok(crate::recordings::events(&c, "s")?.len() as i64)
}

#[tokio::test]
async fn acknowledged_writes_are_committed_with_everything_queued_before(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("sluice-w-{}", hex(&random_bytes::<6>())));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("w.db");
    schema::open(&db)?;
    // A long batching window: only the acknowledgement can cause the commit.
    let (w, thread) = RecordWriter::start(
        &db,
        WriterSettings {
            max_delay: Duration::from_secs(3600),
            ..WriterSettings::default()
        },
    )?;
    for seq in 0..10 {
        w.send(event(seq));
    }
    w.send_acked(event(10))?.await?;
    assert_eq!(count(&db)?, 11);
    w.send(event(11));
    w.flush().await?;
    assert_eq!(count(&db)?, 12);
    drop(w);
    thread.join().map_err(|_| "writer thread panicked")?;
    std::fs::remove_dir_all(dir)?;
    Ok(())
}
