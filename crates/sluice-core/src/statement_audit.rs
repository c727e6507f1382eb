//! The audit event of an allowed statement, built cheaply: a session's context (actor, source,
//! connection, session id, protocol) is serialized once, when the session starts, and each
//! statement's event is that text with its own id, time and statement around it.
//!
//! An allowed statement is audited for every statement a session runs, so this is the audit
//! log's hot path. The JSON written here is byte for byte what serializing the equivalent
//! [`AuditEvent`] gives (tested below), so readers, sinks and the chain see no difference.

use crate::audit::{ocsf_class, Actor, AuditEvent, Outcome};
use std::sync::Arc;

/// The session fields of an audit event, as the JSON members they serialize to (no braces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditContext(Arc<str>);

/// The context fields of [`AuditEvent`], in its order and with its skip rules.
#[derive(serde::Serialize)]
struct ContextFields<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a Actor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connection: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
}

impl AuditContext {
    /// The context of `event`: its actor, source, connection, session id and protocol.
    pub fn of(event: &AuditEvent) -> Self {
        let fields = ContextFields {
            actor: event.actor.as_ref(),
            source: event.source.as_deref(),
            connection: event.connection.as_deref(),
            session_id: event.session_id.as_deref(),
            protocol: event.protocol.as_deref(),
        };
        // Serializing borrowed strings and a derived struct cannot fail.
        let object = serde_json::to_string(&fields).unwrap_or_else(|_| "{}".into());
        let members = object
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or("");
        AuditContext(Arc::from(members))
    }
}

/// One statement's audit event in a session's context.
#[derive(Debug, Clone)]
pub struct StatementAudit {
    /// Event id.
    pub id: String,
    /// Time, µs since epoch.
    pub ts_us: i64,
    /// The action (`statement.allowed`).
    pub action: &'static str,
    /// The outcome.
    pub outcome: Outcome,
    /// The session's context.
    pub context: AuditContext,
    /// The statement text (already capped to what audit events carry).
    pub statement: Arc<str>,
}

impl StatementAudit {
    /// Appends the event's JSON to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        let (class_uid, class_name) = ocsf_class(self.action);
        out.extend_from_slice(b"{\"id\":");
        push_json(out, self.id.as_str());
        out.extend_from_slice(b",\"ts_us\":");
        push_json(out, &self.ts_us);
        out.extend_from_slice(b",\"action\":");
        push_json(out, self.action);
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(self.outcome.as_str().as_bytes());
        out.extend_from_slice(b"\",\"class_uid\":");
        push_json(out, &class_uid);
        out.extend_from_slice(b",\"class_name\":");
        push_json(out, class_name);
        if !self.context.0.is_empty() {
            out.push(b',');
            out.extend_from_slice(self.context.0.as_bytes());
        }
        out.extend_from_slice(b",\"statement\":");
        push_json(out, &*self.statement);
        out.push(b'}');
    }
}

/// `v` as JSON, written as serde_json writes it (strings escaped alike).
fn push_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    // Writing a string or a number into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(subject: Option<&str>, source: Option<&str>) -> AuditEvent {
        let mut e = AuditEvent::new("c".into(), "session.start", Outcome::Success);
        e.actor = Some(Actor {
            name: "alice \"the admin\"".into(),
            kind: "user".into(),
            subject: subject.map(Into::into),
            groups: vec!["eng".into(), "dba/ops".into()],
        });
        e.source = source.map(Into::into);
        e.connection = Some("pg-demo".into());
        e.session_id = Some("5f0c".into());
        e.protocol = Some("postgres".into());
        e
    }

    #[test]
    fn writes_what_serializing_the_event_writes() {
        for (subject, source) in [
            (Some("sub-1"), Some("127.0.0.1:5000")),
            (None, Some("[::1]:5000")),
            (None, None),
        ] {
            let ctx = context(subject, source);
            for text in [
                "SELECT 1",
                "SELECT 'é', E'\\n\\t', \"q\" -- \u{1}\u{7f}",
                "",
            ] {
                let fast = StatementAudit {
                    id: "a-1".into(),
                    ts_us: 1_796_625_267_521_246,
                    action: "statement.allowed",
                    outcome: Outcome::Success,
                    context: AuditContext::of(&ctx),
                    statement: Arc::from(text),
                };
                let mut full = AuditEvent {
                    id: fast.id.clone(),
                    ts_us: fast.ts_us,
                    ..AuditEvent::new(String::new(), fast.action, fast.outcome)
                };
                full.actor = ctx.actor.clone();
                full.source = ctx.source.clone();
                full.connection = ctx.connection.clone();
                full.session_id = ctx.session_id.clone();
                full.protocol = ctx.protocol.clone();
                full.statement = Some(text.into());
                let mut json = Vec::new();
                fast.write_json(&mut json);
                let expected = serde_json::to_string(&full).unwrap();
                assert_eq!(String::from_utf8(json).unwrap(), expected);
            }
        }
    }

    #[test]
    fn an_empty_context_adds_no_members() {
        let bare = AuditEvent::new("x".into(), "statement.allowed", Outcome::Success);
        assert_eq!(AuditContext::of(&bare).0.as_ref(), "");
        let fast = StatementAudit {
            id: "x".into(),
            ts_us: 1,
            action: "statement.allowed",
            outcome: Outcome::Success,
            context: AuditContext::of(&bare),
            statement: Arc::from("SELECT 1"),
        };
        let mut json = Vec::new();
        fast.write_json(&mut json);
        let parsed: AuditEvent = serde_json::from_slice(&json).unwrap();
        assert_eq!(parsed.statement.as_deref(), Some("SELECT 1"));
        assert_eq!(parsed.class_uid, 6005);
    }
}
