//! Authenticate and authorize: a credential and a connection name in, an [`Authorized`]
//! session (or the reason it is refused) out. Every outcome is audited.

use crate::{audit, Pipeline};
use sluice_core::{Connection, Fault, Identity, Outcome, Protocol, Secret, TargetCredential};
use sluice_store::{tokens, StoreError, TokenError};
use std::net::SocketAddr;

/// A client asking to open a connection.
#[derive(Debug)]
pub struct ConnectAttempt {
    /// Protocol of the listener it came in on.
    pub protocol: Protocol,
    /// Client socket address.
    pub client_addr: SocketAddr,
    /// The connection it named.
    pub connection: String,
    /// The credential it presented.
    pub credential: Credential,
}

/// What a client proved who it is with.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A gateway token or an identity provider's JWT (sent as a password).
    Token(Secret<String>),
    /// An SSH public key whose possession the client proved (its `SHA256:…` fingerprint).
    SshKey(String),
    /// An SSH user certificate of the gateway's CA, checked by the adapter: the identity
    /// it names.
    SshCertificate(String),
}

/// An authenticated identity allowed to open a connection.
#[derive(Debug, Clone)]
pub struct Authorized {
    /// Who.
    pub identity: Identity,
    /// What.
    pub connection: Connection,
    /// From where.
    pub client_addr: SocketAddr,
}

/// Why a session could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The credential was not accepted.
    #[error("authentication failed: {0}")]
    Credential(TokenError),
    /// A JWT was presented and not accepted.
    #[error("authentication failed: {0}")]
    Jwt(sluice_oidc::JwtError),
    /// No connection of that name.
    #[error("connection {0:?} does not exist")]
    UnknownConnection(String),
    /// The connection exists but speaks another protocol.
    #[error("connection {connection:?} is a {actual} connection, not {expected}")]
    WrongProtocol {
        /// Connection name.
        connection: String,
        /// Listener protocol.
        expected: &'static str,
        /// Connection protocol.
        actual: &'static str,
    },
    /// The identity has no grant on the connection.
    #[error("identity {identity:?} has no grant on connection {connection:?}")]
    NoGrant {
        /// Identity name.
        identity: String,
        /// Connection name.
        connection: String,
    },
    /// The connection needs an approved access request and the identity has none running.
    #[error("connection {connection:?} needs an approved access request: run `sluice access request {connection} --for 1h --reason \"…\"`")]
    AccessRequired {
        /// Connection name.
        connection: String,
    },
    /// A provider's token names an identity that belongs to someone else here.
    #[error("identity name {0:?} belongs to another identity of this gateway")]
    NameTaken(String),
    /// `audit.fail_closed` is set and the audit trail cannot take more events.
    #[error("the audit trail is unavailable (an audit sink is too far behind) and the gateway is configured to fail closed")]
    AuditUnavailable,
    /// The gateway's store failed.
    #[error("gateway store unavailable")]
    Store(#[from] StoreError),
}

impl OpenError {
    /// Whose fault the refusal is.
    pub fn fault(&self) -> Fault {
        match self {
            OpenError::Store(_) | OpenError::AuditUnavailable => Fault::Gateway,
            OpenError::Jwt(e) => e.fault(),
            _ => Fault::Client,
        }
    }
}

/// The target secret could not be read.
#[derive(Debug, thiserror::Error)]
#[error("target credential for connection {connection:?} is unavailable: {reason}")]
pub struct TargetSecretError {
    /// Connection name.
    pub connection: String,
    /// What is missing (never the secret).
    pub reason: String,
}

