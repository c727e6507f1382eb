//! Email addresses: found from each `@`, masked in the local part (the domain stays).

use crate::{mask_span, Detector, MaskCounts};

fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// Scans `v` for email addresses; masks and counts them.
pub fn scan(v: &mut [u8], counts: &mut MaskCounts) {
    let mut from = 0;
    while let Some(p) = memchr::memchr(b'@', &v[from..]) {
        let at = from + p;
        from = at + 1;
        let mut start = at;
        while start > 0 && local_char(v[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < v.len() && domain_char(v[end]) {
            end += 1;
        }
        // Trailing dots belong to the sentence, not the domain.
        while end > at + 1 && v[end - 1] == b'.' {
            end -= 1;
        }
        let Some(dot) = memchr::memrchr(b'.', &v[at + 1..end]).map(|d| at + 1 + d) else {
            continue;
        };
        if dot == at + 1 {
            continue;
        }
        let tld = &v[dot + 1..end];
        if start == at || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
            continue;
        }
        mask_span(v, start, at);
        counts.hit(Detector::Email);
        from = end;
    }
}
