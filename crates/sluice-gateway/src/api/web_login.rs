//! Browser sign-in for `http` connections: the OpenID Connect authorization code flow with
//! PKCE, run by the gateway on the service's own host (or under its path prefix), so the
//! session cookie belongs to that origin.
//!
//! - `GET …/.sluice/login?return=PATH`: to the provider's sign-in page.
//! - `GET …/.sluice/callback?code=…&state=…`: the code traded for an ID token, the identity
//!   admitted like `sluice login`'s, a gateway token set as the `sluice_session` cookie
//!   (`Secure`, `HttpOnly`, `SameSite=Lax`), and back to PATH.
//! - `POST …/.sluice/logout`: the cookie's token revoked and the cookie cleared.
//!
//! The provider must accept `https://HOST[/PREFIX]/.sluice/callback` as a redirect URI of
//! the login client (`identity_providers[].login.client_id`, a public client).

use super::exchange::issue_session_token;
use super::ApiState;
use base64::Engine;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, LOCATION, SET_COOKIE};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use sluice_core::{Fault, Outcome};
use sluice_http::body::RespBody;
use sluice_http::headers::{percent_encode, SESSION_COOKIE};
use sluice_http::proxy::json_error;
use sluice_http::{HttpProxy, Matched};
use sluice_pipeline::{audit, OpenError};
use sluice_store::crypto::{random_bytes, sha256};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cookie binding a sign-in in progress to the browser that started it.
const LOGIN_COOKIE: &str = "sluice_login";
/// How long a started sign-in may take.
const PENDING_TTL: Duration = Duration::from_secs(600);
/// Most sign-ins in progress at once (older ones are dropped first).
const MAX_PENDING: usize = 10_000;

/// The proxy and the sign-ins in progress.
#[derive(Clone)]
pub struct WebLogin {
    /// The HTTP proxy.
    pub proxy: HttpProxy,
    /// The Kubernetes API proxy (`/kube/<connection>`).
    pub kube: sluice_kube::KubeProxy,
    state: ApiState,
    pending: Arc<Mutex<HashMap<String, Pending>>>,
    discovery: Arc<Mutex<HashMap<String, Arc<Value>>>>,
}

/// A sign-in between the redirect to the provider and its callback.
struct Pending {
    verifier: String,
    issuer: String,
    client_id: String,
    redirect_uri: String,
    back_to: String,
    started: Instant,
}

impl WebLogin {
    /// Sign-in for the gateway of `state`.
    pub fn new(state: ApiState) -> WebLogin {
        WebLogin {
            proxy: HttpProxy::new(state.pipeline.clone()),
            kube: sluice_kube::KubeProxy::new(state.pipeline.clone()),
            state,
            pending: Arc::default(),
            discovery: Arc::default(),
        }
    }

    /// The API's state.
    pub fn state(&self) -> &ApiState {
        &self.state
    }

