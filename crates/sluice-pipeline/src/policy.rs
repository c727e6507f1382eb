//! A connection's policy: its guard (deny / review rules) and its masker, compiled once and
//! shared by every session of the connection.

use sluice_mask::{MaskConfig, Masker};
use sluice_policy::{AccessConfig, Guard, GuardConfig};
use std::sync::Arc;

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
