//! Building audit events.

use sluice_core::{Actor, AuditEvent, Identity, Outcome};

/// A fresh, unique audit event id.
pub fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
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
