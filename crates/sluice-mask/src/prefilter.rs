//! One pass over a value that says which detectors could match in it, so a common value (an
//! id, a name, a timestamp, a sentence) costs one table lookup per byte and no detector runs.
//!
//! Each rule here is implied by what a detector needs, so skipping is exact, never a guess:
//! - numeric detectors need at least 8 digits (phone: 8, SSN: 9, card: 13), except an IBAN,
//!   which needs an uppercase letter and 15 characters;
//! - email needs `@`;
//! - the literal triggers need one of: `_` or `=` anywhere; `-` or `:` not between two digits
//!   (`glpat-`, `xoxb-`, `-----BEGIN`, `://`, `"password":`, `secretaccesskey:`); `A` before
//!   `K S G I R N` (`AKIA`, `ASIA`, …); `yJ` (`eyJ`); or `bearer ` in any case.

const DIGIT: u8 = 1;
const AT: u8 = 2;
const UPPER: u8 = 4;
/// A byte that alone makes a literal trigger possible.
const LITERAL: u8 = 8;
/// A byte that makes a literal trigger possible depending on its neighbours.
const NEAR: u8 = 16;
/// `b` or `B` (for `bearer `).
const B: u8 = 32;

static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_digit() {
            DIGIT
        } else if b == b'@' {
            AT
        } else if b == b'_' || b == b'=' {
            LITERAL
        } else if b == b'-' || b == b':' {
            NEAR
        } else if b == b'A' || b == b'J' {
            UPPER | NEAR
        } else if b == b'B' {
            UPPER | B
        } else if b == b'b' {
            B
        } else if b.is_ascii_uppercase() {
            UPPER
        } else {
            0
        };
        i += 1;
    }
    t
};

/// What one value could hold.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Survey {
    /// Card numbers, SSNs, phones or IBANs.
    pub numeric: bool,
    /// Email addresses.
    pub email: bool,
    /// Anything the literal triggers start.
    pub literal: bool,
}

/// Surveys `v`.
pub(crate) fn survey(v: &[u8]) -> Survey {
    let mut all = 0u8;
    let mut digits = 0usize;
    for &b in v {
        let c = CLASS[b as usize];
        all |= c;
        digits += usize::from(c & DIGIT);
    }
    let literal = all & NEAR != 0
        && v.iter()
            .enumerate()
            .any(|(i, &b)| CLASS[b as usize] & NEAR != 0 && near_trigger(v, i, b));
    let literal = literal || all & LITERAL != 0 || (all & B != 0 && has_bearer(v));
    Survey {
        numeric: digits >= 8 || (all & UPPER != 0 && digits >= 2 && v.len() >= 15),
        email: all & AT != 0,
        literal,
    }
}

fn near_trigger(v: &[u8], i: usize, b: u8) -> bool {
    let prev = if i > 0 { v[i - 1] } else { 0 };
    let next = v.get(i + 1).copied().unwrap_or(0);
    match b {
        b'-' | b':' => !(prev.is_ascii_digit() && next.is_ascii_digit()),
        b'A' => matches!(next, b'K' | b'S' | b'G' | b'I' | b'R' | b'N'),
        b'J' => prev == b'y',
        _ => true,
    }
}

fn has_bearer(v: &[u8]) -> bool {
    memchr::memchr2_iter(b'b', b'B', v).any(|p| {
        v.get(p + 1..p + 7)
            .is_some_and(|w| w.eq_ignore_ascii_case(b"earer "))
    })
}

#[cfg(test)]
mod tests {
    use super::survey;

    #[test]
    fn ordinary_values_need_no_detector() {
        for v in [
            "100123",
            "Customer 1234",
            "12345.67",
            "please call back about the invoice",
        ] {
            let s = survey(v.as_bytes());
            assert!(!s.numeric && !s.email && !s.literal, "{v}: {s:?}");
        }
        // Dashes and colons between digits start no literal trigger.
        let ts = survey(b"2026-05-13 11:22:33.123456+00");
        assert!(!ts.literal && !ts.email, "{ts:?}");
    }

    #[test]
    fn every_trigger_is_seen() {
        for (v, literal) in [
            ("token ghp_abc", true),
            ("password=x", true),
            ("glpat-xyz", true),
            ("xoxb-1", true),
            ("-----BEGIN RSA", true),
            ("postgres://u:p@h", true),
            ("{\"password\": \"x\"}", true),
            ("SecretAccessKey: abc", true),
            ("AKIAIOSFODNN7EXAMPLE", true),
            ("eyJhbGciOi", true),
            ("Authorization: BEARER abc", true),
            ("auth bearer abcdefgh", true),
            ("Aaron Jones", false),
        ] {
            assert_eq!(survey(v.as_bytes()).literal, literal, "{v}");
        }
        assert!(survey(b"4111 1111 1111 1111").numeric);
        assert!(survey(b"+44 20 7946 0958").numeric);
        assert!(survey(b"GB82WEST12345698765432").numeric);
        assert!(survey(b"a@b.io").email);
    }
}
