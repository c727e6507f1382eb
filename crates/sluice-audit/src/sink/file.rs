//! JSON lines appended to a file, rotated by size (`audit.jsonl` → `audit.jsonl.1` → … `.N`).

use super::{Sink, SinkError, SpooledEvent};
use crate::config;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

/// Appends events to a file, synced after each batch, rotating by size.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    max_bytes: u64,
    keep: u32,
    file: Option<(File, u64)>,
}

impl FileSink {
    /// A sink writing to `cfg.path` (already resolved against the data dir).
    pub fn new(cfg: &config::FileSink) -> FileSink {
        FileSink {
            path: cfg.path.clone(),
            max_bytes: cfg.max_bytes.max(1),
            keep: cfg.keep,
            file: None,
        }
    }

    fn open(&mut self) -> Result<&mut (File, u64), SinkError> {
        if self.file.is_none() {
            use std::os::unix::fs::OpenOptionsExt;
            let f = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&self.path)?;
            let len = f.metadata()?.len();
            self.file = Some((f, len));
        }
        self.file
            .as_mut()
            .ok_or_else(|| SinkError::Config("audit file not open".into()))
    }

    /// Shifts `path.(N-1)` → `path.N` … `path` → `path.1`, dropping the oldest.
    fn rotate(&mut self) -> Result<(), SinkError> {
        self.file = None;
        let numbered = |n: u32| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
            return Ok(());
        }
        let _ = std::fs::remove_file(numbered(self.keep));
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        Ok(())
    }
}

impl Sink for FileSink {
    fn deliver(&mut self, batch: &[SpooledEvent]) -> Result<(), SinkError> {
        let mut buf = Vec::with_capacity(batch.iter().map(|e| e.json.len() + 1).sum());
        for e in batch {
            // Rotate between events, never inside one; an event bigger than the limit gets a
            // file of its own.
            let size = self.open()?.1;
            if size > 0 && size + buf.len() as u64 + e.json.len() as u64 + 1 > self.max_bytes {
                self.flush(&mut buf)?;
                if self.open()?.1 > 0 {
                    self.rotate()?;
                }
            }
            buf.extend_from_slice(e.json.as_bytes());
            buf.push(b'\n');
        }
        self.flush(&mut buf)
    }

    fn max_batch(&self) -> usize {
        // One fsync per batch: large batches keep the disk out of the way.
        5000
    }
}

impl FileSink {
    fn flush(&mut self, buf: &mut Vec<u8>) -> Result<(), SinkError> {
        if buf.is_empty() {
            return Ok(());
        }
        let result = (|| {
            let (f, len) = self.open()?;
            f.write_all(buf)?;
            f.sync_data()?;
            *len += buf.len() as u64;
            Ok::<(), SinkError>(())
        })();
        buf.clear();
        if result.is_err() {
            // Reopen next time; a partial line may precede the retried events.
            self.file = None;
        }
        result
    }
}

#[cfg(test)]
mod tests;
