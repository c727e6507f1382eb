//! HTTP sessions. A session is one identity's requests to one connection over one client
//! connection (a browser's keep-alive connection, an HTTP/2 connection): opened, authorized
//! and audited at its first request, recorded request by request, and ended when the client
//! connection closes, when containment stops it, or when its credential stops being valid.

use crate::route::Matched;
use crate::upstream::Pool;
use sluice_core::{EndReason, Outcome, Secret, SessionEvent};
use sluice_pipeline::authorize::{ConnectAttempt, Credential};
use sluice_pipeline::live::Registration;
use sluice_pipeline::{Authorized, OpenError, Pipeline, Recorder, Route, SessionPolicy, Stop};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a session trusts its credential before checking it again (revoked tokens,
/// blocked identities; grants are checked at every request).
const RECHECK: Duration = Duration::from_secs(30);

/// A session's key: the connection name and the SHA-256 of the credential.
type SessionKey = (String, [u8; 32]);

/// One client connection's sessions, by connection and credential.
pub struct ClientConn {
    /// The client's address.
    pub peer: SocketAddr,
    sessions: Mutex<HashMap<SessionKey, Arc<HttpSession>>>,
}

/// Why a request has no session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Authentication or authorization refused it.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The session was stopped (kill, block).
    #[error("{}", .0.message)]
    Stopped(Stop),
}

impl ClientConn {
    /// The sessions of a new client connection from `peer`.
    pub fn new(peer: SocketAddr) -> ClientConn {
        ClientConn {
            peer,
            sessions: Mutex::new(HashMap::new()),
        }
    }

    /// The session `credential` has on `matched`'s connection, opened if needed.
    pub async fn session(
        &self,
        pipeline: &Pipeline,
        matched: &Matched,
        credential: Secret<String>,
    ) -> Result<Arc<HttpSession>, SessionError> {
        let key = (
            matched.connection.name.0.clone(),
            sluice_store::crypto::sha256(credential.expose().as_bytes()),
        );
        let existing = self.sessions.lock().ok().and_then(|m| m.get(&key).cloned());
        if let Some(session) = existing {
            match session.check(pipeline, &credential).await {
                Ok(()) => return Ok(session),
                // A killed session stays refused for the rest of the client connection.
                Err(e @ SessionError::Stopped(_)) => return Err(e),
                Err(e) => {
                    if let Ok(mut m) = self.sessions.lock() {
                        m.remove(&key);
                    }
                    return Err(e);
                }
            }
        }
        let authorized = pipeline
            .authorize(ConnectAttempt {
                protocol: matched.connection.protocol,
                client_addr: self.peer,
                connection: matched.connection.name.0.clone(),
                credential: Credential::Token(credential),
            })
            .await?;
        let session = Arc::new(HttpSession::open(pipeline, authorized));
        if let Ok(mut m) = self.sessions.lock() {
            m.insert(key, session.clone());
        }
        Ok(session)
    }
}

/// One HTTP session.
pub struct HttpSession {
    /// Who and what.
    pub authorized: Authorized,
    /// The connection's policy (guard, masker).
    pub policy: Option<SessionPolicy>,
    /// Connections to the service.
    pub pool: Pool,
    recorder: Mutex<Option<Recorder>>,
    next_query: AtomicU64,
    registration: Registration,
    checked: Mutex<Instant>,
    masked: Mutex<BTreeMap<String, u64>>,
}

impl HttpSession {
    fn open(pipeline: &Pipeline, authorized: Authorized) -> HttpSession {
        let route = Route::of(&authorized.connection);
        let c = &authorized.connection;
        let scheme = match c.kubernetes.is_some() || c.http.as_ref().is_some_and(|h| h.tls) {
            true => "https://",
            false => "http://",
        };
        let recorder = pipeline.start_session(authorized.clone(), format!("{scheme}{route}"));
        let pool = Pool::new(&authorized.connection);
        let registration = pipeline.register_live(&recorder);
        let analyses = Arc::new(sluice_policy::analysis::AnalysisCache::default());
        let policy = pipeline.session_policy(&recorder, &analyses, Arc::default());
        HttpSession {
            authorized,
            policy,
            pool,
            recorder: Mutex::new(Some(recorder)),
            next_query: AtomicU64::new(1),
            registration,
            checked: Mutex::new(Instant::now()),
            masked: Mutex::new(BTreeMap::new()),
        }
    }

