//! What a protocol adapter's parser found in a command, and a bounded cache of those
//! analyses shared by the sessions of one listener.
//!
//! Analyses are cached per text with numeric literals folded (`WHERE aid = 12345` and
//! `WHERE aid = 678` share an entry): no fact the guard uses depends on a number's value, and
//! the normalized text has constants replaced. Texts with double quotes or backticks are
//! cached verbatim (a digit inside a quoted identifier is part of a name).

use crate::StatementFacts;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the parser found in one command text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Analysis {
    /// One entry per top-level statement.
    pub statements: Vec<StatementFacts>,
    /// `pg_query`'s normalized text (constants as `$n`), for regex rules.
    pub normalized: String,
    /// Why the text could not be analyzed, if it could not.
    pub unparsable: Option<String>,
}

impl Analysis {
    /// The guard's view of this analysis.
    pub fn command<'a>(&'a self, text: &'a str) -> crate::Command<'a> {
        crate::Command {
            text,
            normalized: &self.normalized,
            statements: &self.statements,
            unparsable: self.unparsable.as_deref(),
        }
    }
}

/// Longest text that is cached (longer ones are rare and analyzed each time).
const MAX_KEY: usize = 8 * 1024;
/// Entries kept; the cache is cleared when it fills (statements of a workload repeat).
const MAX_ENTRIES: usize = 4096;

/// Analyses by folded text.
#[derive(Debug, Default)]
pub struct AnalysisCache {
    map: Mutex<HashMap<Box<str>, Arc<Analysis>>>,
}

impl AnalysisCache {
    /// The analysis of `text`, from the cache or computed with `analyze`.
    pub fn get_or(&self, text: &str, analyze: impl FnOnce(&str) -> Analysis) -> Arc<Analysis> {
        let Some(key) = cache_key(text) else {
            return Arc::new(analyze(text));
        };
        if let Some(hit) = self
            .map
            .lock()
            .ok()
            .and_then(|m| m.get(key.as_str()).cloned())
        {
            return hit;
        }
        let fresh = Arc::new(analyze(text));
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= MAX_ENTRIES {
                m.clear();
            }
            m.insert(key.into_boxed_str(), fresh.clone());
        }
        fresh
    }
}

/// `text` with every standalone run of digits replaced by `0`; verbatim when it holds a
/// double quote or a backtick (a digit may be part of a quoted name); `None` when too long to cache.
fn cache_key(text: &str) -> Option<String> {
    if text.len() > MAX_KEY {
        return None;
    }
    if text.contains(['"', '`']) {
        return Some(text.to_string());
    }
    let b = text.as_bytes();
    let mut key = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let standalone = c.is_ascii_digit() && (i == 0 || !is_ident(b[i - 1]));
        if standalone {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j == b.len() || !is_ident(b[j]) {
                key.push('0');
                i = j;
                continue;
            }
            key.push_str(&text[i..j]);
            i = j;
            continue;
        }
        // Copy up to the next ASCII digit (char boundaries are preserved: digits are ASCII).
        let next = b[i + 1..]
            .iter()
            .position(u8::is_ascii_digit)
            .map_or(b.len(), |p| i + 1 + p);
        key.push_str(&text[i..next]);
        i = next;
    }
    Some(key)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::cache_key;

    #[test]
    fn folds_numbers_but_not_names() {
        assert_eq!(
            cache_key("SELECT abalance FROM t1 WHERE aid = 12345;").as_deref(),
            Some("SELECT abalance FROM t1 WHERE aid = 0;")
        );
        assert_eq!(
            cache_key("SELECT $1, 1.5").as_deref(),
            Some("SELECT $1, 0.0")
        );
        assert_eq!(
            cache_key("SELECT * FROM \"tab 1\" WHERE x = 2").as_deref(),
            Some("SELECT * FROM \"tab 1\" WHERE x = 2")
        );
        assert_eq!(cache_key("SELECT 'é1'").as_deref(), Some("SELECT 'é1'"));
    }
}
