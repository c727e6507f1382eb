//! The SSH server side of one client connection: public-key login mapped to an identity,
//! the grant checked, the target opened, then each channel the client opens paired with a
//! channel on the target.

use crate::session::Shared;
use crate::upstream::{self, TargetHandler};
use crate::{certs, keys};
use crate::{channel, forward, login, Ctx};
use russh::keys::Certificate;
use russh::server::{self, Auth, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use sluice_core::{Outcome, Protocol};
use sluice_pipeline::authorize::{ConnectAttempt, Credential};
use sluice_pipeline::live::Registration;
use sluice_pipeline::OpenError;
use sluice_store::TokenError;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;
use tracing::{info, warn, Instrument};

/// Where a client connection stands.
pub(crate) enum ConnState {
    /// Not logged in yet.
    Authenticating,
    /// Logged in, but may not open the connection: every channel says why.
    Refused(String),
    /// The target session is open.
    Open(Box<Open>),
    /// Logged in as `jump`: channels to a connection name run a login of their own.
    Jump,
    /// The session ended.
    Done,
}

/// An open session.
pub(crate) struct Open {
    pub shared: Arc<Shared>,
    pub target: Arc<russh::client::Handle<TargetHandler>>,
    pub target_gone: Arc<Notify>,
    /// Where channels the target opens toward the client go, once the client's handle is known.
    pub inbound: Arc<std::sync::OnceLock<forward::Inbound>>,
    /// Keeps the session in the live list (kill, block) until dropped.
    pub registration: Registration,
}

/// One client connection's handler.
pub(crate) struct ClientHandler {
    pub ctx: Arc<Ctx>,
    pub peer: SocketAddr,
    pub state: Arc<Mutex<ConnState>>,
    /// Why each key or certificate tried logged nobody in (audited once if no login
    /// succeeds).
    pub failed_logins: Vec<String>,
    /// The connection's span (client, session, identity) for everything the handler runs.
    pub span: tracing::Span,
    /// Set for a login inside a jump channel: the connection it goes to.
    pub jump_to: Option<String>,
}

impl ClientHandler {
    fn set(&self, state: ConnState) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
    }

    fn open(&self) -> Option<(Arc<Shared>, Arc<russh::client::Handle<TargetHandler>>)> {
        match &*self.state.lock().ok()? {
            ConnState::Open(o) => Some((o.shared.clone(), o.target.clone())),
            _ => None,
        }
    }

    fn refusal(&self) -> Option<String> {
        match &*self.state.lock().ok()? {
            ConnState::Refused(m) => Some(m.clone()),
            _ => None,
        }
    }

    /// Logs in with `credential`; `failure` is what the audit says if it logs nobody in.
    async fn try_log_in(
        &mut self,
        user: &str,
        credential: Credential,
        failure: String,
    ) -> Result<Auth, russh::Error> {
        match self.log_in(user, credential).await {
            Ok(()) => {
                self.failed_logins.clear();
                Ok(Auth::Accept)
            }
            Err(()) => {
                self.failed_logins.push(failure);
                Ok(Auth::reject())
            }
        }
    }

    /// Authorizes the identity of `credential` for the connection in `user` and opens the
    /// target. `Err` means the credential logs nobody in.
    async fn log_in(&mut self, user: &str, credential: Credential) -> Result<(), ()> {
        let wanted = match &self.jump_to {
            Some(destination) => login::through_jump(user, destination),
            None => login::parse(user),
        };
        if self.jump_to.is_none() && wanted.connection == login::JUMP && wanted.login.is_none() {
            return self.log_in_to_jump(&credential).await;
        }
        let attempt = ConnectAttempt {
            protocol: Protocol::Ssh,
            client_addr: self.peer,
            connection: wanted.connection.to_string(),
            credential,
        };
        let authorized = match self.ctx.pipeline.authorize(attempt).await {
            Ok(a) => a,
            Err(OpenError::Credential(TokenError::Unknown)) => return Err(()),
            Err(e) => {
                info!(error = %e, "session refused");
                self.set(ConnState::Refused(refusal_text(&e)));
                return Ok(());
            }
        };
        self.span
            .record("identity", authorized.identity.name.as_str());
        let conn = &authorized.connection;
        let options = conn.ssh.clone().unwrap_or_default();
        let username = conn.username.clone().unwrap_or_default();
        let chosen = login::choose(wanted.login, &username, &options.logins);
        let chosen = match (chosen, &self.jump_to) {
            (None, Some(_)) => login::choose(None, &username, &options.logins),
            (c, _) => c,
        };
        let Some(target_login) = chosen else {
            let why = format!(
                "sluice: login {:?} is not allowed on connection {:?} (allowed: {})",
                wanted.login.unwrap_or_default(),
                conn.name.0,
                std::iter::once(username.as_str())
                    .chain(options.logins.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            self.ctx.pipeline.target_failed(&authorized, &why);
            self.set(ConnState::Refused(why));
            return Ok(());
        };
        let target_login = target_login.to_string();
        let target = match upstream::connect(
            &self.ctx.pipeline,
            &authorized,
            &target_login,
            &self.ctx.keys,
            self.ctx.settings.connect_timeout,
        )
        .await
        {
            Ok(t) => t,
            Err(e) => {
                let reason = e.to_string();
                warn!(%reason, "target unavailable");
                self.ctx.pipeline.target_failed(&authorized, &reason);
                self.set(ConnState::Refused(format!(
                    "sluice: cannot open connection {}: {reason}",
                    conn.name.0
                )));
                return Ok(());
            }
        };
        let recorder = self.ctx.pipeline.start_session(
            authorized.clone(),
            format!("{target_login}@{}", target.describe),
        );
        self.span.record("session", recorder.id().0.as_str());
        info!(login = %target_login, "session started");
        let registration = self.ctx.pipeline.register_live(&recorder);
        let policy = self.ctx.pipeline.session_policy(
            &recorder,
            &self.ctx.analyses,
            Arc::new(Notify::new()),
        );
        let shared = Arc::new(Shared::new(
            recorder,
            policy,
            options,
            self.ctx.settings.output_cap,
            registration.stop.clone(),
        ));
        self.set(ConnState::Open(Box::new(Open {
            shared,
            target: Arc::new(target.handle),
            target_gone: target.gone,
            inbound: target.inbound,
            registration,
        })));
        Ok(())
    }
}

impl ClientHandler {
    /// A login that only jumps on: the identity is known, connections are opened (and
    /// authorized) per jump channel.
    async fn log_in_to_jump(&mut self, credential: &Credential) -> Result<(), ()> {
        match self.ctx.pipeline.identify(credential).await {
            Ok(identity) => {
                self.span.record("identity", identity.name.as_str());
                info!("logged in to jump");
                self.set(ConnState::Jump);
                Ok(())
            }
            Err(OpenError::Credential(TokenError::Unknown)) => Err(()),
            Err(e) => {
                info!(error = %e, "jump refused");
                self.set(ConnState::Refused(refusal_text(&e)));
                Ok(())
            }
        }
    }

    /// Audits a refused request of the open session.
    fn audit_refused(&self, action: &str, reason: String) {
        if let Some((shared, _)) = self.open() {
            shared.audit(action, Outcome::Failure, Some(reason));
        }
    }

    fn jumping(&self) -> bool {
        self.state
            .lock()
            .is_ok_and(|s| matches!(*s, ConnState::Jump))
    }
}

impl Drop for ClientHandler {
    fn drop(&mut self) {
        let never_in = self
            .state
            .lock()
            .is_ok_and(|s| matches!(*s, ConnState::Authenticating));
        if never_in && !self.failed_logins.is_empty() {
            crate::audit_failed_login(&self.ctx.pipeline, self.peer, &self.failed_logins);
        }
    }
}

/// What the client is told when its session is refused.
fn refusal_text(e: &OpenError) -> String {
    match e {
        OpenError::Credential(TokenError::Blocked) => {
            "sluice: this identity is blocked; ask an administrator".into()
        }
        OpenError::Store(_) => "sluice: internal error, see the gateway log".into(),
        e => format!("sluice: {e}"),
    }
}

impl server::Handler for ClientHandler {
    type Error = russh::Error;

    async fn auth_publickey_offered(
        &mut self,
        _user: &str,
        _offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        // Every key may go on to prove possession: a certificate's key is offered here too,
        // indistinguishable from a plain one, and is judged once signed.
        Ok(Auth::Accept)
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fp = keys::fingerprint(key.public_key);
        let span = self.span.clone();
        let credential = Credential::SshKey(fp.clone());
        let failure = format!("{fp} is registered to no identity");
        self.try_log_in(user, credential, failure)
            .instrument(span)
            .await
    }

    async fn auth_openssh_certificate(
        &mut self,
        user: &str,
        cert: &Certificate,
    ) -> Result<Auth, Self::Error> {
        let span = self.span.clone();
        let fp = certs::certified_fingerprint(cert);
        let ca = self.ctx.keys.user_ca.public_key();
        match certs::check(ca, cert, certs::unix_now()) {
            Ok(name) => {
                let failure = format!("the certificate of {name} ({fp}) names no identity");
                let credential = Credential::SshCertificate(name);
                self.try_log_in(user, credential, failure)
                    .instrument(span)
                    .await
            }
            Err(e) => {
                let _in_span = span.enter();
                info!(error = %e, "certificate refused");
                self.failed_logins
                    .push(format!("certificate {:?} ({fp}): {e}", cert.key_id()));
                Ok(Auth::reject())
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        // Containment: a kill, a block or the target going away ends the connection with a
        // message OpenSSH prints.
        let Some(open) = self.state.lock().ok().and_then(|s| match &*s {
            ConnState::Open(o) => {
                Some((o.shared.clone(), o.target_gone.clone(), o.inbound.clone()))
            }
            _ => None,
        }) else {
            return Ok(());
        };
        let (shared, gone, inbound) = open;
        let mut stop = shared.stop.clone();
        let handle = session.handle();
        let _ = inbound.set(forward::Inbound {
            shared,
            client: handle.clone(),
        });
        let span = self.span.clone();
        let watch = async move {
            let message = tokio::select! {
                s = stop.wait_for(Option::is_some) => match s.ok().and_then(|s| s.clone()) {
                    Some(s) => format!("sluice: {}", s.message),
                    None => return,
                },
                _ = gone.notified() => "sluice: the target closed the connection".to_string(),
            };
            let _ = handle
                .disconnect(russh::Disconnect::ByApplication, message, "en".into())
                .await;
        };
        tokio::spawn(watch.instrument(span));
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: server::ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let handle = session.handle();
        if let Some((shared, target)) = self.open() {
            // Accepted at once, in order; the target's channel is opened by the relay (the
            // client's requests wait in the channel until it is).
            reply.accept().await;
            let relay = async move {
                match target.channel_open_session().await {
                    Ok(tc) => channel::run(shared, channel, tc, handle).await,
                    Err(e) => {
                        let why = format!("sluice: the target refused a session channel: {e}");
                        channel::refuse_all(channel, handle, why).await
                    }
                }
            };
            tokio::spawn(relay.instrument(self.span.clone()));
        } else if let Some(why) = self.refusal() {
            reply.accept().await;
            tokio::spawn(channel::refuse_all(channel, handle, why));
        }
        Ok(())
    }

    // Channel requests are answered here, at once and in order: russh can only answer the
    // latest request of a channel. The channel's relay does the work (and refuses a command
    // the guard refuses with its reason and exit status 1).

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let allowed = self
            .open()
            .is_some_and(|(shared, _)| channel::env_allowed(&shared.options.env, name));
        if allowed {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _command: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if name == "sftp" {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        // Off unless the connection allows it: the target would reach the client's keys. The
        // channel's relay passes an allowed request on to the target.
        let allowed = self
            .open()
            .is_some_and(|(shared, _)| shared.options.agent_forwarding);
        if !allowed {
            self.audit_refused(
                "ssh.agent_forward",
                "agent forwarding is not allowed on this connection".into(),
            );
        }
        Ok(allowed)
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        let Some((shared, target)) = self.open() else {
            return Ok(false);
        };
        Ok(forward::listen_on_target(&shared, &target, address, port).await)
    }

    async fn cancel_tcpip_forward(
        &mut self,
        address: &str,
        port: u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        match self.open() {
            Some((shared, target)) if shared.options.remote_forwarding => {
                Ok(target.cancel_tcpip_forward(address, port).await.is_ok())
            }
            _ => Ok(false),
        }
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host: &str,
        port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.jumping() {
            // `ssh -J jump@gateway CONNECTION`: the client speaks SSH to CONNECTION inside this
            // channel, and the gateway is that SSH server too.
            reply.accept().await;
            let login = crate::jump(self.ctx.clone(), self.peer, channel, host.to_string());
            tokio::spawn(login.instrument(self.span.clone()));
            return Ok(());
        }
        let Some((shared, target)) = self.open() else {
            let reason = self.refusal().unwrap_or_default();
            reply
                .reject(ChannelOpenFailure::Other { code: 1, reason })
                .await;
            return Ok(());
        };
        let destination = format!("{host}:{port}");
        let port16 = u16::try_from(port).unwrap_or(0);
        if !forward::allowed(&shared.forward_to, host, port16) {
            let reason =
                format!("sluice: forwarding to {destination} is not allowed on this connection");
            shared.audit("ssh.forward", Outcome::Failure, Some(reason.clone()));
            reply
                .reject(ChannelOpenFailure::Other { code: 1, reason })
                .await;
            return Ok(());
        }
        let (host, orig) = (host.to_string(), originator_address.to_string());
        let span = self.span.clone();
        let relay = async move {
            match target
                .channel_open_direct_tcpip(host, port, orig, originator_port)
                .await
            {
                Ok(tc) => {
                    reply.accept().await;
                    forward::run(shared, channel, tc, "forward", Some(destination)).await;
                }
                Err(e) => {
                    reply
                        .reject(ChannelOpenFailure::Other {
                            code: 2,
                            reason: format!("sluice: the target could not open {destination}: {e}"),
                        })
                        .await
                }
            }
        };
        tokio::spawn(relay.instrument(span));
        Ok(())
    }
}
