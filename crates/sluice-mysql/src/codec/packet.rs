//! Packet framing: a 3-byte little-endian length, a sequence id, the payload. A payload of
//! 16 MiB − 1 bytes or more is split over several packets; the last one is shorter than
//! that (possibly empty). [`next_packet`] finds one logical packet, however many parts.

use super::CodecError;
use std::borrow::Cow;

/// Largest payload of one physical packet.
pub const MAX_PART: usize = 0xFF_FFFF;
/// Header bytes per physical packet.
pub const HEADER: usize = 4;

/// One logical packet at the start of a buffer.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// Every byte of it, headers included.
    pub raw: &'a [u8],
    /// Sequence id of its first part.
    pub seq: u8,
    /// Sequence id of its last part.
    pub last_seq: u8,
}

impl<'a> Packet<'a> {
    /// Bytes it occupies in the stream.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// True for a zero-length payload.
    pub fn is_empty(&self) -> bool {
        self.raw.len() == HEADER
    }

    /// The payload: borrowed when the packet has one part, joined when it has several.
    pub fn payload(&self) -> Cow<'a, [u8]> {
        if self.raw.len() - HEADER < MAX_PART {
            return Cow::Borrowed(&self.raw[HEADER..]);
        }
        let mut out = Vec::with_capacity(self.raw.len());
        for part in parts(self.raw) {
            out.extend_from_slice(&self.raw[part]);
        }
        Cow::Owned(out)
    }
}

/// The payload ranges of the parts of a complete logical packet in `raw`.
fn parts(raw: &[u8]) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
    let mut at = 0;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || at + HEADER > raw.len() {
            return None;
        }
        let len = u32::from_le_bytes([raw[at], raw[at + 1], raw[at + 2], 0]) as usize;
        let range = at + HEADER..(at + HEADER + len).min(raw.len());
        at += HEADER + len;
        done = len < MAX_PART;
        Some(range)
    })
}

/// The logical packet at the start of `buf`, or `None` when it is not complete yet. A packet
/// whose payload would pass `limit` bytes is refused.
pub fn next_packet(buf: &[u8], limit: usize) -> Result<Option<Packet<'_>>, CodecError> {
    let mut at = 0;
    let mut payload = 0usize;
    let mut first_seq = None;
    loop {
        if buf.len() < at + HEADER {
            return Ok(None);
        }
        let len = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], 0]) as usize;
        let seq = buf[at + 3];
        payload += len;
        if payload > limit {
            return Err(CodecError::TooLarge(payload));
        }
        let first = *first_seq.get_or_insert(seq);
        if buf.len() < at + HEADER + len {
            return Ok(None);
        }
        at += HEADER + len;
        if len < MAX_PART {
            return Ok(Some(Packet {
                raw: &buf[..at],
                seq: first,
                last_seq: seq,
            }));
        }
    }
}

/// Runs `f` over the payload of the complete logical packet in `raw`, in place; a packet of
/// several parts is joined for `f` and written back (`f` must keep the length).
pub fn with_payload_mut<R>(raw: &mut [u8], f: impl FnOnce(&mut [u8]) -> R) -> R {
    if raw.len() - HEADER < MAX_PART {
        return f(&mut raw[HEADER..]);
    }
    let ranges: Vec<_> = parts(raw).collect();
    let mut joined = Vec::with_capacity(raw.len());
    for r in &ranges {
        joined.extend_from_slice(&raw[r.clone()]);
    }
    let out = f(&mut joined);
    let mut at = 0;
    for r in ranges {
        let n = r.len();
        raw[r].copy_from_slice(&joined[at..at + n]);
        at += n;
    }
    out
}

/// Appends `payload` as one logical packet starting at sequence id `seq`; returns the
/// sequence id that follows it.
pub fn put_packet(out: &mut Vec<u8>, mut seq: u8, payload: &[u8]) -> u8 {
    let mut rest = payload;
    loop {
        let n = rest.len().min(MAX_PART);
        out.extend_from_slice(&(n as u32).to_le_bytes()[..3]);
        out.push(seq);
        out.extend_from_slice(&rest[..n]);
        seq = seq.wrapping_add(1);
        rest = &rest[n..];
        if n < MAX_PART {
            return seq;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_needs_all_its_bytes() -> Result<(), Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        put_packet(&mut out, 3, b"\x03select 1");
        for cut in 0..out.len() {
            assert!(next_packet(&out[..cut], 1 << 20)?.is_none(), "{cut}");
        }
        let p = next_packet(&out, 1 << 20)?.ok_or("missing")?;
        assert_eq!(
            (p.seq, p.len(), &*p.payload()),
            (3, out.len(), &b"\x03select 1"[..])
        );
        Ok(())
    }

    #[test]
    fn payloads_over_16_mib_span_parts_and_join_back() -> Result<(), Box<dyn std::error::Error>> {
        for size in [MAX_PART - 1, MAX_PART, MAX_PART + 10, 2 * MAX_PART] {
            let payload: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            let next = put_packet(&mut out, 0, &payload);
            let parts = size / MAX_PART + 1;
            assert_eq!(next as usize, parts);
            let p = next_packet(&out, usize::MAX)?.ok_or("missing")?;
            assert_eq!(p.len(), out.len());
            assert_eq!(p.last_seq as usize, parts - 1);
            assert!(p.payload() == payload, "size {size}");
            let mut raw = out.clone();
            with_payload_mut(&mut raw, |b| b[size - 1] = b'!');
            let changed = next_packet(&raw, usize::MAX)?.ok_or("missing")?.payload();
            assert_eq!(changed[size - 1], b'!');
            assert!(next_packet(&out, size - 1).is_err());
        }
        Ok(())
    }
}
