//! Detectors driven by digit runs: card numbers, US SSNs, phone numbers and IBANs share one
//! pass that jumps from digit to digit.

use crate::checksum::{iban_mod97, luhn};
use crate::{is_word, mask_digits_keep_last, Detector, MaskCounts};

/// Which numeric detectors are on.
#[derive(Clone, Copy, Debug, Default)]
pub struct NumericSet {
    pub card: bool,
    pub ssn: bool,
    pub phone: bool,
    pub iban: bool,
}

impl NumericSet {
    pub fn any(&self) -> bool {
        self.card || self.ssn || self.phone || self.iban
    }
}

/// A run of digit groups joined by single separators: `4111 1111-1111 1111`, `415.555.0132`.
struct Groups {
    start: usize,
    end: usize,
    digits: usize,
    /// Lengths of the digit groups (at most 8 are kept; more means "not a known shape").
    lens: [u8; 8],
    count: usize,
    /// The separator used, if one kind only (`0` when none or mixed).
    sep: u8,
    mixed: bool,
}

fn groups_at(v: &[u8], start: usize) -> Groups {
    let mut g = Groups {
        start,
        end: start,
        digits: 0,
        lens: [0; 8],
        count: 0,
        sep: 0,
        mixed: false,
    };
    let mut i = start;
    loop {
        let run_start = i;
        while i < v.len() && v[i].is_ascii_digit() {
            i += 1;
        }
        let len = i - run_start;
        g.digits += len;
        if g.count < g.lens.len() {
            g.lens[g.count] = len.min(255) as u8;
        }
        g.count += 1;
        g.end = i;
        // A single separator followed by a digit continues the number.
        if i + 1 < v.len() && matches!(v[i], b' ' | b'-' | b'.') && v[i + 1].is_ascii_digit() {
            if g.sep == 0 {
                g.sep = v[i];
            } else if g.sep != v[i] {
                g.mixed = true;
            }
            i += 1;
            if g.digits > 34 {
                break;
            }
            continue;
        }
        break;
    }
    g
}

fn lens(g: &Groups) -> &[u8] {
    &g.lens[..g.count.min(g.lens.len())]
}

/// Scans `v` for numeric secrets; masks and counts them.
pub fn scan(v: &mut [u8], set: NumericSet, counts: &mut MaskCounts) {
    let mut i = 0;
    while i < v.len() {
        // Jump to the next digit.
        match v[i..].iter().position(u8::is_ascii_digit) {
            Some(p) => i += p,
            None => return,
        }
        // Part of a word (an identifier like `t1`, a hex id): skip the word, except that an
        // IBAN starts with two letters.
        if i > 0 && is_word(v[i - 1]) {
            if set.iban && i >= 2 && try_iban(v, i - 2, counts) {
                continue;
            }
            while i < v.len() && is_word(v[i]) {
                i += 1;
            }
            continue;
        }
        let g = groups_at(v, i);
        let next = g.end;
        let bounded = next >= v.len() || !is_word(v[next]);
        if bounded && !g.mixed && classify(v, &g, set, counts) {
            i = next;
            continue;
        }
        i = next.max(i + 1);
    }
}

fn classify(v: &mut [u8], g: &Groups, set: NumericSet, counts: &mut MaskCounts) -> bool {
    let shape = lens(g);
    if set.ssn && g.sep == b'-' && shape == [3, 2, 4] && valid_ssn(&v[g.start..g.end]) {
        mask_digits_keep_last(v, g.start, g.end, 4);
        counts.hit(Detector::UsSsn);
        return true;
    }
    if set.card
        && (13..=19).contains(&g.digits)
        && (g.sep == 0 || g.sep == b' ' || g.sep == b'-')
        && shape.iter().all(|l| g.count == 1 || *l <= 6)
        && luhn(&v[g.start..g.end])
    {
        mask_digits_keep_last(v, g.start, g.end, 4);
        counts.hit(Detector::CardNumber);
        return true;
    }
    if set.phone {
        let plus = g.start > 0 && v[g.start - 1] == b'+';
        let paren = g.start > 0 && v[g.start - 1] == b'(';
        let international = plus && (8..=15).contains(&g.digits) && g.count >= 1;
        let nanp = g.sep != 0 && shape == [3, 3, 4];
        let nanp_with_country = g.sep != 0 && shape == [1, 3, 3, 4];
        if international || nanp || nanp_with_country {
            mask_digits_keep_last(v, g.start, g.end, 4);
            counts.hit(Detector::Phone);
            return true;
        }
        // `(415) 555-0132`
        if paren && shape == [3] && g.end + 10 <= v.len() && v[g.end] == b')' {
            let rest_start = g.end + 1 + usize::from(v[g.end + 1] == b' ');
            if rest_start < v.len() && v[rest_start].is_ascii_digit() {
                let rest = groups_at(v, rest_start);
                if lens(&rest) == [3, 4] && (rest.end >= v.len() || !is_word(v[rest.end])) {
                    mask_digits_keep_last(v, g.start, rest.end, 4);
                    counts.hit(Detector::Phone);
                    return true;
                }
            }
        }
    }
    false
}

fn valid_ssn(s: &[u8]) -> bool {
    let area = &s[0..3];
    let group = &s[4..6];
    let serial = &s[7..11];
    area != b"000" && area != b"666" && area[0] != b'9' && group != b"00" && serial != b"0000"
}

/// An IBAN starting at `at` (two uppercase letters, two check digits, then 11–30 letters or
/// digits, optionally in groups of four separated by single spaces).
fn try_iban(v: &mut [u8], at: usize, counts: &mut MaskCounts) -> bool {
    if at > 0 && is_word(v[at - 1]) {
        return false;
    }
    if !(v[at].is_ascii_uppercase() && v[at + 1].is_ascii_uppercase()) {
        return false;
    }
    if at + 4 > v.len() || !v[at + 2].is_ascii_digit() || !v[at + 3].is_ascii_digit() {
        return false;
    }
    let mut end = at + 4;
    let mut chars: usize = 4;
    while end < v.len() && chars < 34 {
        let b = v[end];
        if b.is_ascii_uppercase() || b.is_ascii_digit() {
            chars += 1;
            end += 1;
        } else if b == b' '
            && end + 1 < v.len()
            && (v[end + 1].is_ascii_uppercase() || v[end + 1].is_ascii_digit())
            && chars.is_multiple_of(4)
        {
            end += 1;
        } else {
            break;
        }
    }
    if chars < 15 || (end < v.len() && is_word(v[end])) || !iban_mod97(&v[at..end]) {
        return false;
    }
    // Keep the country code and the last four characters.
    let mut seen = 0;
    for b in &mut v[at + 2..end] {
        if *b != b' ' {
            seen += 1;
            if seen + 4 <= chars - 2 {
                *b = crate::MASK;
            }
        }
    }
    counts.hit(Detector::Iban);
    true
}
