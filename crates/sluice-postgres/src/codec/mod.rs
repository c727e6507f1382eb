//! PostgreSQL v3 wire codec: framing, typed views of the messages sluice inspects, and
//! encoders for the messages the gateway itself sends. No I/O, no tokio, no policy.
//!
//! Relayed bytes stay opaque: framing only reads the 5-byte header, and a message is decoded
//! into a borrowed view only when a pipeline stage needs its fields.

pub mod backend;
pub mod encode;
pub mod frame;
pub mod frontend;
mod reader;
pub mod values;

pub use frame::{next_message, next_startup, Frame};

/// The bytes are not valid PostgreSQL protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// A length field is out of range.
    #[error("invalid message length {0}")]
    Length(i64),
    /// A message of a type this side never sends.
    #[error("unexpected message type {0:?}")]
    UnknownType(char),
    /// A message body ends early or holds an invalid field.
    #[error("malformed {0} message")]
    Malformed(&'static str),
    /// A startup packet with an unknown protocol version or request code.
    #[error("unsupported protocol version {0}.{1}")]
    Version(u16, u16),
}
