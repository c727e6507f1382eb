//! Client commands (the command phase): borrowed views of the packets.

use super::wire::Reader;
use super::CodecError;

/// One client command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command<'a> {
    /// COM_QUIT.
    Quit,
    /// COM_INIT_DB: change the default database.
    InitDb(&'a [u8]),
    /// COM_QUERY: SQL text (one or more statements).
    Query(&'a [u8]),
    /// COM_FIELD_LIST (deprecated): columns of a table.
    FieldList(&'a [u8]),
    /// COM_PING.
    Ping,
    /// COM_STATISTICS.
    Statistics,
    /// COM_PROCESS_KILL (deprecated): kill a connection by id.
    ProcessKill(u32),
    /// COM_CHANGE_USER.
    ChangeUser,
    /// COM_STMT_PREPARE: SQL text.
    StmtPrepare(&'a [u8]),
    /// COM_STMT_EXECUTE: statement id, cursor flags, then the parameter block.
    StmtExecute {
        /// Statement id.
        id: u32,
        /// Cursor flags (1: read-only cursor).
        flags: u8,
        /// Everything after the iteration count: NULL bitmap, bound flag, types, values.
        params: &'a [u8],
    },
    /// COM_STMT_SEND_LONG_DATA: a piece of one parameter's value (no response).
    StmtSendLongData {
        /// Statement id.
        id: u32,
        /// Parameter index.
        param: u16,
        /// The piece.
        data: &'a [u8],
    },
    /// COM_STMT_CLOSE (no response).
    StmtClose(u32),
    /// COM_STMT_RESET.
    StmtReset(u32),
    /// COM_SET_OPTION (multi-statements on/off).
    SetOption(u16),
    /// COM_STMT_FETCH: rows from an open cursor.
    StmtFetch {
        /// Statement id.
        id: u32,
        /// Rows wanted.
        rows: u32,
    },
    /// COM_RESET_CONNECTION.
    ResetConnection,
    /// COM_DEBUG, COM_PROCESS_INFO, COM_REFRESH and other administrative commands that
    /// answer with OK/ERR or a result set; relayed as they are.
    Other(u8),
    /// Replication and other commands the gateway does not proxy.
    Unsupported(u8),
}

/// Command bytes.
pub mod code {
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PROCESS_INFO: u8 = 0x0A;
    pub const PROCESS_KILL: u8 = 0x0C;
    pub const DEBUG: u8 = 0x0D;
    pub const PING: u8 = 0x0E;
    pub const CHANGE_USER: u8 = 0x11;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1A;
    pub const SET_OPTION: u8 = 0x1B;
    pub const STMT_FETCH: u8 = 0x1C;
    pub const RESET_CONNECTION: u8 = 0x1F;
}

impl<'a> Command<'a> {
    /// Reads a command payload.
    pub fn parse(payload: &'a [u8]) -> Result<Command<'a>, CodecError> {
        let mut r = Reader::new(payload, "command");
        let cmd = r.u8()?;
        Ok(match cmd {
            code::QUIT => Command::Quit,
            code::INIT_DB => Command::InitDb(r.eof_bytes()),
            code::QUERY => Command::Query(r.eof_bytes()),
            code::FIELD_LIST => Command::FieldList(r.nul_or_eof_str()),
            code::PING => Command::Ping,
            code::STATISTICS => Command::Statistics,
            code::PROCESS_KILL => Command::ProcessKill(r.u32()?),
            code::CHANGE_USER => Command::ChangeUser,
            code::STMT_PREPARE => Command::StmtPrepare(r.eof_bytes()),
            code::STMT_EXECUTE => {
                let id = r.u32()?;
                let flags = r.u8()?;
                r.u32()?; // iteration count, always 1
                Command::StmtExecute {
                    id,
                    flags,
                    params: r.eof_bytes(),
                }
            }
            code::STMT_SEND_LONG_DATA => Command::StmtSendLongData {
                id: r.u32()?,
                param: r.u16()?,
                data: r.eof_bytes(),
            },
            code::STMT_CLOSE => Command::StmtClose(r.u32()?),
            code::STMT_RESET => Command::StmtReset(r.u32()?),
            code::SET_OPTION => Command::SetOption(r.u16()?),
            code::STMT_FETCH => Command::StmtFetch {
                id: r.u32()?,
                rows: r.u32()?,
            },
            code::RESET_CONNECTION => Command::ResetConnection,
            code::PROCESS_INFO | code::DEBUG | 0x07 => Command::Other(cmd),
            0x00..=0x20 => Command::Unsupported(cmd),
            other => return Err(CodecError::UnknownCommand(other)),
        })
    }

    /// Whether the server answers this command (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA and
    /// COM_QUIT get no answer).
    pub fn expects_response(&self) -> bool {
        !matches!(
            self,
            Command::Quit | Command::StmtClose(_) | Command::StmtSendLongData { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_short_ones_fail() -> Result<(), Box<dyn std::error::Error>> {
        assert_eq!(
            Command::parse(b"\x03select 1")?,
            Command::Query(b"select 1")
        );
        assert_eq!(Command::parse(b"\x19\x05\0\0\0")?, Command::StmtClose(5));
        assert!(Command::parse(b"\x19\x05").is_err());
        assert!(Command::parse(b"").is_err());
        assert_eq!(
            Command::parse(b"\x99").unwrap_err(),
            CodecError::UnknownCommand(0x99)
        );
        assert!(!Command::parse(b"\x01")?.expects_response());
        Ok(())
    }
}
