//! The guard's view of a run and its verdict. What is judged is what is recorded: the
//! command line, then the script the client sends on stdin.
//!
//! For shells (`bash`, `sh`, …) every line of the script, and the script of `-c`, goes
//! through the shell analyzer, so `rm`, `sudo rm`, `$(curl …)` are statement classes as they
//! are for SSH. For other programs (`python3`, `psql`) the statement class is the program's
//! name, and regex rules see the whole text.

use crate::event::ExecEvent;
use crate::spec::RunSpec;
use sluice_core::{Query, SessionEvent};
use sluice_mask::{MaskCounts, Masker};
use sluice_pipeline::reviews::{held_notice, new_review_id, Settled};
use sluice_pipeline::{Recorder, SessionPolicy, Stop};
use sluice_policy::analysis::Analysis;
use sluice_policy::{shell, Verdict};
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

/// Programs whose script is shell.
const SHELLS: &[&str] = &["sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "busybox"];

/// The text a run is judged and recorded by, and its analysis.
pub fn analyze(spec: &RunSpec, stdin: &[u8]) -> (String, Analysis) {
    let mut text = spec.command_line();
    if !stdin.is_empty() {
        text.push('\n');
        match std::str::from_utf8(stdin) {
            Ok(s) => text.push_str(s),
            Err(_) => text.push_str(&format!("[{} bytes of binary input]", stdin.len())),
        }
    }
    let name = spec.program.rsplit('/').next().unwrap_or(&spec.program);
    let mut analysis = if SHELLS.contains(&name) {
        let mut a = shell::analyze(&text);
        // `bash -c SCRIPT`: the script is an argument; analyze it as a script too.
        let mut args = spec.args.iter();
        while let Some(arg) = args.next() {
            if arg.starts_with('-') && !arg.starts_with("--") && arg.contains('c') {
                if let Some(script) = args.next() {
                    a.statements.extend(shell::analyze(script).statements);
                }
            }
        }
        a
    } else {
        shell::analyze(&spec.command_line())
    };
    analysis.normalized = text.split_whitespace().collect::<Vec<_>>().join(" ");
    (text, analysis)
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

/// What judging a run needs from its session.
pub struct Judge<'a> {
    /// The session's recorder.
    pub recorder: &'a mut Recorder,
    /// The connection's policy, if any.
    pub policy: Option<&'a SessionPolicy>,
    /// Masks the recorded text (injected secrets, then the connection's rules).
    pub maskers: [Option<&'a Arc<Masker>>; 2],
    /// Containment.
    pub stop: watch::Receiver<Option<Stop>>,
    /// The client, for the notice of a hold.
    pub client: &'a mpsc::Sender<ExecEvent>,
}

impl Judge<'_> {
    /// Records `text` as the run's query (masked) and judges `analysis` of it.
    pub async fn judge(mut self, text: &str, analysis: &Analysis) -> Judged {
        let mut shown = text.to_string();
        for m in self.maskers.into_iter().flatten() {
            if let Some(masked) = m.mask_str(&shown, &mut MaskCounts::default()) {
                shown = masked;
            }
        }
        let id = 1;
        let query = SessionEvent::Query(Box::new(Query {
            id,
            text: shown.as_str().into(),
            params: None,
        }));
        if !self.recorder.record(&query).wait().await {
            return Judged::Refused(
                "sluice: the command could not be recorded, so it was not run".into(),
            );
        }
        let Some(policy) = self.policy else {
            return Judged::Run(id);
        };
        if self.recorder.audit_closed() {
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
                info!(rule = %hit.rule, "command run denied");
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
                warn!(error = %e, "could not file a review; refusing the run");
                Settled::not_filed(&review, &hit)
            }
            Ok(mut held_cmd) => {
                let message = format!("{held}\n{waiting}");
                let _ = self.client.send(ExecEvent::Notice { message }).await;
                let stopped = tokio::select! {
                    r = held_cmd.decision() => Ok(r),
                    _ = self.stop.wait_for(Option::is_some) => Err(()),
                    _ = self.client.closed() => Err(()),
                };
                match stopped {
                    Ok(r) => Settled::of(&r, timeout),
                    Err(()) => Settled::of(&held_cmd.withdraw().await, timeout),
                }
            }
        };
        let d = &settled.decided;
        let _ = self.recorder.record(&SessionEvent::Decision {
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

    fn guard_event(
        &mut self,
        query: u64,
        action: &str,
        hit: &sluice_policy::RuleHit,
        review: Option<String>,
    ) {
        let _ = self.recorder.record(&SessionEvent::Guard {
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
    fn other_programs_are_their_name_and_regex_sees_the_script() {
        let (_, a) = analyze(
            &spec("python3", &["-"]),
            b"import shutil\nshutil.rmtree('/')\n",
        );
        assert_eq!(classes(&a), ["python3"]);
        assert!(a.normalized.contains("shutil.rmtree('/')"));
    }
}
