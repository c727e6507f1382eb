//! # sluice-pipeline
//!
//! The protocol-neutral session pipeline every adapter feeds. An adapter knows framing and
//! how to say "no" natively; everything else happens here, once:
//!
//! 1. **authenticate**: a presented credential becomes an [`Identity`](sluice_core::Identity)
//!    ([`Pipeline::authorize`]).
//! 2. **authorize**: the identity needs a grant on the connection it asked for.
//! 3. **target**: the adapter opens the target with credentials the gateway holds
//!    ([`Pipeline::target_password`]).
//! 4. **record**: [`Pipeline::start_session`] returns the session's [`Recorder`]; every query and
//!    result goes through it, hash-chained, to the store.
//! 5. **end**: [`Recorder::finish`] (or its `Drop`, if an adapter forgets or panics) is the one
//!    path by which every session ends, errors included.
//!
//! ## Layout
//! - [`catalog`]: connections and grants (config file + runtime) as one lookup.
//! - [`dial`]: reaching a target directly or through an agent's tunnel.
//! - [`authorize`]: steps 1–2 and their audit events.
//! - [`live`]: live sessions and their stop signals (kill, block, expiry).
//! - [`output`]: masking a byte stream across chunk boundaries, and its recorded text.
//! - [`policy`]: a connection's compiled guard, masker and access settings.
//! - [`retention`]: deleting expired recordings, respecting legal holds.
//! - [`reviews`]: held commands and access requests waiting for approvers.
//! - [`recorder`]: step 4–5.
//! - [`audit`]: building audit events.

#[macro_use]
mod delegate;

pub mod accept;
pub mod audit;
pub mod authorize;
pub mod catalog;
pub mod dial;
pub mod live;
pub mod output;
pub mod policy;
pub mod recorder;
pub mod retention;
pub mod reviews;
pub mod stream;

pub use authorize::{Authorized, OpenError};
pub use catalog::Catalog;
pub use dial::{DialError, Route, TargetStream};
pub use live::{LiveSessions, Stop};
pub use policy::{ConnectionPolicy, SessionPolicy};
pub use recorder::{Durable, Recorder, RecordingSettings};
pub use reviews::{AccessError, Announce, CommandHold, DecideError, HeldCommand, Reviews};

use sluice_store::{RecordWriter, Store};
use std::sync::{Arc, OnceLock, RwLock};

/// The shared pipeline; cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    writer: RecordWriter,
    catalog: RwLock<Arc<Catalog>>,
    recording: RecordingSettings,
    live: LiveSessions,
    reviews: Reviews,
    providers: OnceLock<Arc<sluice_oidc::Verifier>>,
    /// Set with `audit.fail_closed`: the audit sinks' health, checked before each session.
    audit_gate: OnceLock<Arc<sluice_store::audit_log::SpoolHealth>>,
    /// Agents' tunnels to this gateway.
    tunnels: Arc<sluice_tunnel::Tunnels>,
}

impl Pipeline {
    /// A pipeline over `store`, recording through `writer`.
    pub fn new(
        store: Store,
        writer: RecordWriter,
        catalog: Catalog,
        recording: RecordingSettings,
    ) -> Pipeline {
        Pipeline {
            inner: Arc::new(Inner {
                store,
                writer,
                catalog: RwLock::new(Arc::new(catalog)),
                recording,
                live: LiveSessions::default(),
                reviews: Reviews::default(),
                providers: OnceLock::new(),
                audit_gate: OnceLock::new(),
                tunnels: Arc::new(sluice_tunnel::Tunnels::new()),
            }),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The recording writer.
    pub fn writer(&self) -> &RecordWriter {
        &self.inner.writer
    }

    /// The current catalog snapshot.
    pub fn catalog(&self) -> Arc<Catalog> {
        match self.inner.catalog.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the catalog (after a runtime change).
    pub fn set_catalog(&self, catalog: Catalog) {
        let mut guard = match self.inner.catalog.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(catalog);
    }

    /// Agents' tunnels to this gateway.
    pub fn tunnels(&self) -> &Arc<sluice_tunnel::Tunnels> {
        &self.inner.tunnels
    }

    /// Live sessions (containment).
    pub fn live(&self) -> &LiveSessions {
        &self.inner.live
    }

    /// Trusts the identity providers of `verifier` (once, at start-up).
    pub fn set_identity_providers(&self, verifier: Arc<sluice_oidc::Verifier>) {
        let _ = self.inner.providers.set(verifier);
    }

    /// The trusted identity providers, if any are configured.
    pub fn identity_providers(&self) -> Option<&Arc<sluice_oidc::Verifier>> {
        self.inner.providers.get()
    }

    /// Reviews waiting in this process.
    pub fn reviews(&self) -> &Reviews {
        &self.inner.reviews
    }

    /// Recording settings.
    pub fn recording(&self) -> &RecordingSettings {
        &self.inner.recording
    }

    /// Refuses new sessions whenever an audit sink's spool is full (`audit.fail_closed`).
    pub fn fail_closed_on(&self, health: Arc<sluice_store::audit_log::SpoolHealth>) {
        let _ = self.inner.audit_gate.set(health);
    }

    /// Whether sessions must be refused because the audit trail cannot keep up.
    pub fn audit_closed(&self) -> bool {
        self.inner.audit_gate.get().is_some_and(|h| h.any_full())
    }

    /// The audit sinks' health when `audit.fail_closed` is on.
    pub(crate) fn audit_gate(&self) -> Option<Arc<sluice_store::audit_log::SpoolHealth>> {
        self.inner.audit_gate.get().cloned()
    }

    /// Sends an audit event to the store and the audit sinks.
    pub fn audit(&self, event: sluice_core::AuditEvent) {
        self.inner
            .writer
            .send(sluice_store::WriteOp::Audit(Box::new(event)));
    }
}
