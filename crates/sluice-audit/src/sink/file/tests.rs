use super::*;

fn ev(seq: u64, len: usize) -> SpooledEvent {
    SpooledEvent {
        seq,
        id: format!("e{seq}"),
        ts_us: 0,
        json: format!("{{\"seq\":{seq},\"pad\":\"{}\"}}", "x".repeat(len)),
    }
}

#[test]
fn rotates_by_size_and_keeps_n_files() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!("sluice-fs-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("audit.jsonl");
    let mut s = FileSink::new(&config::FileSink {
        path: path.clone(),
        max_bytes: 250,
        keep: 2,
    });
    for seq in 0..12 {
        s.deliver(&[ev(seq, 80)])?;
    }
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let current = read(&path);
    let one = read(&dir.join("audit.jsonl.1"));
    let two = read(&dir.join("audit.jsonl.2"));
    assert!(!dir.join("audit.jsonl.3").exists());
    for f in [&current, &one, &two] {
        assert!(f.len() <= 250 && !f.is_empty(), "{f}");
        assert!(f.lines().all(|l| l.starts_with("{\"seq\":")));
    }
    // The newest events are in the current file, the older ones in .1, then .2.
    assert!(current.contains("\"seq\":11,"));
    assert!(one.lines().count() + two.lines().count() + current.lines().count() <= 12);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
