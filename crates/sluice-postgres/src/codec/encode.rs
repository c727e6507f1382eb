//! Encoders for the messages the gateway itself sends (to clients and, for cancels, to targets).

use bytes::{BufMut, BytesMut};

fn typed(buf: &mut BytesMut, tag: u8, body: impl FnOnce(&mut BytesMut)) {
    buf.put_u8(tag);
    let at = buf.len();
    buf.put_i32(0);
    body(buf);
    let len = (buf.len() - at) as i32;
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
}

fn cstr(buf: &mut BytesMut, s: &str) {
    // A NUL inside would end the field early; the gateway's own texts never contain one.
    buf.put_slice(s.replace('\0', "").as_bytes());
    buf.put_u8(0);
}

/// ErrorResponse (`severity` `ERROR` or `FATAL`) with SQLSTATE `code`.
pub fn error_response(buf: &mut BytesMut, severity: &str, code: &str, message: &str) {
    report(buf, b'E', severity, code, message, "");
}

/// ErrorResponse or NoticeResponse (`tag` `E` or `N`) with a hint.
pub fn report(buf: &mut BytesMut, tag: u8, severity: &str, code: &str, message: &str, hint: &str) {
    typed(buf, tag, |b| {
        for (field, value) in [
            (b'S', severity),
            (b'V', severity),
            (b'C', code),
            (b'M', message),
        ] {
            b.put_u8(field);
            cstr(b, value);
        }
        if !hint.is_empty() {
            b.put_u8(b'H');
            cstr(b, hint);
        }
        b.put_u8(0);
    });
}

/// ReadyForQuery with transaction status `status` (`I`, `T` or `E`).
pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    typed(buf, b'Z', |b| b.put_u8(status));
}

/// AuthenticationCleartextPassword.
pub fn auth_cleartext(buf: &mut BytesMut) {
    typed(buf, b'R', |b| b.put_i32(3));
}

/// AuthenticationOk.
pub fn auth_ok(buf: &mut BytesMut) {
    typed(buf, b'R', |b| b.put_i32(0));
}

/// BackendKeyData.
pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    typed(buf, b'K', |b| {
        b.put_i32(pid);
        b.put_i32(secret);
    });
}

/// NegotiateProtocolVersion: the newest minor version sluice speaks and the `_pq_.` options it
/// does not recognise.
pub fn negotiate_protocol_version(buf: &mut BytesMut, minor: i32, unsupported: &[&str]) {
    typed(buf, b'v', |b| {
        b.put_i32(minor);
        b.put_i32(unsupported.len() as i32);
        for o in unsupported {
            cstr(b, o);
        }
    });
}

/// SSLRequest (an untyped startup-phase packet).
pub fn ssl_request(buf: &mut BytesMut) {
    buf.put_i32(8);
    buf.put_i32(80_877_103);
}

/// CancelRequest (an untyped startup-phase packet).
pub fn cancel_request(buf: &mut BytesMut, pid: i32, secret: i32) {
    buf.put_i32(16);
    buf.put_i32(80_877_102);
    buf.put_i32(pid);
    buf.put_i32(secret);
}

/// Appends a raw message (`tag`, body) — used to re-emit a message unchanged.
pub fn raw(buf: &mut BytesMut, tag: u8, body: &[u8]) {
    typed(buf, tag, |b| b.put_slice(body));
}

#[cfg(test)]
mod tests;
