//! The MySQL listener: accepts clients and runs each session through the phases
//! handshake → authorize → open target → relay → end.

use crate::codec::caps;
use crate::handshake::{self, ClientHello, Handshake, HandshakeConfig};
use crate::kill::KillMap;
use crate::relay::{self, KillScope, SessionState};
use crate::tracker::{Tracker, TrackerSettings};
use crate::upstream::{self, TargetSpec, Upstream, UpstreamError};
use sluice_core::{EndReason, Fault, Outcome, Protocol, SessionEvent};
use sluice_pipeline::authorize::{ConnectAttempt, Credential};
use sluice_pipeline::{audit, Authorized, OpenError, Pipeline};
use sluice_policy::analysis::AnalysisCache;
use sluice_store::TokenError;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tracing::{info, warn, Instrument};

/// Settings of a MySQL listener.
pub type ListenerSettings = sluice_pipeline::accept::ListenerSettings<HandshakeConfig>;

struct Ctx {
    pipeline: Pipeline,
    analyses: Arc<AnalysisCache>,
    settings: ListenerSettings,
    shutdown: watch::Receiver<bool>,
    kills: Arc<KillMap>,
}

/// Accepts clients until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    pipeline: Pipeline,
    settings: ListenerSettings,
    shutdown: watch::Receiver<bool>,
) {
    let ctx = Arc::new(Ctx {
        pipeline,
        analyses: Arc::new(AnalysisCache::default()),
        settings,
        shutdown: shutdown.clone(),
        kills: Arc::new(KillMap::default()),
    });
    sluice_pipeline::accept::accept_loop(listener, shutdown, move |tcp, peer| {
        let ctx = ctx.clone();
        let span = tracing::info_span!("mysql", client = %peer, session = tracing::field::Empty, identity = tracing::field::Empty);
        tokio::spawn(handle_client(tcp, peer, ctx).instrument(span));
    })
    .await;
}

async fn handle_client(tcp: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>) {
    let id = ctx.kills.next_id();
    match handshake::run(tcp, &ctx.settings.handshake, id).await {
        Ok(Handshake::Session(hello)) => run_session(*hello, peer, id, &ctx).await,
        Ok(Handshake::Closed) => {}
        Err((e, stream)) => {
            warn!(error = %e, "login refused");
            let mut event = audit::event("auth.connect", Outcome::Failure);
            event.source = Some(peer.to_string());
            event.protocol = Some(Protocol::Mysql.as_str().to_string());
            event.reason = Some(e.to_string());
            event.fault = Some(Fault::Client);
            ctx.pipeline.audit(event);
            if let Some((mut s, seq)) = stream {
                let (code, state) = e.code();
                handshake::refuse(&mut s, seq, code, state, &format!("sluice: {e}")).await;
            }
        }
    }
}

/// MySQL error number, SQLSTATE and message for a refused session.
fn refusal(e: &OpenError) -> (u16, &'static str, String) {
    match e {
        OpenError::Credential(TokenError::Unknown) => (
            1045,
            "28000",
            "Access denied: the token is not valid".into(),
        ),
        OpenError::Credential(TokenError::Blocked) => (
            1045,
            "28000",
            "sluice: this identity is blocked; ask an administrator".into(),
        ),
        OpenError::Credential(t) => (1045, "28000", format!("Access denied: {t}")),
        OpenError::Jwt(sluice_oidc::JwtError::Provider(why)) => (
            1045,
            "28000",
            format!("sluice: cannot check the token: identity provider unavailable ({why})"),
        ),
        OpenError::Jwt(j) => (1045, "28000", format!("Access denied: {j}")),
        OpenError::NameTaken(_) => (1045, "28000", format!("sluice: {e}")),
        OpenError::UnknownConnection(_) | OpenError::WrongProtocol { .. } => {
            (1044, "42000", format!("sluice: {e}"))
        }
        OpenError::NoGrant { .. } | OpenError::AccessRequired { .. } => {
            (1044, "42000", format!("Access denied: {e}"))
        }
        OpenError::AuditUnavailable => (1053, "08S01", format!("sluice: {e}")),
        OpenError::Store(_) => (
            1105,
            "HY000",
            "sluice: internal error, see the gateway log".into(),
        ),
    }
}

