//! Output bytes of a stream protocol (an SSH channel, a command's stdout): masked as a
//! stream, and turned into recorded text.
//!
//! Sensitive values do not respect packet boundaries, so [`StreamMasker`] holds back the
//! unfinished last line of a chunk (at most [`MAX_HOLD`] bytes) until the next chunk
//! completes it, or until the relay's short idle deadline flushes it. Masks keep lengths and
//! only ever write ASCII `*`, so UTF-8 around them stays valid; bytes are never reordered.

use base64::Engine;
use sluice_mask::{MaskCounts, Masker};
use std::sync::Arc;

/// Longest unfinished line held back for the next chunk.
pub const MAX_HOLD: usize = 256;

/// Masks one direction of one channel.
pub struct StreamMasker {
    masker: Arc<Masker>,
    carry: Vec<u8>,
    /// What was masked so far.
    pub counts: MaskCounts,
}

impl StreamMasker {
    /// A masker for one stream.
    pub fn new(masker: Arc<Masker>) -> StreamMasker {
        StreamMasker {
            masker,
            carry: Vec::new(),
            counts: MaskCounts::default(),
        }
    }

    /// Takes `chunk`; returns the masked bytes that may be sent now (possibly none).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.carry);
        buf.extend_from_slice(chunk);
        let split = match buf.iter().rposition(|b| *b == b'\n' || *b == b'\r') {
            Some(nl) if buf.len() - (nl + 1) <= MAX_HOLD => nl + 1,
            _ if buf.len() <= MAX_HOLD => 0,
            _ => {
                // A long unfinished line: cut at the last blank before the held window.
                let limit = buf.len() - MAX_HOLD;
                buf[..limit]
                    .iter()
                    .rposition(|b| b.is_ascii_whitespace())
                    .map_or(limit, |p| p + 1)
            }
        };
        self.carry = buf.split_off(split);
        self.masker.mask(&mut buf, &mut self.counts);
        buf
    }

    /// Whether bytes are held back.
    pub fn holding(&self) -> bool {
        !self.carry.is_empty()
    }

    /// Masks and returns what is held back.
    pub fn flush(&mut self) -> Vec<u8> {
        let mut buf = std::mem::take(&mut self.carry);
        self.masker.mask(&mut buf, &mut self.counts);
        buf
    }
}

/// Turns one stream's bytes into recorded text: UTF-8 kept as text (a character cut by a
/// chunk boundary waits for its end), anything else base64, and so is UTF-8 that is mostly
/// control bytes (`\0` runs, binary output), which JSON would blow up sixfold as `\u0000`.
#[derive(Default)]
pub struct TextCarry {
    partial: Vec<u8>,
}

impl TextCarry {
    /// The recorded form of `bytes`: `(data, is_base64)`.
    pub fn encode(&mut self, bytes: &[u8]) -> (String, bool) {
        let mut buf = std::mem::take(&mut self.partial);
        buf.extend_from_slice(bytes);
        match std::str::from_utf8(&buf) {
            Ok(_) if binary_like(&buf) => {
                (base64::engine::general_purpose::STANDARD.encode(&buf), true)
            }
            Ok(s) => (s.to_string(), false),
            Err(e) if e.error_len().is_none() && buf.len() - e.valid_up_to() < 4 => {
                // Ends inside a character: keep its start for the next chunk.
                self.partial = buf.split_off(e.valid_up_to());
                (String::from_utf8_lossy(&buf).into_owned(), false)
            }
            Err(_) => (base64::engine::general_purpose::STANDARD.encode(&buf), true),
        }
    }
}

/// Whether more than one byte in eight is a control byte that JSON writes as a six-byte `\u`
/// escape (terminal text, escape sequences included, stays far below).
fn binary_like(bytes: &[u8]) -> bool {
    let escaped = bytes
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t'))
        .count();
    escaped * 8 > bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_binary_output_is_base64() {
        let mut carry = TextCarry::default();
        let colored = "\x1b[1;32mok\x1b[0m  build finished in 3.2s\r\n";
        assert_eq!(
            carry.encode(colored.as_bytes()),
            (colored.to_string(), false)
        );
        let (data, base64) = carry.encode(&[0u8; 48]);
        assert!(base64);
        assert_eq!(data, "A".repeat(64));
    }
    use sluice_mask::MaskConfig;

    fn masker() -> Result<Arc<Masker>, sluice_mask::MaskError> {
        Masker::new(&MaskConfig::default()).map(Arc::new)
    }

    #[test]
    fn a_secret_split_at_any_byte_is_masked_and_nothing_else_changes(
    ) -> Result<(), sluice_mask::MaskError> {
        let text = b"id: 1\ncard 4111 1111 1111 1111 on file\nmail alice@example.com ok\nbye\n";
        let whole = {
            let mut m = StreamMasker::new(masker()?);
            let mut out = m.push(text);
            out.extend(m.flush());
            out
        };
        assert!(
            !whole.windows(4).any(|w| w == b"4111"),
            "{}",
            String::from_utf8_lossy(&whole)
        );
        assert!(!whole.windows(5).any(|w| w == b"alice"));
        assert_eq!(whole.len(), text.len());
        for cut in 1..text.len() {
            let mut m = StreamMasker::new(masker()?);
            let mut out = m.push(&text[..cut]);
            out.extend(m.push(&text[cut..]));
            out.extend(m.flush());
            assert_eq!(out, whole, "cut at {cut}");
        }
        Ok(())
    }

    #[test]
    fn finished_lines_go_out_at_once_and_long_lines_are_not_held_whole(
    ) -> Result<(), sluice_mask::MaskError> {
        let mut m = StreamMasker::new(masker()?);
        assert_eq!(m.push(b"total 0\n$ "), b"total 0\n");
        assert!(m.holding());
        assert_eq!(m.flush(), b"$ ");
        let long = vec![b'x'; 10_000];
        let out = m.push(&long);
        assert_eq!(out.len(), 10_000 - MAX_HOLD);
        Ok(())
    }

    #[test]
    fn text_stays_text_even_when_a_character_is_cut() {
        let mut t = TextCarry::default();
        let s = "héllo";
        let b = s.as_bytes();
        assert_eq!(t.encode(&b[..2]), ("h".to_string(), false));
        assert_eq!(t.encode(&b[2..]), ("éllo".to_string(), false));
        let (data, b64) = t.encode(&[0xff, 0x00, 0x01]);
        assert!(b64);
        assert_eq!(data, "/wAB");
    }
}
