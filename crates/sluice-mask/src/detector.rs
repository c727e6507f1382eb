//! The built-in detectors and the per-session hit counts.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A built-in detector of sensitive values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Payment card numbers (13–19 digits, Luhn-valid).
    CardNumber,
    /// Email addresses.
    Email,
    /// Phone numbers written with a `+` country code or in grouped form.
    Phone,
    /// International bank account numbers (mod-97 valid).
    Iban,
    /// US social security numbers (`123-45-6789`).
    UsSsn,
    /// JSON web tokens.
    Jwt,
    /// AWS access key ids (`AKIA…`).
    AwsAccessKey,
    /// AWS secret access keys, next to a name that says so.
    AwsSecretKey,
    /// GitHub tokens (`ghp_…`, `github_pat_…`).
    GithubToken,
    /// GitLab personal access tokens (`glpat-…`).
    GitlabToken,
    /// Slack tokens (`xoxb-…`, `xapp-…`).
    SlackToken,
    /// PEM private keys.
    PrivateKey,
    /// `Bearer` tokens.
    BearerToken,
    /// Passwords in URLs (`scheme://user:password@host`) and connection strings (`password=…`).
    Password,
}

impl Detector {
    /// Every built-in detector.
    pub const ALL: [Detector; 14] = [
        Detector::CardNumber,
        Detector::Email,
        Detector::Phone,
        Detector::Iban,
        Detector::UsSsn,
        Detector::Jwt,
        Detector::AwsAccessKey,
        Detector::AwsSecretKey,
        Detector::GithubToken,
        Detector::GitlabToken,
        Detector::SlackToken,
        Detector::PrivateKey,
        Detector::BearerToken,
        Detector::Password,
    ];

    /// The configuration name (`card_number`, `email`, …).
    pub fn name(self) -> &'static str {
        match self {
            Detector::CardNumber => "card_number",
            Detector::Email => "email",
            Detector::Phone => "phone",
            Detector::Iban => "iban",
            Detector::UsSsn => "us_ssn",
            Detector::Jwt => "jwt",
            Detector::AwsAccessKey => "aws_access_key",
            Detector::AwsSecretKey => "aws_secret_key",
            Detector::GithubToken => "github_token",
            Detector::GitlabToken => "gitlab_token",
            Detector::SlackToken => "slack_token",
            Detector::PrivateKey => "private_key",
            Detector::BearerToken => "bearer_token",
            Detector::Password => "password",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// How often each detector fired in a session.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaskCounts {
    builtin: [u64; Detector::ALL.len()],
    custom: Vec<u64>,
    columns: u64,
    /// The sum of all the above (read once per value, so kept rather than summed).
    total: u64,
}

impl MaskCounts {
    pub(crate) fn hit(&mut self, d: Detector) {
        self.builtin[d.index()] += 1;
        self.total += 1;
    }

    pub(crate) fn hit_custom(&mut self, i: usize) {
        if self.custom.len() <= i {
            self.custom.resize(i + 1, 0);
        }
        self.custom[i] += 1;
        self.total += 1;
    }

    /// Counts a value masked whole because of its column name.
    pub fn hit_column(&mut self) {
        self.columns += 1;
        self.total += 1;
    }

    /// Total number of masked values.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Adds another set of counts to this one.
    pub fn add(&mut self, other: &MaskCounts) {
        for (a, b) in self.builtin.iter_mut().zip(other.builtin.iter()) {
            *a += b;
        }
        for (i, n) in other.custom.iter().enumerate() {
            if self.custom.len() <= i {
                self.custom.resize(i + 1, 0);
            }
            self.custom[i] += n;
        }
        self.columns += other.columns;
        self.total += other.total;
    }

    /// The non-zero counts by detector name; custom detectors by their configured names.
    pub fn by_name(&self, custom_names: &[String]) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for d in Detector::ALL {
            let n = self.builtin[d.index()];
            if n > 0 {
                out.insert(d.name().to_string(), n);
            }
        }
        for (i, n) in self.custom.iter().enumerate() {
            if *n > 0 {
                let name = custom_names
                    .get(i)
                    .cloned()
                    .unwrap_or_else(|| format!("custom_{i}"));
                *out.entry(name).or_default() += n;
            }
        }
        if self.columns > 0 {
            out.insert("column".to_string(), self.columns);
        }
        out
    }
}
