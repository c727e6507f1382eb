//! Whole-packet reads and writes for the connection phase, where packets are few and small
//! and no byte past the current packet may be read (TLS may start right after it).

use crate::codec::packet::{put_packet, HEADER};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

/// Reads one packet: (sequence id, payload), or `None` at a clean end of stream. A payload
/// over `limit` bytes is an `InvalidData` error.
pub async fn read_packet<S: AsyncRead + Unpin>(
    stream: &mut S,
    limit: usize,
) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let mut header = [0u8; HEADER];
    match stream.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    if len > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("login packet of {len} bytes is too large"),
        ));
    }
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok(Some((header[3], payload)))
}

/// Writes `payload` as one packet with sequence id `seq` and flushes.
pub async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    seq: u8,
    payload: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(payload.len() + HEADER);
    put_packet(&mut out, seq, payload);
    sluice_pipeline::stream::write_flushed(stream, &out).await
}
