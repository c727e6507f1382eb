//! `sluice connect CONNECTION` for command connections: an interactive session of the
//! connection's program on a pty at the gateway, in this terminal. The terminal is put in raw
//! mode (restored on exit), window changes follow, and the exit status is the program's (125
//! when the gateway refused or ended the session).

use super::client::{resolve_token, tls_config};
use anyhow::{bail, Context};
use sluice_exec::event::EXIT_REFUSED;
use sluice_exec::terminal::wire;
use sluice_exec::ExecEvent;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::ServerName;

/// How the session could be opened.
pub enum Opened {
    /// It ran; the exit status.
    Ran(i32),
    /// The connection is not a command connection (or the API is not reachable): the caller
    /// tries the PostgreSQL tunnel.
    NotCommand,
}

/// Opens and runs the session.
pub fn run(
    addr: &str,
    connection: &str,
    args: &[String],
    token: Option<String>,
    ca: Option<PathBuf>,
) -> anyhow::Result<Opened> {
    let token = resolve_token(token)?;
    let tls = Arc::new(tls_config(ca)?);
    let authority = addr
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .to_string();
    let host = authority
        .rsplit_once(':')
        .map_or(authority.as_str(), |(h, _)| h)
        .trim_matches(['[', ']'])
        .to_string();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = rt.block_on(async move {
        let Ok(tcp) = tokio::net::TcpStream::connect(&authority).await else {
            return Ok(Opened::NotCommand);
        };
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(host.clone())
            .with_context(|| format!("invalid gateway host {host:?}"))?;
        let mut stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .context("TLS to the gateway")?;
        let (rows, cols) = window_size();
        let term = std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into());
        let mut query = format!("rows={rows}&cols={cols}&term={}", super::client::enc(&term));
        for a in args {
            query.push_str(&format!("&arg={}", super::client::enc(a)));
        }
        let request = format!(
            "GET /api/v1/exec/{}/terminal?{query} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: {}\r\n\r\n",
            super::client::enc(connection),
            wire::PROTOCOL
        );
        stream.write_all(request.as_bytes()).await?;
        let (status, body, rest) = read_head(&mut stream).await?;
        if status != 101 {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_string))
                .unwrap_or_else(|| format!("HTTP {status}"));
            if status == 409 && message.contains("is a postgres connection") {
                return Ok(Opened::NotCommand);
            }
            bail!("{message}");
        }
        let raw = RawMode::enter();
        let code = relay(stream, rest).await;
        drop(raw);
        code.map(Opened::Ran)
    });
    // The read of stdin cannot be cancelled: do not wait for it.
    rt.shutdown_background();
    result
}

/// Relays the terminal until the session ends; the exit status.
async fn relay<S>(stream: S, rest: Vec<u8>) -> anyhow::Result<i32>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut server_r, mut server_w) = tokio::io::split(stream);
    let mut decoder = wire::Decoder::default();
    decoder.buffer().extend_from_slice(&rest);
    let mut stdin = tokio::io::stdin();
    let mut keys = vec![0u8; 4096];
    let mut stdin_open = true;
    let mut winch = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())?;
    let mut out = std::io::stdout();
    loop {
        while let Some((kind, payload)) = decoder.next_frame()? {
            match kind {
                wire::OUTPUT => {
                    out.write_all(&payload)?;
                    out.flush()?;
                }
                wire::EVENT => match serde_json::from_slice::<ExecEvent>(&payload)? {
                    ExecEvent::Exit { code, signal } => {
                        return Ok(code.unwrap_or_else(|| 128 + signal.unwrap_or(0)))
                    }
                    ExecEvent::Error { message, exit_code } => {
                        eprint!("\r\n{message}\r\n");
                        return Ok(exit_code);
                    }
                    ExecEvent::Notice { message } => eprint!("\r\n{message}\r\n"),
                    ExecEvent::Session { .. } | ExecEvent::Output { .. } => {}
                },
                _ => {}
            }
        }
        tokio::select! {
            n = server_r.read_buf(decoder.buffer()) => {
                if n? == 0 {
                    eprint!("\r\nsluice: the gateway closed the session\r\n");
                    return Ok(EXIT_REFUSED);
                }
            }
            n = stdin.read(&mut keys), if stdin_open => match n? {
                0 => stdin_open = false,
                n => server_w.write_all(&wire::frame(wire::INPUT, &keys[..n])).await?,
            },
            _ = winch.recv() => {
                let (rows, cols) = window_size();
                server_w.write_all(&wire::resize(rows, cols)).await?;
            }
        }
    }
}

/// Reads the HTTP response head: status, the body of a refusal, bytes after a 101's head.
async fn read_head<S: tokio::io::AsyncRead + Unpin>(
    stream: &mut S,
) -> anyhow::Result<(u16, Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 || stream.read_buf(&mut buf).await? == 0 {
            bail!("the gateway sent no valid answer");
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("the gateway sent no status")?;
    let mut rest = buf[end..].to_vec();
    if status != 101 {
        let length = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0)
            .min(1024 * 1024);
        while rest.len() < length && stream.read_buf(&mut rest).await? > 0 {}
    }
    Ok((status, rest.clone(), rest))
}

/// The local terminal's size (24×80 without one).
fn window_size() -> (u16, u16) {
    match rustix::termios::tcgetwinsize(std::io::stdout()) {
        Ok(ws) if ws.ws_row > 0 && ws.ws_col > 0 => (ws.ws_row, ws.ws_col),
        _ => (24, 80),
    }
}

/// The local terminal in raw mode while it lives (when stdin is a terminal).
struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return RawMode(None);
        }
        let Ok(saved) = rustix::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        if rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).is_err()
        {
            return RawMode(None);
        }
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                std::io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}
