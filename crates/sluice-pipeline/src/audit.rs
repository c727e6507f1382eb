//! Building audit events.

use sluice_core::{Actor, AuditEvent, Identity, Outcome};

/// A fresh, unique audit event id, shaped like a UUID: 64 random bits drawn once per process,
/// then a counter, so the data path draws no randomness per event.
pub fn new_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static PREFIX: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let p = *PREFIX.get_or_init(|| uuid::Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // 8-4-4-4-12 hex digits: the prefix's 64 bits, then the counter's low 64 bits (written by
    // hand: this runs for every audited statement, and `format!` costs more than the rest).
    let mut id = String::with_capacity(36);
    push_hex(&mut id, p >> 32, 8);
    id.push('-');
    push_hex(&mut id, p >> 16, 4);
    id.push('-');
    push_hex(&mut id, p, 4);
    id.push('-');
    push_hex(&mut id, n >> 48, 4);
    id.push('-');
    push_hex(&mut id, n, 12);
    id
}

/// The low `digits` hex digits of `v`, most significant first.
fn push_hex(out: &mut String, v: u64, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(HEX[((v >> (i * 4)) & 0xf) as usize]));
    }
}

/// An audit event for `action` with `outcome`, stamped now.
pub fn event(action: &str, outcome: Outcome) -> AuditEvent {
    AuditEvent::new(new_id(), action, outcome)
}

/// An audit event acted by `identity`.
pub fn by(identity: &Identity, action: &str, outcome: Outcome) -> AuditEvent {
    let mut e = event(action, outcome);
    e.actor = Some(Actor::from(identity));
    e
}

/// An audit event acted by agent `name` (actor kind `agent`).
pub fn by_agent(name: &str, action: &str, outcome: Outcome) -> AuditEvent {
    let mut e = event(action, outcome);
    e.actor = Some(Actor {
        name: name.to_string(),
        kind: "agent".into(),
        subject: None,
        groups: Vec::new(),
    });
    e
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_unique_and_uuid_shaped() {
        let a = super::new_id();
        let b = super::new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(a.matches('-').count(), 4);
        assert_eq!(a[..23], b[..23], "one prefix per process");
        let c = super::new_id();
        let (nb, nc) = (
            u64::from_str_radix(&b[24..], 16).unwrap(),
            u64::from_str_radix(&c[24..], 16).unwrap(),
        );
        // Other tests may draw ids in between: later ids count up.
        assert!(nc > nb, "{b} then {c}");
        assert!(uuid::Uuid::parse_str(&c).is_ok(), "{c}");
    }
}