async fn run_session(mut hello: ClientHello, peer: SocketAddr, id: u32, ctx: &Ctx) {
    let attempt = ConnectAttempt {
        protocol: Protocol::Mysql,
        client_addr: peer,
        connection: hello.connection.clone(),
        credential: Credential::Token(hello.token.clone()),
    };
    let authorized = match ctx.pipeline.authorize(attempt).await {
        Ok(a) => a,
        Err(e) => {
            info!(error = %e, "session refused");
            let (code, state, msg) = refusal(&e);
            handshake::refuse(&mut hello.stream, hello.seq, code, state, &msg).await;
            return;
        }
    };
    tracing::Span::current().record("identity", authorized.identity.name.as_str());
    let upstream = match open(&authorized, &hello.login, hello.database.clone(), ctx).await {
        Ok(u) => u,
        Err(e) => {
            let reason = e.to_string();
            warn!(%reason, "target unavailable");
            ctx.pipeline.target_failed(&authorized, &reason);
            let code = match &e {
                UpstreamError::Refused { code, .. } => *code,
                // ER_CONNECT_TO_FOREIGN_DATA_SOURCE: the client library keeps 2003 for itself.
                _ => 1429,
            };
            handshake::refuse(
                &mut hello.stream,
                hello.seq,
                code,
                "08S01",
                &format!("sluice: {reason}"),
            )
            .await;
            return;
        }
    };
    let recorder = ctx
        .pipeline
        .start_session(authorized, upstream.target.clone());
    tracing::Span::current().record("session", recorder.id().0.as_str());
    info!(target_version = %upstream.version, "session started");
    if let Err(e) = handshake::accept(&mut hello.stream, hello.seq).await {
        recorder.finish(
            sluice_core::EndReason::ClientDisconnected,
            Some(e.to_string()),
        );
        return;
    }
    let recording = ctx.pipeline.recording();
    let authorized = recorder.authorized();
    let registration = ctx.pipeline.register_live(&recorder);
    let withdraw = Arc::new(Notify::new());
    let policy = ctx
        .pipeline
        .session_policy(&recorder, &ctx.analyses, withdraw.clone());
    let masker = policy.as_ref().and_then(|p| p.policy.masker.clone());
    let mut tracker = Tracker::new(
        TrackerSettings {
            max_rows: recording.max_rows,
            max_value_len: recording.max_value_len,
        },
        upstream.capabilities & hello.login.capabilities & caps::GATEWAY,
    );
    tracker.set_masker(masker.clone());
    let identity = authorized.identity.name.clone();
    let killable = ctx.kills.register(
        id,
        upstream.target.clone(),
        upstream.connection_id,
        &identity,
        withdraw,
    );
    let kills = KillScope {
        map: ctx.kills.clone(),
        identity,
        target: upstream.target,
    };
    let thread = upstream.connection_id;
    let mut state = SessionState { tracker, recorder };
    let end = relay::run(
        hello.stream,
        upstream.stream,
        &mut state,
        policy,
        kills,
        ctx.shutdown.clone(),
        registration.stop.clone(),
    )
    .await;
    drop(killable);
    drop(registration);
    if matches!(
        end.reason,
        EndReason::Killed | EndReason::IdentityBlocked | EndReason::AccessExpired
    ) {
        // Stop whatever the target is still running for this session.
        match kill_on_target(state.recorder.authorized(), &hello.login, thread, ctx).await {
            Ok(()) => info!("target thread killed"),
            Err(e) => warn!(error = %e, "kill on the target failed"),
        }
    }
    info!(reason = end.reason.as_str(), "session ended");
    if let Some(m) = masker {
        let counts = state.tracker.mask_counts().by_name(m.custom_names());
        if !counts.is_empty() {
            let _ = state.recorder.record(&SessionEvent::Masking { counts });
        }
    }
    state.recorder.finish(end.reason, end.detail);
}

/// Ends target thread `thread` (and the statement it runs) from a second target session.
async fn kill_on_target(
    authorized: &Authorized,
    login: &crate::codec::handshake::HandshakeResponse,
    thread: u32,
    ctx: &Ctx,
) -> Result<(), UpstreamError> {
    let mut second = open(authorized, login, None, ctx).await?;
    upstream::run_query(&mut second.stream, &format!("KILL CONNECTION {thread}")).await
}

/// Opens a target session for `authorized`, mirroring the client's `login`.
async fn open(
    authorized: &Authorized,
    login: &crate::codec::handshake::HandshakeResponse,
    database: Option<String>,
    ctx: &Ctx,
) -> Result<Upstream, UpstreamError> {
    let conn = &authorized.connection;
    let password = ctx
        .pipeline
        .target_password(conn)
        .await
        .map_err(|e| UpstreamError::Credential(e.to_string()))?;
    let database = conn.database.clone().or(database);
    let user = conn.username.clone().unwrap_or_else(|| "root".into());
    let route = sluice_pipeline::Route::of(conn);
    let spec = TargetSpec {
        route: &route,
        pipeline: &ctx.pipeline,
        user: &user,
        password: password.as_ref(),
        database: database.as_deref(),
        client: login,
        timeout: ctx.settings.connect_timeout,
    };
    upstream::connect(&spec).await
}
