//! JSON lines on standard output (for container log collectors).

use super::{Sink, SinkError, SpooledEvent};
use std::io::Write;

/// Writes each event as one line to stdout.
#[derive(Debug, Default)]
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn deliver(&mut self, batch: &[SpooledEvent]) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        for e in batch {
            out.write_all(e.json.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        Ok(())
    }
}
