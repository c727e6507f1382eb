//! Detectors that start at a literal: token prefixes (`ghp_`, `AKIA`, `xoxb-`, `eyJ`), key
//! names (`aws_secret_access_key`, `password=`), `Bearer `, `://` and PEM headers. One
//! Aho-Corasick automaton finds every trigger in a single pass.

use crate::{is_word, mask_span, Detector, MaskCounts, MASK};
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// What a trigger literal starts.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// A token whose prefix is kept: `(detector, min body length, body charset)`.
    Prefixed(Detector, usize, Charset),
    Jwt,
    AwsSecretName,
    PasswordKey,
    Bearer,
    Url,
    Pem,
}

#[derive(Clone, Copy, Debug)]
enum Charset {
    UpperDigit,
    Alnum,
    AlnumUnderscore,
    AlnumDashUnderscore,
}

impl Charset {
    fn accepts(self, b: u8) -> bool {
        match self {
            Charset::UpperDigit => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Charset::Alnum => b.is_ascii_alphanumeric(),
            Charset::AlnumUnderscore => b.is_ascii_alphanumeric() || b == b'_',
            Charset::AlnumDashUnderscore => b.is_ascii_alphanumeric() || b == b'_' || b == b'-',
        }
    }
}

const TRIGGERS: &[(&str, Trigger, bool)] = &[
    // (literal, trigger, case-sensitive)
    (
        "AKIA",
        Trigger::Prefixed(Detector::AwsAccessKey, 16, Charset::UpperDigit),
        true,
    ),
    (
        "ASIA",
        Trigger::Prefixed(Detector::AwsAccessKey, 16, Charset::UpperDigit),
        true,
    ),
    (
        "AGPA",
        Trigger::Prefixed(Detector::AwsAccessKey, 16, Charset::UpperDigit),
        true,
    ),
    (
        "AIDA",
        Trigger::Prefixed(Detector::AwsAccessKey, 16, Charset::UpperDigit),
        true,
    ),
    (
        "AROA",
        Trigger::Prefixed(Detector::AwsAccessKey, 16, Charset::UpperDigit),
        true,
    ),
    (
        "ANPA",
        Trigger::Prefixed(Detector::AwsAccessKey, 16, Charset::UpperDigit),
        true,
    ),
    (
        "ghp_",
        Trigger::Prefixed(Detector::GithubToken, 36, Charset::Alnum),
        true,
    ),
    (
        "gho_",
        Trigger::Prefixed(Detector::GithubToken, 36, Charset::Alnum),
        true,
    ),
    (
        "ghu_",
        Trigger::Prefixed(Detector::GithubToken, 36, Charset::Alnum),
        true,
    ),
    (
        "ghs_",
        Trigger::Prefixed(Detector::GithubToken, 36, Charset::Alnum),
        true,
    ),
    (
        "ghr_",
        Trigger::Prefixed(Detector::GithubToken, 36, Charset::Alnum),
        true,
    ),
    (
        "github_pat_",
        Trigger::Prefixed(Detector::GithubToken, 22, Charset::AlnumUnderscore),
        true,
    ),
    (
        "glpat-",
        Trigger::Prefixed(Detector::GitlabToken, 20, Charset::AlnumDashUnderscore),
        true,
    ),
    (
        "xoxb-",
        Trigger::Prefixed(Detector::SlackToken, 10, Charset::AlnumDashUnderscore),
        true,
    ),
    (
        "xoxp-",
        Trigger::Prefixed(Detector::SlackToken, 10, Charset::AlnumDashUnderscore),
        true,
    ),
    (
        "xoxa-",
        Trigger::Prefixed(Detector::SlackToken, 10, Charset::AlnumDashUnderscore),
        true,
    ),
    (
        "xoxr-",
        Trigger::Prefixed(Detector::SlackToken, 10, Charset::AlnumDashUnderscore),
        true,
    ),
    (
        "xoxs-",
        Trigger::Prefixed(Detector::SlackToken, 10, Charset::AlnumDashUnderscore),
        true,
    ),
    (
        "xoxe-",
        Trigger::Prefixed(Detector::SlackToken, 10, Charset::AlnumDashUnderscore),
        true,
    ),
    (
        "xapp-",
        Trigger::Prefixed(Detector::SlackToken, 10, Charset::AlnumDashUnderscore),
        true,
    ),
    ("eyJ", Trigger::Jwt, true),
    ("aws_secret_access_key", Trigger::AwsSecretName, false),
    ("secret_access_key", Trigger::AwsSecretName, false),
    ("secretaccesskey", Trigger::AwsSecretName, false),
    ("password=", Trigger::PasswordKey, false),
    ("passwd=", Trigger::PasswordKey, false),
    ("pwd=", Trigger::PasswordKey, false),
    ("\"password\":", Trigger::PasswordKey, false),
    ("bearer ", Trigger::Bearer, false),
    ("://", Trigger::Url, true),
    ("-----BEGIN ", Trigger::Pem, true),
];

/// The compiled trigger automaton for the enabled detectors.
#[derive(Debug)]
pub struct Literals {
    ac: AhoCorasick,
    /// Per pattern: what it starts, and the exact bytes when the literal is case-sensitive.
    triggers: Vec<(Trigger, Option<&'static [u8]>)>,
}

fn detector_of(t: Trigger) -> Detector {
    match t {
        Trigger::Prefixed(d, _, _) => d,
        Trigger::Jwt => Detector::Jwt,
        Trigger::AwsSecretName => Detector::AwsSecretKey,
        Trigger::PasswordKey | Trigger::Url => Detector::Password,
        Trigger::Bearer => Detector::BearerToken,
        Trigger::Pem => Detector::PrivateKey,
    }
}

impl Literals {
    /// The automaton for the triggers of `enabled` detectors; `None` if none is enabled.
    pub fn new(enabled: &[bool]) -> Option<Literals> {
        let mut pats = Vec::new();
        let mut triggers = Vec::new();
        for (lit, t, case) in TRIGGERS {
            if enabled[detector_of(*t).index()] {
                pats.push(*lit);
                triggers.push((*t, case.then_some(lit.as_bytes())));
            }
        }
        if pats.is_empty() {
            return None;
        }
        let ac = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&pats)
            .ok()?;
        Some(Literals { ac, triggers })
    }

