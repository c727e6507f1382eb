//! Column-name rules: `*password*`, `ssn`, `api_?ey` (case-insensitive globs).

/// A case-insensitive glob over column names: `*` is any run, `?` any one character.
#[derive(Clone, Debug)]
pub struct ColumnPattern {
    pattern: Vec<u8>,
}

impl ColumnPattern {
    /// Compiles `pattern`.
    pub fn new(pattern: &str) -> ColumnPattern {
        ColumnPattern {
            pattern: pattern.to_ascii_lowercase().into_bytes(),
        }
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        glob(&self.pattern, name.as_bytes())
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    // Iterative wildcard match with one backtrack point (classic star algorithm).
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si].to_ascii_lowercase()) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|b| *b == b'*')
}

#[cfg(test)]
mod tests {
    use super::ColumnPattern;

    #[test]
    fn globs_match_case_insensitively() {
        let p = ColumnPattern::new("*password*");
        assert!(p.matches("password"));
        assert!(p.matches("user_PASSWORD_hash"));
        assert!(!p.matches("passwd"));
        let exact = ColumnPattern::new("ssn");
        assert!(exact.matches("SSN"));
        assert!(!exact.matches("ssn2"));
        assert!(ColumnPattern::new("api_?ey").matches("api_key"));
    }
}
