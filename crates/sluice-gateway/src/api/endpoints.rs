//! The route table: each endpoint's method, path, handler, the role it needs and what it
//! does, written once. The router and the OpenAPI document are both made from it, so they
//! cannot disagree; the integration tests call every endpoint with every role and check
//! the answer against the role written here.

use super::auth::{authenticate, Authenticated, Need};
use super::ApiState;
use super::{
    admin, agents, audit, containment, exchange, exec, login, reviews, sessions, ssh, terminal,
};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt;

/// Who may call an endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No credential (health, sign-in providers, token exchange with its own proof).
    Public,
    /// An agent, by its enrollment token or key proof.
    Agent,
    /// Any identity (`user`); what it sees may be limited to its own.
    User,
    /// Admins and auditors.
    Reader,
    /// Admins.
    Admin,
}

impl Access {
    /// The roles that may call, by name.
    pub fn roles(self) -> &'static [&'static str] {
        match self {
            Access::Public | Access::Agent => &[],
            Access::User => &["admin", "auditor", "approver", "user"],
            Access::Reader => &["admin", "auditor"],
            Access::Admin => &["admin"],
        }
    }
}

/// One endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Endpoint {
    /// `get`, `post`, `delete`.
    pub method: &'static str,
    /// Path, with `{name}` parameters.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// Which part of the API it belongs to.
    pub tag: &'static str,
    /// What it does.
    pub summary: &'static str,
    /// The JSON body it reads, if any.
    pub body: Option<SchemaFn>,
    /// Its query parameters, if any (an object's properties).
    pub query: Option<SchemaFn>,
    /// The JSON it answers, if it answers JSON.
    pub answer: Option<SchemaFn>,
}

/// Makes the JSON Schema of a type (a reference into the document's components).
pub type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// The schema of `T`, as a reference.
fn schema_of<T: schemars::JsonSchema>(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
    g.subschema_for::<T>()
}

macro_rules! schema {
    () => {
        None
    };
    ($t:ty) => {
        Some(schema_of::<$t> as SchemaFn)
    };
}

macro_rules! endpoints {
    ($( $method:ident $path:expr => $handler:path, $access:ident, $tag:literal, $summary:literal
        $(, body $body:ty)? $(, query $query:ty)? $(, answer $answer:ty)?; )*) => {
        /// Every endpoint of the API.
        pub const ENDPOINTS: &[Endpoint] = &[
            $( Endpoint {
                method: stringify!($method),
                path: $path,
                access: Access::$access,
                tag: $tag,
                summary: $summary,
                body: schema!($($body)?),
                query: schema!($($query)?),
                answer: schema!($($answer)?),
            }, )*
        ];

        /// `router` with every endpoint routed to its handler, behind the gate of its role.
        pub fn routes(router: Router<ApiState>, state: &ApiState) -> Router<ApiState> {
            router $(
                .route(
                    $path,
                    axum::routing::$method($handler).layer(axum::middleware::from_fn_with_state(
                        Gate { state: state.clone(), access: Access::$access, streams: $tag == "exec" },
                        gate,
                    )),
                )
            )*
        }
    };
}

