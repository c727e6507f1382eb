//! Checksums that tell real card numbers and IBANs from look-alikes.

/// Luhn check over the digits of `s` (other bytes are skipped).
pub fn luhn(s: &[u8]) -> bool {
    let mut sum = 0u32;
    let mut double = false;
    for &b in s.iter().rev() {
        if !b.is_ascii_digit() {
            continue;
        }
        let mut d = u32::from(b - b'0');
        if double {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
        double = !double;
    }
    sum.is_multiple_of(10)
}

/// ISO 13616 mod-97 check over the alphanumerics of `s` (spaces skipped).
pub fn iban_mod97(s: &[u8]) -> bool {
    let chars: Vec<u8> = s.iter().copied().filter(|b| *b != b' ').collect();
    if chars.len() < 15 || chars.len() > 34 {
        return false;
    }
    let rearranged = chars[4..].iter().chain(chars[..4].iter());
    let mut rem = 0u32;
    for &b in rearranged {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_accepts_test_cards_and_rejects_neighbours() {
        assert!(luhn(b"4111 1111 1111 1111"));
        assert!(luhn(b"5555555555554444"));
        assert!(!luhn(b"4111111111111112"));
    }

    #[test]
    fn iban_checks_mod_97() {
        assert!(iban_mod97(b"GB82 WEST 1234 5698 7654 32"));
        assert!(iban_mod97(b"DE89370400440532013000"));
        assert!(!iban_mod97(b"DE89370400440532013001"));
    }
}
