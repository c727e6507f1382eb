//! Server responses: OK, ERR, EOF and column definitions.

use super::wire::{put_lenenc, Reader};
use super::CodecError;

/// An OK packet (also the end of a result set when `DEPRECATE_EOF` is on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ok {
    /// Rows changed.
    pub affected_rows: u64,
    /// AUTO_INCREMENT id generated.
    pub last_insert_id: u64,
    /// Server status flags.
    pub status: u16,
    /// Warning count.
    pub warnings: u16,
}

/// Reads an OK packet (marker 0x00, or 0xFE as a result set's end).
pub fn parse_ok(payload: &[u8]) -> Result<Ok, CodecError> {
    let mut r = Reader::new(payload, "OK packet");
    r.u8()?;
    Ok(Ok {
        affected_rows: r.lenenc_int()?,
        last_insert_id: r.lenenc_int()?,
        status: r.u16()?,
        warnings: if r.is_empty() { 0 } else { r.u16()? },
    })
}

/// An EOF packet: (warnings, status).
pub fn parse_eof(payload: &[u8]) -> Result<(u16, u16), CodecError> {
    let mut r = Reader::new(payload, "EOF packet");
    r.u8()?;
    if r.is_empty() {
        return Ok((0, 0));
    }
    Ok((r.u16()?, r.u16()?))
}

/// Whether a packet with first byte `first` and `len` payload bytes is an EOF packet (or,
/// with `DEPRECATE_EOF`, the OK that ends a result set): 0xFE and shorter than a row that
/// could start with 0xFE.
pub fn is_eof(first: u8, len: usize, deprecate_eof: bool) -> bool {
    first == 0xFE
        && if deprecate_eof {
            len < super::packet::MAX_PART
        } else {
            len < 9
        }
}

/// An ERR packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Err {
    /// Error number.
    pub code: u16,
    /// SQLSTATE.
    pub sqlstate: String,
    /// Message.
    pub message: String,
}

/// Reads an ERR packet.
pub fn parse_err(payload: &[u8]) -> Result<Err, CodecError> {
    let mut r = Reader::new(payload, "ERR packet");
    r.u8()?;
    let code = r.u16()?;
    let mut sqlstate = String::from("HY000");
    if r.rest().first() == Some(&b'#') {
        r.u8()?;
        sqlstate = String::from_utf8_lossy(r.bytes(5)?).into_owned();
    }
    Ok(Err {
        code,
        sqlstate,
        message: String::from_utf8_lossy(r.eof_bytes()).into_owned(),
    })
}

/// Error numbers the client library keeps for itself (`CR_*`); a server never sends them.
const CLIENT_ERROR_CODES: std::ops::Range<u16> = 2000..3000;

/// Encodes an ERR packet's payload.
///
/// Error numbers 2000–2999 belong to the client library, and libmariadb reports an ERR packet
/// carrying one as "Received malformed packet" (2027), losing the message; such a `code` (the
/// gateway's own are all server numbers, but a target's refusal is passed on) is sent as
/// ER_UNKNOWN_ERROR (1105) with the same SQLSTATE and message.
pub fn encode_err(out: &mut Vec<u8>, code: u16, sqlstate: &str, message: &str) {
    let code = if CLIENT_ERROR_CODES.contains(&code) {
        1105
    } else {
        code
    };
    out.push(0xFF);
    out.extend_from_slice(&code.to_le_bytes());
    out.push(b'#');
    let mut state = [b'H', b'Y', b'0', b'0', b'0'];
    for (d, s) in state.iter_mut().zip(sqlstate.bytes()) {
        *d = s;
    }
    out.extend_from_slice(&state);
    out.extend_from_slice(message.as_bytes());
}

/// Encodes an OK packet's payload.
pub fn encode_ok(out: &mut Vec<u8>, status: u16) {
    out.push(0);
    put_lenenc(out, 0);
    put_lenenc(out, 0);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
}

/// What the gateway needs from a column definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Name (alias) as the client sees it.
    pub name: String,
    /// Character set number (63 is binary).
    pub charset: u16,
    /// Field type (`MYSQL_TYPE_*`).
    pub kind: u8,
    /// Column flags (`UNSIGNED_FLAG` is 32).
    pub flags: u16,
}

/// The binary character set.
pub const BINARY_CHARSET: u16 = 63;
/// `UNSIGNED_FLAG`.
pub const UNSIGNED: u16 = 32;

/// Reads a ColumnDefinition41.
pub fn parse_column(payload: &[u8]) -> Result<Column, CodecError> {
    let mut r = Reader::new(payload, "column definition");
    for _ in 0..4 {
        r.lenenc_str()?; // catalog, schema, table, org_table
    }
    let name = String::from_utf8_lossy(r.lenenc_str()?).into_owned();
    r.lenenc_str()?; // org_name
    r.lenenc_int()?; // length of the fixed fields (0x0C)
    let charset = r.u16()?;
    r.u32()?; // column length
    let kind = r.u8()?;
    let flags = r.u16()?;
    Ok(Column {
        name,
        charset,
        kind,
        flags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn err_round_trips() -> Result<(), Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        encode_err(&mut out, 1142, "42000", "no");
        let e = parse_err(&out)?;
        assert_eq!(
            (e.code, e.sqlstate.as_str(), e.message.as_str()),
            (1142, "42000", "no")
        );
        Ok(())
    }

    #[test]
    fn client_library_error_numbers_are_never_sent() -> Result<(), Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        encode_err(&mut out, 2003, "08S01", "cannot reach target");
        let e = parse_err(&out)?;
        assert_eq!(
            (e.code, e.sqlstate.as_str(), e.message.as_str()),
            (1105, "08S01", "cannot reach target")
        );
        Ok(())
    }

    #[test]
    fn ok_round_trips_and_eof_is_told_from_rows() -> Result<(), Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        encode_ok(&mut out, 2);
        assert_eq!(parse_ok(&out)?.status, 2);
        assert!(is_eof(0xFE, 5, false));
        assert!(!is_eof(0xFE, 9, false));
        assert!(is_eof(0xFE, 40, true));
        assert!(!is_eof(0x00, 5, true));
        Ok(())
    }
}
