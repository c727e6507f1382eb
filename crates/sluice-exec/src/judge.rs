//! The guard's view of a run and its verdict. What is judged is what is recorded: the
//! command line, then the script the client sends on stdin.
//!
//! For shells (`bash`, `sh`, …) every line of the script, and the script of `-c`, goes
//! through the shell analyzer, so `rm`, `sudo rm`, `$(curl …)` are statement classes as they
//! are for SSH. For other programs (`python3`, `psql`) the statement class is the program's
//! name, and regex rules see the whole text.

use crate::spec::RunSpec;
use sluice_core::{Query, SessionEvent};
use sluice_mask::{MaskCounts, Masker};
use sluice_pipeline::reviews::{held_notice, new_review_id, Settled};
use sluice_pipeline::{Durable, Recorder, SessionPolicy, Stop};
use sluice_policy::analysis::Analysis;
use sluice_policy::{shell, RuleHit, Verdict};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::{info, warn};

use sluice_policy::shell::SHELLS;

/// The text a run is judged and recorded by, and its analysis.
pub fn analyze(spec: &RunSpec, stdin: &[u8]) -> (String, Analysis) {
    let mut text = spec.command_line();
    if !stdin.is_empty() {
        text.push('\n');
        // Bytes that are not UTF-8 are judged (and recorded) as U+FFFD: one bad byte must
        // not hide the rest of a script from the rules.
        text.push_str(&String::from_utf8_lossy(stdin));
    }
    let name = spec.program.rsplit('/').next().unwrap_or(&spec.program);
    let mut analysis = if SHELLS.contains(&name) {
        let mut a = shell::analyze(&text);
        // `bash -c SCRIPT`: the script is an argument; analyze it as a script too.
        shell::add_shell_script(&mut a, &spec.program, &spec.args);
        a
    } else {
        shell::analyze(&spec.command_line())
    };
    analysis.normalized = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (text, analysis)
}

/// The analysis of one line typed into a terminal of `program`.
pub fn analyze_line(program: &str, line: &str) -> Analysis {
    let name = program.rsplit('/').next().unwrap_or(program);
    if SHELLS.contains(&name) {
        shell::analyze(line)
    } else {
        Analysis {
            statements: Vec::new(),
            normalized: line.split_whitespace().collect::<Vec<_>>().join(" "),
            unparsable: None,
        }
    }
}

/// The guard's answer for a run.
pub enum Judged {
    /// Run it; the recorded query's id.
    Run(u64),
    /// Do not run it: the message for the client.
    Refused(String),
    /// The session was stopped (kill, block) while the run waited for approval.
    Stopped(Stop),
}

/// What judging a command needs from its session.
pub struct Judge<'a> {
    /// The session's recorder.
    pub recorder: &'a Mutex<Recorder>,
    /// The query id the command is recorded under.
    pub id: u64,
    /// The connection's policy, if any.
    pub policy: Option<&'a SessionPolicy>,
    /// Masks the recorded text (injected secrets, then the connection's rules).
    pub maskers: [Option<&'a Arc<Masker>>; 2],
    /// Containment.
    pub stop: watch::Receiver<Option<Stop>>,
}

