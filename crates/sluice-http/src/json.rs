//! Field-aware masking of JSON documents: values under keys that match the connection's
//! column rules are masked whole (`"password"`, `"*token*"`), every other string (and number)
//! goes through the detectors. Masked values keep their length, as everywhere in sluice.

use serde_json::Value;
use sluice_mask::{MaskCounts, Masker};

/// Masks `doc` in place; true when anything changed.
pub fn mask(doc: &mut Value, masker: &Masker, counts: &mut MaskCounts) -> bool {
    match doc {
        Value::Object(map) => {
            let mut changed = false;
            for (key, value) in map.iter_mut() {
                if masker.column_masked(key) {
                    changed |= mask_whole(value, counts);
                } else {
                    changed |= mask(value, masker, counts);
                }
            }
            changed
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, v| mask(v, masker, counts) | acc),
        Value::String(s) => match masker.mask_str(s, counts) {
            Some(masked) => {
                *s = masked;
                true
            }
            None => false,
        },
        Value::Number(n) => {
            let text = n.to_string();
            match masker.mask_str(&text, counts) {
                Some(masked) => {
                    *doc = Value::String(masked);
                    true
                }
                None => false,
            }
        }
        Value::Bool(_) | Value::Null => false,
    }
}

/// Masks every leaf of `value` (a key rule matched it).
fn mask_whole(value: &mut Value, counts: &mut MaskCounts) -> bool {
    match value {
        Value::Object(map) => map
            .values_mut()
            .fold(false, |acc, v| mask_whole(v, counts) | acc),
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, v| mask_whole(v, counts) | acc),
        Value::String(s) => {
            counts.hit_column();
            *s = "*".repeat(s.chars().count());
            true
        }
        Value::Number(n) => {
            counts.hit_column();
            *value = Value::String("*".repeat(n.to_string().len()));
            true
        }
        Value::Bool(_) => {
            counts.hit_column();
            *value = Value::String("****".into());
            true
        }
        Value::Null => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_mask::MaskConfig;

    #[test]
    fn keys_mask_whole_values_and_detectors_find_the_rest() -> Result<(), sluice_mask::MaskError> {
        let masker = Masker::new(&MaskConfig {
            columns: vec!["*password*".into(), "ssn".into()],
            ..MaskConfig::default()
        })?;
        let mut doc = json!({
            "user": {"name": "ada", "db_password": "hunter2", "ssn": 123456789},
            "cards": [{"number": "4111 1111 1111 1111"}],
            "note": "mail ada@example.com",
            "count": 3
        });
        let mut counts = MaskCounts::default();
        assert!(mask(&mut doc, &masker, &mut counts));
        assert_eq!(doc["user"]["name"], "ada");
        assert_eq!(doc["user"]["db_password"], "*******");
        assert_eq!(doc["user"]["ssn"], "*********");
        assert_eq!(doc["cards"][0]["number"], "**** **** **** 1111");
        assert!(!doc["note"].as_str().is_some_and(|n| n.contains("ada@")));
        assert_eq!(doc["count"], 3);
        Ok(())
    }
}
