//! One session channel (shell, exec, subsystem) relayed between the client and the target:
//! requests judged and passed on, output masked and recorded, input recorded for terminals,
//! exit status and signals passed back. The handler has already answered each request (russh
//! answers only the latest one, so answers cannot wait for the target); a refused exec is
//! answered by its reason on stderr and exit status 1, and so is a shell, command or subsystem
//! the target refuses to start (asked with want-reply for that reason). Both directions run
//! in one task, each waiting only on its own writer, so a slow client never stops the other
//! direction.

use crate::files::{scp::Scp, sftp::Sftp};
use sluice_pipeline::output::TextCarry;
mod to_client;
mod transfer;
use crate::session::{Judged, Shared};
use bytes::Bytes;
use russh::{client, server, Channel, ChannelId, Sig};
use russh::{ChannelMsg, ChannelReadHalf, ChannelWriteHalf};
use sluice_core::{ChannelIo, ChannelStart, Pty, SessionEvent};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How long an unfinished output line waits for the rest before it is sent as is.
const HOLD: Duration = Duration::from_millis(10);

/// What a channel's bytes are, which decides what is recorded and masked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// No command yet.
    Pending,
    /// An interactive terminal: output and input recorded, output masked.
    Terminal,
    /// A command: output recorded and masked.
    Exec,
    /// File transfer (SFTP, scp): content is never masked or recorded raw.
    Transfer,
}

struct State {
    kind: Kind,
    pty: Option<Pty>,
    /// What the client asked the target to start ("shell", "command", "sftp subsystem").
    request: &'static str,
}

/// The relay of one channel pair.
struct Relay {
    shared: Arc<Shared>,
    number: u32,
    client: Handle,
    client_w: ChannelWriteHalf<server::Msg>,
    target_w: ChannelWriteHalf<client::Msg>,
    state: Mutex<State>,
    /// The screen of a shell with a pty, followed for judging typed lines.
    view: sluice_terminal::TerminalView,
    /// How a transfer channel's bytes are followed (SFTP packets, scp records).
    files: Mutex<Option<transfer::Watch>>,
    /// Held while whole SFTP packets are written to the client, so the gateway's own answers
    /// go between the target's.
    client_out: tokio::sync::Mutex<()>,
    up: AtomicU64,
    down: AtomicU64,
    /// Set when the client side is done: the target side stops waiting (russh does not always
    /// report the target's close of a channel the gateway closed first).
    client_done: tokio::sync::watch::Sender<bool>,
    /// Set when the target side is done and the client's channel closed: russh swallows the
    /// client's answering close, so the client side stops waiting for it.
    target_done: tokio::sync::watch::Sender<bool>,
}

type Handle = server::Handle;

/// Relays `client` ⇄ `target` until both ends closed.
pub(crate) async fn run(
    shared: Arc<Shared>,
    client: Channel<server::Msg>,
    target: Channel<client::Msg>,
    handle: Handle,
) {
    let _relaying = shared.channel_started();
    let id: ChannelId = client.id();
    let (client_r, client_w) = client.split();
    let (target_r, target_w) = target.split();
    let relay = Relay {
        number: u32::from(id),
        client: handle,
        client_w,
        target_w,
        shared,
        state: Mutex::new(State {
            kind: Kind::Pending,
            pty: None,
            request: "",
        }),
        view: sluice_terminal::TerminalView::default(),
        files: Mutex::new(None),
        client_out: tokio::sync::Mutex::new(()),
        up: AtomicU64::new(0),
        down: AtomicU64::new(0),
        client_done: tokio::sync::watch::Sender::new(false),
        target_done: tokio::sync::watch::Sender::new(false),
    };
    tokio::join!(relay.client_to_target(client_r), async {
        relay.target_to_client(target_r).await;
        relay.target_done.send_replace(true);
    });
    relay.finish_files().await;
    relay
        .shared
        .record(&SessionEvent::ChannelEnd {
            channel: relay.number,
            bytes_up: relay.up.load(Ordering::Relaxed),
            bytes_down: relay.down.load(Ordering::Relaxed),
        })
        .await;
}

impl Relay {
    fn kind(&self) -> Kind {
        self.state.lock().map_or(Kind::Pending, |s| s.kind)
    }

    fn watch_files(&self, watch: transfer::Watch) {
        if let Ok(mut files) = self.files.lock() {
            *files = Some(watch);
        }
    }

    /// Notes what the channel is about to start; returns its pty, if one was asked for.
    fn start(&self, kind: Kind, request: &'static str) -> Option<Pty> {
        self.state.lock().ok().and_then(|mut s| {
            s.kind = kind;
            s.request = request;
            s.pty.clone()
        })
    }

