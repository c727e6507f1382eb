//! Backend (server → client) messages: typed, borrowed views of what sluice inspects.

use super::reader::Reader;
use super::CodecError;

/// A typed message from the server, borrowed from the receive buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum BackendMessage<'a> {
    /// RowDescription: the result's column names.
    RowDescription(Vec<&'a str>),
    /// DataRow: the raw body (decode values with [`data_row_values`] only when needed).
    DataRow(&'a [u8]),
    /// CommandComplete with its tag.
    CommandComplete(&'a str),
    /// EmptyQueryResponse.
    EmptyQuery,
    /// PortalSuspended (Execute row limit reached).
    PortalSuspended,
    /// ErrorResponse.
    Error(ErrorFields<'a>),
    /// ReadyForQuery with the transaction status.
    ReadyForQuery(u8),
    /// ParseComplete.
    ParseComplete,
    /// BindComplete.
    BindComplete,
    /// CloseComplete.
    CloseComplete,
    /// NoData.
    NoData,
    /// ParameterDescription.
    ParameterDescription,
    /// CopyInResponse, CopyOutResponse or CopyBothResponse.
    CopyResponse(u8),
    /// NotificationResponse (LISTEN/NOTIFY).
    Notification {
        /// Channel.
        channel: &'a str,
        /// Payload.
        payload: &'a str,
    },
    /// Any other message (NoticeResponse, ParameterStatus, CopyData, …): relayed untouched.
    Other(u8),
}

/// The fields of an ErrorResponse / NoticeResponse that sluice records.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ErrorFields<'a> {
    /// Severity (`ERROR`, `FATAL`, …).
    pub severity: &'a str,
    /// SQLSTATE.
    pub code: &'a str,
    /// Primary message.
    pub message: &'a str,
}

impl<'a> BackendMessage<'a> {
    /// Parses the server message types sluice inspects; everything else is `Other`.
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<Self, CodecError> {
        Ok(match tag {
            b'T' => BackendMessage::RowDescription(row_description(body)?),
            b'D' => BackendMessage::DataRow(body),
            b'C' => BackendMessage::CommandComplete(Reader::new(body, "CommandComplete").cstr()?),
            b'I' => BackendMessage::EmptyQuery,
            b's' => BackendMessage::PortalSuspended,
            b'E' => BackendMessage::Error(error_fields(body)?),
            b'Z' => BackendMessage::ReadyForQuery(Reader::new(body, "ReadyForQuery").u8()?),
            b'1' => BackendMessage::ParseComplete,
            b'2' => BackendMessage::BindComplete,
            b'3' => BackendMessage::CloseComplete,
            b'n' => BackendMessage::NoData,
            b't' => BackendMessage::ParameterDescription,
            b'G' | b'H' | b'W' => BackendMessage::CopyResponse(tag),
            b'A' => {
                let mut r = Reader::new(body, "NotificationResponse");
                let _pid = r.i32()?;
                BackendMessage::Notification {
                    channel: r.cstr()?,
                    payload: r.cstr()?,
                }
            }
            other => BackendMessage::Other(other),
        })
    }
}

fn row_description(body: &[u8]) -> Result<Vec<&str>, CodecError> {
    let mut r = Reader::new(body, "RowDescription");
    let n = r.i16()?.max(0) as usize;
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        names.push(r.cstr()?);
        r.bytes(18)?; // table oid, column no, type oid, size, modifier, format
    }
    Ok(names)
}

/// Parses ErrorResponse / NoticeResponse fields.
pub fn error_fields(body: &[u8]) -> Result<ErrorFields<'_>, CodecError> {
    let mut r = Reader::new(body, "ErrorResponse");
    let mut f = ErrorFields::default();
    loop {
        let code = r.u8()?;
        if code == 0 {
            break;
        }
        let value = r.cstr()?;
        match code {
            b'S' => f.severity = value,
            b'C' => f.code = value,
            b'M' => f.message = value,
            _ => {}
        }
    }
    Ok(f)
}

/// The values of a DataRow body (`None` = NULL).
pub fn data_row_values(body: &[u8]) -> Result<Vec<Option<&[u8]>>, CodecError> {
    let mut r = Reader::new(body, "DataRow");
    let n = r.i16()?.max(0) as usize;
    let mut values = Vec::with_capacity(n);
    for _ in 0..n {
        values.push(r.value()?);
    }
    if !r.is_empty() {
        return Err(CodecError::Malformed("DataRow"));
    }
    Ok(values)
}

/// BackendKeyData: (process id, secret key).
pub fn backend_key_data(body: &[u8]) -> Result<(i32, i32), CodecError> {
    let mut r = Reader::new(body, "BackendKeyData");
    Ok((r.i32()?, r.i32()?))
}

/// The authentication request code of an `R` message and the rest of its body.
pub fn authentication(body: &[u8]) -> Result<(i32, &[u8]), CodecError> {
    let mut r = Reader::new(body, "Authentication");
    let code = r.i32()?;
    Ok((code, r.rest()))
}

#[cfg(test)]
mod tests;
