//! The PostgreSQL listener: accepts clients and runs each session through the phases
//! handshake → authorize → open target → relay → end.

use crate::analyze::AnalysisCache;
use crate::cancel::CancelMap;
use crate::codec::encode;
use crate::handshake::{self, ClientHello, Handshake, HandshakeConfig};
use crate::relay::{self, SessionState};
use crate::tracker::{Tracker, TrackerSettings};
use crate::upstream::{self, TargetSpec, Upstream};
use bytes::BytesMut;
use sluice_core::{EndReason, Fault, Outcome, Protocol, SessionEvent};
use sluice_pipeline::authorize::{ConnectAttempt, Credential};
use sluice_pipeline::{audit, Authorized, OpenError, Pipeline, Route};
use sluice_store::TokenError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{info, warn, Instrument};

/// Settings of a PostgreSQL listener.
pub type ListenerSettings = sluice_pipeline::accept::ListenerSettings<HandshakeConfig>;

/// Everything a client task needs.
struct Ctx {
    pipeline: Pipeline,
    analyses: Arc<AnalysisCache>,
    settings: ListenerSettings,
    cancels: CancelMap,
    shutdown: watch::Receiver<bool>,
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
        cancels: CancelMap::default(),
        shutdown: shutdown.clone(),
    });
    sluice_pipeline::accept::accept_loop(listener, shutdown, move |tcp, peer| {
        let ctx = ctx.clone();
        let span = tracing::info_span!("pg", client = %peer, session = tracing::field::Empty, identity = tracing::field::Empty);
        tokio::spawn(handle_client(tcp, peer, ctx).instrument(span));
    })
    .await;
}

async fn handle_client(tcp: TcpStream, peer: SocketAddr, ctx: Arc<Ctx>) {
    match handshake::run(tcp, &ctx.settings.handshake).await {
        Ok(Handshake::Session(hello)) => run_session(hello, peer, &ctx).await,
        Ok(Handshake::Cancel { pid, secret }) => {
            match ctx.cancels.forward(&ctx.pipeline, pid, secret).await {
                Ok(true) => info!("cancel request forwarded"),
                Ok(false) => warn!("cancel request with unknown key ignored"),
                Err(e) => warn!(error = %e, "cancel request could not be forwarded"),
            }
        }
        Ok(Handshake::Closed) => {}
        Err((e, stream)) => {
            warn!(error = %e, "startup refused");
            let mut event = audit::event("auth.connect", Outcome::Failure);
            event.source = Some(peer.to_string());
            event.protocol = Some(Protocol::Postgres.as_str().to_string());
            event.reason = Some(e.to_string());
            event.fault = Some(Fault::Client);
            ctx.pipeline.audit(event);
            if let Some(mut s) = stream {
                handshake::refuse(&mut s, e.sqlstate(), &format!("sluice: {e}")).await;
            }
        }
    }
}

/// SQLSTATE and message for a refused session.
fn refusal(e: &OpenError) -> (&'static str, String) {
    match e {
        OpenError::Credential(TokenError::Unknown) => (
            "28P01",
            "password authentication failed: the token is not valid".into(),
        ),
        OpenError::Credential(TokenError::Blocked) => (
            "28000",
            "sluice: this identity is blocked; ask an administrator".into(),
        ),
        OpenError::Credential(t) => ("28P01", format!("password authentication failed: {t}")),
        OpenError::Jwt(sluice_oidc::JwtError::Provider(why)) => (
            "28000",
            format!("sluice: cannot check the token: identity provider unavailable ({why})"),
        ),
        OpenError::Jwt(j) => ("28P01", format!("password authentication failed: {j}")),
        OpenError::NameTaken(_) => ("28000", format!("sluice: {e}")),
        OpenError::UnknownConnection(_) | OpenError::WrongProtocol { .. } => {
            ("3D000", format!("sluice: {e}"))
        }
        OpenError::NoGrant { .. } | OpenError::AccessRequired { .. } => {
            ("42501", format!("permission denied: {e}"))
        }
        OpenError::AuditUnavailable => ("57P03", format!("sluice: {e}")),
        OpenError::Store(_) => (
            "XX000",
            "sluice: internal error, see the gateway log".into(),
        ),
    }
}

