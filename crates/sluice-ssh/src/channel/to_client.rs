//! The target → client direction of a channel: output masked and recorded, exit status and
//! EOF passed back in the order OpenSSH needs.

use super::{signal_text, sleep_until, wait_true, Kind, Relay, HOLD};
use crate::output::{StreamMasker, TextCarry};
use bytes::Bytes;
use russh::{ChannelMsg, ChannelReadHalf};
use sluice_core::SessionEvent;
use std::sync::atomic::Ordering;
use tokio::time::Instant;

impl Relay {
    pub(super) async fn target_to_client(&self, mut target_r: ChannelReadHalf) {
        let masker = |on: bool| {
            self.shared
                .masker
                .clone()
                .filter(|_| on)
                .map(StreamMasker::new)
        };
        let mut out: Option<StreamMasker> = None;
        let mut err: Option<StreamMasker> = None;
        let mut maskers_set = false;
        let mut out_text = TextCarry::default();
        let mut err_text = TextCarry::default();
        let mut recorded = [0u64; 2];
        let mut deadline: Option<Instant> = None;
        let mut eof_owed = false;
        let mut client_done = self.client_done.subscribe();
        loop {
            let msg = tokio::select! {
                m = target_r.wait() => m,
                () = wait_true(&mut client_done) => None,
                _ = sleep_until(deadline), if deadline.is_some() => {
                    deadline = None;
                    for (m, ext, text, rec) in [(&mut out, None, &mut out_text, 0), (&mut err, Some(1), &mut err_text, 1)] {
                        if let Some(m) = m.as_mut() {
                            let held = m.flush();
                            self.deliver(ext, held, text, &mut recorded[rec]).await;
                        }
                    }
                    continue;
                }
            };
            if !maskers_set && self.kind() != Kind::Pending {
                // Transfers are never masked: it would corrupt files.
                let on = matches!(self.kind(), Kind::Terminal | Kind::Exec);
                // The client's copy is masked only when the connection says so; the recording
                // always is.
                out = masker(on && self.shared.mask_client());
                err = masker(on && self.shared.mask_client());
                maskers_set = true;
            }
            let Some(msg) = msg else {
                let _ = self.client_w.close().await;
                break;
            };
            match msg {
                ChannelMsg::Data { data } | ChannelMsg::ExtendedData { data, .. }
                    if data.is_empty() => {}
                ChannelMsg::Data { data } => {
                    self.down.fetch_add(data.len() as u64, Ordering::Relaxed);
                    let data = match out.as_mut() {
                        Some(m) => Bytes::from(m.push(&data)),
                        None => data,
                    };
                    if out.as_ref().is_some_and(StreamMasker::holding) {
                        deadline = Some(Instant::now() + HOLD);
                    }
                    if !self
                        .deliver(None, data, &mut out_text, &mut recorded[0])
                        .await
                    {
                        break;
                    }
                }
                ChannelMsg::ExtendedData { data, ext } => {
                    self.down.fetch_add(data.len() as u64, Ordering::Relaxed);
                    let data = match err.as_mut() {
                        Some(m) => Bytes::from(m.push(&data)),
                        None => data,
                    };
                    if err.as_ref().is_some_and(StreamMasker::holding) {
                        deadline = Some(Instant::now() + HOLD);
                    }
                    if !self
                        .deliver(Some(ext), data, &mut err_text, &mut recorded[1])
                        .await
                    {
                        break;
                    }
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    self.flush_all(
                        &mut out,
                        &mut err,
                        &mut out_text,
                        &mut err_text,
                        &mut recorded,
                    )
                    .await;
                    self.shared
                        .record(&SessionEvent::Exit {
                            channel: self.number,
                            status: Some(exit_status),
                            signal: None,
                        })
                        .await;
                    let _ = self
                        .client
                        .exit_status_request(self.client_w.id(), exit_status)
                        .await;
                    if std::mem::take(&mut eof_owed) {
                        let _ = self.client_w.eof().await;
                    }
                }
                ChannelMsg::ExitSignal {
                    signal_name,
                    core_dumped,
                    error_message,
                    lang_tag,
                } => {
                    self.flush_all(
                        &mut out,
                        &mut err,
                        &mut out_text,
                        &mut err_text,
                        &mut recorded,
                    )
                    .await;
                    self.shared
                        .record(&SessionEvent::Exit {
                            channel: self.number,
                            status: None,
                            signal: Some(signal_text(&signal_name)),
                        })
                        .await;
                    let _ = self
                        .client
                        .exit_signal_request(
                            self.client_w.id(),
                            signal_name,
                            core_dumped,
                            error_message,
                            lang_tag,
                        )
                        .await;
                    if std::mem::take(&mut eof_owed) {
                        let _ = self.client_w.eof().await;
                    }
                }
                ChannelMsg::Eof => {
                    // Passed on after the exit status: OpenSSH closes its end on EOF and would
                    // miss a status that comes later.
                    self.flush_all(
                        &mut out,
                        &mut err,
                        &mut out_text,
                        &mut err_text,
                        &mut recorded,
                    )
                    .await;
                    eof_owed = true;
                }
                ChannelMsg::Close => {
                    self.flush_all(
                        &mut out,
                        &mut err,
                        &mut out_text,
                        &mut err_text,
                        &mut recorded,
                    )
                    .await;
                    if eof_owed {
                        let _ = self.client_w.eof().await;
                    }
                    let _ = self.client_w.close().await;
                    break;
                }
                _ => {}
            }
        }
        let mut counts = sluice_mask::MaskCounts::default();
        for m in [out, err].into_iter().flatten() {
            counts.add(&m.counts);
        }
        if counts.total() > 0 {
            self.shared.add_masked(&counts);
        }
    }

    async fn flush_all(
        &self,
        out: &mut Option<StreamMasker>,
        err: &mut Option<StreamMasker>,
        out_text: &mut TextCarry,
        err_text: &mut TextCarry,
        recorded: &mut [u64; 2],
    ) {
        if let Some(m) = out.as_mut().filter(|m| m.holding()) {
            let held = m.flush();
            self.deliver(None, held, out_text, &mut recorded[0]).await;
        }
        if let Some(m) = err.as_mut().filter(|m| m.holding()) {
            let held = m.flush();
            self.deliver(Some(1), held, err_text, &mut recorded[1])
                .await;
        }
    }

    /// Sends output to the client (`ext` for stderr) and records it within the cap.
    async fn deliver(
        &self,
        ext: Option<u32>,
        data: impl Into<Bytes>,
        text: &mut TextCarry,
        recorded: &mut u64,
    ) -> bool {
        let data: Bytes = data.into();
        if data.is_empty() {
            return true;
        }
        let kind = self.kind();
        if matches!(kind, Kind::Terminal | Kind::Exec) && *recorded < self.shared.output_cap {
            let room = (self.shared.output_cap - *recorded).min(data.len() as u64) as usize;
            *recorded += room as u64;
            let stream = if ext.is_some() { "err" } else { "out" };
            // The recording is masked even when the client's copy is not.
            let part = &data[..room];
            match (&self.shared.masker, self.shared.mask_client()) {
                (Some(m), false) => {
                    let mut copy = part.to_vec();
                    m.mask(&mut copy, &mut sluice_mask::MaskCounts::default());
                    self.record_io(stream, text, &copy).await;
                }
                _ => self.record_io(stream, text, part).await,
            }
        }
        let sent = match ext {
            None => self.client_w.data_bytes(data).await,
            Some(e) => self.client_w.extended_data_bytes(e, data).await,
        };
        sent.is_ok()
    }
}
