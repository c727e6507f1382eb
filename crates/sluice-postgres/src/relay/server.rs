//! The target → client pump: masks, records, and forwards what the server says, with the
//! gateway's own answers spliced in where they are owed.

use super::{record, RelayEnd, SessionState, MAX_SERVER_READ, MIN_READ};
use crate::buffer::ReadBuffer;
use crate::codec::backend::{error_fields, BackendMessage};
use crate::codec::{next_message, CodecError};
use crate::masking;
use sluice_core::time::now_micros;
use sluice_core::{EndReason, SessionEvent};
use sluice_mask::{MaskCounts, Masker};
use sluice_pipeline::stream::write_flushed;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Gateway bytes to splice into the forwarded stream.
#[derive(Default)]
struct Splices {
    /// (offset in the chunk, range in `bytes`)
    at: Vec<(usize, usize, usize)>,
    bytes: Vec<u8>,
}

impl Splices {
    fn clear(&mut self) {
        self.at.clear();
        self.bytes.clear();
    }

    /// The chunk's first `len` bytes with the splices inserted.
    fn assemble(&self, chunk: &[u8], out: &mut Vec<u8>) {
        out.clear();
        let mut from = 0;
        for &(offset, s, e) in &self.at {
            out.extend_from_slice(&chunk[from..offset]);
            out.extend_from_slice(&self.bytes[s..e]);
            from = offset;
        }
        out.extend_from_slice(&chunk[from..]);
    }
}

pub(super) async fn pump<R, CW>(
    server: &mut R,
    cw: &tokio::sync::Mutex<CW>,
    state: &Mutex<SessionState>,
    masker: Option<Arc<Masker>>,
) -> RelayEnd
where
    R: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    let mut rb = ReadBuffer::new(MIN_READ, MAX_SERVER_READ);
    let mut events = Vec::new();
    let mut durables = Vec::new();
    let mut splices = Splices::default();
    let mut assembled = Vec::new();
    let mut fatal_seen = false;
    loop {
        let closed = match server.read_buf(rb.prepare()).await {
            Ok(0) => Some("target closed the connection".to_string()),
            Ok(n) => {
                rb.observe(n);
                None
            }
            Err(e) => Some(format!("target connection failed: {e}")),
        };
        if let Some(detail) = closed {
            let tell = (!fatal_seen).then(|| ("08006", format!("sluice: {detail}")));
            return RelayEnd::with(EndReason::TargetClosed, detail, tell);
        }
        splices.clear();
        let scanned = {
            let Ok(mut st) = state.lock() else {
                return RelayEnd::with(EndReason::GatewayError, "state lock poisoned".into(), None);
            };
            let st = &mut *st;
            let mut scan = Scan {
                st,
                masker: masker.as_deref(),
                events: &mut events,
                splices: &mut splices,
                fatal_seen: &mut fatal_seen,
            };
            let r = scan.run(rb.bytes_mut());
            record(&mut st.recorder, &mut events, &mut durables);
            r
        };
        durables.clear();
        let complete = match scanned {
            Ok(n) => n,
            Err(ScanError::Codec(e)) => {
                return RelayEnd::with(
                    EndReason::TargetError,
                    format!("target sent invalid protocol: {e}"),
                    Some(("08P01", "sluice: the target sent invalid protocol".into())),
                )
            }
            Err(ScanError::CannotMask(what)) => {
                return RelayEnd::with(
                    EndReason::GatewayError,
                    format!("masking cannot inspect {what}; output withheld"),
                    Some((
                        "XX000",
                        format!("sluice: masking cannot inspect {what}; the output was withheld"),
                    )),
                )
            }
        };
        if complete > 0 || !splices.at.is_empty() {
            let chunk = &rb.bytes()[..complete];
            let out: &[u8] = if splices.at.is_empty() {
                chunk
            } else {
                splices.assemble(chunk, &mut assembled);
                &assembled
            };
            let written = write_flushed(&mut *cw.lock().await, out).await;
            if let Err(e) = written {
                return RelayEnd::with(EndReason::ClientDisconnected, e.to_string(), None);
            }
            rb.consume(complete);
        }
    }
}

enum ScanError {
    Codec(CodecError),
    CannotMask(&'static str),
}

impl From<CodecError> for ScanError {
    fn from(e: CodecError) -> Self {
        ScanError::Codec(e)
    }
}

struct Scan<'a> {
    st: &'a mut SessionState,
    masker: Option<&'a Masker>,
    events: &'a mut Vec<SessionEvent>,
    splices: &'a mut Splices,
    fatal_seen: &'a mut bool,
}

impl Scan<'_> {
    /// Masks, tracks and splices every whole message; returns the bytes they span.
    fn run(&mut self, buf: &mut [u8]) -> Result<usize, ScanError> {
        let mut at = 0;
        let now = now_micros();
        let mut counts = MaskCounts::default();
        let mut scratch = Vec::new();
        while let Some(f) = next_message(&buf[at..])? {
            let (tag, len) = (f.tag, f.len);
            let body = &mut buf[at + 5..at + len];
            if let Some(m) = self.masker {
                self.mask(tag, body, m, &mut counts, &mut scratch)?;
            }
            let body = &buf[at + 5..at + len];
            let msg = BackendMessage::parse(tag, body)?;
            if tag == b'E' {
                *self.fatal_seen |= error_fields(body)
                    .is_ok_and(|e| e.severity == "FATAL" || e.severity == "PANIC");
            }
            if tag == b'D' && !scratch.is_empty() {
                // The client gets raw values (mask_client: false); the recording gets these.
                let masked = BackendMessage::DataRow(&scratch);
                self.st.tracker.on_server(&masked, now, self.events);
                scratch.clear();
            } else {
                self.st.tracker.on_server(&msg, now, self.events);
            }
            at += len;
            let s = self.splices.bytes.len();
            if self.st.tracker.take_synthetic(&mut self.splices.bytes) {
                self.splices.at.push((at, s, self.splices.bytes.len()));
            }
        }
        if counts.total() > 0 {
            self.st.tracker.count_masked(&counts);
        }
        Ok(at)
    }

    /// Masks one server message in place (client copy), or into `scratch` (recording copy
    /// only, when the connection leaves the client's copy raw).
    fn mask(
        &mut self,
        tag: u8,
        body: &mut [u8],
        m: &Masker,
        counts: &mut MaskCounts,
        scratch: &mut Vec<u8>,
    ) -> Result<(), ScanError> {
        match tag {
            b'D' => {
                let flags = self.st.tracker.masked_columns();
                let whole: &[bool] = flags.as_deref().unwrap_or(&[]);
                if m.mask_client() {
                    masking::data_row(body, whole, m, counts)?;
                } else if self.st.tracker.wants_row() {
                    scratch.clear();
                    scratch.extend_from_slice(body);
                    masking::data_row(scratch, whole, m, counts)?;
                }
            }
            b'H' if body.first() == Some(&1) => {
                return Err(ScanError::CannotMask("binary COPY output"))
            }
            b'd' | b'E' | b'N' | b'A' if m.mask_client() => {
                masking::text(body, m, counts);
            }
            _ => {}
        }
        Ok(())
    }
}
