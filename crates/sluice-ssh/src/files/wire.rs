//! SFTP version 3 framing and field readers (draft-ietf-secsh-filexfer-02, what OpenSSH
//! speaks). Written here rather than taken from `russh-sftp`: the relay needs a handful of
//! fields from ten packet types and must not copy or decode the file data it passes on.

/// Largest packet accepted (OpenSSH's own limit is 256 KiB).
pub const MAX_PACKET: usize = 1024 * 1024;

/// Packet types the relay looks at.
pub mod kind {
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const SETSTAT: u8 = 9;
    pub const OPENDIR: u8 = 11;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const RENAME: u8 = 18;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const EXTENDED: u8 = 200;
}

/// `SSH_FX_PERMISSION_DENIED`.
pub const FX_PERMISSION_DENIED: u32 = 3;

/// A stream that is not SFTP.
#[derive(Debug, thiserror::Error)]
#[error("malformed SFTP stream: a packet of {0} bytes")]
pub struct Malformed(pub usize);

/// The length of the complete packet at the start of `buf` (its length field included), or
/// `None` when more bytes are needed.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, Malformed> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len == 0 || len > MAX_PACKET {
        return Err(Malformed(len));
    }
    Ok((buf.len() >= 4 + len).then_some(4 + len))
}

/// One packet's type, request id and the fields after them.
pub struct Packet<'a> {
    pub kind: u8,
    pub id: u32,
    pub body: Reader<'a>,
}

impl<'a> Packet<'a> {
    /// Parses a framed packet (as [`frame_len`] delimited it).
    pub fn parse(frame: &'a [u8]) -> Option<Packet<'a>> {
        let mut r = Reader(frame.get(4..)?);
        let kind = r.u8()?;
        let id = r.u32()?;
        Some(Packet { kind, id, body: r })
    }
}

/// Reads SFTP fields off a packet.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    pub fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Some(u64::from_be_bytes(a))
    }

    /// A length-prefixed string.
    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A length-prefixed string as text (paths are UTF-8 in practice).
    pub fn text(&mut self) -> Option<String> {
        self.bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// `SSH_FXP_STATUS` answering request `id`.
pub fn status(id: u32, code: u32, message: &str) -> Vec<u8> {
    let body_len = 1 + 4 + 4 + 4 + message.len() + 4;
    let mut p = Vec::with_capacity(4 + body_len);
    p.extend_from_slice(&(body_len as u32).to_be_bytes());
    p.push(kind::STATUS);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&(message.len() as u32).to_be_bytes());
    p.extend_from_slice(message.as_bytes());
    p.extend_from_slice(&0u32.to_be_bytes());
    p
}
