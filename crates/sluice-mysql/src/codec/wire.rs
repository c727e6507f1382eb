//! The protocol's basic types: fixed-width little-endian integers, length-encoded integers
//! and strings, NUL-terminated strings. A [`Reader`] walks a payload; the `put_*` functions
//! append to an output buffer.

use super::CodecError;

/// A cursor over one packet payload.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// Reads `buf`; errors name `what` (the message being read).
    pub fn new(buf: &'a [u8], what: &'static str) -> Self {
        Reader { buf, at: 0, what }
    }

    fn short(&self) -> CodecError {
        CodecError::Malformed(self.what)
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.at..]
    }

    /// Position in the payload.
    pub fn position(&self) -> usize {
        self.at
    }

    /// True when everything was read.
    pub fn is_empty(&self) -> bool {
        self.at >= self.buf.len()
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.at.checked_add(n).ok_or_else(|| self.short())?;
        let b = self.buf.get(self.at..end).ok_or_else(|| self.short())?;
        self.at = end;
        Ok(b)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.bytes(1)?[0])
    }

    /// Little-endian u16.
    pub fn u16(&mut self) -> Result<u16, CodecError> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Little-endian u24.
    pub fn u24(&mut self) -> Result<u32, CodecError> {
        let b = self.bytes(3)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// Little-endian u32.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Little-endian u64.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A length-encoded integer; `None` for the NULL marker (0xFB).
    pub fn lenenc(&mut self) -> Result<Option<u64>, CodecError> {
        Ok(match self.u8()? {
            0xFB => None,
            0xFC => Some(u64::from(self.u16()?)),
            0xFD => Some(u64::from(self.u24()?)),
            0xFE => Some(self.u64()?),
            0xFF => return Err(self.short()),
            b => Some(u64::from(b)),
        })
    }

    /// A length-encoded integer that must not be NULL.
    pub fn lenenc_int(&mut self) -> Result<u64, CodecError> {
        self.lenenc()?.ok_or_else(|| self.short())
    }

    /// A length-encoded string; `None` for NULL.
    pub fn lenenc_bytes(&mut self) -> Result<Option<&'a [u8]>, CodecError> {
        match self.lenenc()? {
            None => Ok(None),
            Some(n) => {
                let n = usize::try_from(n).map_err(|_| self.short())?;
                self.bytes(n).map(Some)
            }
        }
    }

    /// A length-encoded string that must not be NULL.
    pub fn lenenc_str(&mut self) -> Result<&'a [u8], CodecError> {
        self.lenenc_bytes()?.ok_or_else(|| self.short())
    }

    /// A NUL-terminated string (without the NUL).
    pub fn nul_str(&mut self) -> Result<&'a [u8], CodecError> {
        let rest = self.rest();
        let n = rest
            .iter()
            .position(|b| *b == 0)
            .ok_or_else(|| self.short())?;
        self.at += n + 1;
        Ok(&rest[..n])
    }

    /// A NUL-terminated string, or the rest of the payload when there is no NUL.
    pub fn nul_or_eof_str(&mut self) -> &'a [u8] {
        let rest = self.rest();
        match rest.iter().position(|b| *b == 0) {
            Some(n) => {
                self.at += n + 1;
                &rest[..n]
            }
            None => {
                self.at = self.buf.len();
                rest
            }
        }
    }

    /// Everything left.
    pub fn eof_bytes(&mut self) -> &'a [u8] {
        let rest = self.rest();
        self.at = self.buf.len();
        rest
    }
}

/// Appends a length-encoded integer.
pub fn put_lenenc(out: &mut Vec<u8>, v: u64) {
    if v < 0xFB {
        out.push(v as u8);
    } else if v <= 0xFFFF {
        out.push(0xFC);
        out.extend_from_slice(&(v as u16).to_le_bytes());
    } else if v <= 0xFF_FFFF {
        out.push(0xFD);
        out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
    } else {
        out.push(0xFE);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends a length-encoded string.
pub fn put_lenenc_str(out: &mut Vec<u8>, s: &[u8]) {
    put_lenenc(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends a NUL-terminated string.
pub fn put_nul_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(s);
    out.push(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenenc_round_trips_every_width() -> Result<(), Box<dyn std::error::Error>> {
        for v in [
            0u64,
            250,
            251,
            0xFFFF,
            0x1_0000,
            0xFF_FFFF,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_lenenc(&mut out, v);
            assert_eq!(Reader::new(&out, "t").lenenc()?, Some(v), "{v}");
        }
        assert_eq!(Reader::new(&[0xFB], "t").lenenc()?, None);
        assert!(Reader::new(&[0xFC, 1], "t").lenenc().is_err());
        Ok(())
    }

    #[test]
    fn strings_stop_at_the_end_of_the_payload() {
        let mut r = Reader::new(b"\x05abc", "t");
        assert!(r.lenenc_str().is_err());
        let mut r = Reader::new(b"abc", "t");
        assert!(r.nul_str().is_err());
        assert_eq!(r.nul_or_eof_str(), b"abc");
    }
}
