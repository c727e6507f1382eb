//! File-transfer channels (the `sftp` subsystem, legacy scp): each SFTP request judged
//! against path rules before it reaches the target (a refusal is answered by the gateway
//! with `SSH_FX_PERMISSION_DENIED` and the reason on stderr), every finished operation
//! recorded. File content passes unmasked and unrecorded; only its size and SHA-256 are.

use super::Relay;
use crate::files::scp::Scp;
use crate::files::sftp::{FileRequest, Sftp};
use crate::files::wire;
use crate::session::Judged;
use bytes::{Bytes, BytesMut};
use sluice_core::{FileOp, SessionEvent};
use sluice_policy::analysis::Analysis;
use sluice_policy::StatementFacts;

/// What a transfer channel's bytes are followed as.
pub(super) enum Watch {
    Sftp(Sftp),
    Scp(Box<Scp>),
}

/// How one chunk is handled.
enum Mode {
    /// Passed on as is.
    Plain,
    /// Passed on; these files finished in it.
    Scp(Vec<FileOp>),
    /// Framed into SFTP packets.
    Sftp,
}

/// Why a transfer channel stopped.
pub(super) struct Broken;

impl Relay {
    /// Client → target bytes of a transfer channel.
    pub(super) async fn upload(&self, framing: &mut BytesMut, data: Bytes) -> Result<(), Broken> {
        match self.mode(&data, true) {
            Mode::Plain => return self.send_up(data).await,
            Mode::Scp(ops) => {
                self.send_up(data).await?;
                return self.record_files(ops).await;
            }
            Mode::Sftp => {}
        }
        framing.extend_from_slice(&data);
        let guarded = self.shared.guarded();
        loop {
            // Packets that need no verdict go on together; a judged one waits for its own.
            let scanned = self.watch(|w| {
                let Watch::Sftp(s) = w else {
                    return Ok((0, None));
                };
                let mut at = 0;
                while let Some(len) = wire::frame_len(&framing[at..])? {
                    let request = s.request(&framing[at..at + len]);
                    if let Some(r) = request.filter(|_| guarded) {
                        return Ok((at, Some((len, r))));
                    }
                    at += len;
                }
                Ok((at, None))
            });
            let (ready, judged) = self.scanned(scanned).await?;
            if ready > 0 {
                self.send_up(framing.split_to(ready).freeze()).await?;
            }
            let Some((len, request)) = judged else {
                return Ok(());
            };
            let packet = framing.split_to(len).freeze();
            self.judge_file(request, packet).await?;
        }
    }

    async fn judge_file(&self, request: FileRequest, packet: Bytes) -> Result<(), Broken> {
        let analysis = Analysis {
            statements: vec![StatementFacts {
                classes: vec![request.class()],
                paths: request.paths.clone(),
                ..StatementFacts::default()
            }],
            normalized: request.text(),
            unparsable: None,
        };
        let notice = async |n: String| self.tell(&n).await;
        let verdict = self
            .shared
            .judge_analyzed(&request.text(), None, &analysis, notice)
            .await;
        match verdict {
            Judged::Run(_) => self.send_up(packet).await,
            Judged::Refused(message) => {
                let op = self.watch(|w| match w {
                    Watch::Sftp(s) => Some(s.refused(&request, &message)),
                    Watch::Scp(_) => None,
                });
                let status = wire::status(request.id, wire::FX_PERMISSION_DENIED, &message);
                self.send_down(Bytes::from(status)).await?;
                self.tell(&format!("{message}\n")).await;
                self.record_files(op.flatten().into_iter().collect()).await
            }
        }
    }

    /// Target → client bytes of a transfer channel's stdout.
    pub(super) async fn download(&self, framing: &mut BytesMut, data: Bytes) -> Result<(), Broken> {
        match self.mode(&data, false) {
            Mode::Plain => return self.send_down(data).await,
            Mode::Scp(ops) => {
                self.send_down(data).await?;
                return self.record_files(ops).await;
            }
            Mode::Sftp => {}
        }
        framing.extend_from_slice(&data);
        let scanned = self.watch(|w| {
            let Watch::Sftp(s) = w else {
                return Ok((0, Vec::new()));
            };
            let (mut at, mut ops) = (0, Vec::new());
            while let Some(len) = wire::frame_len(&framing[at..])? {
                ops.extend(s.response(&framing[at..at + len]));
                at += len;
            }
            Ok((at, ops))
        });
        let (ready, ops) = self.scanned(scanned).await?;
        if ready > 0 {
            self.send_down(framing.split_to(ready).freeze()).await?;
        }
        self.record_files(ops).await
    }

    /// Records what the channel's transfer left unfinished (files still open).
    pub(super) async fn finish_files(&self) {
        let ops = self
            .watch(|w| match w {
                Watch::Sftp(s) => s.finish(),
                Watch::Scp(_) => Vec::new(),
            })
            .unwrap_or_default();
        let _ = self.record_files(ops).await;
    }

    async fn record_files(&self, ops: Vec<FileOp>) -> Result<(), Broken> {
        for op in ops {
            self.shared.record(&SessionEvent::File(Box::new(op))).await;
        }
        Ok(())
    }

    /// Sends whole packets to the client (the two directions both write to it: the lock
    /// keeps the gateway's own answers between the target's packets).
    async fn send_down(&self, data: Bytes) -> Result<(), Broken> {
        let _packet_boundary = self.client_out.lock().await;
        self.client_w.data_bytes(data).await.map_err(|_| Broken)
    }

    /// How this channel's bytes in one direction are followed; scp records are followed
    /// here, in the direction that carries the files.
    fn mode(&self, data: &[u8], upload: bool) -> Mode {
        self.watch(|w| match w {
            Watch::Sftp(_) => Mode::Sftp,
            Watch::Scp(scp) if scp.upload() == upload => Mode::Scp(scp.feed(data)),
            Watch::Scp(_) => Mode::Plain,
        })
        .unwrap_or(Mode::Plain)
    }

    async fn send_up(&self, data: Bytes) -> Result<(), Broken> {
        self.target_w.data_bytes(data).await.map_err(|_| Broken)
    }

    /// What a scan of the framing found; a stream that is not SFTP closes the channel.
    async fn scanned<T>(&self, scan: Option<Result<T, wire::Malformed>>) -> Result<T, Broken> {
        match scan {
            Some(Ok(found)) => Ok(found),
            Some(Err(e)) => {
                tracing::warn!(error = %e, "closing an SFTP channel");
                self.tell(&format!("sluice: {e}; the channel is closed\n"))
                    .await;
                Err(Broken)
            }
            None => Err(Broken),
        }
    }

    /// Runs `f` on the channel's transfer watch, if it has one.
    fn watch<T>(&self, f: impl FnOnce(&mut Watch) -> T) -> Option<T> {
        self.files.lock().ok()?.as_mut().map(f)
    }
}