impl Pipeline {
    /// Authenticates the credential and checks the grant; audits the outcome.
    pub async fn authorize(&self, attempt: ConnectAttempt) -> Result<Authorized, OpenError> {
        let (identity, result) = self.try_authorize(&attempt).await;
        // An SSH client offers its keys one by one, and a key registered to nobody is not yet a
        // failed login: the SSH listener audits the attempt once, naming every key it refused.
        let offered_key = matches!(
            attempt.credential,
            Credential::SshKey(_) | Credential::SshCertificate(_)
        );
        if offered_key && matches!(result, Err(OpenError::Credential(TokenError::Unknown))) {
            return result;
        }
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::Failure
        };
        let mut event = match &identity {
            Some(i) => audit::by(i, "auth.connect", outcome),
            None => audit::event("auth.connect", outcome),
        };
        event.source = Some(attempt.client_addr.to_string());
        event.connection = Some(attempt.connection.clone());
        event.protocol = Some(attempt.protocol.as_str().to_string());
        if let Err(e) = &result {
            event.reason = Some(e.to_string());
            event.fault = Some(e.fault());
        }
        self.audit(event);
        result
    }

    /// The identity (when the credential was good) and the verdict.
    async fn try_authorize(
        &self,
        attempt: &ConnectAttempt,
    ) -> (Option<Identity>, Result<Authorized, OpenError>) {
        let identity = match self.identify(&attempt.credential).await {
            Ok(identity) => identity,
            Err(e) => return (None, Err(e)),
        };
        let result = match self.check_grant(&identity, attempt) {
            Ok(_) if self.audit_closed() => Err(OpenError::AuditUnavailable),
            Ok(a) => self.check_access(a).await,
            Err(e) => Err(e),
        };
        (Some(identity), result)
    }

    /// The identity a credential proves; blocked identities are refused.
    pub async fn identify(&self, credential: &Credential) -> Result<Identity, OpenError> {
        match credential {
            Credential::Token(token) => self.authenticate(token).await,
            Credential::SshKey(fingerprint) => self.authenticate_key(fingerprint).await,
            Credential::SshCertificate(name) => self.authenticate_name(name).await,
        }
    }

    /// Turns a presented credential (a gateway token, or a JWT from a trusted identity
    /// provider) into an identity. Blocked identities are refused either way.
    pub async fn authenticate(&self, credential: &Secret<String>) -> Result<Identity, OpenError> {
        if !sluice_oidc::looks_like_jwt(credential.expose()) {
            let cred = credential.clone();
            return match self
                .store()
                .run(move |c| tokens::authenticate(c, &cred))
                .await
            {
                Ok(Ok(identity)) => Ok(identity),
                Ok(Err(e)) => Err(OpenError::Credential(e)),
                Err(e) => Err(OpenError::Store(e)),
            };
        }
        let identity = match self.identity_providers() {
            Some(v) => v
                .verify(credential.expose())
                .await
                .map_err(OpenError::Jwt)?,
            None => {
                return Err(OpenError::Jwt(sluice_oidc::JwtError::UntrustedIssuer(
                    "(no identity provider is configured)".into(),
                )))
            }
        };
        self.admit_external(identity).await
    }

    /// The identity an SSH public key (by fingerprint) is registered to; blocked identities
    /// are refused.
    pub async fn authenticate_key(&self, fingerprint: &str) -> Result<Identity, OpenError> {
        let fp = fingerprint.to_string();
        self.stored_identity(move |c| sluice_store::ssh_keys::identity_by_key(c, &fp))
            .await
    }

    /// The identity a gateway-signed SSH certificate names; blocked identities are refused.
    pub async fn authenticate_name(&self, name: &str) -> Result<Identity, OpenError> {
        let name = name.to_string();
        self.stored_identity(move |c| sluice_store::ssh_keys::identity_by_name(c, &name))
            .await
    }

    async fn stored_identity<F>(&self, lookup: F) -> Result<Identity, OpenError>
    where
        F: FnOnce(&sluice_store::Db) -> Result<Result<Identity, TokenError>, StoreError>
            + Send
            + 'static,
    {
        match self.store().run(move |c| lookup(c)).await {
            Ok(Ok(identity)) => Ok(identity),
            Ok(Err(e)) => Err(OpenError::Credential(e)),
            Err(e) => Err(OpenError::Store(e)),
        }
    }

    /// Lets in an identity a trusted provider vouched for: remembers it (so it can be listed
    /// and blocked) and refuses it if blocked.
    pub async fn admit_external(&self, identity: Identity) -> Result<Identity, OpenError> {
        let id = identity.clone();
        match self
            .store()
            .run(move |c| tokens::remember_external(c, &id))
            .await?
        {
            tokens::External::Admitted => Ok(identity),
            tokens::External::Blocked => Err(OpenError::Credential(TokenError::Blocked)),
            tokens::External::NameTaken => Err(OpenError::NameTaken(identity.name)),
        }
    }

    fn check_grant(
        &self,
        identity: &Identity,
        attempt: &ConnectAttempt,
    ) -> Result<Authorized, OpenError> {
        let catalog = self.catalog();
        let connection = catalog
            .connection(&attempt.connection)
            .ok_or_else(|| OpenError::UnknownConnection(attempt.connection.clone()))?;
        if connection.protocol != attempt.protocol {
            return Err(OpenError::WrongProtocol {
                connection: attempt.connection.clone(),
                expected: attempt.protocol.as_str(),
                actual: connection.protocol.as_str(),
            });
        }
        if catalog.grant_for(identity, &attempt.connection).is_none() {
            return Err(OpenError::NoGrant {
                identity: identity.name.clone(),
                connection: attempt.connection.clone(),
            });
        }
        Ok(Authorized {
            identity: identity.clone(),
            connection: connection.clone(),
            client_addr: attempt.client_addr,
        })
    }

    /// On connections with time-boxed access, requires a running approved request.
    async fn check_access(&self, authorized: Authorized) -> Result<Authorized, OpenError> {
        let connection = &authorized.connection.name.0;
        match self
            .access_window(&authorized.identity.name, connection)
            .await?
        {
            None | Some(Some(_)) => Ok(authorized),
            Some(None) => Err(OpenError::AccessRequired {
                connection: connection.clone(),
            }),
        }
    }

    /// Reads the password the gateway presents to the connection's target.
    pub async fn target_password(
        &self,
        connection: &Connection,
    ) -> Result<Option<Secret<String>>, TargetSecretError> {
        let fail = |reason: String| TargetSecretError {
            connection: connection.name.0.clone(),
            reason,
        };
        match &connection.credential {
            TargetCredential::None => Ok(None),
            TargetCredential::Env(var) => std::env::var(var)
                .map(|v| Some(Secret::new(v)))
                .map_err(|_| fail(format!("environment variable {var} is not set"))),
            TargetCredential::File(path) => tokio::fs::read_to_string(path)
                .await
                .map(|v| Some(Secret::new(v.trim_end_matches(['\r', '\n']).to_string())))
                .map_err(|e| fail(format!("cannot read {path}: {}", e.kind()))),
        }
    }

    /// Audits a session that was authorized but whose target could not be opened.
    pub fn target_failed(&self, authorized: &Authorized, reason: &str) {
        let mut e = audit::by(&authorized.identity, "session.start", Outcome::Failure);
        e.source = Some(authorized.client_addr.to_string());
        e.connection = Some(authorized.connection.name.0.clone());
        e.protocol = Some(authorized.connection.protocol.as_str().to_string());
        e.reason = Some(reason.to_string());
        e.fault = Some(Fault::Target);
        self.audit(e);
    }
}
