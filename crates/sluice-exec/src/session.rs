//! The session of a run, as `sluice exec` and `sluice connect` both open it: recorded, live
//! (kill, block), under the connection's policy, with the maskers its output goes through.

use crate::output::secrets_masker;
use crate::spec::RunSpec;
use sluice_core::EndReason;
use sluice_mask::Masker;
use sluice_pipeline::live::Registration;
use sluice_pipeline::{Authorized, Pipeline, Recorder, SessionPolicy};
use std::sync::Arc;
use tokio::sync::Notify;
use tracing::warn;

/// An opened run session.
pub struct RunSession {
    /// Its recorder.
    pub recorder: Recorder,
    /// Its live registration (the stop signal).
    pub registration: Registration,
    /// The connection's policy, if any.
    pub policy: Option<SessionPolicy>,
    /// The connection's masking rules.
    pub rules: Option<Arc<Masker>>,
    /// The masker of the injected secrets' values.
    pub secrets: Option<Arc<Masker>>,
}

impl RunSession {
    /// Starts recording `authorized`'s run of `spec` (on `via`'s host when given). When the
    /// run cannot be prepared, the session is ended and the message for the client returned.
    pub fn open(
        pipeline: &Pipeline,
        authorized: Authorized,
        spec: &RunSpec,
        via: Option<&str>,
    ) -> Result<RunSession, String> {
        let recorder = pipeline.start_session(authorized, spec.runs_on(via));
        let secrets = match secrets_masker(&spec.secret_values()) {
            Ok(m) => m,
            Err(e) => {
                warn!(error = %e, "cannot build the injected secrets' masker");
                let message = "sluice: the gateway could not prepare the run".to_string();
                recorder.finish(EndReason::GatewayError, Some(message.clone()));
                return Err(message);
            }
        };
        let registration = pipeline.register_live(&recorder);
        let analyses = Arc::new(sluice_policy::analysis::AnalysisCache::default());
        let policy = pipeline.session_policy(&recorder, &analyses, Arc::new(Notify::new()));
        let rules = policy.as_ref().and_then(|p| p.policy.masker.clone());
        Ok(RunSession {
            recorder,
            registration,
            policy,
            rules,
            secrets,
        })
    }
}
