//! Text rendering of binary-format values of common types, for recordings. Values of other
//! types are shown as `\x` hex.

/// Renders a binary-format value of type `oid` as PostgreSQL's text form would show it.
pub fn binary_to_text(oid: u32, v: &[u8]) -> Option<String> {
    let int = |n: usize| -> Option<i64> {
        (v.len() == n).then(|| {
            let mut b = [0u8; 8];
            b[8 - n..].copy_from_slice(v);
            // Sign-extend from n bytes.
            let shift = (8 - n) * 8;
            (i64::from_be_bytes(b) << shift) >> shift
        })
    };
    match oid {
        16 => (v.len() == 1).then(|| if v[0] != 0 { "t" } else { "f" }.to_string()),
        20 => int(8).map(|n| n.to_string()),
        21 => int(2).map(|n| n.to_string()),
        23 | 26 => int(4).map(|n| n.to_string()),
        700 => <[u8; 4]>::try_from(v)
            .ok()
            .map(|b| f32::from_be_bytes(b).to_string()),
        701 => <[u8; 8]>::try_from(v)
            .ok()
            .map(|b| f64::from_be_bytes(b).to_string()),
        18 | 19 | 25 | 114 | 1042 | 1043 => std::str::from_utf8(v).ok().map(str::to_string),
        3802 => match v.split_first() {
            Some((1, rest)) => std::str::from_utf8(rest).ok().map(str::to_string),
            _ => None,
        },
        2950 if v.len() == 16 => {
            let h: String = v.iter().map(|b| format!("{b:02x}")).collect();
            Some(format!(
                "{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::binary_to_text;

    #[test]
    fn renders_common_binary_types() {
        assert_eq!(binary_to_text(21, &[0, 7]).as_deref(), Some("7"));
        assert_eq!(
            binary_to_text(23, &(-5i32).to_be_bytes()).as_deref(),
            Some("-5")
        );
        assert_eq!(
            binary_to_text(20, &(1i64 << 40).to_be_bytes()).as_deref(),
            Some("1099511627776")
        );
        assert_eq!(binary_to_text(16, &[1]).as_deref(), Some("t"));
        assert_eq!(
            binary_to_text(701, &1.5f64.to_be_bytes()).as_deref(),
            Some("1.5")
        );
        assert_eq!(binary_to_text(25, b"hi").as_deref(), Some("hi"));
        assert_eq!(
            binary_to_text(2950, &[0x12; 16]).as_deref(),
            Some("12121212-1212-1212-1212-121212121212")
        );
        assert_eq!(binary_to_text(23, &[1, 2]), None);
        assert_eq!(binary_to_text(17, b"x"), None);
    }
}
