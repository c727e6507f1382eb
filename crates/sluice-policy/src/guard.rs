//! The compiled guard of one connection.

use crate::command::{Command, StatementFacts};
use crate::config::{Action, GuardConfig, RuleConfig, UnparsableAction};
use regex::Regex;
use std::sync::Arc;
use std::time::Duration;

/// The default time a held command waits for a decision.
pub const DEFAULT_REVIEW_TIMEOUT: Duration = Duration::from_secs(600);

/// A guard configuration that cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// A rule has no matcher (it would match everything by accident).
    #[error("rule {0:?} has an empty match: give statements, functions, tables, paths, resources, namespaces, names, pod_risks or regex")]
    EmptyMatch(String),
    /// A rule's regex is invalid.
    #[error("rule {name:?}: invalid regex: {source}")]
    Regex {
        /// Rule.
        name: String,
        /// Why.
        source: regex::Error,
    },
    /// A review rule needs at least one approval.
    #[error("rule {0:?}: approvals must be at least 1")]
    ZeroApprovals(String),
    /// Two rules share a name.
    #[error("duplicate rule name {0:?}")]
    Duplicate(String),
}

/// The rule behind a deny or review verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleHit {
    /// Rule name.
    pub rule: String,
    /// Reason shown to the user.
    pub reason: String,
    /// Groups that may approve (review).
    pub approvers: Vec<String>,
    /// Approvals needed (review).
    pub approvals: u32,
}

/// What the guard decided about a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Forward it.
    Allow,
    /// Never forward it.
    Deny(Arc<RuleHit>),
    /// Hold it until approved.
    Review(Arc<RuleHit>),
}

#[derive(Debug)]
struct Rule {
    hit: Arc<RuleHit>,
    action: Action,
    groups: Vec<String>,
    statements: Vec<String>,
    functions: Vec<NamePattern>,
    tables: Vec<NamePattern>,
    paths: Vec<String>,
    resources: Vec<String>,
    namespaces: Vec<String>,
    names: Vec<String>,
    pod_risks: Vec<String>,
    regex: Option<Regex>,
}

/// A compiled guard.
#[derive(Debug)]
pub struct Guard {
    rules: Vec<Rule>,
    unparsable: UnparsableAction,
    unparsable_hit: Arc<RuleHit>,
    review_timeout: Duration,
}

impl Guard {
    /// Compiles `config`.
    pub fn new(config: &GuardConfig) -> Result<Guard, GuardError> {
        let mut rules: Vec<Rule> = Vec::new();
        for r in &config.rules {
            if rules.iter().any(|x| x.hit.rule == r.name) {
                return Err(GuardError::Duplicate(r.name.clone()));
            }
            rules.push(compile(r, &config.approvers)?);
        }
        Ok(Guard {
            rules,
            unparsable: config.unparsable,
            unparsable_hit: Arc::new(RuleHit {
                rule: "unparsable".into(),
                reason: "the statement could not be parsed, so the guard cannot judge it".into(),
                approvers: config.approvers.clone(),
                approvals: 1,
            }),
            review_timeout: config.review_timeout.unwrap_or(DEFAULT_REVIEW_TIMEOUT),
        })
    }

    /// Whether a rule looks at pod risks (the adapter then has to read pod specs).
    pub fn uses_pod_risks(&self) -> bool {
        self.rules.iter().any(|r| !r.pod_risks.is_empty())
    }

    /// How long a held command waits for a decision.
    pub fn review_timeout(&self) -> Duration {
        self.review_timeout
    }

    /// Judges `command` for an identity in `groups`: deny beats review beats allow.
    pub fn check(&self, command: &Command<'_>, groups: &[String]) -> Verdict {
        if command.unparsable.is_some() {
            return match self.unparsable {
                UnparsableAction::Deny => Verdict::Deny(self.unparsable_hit.clone()),
                UnparsableAction::Review => Verdict::Review(self.unparsable_hit.clone()),
                UnparsableAction::Allow => Verdict::Allow,
            };
        }
        let mut review = None;
        for rule in &self.rules {
            if !rule.groups.is_empty() && !rule.groups.iter().any(|g| groups.contains(g)) {
                continue;
            }
            if !rule.matches(command) {
                continue;
            }
            match rule.action {
                Action::Deny => return Verdict::Deny(rule.hit.clone()),
                Action::Review => {
                    review.get_or_insert_with(|| rule.hit.clone());
                }
            }
        }
        review.map_or(Verdict::Allow, Verdict::Review)
    }
}