impl Judge<'_> {
    /// Records `text` (or `redacted` in its place) as a query, masked, and judges `analysis`
    /// of it. `notice` tells the person about a hold; `gone` completes when the person went
    /// away while waiting (the review is withdrawn).
    pub async fn judge(
        mut self,
        text: &str,
        redacted: Option<String>,
        analysis: &Analysis,
        notice: impl AsyncFnOnce(String),
        gone: impl std::future::Future<Output = ()>,
    ) -> Judged {
        let mut shown = redacted.unwrap_or_else(|| text.to_string());
        for m in self.maskers.into_iter().flatten() {
            if let Some(masked) = m.mask_str(&shown, &mut MaskCounts::default()) {
                shown = masked;
            }
        }
        let id = self.id;
        let query = SessionEvent::Query(Box::new(Query {
            id,
            text: shown.as_str().into(),
            params: None,
        }));
        if !self.record(&query).wait().await {
            return Judged::Refused(
                "sluice: the command could not be recorded, so it was not run".into(),
            );
        }
        let Some(policy) = self.policy else {
            return Judged::Run(id);
        };
        if self.audit_closed() {
            return Judged::Refused(
                "sluice: the audit trail is unavailable and the gateway is configured to fail closed".into(),
            );
        }
        let Some(guard) = &policy.policy.guard else {
            return Judged::Run(id);
        };
        let hit = match guard.check(&analysis.command(text), &policy.identity.groups) {
            Verdict::Allow => return Judged::Run(id),
            Verdict::Deny(hit) => {
                self.guard_event(id, "denied", &hit, None);
                info!(rule = %hit.rule, "command denied");
                return Judged::Refused(format!(
                    "sluice: denied by rule \"{}\": {}",
                    hit.rule, hit.reason
                ));
            }
            Verdict::Review(hit) => hit,
        };
        let review = new_review_id();
        self.guard_event(id, "held", &hit, Some(review.clone()));
        let timeout = policy.policy.review_timeout();
        let (held, waiting) = held_notice(&review, &hit, timeout);
        let hold = policy.command_hold(review.clone(), &hit, shown);
        let settled = match policy.pipeline.hold_command(hold).await {
            Err(e) => {
                warn!(error = %e, "could not file a review; refusing the command");
                Settled::not_filed(&review, &hit)
            }
            Ok(mut held_cmd) => {
                notice(format!("{held}\n{waiting}")).await;
                let stopped = tokio::select! {
                    r = held_cmd.decision() => Ok(r),
                    _ = self.stop.wait_for(Option::is_some) => Err(()),
                    () = gone => Err(()),
                };
                match stopped {
                    Ok(r) => Settled::of(&r, timeout),
                    Err(()) => Settled::of(&held_cmd.withdraw().await, timeout),
                }
            }
        };
        let d = &settled.decided;
        let _ = self.record(&SessionEvent::Decision {
            query: id,
            review: d.review.clone(),
            decision: d.decision.to_string(),
            by: d.by.clone(),
            reason: d.reason.clone(),
        });
        if let Some(stop) = self.stop.borrow().clone() {
            return Judged::Stopped(stop);
        }
        match settled.refusal {
            None => Judged::Run(id),
            Some((_, message)) => Judged::Refused(message),
        }
    }

    fn record(&self, event: &SessionEvent) -> Durable {
        match self.recorder.lock() {
            Ok(mut r) => r.record(event),
            Err(poisoned) => poisoned.into_inner().record(event),
        }
    }

    fn audit_closed(&self) -> bool {
        self.recorder.lock().is_ok_and(|r| r.audit_closed())
    }

    fn guard_event(&self, query: u64, action: &str, hit: &RuleHit, review: Option<String>) {
        let _ = self.record(&SessionEvent::Guard {
            query,
            action: action.into(),
            rule: hit.rule.clone(),
            reason: hit.reason.clone(),
            review,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT};

    fn spec(program: &str, args: &[&str]) -> RunSpec {
        RunSpec {
            program: program.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env: Vec::new(),
            secrets: Vec::new(),
            files: Vec::new(),
            workdir: None,
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
        }
    }

    fn classes(a: &Analysis) -> Vec<&str> {
        a.statements
            .iter()
            .flat_map(|s| s.classes.iter().map(String::as_str))
            .collect()
    }

    #[test]
    fn a_shell_script_is_judged_line_by_line() {
        let (text, a) = analyze(&spec("bash", &["-e"]), b"echo hi\nsudo rm -rf /srv\n");
        assert_eq!(text, "bash -e\necho hi\nsudo rm -rf /srv\n");
        assert!(classes(&a).contains(&"rm"), "{:?}", classes(&a));
        let (_, a) = analyze(&spec("/bin/sh", &["-xc", "curl x | sh"]), b"");
        assert!(classes(&a).contains(&"curl"), "{:?}", classes(&a));
    }

    #[test]
    fn a_script_with_bytes_that_are_not_utf8_is_still_judged() {
        let (text, a) = analyze(&spec("bash", &[]), b"echo \xff\nrm -rf /srv\n");
        assert!(text.contains("rm -rf /srv"));
        assert!(classes(&a).contains(&"rm"), "{:?}", classes(&a));
    }

    #[test]
    fn other_programs_are_their_name_and_regex_sees_the_script() {
        let (_, a) = analyze(
            &spec("python3", &["-"]),
            b"import shutil\nshutil.rmtree('/')\n",
        );
        assert_eq!(classes(&a), ["python3"]);
        assert!(a.normalized.contains("shutil.rmtree('/')"));
    }
}
