//! A raw PostgreSQL wire client for tests that need exact bytes or exact SQLSTATEs.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// An ErrorResponse's fields.
#[derive(Debug, Default)]
pub struct PgError {
    pub severity: String,
    pub code: String,
    pub message: String,
}

pub fn startup(user: &str, database: &str) -> Vec<u8> {
    startup_with(196_608, &[("user", user), ("database", database)])
}

/// A startup packet with protocol `code` and `params`.
pub fn startup_with(code: i32, params: &[(&str, &str)]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    for (k, v) in params {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as i32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

pub fn typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![tag];
    m.extend_from_slice(&((body.len() + 4) as i32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Reads one typed message; `None` at EOF.
pub fn read_msg(s: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    s.read_exact(&mut head).ok()?;
    let len = i32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let mut body = vec![0u8; len - 4];
    s.read_exact(&mut body).ok()?;
    Some((head[0], body))
}

pub fn parse_error(body: &[u8]) -> PgError {
    let mut e = PgError::default();
    for field in body.split(|&b| b == 0) {
        if field.is_empty() {
            continue;
        }
        let v = String::from_utf8_lossy(&field[1..]).to_string();
        match field[0] {
            b'S' => e.severity = v,
            b'C' => e.code = v,
            b'M' => e.message = v,
            _ => {}
        }
    }
    e
}

/// Reads messages until an ErrorResponse; `None` if the connection ends first.
pub fn read_error(s: &mut TcpStream) -> Option<PgError> {
    while let Some((tag, body)) = read_msg(s) {
        if tag == b'E' {
            return Some(parse_error(&body));
        }
    }
    None
}

/// True when the peer has closed the connection (reads EOF).
pub fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return true,
        }
    }
}

/// Plaintext login with `token` as password; returns the stream after ReadyForQuery, or the error.
pub fn login(addr: SocketAddr, connection: &str, token: &str) -> Result<TcpStream, PgError> {
    let mut s = connect(addr);
    s.write_all(&startup(connection, "x")).unwrap();
    loop {
        let Some((tag, body)) = read_msg(&mut s) else {
            return Err(PgError {
                message: "connection closed".into(),
                ..Default::default()
            });
        };
        match tag {
            b'R' if body[..4] == 3i32.to_be_bytes() => {
                let mut pw = token.as_bytes().to_vec();
                pw.push(0);
                s.write_all(&typed(b'p', &pw)).unwrap();
            }
            b'E' => return Err(parse_error(&body)),
            b'Z' => return Ok(s),
            _ => {}
        }
    }
}
