//! The framing of a terminal session on the upgraded connection of
//! `GET /api/v1/exec/{connection}/terminal` (`Upgrade: sluice-terminal/1`): each frame is a
//! kind byte, a big-endian `u32` length and the payload.
//!
//! - client → gateway: [`INPUT`] (keys), [`RESIZE`] (rows and columns, `u16` each).
//! - gateway → client: [`OUTPUT`] (the terminal's bytes, masked), [`EVENT`] (one
//!   [`ExecEvent`](crate::ExecEvent) as JSON: the session id, the exit status, an error).

use bytes::{Buf, Bytes, BytesMut};

/// The protocol named in `Upgrade`.
pub const PROTOCOL: &str = "sluice-terminal/1";
/// Keys typed (client → gateway).
pub const INPUT: u8 = 1;
/// A window change (client → gateway).
pub const RESIZE: u8 = 2;
/// Terminal output (gateway → client).
pub const OUTPUT: u8 = 3;
/// An event as JSON (gateway → client).
pub const EVENT: u8 = 4;
/// Largest frame accepted.
pub const MAX_FRAME: usize = 1024 * 1024;

/// A frame that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("invalid terminal frame: {0}")]
pub struct WireError(pub &'static str);

/// One frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 5);
    out.push(kind);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// A [`RESIZE`] frame.
pub fn resize(rows: u16, cols: u16) -> Vec<u8> {
    let mut p = [0u8; 4];
    p[..2].copy_from_slice(&rows.to_be_bytes());
    p[2..].copy_from_slice(&cols.to_be_bytes());
    frame(RESIZE, &p)
}

/// Reads `(rows, cols)` from a [`RESIZE`] payload.
pub fn parse_resize(p: &[u8]) -> Result<(u16, u16), WireError> {
    match p {
        [r0, r1, c0, c1] => Ok((
            u16::from_be_bytes([*r0, *r1]),
            u16::from_be_bytes([*c0, *c1]),
        )),
        _ => Err(WireError("a resize is 4 bytes")),
    }
}

/// Splits a byte stream into frames.
#[derive(Default)]
pub struct Decoder {
    buf: BytesMut,
}

impl Decoder {
    /// The buffer to read into.
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next whole frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<(u8, Bytes)>, WireError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        let len = usize::try_from(len).map_err(|_| WireError("length"))?;
        if len > MAX_FRAME {
            return Err(WireError("a frame is longer than 1 MiB"));
        }
        if self.buf.len() < 5 + len {
            self.buf.reserve(5 + len - self.buf.len());
            return Ok(None);
        }
        let kind = self.buf[0];
        self.buf.advance(5);
        Ok(Some((kind, self.buf.split_to(len).freeze())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_anywhere_come_out_whole() -> Result<(), WireError> {
        let mut wire = frame(INPUT, b"ls -la\r");
        wire.extend(resize(50, 132));
        for cut in 0..wire.len() {
            let mut d = Decoder::default();
            let mut got = Vec::new();
            for part in [&wire[..cut], &wire[cut..]] {
                d.buffer().extend_from_slice(part);
                while let Some(f) = d.next_frame()? {
                    got.push(f);
                }
            }
            assert_eq!(got.len(), 2, "cut at {cut}");
            assert_eq!(got[0], (INPUT, Bytes::from_static(b"ls -la\r")));
            assert_eq!(parse_resize(&got[1].1)?, (50, 132));
        }
        Ok(())
    }

    #[test]
    fn oversized_frames_are_refused() {
        let mut d = Decoder::default();
        d.buffer()
            .extend_from_slice(&[INPUT, 0xff, 0xff, 0xff, 0xff]);
        assert!(d.next_frame().is_err());
    }
}