endpoints! {
    get "/healthz" => health, Public, "meta", "Liveness: `ok`.";
    get "/api/v1/openapi.json" => super::openapi::document, Public, "meta", "This API's OpenAPI 3.1 document.";
    get "/api/v1/whoami" => admin::whoami, User, "meta", "The calling identity and its roles.", answer admin::WhoAmI;
    post "/api/v1/service-accounts" => admin::create_service_account, Admin, "identities", "Create a service account; answers its first token.", body admin::NewServiceAccount, answer admin::IssuedToken;
    get "/api/v1/tokens" => admin::list_tokens, Reader, "identities", "List tokens (never their values).", answer Vec<sluice_store::TokenInfo>;
    post "/api/v1/tokens/{id}/revoke" => admin::revoke_token, Admin, "identities", "Revoke a token.", answer sluice_store::TokenInfo;
    get "/api/v1/connections" => admin::list_connections, Reader, "catalog", "List connections.", answer Vec<sluice_core::Connection>;
    post "/api/v1/connections" => admin::add_connection, Admin, "catalog", "Add a connection at runtime.", body crate::config::ConnectionConfig, answer sluice_core::Connection;
    get "/api/v1/connections/{name}" => admin::show_connection, Reader, "catalog", "Show a connection.", answer sluice_core::Connection;
    delete "/api/v1/connections/{name}" => admin::remove_connection, Admin, "catalog", "Remove a runtime connection.";
    get "/api/v1/grants" => admin::list_grants, Reader, "catalog", "List grants.", answer Vec<sluice_core::Grant>;
    post "/api/v1/grants" => admin::add_grant, Admin, "catalog", "Grant a group a connection.", body admin::GrantRequest;
    delete "/api/v1/grants" => admin::remove_grant, Admin, "catalog", "Remove a runtime grant.", query admin::GrantRequest;
    get "/api/v1/agents" => agents::list, Reader, "agents", "List agents: version, connected since, streams, bytes.", answer Vec<agents::AgentView>;
    post "/api/v1/agents" => agents::create, Admin, "agents", "Add an agent; answers its one-time enrollment token.", body agents::NewAgent, answer agents::CreatedAgent;
    post "/api/v1/agents/enroll" => agents::enroll, Agent, "agents", "An agent exchanges its enrollment token for its identity key.", body agents::Enrollment;
    get sluice_tunnel::proto::TUNNEL_PATH => agents::tunnel, Agent, "agents", "An agent's tunnel (upgrade to `sluice-tunnel/1`).";
    post "/api/v1/agents/{name}/revoke" => agents::revoke, Admin, "agents", "Revoke an agent and disconnect it.", answer sluice_store::agents::AgentRecord;
    get "/api/v1/sessions" => sessions::list, User, "sessions", "List sessions, newest first (a user: its own).", query sluice_store::SessionFilter, answer Vec<sluice_store::SessionRow>;
    get "/api/v1/sessions/{id}" => sessions::show, User, "sessions", "A session with its hash-chain check (a user: its own).", answer sessions::SessionDetail;
    get "/api/v1/sessions/{id}/events" => sessions::events, User, "sessions", "A recording as JSON lines (a user: its own).";
    get "/api/v1/sessions/{id}/terminal" => terminal::frames, User, "sessions", "A recorded terminal as screen frames for a player (a user: its own).", query terminal::ChannelQuery, answer sluice_terminal::replay::Replay;
    get "/api/v1/sessions/{id}/asciicast" => terminal::asciicast, User, "sessions", "A recorded terminal as an asciicast v2 download (a user: its own).", query terminal::ChannelQuery;
    get "/api/v1/live/sessions" => terminal::live, Reader, "sessions", "Sessions live on this gateway, with the events and bytes each recorded so far.", answer Vec<sluice_pipeline::live::LiveSession>;
    get "/api/v1/live/sessions/{id}/terminal" => terminal::watch, User, "sessions", "Server-sent events: a live session's terminal as screen frames (a user: its own).";
    get "/api/v1/live/sessions/{id}" => sessions::watch, User, "sessions", "Server-sent events: a live session's events as they are recorded, resumable with `after` or `Last-Event-ID` (a user: its own).", query sessions::AfterQuery;
    post "/api/v1/sessions/{id}/kill" => containment::kill_session, Admin, "containment", "End a live session now.";
    get "/api/v1/identities" => containment::list, Reader, "identities", "List identities and blocks.", answer Vec<sluice_store::IdentityInfo>;
    post "/api/v1/identities/{name}/block" => containment::block, Admin, "containment", "Block an identity: its sessions end, new ones are refused.", body containment::BlockRequest;
    post "/api/v1/identities/{name}/unblock" => containment::unblock, Admin, "containment", "Unblock an identity.";
    get "/api/v1/identities/{name}/keys" => ssh::list_keys, Reader, "ssh", "List an identity's SSH keys.", answer Vec<sluice_store::ssh_keys::IdentityKey>;
    post "/api/v1/identities/{name}/keys" => ssh::add_key, Admin, "ssh", "Register an SSH public key to an identity.", body ssh::NewKey, answer sluice_store::ssh_keys::IdentityKey;
    delete "/api/v1/identities/{name}/keys/{fingerprint}" => ssh::remove_key, Admin, "ssh", "Remove an identity's SSH key.";
    get "/api/v1/ssh/gateway-key" => ssh::gateway_key, Reader, "ssh", "The gateway's SSH public keys (toward targets, host key, CAs).", answer ssh::GatewayKeys;
    post "/api/v1/ssh/certificates" => ssh::issue_certificate, User, "ssh", "A short-lived SSH user certificate for the caller's key.", body ssh::CertificateRequest, answer ssh::IssuedCertificate;
    post "/api/v1/ssh/known-hosts/{connection}/forget" => ssh::forget_host_key, Admin, "ssh", "Forget a target's recorded host key.";
    get "/api/v1/audit" => sessions::audit, Reader, "audit", "The newest audit events.", query sluice_store::AuditFilter, answer Vec<sluice_core::AuditEvent>;
    get "/api/v1/signing-keys" => sessions::signing_keys, Reader, "audit", "Public keys that verify session manifests and checkpoints.";
    post "/api/v1/signing-keys/rotate" => audit::rotate_key, Admin, "audit", "Rotate the signing key (old public keys stay valid).";
    get "/api/v1/audit/chain" => audit::chain, Reader, "audit", "A segment of the hash-chained audit log.", query audit::ChainQuery, answer Vec<sluice_store::audit_log::ChainedEvent>;
    post "/api/v1/audit/attestations" => audit::attest, Reader, "audit", "Sign an evidence bundle's listing.", body audit::AttestRequest;
    get "/api/v1/audit/checkpoints" => audit::checkpoints, Reader, "audit", "Signed audit checkpoints.", query audit::CheckpointQuery, answer Vec<sluice_store::audit_log::Checkpoint>;
    post "/api/v1/audit/checkpoints" => audit::seal, Admin, "audit", "Sign a checkpoint now.", answer Option<sluice_store::audit_log::Checkpoint>;
    get "/api/v1/holds" => audit::list_holds, Reader, "audit", "List legal holds.", answer Vec<sluice_store::retention::Hold>;
    post "/api/v1/holds" => audit::add_hold, Admin, "audit", "Put a session or identity on legal hold.", body audit::NewHold, answer sluice_store::retention::Hold;
    delete "/api/v1/holds/{id}" => audit::remove_hold, Admin, "audit", "Release a legal hold.", answer sluice_store::retention::Hold;
    post "/api/v1/retention/run" => audit::run_retention, Admin, "audit", "Apply the retention policy now.", answer audit::RetentionRun;
    get "/api/v1/metrics" => audit::metrics, Reader, "audit", "Delivery metrics (Prometheus text).";
    get "/api/v1/reviews" => reviews::list, User, "reviews", "Reviews the caller may see: its own, those it may decide (all for admins, auditors, approvers).", query reviews::ListQuery, answer Vec<sluice_core::Review>;
    get "/api/v1/reviews/{id}" => reviews::show, User, "reviews", "A review.", answer sluice_core::Review;
    post "/api/v1/reviews/{id}/approve" => reviews::approve, User, "reviews", "Approve a review (its approver groups, or the approver role when it names none).", body reviews::DecideBody, answer sluice_core::Review;
    post "/api/v1/reviews/{id}/deny" => reviews::deny, User, "reviews", "Deny a review.", body reviews::DecideBody, answer sluice_core::Review;
    get "/api/v1/live/reviews" => reviews::follow, User, "reviews", "Server-sent events: each review the caller may see, as it is created or decided.";
    post "/api/v1/access-requests" => reviews::request_access, User, "reviews", "Ask for time-boxed access to a connection.", body reviews::AccessBody, answer sluice_core::Review;
    post "/api/v1/exec/{connection}" => exec::exec, User, "exec", "Run a command connection's program (NDJSON stream; the caller needs a grant).";
    get "/api/v1/exec/{connection}/terminal" => exec::terminal, User, "exec", "A terminal session of a command connection (upgrade to `sluice-terminal/1`).";
    post "/api/v1/token/exchange" => exchange::exchange, Public, "identities", "Exchange a trusted identity provider's JWT for a gateway token.";
    get "/api/v1/login" => login::providers, Public, "identities", "The identity providers people sign in with.";
    post "/api/v1/logout" => login::logout, User, "identities", "Revoke the caller's session token.";
}

