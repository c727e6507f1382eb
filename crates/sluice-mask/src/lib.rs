//! The masking engine of sluice.
//!
//! A [`Masker`] is compiled once per connection from a [`MaskConfig`] and then finds sensitive
//! values in byte strings (result values, COPY lines, statement text) and masks them **in
//! place**: every masked byte becomes `*`, separators and a few identifying characters (the
//! last four digits of a card, an email's domain, a token's prefix) are kept. Masks never change
//! a value's length, so a protocol adapter can mask a wire message without re-framing it and a
//! binary value keeps its size.
//!
//! The engine is protocol-agnostic and does no I/O. Detectors are validated where a checksum
//! exists (Luhn for cards, mod 97 for IBANs), so order numbers and ids are not masked.
//!
//! The scanner is written by hand rather than as one big regular expression: most bytes of
//! real result sets can be skipped with `memchr`/`aho-corasick` prefilters, and the numeric
//! detectors share one pass over digit runs.

mod checksum;
mod column;
mod detector;
mod email;
mod literal;
mod masker;
mod numeric;
mod prefilter;

pub use column::ColumnPattern;
pub use detector::{Detector, MaskCounts};
pub use masker::{mask_whole, CustomDetector, MaskConfig, MaskError, Masker};

/// The byte every masked byte becomes.
pub const MASK: u8 = b'*';

/// Masks `v[range]`, keeping ASCII separators (space, `-`, `.`, newlines) so the shape stays.
fn mask_span(v: &mut [u8], start: usize, end: usize) {
    for b in &mut v[start..end] {
        if !matches!(*b, b' ' | b'-' | b'.' | b'\n' | b'\r') {
            *b = MASK;
        }
    }
}

/// Masks the ASCII digits of `v[start..end]` except the last `keep` digits.
fn mask_digits_keep_last(v: &mut [u8], start: usize, end: usize, keep: usize) {
    let total = v[start..end].iter().filter(|b| b.is_ascii_digit()).count();
    let mut seen = 0;
    for b in &mut v[start..end] {
        if b.is_ascii_digit() {
            seen += 1;
            if seen + keep <= total {
                *b = MASK;
            }
        }
    }
}

/// Whether `b` may continue a word (so a match next to it is part of something longer).
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests;
