//! A connection's policy: its guard (deny / review rules) and its masker, compiled once and
//! shared by every session of the connection.

use crate::reviews::CommandHold;
use crate::Pipeline;
use sluice_core::Identity;
use sluice_mask::{MaskConfig, Masker};
use sluice_policy::analysis::AnalysisCache;
use sluice_policy::{AccessConfig, Guard, GuardConfig, RuleHit, DEFAULT_REVIEW_TIMEOUT};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// The compiled policy of one connection.
#[derive(Debug, Default)]
pub struct ConnectionPolicy {
    /// Guardrails; `None` lets every command through.
    pub guard: Option<Guard>,
    /// Masking; `None` masks nothing.
    pub masker: Option<Arc<Masker>>,
    /// Time-boxed access; `None` lets a grant suffice.
    pub access: Option<AccessConfig>,
}

impl ConnectionPolicy {
    /// How long a held command waits for its decision.
    pub fn review_timeout(&self) -> Duration {
        self.guard
            .as_ref()
            .map_or(DEFAULT_REVIEW_TIMEOUT, Guard::review_timeout)
    }
}

/// The policy one session runs under, and what holding a command for review needs.
#[derive(Clone)]
pub struct SessionPolicy {
    /// The connection's guard and masker.
    pub policy: Arc<ConnectionPolicy>,
    /// Who the session belongs to (groups for group-scoped rules, requester of reviews).
    pub identity: Arc<Identity>,
    /// Connection name.
    pub connection: String,
    /// Session id.
    pub session_id: String,
    /// Files reviews and waits for decisions.
    pub pipeline: Pipeline,
    /// Notified when the client withdraws a held command (a PostgreSQL CancelRequest, a
    /// MySQL `KILL` of the session).
    pub withdraw: Arc<Notify>,
    /// Analyses shared by the listener's sessions.
    pub analyses: Arc<AnalysisCache>,
}

impl SessionPolicy {
    /// The review to file for command `statement` (masked) held under `hit` as review `id`.
    pub fn command_hold<'a>(
        &'a self,
        id: String,
        hit: &'a RuleHit,
        statement: String,
    ) -> CommandHold<'a> {
        CommandHold {
            id,
            identity: &self.identity,
            connection: &self.connection,
            session_id: &self.session_id,
            hit,
            statement,
            timeout: self.policy.review_timeout(),
        }
    }
}

impl Pipeline {
    /// The policy the session `recorder` records runs under, when its connection has one.
    /// `withdraw` is notified when the client withdraws a held command.
    pub fn session_policy(
        &self,
        recorder: &crate::Recorder,
        analyses: &Arc<AnalysisCache>,
        withdraw: Arc<Notify>,
    ) -> Option<SessionPolicy> {
        let authorized = recorder.authorized();
        let connection = &authorized.connection.name.0;
        self.catalog()
            .policy(connection)
            .map(|policy| SessionPolicy {
                policy,
                identity: Arc::new(authorized.identity.clone()),
                connection: connection.clone(),
                session_id: recorder.id().0.clone(),
                pipeline: self.clone(),
                withdraw,
                analyses: analyses.clone(),
            })
    }
}

/// Why a policy could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Guardrails are invalid.
    #[error("guardrails: {0}")]
    Guard(#[from] sluice_policy::GuardError),
    /// Masking is invalid.
    #[error("masking: {0}")]
    Mask(#[from] sluice_mask::MaskError),
    /// Access settings are invalid.
    #[error("access: {0}")]
    Access(String),
}

impl ConnectionPolicy {
    /// Compiles a connection's guardrails, masking and access settings.
    pub fn compile(
        guard: Option<&GuardConfig>,
        mask: Option<&MaskConfig>,
        access: Option<&AccessConfig>,
    ) -> Result<ConnectionPolicy, PolicyError> {
        if let Some(a) = access {
            if a.approvals == Some(0) {
                return Err(PolicyError::Access("approvals must be at least 1".into()));
            }
            if a.max_duration.is_some_and(|d| d.is_zero()) {
                return Err(PolicyError::Access("max_duration must be positive".into()));
            }
        }
        Ok(ConnectionPolicy {
            guard: guard.map(Guard::new).transpose()?,
            masker: mask.map(Masker::new).transpose()?.map(Arc::new),
            access: access.cloned(),
        })
    }

    /// Whether the policy does anything.
    pub fn is_empty(&self) -> bool {
        self.guard.is_none() && self.masker.is_none() && self.access.is_none()
    }
}