    /// The session id.
    pub fn id(&self) -> String {
        self.recorder
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(|r| r.id().0.clone()))
            .unwrap_or_default()
    }

    /// Whether containment stopped the session, and how.
    pub fn stopped(&self) -> Option<Stop> {
        self.registration.stop.borrow().clone()
    }

    /// A receiver that turns `Some` when the session must end.
    pub fn stop_signal(&self) -> tokio::sync::watch::Receiver<Option<Stop>> {
        self.registration.stop.clone()
    }

    /// The next request number.
    pub fn next_query(&self) -> u64 {
        self.next_query.fetch_add(1, Ordering::Relaxed)
    }

    /// Records `event`; `false` when the session's recording is closed.
    pub fn record(&self, event: &SessionEvent) -> bool {
        match self.recorder.lock() {
            Ok(mut r) => match r.as_mut() {
                Some(r) => {
                    // HTTP requests are not held for durability: the strict mode's
                    // guarantee covers statements of the SQL adapters.
                    let _ = r.record(event);
                    true
                }
                None => false,
            },
            Err(_) => false,
        }
    }

    /// Whether the audit trail refuses new statements (`audit.fail_closed`).
    pub fn audit_closed(&self) -> bool {
        self.recorder
            .lock()
            .ok()
            .and_then(|r| r.as_ref().map(Recorder::audit_closed))
            .unwrap_or(false)
    }

    /// Audits `action` in the session's context.
    pub fn audit(&self, action: &str, outcome: Outcome, reason: Option<String>) {
        if let Some(r) = self.recorder.lock().ok().as_ref().and_then(|r| r.as_ref()) {
            r.audit(action, outcome, reason);
        }
    }

    /// Adds masking counts for the session's end.
    pub fn add_masked(&self, counts: BTreeMap<String, u64>) {
        if let Ok(mut m) = self.masked.lock() {
            for (k, v) in counts {
                *m.entry(k).or_default() += v;
            }
        }
    }

    /// Fails when the session was stopped or its credential is no longer good.
    async fn check(
        &self,
        pipeline: &Pipeline,
        credential: &Secret<String>,
    ) -> Result<(), SessionError> {
        if let Some(stop) = self.stopped() {
            return Err(SessionError::Stopped(stop));
        }
        // A grant removed at runtime takes effect at the next request.
        let connection = &self.authorized.connection.name.0;
        if pipeline
            .catalog()
            .grant_for(&self.authorized.identity, connection)
            .is_none()
        {
            return Err(SessionError::Open(OpenError::NoGrant {
                identity: self.authorized.identity.name.clone(),
                connection: connection.clone(),
            }));
        }
        let due = self
            .checked
            .lock()
            .map(|t| t.elapsed() >= RECHECK)
            .unwrap_or(true);
        if due {
            pipeline.authenticate(credential).await?;
            if let Ok(mut t) = self.checked.lock() {
                *t = Instant::now();
            }
        }
        Ok(())
    }
}

impl Drop for HttpSession {
    fn drop(&mut self) {
        let Some(mut recorder) = self.recorder.lock().ok().and_then(|mut r| r.take()) else {
            return;
        };
        let counts = self.masked.lock().map(|m| m.clone()).unwrap_or_default();
        if !counts.is_empty() {
            let _ = recorder.record(&SessionEvent::Masking { counts });
        }
        match self.stopped() {
            Some(stop) => recorder.finish(stop.reason, Some(stop.message)),
            None => recorder.finish(
                EndReason::ClientQuit,
                Some("the client closed its connection".into()),
            ),
        }
    }
}