fn compile(r: &RuleConfig, default_approvers: &[String]) -> Result<Rule, GuardError> {
    let m = &r.matches;
    if m.statements.is_empty()
        && m.functions.is_empty()
        && m.tables.is_empty()
        && m.paths.is_empty()
        && m.resources.is_empty()
        && m.namespaces.is_empty()
        && m.names.is_empty()
        && m.pod_risks.is_empty()
        && m.regex.is_none()
    {
        return Err(GuardError::EmptyMatch(r.name.clone()));
    }
    let regex = m
        .regex
        .as_deref()
        .map(|re| {
            regex::RegexBuilder::new(re)
                .case_insensitive(true)
                .build()
                .map_err(|source| GuardError::Regex {
                    name: r.name.clone(),
                    source,
                })
        })
        .transpose()?;
    let approvals = r.approvals.unwrap_or(1);
    if approvals == 0 {
        return Err(GuardError::ZeroApprovals(r.name.clone()));
    }
    let approvers = if r.approvers.is_empty() {
        default_approvers.to_vec()
    } else {
        r.approvers.clone()
    };
    let reason = r.reason.clone().unwrap_or_else(|| match r.action {
        Action::Deny => format!("blocked by rule {}", r.name),
        Action::Review => format!("needs approval under rule {}", r.name),
    });
    Ok(Rule {
        hit: Arc::new(RuleHit {
            rule: r.name.clone(),
            reason,
            approvers,
            approvals,
        }),
        action: r.action,
        groups: r.groups.clone(),
        statements: m
            .statements
            .iter()
            .map(|s| s.to_ascii_lowercase())
            .collect(),
        functions: m.functions.iter().map(|s| NamePattern::new(s)).collect(),
        tables: m.tables.iter().map(|s| NamePattern::new(s)).collect(),
        paths: m.paths.clone(),
        resources: lower(&m.resources),
        namespaces: m.namespaces.clone(),
        names: m.names.clone(),
        pod_risks: lower(&m.pod_risks),
        regex,
    })
}

impl Rule {
    fn matches(&self, command: &Command<'_>) -> bool {
        if let Some(re) = &self.regex {
            if !re.is_match(command.normalized) && !re.is_match(command.text) {
                return false;
            }
            if self.statements.is_empty()
                && self.functions.is_empty()
                && self.tables.is_empty()
                && self.paths.is_empty()
                && self.resources.is_empty()
                && self.namespaces.is_empty()
                && self.names.is_empty()
                && self.pod_risks.is_empty()
            {
                return true;
            }
        }
        command.statements.iter().any(|s| self.matches_statement(s))
    }

    fn matches_statement(&self, s: &StatementFacts) -> bool {
        (self.statements.is_empty() || s.classes.iter().any(|c| self.statements.contains(c)))
            && (self.functions.is_empty()
                || s.functions
                    .iter()
                    .any(|f| self.functions.iter().any(|p| p.matches(f))))
            && (self.tables.is_empty()
                || s.tables
                    .iter()
                    .any(|t| self.tables.iter().any(|p| p.matches(t))))
            && (self.paths.is_empty()
                || s.paths.iter().any(|f| {
                    self.paths
                        .iter()
                        .any(|p| path_glob(p.as_bytes(), f.as_bytes()))
                }))
            && any_glob(&self.resources, &s.resources)
            && any_glob(&self.namespaces, &s.namespaces)
            && any_glob(&self.names, &s.names)
            && any_glob(&self.pod_risks, &s.pod_risks)
    }
}

/// Lower-case copies.
fn lower(v: &[String]) -> Vec<String> {
    v.iter().map(|s| s.to_ascii_lowercase()).collect()
}

/// True when `patterns` is empty (no condition) or one of them matches one of `values`.
fn any_glob(patterns: &[String], values: &[String]) -> bool {
    patterns.is_empty()
        || values
            .iter()
            .any(|v| patterns.iter().any(|p| glob(p.as_bytes(), v.as_bytes())))
}

/// A function or table name pattern: `name` matches `name` in any schema, `schema.name`
/// only that one; `*` is a wildcard. Case-insensitive.
#[derive(Debug)]
struct NamePattern {
    pattern: String,
    qualified: bool,
}

impl NamePattern {
    fn new(p: &str) -> NamePattern {
        NamePattern {
            pattern: p.to_ascii_lowercase(),
            qualified: p.contains('.'),
        }
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        let candidate = if self.qualified {
            name.as_str()
        } else {
            name.rsplit('.').next().unwrap_or(&name)
        };
        glob(self.pattern.as_bytes(), candidate.as_bytes())
    }
}

/// Matches a path against a glob: `*` within one segment, `**` across segments.
fn path_glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) if p.get(1) == Some(&b'*') => {
            path_glob(&p[2..], s) || (!s.is_empty() && path_glob(p, &s[1..]))
        }
        (Some(b'*'), _) => {
            path_glob(&p[1..], s)
                || (s.first().is_some_and(|c| *c != b'/') && path_glob(p, &s[1..]))
        }
        (Some(a), Some(b)) if a == b => path_glob(&p[1..], &s[1..]),
        _ => false,
    }
}

fn glob(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
        (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
        _ => false,
    }
}
