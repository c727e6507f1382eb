//! How the tracker turns wire values into recorded text: capped, masked, binary values by
//! type.

use crate::codec::values::to_text;
use sluice_mask::{MaskCounts, Masker};
use std::sync::Arc;

/// Renders values for the recording.
#[derive(Debug, Default)]
pub(super) struct Render {
    pub max_value_len: usize,
    pub masker: Option<Arc<Masker>>,
    pub counts: MaskCounts,
}

impl Render {
    fn mask(&mut self, s: String) -> String {
        match &self.masker {
            Some(m) => m.mask_str(&s, &mut self.counts).unwrap_or(s),
            None => s,
        }
    }

    fn capped(&self, v: &[u8]) -> String {
        let max = self.max_value_len;
        let mut s = String::from_utf8_lossy(&v[..v.len().min(max)]).into_owned();
        if v.len() > max {
            s.push_str("…(truncated)");
        }
        s
    }

    /// A bound parameter of `kind`, as text, capped and masked.
    pub fn param(&mut self, kind: u8, unsigned: bool, v: &[u8]) -> String {
        let s = if super::is_text_type(kind) {
            self.capped(v)
        } else {
            to_text(kind, unsigned, v)
        };
        self.mask(s)
    }

    /// A row value. `masked_already`: the relay masked the row in place, so it is not masked
    /// a second time; otherwise the recording's copy is masked here.
    pub fn row_value(
        &mut self,
        kind: u8,
        unsigned: bool,
        binary: bool,
        v: &[u8],
        whole: bool,
        masked_already: bool,
    ) -> String {
        let s = if binary && !super::is_text_type(kind) {
            to_text(kind, unsigned, v)
        } else {
            self.capped(v)
        };
        if masked_already || self.masker.is_none() {
            return s;
        }
        if whole {
            self.counts.hit_column();
            return "*".repeat(s.chars().count());
        }
        self.mask(s)
    }

    /// A server text (error message), capped and masked.
    pub fn text(&mut self, s: &str) -> String {
        let s = self.capped(s.as_bytes());
        self.mask(s)
    }
}
