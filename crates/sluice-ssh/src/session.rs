//! One SSH connection's session: what its channels share (recorder, policy, counters) and
//! the guard's verdict on a command, including holding it for review.

use sluice_core::{Query, SessionEvent, SshOptions};
use sluice_mask::{MaskCounts, Masker};
use sluice_pipeline::reviews::{held_notice, new_review_id, Settled};
use sluice_pipeline::{Recorder, SessionPolicy, Stop};
use sluice_policy::analysis::Analysis;
use sluice_policy::shell as command;
use sluice_policy::Verdict;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::{info, warn};

/// What the channels of one session share.
pub(crate) struct Shared {
    /// `None` once the session ended.
    pub recorder: Mutex<Option<Recorder>>,
    pub policy: Option<SessionPolicy>,
    pub masker: Option<Arc<Masker>>,
    pub options: SshOptions,
    /// `options.forward_to`, parsed.
    pub forward_to: sluice_tunnel::agent::AllowList,
    /// Output bytes recorded per channel and stream; the rest is only counted.
    pub output_cap: u64,
    next_query: AtomicU64,
    pub masked: Mutex<MaskCounts>,
    /// Turns `Some` when the session must end (kill, block, access expiry).
    pub stop: watch::Receiver<Option<Stop>>,
    /// Channels still relaying; the session's end waits for them to record their end.
    channels: watch::Sender<usize>,
}

/// Marks one channel as relaying until dropped.
pub(crate) struct ChannelGuard(Arc<Shared>);

impl Drop for ChannelGuard {
    fn drop(&mut self) {
        self.0.channels.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// The verdict on one command.
pub(crate) enum Judged {
    /// Run it; recorded under this query id.
    Run(u64),
    /// Do not run it; tell the user this.
    Refused(String),
}

impl Shared {
    pub fn new(
        recorder: Recorder,
        policy: Option<SessionPolicy>,
        options: SshOptions,
        output_cap: u64,
        stop: watch::Receiver<Option<Stop>>,
    ) -> Shared {
        Shared {
            masker: policy.as_ref().and_then(|p| p.policy.masker.clone()),
            forward_to: crate::forward::destinations(&options.forward_to),
            recorder: Mutex::new(Some(recorder)),
            policy,
            options,
            output_cap,
            next_query: AtomicU64::new(1),
            masked: Mutex::new(MaskCounts::default()),
            stop,
            channels: watch::Sender::new(0),
        }
    }

    /// Counts a channel as relaying until the guard is dropped.
    pub fn channel_started(self: &Arc<Self>) -> ChannelGuard {
        self.channels.send_modify(|n| *n += 1);
        ChannelGuard(self.clone())
    }

    /// Waits until no channel is relaying (each has recorded its end), up to `limit`.
    pub async fn channels_done(&self, limit: std::time::Duration) {
        let mut rx = self.channels.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|n| *n == 0)).await;
    }

    /// Records `event` (dropped once the session ended). Waits for durability in strict
    /// mode when the event is a command.
    pub async fn record(&self, event: &SessionEvent) -> bool {
        let durable = match self.recorder.lock() {
            Ok(mut r) => match r.as_mut() {
                Some(r) => r.record(event),
                None => return true,
            },
            Err(_) => return false,
        };
        durable.wait().await
    }

    /// Audits `action` of this session (a forwarding asked for, a request refused).
    pub fn audit(&self, action: &str, outcome: sluice_core::Outcome, detail: Option<String>) {
        if let Ok(r) = self.recorder.lock() {
            if let Some(r) = r.as_ref() {
                r.audit(action, outcome, detail);
            }
        }
    }

    /// Whether the connection has guardrails to judge commands and file operations.
    pub fn guarded(&self) -> bool {
        self.policy
            .as_ref()
            .is_some_and(|p| p.policy.guard.is_some())
    }

    /// Whether the client's copy of output is masked (not only the recording).
    pub fn mask_client(&self) -> bool {
        self.masker.as_ref().is_some_and(|m| m.mask_client())
    }

    /// Adds a channel's masking counts to the session's.
    pub fn add_masked(&self, counts: &MaskCounts) {
        if let Ok(mut m) = self.masked.lock() {
            m.add(counts);
        }
    }

