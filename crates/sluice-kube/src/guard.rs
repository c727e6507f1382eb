//! The guard's view of a Kubernetes request and its verdict.
//!
//! A request is one statement whose classes are its verb (and `exec`, `attach`,
//! `portforward` for streams into a pod), with its resources, namespace, name and the risks
//! of the pod concerned; an exec's command adds the statements of its shell analysis, as
//! for SSH exec. A request under a review rule waits for the decision (kubectl waits too),
//! then runs or gets a `Status` 403.

use crate::request::RequestInfo;
use sluice_core::{Query, SessionEvent};
use sluice_http::guard::{guard_event, record_decision};
use sluice_http::session::HttpSession;
use sluice_pipeline::reviews::{new_review_id, Settled};
use sluice_pipeline::Pipeline;
use sluice_policy::{shell, StatementFacts, Verdict};
use std::sync::Arc;
use tracing::{info, warn};

/// What the guard decided.
pub enum Judged {
    /// Forward it; the request's query id.
    Run(u64),
    /// Refused by a rule, or by the reviewers.
    Refused {
        /// The rule.
        rule: String,
        /// The message for kubectl.
        message: String,
    },
    /// The audit trail cannot take it (503).
    Unavailable(String),
}

/// What the guard knows about a request.
pub struct Facts {
    /// The request.
    pub info: RequestInfo,
    /// The command of an exec, if any.
    pub command: Vec<String>,
    /// The risks of the pod concerned.
    pub pod_risks: Vec<String>,
    /// Why something the rules need could not be read (the pod's spec, the body).
    pub unreadable: Option<String>,
}

impl Facts {
    /// The statements the rules see.
    pub fn statements(&self) -> Vec<StatementFacts> {
        let one = |v: &str| match v {
            "" => Vec::new(),
            v => vec![v.to_string()],
        };
        let mut out = vec![StatementFacts {
            classes: self.info.classes(),
            resources: self.info.resources(),
            namespaces: one(&self.info.namespace),
            names: one(&self.info.name),
            pod_risks: self.pod_risks.clone(),
            ..StatementFacts::default()
        }];
        if let Some((program, args)) = self.command.split_first() {
            let mut analysis = shell::analyze(&self.command_line());
            shell::add_shell_script(&mut analysis, program, args);
            out.extend(analysis.statements);
        }
        out
    }

    /// The exec command as one shell line.
    pub fn command_line(&self) -> String {
        self.command
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The text recorded and shown to reviewers: `delete nodes node-1`,
    /// `exec pods web -n default -- sh -c 'ls /'`.
    pub fn line(&self) -> String {
        let mut line = self.info.summary();
        if !self.command.is_empty() {
            line.push_str(" -- ");
            line.push_str(&self.command_line());
        }
        line
    }
}

/// `arg` as a shell word.
fn shell_quote(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@%+,".contains(&b));
    match plain {
        true => arg.to_string(),
        false => format!("'{}'", arg.replace('\'', "'\\''")),
    }
}

/// The verdict of the connection's rules on `facts`.
pub fn verdict(session: &HttpSession, facts: &Facts, line: &str) -> Verdict {
    let Some(guard) = session
        .policy
        .as_ref()
        .and_then(|p| p.policy.guard.as_ref())
    else {
        return Verdict::Allow;
    };
    let statements = facts.statements();
    let command = sluice_policy::Command {
        text: line,
        normalized: line,
        statements: &statements,
        unparsable: facts.unreadable.as_deref(),
    };
    guard.check(&command, &session.authorized.identity.groups)
}

/// Whether the connection has rules on pod risks (so the gateway must read pod specs).
pub fn needs_pod_risks(session: &HttpSession) -> bool {
    session
        .policy
        .as_ref()
        .and_then(|p| p.policy.guard.as_ref())
        .is_some_and(|g| g.uses_pod_risks())
}

/// Records `shown` (the masked line) and applies `verdict`, waiting for a review's decision.
pub async fn judge(
    pipeline: &Pipeline,
    session: &Arc<HttpSession>,
    shown: String,
    verdict: Verdict,
) -> Judged {
    let id = session.next_query();
    session.record(&SessionEvent::Query(Box::new(Query {
        id,
        text: shown.as_str().into(),
        params: None,
    })));
    let hit = match verdict {
        Verdict::Allow => return Judged::Run(id),
        _ if session.audit_closed() => return Judged::Unavailable(
            "sluice: the audit trail is unavailable and the gateway is configured to fail closed"
                .into(),
        ),
        Verdict::Deny(hit) => {
            guard_event(session, id, "denied", &hit, None);
            info!(rule = %hit.rule, "kubernetes request denied");
            return Judged::Refused {
                rule: hit.rule.clone(),
                message: format!("sluice: denied by rule \"{}\": {}", hit.rule, hit.reason),
            };
        }
        Verdict::Review(hit) => hit,
    };
    let review = new_review_id();
    guard_event(session, id, "held", &hit, Some(review.clone()));
    let Some(policy) = &session.policy else {
        return Judged::Run(id);
    };
    let timeout = policy.policy.review_timeout();
    let mut held = match pipeline
        .hold_command(policy.command_hold(review.clone(), &hit, shown))
        .await
    {
        Ok(h) => h,
        Err(e) => {
            warn!(error = %e, "could not file a review; refusing the request");
            let settled = Settled::not_filed(&review, &hit);
            record_decision(session, id, &settled);
            return Judged::Refused {
                rule: hit.rule.clone(),
                message: settled.refusal.map(|r| r.1).unwrap_or_default(),
            };
        }
    };
    info!(%review, rule = %hit.rule, "kubernetes request held for review");
    let mut stop = session.stop_signal();
    let decided = tokio::select! {
        d = held.decision() => d,
        () = async {
            let _ = stop.wait_for(Option::is_some).await;
        } => held.withdraw().await,
    };
    let settled = Settled::of(&decided, timeout);
    record_decision(session, id, &settled);
    match settled.refusal {
        None => Judged::Run(id),
        Some((_, message)) => Judged::Refused {
            rule: hit.rule.clone(),
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_lines_quote_their_arguments() {
        let facts = Facts {
            info: RequestInfo::parse("POST", "/api/v1/namespaces/default/pods/web/exec", None),
            command: vec!["sh".into(), "-c".into(), "rm -rf /data; echo 'ok'".into()],
            pod_risks: Vec::new(),
            unreadable: None,
        };
        assert_eq!(
            facts.line(),
            r#"exec pods web -n default -- sh -c 'rm -rf /data; echo '\''ok'\'''"#
        );
        let classes: Vec<String> = facts
            .statements()
            .into_iter()
            .flat_map(|s| s.classes)
            .collect();
        assert!(classes.contains(&"exec".to_string()), "{classes:?}");
        assert!(classes.contains(&"rm".to_string()), "{classes:?}");
    }
}