    async fn client_to_target(&self, mut client_r: ChannelReadHalf) {
        let mut stop = self.shared.stop.clone();
        let mut typing = sluice_terminal::Typing::default();
        let mut framing = bytes::BytesMut::new();
        let mut target_done = self.target_done.subscribe();
        // Typed lines are judged and recorded for terminals (known here without asking
        // `state`).
        let mut terminal = false;
        let mut transfer = false;
        loop {
            let stopped = tokio::select! {
                m = client_r.wait() => Ok(m),
                () = wait_true(&mut target_done) => Ok(None),
                s = stop.wait_for(Option::is_some) => Err(s.ok().and_then(|s| s.clone())),
            };
            let msg = match stopped {
                Ok(m) => m,
                Err(stop) => {
                    let message = stop.map(|s| s.message).unwrap_or_default();
                    self.tell(&format!("\r\nsluice: {message}\r\n")).await;
                    let _ = self.client_w.close().await;
                    let _ = self.target_w.close().await;
                    return;
                }
            };
            let Some(msg) = msg else {
                let _ = self.target_w.close().await;
                return;
            };
            match msg {
                ChannelMsg::Data { data } => {
                    self.up.fetch_add(data.len() as u64, Ordering::Relaxed);
                    let sent = if terminal {
                        sluice_terminal::type_keys(self, &self.view, &mut typing, data).await
                    } else if transfer {
                        self.upload(&mut framing, data).await.is_ok()
                    } else {
                        self.target_w.data_bytes(data).await.is_ok()
                    };
                    if !sent {
                        let _ = self.client_w.close().await;
                        let _ = self.target_w.close().await;
                        return;
                    }
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    self.up.fetch_add(data.len() as u64, Ordering::Relaxed);
                    let _ = self.target_w.extended_data_bytes(ext, data).await;
                }
                ChannelMsg::Eof => {
                    let _ = self.target_w.eof().await;
                }
                ChannelMsg::Close => {
                    let _ = self.target_w.close().await;
                    return;
                }
                ChannelMsg::RequestPty {
                    term,
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                    terminal_modes,
                    ..
                } => {
                    if let Ok(mut s) = self.state.lock() {
                        s.pty = Some(Pty {
                            term: term.clone(),
                            cols: col_width,
                            rows: row_height,
                        });
                    }
                    let _ = self
                        .target_w
                        .request_pty(
                            false,
                            &term,
                            col_width,
                            row_height,
                            pix_width,
                            pix_height,
                            &terminal_modes,
                        )
                        .await;
                }
                ChannelMsg::SetEnv {
                    variable_name,
                    variable_value,
                    ..
                } if env_allowed(&self.shared.options.env, &variable_name) => {
                    let _ = self
                        .target_w
                        .set_env(false, variable_name, variable_value)
                        .await;
                }
                ChannelMsg::WindowChange {
                    col_width,
                    row_height,
                    pix_width,
                    pix_height,
                } => {
                    self.view.resize(row_height, col_width);
                    let _ = self
                        .target_w
                        .window_change(col_width, row_height, pix_width, pix_height)
                        .await;
                    self.shared
                        .record(&SessionEvent::Resize {
                            channel: self.number,
                            cols: col_width,
                            rows: row_height,
                        })
                        .await;
                }
                ChannelMsg::Signal { signal } => {
                    let _ = self.target_w.signal(signal).await;
                }
                ChannelMsg::AgentForward { .. } if self.shared.options.agent_forwarding => {
                    self.shared
                        .audit("ssh.agent_forward", sluice_core::Outcome::Success, None);
                    let _ = self.target_w.agent_forward(false).await;
                }
                ChannelMsg::RequestShell { .. } => {
                    terminal = true;
                    let pty = self.start(Kind::Terminal, "shell");
                    if let Some(p) = &pty {
                        self.view.open(p.rows, p.cols);
                    }
                    self.record_start("shell", None, None, pty).await;
                    let _ = self.target_w.request_shell(true).await;
                }
                ChannelMsg::Exec { command, .. } => {
                    let text = String::from_utf8_lossy(&command).into_owned();
                    let judged = self
                        .shared
                        .judge(&text, None, async |notice: String| self.tell(&notice).await)
                        .await;
                    match judged {
                        Judged::Run(query) => {
                            let kind = match Scp::new(self.number, &text) {
                                Some(scp) => {
                                    self.watch_files(transfer::Watch::Scp(Box::new(scp)));
                                    transfer = true;
                                    Kind::Transfer
                                }
                                None => Kind::Exec,
                            };
                            let pty = self.start(kind, "command");
                            self.record_start("exec", Some(text), Some(query), pty)
                                .await;
                            let _ = self.target_w.exec(true, command).await;
                        }
                        Judged::Refused(message) => {
                            self.refuse(&message).await;
                            return;
                        }
                    }
                }
                ChannelMsg::RequestSubsystem { name, .. } if name == "sftp" => {
                    self.watch_files(transfer::Watch::Sftp(Sftp::new(self.number)));
                    transfer = true;
                    let pty = self.start(Kind::Transfer, "sftp subsystem");
                    self.record_start("subsystem", Some(name.clone()), None, pty)
                        .await;
                    let _ = self.target_w.request_subsystem(true, &name).await;
                }
                // Refused by the handler: agent forwarding, X11, other subsystems.
                _ => {}
            }
        }
    }

