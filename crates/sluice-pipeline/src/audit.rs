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
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        p >> 32,
        (p >> 16) & 0xffff,
        p & 0xffff,
        (n >> 48) & 0xffff,
        n & 0xffff_ffff_ffff
    )
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
    }
}
