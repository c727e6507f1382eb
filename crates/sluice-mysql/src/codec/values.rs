//! Values of the binary protocol (prepared-statement parameters and result rows): where each
//! one is, and its text form for recordings.

use super::wire::Reader;
use super::CodecError;
use std::fmt::Write;
use std::ops::Range;

/// Field types (`MYSQL_TYPE_*`) with a fixed binary width or a length byte.
pub mod types {
    pub const DECIMAL: u8 = 0;
    pub const TINY: u8 = 1;
    pub const SHORT: u8 = 2;
    pub const LONG: u8 = 3;
    pub const FLOAT: u8 = 4;
    pub const DOUBLE: u8 = 5;
    pub const NULL: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const LONGLONG: u8 = 8;
    pub const INT24: u8 = 9;
    pub const DATE: u8 = 10;
    pub const TIME: u8 = 11;
    pub const DATETIME: u8 = 12;
    pub const YEAR: u8 = 13;
}

/// Where one binary value lies in its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The value's bytes (without its length prefix).
    pub range: Range<usize>,
    /// Field type.
    pub kind: u8,
    /// Whether it is a length-prefixed string (text the masker may edit in place).
    pub string: bool,
}

/// Reads the binary value of type `kind` at the reader's position.
pub fn read_value(r: &mut Reader<'_>, kind: u8) -> Result<Field, CodecError> {
    use types::*;
    let fixed = match kind {
        TINY => Some(1),
        SHORT | YEAR => Some(2),
        LONG | INT24 | FLOAT => Some(4),
        LONGLONG | DOUBLE => Some(8),
        NULL => Some(0),
        _ => None,
    };
    if let Some(n) = fixed {
        let start = r.position();
        r.bytes(n)?;
        return Ok(Field {
            range: start..start + n,
            kind,
            string: false,
        });
    }
    if matches!(kind, DATE | DATETIME | TIMESTAMP | TIME) {
        let n = r.u8()? as usize;
        let start = r.position();
        r.bytes(n)?;
        return Ok(Field {
            range: start..start + n,
            kind,
            string: false,
        });
    }
    let bytes = r.lenenc_str()?;
    let end = r.position();
    Ok(Field {
        range: end - bytes.len()..end,
        kind,
        string: true,
    })
}

/// The text form of a binary value: numbers and temporal values as MySQL prints them,
/// strings as they are (lossy UTF-8).
pub fn to_text(kind: u8, unsigned: bool, v: &[u8]) -> String {
    use types::*;
    let int = |n: usize| -> Option<u64> {
        let mut a = [0u8; 8];
        a.get_mut(..n)?.copy_from_slice(v.get(..n)?);
        Some(u64::from_le_bytes(a))
    };
    let signed = |x: u64, bits: u32| -> i64 { ((x << (64 - bits)) as i64) >> (64 - bits) };
    let number = |n: usize| -> Option<String> {
        let x = int(n)?;
        Some(if unsigned {
            x.to_string()
        } else {
            signed(x, 8 * n as u32).to_string()
        })
    };
    let text = match kind {
        TINY => number(1),
        SHORT | YEAR => number(2),
        LONG | INT24 => number(4),
        LONGLONG => number(8),
        FLOAT => int(4).map(|x| f32::from_bits(x as u32).to_string()),
        DOUBLE => int(8).map(|x| f64::from_bits(x).to_string()),
        DATE | DATETIME | TIMESTAMP => Some(datetime(v, kind == DATE)),
        TIME => Some(time(v)),
        _ => None,
    };
    text.unwrap_or_else(|| String::from_utf8_lossy(v).into_owned())
}

fn datetime(v: &[u8], date_only: bool) -> String {
    let mut s = String::new();
    let year = v.get(..2).map_or(0, |b| u16::from_le_bytes([b[0], b[1]]));
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    let _ = write!(s, "{year:04}-{:02}-{:02}", at(2), at(3));
    if !date_only {
        let _ = write!(s, " {:02}:{:02}:{:02}", at(4), at(5), at(6));
        if v.len() >= 11 {
            let micros = u32::from_le_bytes([v[7], v[8], v[9], v[10]]);
            let _ = write!(s, ".{micros:06}");
        }
    }
    s
}

fn time(v: &[u8]) -> String {
    if v.len() < 8 {
        return "00:00:00".into();
    }
    let negative = v[0] == 1;
    let days = u32::from_le_bytes([v[1], v[2], v[3], v[4]]);
    let hours = days * 24 + u32::from(v[5]);
    let mut s = format!(
        "{}{hours:02}:{:02}:{:02}",
        if negative { "-" } else { "" },
        v[6],
        v[7]
    );
    if v.len() >= 12 {
        let micros = u32::from_le_bytes([v[8], v[9], v[10], v[11]]);
        let _ = write!(s, ".{micros:06}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::types::*;
    use super::*;

    #[test]
    fn numbers_and_times_render_like_mysql() {
        assert_eq!(to_text(TINY, false, &[0xFF]), "-1");
        assert_eq!(to_text(TINY, true, &[0xFF]), "255");
        assert_eq!(to_text(LONGLONG, false, &(-5i64).to_le_bytes()), "-5");
        assert_eq!(to_text(DOUBLE, false, &1.5f64.to_le_bytes()), "1.5");
        assert_eq!(
            to_text(DATETIME, false, &[0xE8, 0x07, 11, 24, 13, 5, 9]),
            "2024-11-24 13:05:09"
        );
        assert_eq!(to_text(DATE, false, &[0xE8, 0x07, 1, 2]), "2024-01-02");
        assert_eq!(to_text(TIME, false, &[1, 1, 0, 0, 0, 2, 3, 4]), "-26:03:04");
        assert_eq!(to_text(253, false, b"abc"), "abc");
    }

    #[test]
    fn values_are_located_and_short_ones_fail() -> Result<(), Box<dyn std::error::Error>> {
        let mut r = Reader::new(b"\x03abc\x04\x01\x02\x03\x04", "row");
        assert_eq!(read_value(&mut r, 253)?.range, 1..4);
        let f = read_value(&mut r, LONG)?;
        assert_eq!((f.range, f.string), (4..8, false));
        assert!(read_value(&mut Reader::new(b"\x05ab", "row"), 253).is_err());
        assert!(read_value(&mut Reader::new(b"\x07\x01", "row"), DATETIME).is_err());
        Ok(())
    }
}
