//! A cursor over a message body.

use super::CodecError;

/// Reads fields from a message body; every read fails with `Malformed(what)` past the end.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, what }
    }

    fn err(&self) -> CodecError {
        CodecError::Malformed(self.what)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, CodecError> {
        let (&b, rest) = self.buf.split_first().ok_or_else(|| self.err())?;
        self.buf = rest;
        Ok(b)
    }

    pub(crate) fn i16(&mut self) -> Result<i16, CodecError> {
        let b = self.bytes(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, CodecError> {
        let b = self.bytes(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(self.err());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    /// A NUL-terminated string (UTF-8 checked).
    pub(crate) fn cstr(&mut self) -> Result<&'a str, CodecError> {
        let end = self
            .buf
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| self.err())?;
        let s = std::str::from_utf8(&self.buf[..end]).map_err(|_| self.err())?;
        self.buf = &self.buf[end + 1..];
        Ok(s)
    }

    /// A length-prefixed value (`-1` is NULL).
    pub(crate) fn value(&mut self) -> Result<Option<&'a [u8]>, CodecError> {
        let len = self.i32()?;
        if len < 0 {
            return Ok(None);
        }
        self.bytes(len as usize).map(Some)
    }

    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
}
