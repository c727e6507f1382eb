//! Secret data never reaches a recording: in every Secret object of a body (a Secret, a
//! list of them, a watch event's object), the values of `data` and `stringData` and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (which repeats them) are
//! replaced.

use serde_json::Value;

/// What a redacted value reads in the recording.
pub const REDACTED: &str = "[redacted by sluice]";

/// The annotation in which `kubectl apply` keeps the whole object it applied.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Redacts every Secret object inside `doc`.
pub fn redact(doc: &mut Value) {
    match doc {
        Value::Object(map) => {
            if map.get("kind").and_then(Value::as_str) == Some("Secret") {
                for field in ["data", "stringData"] {
                    if let Some(Value::Object(values)) = map.get_mut(field) {
                        for v in values.values_mut() {
                            *v = Value::String(REDACTED.into());
                        }
                    }
                }
                if let Some(Value::Object(notes)) = map
                    .get_mut("metadata")
                    .and_then(|m| m.get_mut("annotations"))
                {
                    if let Some(v) = notes.get_mut(LAST_APPLIED) {
                        *v = Value::String(REDACTED.into());
                    }
                }
            }
            for v in map.values_mut() {
                redact(v);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Like [`redact`], for a body known to be about Secrets: a document without `kind` (a
/// patch) has its `data` and `stringData` redacted too.
pub fn redact_secret_body(doc: &mut Value) {
    if let Value::Object(map) = doc {
        if !map.contains_key("kind") {
            map.insert("kind".into(), Value::String("Secret".into()));
            redact(doc);
            if let Value::Object(map) = doc {
                map.remove("kind");
            }
            return;
        }
    }
    redact(doc);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_in_lists_and_events_are_redacted() {
        let mut doc = json!({"kind": "SecretList", "items": [
            {"kind": "Secret", "metadata": {"name": "db", "annotations": {LAST_APPLIED: "{\"data\":{\"p\":\"aHVudGVyMg==\"}}"}}, "data": {"p": "aHVudGVyMg=="}}
        ]});
        redact(&mut doc);
        let text = doc.to_string();
        assert!(!text.contains("aHVudGVyMg"), "{text}");
        assert!(text.contains("\"name\":\"db\""));
        let mut event =
            json!({"type": "ADDED", "object": {"kind": "Secret", "stringData": {"token": "abc"}}});
        redact(&mut event);
        assert_eq!(
            event.pointer("/object/stringData/token"),
            Some(&json!(REDACTED))
        );
        let mut cm = json!({"kind": "ConfigMap", "data": {"k": "v"}});
        redact(&mut cm);
        assert_eq!(cm.pointer("/data/k"), Some(&json!("v")));
        let mut patch = json!({"data": {"p": "x"}});
        redact_secret_body(&mut patch);
        assert_eq!(patch, json!({"data": {"p": REDACTED}}));
    }
}