async fn health() -> &'static str {
    "ok"
}

/// A route's role check.
#[derive(Clone)]
struct Gate {
    state: ApiState,
    access: Access,
    /// The handler streams the request body (exec's stdin): it is not read ahead.
    streams: bool,
}

/// Largest request body the API reads ahead of its handler.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Lets a request through when its caller holds the route's role (the handler then finds
/// the caller in the request's extensions); otherwise answers 401 or 403 after reading what
/// is left of the request's body. Bodies are read whole before the handler runs (except
/// where it streams them): an HTTP/2 client whose body a handler leaves unread would get a
/// reset stream instead of the answer.
async fn gate(State(g): State<Gate>, req: Request, next: Next) -> Response {
    let (mut parts, body) = req.into_parts();
    let need = match g.access {
        Access::Public | Access::Agent => None,
        Access::User => Some(Need::Any),
        Access::Reader => Some(Need::Reader),
        Access::Admin => Some(Need::Admin),
    };
    if let Some(need) = need {
        match authenticate(&mut parts, &g.state, need).await {
            Ok((who, roles)) => {
                parts.extensions.insert(Authenticated(who, roles));
            }
            Err(refusal) => {
                drain(body).await;
                return refusal.into_response();
            }
        }
    }
    let upgrade = parts.headers.contains_key(axum::http::header::UPGRADE);
    let body = match g.streams || upgrade {
        true => body,
        false => match axum::body::to_bytes(body, MAX_BODY).await {
            Ok(bytes) => Body::from(bytes),
            Err(_) => {
                return super::ApiError(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    format!("the request body is larger than {MAX_BODY} bytes"),
                )
                .into_response()
            }
        },
    };
    next.run(Request::from_parts(parts, body)).await
}

/// Reads up to 64 KiB of `body` for at most a second, so that the client reads the answer
/// that follows rather than a reset.
pub(crate) async fn drain(mut body: Body) {
    let read = async {
        let mut seen = 0;
        while seen < 64 * 1024 {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), read).await;
}
