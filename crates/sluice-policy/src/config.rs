//! Guardrail configuration, as written in the config file.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The command never reaches the target.
    Deny,
    /// The command is held until approved.
    Review,
}

/// What happens to a command the parser cannot parse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnparsableAction {
    /// Deny it (the default: the guard cannot decide, so it says no).
    #[default]
    Deny,
    /// Hold it for review.
    Review,
    /// Let it through (the target will most likely reject it too).
    Allow,
}

/// A connection's guardrails.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardConfig {
    /// Rules, checked in order; the strongest verdict wins (deny over review).
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// What to do with a statement the parser cannot parse.
    #[serde(default)]
    pub unparsable: UnparsableAction,
    /// Groups that approve reviews when a rule names none.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// How long a held command waits for a decision (`10m`, `30s`); default 10 minutes.
    #[serde(default, with = "opt_duration")]
    pub review_timeout: Option<Duration>,
}

/// Time-boxed access: identities with a grant must also have an approved access request
/// (`sluice access request CONN --for 1h`) to connect, and their sessions end when it expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Groups whose members approve requests (gateway admins when empty).
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Approvals needed; default 1.
    #[serde(default)]
    pub approvals: Option<u32>,
    /// Longest access one request may ask for (`8h`); default 8 hours.
    #[serde(default, with = "opt_duration")]
    pub max_duration: Option<Duration>,
    /// How long a request waits for a decision; default 1 hour.
    #[serde(default, with = "opt_duration")]
    pub request_timeout: Option<Duration>,
}

impl AccessConfig {
    /// Approvals needed.
    pub fn approvals(&self) -> u32 {
        self.approvals.unwrap_or(1).max(1)
    }

    /// Longest access one request may ask for.
    pub fn max_duration(&self) -> Duration {
        self.max_duration.unwrap_or(Duration::from_secs(8 * 3600))
    }

    /// How long a request waits for a decision.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout.unwrap_or(Duration::from_secs(3600))
    }
}

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Name shown to the user and in recordings.
    pub name: String,
    /// Deny or review.
    pub action: Action,
    /// Reason shown to the user.
    #[serde(default)]
    pub reason: Option<String>,
    /// Only for members of these groups (all identities when empty).
    #[serde(default)]
    pub groups: Vec<String>,
    /// What the rule matches.
    #[serde(rename = "match")]
    pub matches: MatchConfig,
    /// Groups that may approve (review rules); the connection's approvers when empty.
    #[serde(default)]
    pub approvers: Vec<String>,
    /// Approvals needed (review rules); default 1.
    #[serde(default)]
    pub approvals: Option<u32>,
}

/// Matchers of a rule. Every matcher given must match (AND); within a list any entry may
/// match (OR).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchConfig {
    /// Statement classes (`drop_table`, `delete_without_where`, …).
    #[serde(default)]
    pub statements: Vec<String>,
    /// Functions called (`pg_terminate_backend`; `schema.name` or `name`).
    #[serde(default)]
    pub functions: Vec<String>,
    /// Tables touched: `name`, `schema.name`, or globs (`audit.*`, `*secret*`).
    #[serde(default)]
    pub tables: Vec<String>,
    /// File paths (SFTP and scp): globs where `*` stays within one path segment and `**`
    /// crosses them (`/etc/**` is everything under `/etc`). Case-sensitive.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Regular expression on the normalized text (case-insensitive).
    #[serde(default)]
    pub regex: Option<String>,
    /// Kubernetes resources, with their subresource and API group where it matters:
    /// `nodes`, `pods/exec`, `deployments.apps`, `secrets`; `*` is a wildcard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
    /// Kubernetes namespaces (`kube-system`, `prod-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Kubernetes object names (`node-*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// What makes a pod dangerous, as the gateway read it from the pod's spec (the pod
    /// exec'd or attached into, or the pod or pod template being created or changed):
    /// `privileged`, `root`, `host_path`, `host_namespaces`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_risks: Vec<String>,
}

mod opt_duration {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_str(&format!("{}s", d.as_secs())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| {
            parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!("invalid duration {t:?}: use e.g. 30s, 10m, 1h"))
            })
        })
        .transpose()
    }

    /// `90`, `90s`, `10m`, `1h`, `90d`.
    pub fn parse(t: &str) -> Option<Duration> {
        let t = t.trim();
        let (num, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
        let n: u64 = num.parse().ok()?;
        let secs = match unit {
            "" | "s" => n,
            "m" => n.checked_mul(60)?,
            "h" => n.checked_mul(3600)?,
            "d" => n.checked_mul(86_400)?,
            _ => return None,
        };
        Some(Duration::from_secs(secs))
    }
}

/// Parses a duration as the config writes it: `90`, `90s`, `10m`, `1h`, `90d`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    opt_duration::parse(text)
}
