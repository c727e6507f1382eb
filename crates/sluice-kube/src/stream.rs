//! What exec and attach streams share, whatever carries them (WebSocket or SPDY): output
//! masked as it streams and recorded, input and window sizes recorded, the exit code read
//! from the final status.

use serde_json::Value;
use sluice_core::{ChannelIo, SessionEvent};
use sluice_http::session::HttpSession;
use sluice_mask::{MaskCounts, Masker};
use sluice_pipeline::output::{StreamMasker, TextCarry};
use std::sync::Arc;

/// Records what a client typed (masked) on `channel`.
pub(crate) fn record_input(
    session: &HttpSession,
    channel: u32,
    masker: Option<&Masker>,
    carry: &mut TextCarry,
    data: &[u8],
) {
    let mut data = data.to_vec();
    if let Some(m) = masker {
        m.mask(&mut data, &mut MaskCounts::default());
    }
    let (data, base64) = carry.encode(&data);
    session.record(&SessionEvent::Io(Box::new(ChannelIo {
        channel,
        stream: "in".into(),
        data,
        base64,
    })));
}

/// Records a window size sent as `{"Width": …, "Height": …}`.
pub(crate) fn record_resize(session: &HttpSession, channel: u32, json: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let size = |k: &str| {
        v.get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
    };
    if let (Some(cols), Some(rows)) = (size("Width"), size("Height")) {
        session.record(&SessionEvent::Resize {
            channel,
            cols,
            rows,
        });
    }
}

/// The exit code (or failure) in a status on the error channel: `Success` is 0, a
/// `NonZeroExitCode` carries its code as the `ExitCode` cause.
pub(crate) fn exit_of(data: &[u8]) -> (Option<u32>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return (None, None);
    };
    if v.get("status").and_then(Value::as_str) == Some("Success") {
        return (Some(0), None);
    }
    let code = v
        .pointer("/details/causes")
        .and_then(Value::as_array)
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.get("reason").and_then(Value::as_str) == Some("ExitCode"))
        })
        .and_then(|c| c.get("message")?.as_str()?.parse().ok());
    (code, None)
}

/// The service's stdout and stderr, masked as they stream and recorded.
pub(crate) struct Output {
    maskers: Option<[StreamMasker; 2]>,
    text: [TextCarry; 2],
    channel: u32,
}

impl Output {
    pub(crate) fn new(masker: Option<Arc<Masker>>, channel: u32) -> Output {
        Output {
            maskers: masker.map(|m| [StreamMasker::new(m.clone()), StreamMasker::new(m)]),
            text: [TextCarry::default(), TextCarry::default()],
            channel,
        }
    }

    /// What was masked, by detector.
    pub(crate) fn masked(&self, custom: &[String]) -> std::collections::BTreeMap<String, u64> {
        let mut all = std::collections::BTreeMap::new();
        for m in self.maskers.iter().flatten() {
            for (k, v) in m.counts.by_name(custom) {
                *all.entry(k).or_default() += v;
            }
        }
        all
    }

    pub(crate) fn holding(&self) -> bool {
        self.maskers
            .as_ref()
            .is_some_and(|m| m.iter().any(StreamMasker::holding))
    }

    /// Masks `data` of stdout (or stderr), records it, returns what may go on.
    pub(crate) fn push(&mut self, stderr: bool, data: &[u8], session: &HttpSession) -> Vec<u8> {
        let i = usize::from(stderr);
        let out = match &mut self.maskers {
            Some(m) => m[i].push(data),
            None => data.to_vec(),
        };
        self.record(i, &out, session);
        out
    }

    /// What was held back, masked and recorded: `(stderr, bytes)`.
    pub(crate) fn flush(&mut self, session: &HttpSession) -> Vec<(bool, Vec<u8>)> {
        let mut out = Vec::new();
        if let Some(m) = &mut self.maskers {
            for (i, stderr) in [(0, false), (1, true)] {
                if m[i].holding() {
                    out.push((stderr, m[i].flush()));
                }
            }
        }
        for (stderr, data) in &out {
            self.record(usize::from(*stderr), data, session);
        }
        out
    }

    fn record(&mut self, i: usize, data: &[u8], session: &HttpSession) {
        if data.is_empty() {
            return;
        }
        let (text, base64) = self.text[i].encode(data);
        session.record(&SessionEvent::Io(Box::new(ChannelIo {
            channel: self.channel,
            stream: ["out", "err"][i].into(),
            data: text,
            base64,
        })));
    }
}
