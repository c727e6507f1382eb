//! The verdict on one client command: the gateway's own rules (no COM_CHANGE_USER, no
//! LOAD DATA LOCAL, `KILL` of gateway ids), the audit trail's state, then the guard.

use super::{Decision, Refusal, Relay, SessionState};
use crate::analyze::analyze;
use crate::codec::command::Command;
use crate::kill::KillRefused;
use sluice_policy::Verdict;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};

impl<CR, CW, SR, SW> Relay<CR, CW, SR, SW>
where
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
    SR: AsyncRead + Unpin,
    SW: AsyncWrite + Unpin,
{
    /// The guard's and the gateway's own verdict on one command.
    pub(super) fn decide(&self, cmd: &Command<'_>, st: &SessionState) -> Decision {
        let text = match cmd {
            Command::Quit => return Decision::Quit,
            Command::ChangeUser => {
                return Refusal::decision(
                    "gateway.change_user",
                    1045,
                    "sluice: COM_CHANGE_USER is not supported through the gateway; open a new connection with the other connection's name".into(),
                )
            }
            Command::Unsupported(c) => {
                return Refusal::decision(
                    "gateway.unsupported_command",
                    1047,
                    format!("sluice: command 0x{c:02x} is not supported through the gateway"),
                )
            }
            Command::ProcessKill(id) => {
                return match self.kill_target(u64::from(*id)) {
                    Ok(Some(thread)) => {
                        let mut p = vec![crate::codec::command::code::PROCESS_KILL];
                        p.extend_from_slice(&thread.to_le_bytes());
                        Decision::Rewrite(p)
                    }
                    Ok(None) => Decision::Forward,
                    Err(refusal) => refusal,
                }
            }
            Command::Query(t) | Command::StmtPrepare(t) => Some(*t),
            // Only a session with a policy marks statements for review.
            Command::StmtExecute { id, .. } => match st.tracker.execution_review(*id) {
                Some(hit) if !st.recorder.audit_closed() => return Decision::Hold(hit),
                _ => None,
            },
            _ => None,
        };
        let statement = text.is_some() || matches!(cmd, Command::StmtExecute { .. });
        if statement && st.recorder.audit_closed() {
            return Refusal::decision(
                "audit.fail_closed",
                1053,
                "sluice: the audit trail is unavailable and the gateway is configured to fail closed; the statement was not run".into(),
            );
        }
        let Some(text) = text else {
            return Decision::Forward;
        };
        let text = String::from_utf8_lossy(text);
        let analysis = match &self.policy {
            Some(p) => p.analyses.get_or(&text, analyze),
            None => Arc::new(analyze(&text)),
        };
        if analysis
            .statements
            .iter()
            .any(|s| s.classes.iter().any(|c| c == "load_data_local"))
        {
            return Refusal::decision(
                "gateway.load_data_local",
                1148,
                "sluice: LOAD DATA LOCAL INFILE is refused: it lets the server read files from the client's machine".into(),
            );
        }
        let allowed = match self.kill_rewrite(&text, &analysis) {
            Ok(Some(rewritten)) => Decision::Rewrite(rewritten),
            Ok(None) => Decision::Forward,
            Err(refusal) => return refusal,
        };
        let Some(p) = &self.policy else {
            return allowed;
        };
        let Some(guard) = p.policy.guard.as_ref() else {
            return allowed;
        };
        match guard.check(&analysis.command(&text), &p.identity.groups) {
            Verdict::Allow => allowed,
            Verdict::Deny(hit) => Refusal::decision(
                &hit.rule,
                1142,
                format!(
                    "sluice: statement blocked by rule \"{}\": {}",
                    hit.rule, hit.reason
                ),
            ),
            // A prepared statement runs at its executions: each one is held, with its values.
            Verdict::Review(hit) if matches!(cmd, Command::StmtPrepare(_)) => {
                Decision::ReviewExecutions(hit)
            }
            // A KILL is never held: it may be what withdraws a held statement.
            Verdict::Review(hit) if !matches!(allowed, Decision::Rewrite(_)) => Decision::Hold(hit),
            Verdict::Review(_) => allowed,
        }
    }

    /// The target thread behind gateway id `id`, for a `KILL` from this session.
    fn kill_target(&self, id: u64) -> Result<Option<u32>, Decision> {
        let k = &self.kills;
        let thread = k.map.resolve(id, &k.identity, &k.target).map_err(|why| {
            let message = match why {
                KillRefused::NotYours => {
                    format!("sluice: connection {id} belongs to another identity")
                }
                KillRefused::OtherTarget => format!("sluice: connection {id} is on another target"),
            };
            Refusal::decision("gateway.kill", 1095, message)
        })?;
        if thread.is_some() {
            k.map.interrupt(id);
        }
        Ok(thread)
    }

    /// A `KILL [QUERY | CONNECTION] n` of a gateway id, rewritten for the target (a command
    /// payload), or `None` when the text is something else.
    fn kill_rewrite(
        &self,
        text: &str,
        analysis: &sluice_policy::analysis::Analysis,
    ) -> Result<Option<Vec<u8>>, Decision> {
        let is_kill = analysis.statements.len() == 1
            && analysis.statements[0].classes.iter().any(|c| c == "kill");
        if !is_kill {
            return Ok(None);
        }
        let Some((modifier, id)) = crate::analyze::kill_target(text) else {
            return Ok(None);
        };
        let Some(thread) = self.kill_target(id)? else {
            return Ok(None);
        };
        let mut p = vec![crate::codec::command::code::QUERY];
        p.extend_from_slice(format!("KILL {modifier}{thread}").as_bytes());
        Ok(Some(p))
    }
}