    async fn record_io(&self, stream: &str, text: &mut TextCarry, bytes: &[u8]) {
        let (data, base64) = text.encode(bytes);
        if data.is_empty() {
            return;
        }
        self.shared
            .record(&SessionEvent::Io(Box::new(ChannelIo {
                channel: self.number,
                stream: stream.to_string(),
                data,
                base64,
            })))
            .await;
    }

    async fn record_start(
        &self,
        kind: &str,
        detail: Option<String>,
        query: Option<u64>,
        pty: Option<Pty>,
    ) {
        self.shared
            .record(&SessionEvent::Channel(Box::new(ChannelStart {
                channel: self.number,
                purpose: kind.to_string(),
                detail,
                query,
                pty,
            })))
            .await;
    }

    /// Writes a gateway message to the client's stderr, and to the recording as what the
    /// user saw.
    async fn tell(&self, message: &str) {
        self.record_io("err", &mut TextCarry::default(), message.as_bytes())
            .await;
        let _ = self
            .client_w
            .extended_data_bytes(1, Bytes::copy_from_slice(message.as_bytes()))
            .await;
    }

    /// The target answered the start request with a failure (no such subsystem, no shell):
    /// the client is told, as it would be by the target itself, and the channel closes.
    async fn target_refused(&self) {
        let what = self.state.lock().map_or("request", |s| s.request);
        let reason = format!("the target refused to start the {what}");
        self.shared.audit(
            "ssh.channel",
            sluice_core::Outcome::Failure,
            Some(reason.clone()),
        );
        self.refuse(&format!("sluice: {reason}")).await;
    }

    /// Ends a channel whose command was refused: the reason on stderr, exit status 1.
    async fn refuse(&self, message: &str) {
        let crlf = if self.state.lock().is_ok_and(|s| s.pty.is_some()) {
            "\r\n"
        } else {
            "\n"
        };
        self.tell(&format!("{message}{crlf}")).await;
        self.shared
            .record(&SessionEvent::Exit {
                channel: self.number,
                status: Some(1),
                signal: None,
            })
            .await;
        let _ = self.client.exit_status_request(self.client_w.id(), 1).await;
        let _ = self.client_w.eof().await;
        let _ = self.client_w.close().await;
        let _ = self.target_w.close().await;
    }
}

/// Answers the first request of a channel of a refused session with the reason (stderr,
/// exit status 1) and closes it.
pub(crate) async fn refuse_all(channel: Channel<server::Msg>, handle: Handle, why: String) {
    let id = channel.id();
    let (mut read, write) = channel.split();
    while let Some(msg) = read.wait().await {
        match msg {
            ChannelMsg::RequestShell { .. }
            | ChannelMsg::Exec { .. }
            | ChannelMsg::RequestSubsystem { .. } => {}
            ChannelMsg::Close => return,
            _ => continue,
        }
        let _ = write
            .extended_data_bytes(1, Bytes::from(format!("{why}\r\n")))
            .await;
        let _ = handle.exit_status_request(id, 1).await;
        let _ = write.eof().await;
        let _ = write.close().await;
        return;
    }
}

/// Waits until `flag` turns true (or its sender is gone).
pub(crate) async fn wait_true(flag: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = flag.wait_for(|d| *d).await;
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Whether environment variable `name` may be passed (`LANG`, or a `LC_*` pattern).
pub(crate) fn env_allowed(allow: &[String], name: &str) -> bool {
    allow.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => p == name,
    })
}

fn signal_text(sig: &Sig) -> String {
    match sig {
        Sig::Custom(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

/// The shell's side of interactive line judging.
impl sluice_terminal::Side for Relay {
    async fn send_keys(&self, keys: Bytes) -> bool {
        self.target_w.data_bytes(keys).await.is_ok()
    }

    async fn tell(&self, message: &str) {
        Relay::tell(self, message).await;
    }

    async fn record_input(&self, text: &mut TextCarry, raw: &[u8]) {
        self.record_io("in", text, raw).await;
    }

    async fn judge(&self, text: &str, redacted: Option<String>) -> sluice_terminal::LineVerdict {
        let notice = async |n: String| Relay::tell(self, &format!("\r\n{n}")).await;
        match self.shared.judge(text, redacted, notice).await {
            Judged::Run(_) => sluice_terminal::LineVerdict::Run,
            Judged::Refused(message) => sluice_terminal::LineVerdict::Refused(message),
        }
    }

    fn guarded(&self) -> bool {
        self.shared.guarded()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_allow_list_takes_names_and_prefixes() {
        let allow = vec!["LANG".to_string(), "LC_*".to_string()];
        assert!(env_allowed(&allow, "LANG"));
        assert!(env_allowed(&allow, "LC_ALL"));
        assert!(!env_allowed(&allow, "LD_PRELOAD"));
        assert!(!env_allowed(&[], "LANG"));
    }
}
