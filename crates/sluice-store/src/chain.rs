//! The hash chain of a recording: each event carries SHA-256 over the previous event's hash and
//! its own canonical bytes, so removing, reordering or editing any event breaks every later hash.
//! Later, the final hash is signed into a manifest.

use crate::crypto::{hex, sha256};
use ring::digest;

/// Hash that precedes the first event of `session_id`.
pub fn genesis(session_id: &str) -> [u8; 32] {
    let mut data = b"sluice-recording-v1\0".to_vec();
    data.extend_from_slice(session_id.as_bytes());
    sha256(&data)
}

/// Hash of one event given the previous hash.
pub fn link(prev: &[u8; 32], seq: u64, ts_us: i64, kind: &str, data_json: &str) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev);
    ctx.update(&seq.to_be_bytes());
    ctx.update(&ts_us.to_be_bytes());
    ctx.update(kind.as_bytes());
    ctx.update(&[0]);
    ctx.update(data_json.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Where a chain check failed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Event `seq` does not follow its predecessor.
    #[error("event {0} is out of sequence")]
    Sequence(u64),
    /// Event `seq`'s hash does not match its content.
    #[error("event {0} does not match its hash")]
    Hash(u64),
}

/// Checks a session's events (in order): sequence numbers from 0 and every hash.
pub fn verify<'a>(
    session_id: &str,
    events: impl IntoIterator<Item = (u64, i64, &'a str, &'a str, &'a str)>,
) -> Result<(), ChainError> {
    let mut prev = genesis(session_id);
    for (expected, (seq, ts_us, kind, data, hash)) in events.into_iter().enumerate() {
        if seq != expected as u64 {
            return Err(ChainError::Sequence(seq));
        }
        let h = link(&prev, seq, ts_us, kind, data);
        if hex(&h) != hash {
            return Err(ChainError::Hash(seq));
        }
        prev = h;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<(u64, i64, String, String, String)> {
        let mut prev = genesis("s1");
        (0..n)
            .map(|seq| {
                let data = format!("{{\"n\":{seq}}}");
                let h = link(&prev, seq, 100 + seq as i64, "statement", &data);
                prev = h;
                (
                    seq,
                    100 + seq as i64,
                    "statement".to_string(),
                    data,
                    hex(&h),
                )
            })
            .collect()
    }

    fn check(events: &[(u64, i64, String, String, String)]) -> Result<(), ChainError> {
        verify(
            "s1",
            events
                .iter()
                .map(|(s, t, k, d, h)| (*s, *t, k.as_str(), d.as_str(), h.as_str())),
        )
    }

    #[test]
    fn intact_chain_verifies() {
        assert_eq!(check(&chain(5)), Ok(()));
    }

    #[test]
    fn edited_event_breaks_the_chain() {
        let mut events = chain(5);
        events[2].3 = "{\"n\":99}".into();
        assert_eq!(check(&events), Err(ChainError::Hash(2)));
    }

    #[test]
    fn removed_event_breaks_the_chain() {
        let mut events = chain(5);
        events.remove(1);
        assert_eq!(check(&events), Err(ChainError::Sequence(2)));
    }
}
