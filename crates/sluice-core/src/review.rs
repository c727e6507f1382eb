//! Reviews: a held command or an access request waiting for approvers.

use serde::{Deserialize, Serialize};

/// What a review is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewKind {
    /// A command held by a `review` guardrail in a live session.
    Command,
    /// A request for time-boxed access to a connection.
    Access,
}

impl ReviewKind {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewKind::Command => "command",
            ReviewKind::Access => "access",
        }
    }
}

/// Where a review stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    /// Waiting for approvers.
    Pending,
    /// Approved by enough approvers.
    Approved,
    /// Denied by an approver.
    Denied,
    /// No decision before the deadline.
    Expired,
    /// The requester went away (session ended, statement cancelled) before a decision.
    Cancelled,
}

impl ReviewStatus {
    /// Stable text form (also the column value in the store).
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Approved => "approved",
            ReviewStatus::Denied => "denied",
            ReviewStatus::Expired => "expired",
            ReviewStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`ReviewStatus::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ReviewStatus::Pending,
            "approved" => ReviewStatus::Approved,
            "denied" => ReviewStatus::Denied,
            "expired" => ReviewStatus::Expired,
            "cancelled" => ReviewStatus::Cancelled,
            _ => return None,
        })
    }
}

/// One approver's decision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Approval {
    /// Approver identity name.
    pub by: String,
    /// When, µs since the epoch.
    pub at_us: i64,
    /// Their reason, if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A review, as stored and shown to approvers. Statement texts are masked before they get
/// here: a review never holds a raw masked value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Review {
    /// Short unique id (`rv-…`).
    pub id: String,
    /// Command or access.
    pub kind: ReviewKind,
    /// Where it stands.
    pub status: ReviewStatus,
    /// Who asked (the session's identity).
    pub requester: String,
    /// The requester's groups at the time.
    pub requester_groups: Vec<String>,
    /// Connection concerned.
    pub connection: String,
    /// Session holding the command (command reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Guardrail that asked for the review (command reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The rule's reason, or the requester's justification (access).
    pub reason: String,
    /// The held statement, masked (command reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement: Option<String>,
    /// Groups whose members may decide; empty means gateway admins.
    pub approver_groups: Vec<String>,
    /// Approvals needed.
    pub approvals_required: u32,
    /// Approvals given so far.
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// The denial, when denied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub denial: Option<Approval>,
    /// Created, µs since the epoch.
    pub created_us: i64,
    /// Deadline for a decision, µs since the epoch.
    pub deadline_us: i64,
    /// When it was decided (approved, denied, expired or cancelled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_us: Option<i64>,
    /// Access asked for, in seconds (access reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_secs: Option<u64>,
    /// Access granted until, µs since the epoch (approved access reviews).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_until_us: Option<i64>,
}

impl Review {
    /// Names of the approvers so far, in order.
    pub fn approvers(&self) -> Vec<String> {
        self.approvals.iter().map(|a| a.by.clone()).collect()
    }
}
