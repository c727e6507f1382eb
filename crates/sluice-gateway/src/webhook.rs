//! The review webhook: every new review and every decision is POSTed as JSON that Slack
//! (incoming webhooks), Mattermost and most chat tools render as is (`text` and `blocks`),
//! with the full review under `sluice` for anything else.
//!
//! Posting never blocks the data path: announcements go to a bounded queue that one task
//! drains; a full queue drops (and logs) the announcement, a failing endpoint is retried
//! three times and the failure audited. The URL is a secret and is never logged.

use crate::config::WebhookConfig;
use sluice_core::{Outcome, Review, ReviewKind, ReviewStatus};
use sluice_pipeline::{audit, Announce, Pipeline};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tracing::warn;

/// Announcements waiting to be posted.
const QUEUE: usize = 256;
/// Attempts per announcement.
const ATTEMPTS: u32 = 3;

/// The webhook URL could not be read.
#[derive(Debug, thiserror::Error)]
#[error("reviews.webhook: {0}")]
pub struct WebhookError(String);

/// Reads the URL from the config (value, environment variable or file).
pub fn resolve_url(cfg: &WebhookConfig) -> Result<String, WebhookError> {
    let url = if let Some(u) = &cfg.url {
        u.clone()
    } else if let Some(var) = &cfg.url_env {
        std::env::var(var)
            .map_err(|_| WebhookError(format!("environment variable {var} is not set")))?
    } else if let Some(f) = &cfg.url_file {
        std::fs::read_to_string(f)
            .map_err(|e| WebhookError(format!("cannot read {}: {}", f.display(), e.kind())))?
    } else {
        return Err(WebhookError("no url given".into()));
    };
    let url = url.trim().to_string();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err(WebhookError(
            "the URL must start with https:// or http://".into(),
        ));
    }
    Ok(url)
}

/// Queues announcements for the posting task.
struct Webhook {
    queue: mpsc::Sender<serde_json::Value>,
}

impl Announce for Webhook {
    fn announce(&self, review: &Review) {
        if self.queue.try_send(payload(review)).is_err() {
            warn!(review = %review.id, "review webhook queue full; announcement dropped");
        }
    }
}

/// Installs the webhook on `pipeline` and starts the task that posts, until `shutdown`.
pub fn install(pipeline: &Pipeline, url: String, mut shutdown: watch::Receiver<bool>) {
    let (tx, mut rx) = mpsc::channel::<serde_json::Value>(QUEUE);
    pipeline
        .reviews()
        .set_announcer(Arc::new(Webhook { queue: tx }));
    let pipeline = pipeline.clone();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    tokio::spawn(async move {
        loop {
            let body = tokio::select! {
                b = rx.recv() => match b {
                    Some(b) => b,
                    None => return,
                },
                _ = shutdown.wait_for(|s| *s) => return,
            };
            if let Err(reason) = post(&agent, &url, body.clone()).await {
                warn!(%reason, "review webhook failed");
                let mut e = audit::event("review.webhook", Outcome::Failure);
                e.target = body["sluice"]["id"].as_str().map(str::to_string);
                e.reason = Some(reason);
                pipeline.audit(e);
            }
        }
    });
}

async fn post(agent: &ureq::Agent, url: &str, body: serde_json::Value) -> Result<(), String> {
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
        }
        let (agent, url, body) = (agent.clone(), url.to_string(), body.clone());
        let sent = tokio::task::spawn_blocking(move || match agent.post(&url).send_json(body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) => Err(format!("endpoint answered HTTP {code}")),
            // The transport error names the URL; keep only its kind.
            Err(ureq::Error::Transport(t)) => Err(format!("transport error: {}", t.kind())),
        })
        .await;
        match sent {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => last = e,
            Err(_) => last = "posting task failed".into(),
        }
    }
    Err(format!("{last} (after {ATTEMPTS} attempts)"))
}

/// The JSON posted for `review`.
pub fn payload(r: &Review) -> serde_json::Value {
    let what = match r.kind {
        ReviewKind::Command => format!(
            "*{}* wants to run a statement on *{}* (rule `{}`)",
            r.requester,
            r.connection,
            r.rule.as_deref().unwrap_or("-")
        ),
        ReviewKind::Access => format!(
            "*{}* requests access to *{}* for {}s",
            r.requester,
            r.connection,
            r.access_secs.unwrap_or(0)
        ),
    };
    let state = match r.status {
        ReviewStatus::Pending => format!(
            "Pending ({} of {} approvals). Approve: `sluice reviews approve {}`",
            r.approvals.len(),
            r.approvals_required,
            r.id
        ),
        ReviewStatus::Approved => format!("Approved by {}", r.approvers().join(", ")),
        ReviewStatus::Denied => format!(
            "Denied by {}",
            r.denial.as_ref().map_or("-", |d| d.by.as_str())
        ),
        ReviewStatus::Expired => "Expired without a decision".into(),
        ReviewStatus::Cancelled => "Withdrawn".into(),
    };
    let mut detail = format!("Reason: {}", r.reason);
    if let Some(s) = &r.statement {
        let s: String = s.chars().take(1000).collect();
        detail.push_str(&format!("\n```{}```", s.replace("```", "'''")));
    }
    let text = format!(
        "sluice review {}: {} — {}",
        r.id,
        what.replace('*', ""),
        state.replace('`', "")
    );
    serde_json::json!({
        "text": text,
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": format!("*Review {}*: {what}", r.id) } },
            { "type": "section", "text": { "type": "mrkdwn", "text": detail } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": state } ] },
        ],
        "sluice": r,
    })
}
