//! Framing: is a whole message buffered, and how long is it?
//!
//! `Ok(None)` (need more bytes) is a normal outcome, not an error.

use super::CodecError;

/// Largest message sluice accepts (PostgreSQL's own limit for most messages is 1 GiB).
pub const MAX_MESSAGE_LEN: usize = 1 << 30;
/// Largest startup packet (PostgreSQL uses 10 000).
pub const MAX_STARTUP_LEN: usize = 10_000;

/// One complete typed message at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Message type byte.
    pub tag: u8,
    /// Body, after the length field.
    pub body: &'a [u8],
    /// Total bytes of the message, header included.
    pub len: usize,
}

/// The first complete typed message (`tag`, `len:i32`, body) in `buf`, if buffered.
pub fn next_message(buf: &[u8]) -> Result<Option<Frame<'_>>, CodecError> {
    if buf.len() < 5 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 || len as usize > MAX_MESSAGE_LEN {
        return Err(CodecError::Length(len as i64));
    }
    let total = 1 + len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some(Frame {
        tag: buf[0],
        body: &buf[5..total],
        len: total,
    }))
}

/// The body of the first complete untyped startup-phase packet (`len:i32`, body) in `buf`.
pub fn next_startup(buf: &[u8]) -> Result<Option<(&[u8], usize)>, CodecError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 8 || len as usize > MAX_STARTUP_LEN {
        return Err(CodecError::Length(len as i64));
    }
    let total = len as usize;
    if buf.len() < total {
        return Ok(None);
    }
    Ok(Some((&buf[4..total], total)))
}

#[cfg(test)]
mod tests;
