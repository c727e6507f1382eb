//! The MySQL client/server protocol, without I/O: framing ([`packet`]), basic types
//! ([`wire`]), the connection phase ([`handshake`]), server responses ([`response`]) and
//! commands ([`command`]).

pub mod command;
pub mod handshake;
pub mod packet;
pub mod response;
pub mod values;
pub mod wire;

/// Why bytes could not be read as the message they should be.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// Too short, or a field runs past the end.
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A packet larger than the gateway accepts.
    #[error("packet of {0} bytes is larger than the gateway accepts")]
    TooLarge(usize),
    /// A command byte the gateway does not know.
    #[error("unknown command 0x{0:02x}")]
    UnknownCommand(u8),
}

/// Capability flags (`CLIENT_*`).
pub mod caps {
    /// Also "CLIENT_MYSQL": a MariaDB peer without it uses MariaDB's extended capabilities.
    pub const LONG_PASSWORD: u32 = 1;
    pub const FOUND_ROWS: u32 = 1 << 1;
    pub const LONG_FLAG: u32 = 1 << 2;
    pub const CONNECT_WITH_DB: u32 = 1 << 3;
    pub const NO_SCHEMA: u32 = 1 << 4;
    pub const COMPRESS: u32 = 1 << 5;
    pub const ODBC: u32 = 1 << 6;
    pub const LOCAL_FILES: u32 = 1 << 7;
    pub const IGNORE_SPACE: u32 = 1 << 8;
    pub const PROTOCOL_41: u32 = 1 << 9;
    pub const INTERACTIVE: u32 = 1 << 10;
    pub const SSL: u32 = 1 << 11;
    pub const IGNORE_SIGPIPE: u32 = 1 << 12;
    pub const TRANSACTIONS: u32 = 1 << 13;
    pub const SECURE_CONNECTION: u32 = 1 << 15;
    pub const MULTI_STATEMENTS: u32 = 1 << 16;
    pub const MULTI_RESULTS: u32 = 1 << 17;
    pub const PS_MULTI_RESULTS: u32 = 1 << 18;
    pub const PLUGIN_AUTH: u32 = 1 << 19;
    pub const CONNECT_ATTRS: u32 = 1 << 20;
    pub const PLUGIN_AUTH_LENENC_CLIENT_DATA: u32 = 1 << 21;
    pub const CAN_HANDLE_EXPIRED_PASSWORDS: u32 = 1 << 22;
    pub const SESSION_TRACK: u32 = 1 << 23;
    pub const DEPRECATE_EOF: u32 = 1 << 24;

    /// What the gateway offers clients. No compression, no LOCAL INFILE, no optional
    /// metadata or query attributes, and LONG_PASSWORD set so MariaDB clients do not use
    /// MariaDB's extended capabilities.
    pub const GATEWAY: u32 = LONG_PASSWORD
        | FOUND_ROWS
        | LONG_FLAG
        | CONNECT_WITH_DB
        | NO_SCHEMA
        | ODBC
        | IGNORE_SPACE
        | PROTOCOL_41
        | INTERACTIVE
        | SSL
        | IGNORE_SIGPIPE
        | TRANSACTIONS
        | SECURE_CONNECTION
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | PLUGIN_AUTH
        | CONNECT_ATTRS
        | PLUGIN_AUTH_LENENC_CLIENT_DATA
        | SESSION_TRACK
        | DEPRECATE_EOF;

    /// Flags that change what the command phase looks like: the target session must have
    /// exactly the client's.
    pub const COMMAND_PHASE: u32 = FOUND_ROWS
        | LONG_FLAG
        | NO_SCHEMA
        | ODBC
        | IGNORE_SPACE
        | PROTOCOL_41
        | INTERACTIVE
        | TRANSACTIONS
        | MULTI_STATEMENTS
        | MULTI_RESULTS
        | PS_MULTI_RESULTS
        | SESSION_TRACK
        | DEPRECATE_EOF;
}

/// Server status flags (`SERVER_*`).
pub mod status {
    /// Autocommit is on.
    pub const AUTOCOMMIT: u16 = 1 << 1;
    /// Another result set follows.
    pub const MORE_RESULTS_EXISTS: u16 = 1 << 3;
    /// A cursor is open for the executed statement.
    pub const CURSOR_EXISTS: u16 = 1 << 6;
    /// The cursor has no more rows.
    pub const LAST_ROW_SENT: u16 = 1 << 7;
}
