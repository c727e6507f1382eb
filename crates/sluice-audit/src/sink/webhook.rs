//! Batches of events POSTed as a JSON array; anything but a 2xx answer is retried (with the
//! dispatcher's backoff) until it is accepted. The URL and token are secrets and never logged.

use super::{Sink, SinkError, SpooledEvent};
use crate::config;
use std::time::Duration;

/// POSTs batches to an HTTP endpoint.
pub struct WebhookSink {
    url: String,
    token: Option<String>,
    batch: usize,
    agent: ureq::Agent,
}

impl std::fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSink([redacted])")
    }
}

impl WebhookSink {
    /// A sink for `cfg` (URL from the value or the environment).
    pub fn new(cfg: &config::WebhookSink) -> Result<WebhookSink, SinkError> {
        let url = match (&cfg.url, &cfg.url_env) {
            (Some(u), _) => u.clone(),
            (None, Some(var)) => std::env::var(var)
                .map_err(|_| SinkError::Config(format!("environment variable {var} is not set")))?,
            (None, None) => return Err(SinkError::Config("url or url_env is required".into())),
        };
        check_url(&url).map_err(SinkError::Config)?;
        let token = match &cfg.token_env {
            Some(var) => Some(std::env::var(var).map_err(|_| {
                SinkError::Config(format!("environment variable {var} is not set"))
            })?),
            None => None,
        };
        Ok(WebhookSink {
            url,
            token,
            batch: cfg.batch.clamp(1, 10_000),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(15))
                .build(),
        })
    }
}

/// The URL is http(s).
pub fn check_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err("the URL must start with https:// or http://".into())
    }
}

impl Sink for WebhookSink {
    fn deliver(&mut self, batch: &[SpooledEvent]) -> Result<(), SinkError> {
        let mut body =
            String::with_capacity(batch.iter().map(|e| e.json.len() + 1).sum::<usize>() + 2);
        body.push('[');
        for (i, e) in batch.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&e.json);
        }
        body.push(']');
        let mut req = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json")
            .set("X-Sluice-First-Seq", &batch[0].seq.to_string())
            .set("X-Sluice-Last-Seq", &batch[batch.len() - 1].seq.to_string());
        if let Some(t) = &self.token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.send_string(&body) {
            Ok(_) => Ok(()),
            Err(ureq::Error::Status(code, _)) => Err(SinkError::Refused(format!("HTTP {code}"))),
            // The transport error's text may include the URL; name only its kind.
            Err(ureq::Error::Transport(t)) => Err(SinkError::Io(std::io::Error::other(format!(
                "webhook unreachable: {}",
                t.kind()
            )))),
        }
    }

    fn max_batch(&self) -> usize {
        self.batch
    }
}
