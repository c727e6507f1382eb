//! WebSocket frames (RFC 6455), as far as a relay needs them: read one frame, write one.
//!
//! The exec relay reads each side's frames to record and mask the channels in them, and
//! writes the client's frames on unchanged (same mask, same bytes). Written by hand rather
//! than with `tungstenite`: the relay must keep frames as they are (no reassembly, no new
//! masking keys), and this is all of it.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Continuation of a fragmented message.
pub const CONTINUATION: u8 = 0x0;
/// A text message.
pub const TEXT: u8 = 0x1;
/// A binary message.
pub const BINARY: u8 = 0x2;
/// Close.
pub const CLOSE: u8 = 0x8;
/// Ping.
pub const PING: u8 = 0x9;
/// Pong.
pub const PONG: u8 = 0xA;

/// One frame; `payload` is unmasked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Last frame of its message.
    pub fin: bool,
    /// Opcode.
    pub opcode: u8,
    /// The masking key (frames from clients carry one).
    pub mask: Option<[u8; 4]>,
    /// The payload, unmasked.
    pub payload: Vec<u8>,
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A frame longer than the relay takes.
    #[error("a WebSocket frame of {0} bytes is larger than the gateway accepts")]
    TooLarge(u64),
    /// Reserved bits set (no extension was negotiated).
    #[error("a WebSocket frame uses reserved bits")]
    Reserved,
}

impl Frame {
    /// A final, unmasked frame.
    pub fn new(opcode: u8, payload: Vec<u8>) -> Frame {
        Frame {
            fin: true,
            opcode,
            mask: None,
            payload,
        }
    }

    /// Whether this is a control frame (close, ping, pong).
    pub fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// The frame on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let len = self.payload.len();
        let mut out = Vec::with_capacity(len + 14);
        out.push(u8::from(self.fin) << 7 | (self.opcode & 0x0F));
        let masked = u8::from(self.mask.is_some()) << 7;
        match len {
            0..=125 => out.push(masked | len as u8),
            126..=0xFFFF => {
                out.push(masked | 126);
                out.extend_from_slice(&(len as u16).to_be_bytes());
            }
            _ => {
                out.push(masked | 127);
                out.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                let start = out.len();
                out.extend_from_slice(&self.payload);
                apply_mask(&mut out[start..], key);
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// XORs `data` with `key`, as both masking and unmasking do.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// Reads one frame of at most `max` payload bytes; `None` when the connection ended
/// between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Frame>, FrameError> {
    let mut head = [0u8; 2];
    match r.read(&mut head[..1]).await? {
        0 => return Ok(None),
        _ => r.read_exact(&mut head[1..]).await?,
    };
    if head[0] & 0x70 != 0 {
        return Err(FrameError::Reserved);
    }
    let len = match head[1] & 0x7F {
        126 => u64::from(r.read_u16().await?),
        127 => r.read_u64().await?,
        n => u64::from(n),
    };
    if len > max as u64 {
        return Err(FrameError::TooLarge(len));
    }
    let mask = match head[1] & 0x80 {
        0 => None,
        _ => {
            let mut key = [0u8; 4];
            r.read_exact(&mut key).await?;
            Some(key)
        }
    };
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload).await?;
    if let Some(key) = mask {
        apply_mask(&mut payload, key);
    }
    Ok(Some(Frame {
        fin: head[0] & 0x80 != 0,
        opcode: head[0] & 0x0F,
        mask,
        payload,
    }))
}

/// Writes `frame` and flushes.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &Frame) -> std::io::Result<()> {
    sluice_pipeline::stream::write_flushed(w, &frame.encode()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_survive_the_round_trip() -> Result<(), FrameError> {
        for (len, mask) in [
            (0, None),
            (5, Some([1, 2, 3, 4])),
            (300, None),
            (70_000, Some([9, 8, 7, 6])),
        ] {
            let frame = Frame {
                fin: len != 300,
                opcode: BINARY,
                mask,
                payload: (0..len).map(|i| (i % 251) as u8).collect(),
            };
            let wire = frame.encode();
            let read = read_frame(&mut wire.as_slice(), 1 << 20).await?;
            assert_eq!(read, Some(frame));
        }
        Ok(())
    }

    #[tokio::test]
    async fn limits_and_reserved_bits_are_enforced() {
        let big = Frame::new(BINARY, vec![0; 2000]).encode();
        assert!(matches!(
            read_frame(&mut big.as_slice(), 1000).await,
            Err(FrameError::TooLarge(2000))
        ));
        let reserved = [0xC2u8, 0x00];
        assert!(matches!(
            read_frame(&mut reserved.as_slice(), 10).await,
            Err(FrameError::Reserved)
        ));
        let cut = [0x82u8, 0x05, 1, 2];
        assert!(matches!(
            read_frame(&mut cut.as_slice(), 10).await,
            Err(FrameError::Io(_))
        ));
        let empty: [u8; 0] = [];
        assert!(matches!(
            read_frame(&mut empty.as_slice(), 10).await,
            Ok(None)
        ));
    }
}
