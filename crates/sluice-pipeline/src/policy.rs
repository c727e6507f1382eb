//! A connection's policy: its guard (deny / review rules) and its masker, compiled once and
//! shared by every session of the connection.

use sluice_mask::{MaskConfig, Masker};
use sluice_policy::{Guard, GuardConfig};
use std::sync::Arc;

/// The compiled policy of one connection.
#[derive(Debug, Default)]
pub struct ConnectionPolicy {
    /// Guardrails; `None` lets every command through.
    pub guard: Option<Guard>,
    /// Masking; `None` masks nothing.
    pub masker: Option<Arc<Masker>>,
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
}

impl ConnectionPolicy {
    /// Compiles a connection's guardrails and masking.
    pub fn compile(
        guard: Option<&GuardConfig>,
        mask: Option<&MaskConfig>,
    ) -> Result<ConnectionPolicy, PolicyError> {
        Ok(ConnectionPolicy {
            guard: guard.map(Guard::new).transpose()?,
            masker: mask.map(Masker::new).transpose()?.map(Arc::new),
        })
    }

    /// Whether the policy does anything.
    pub fn is_empty(&self) -> bool {
        self.guard.is_none() && self.masker.is_none()
    }
}