    /// Serves `…/.sluice/PAGE` of an HTTP connection.
    pub async fn handle(
        &self,
        page: &str,
        matched: &Matched,
        host: Option<String>,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Response<RespBody> {
        let site = Site {
            prefix: &matched.prefix,
            connection: Some(&matched.connection.name.0),
            cookie: SESSION_COOKIE,
        };
        self.serve(&site, page, host, peer, req).await
    }

    /// Serves `/console/.sluice/PAGE`: sign-in to the console (and the API from its pages).
    pub async fn handle_console(
        &self,
        page: &str,
        host: Option<String>,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Response<RespBody> {
        self.serve(&CONSOLE, page, host, peer, req).await
    }

    async fn serve(
        &self,
        site: &Site<'_>,
        page: &str,
        host: Option<String>,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Response<RespBody> {
        let query: HashMap<String, String> = req.uri().query().map(parse_query).unwrap_or_default();
        match (req.method().as_str(), page) {
            ("GET", "login") => self.login(site, host, &query).await,
            ("GET", "callback") => self.callback(site, peer, &query, req.headers()).await,
            ("POST", "logout") => self.logout(site, peer, req).await,
            _ => json_error(StatusCode::NOT_FOUND, "sluice: no such page".into()),
        }
    }

    async fn login(
        &self,
        matched: &Site<'_>,
        host: Option<String>,
        query: &HashMap<String, String>,
    ) -> Response<RespBody> {
        let Some(provider) = self
            .state
            .pipeline
            .identity_providers()
            .and_then(|v| v.configs().find(|p| p.login.is_some()).cloned())
        else {
            return json_error(
                StatusCode::NOT_FOUND,
                "sluice: no identity provider is configured for signing in".into(),
            );
        };
        let Some(login) = &provider.login else {
            return json_error(StatusCode::NOT_FOUND, "sluice: no sign-in".into());
        };
        let Some(host) = host else {
            return json_error(
                StatusCode::BAD_REQUEST,
                "sluice: the request names no host".into(),
            );
        };
        let discovery = match self.discover(&provider.issuer).await {
            Ok(d) => d,
            Err(e) => return provider_down(&self.state, e),
        };
        let Some(authorize) = discovery["authorization_endpoint"].as_str() else {
            return provider_down(&self.state, "no authorization_endpoint".into());
        };
        let back_to = query
            .get("return")
            .filter(|r| local_path(r))
            .cloned()
            .unwrap_or_else(|| format!("{}/", matched.prefix));
        let state = b64(&random_bytes::<24>());
        let verifier = b64(&random_bytes::<32>());
        let challenge = b64(&sha256(verifier.as_bytes()));
        let redirect_uri = format!("https://{host}{}/.sluice/callback", matched.prefix);
        let location = format!(
            "{authorize}?response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}&code_challenge={challenge}&code_challenge_method=S256",
            percent_encode(&login.client_id),
            percent_encode(&redirect_uri),
            percent_encode(&login.scopes.join(" ")),
        );
        if let Ok(mut p) = self.pending.lock() {
            p.retain(|_, v| v.started.elapsed() < PENDING_TTL);
            if p.len() >= MAX_PENDING {
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "sluice: too many sign-ins in progress; try again in a few minutes".into(),
                );
            }
            p.insert(
                state.clone(),
                Pending {
                    verifier,
                    issuer: provider.issuer.clone(),
                    client_id: login.client_id.clone(),
                    redirect_uri,
                    back_to,
                    started: Instant::now(),
                },
            );
        }
        // The state is bound to this browser: a callback URL someone else started does not
        // sign it in (login CSRF).
        let cookie = format!(
            "{LOGIN_COOKIE}={state}; Path={}; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
            cookie_path(matched),
            PENDING_TTL.as_secs()
        );
        redirect(&location, &[cookie])
    }

    async fn callback(
        &self,
        matched: &Site<'_>,
        peer: SocketAddr,
        query: &HashMap<String, String>,
        headers: &hyper::HeaderMap,
    ) -> Response<RespBody> {
        let state = query.get("state");
        let bound = state.is_some_and(|s| cookie(headers, LOGIN_COOKIE).as_deref() == Some(s));
        if !bound {
            return self
                .sign_in_failed(peer, "this browser did not start the sign-in; start again");
        }
        let pending = state
            .and_then(|s| self.pending.lock().ok()?.remove(s))
            .filter(|p| p.started.elapsed() < PENDING_TTL);
        let Some(pending) = pending else {
            return self.sign_in_failed(
                peer,
                "the sign-in expired or was not started here; start again",
            );
        };
        if let Some(error) = query.get("error") {
            let why = query.get("error_description").unwrap_or(error);
            return self.sign_in_failed(peer, &format!("the identity provider refused: {why}"));
        }
        let Some(code) = query.get("code").cloned() else {
            return self.sign_in_failed(peer, "the identity provider sent no code");
        };
        let id_token = match self.redeem(&pending, code).await {
            Ok(t) => t,
            Err(e) => return provider_down(&self.state, e),
        };
        let verified = match self.state.pipeline.identity_providers() {
            Some(v) => match v.verify_id_token(&id_token).await {
                Ok(i) => self.state.pipeline.admit_external(i).await,
                Err(e) => Err(OpenError::Jwt(e)),
            },
            None => return self.sign_in_failed(peer, "no identity provider is configured"),
        };
        let identity = match verified {
            Ok(i) => i,
            Err(e) => return self.sign_in_failed(peer, &e.to_string()),
        };
        let (info, token, ttl) = match issue_session_token(&self.state, &identity).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "browser sign-in: store error");
                return json_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "sluice: the gateway's store is unavailable".into(),
                );
            }
        };
        let mut e = audit::by(&identity, "auth.login", Outcome::Success);
        e.source = Some(peer.to_string());
        e.target = Some(info.id.clone());
        e.connection = matched.connection.map(str::to_string);
        e.protocol = matched.connection.map(|_| "http".to_string());
        self.state.pipeline.audit(e);
        let cookie = format!(
            "{}={}; Path={}; Max-Age={}; Secure; HttpOnly; SameSite=Lax",
            matched.cookie,
            token.expose(),
            cookie_path(matched),
            ttl.as_secs()
        );
        let done = format!(
            "{LOGIN_COOKIE}=; Path={}; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
            cookie_path(matched)
        );
        redirect(&pending.back_to, &[cookie, done])
    }

    async fn logout(
        &self,
        matched: &Site<'_>,
        peer: SocketAddr,
        req: Request<Incoming>,
    ) -> Response<RespBody> {
        let token = cookie(req.headers(), matched.cookie).map(sluice_core::Secret::new);
        let identity = match &token {
            Some(t) => self.state.pipeline.authenticate(t).await.ok(),
            None => None,
        };
        if let Some((identity, id)) = identity.and_then(|i| Some((i.clone(), i.token_id?))) {
            let key = id.clone();
            let revoked = self
                .state
                .pipeline
                .store()
                .run(move |c| sluice_store::tokens::revoke(c, &key))
                .await;
            let mut e = audit::by(&identity, "auth.logout", Outcome::Success);
            e.source = Some(peer.to_string());
            e.connection = matched.connection.map(str::to_string);
            e.target = Some(id);
            if revoked.is_err() {
                e.outcome = Outcome::Failure;
            }
            self.state.pipeline.audit(e);
        }
        let clear = format!(
            "{}=; Path={}; Max-Age=0; Secure; HttpOnly; SameSite=Lax",
            matched.cookie,
            cookie_path(matched)
        );
        redirect(&format!("{}/", matched.prefix), &[clear])
    }

    /// The provider's discovery document, fetched once.
    async fn discover(&self, issuer: &str) -> Result<Arc<Value>, String> {
        if let Some(d) = self
            .discovery
            .lock()
            .ok()
            .and_then(|m| m.get(issuer).cloned())
        {
            return Ok(d);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc: Value = tokio::task::spawn_blocking(move || {
            ureq::get(&url)
                .call()
                .map_err(|e| e.to_string())?
                .into_json::<Value>()
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        let doc = Arc::new(doc);
        if let Ok(mut m) = self.discovery.lock() {
            m.insert(issuer.to_string(), doc.clone());
        }
        Ok(doc)
    }

    /// Trades the code for the ID token at the provider's token endpoint.
    async fn redeem(&self, pending: &Pending, code: String) -> Result<String, String> {
        let discovery = self.discover(&pending.issuer).await?;
        let endpoint = discovery["token_endpoint"]
            .as_str()
            .ok_or("the provider has no token_endpoint")?
            .to_string();
        let (redirect_uri, client_id, verifier) = (
            pending.redirect_uri.clone(),
            pending.client_id.clone(),
            pending.verifier.clone(),
        );
        tokio::task::spawn_blocking(move || {
            let answer: Value = ureq::post(&endpoint)
                .send_form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &redirect_uri),
                    ("client_id", &client_id),
                    ("code_verifier", &verifier),
                ])
                .map_err(|e| match e {
                    ureq::Error::Status(code, r) => format!(
                        "the token endpoint answered {code}: {}",
                        r.into_string().unwrap_or_default()
                    ),
                    other => other.to_string(),
                })?
                .into_json()
                .map_err(|e| e.to_string())?;
            answer["id_token"]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| "the provider sent no ID token".to_string())
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// A sign-in that cannot complete: audited, and said plainly.
    fn sign_in_failed(&self, peer: SocketAddr, why: &str) -> Response<RespBody> {
        let mut e = audit::event("auth.login", Outcome::Failure);
        e.source = Some(peer.to_string());
        e.reason = Some(why.to_string());
        e.fault = Some(Fault::Client);
        self.state.pipeline.audit(e);
        json_error(
            StatusCode::UNAUTHORIZED,
            format!("sluice: sign-in failed: {why}"),
        )
    }
}

/// The provider could not be reached or answered nonsense: audited as its fault.
fn provider_down(state: &ApiState, why: String) -> Response<RespBody> {
    let mut e = audit::event("auth.login", Outcome::Failure);
    e.reason = Some(format!("identity provider: {why}"));
    e.fault = Some(Fault::Target);
    state.pipeline.audit(e);
    json_error(
        StatusCode::BAD_GATEWAY,
        format!("sluice: the identity provider is unavailable: {why}"),
    )
}

/// A 302 to `location`, setting `cookies`.
fn redirect(location: &str, cookies: &[String]) -> Response<RespBody> {
    let mut r = sluice_http::proxy::json(
        StatusCode::FOUND,
        &serde_json::json!({ "location": location }),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    for v in cookies.iter().filter_map(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().append(SET_COOKIE, v);
    }
    r
}

/// The value of cookie `name`.
pub(crate) fn cookie(headers: &hyper::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// The cookie's path: the prefix, or the whole host.
fn cookie_path<'a>(site: &Site<'a>) -> &'a str {
    if site.cookie == CONSOLE_COOKIE || site.prefix.is_empty() {
        // The console's cookie also goes with its pages' API calls.
        "/"
    } else {
        site.prefix
    }
}

/// Where a browser signs in: an HTTP connection (its host or path prefix), or the console.
pub struct Site<'a> {
    /// The path prefix pages live under (`""` for a host of its own).
    pub prefix: &'a str,
    /// The HTTP connection, when it is one (for the audit trail).
    pub connection: Option<&'a str>,
    /// The session cookie's name.
    pub cookie: &'static str,
}

/// The cookie holding a console session (a gateway token).
pub const CONSOLE_COOKIE: &str = "sluice_console";

/// The console's sign-in: pages under `/console`; its cookie also authenticates the API
/// (for the console's own requests, see `auth.rs`).
const CONSOLE: Site<'static> = Site {
    prefix: "/console",
    connection: None,
    cookie: CONSOLE_COOKIE,
};

/// Whether `r` is a path on this host (not `//other`, `/\\other`, or anything a browser
/// would read as another host after dropping control characters).
fn local_path(r: &str) -> bool {
    r.starts_with('/')
        && !r.starts_with("//")
        && !r.contains('\\')
        && !r.chars().any(char::is_control)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `a=1&b=x%20y` → pairs, percent-decoded.
fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (unescape(k), unescape(v)))
        .collect()
}

fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'+', _) => out.push(b' '),
            (b'%', Some(b)) => {
                out.push(b);
                i += 2;
            }
            (b, _) => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_on_this_host_are_returned_to() {
        assert!(local_path("/app/whoami?x=1"));
        for other in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "https://evil.example",
            "",
        ] {
            assert!(!local_path(other), "{other:?}");
        }
    }
}