async fn run_session(mut hello: ClientHello, peer: SocketAddr, ctx: &Ctx) {
    let attempt = ConnectAttempt {
        protocol: Protocol::Postgres,
        client_addr: peer,
        connection: hello.connection.clone(),
        credential: Credential::Token(hello.token.clone()),
    };
    let authorized = match ctx.pipeline.authorize(attempt).await {
        Ok(a) => a,
        Err(e) => {
            info!(error = %e, "session refused");
            let (code, msg) = refusal(&e);
            handshake::refuse(&mut hello.stream, code, &msg).await;
            return;
        }
    };
    tracing::Span::current().record("identity", authorized.identity.name.as_str());
    let route = Route::of(&authorized.connection);
    let upstream = match open_target(&authorized, &route, &hello, ctx).await {
        Ok(u) => u,
        Err(reason) => {
            warn!(%reason, "target unavailable");
            ctx.pipeline.target_failed(&authorized, &reason);
            handshake::refuse(&mut hello.stream, "08006", &format!("sluice: {reason}")).await;
            return;
        }
    };
    let recorder = ctx.pipeline.start_session(authorized, upstream.target);
    tracing::Span::current().record("session", recorder.id().0.as_str());
    info!("session started");
    let key = ctx
        .cancels
        .register(route.clone(), upstream.key.0, upstream.key.1);
    let mut greeting = BytesMut::with_capacity(upstream.greeting.len() + 64);
    encode::auth_ok(&mut greeting);
    greeting.extend_from_slice(&upstream.greeting);
    encode::backend_key_data(&mut greeting, key.pid, key.secret);
    encode::raw(&mut greeting, b'Z', b"I");
    if let Err(e) = hello.stream.write_all(&greeting).await {
        recorder.finish(
            sluice_core::EndReason::ClientDisconnected,
            Some(e.to_string()),
        );
        return;
    }
    let recording = ctx.pipeline.recording();
    let registration = ctx.pipeline.register_live(&recorder);
    let policy = ctx
        .pipeline
        .session_policy(&recorder, &ctx.analyses, key.withdraw.clone());
    let mut tracker = Tracker::new(TrackerSettings {
        max_rows: recording.max_rows,
        max_value_len: recording.max_value_len,
    });
    tracker.set_masker(policy.as_ref().and_then(|p| p.policy.masker.clone()));
    let masker = policy.as_ref().and_then(|p| p.policy.masker.clone());
    let state = Mutex::new(SessionState { tracker, recorder });
    let end = relay::run(
        hello.stream,
        upstream.stream,
        &state,
        policy,
        ctx.shutdown.clone(),
        registration.stop.clone(),
    )
    .await;
    if matches!(
        end.reason,
        EndReason::Killed | EndReason::IdentityBlocked | EndReason::AccessExpired
    ) {
        // Stop whatever the target is still running for this session.
        match crate::cancel::send(&ctx.pipeline, &route, upstream.key.0, upstream.key.1).await {
            Ok(()) => info!("in-flight statement cancelled on the target"),
            Err(e) => warn!(error = %e, "cancel on the target failed"),
        }
    }
    drop(key);
    drop(registration);
    info!(reason = end.reason.as_str(), "session ended");
    let mut state = match state.into_inner() {
        Ok(s) => s,
        Err(p) => p.into_inner(),
    };
    if let Some(m) = masker {
        let counts = state.tracker.mask_counts().by_name(m.custom_names());
        if !counts.is_empty() {
            let _ = state.recorder.record(&SessionEvent::Masking { counts });
        }
    }
    state.recorder.finish(end.reason, end.detail);
}

async fn open_target(
    authorized: &Authorized,
    route: &Route,
    hello: &ClientHello,
    ctx: &Ctx,
) -> Result<Upstream, String> {
    let conn = &authorized.connection;
    let password = ctx
        .pipeline
        .target_password(conn)
        .await
        .map_err(|e| e.to_string())?;
    let database = conn
        .database
        .clone()
        .or_else(|| hello.database.clone())
        .unwrap_or_else(|| "postgres".into());
    let user = conn.username.clone().unwrap_or_else(|| "postgres".into());
    let spec = TargetSpec {
        route,
        pipeline: &ctx.pipeline,
        user: &user,
        database: &database,
        password: password.as_ref(),
        options: &hello.options,
        timeout: ctx.settings.connect_timeout,
    };
    upstream::connect(&spec).await.map_err(|e| e.to_string())
}