    /// Scans `v`; masks and counts what the triggers lead to.
    pub fn scan(&self, v: &mut [u8], counts: &mut MaskCounts) {
        let mut from = 0;
        while from < v.len() {
            let Some(m) = self.ac.find(&v[from..]) else {
                return;
            };
            let start = from + m.start();
            let end = from + m.end();
            let (trigger, exact) = self.triggers[m.pattern().as_usize()];
            from = end;
            if exact.is_some_and(|lit| &v[start..end] != lit) {
                continue;
            }
            if let Some(next) = apply(v, start, end, trigger, counts) {
                from = next.max(end);
            }
        }
    }
}

fn run(v: &[u8], from: usize, ok: impl Fn(u8) -> bool) -> usize {
    let mut end = from;
    while end < v.len() && ok(v[end]) {
        end += 1;
    }
    end
}

fn base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Masks what `trigger` found at `start..end`; returns where scanning goes on.
fn apply(
    v: &mut [u8],
    start: usize,
    end: usize,
    trigger: Trigger,
    counts: &mut MaskCounts,
) -> Option<usize> {
    match trigger {
        Trigger::Prefixed(detector, min, charset) => {
            if start > 0 && is_word(v[start - 1]) {
                return None;
            }
            let body_end = run(v, end, |b| charset.accepts(b));
            if body_end - end < min {
                return None;
            }
            if matches!(detector, Detector::AwsAccessKey) && body_end - end != min {
                return None;
            }
            mask_span(v, end, body_end);
            counts.hit(detector);
            Some(body_end)
        }
        Trigger::Jwt => {
            if start > 0 && (is_word(v[start - 1]) || v[start - 1] == b'-') {
                return None;
            }
            let h_end = run(v, start, base64url);
            if h_end - start < 10 || h_end >= v.len() || v[h_end] != b'.' {
                return None;
            }
            let p_end = run(v, h_end + 1, base64url);
            if p_end - (h_end + 1) < 10 || p_end >= v.len() || v[p_end] != b'.' {
                return None;
            }
            let s_end = run(v, p_end + 1, base64url);
            // Keep `eyJ` and the dots.
            mask_span(v, start + 3, s_end);
            counts.hit(Detector::Jwt);
            Some(s_end)
        }
        Trigger::AwsSecretName => {
            let value = skip_assignment(v, end)?;
            let value_end = run(v, value, |b| {
                b.is_ascii_alphanumeric() || b == b'/' || b == b'+'
            });
            if value_end - value != 40 {
                return None;
            }
            mask_span(v, value, value_end);
            counts.hit(Detector::AwsSecretKey);
            Some(value_end)
        }
        Trigger::PasswordKey => {
            let value = skip_quotes_and_space(v, end);
            let quoted = value > end && matches!(v[value - 1], b'\'' | b'"');
            let value_end = if quoted {
                let q = v[value - 1];
                run(v, value, |b| b != q)
            } else {
                run(v, value, |b| {
                    !matches!(
                        b,
                        b';' | b'&' | b' ' | b'\t' | b'\n' | b'\r' | b'\'' | b'"' | b','
                    )
                })
            };
            if value_end == value {
                return None;
            }
            v[value..value_end].fill(MASK);
            counts.hit(Detector::Password);
            Some(value_end)
        }
        Trigger::Bearer => {
            let value_end = run(v, end, |b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
            });
            if value_end - end < 8 {
                return None;
            }
            v[end..value_end].fill(MASK);
            counts.hit(Detector::BearerToken);
            Some(value_end)
        }
        Trigger::Url => {
            // userinfo ends at `@` before any `/`, `?`, `#` or space.
            let info_end = run(v, end, |b| {
                !matches!(b, b'@' | b'/' | b'?' | b'#' | b' ' | b'\t' | b'\n')
            });
            if info_end >= v.len() || v[info_end] != b'@' {
                return None;
            }
            let colon = v[end..info_end].iter().position(|b| *b == b':')? + end;
            if colon + 1 == info_end {
                return None;
            }
            v[colon + 1..info_end].fill(MASK);
            counts.hit(Detector::Password);
            Some(info_end)
        }
        Trigger::Pem => {
            let line_end = run(v, end, |b| b != b'\n');
            let header = &v[end..line_end];
            if !header.windows(11).any(|w| w == b"PRIVATE KEY") {
                return None;
            }
            let body = (line_end + 1).min(v.len());
            let footer =
                memchr::memmem::find(&v[body..], b"-----END").map_or(v.len(), |p| body + p);
            mask_span(v, body, footer);
            counts.hit(Detector::PrivateKey);
            Some(footer)
        }
    }
}

/// After a key name: optional quotes, then `=` or `:`, then optional quotes and spaces.
fn skip_assignment(v: &[u8], mut i: usize) -> Option<usize> {
    i = run(v, i, |b| matches!(b, b'"' | b'\'' | b' ' | b'\t'));
    if i >= v.len() || !matches!(v[i], b'=' | b':') {
        return None;
    }
    Some(skip_quotes_and_space(v, i + 1))
}

fn skip_quotes_and_space(v: &[u8], i: usize) -> usize {
    run(v, i, |b| matches!(b, b'"' | b'\'' | b' ' | b'\t'))
}
