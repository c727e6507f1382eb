//! How the tracker turns wire values into recorded text: capped, hex for binary, masked.

use sluice_mask::{MaskCounts, Masker};
use std::fmt::Write;
use std::sync::Arc;

/// Renders values for the recording; kept apart from the tracker's statement maps so both
/// can be borrowed at once.
#[derive(Debug, Default)]
pub(super) struct Render {
    pub max_value_len: usize,
    pub masker: Option<Arc<Masker>>,
    pub counts: MaskCounts,
}

impl Render {
    /// Masks `s` if the connection masks.
    pub fn mask(&mut self, s: String) -> String {
        match &self.masker {
            Some(m) => m.mask_str(&s, &mut self.counts).unwrap_or(s),
            None => s,
        }
    }

    /// A result value or parameter in `format` (0 text, 1 binary), capped and masked.
    pub fn value(&mut self, v: &[u8], format: i16) -> String {
        let s = self.capped(v, format);
        self.mask(s)
    }

    /// A DataRow value, capped. The relay masked the whole row before the tracker saw it
    /// (in place, or in the recording's copy), so it is not masked a second time.
    pub fn row_value(&self, v: &[u8], format: i16) -> String {
        self.capped(v, format)
    }

    fn capped(&self, v: &[u8], format: i16) -> String {
        let max = self.max_value_len;
        let shown = &v[..v.len().min(max)];
        let mut s = if format == 1 {
            let mut s = String::from("\\x");
            for b in shown {
                let _ = write!(s, "{b:02x}");
            }
            s
        } else {
            String::from_utf8_lossy(shown).into_owned()
        };
        if v.len() > max {
            s.push_str("…(truncated)");
        }
        s
    }

    /// A bound parameter of type `oid`: binary values of known types as text.
    pub fn param(&mut self, v: &[u8], format: i16, oid: u32) -> String {
        if format == 1 && v.len() <= self.max_value_len {
            if let Some(text) = crate::codec::values::binary_to_text(oid, v) {
                return self.mask(text);
            }
        }
        self.value(v, format)
    }

    /// A server text (error message, notification payload), capped and masked.
    pub fn text(&mut self, s: &str) -> String {
        self.value(s.as_bytes(), 0)
    }
}
