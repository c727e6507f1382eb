//! Frontend (client → server) messages: typed, borrowed views of what sluice inspects.

use super::reader::Reader;
use super::CodecError;

/// Protocol 3.0 (tests build startup packets with it).
#[cfg(test)]
const PROTOCOL_3_0: i32 = 196_608;
const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// A packet of the startup phase (untyped).
#[derive(Debug, PartialEq, Eq)]
pub enum StartupPacket<'a> {
    /// StartupMessage (protocol 3.`minor`) with its parameters (`user`, `database`, …).
    Startup {
        /// Requested minor protocol version; sluice speaks 3.0 and negotiates down.
        minor: u16,
        /// Parameters, in order.
        params: Vec<(&'a str, &'a str)>,
    },
    /// SSLRequest.
    SslRequest,
    /// GSSENCRequest.
    GssEncRequest,
    /// CancelRequest with the key the server gave in BackendKeyData.
    Cancel {
        /// Process id.
        pid: i32,
        /// Secret key.
        secret: i32,
    },
}

impl<'a> StartupPacket<'a> {
    /// Parses a startup-phase packet body (after the length field).
    pub fn parse(body: &'a [u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(body, "startup");
        let code = r.i32()?;
        match code {
            SSL_REQUEST => Ok(StartupPacket::SslRequest),
            GSSENC_REQUEST => Ok(StartupPacket::GssEncRequest),
            CANCEL_REQUEST => Ok(StartupPacket::Cancel {
                pid: r.i32()?,
                secret: r.i32()?,
            }),
            code if code >> 16 == 3 => {
                let minor = (code & 0xffff) as u16;
                let mut params = Vec::new();
                loop {
                    let key = r.cstr()?;
                    if key.is_empty() {
                        break;
                    }
                    params.push((key, r.cstr()?));
                }
                Ok(StartupPacket::Startup { minor, params })
            }
            other => Err(CodecError::Version((other >> 16) as u16, other as u16)),
        }
    }
}

/// A typed message from the client, borrowed from the receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum FrontendMessage<'a> {
    /// Simple query.
    Query(&'a str),
    /// Parse: prepare `query` as statement `name`.
    Parse {
        /// Statement name ("" = unnamed).
        name: &'a str,
        /// SQL text.
        query: &'a str,
        /// Parameter type OIDs the client specified (0 = let the server infer).
        param_types: Vec<u32>,
    },
    /// Bind statement to portal with parameters.
    Bind(Bind<'a>),
    /// Execute a portal.
    Execute {
        /// Portal name.
        portal: &'a str,
    },
    /// Describe a statement (`b'S'`) or portal (`b'P'`).
    Describe {
        /// `S` or `P`.
        kind: u8,
        /// Name.
        name: &'a str,
    },
    /// Close a statement (`b'S'`) or portal (`b'P'`).
    Close {
        /// `S` or `P`.
        kind: u8,
        /// Name.
        name: &'a str,
    },
    /// Sync: end of an extended-protocol batch.
    Sync,
    /// Flush.
    Flush,
    /// Terminate: the client says goodbye.
    Terminate,
    /// A fast-path function call.
    FunctionCall,
    /// COPY data, done or fail (client side of COPY FROM STDIN).
    Copy,
    /// A password, SASL or GSS response (only valid during authentication).
    AuthResponse(&'a [u8]),
}

/// A Bind message.
#[derive(Debug, PartialEq, Eq)]
pub struct Bind<'a> {
    /// Destination portal.
    pub portal: &'a str,
    /// Source statement.
    pub statement: &'a str,
    /// Parameter format codes (0 text, 1 binary), as sent.
    pub param_formats: Vec<i16>,
    /// Parameter values.
    pub params: Vec<Option<&'a [u8]>>,
    /// Result format codes, as sent.
    pub result_formats: Vec<i16>,
}

impl Bind<'_> {
    /// Format of parameter `i` (per the protocol's 0 / 1 / n rule).
    pub fn param_format(&self, i: usize) -> i16 {
        format_of(&self.param_formats, i)
    }
}

