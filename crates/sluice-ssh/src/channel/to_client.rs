//! The target → client direction of a channel: output masked and recorded, exit status and
//! EOF passed back in the order OpenSSH needs.

use super::{signal_text, sleep_until, wait_true, Kind, Relay, HOLD};
use bytes::Bytes;
use russh::{ChannelMsg, ChannelReadHalf, Sig};
use sluice_core::SessionEvent;
use sluice_mask::MaskCounts;
use sluice_pipeline::output::{StreamMasker, TextCarry};
use std::sync::atomic::Ordering;
use tokio::time::Instant;

/// One output stream (stdout or stderr) on its way to the client.
struct Output {
    /// `None` for stdout, the extended-data type for stderr.
    ext: Option<u32>,
    /// Masks the client's copy (when the connection masks it).
    masker: Option<StreamMasker>,
    text: TextCarry,
    /// Bytes recorded so far (up to the session's cap).
    recorded: u64,
}

impl Output {
    fn new(ext: Option<u32>) -> Output {
        Output {
            ext,
            masker: None,
            text: TextCarry::default(),
            recorded: 0,
        }
    }

    fn holding(&self) -> bool {
        self.masker.as_ref().is_some_and(StreamMasker::holding)
    }
}

/// How the target's command ended.
enum Ended {
    Status(u32),
    Signal {
        signal: Sig,
        core_dumped: bool,
        message: String,
        lang: String,
    },
}

impl Relay {
    pub(super) async fn target_to_client(&self, mut target_r: ChannelReadHalf) {
        let mut streams = [Output::new(None), Output::new(Some(1))];
        let mut kind = Kind::Pending;
        let mut deadline: Option<Instant> = None;
        let mut eof_owed = false;
        let mut framing = bytes::BytesMut::new();
        let mut client_done = self.client_done.subscribe();
        loop {
            let msg = tokio::select! {
                m = target_r.wait() => m,
                () = wait_true(&mut client_done) => None,
                _ = sleep_until(deadline), if deadline.is_some() => {
                    deadline = None;
                    self.flush(&mut streams, kind).await;
                    continue;
                }
            };
            if kind == Kind::Pending {
                kind = self.kind();
                // Transfers are never masked (it would corrupt files); the client's copy is
                // masked only when the connection says so, the recording always is.
                if matches!(kind, Kind::Terminal | Kind::Exec) && self.shared.mask_client() {
                    for s in &mut streams {
                        s.masker = self.shared.masker.clone().map(StreamMasker::new);
                    }
                }
            }
            let Some(msg) = msg else {
                let _ = self.client_w.close().await;
                break;
            };
            let (stream, data) = match msg {
                ChannelMsg::Data { data } => (&mut streams[0], data),
                ChannelMsg::ExtendedData { data, ext } => {
                    streams[1].ext = Some(ext);
                    (&mut streams[1], data)
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    self.flush(&mut streams, kind).await;
                    self.ended(Ended::Status(exit_status), &mut eof_owed).await;
                    continue;
                }
                ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    lang_tag,
                } => {
                    self.flush(&mut streams, kind).await;
                    let signal = Ended::Signal {
                        signal: signal_name,
                        core_dumped,
                        message: error_message,
                        lang: lang_tag,
                    };
                    self.ended(signal, &mut eof_owed).await;
                    continue;
                }
                ChannelMsg::Eof => {
                    // Passed on after the exit status: OpenSSH closes its end on EOF and would
                    // miss a status that comes later.
                    self.flush(&mut streams, kind).await;
                    eof_owed = true;
                    continue;
                }
                // Only the start request (shell, exec, subsystem) asks for a reply.
                ChannelMsg::Failure => {
                    self.target_refused().await;
                    break;
                }
                ChannelMsg::Close => {
                    self.flush(&mut streams, kind).await;
                    if eof_owed {
                        let _ = self.client_w.eof().await;
                    }
                    let _ = self.client_w.close().await;
                    break;
                }
                _ => continue,
            };
            self.down.fetch_add(data.len() as u64, Ordering::Relaxed);
            if kind == Kind::Terminal && stream.ext.is_none() {
                self.view.feed(&data);
            }
            let data = match stream.masker.as_mut() {
                Some(m) => Bytes::from(m.push(&data)),
                None => data,
            };
            if stream.holding() {
                deadline = Some(Instant::now() + HOLD);
            }
            let delivered = if kind == Kind::Transfer && stream.ext.is_none() {
                self.download(&mut framing, data).await.is_ok()
            } else {
                self.deliver(stream, kind, data).await
            };
            if !delivered {
                let _ = self.client_w.close().await;
                let _ = self.target_w.close().await;
                break;
            }
        }
        let mut counts = MaskCounts::default();
        for m in streams.iter().filter_map(|s| s.masker.as_ref()) {
            counts.add(&m.counts);
        }
        if counts.total() > 0 {
            self.shared.add_masked(&counts);
        }
    }

    /// Sends what the maskers hold back.
    async fn flush(&self, streams: &mut [Output; 2], kind: Kind) {
        for s in streams {
            if let Some(held) = s
                .masker
                .as_mut()
                .filter(|m| m.holding())
                .map(StreamMasker::flush)
            {
                self.deliver(s, kind, Bytes::from(held)).await;
            }
        }
    }

    /// Records how the command ended and tells the client, then the EOF it is owed.
    async fn ended(&self, how: Ended, eof_owed: &mut bool) {
        let id = self.client_w.id();
        let (status, signal) = match &how {
            Ended::Status(s) => (Some(*s), None),
            Ended::Signal { signal, .. } => (None, Some(signal_text(signal))),
        };
        self.shared
            .record(&SessionEvent::Exit {
                channel: self.number,
                status,
                signal,
            })
            .await;
        let _ = match how {
            Ended::Status(s) => self.client.exit_status_request(id, s).await,
            Ended::Signal {
                signal,
                core_dumped,
                message,
                lang,
            } => {
                self.client
                    .exit_signal_request(id, signal, core_dumped, message, lang)
                    .await
            }
        };
        if std::mem::take(eof_owed) {
            let _ = self.client_w.eof().await;
        }
    }

    /// Sends output to the client and records it within the cap.
    async fn deliver(&self, stream: &mut Output, kind: Kind, data: Bytes) -> bool {
        if data.is_empty() {
            return true;
        }
        let cap = self.shared.output_cap;
        if matches!(kind, Kind::Terminal | Kind::Exec) && stream.recorded < cap {
            let room = (cap - stream.recorded).min(data.len() as u64) as usize;
            stream.recorded += room as u64;
            let name = if stream.ext.is_some() { "err" } else { "out" };
            // The recording is masked even when the client's copy is not.
            let part = &data[..room];
            match (&self.shared.masker, self.shared.mask_client()) {
                (Some(m), false) => {
                    let mut copy = part.to_vec();
                    m.mask(&mut copy, &mut MaskCounts::default());
                    self.record_io(name, &mut stream.text, &copy).await;
                }
                _ => self.record_io(name, &mut stream.text, part).await,
            }
        }
        let sent = match stream.ext {
            None => self.client_w.data_bytes(data).await,
            Some(e) => self.client_w.extended_data_bytes(e, data).await,
        };
        sent.is_ok()
    }
}
