//! How a held command's review ended, in the words every protocol adapter uses: what the
//! recording says about the decision, and what the client is told when the command does not
//! run. Adapters only choose the protocol's error codes.

use sluice_core::{Review, ReviewStatus};
use sluice_policy::RuleHit;
use std::time::Duration;

/// The decision on a held command, for its recording.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Review id.
    pub review: String,
    /// `approved`, `denied`, `expired`, `cancelled` or `error`.
    pub decision: &'static str,
    /// Who decided.
    pub by: Vec<String>,
    /// Their reason.
    pub reason: Option<String>,
}

/// Why a held command did not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotRun {
    /// An approver denied it.
    Denied,
    /// Nobody decided in time.
    Expired,
    /// The client withdrew it.
    Cancelled,
}

/// A review as it ended: the decision and, unless approved, why the command did not run
/// and the message for the client.
#[derive(Debug, Clone)]
pub struct Settled {
    /// For the recording.
    pub decided: Decided,
    /// `None` when approved.
    pub refusal: Option<(NotRun, String)>,
}

impl Settled {
    /// How `review` ended; `timeout` is how long it waited at most.
    pub fn of(review: &Review, timeout: Duration) -> Settled {
        let decided = |decision, by, reason| Decided {
            review: review.id.clone(),
            decision,
            by,
            reason,
        };
        match review.status {
            ReviewStatus::Approved => {
                let reasons: Vec<&str> = review
                    .approvals
                    .iter()
                    .filter_map(|a| a.reason.as_deref())
                    .collect();
                let reason = (!reasons.is_empty()).then(|| reasons.join("; "));
                Settled {
                    decided: decided("approved", review.approvers(), reason),
                    refusal: None,
                }
            }
            ReviewStatus::Denied => {
                let (by, why) = review
                    .denial
                    .as_ref()
                    .map(|d| (d.by.clone(), d.reason.clone()))
                    .unwrap_or_default();
                let message = match &why {
                    Some(w) => format!(
                        "sluice: statement denied by {by} (review {}): {w}",
                        review.id
                    ),
                    None => format!("sluice: statement denied by {by} (review {})", review.id),
                };
                Settled {
                    decided: decided("denied", vec![by], why),
                    refusal: Some((NotRun::Denied, message)),
                }
            }
            ReviewStatus::Expired | ReviewStatus::Pending => Settled {
                decided: decided("expired", Vec::new(), None),
                refusal: Some((
                    NotRun::Expired,
                    format!(
                        "sluice: review {} expired: no decision within {}; the statement was not run",
                        review.id,
                        human(timeout)
                    ),
                )),
            },
            ReviewStatus::Cancelled => Settled {
                decided: decided("cancelled", Vec::new(), None),
                refusal: Some((
                    NotRun::Cancelled,
                    format!(
                        "sluice: review {} was withdrawn; the statement was not run",
                        review.id
                    ),
                )),
            },
        }
    }

    /// The review could not be filed (the store failed): the command is refused.
    pub fn not_filed(review: &str, hit: &RuleHit) -> Settled {
        Settled {
            decided: Decided {
                review: review.to_string(),
                decision: "error",
                by: Vec::new(),
                reason: None,
            },
            refusal: Some((
                NotRun::Denied,
                format!(
                    "sluice: statement needs approval under rule \"{}\", but the review could not be filed; it was not run",
                    hit.rule
                ),
            )),
        }
    }
}

/// What the client is told while its command waits: (message, hint).
pub fn held_notice(review: &str, hit: &RuleHit, timeout: Duration) -> (String, String) {
    (
        format!(
            "sluice: statement held for review {review} (rule \"{}\": {})",
            hit.rule, hit.reason
        ),
        format!(
            "Waiting up to {} for {}. {} runs: sluice reviews approve {review}",
            human(timeout),
            approvals(hit.approvals),
            approvers(&hit.approvers),
        ),
    )
}

fn approvals(n: u32) -> String {
    if n <= 1 {
        "approval".into()
    } else {
        format!("{n} approvals")
    }
}

fn approvers(groups: &[String]) -> String {
    match groups {
        [] => "A gateway admin".into(),
        [g] => format!("An approver in group {g}"),
        gs => format!("An approver in group {}", gs.join(" or ")),
    }
}

/// `90s`, `10m`, `1h30m`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s % 3600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, 0, 0) => format!("{h}h"),
        (h, m, _) => format!("{h}h{m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::human;
    use std::time::Duration;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(human(Duration::from_secs(45)), "45s");
        assert_eq!(human(Duration::from_secs(600)), "10m");
        assert_eq!(human(Duration::from_secs(90)), "1m30s");
        assert_eq!(human(Duration::from_secs(7200)), "2h");
        assert_eq!(human(Duration::from_secs(5400)), "1h30m");
    }
}