/// Format code of column/parameter `i` given a format-code list (0 codes: text; 1: all).
pub fn format_of(codes: &[i16], i: usize) -> i16 {
    match codes.len() {
        0 => 0,
        1 => codes[0],
        _ => codes.get(i).copied().unwrap_or(0),
    }
}

impl<'a> FrontendMessage<'a> {
    /// Parses a typed client message in the query phase.
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<Self, CodecError> {
        Ok(match tag {
            b'Q' => FrontendMessage::Query(Reader::new(body, "Query").cstr()?),
            b'P' => {
                let mut r = Reader::new(body, "Parse");
                let name = r.cstr()?;
                let query = r.cstr()?;
                let n = r.i16()?.max(0) as usize;
                let mut param_types = Vec::with_capacity(n);
                for _ in 0..n {
                    param_types.push(r.i32()? as u32);
                }
                FrontendMessage::Parse {
                    name,
                    query,
                    param_types,
                }
            }
            b'B' => FrontendMessage::Bind(parse_bind(body)?),
            b'E' => FrontendMessage::Execute {
                portal: Reader::new(body, "Execute").cstr()?,
            },
            b'D' | b'C' => {
                let mut r = Reader::new(body, "Describe/Close");
                let kind = r.u8()?;
                if kind != b'S' && kind != b'P' {
                    return Err(CodecError::Malformed("Describe/Close"));
                }
                let name = r.cstr()?;
                if tag == b'D' {
                    FrontendMessage::Describe { kind, name }
                } else {
                    FrontendMessage::Close { kind, name }
                }
            }
            b'S' => FrontendMessage::Sync,
            b'H' => FrontendMessage::Flush,
            b'X' => FrontendMessage::Terminate,
            b'F' => FrontendMessage::FunctionCall,
            b'd' | b'c' | b'f' => FrontendMessage::Copy,
            b'p' => FrontendMessage::AuthResponse(body),
            other => return Err(CodecError::UnknownType(other as char)),
        })
    }
}

fn parse_bind(body: &[u8]) -> Result<Bind<'_>, CodecError> {
    let mut r = Reader::new(body, "Bind");
    let portal = r.cstr()?;
    let statement = r.cstr()?;
    let nf = r.i16()?.max(0) as usize;
    let mut param_formats = Vec::with_capacity(nf);
    for _ in 0..nf {
        param_formats.push(r.i16()?);
    }
    let np = r.i16()?.max(0) as usize;
    let mut params = Vec::with_capacity(np);
    for _ in 0..np {
        params.push(r.value()?);
    }
    let nr = r.i16()?.max(0) as usize;
    let mut result_formats = Vec::with_capacity(nr);
    for _ in 0..nr {
        result_formats.push(r.i16()?);
    }
    Ok(Bind {
        portal,
        statement,
        param_formats,
        params,
        result_formats,
    })
}

/// Largest length a client message of type `tag` may have: PostgreSQL's own limits (1 GiB for
/// messages that carry data, 10 000 bytes for control messages). An unknown type is an error
/// as soon as its first byte arrives, so garbage is refused without waiting for a "body".
pub fn max_len(tag: u8) -> Result<usize, CodecError> {
    match tag {
        b'Q' | b'P' | b'B' | b'F' | b'd' | b'p' => Ok(super::frame::MAX_MESSAGE_LEN),
        b'E' | b'D' | b'C' | b'S' | b'H' | b'X' | b'c' | b'f' => Ok(10_000),
        other => Err(CodecError::UnknownType(other as char)),
    }
}

/// The first complete client message in `buf`, checking its type and length first.
pub fn next_frontend(buf: &[u8]) -> Result<Option<super::Frame<'_>>, CodecError> {
    let Some(&tag) = buf.first() else {
        return Ok(None);
    };
    let max = max_len(tag)?;
    if buf.len() >= 5 {
        let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
        if len < 4 || len as usize > max {
            return Err(CodecError::Length(len as i64));
        }
    }
    super::next_message(buf)
}

/// The password in a PasswordMessage body (NUL-terminated).
pub fn password(body: &[u8]) -> Result<&str, CodecError> {
    Reader::new(body, "PasswordMessage").cstr()
}

#[cfg(test)]
mod tests;
