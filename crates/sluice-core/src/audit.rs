//! The audit log's event: one schema for every action, documented in `docs/audit.md`.
//!
//! Field names are stable. Each event also names the OCSF class it corresponds to
//! (`class_uid`, `class_name`), so a SIEM can map it without a lookup table of its own.

use crate::fault::Fault;
use crate::identity::Identity;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One structured audit event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AuditEvent {
    /// Unique id, for de-duplication downstream.
    pub id: String,
    /// Microseconds since the epoch.
    pub ts_us: i64,
    /// What happened, dotted (`auth.failure`, `session.start`, `token.revoke`).
    pub action: String,
    /// `success` or `failure`.
    pub outcome: Outcome,
    /// OCSF class id of the action (3002 Authentication, 6003 API Activity, …).
    #[serde(default)]
    pub class_uid: u32,
    /// OCSF class name.
    #[serde(default)]
    pub class_name: std::borrow::Cow<'static, str>,
    /// Who acted, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<Actor>,
    /// Client address, when the action came over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Connection concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Session concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Protocol concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Why (failure reason, end reason), never a secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Whose fault a failure was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Object acted on (token id, service-account name, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Policy rule that decided, for statements and commands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Review (held command or access request) concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review_id: Option<String>,
    /// The statement or command, as recorded (masked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// Values masked in a session, by detector (on `session.end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked: Option<BTreeMap<String, u64>>,
}

/// Outcome of an audited action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened.
    Success,
    /// It was refused or failed.
    Failure,
}

impl Outcome {
    /// `success` or `failure`, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
        }
    }
}

/// The identity behind an audited action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Actor {
    /// Identity name.
    pub name: String,
    /// Identity kind.
    pub kind: String,
    /// OIDC subject, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Groups at the time.
    pub groups: Vec<String>,
}

impl From<&Identity> for Actor {
    fn from(id: &Identity) -> Self {
        Actor {
            name: id.name.clone(),
            kind: id.kind.as_str().to_string(),
            subject: id.subject.clone(),
            groups: id.groups.clone(),
        }
    }
}

impl AuditEvent {
    /// A new event with the given action and outcome, stamped now; fill the rest with the builders.
    pub fn new(id: String, action: &str, outcome: Outcome) -> Self {
        let (class_uid, class_name) = ocsf_class(action);
        AuditEvent {
            id,
            ts_us: crate::time::now_micros(),
            action: action.to_string(),
            outcome,
            class_uid,
            class_name: std::borrow::Cow::Borrowed(class_name),
            actor: None,
            source: None,
            connection: None,
            session_id: None,
            protocol: None,
            reason: None,
            fault: None,
            target: None,
            rule: None,
            review_id: None,
            statement: None,
            masked: None,
        }
    }
}

/// The OCSF class an action belongs to, by its first dotted part.
pub fn ocsf_class(action: &str) -> (u32, &'static str) {
    let family = action.split('.').next().unwrap_or(action);
    match family {
        "auth" => (3002, "Authentication"),
        "api" if action == "api.auth" => (3002, "Authentication"),
        "token" if action == "token.exchange" => (3002, "Authentication"),
        "session" => (3003, "Authorize Session"),
        "statement" => (6005, "Datastore Activity"),
        "review" | "access" => (3005, "User Access Management"),
        "identity" | "token" | "service_account" | "agent" | "connection" | "grant" => {
            (3004, "Entity Management")
        }
        "gateway" | "config" | "recording" | "hold" | "signing" | "retention" => {
            (6002, "Application Lifecycle")
        }
        _ => (6003, "API Activity"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_map_to_ocsf_classes() {
        assert_eq!(ocsf_class("auth.connect").0, 3002);
        assert_eq!(ocsf_class("token.exchange").0, 3002);
        assert_eq!(ocsf_class("token.revoke").0, 3004);
        assert_eq!(ocsf_class("session.start").0, 3003);
        assert_eq!(ocsf_class("statement.denied").0, 6005);
        assert_eq!(ocsf_class("review.approved").0, 3005);
        assert_eq!(ocsf_class("recording.deleted").0, 6002);
        assert_eq!(ocsf_class("api.auth").0, 3002);
        assert_eq!(ocsf_class("api.other").0, 6003);
    }

    #[test]
    fn new_events_carry_their_class() {
        let e = AuditEvent::new("x".into(), "session.kill", Outcome::Success);
        assert_eq!(
            (e.class_uid, e.class_name.as_ref()),
            (3003, "Authorize Session")
        );
    }
}