    /// Records `text` as a command and judges it. `redacted` replaces the text in the
    /// recording and the review (input typed with echo off). `notice` tells the user about a
    /// hold.
    pub async fn judge(
        &self,
        text: &str,
        redacted: Option<String>,
        notice: impl AsyncFnOnce(String),
    ) -> Judged {
        // Not cached: the listener's cache folds numbers, and a path's digits matter here.
        let analysis = command::analyze(text);
        self.judge_analyzed(text, redacted, &analysis, notice).await
    }

    /// Records `text` as a command and judges `analysis` of it.
    pub async fn judge_analyzed(
        &self,
        text: &str,
        redacted: Option<String>,
        analysis: &Analysis,
        notice: impl AsyncFnOnce(String),
    ) -> Judged {
        let id = self.next_query.fetch_add(1, Ordering::Relaxed);
        let shown: Arc<str> = match (redacted, &self.masker) {
            (Some(r), _) => r.into(),
            (None, Some(m)) => m
                .mask_str(text, &mut MaskCounts::default())
                .map_or_else(|| text.into(), Into::into),
            (None, None) => text.into(),
        };
        let query = SessionEvent::Query(Box::new(Query {
            id,
            text: shown.clone(),
            params: None,
        }));
        if !self.record(&query).await {
            return Judged::Refused(
                "sluice: the command could not be recorded, so it was not run".into(),
            );
        }
        let Some(policy) = &self.policy else {
            return Judged::Run(id);
        };
        if self.audit_closed() {
            return Judged::Refused(
                "sluice: the audit trail is unavailable and the gateway is configured to fail closed".into(),
            );
        }
        let Some(guard) = &policy.policy.guard else {
            return Judged::Run(id);
        };
        match guard.check(&analysis.command(text), &policy.identity.groups) {
            Verdict::Allow => Judged::Run(id),
            Verdict::Deny(hit) => {
                self.record(&SessionEvent::Guard {
                    query: id,
                    action: "denied".into(),
                    rule: hit.rule.clone(),
                    reason: hit.reason.clone(),
                    review: None,
                })
                .await;
                info!(rule = %hit.rule, "command denied");
                Judged::Refused(format!(
                    "sluice: denied by rule \"{}\": {}",
                    hit.rule, hit.reason
                ))
            }
            Verdict::Review(hit) => {
                let review = new_review_id();
                self.record(&SessionEvent::Guard {
                    query: id,
                    action: "held".into(),
                    rule: hit.rule.clone(),
                    reason: hit.reason.clone(),
                    review: Some(review.clone()),
                })
                .await;
                let timeout = policy.policy.review_timeout();
                let (held, waiting) = held_notice(&review, &hit, timeout);
                let hold = policy.command_hold(review.clone(), &hit, shown.to_string());
                let settled = match policy.pipeline.hold_command(hold).await {
                    Err(e) => {
                        warn!(error = %e, "could not file a review; refusing the command");
                        Settled::not_filed(&review, &hit)
                    }
                    Ok(mut held_cmd) => {
                        notice(format!("{held}\r\n{waiting}\r\n")).await;
                        let mut stop = self.stop.clone();
                        let decided = tokio::select! {
                            r = held_cmd.decision() => Some(r),
                            _ = stop.wait_for(Option::is_some) => None,
                        };
                        match decided {
                            Some(r) => Settled::of(&r, timeout),
                            None => {
                                let r = held_cmd.withdraw().await;
                                Settled::of(&r, timeout)
                            }
                        }
                    }
                };
                let d = &settled.decided;
                self.record(&SessionEvent::Decision {
                    query: id,
                    review: d.review.clone(),
                    decision: d.decision.to_string(),
                    by: d.by.clone(),
                    reason: d.reason.clone(),
                })
                .await;
                match settled.refusal {
                    None => Judged::Run(id),
                    Some((_, message)) => Judged::Refused(message),
                }
            }
        }
    }

    fn audit_closed(&self) -> bool {
        self.recorder
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(Recorder::audit_closed))
            .unwrap_or(false)
    }
}
