//! One output stream of a run on its way out: injected secrets masked always (for the
//! client and the recording), the connection's masking rules on top, and the recorded copy
//! capped.

use sluice_mask::{MaskConfig, Masker};
use sluice_pipeline::output::{StreamMasker, TextCarry};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Name under which masked injected secrets are counted.
pub const SECRET_DETECTOR: &str = "injected_secret";

/// A masker that finds exactly the given secret values, or `None` when there are none.
pub fn secrets_masker(values: &[String]) -> Result<Option<Arc<Masker>>, sluice_mask::MaskError> {
    if values.is_empty() {
        return Ok(None);
    }
    // Longest first: a secret that begins another must not mask only the other's start.
    let mut sorted: Vec<&String> = values.iter().collect();
    sorted.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let alternatives: Vec<String> = sorted.iter().map(|v| regex::escape(v)).collect();
    Masker::new(&MaskConfig {
        detectors: Some(Vec::new()),
        columns: Vec::new(),
        custom: vec![sluice_mask::CustomDetector {
            name: SECRET_DETECTOR.into(),
            regex: alternatives.join("|"),
        }],
        mask_client: true,
    })
    .map(|m| Some(Arc::new(m)))
}

/// Masks and caps one stream.
pub struct OutputStream {
    secrets: Option<StreamMasker>,
    rules: Option<StreamMasker>,
    mask_client: bool,
    text: TextCarry,
    recorded: u64,
    cap: u64,
}

/// What a chunk became.
#[derive(Default)]
pub struct Masked {
    /// For the client.
    pub client: Vec<u8>,
    /// For the recording, encoded (`(text, is_base64)`), unless the cap was reached.
    pub record: Option<(String, bool)>,
}

impl OutputStream {
    /// A stream masked by `secrets` and the connection's `rules`, recording up to `cap` bytes.
    pub fn new(secrets: Option<Arc<Masker>>, rules: Option<Arc<Masker>>, cap: u64) -> Self {
        OutputStream {
            mask_client: rules.as_ref().is_none_or(|m| m.mask_client()),
            secrets: secrets.map(StreamMasker::new),
            rules: rules.map(StreamMasker::new),
            text: TextCarry::default(),
            recorded: 0,
            cap,
        }
    }

    /// Takes raw output; returns what may go out now.
    pub fn push(&mut self, raw: &[u8]) -> Masked {
        let clean = match &mut self.secrets {
            Some(s) => s.push(raw),
            None => raw.to_vec(),
        };
        self.apply_rules(clean, false)
    }

    /// Whether bytes are held back waiting for the end of their line.
    pub fn holding(&self) -> bool {
        self.secrets.as_ref().is_some_and(StreamMasker::holding)
            || self.rules.as_ref().is_some_and(StreamMasker::holding)
    }

    /// Releases everything held back.
    pub fn flush(&mut self) -> Masked {
        let clean = self
            .secrets
            .as_mut()
            .map(StreamMasker::flush)
            .unwrap_or_default();
        self.apply_rules(clean, true)
    }

    /// Masking counts by detector name.
    pub fn counts(&self, rule_names: &[String]) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        if let Some(s) = &self.secrets {
            let n = s.counts.total();
            if n > 0 {
                out.insert(SECRET_DETECTOR.to_string(), n);
            }
        }
        if let Some(r) = &self.rules {
            for (k, v) in r.counts.by_name(rule_names) {
                *out.entry(k).or_default() += v;
            }
        }
        out
    }

    /// Applies the connection's rules to secret-free bytes (and releases what the rules
    /// held back, with `flush`).
    fn apply_rules(&mut self, clean: Vec<u8>, flush: bool) -> Masked {
        let masked = self.rules.as_mut().map(|rules| {
            let mut m = rules.push(&clean);
            if flush {
                m.extend(rules.flush());
            }
            m
        });
        match masked {
            None => Masked {
                record: self.record(&clean),
                client: clean,
            },
            Some(masked) => Masked {
                record: self.record(&masked),
                client: if self.mask_client { masked } else { clean },
            },
        }
    }

    /// The recorded form of `bytes`, within the cap.
    fn record(&mut self, bytes: &[u8]) -> Option<(String, bool)> {
        let room = self.cap.saturating_sub(self.recorded);
        if bytes.is_empty() || room == 0 {
            return None;
        }
        let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        self.recorded += take as u64;
        Some(self.text.encode(&bytes[..take]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_injected_secret_split_across_chunks_never_shows() -> Result<(), sluice_mask::MaskError> {
        let secrets = secrets_masker(&["s3cr3t-Pa55".to_string()])?;
        let mut out = OutputStream::new(secrets, None, 1 << 20);
        let mut client = Vec::new();
        let mut recorded = String::new();
        for chunk in [&b"password is s3cr"[..], b"3t-Pa55\nbye"] {
            let m = out.push(chunk);
            client.extend(m.client);
            recorded.extend(m.record.map(|r| r.0));
        }
        let m = out.flush();
        client.extend(m.client);
        recorded.extend(m.record.map(|r| r.0));
        assert_eq!(client, b"password is ***********\nbye");
        assert_eq!(recorded, "password is ***********\nbye");
        assert_eq!(out.counts(&[]).get(SECRET_DETECTOR), Some(&1));
        Ok(())
    }

    #[test]
    fn the_recording_stops_at_the_cap_and_the_client_gets_everything() {
        let mut out = OutputStream::new(None, None, 4);
        let m = out.push(b"abcdef\n");
        assert_eq!(m.client, b"abcdef\n");
        assert_eq!(m.record, Some(("abcd".to_string(), false)));
        assert!(out.push(b"more\n").record.is_none());
    }

    #[test]
    fn rules_that_spare_the_client_still_mask_the_recording() -> Result<(), sluice_mask::MaskError>
    {
        let rules = Masker::new(&MaskConfig {
            mask_client: false,
            ..MaskConfig::default()
        })?;
        let mut out = OutputStream::new(None, Some(Arc::new(rules)), 1 << 20);
        let m = out.push(b"card 4111 1111 1111 1111\n");
        assert_eq!(m.client, b"card 4111 1111 1111 1111\n");
        assert_eq!(
            m.record,
            Some(("card **** **** **** 1111\n".to_string(), false))
        );
        Ok(())
    }
}
