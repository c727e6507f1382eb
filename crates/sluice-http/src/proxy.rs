//! One request through the proxy: identity, session, guard, the service's credential in
//! place of the client's, the answer masked and recorded.

use crate::body::{self, Capture, Exchange, ReqBody, RespBody, ResponseBody, Tee};
use crate::guard::{self, Judged};
use crate::headers;
use crate::route::Matched;
use crate::session::{ClientConn, HttpSession, SessionError};
use crate::HttpProxy;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use sluice_core::{Fault, HttpExchange, Secret};
use sluice_mask::MaskCounts;
use sluice_policy::Verdict;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// Largest request body held to match an approval, and largest JSON answer masked whole.
const MAX_BUFFERED: usize = 1024 * 1024;
/// Bodies recorded per exchange when the connection sets no cap.
const DEFAULT_RECORDED_BODY: u64 = 64 * 1024;

impl HttpProxy {
    /// Handles `req`, which `matched` routes to a connection, from client connection `conn`.
    pub async fn handle(
        &self,
        conn: &ClientConn,
        matched: Matched,
        mut req: Request<Incoming>,
    ) -> Response<RespBody> {
        let Some((credential, from_cookie)) = headers::credential(req.headers()) else {
            let r = self.sign_in(&matched, &req);
            return drained(req.into_body(), r).await;
        };
        // Rules match paths as written: a path a service would read differently (`//`,
        // dot segments, encoded letters or slashes) is refused rather than guessed at.
        if let Err(why) = headers::normalized(req.uri().path()) {
            let r = json_error(StatusCode::BAD_REQUEST, format!("sluice: {why}"));
            return drained(req.into_body(), r).await;
        }
        // A browser's cookie is sent by other sites' pages too: changes and WebSockets
        // must come from the service's own origin.
        if from_cookie && !headers::same_origin(&req) {
            let r = json_error(
                StatusCode::FORBIDDEN,
                "sluice: a request from another site cannot use this sign-in".into(),
            );
            return drained(req.into_body(), r).await;
        }
        let session = match conn
            .session(&self.pipeline, &matched, Secret::new(credential))
            .await
        {
            Ok(s) => s,
            Err(e) => return drained(req.into_body(), refused(&e)).await,
        };
        let client_upgrade =
            headers::is_websocket(req.headers()).then(|| hyper::upgrade::on(&mut req));
        let (parts, incoming) = req.into_parts();
        let path = matched.inner_path(parts.uri.path()).to_string();
        let path_and_query = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let line = format!("{} {path_and_query}", parts.method);
        let masker = session
            .policy
            .as_ref()
            .and_then(|p| p.policy.masker.clone());
        let shown = masker
            .as_ref()
            .and_then(|m| m.mask_str(&line, &mut MaskCounts::default()))
            .unwrap_or_else(|| line.clone());
        let verdict = guard::verdict(&session, &line, parts.method.as_str(), &path);
        // A request under review is matched to its approval by its body too: hold it.
        let (body, key): (ReqBody, _) = if matches!(verdict, Verdict::Review(_)) {
            match Limited::new(incoming, MAX_BUFFERED).collect().await {
                Ok(b) => {
                    let bytes = b.to_bytes();
                    let key = guard::ticket_key(&session, &line, &bytes);
                    (full(bytes), Some(key))
                }
                Err(_) => {
                    return json_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "sluice: the request body is too large to hold for review".into(),
                    )
                }
            }
        } else {
            (incoming.map_err(Into::into).boxed(), None)
        };
        match guard::judge(&self.pipeline, &self.tickets, &session, shown, verdict, key).await {
            Judged::Run(id) => {
                let cap = usize::try_from(
                    matched
                        .connection
                        .http
                        .as_ref()
                        .and_then(|h| h.max_body)
                        .unwrap_or(DEFAULT_RECORDED_BODY),
                )
                .unwrap_or(usize::MAX);
                let forward = Forward {
                    session,
                    matched,
                    query: id,
                    path_and_query,
                    masker,
                    cap,
                };
                forward
                    .run(&self.pipeline, parts, body, client_upgrade, conn)
                    .await
            }
            Judged::Denied { rule, reason } => {
                let mut r = json_error(
                    StatusCode::FORBIDDEN,
                    format!("sluice: denied by rule \"{rule}\": {reason}"),
                );
                if let Ok(v) = HeaderValue::from_str(&rule) {
                    r.headers_mut().insert("x-sluice-rule", v);
                }
                drained(body, r).await
            }
            Judged::Held { review, message } => {
                let body = serde_json::json!({
                    "status": "pending_review",
                    "review": review,
                    "message": message,
                });
                json(StatusCode::ACCEPTED, &body)
            }
            Judged::Unavailable(message) => json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("sluice: {message}"),
            ),
        }
    }

    /// No credential: browsers are sent to sign in, other clients get 401.
    fn sign_in(&self, matched: &Matched, req: &Request<Incoming>) -> Response<RespBody> {
        let browser = req.method() == hyper::Method::GET
            && req
                .headers()
                .get(hyper::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
        if browser && self.browser_login() {
            let back = req
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string();
            let location = format!(
                "{}/.sluice/login?return={}",
                matched.prefix,
                headers::percent_encode(&back)
            );
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::FOUND;
            if let Ok(v) = HeaderValue::from_str(&location) {
                r.headers_mut().insert(hyper::header::LOCATION, v);
            }
            return r;
        }
        let mut r = json_error(
            StatusCode::UNAUTHORIZED,
            "sluice: sign in, or send a gateway token or identity provider JWT as a bearer token"
                .into(),
        );
        r.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sluice\""),
        );
        r
    }

    /// Whether an identity provider lets people sign in through the browser.
    fn browser_login(&self) -> bool {
        self.pipeline
            .identity_providers()
            .is_some_and(|v| v.configs().any(|p| p.login.is_some()))
    }
}

/// A judged request on its way to the service.
struct Forward {
    session: Arc<HttpSession>,
    matched: Matched,
    query: u64,
    path_and_query: String,
    masker: Option<Arc<sluice_mask::Masker>>,
    cap: usize,
}

impl Forward {
    async fn run(
        self,
        pipeline: &sluice_pipeline::Pipeline,
        parts: hyper::http::request::Parts,
        body: ReqBody,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        conn: &ClientConn,
    ) -> Response<RespBody> {
        let connection = &self.matched.connection;
        let secret = match pipeline.target_password(connection).await {
            Ok(s) => s,
            Err(e) => {
                pipeline.target_failed(&self.session.authorized, &e.to_string());
                return json_error(StatusCode::BAD_GATEWAY, format!("sluice: {e}"));
            }
        };
        let mask_client = self.masker.as_ref().is_some_and(|m| m.mask_client());
        let mut out = hyper::Request::builder()
            .method(parts.method.clone())
            .uri(self.path_and_query.as_str())
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap_or_else(|_| hyper::Request::new(()).into_parts().0);
        out.headers = headers::toward_service(
            &parts,
            connection,
            &self.session.authorized.identity.name,
            conn.peer,
            &self.matched.prefix,
            secret.as_ref(),
            mask_client,
        );
        let request_capture = Capture::default();
        let exchange = Exchange {
            record: HttpExchange {
                query: self.query,
                method: parts.method.to_string(),
                path: self
                    .masker
                    .as_ref()
                    .and_then(|m| m.mask_str(&self.path_and_query, &mut MaskCounts::default()))
                    .unwrap_or_else(|| self.path_and_query.clone()),
                request_headers: headers::recorded(&parts.headers, connection),
                ..HttpExchange::default()
            },
            request: request_capture.clone(),
            request_type: headers::content_type(&parts.headers),
            response: Capture::default(),
            response_type: None,
            masker: self.masker.clone(),
            started: Instant::now(),
            complete: false,
            session: self.session.clone(),
            redact: None,
        };
        let body = Tee::new(body, request_capture, self.cap).boxed();
        let upgrade = client_upgrade.is_some();
        let mut answer = match self
            .session
            .pool
            .send(pipeline, hyper::Request::from_parts(out, body), upgrade)
            .await
        {
            Ok(a) => a,
            Err(e) => {
                let mut exchange = exchange;
                exchange.record.error = Some(e.to_string());
                warn!(error = %e, "the service did not answer");
                let mut ev = sluice_pipeline::audit::by(
                    &self.session.authorized.identity,
                    "http.upstream",
                    sluice_core::Outcome::Failure,
                );
                ev.connection = Some(connection.name.0.clone());
                ev.reason = Some(e.to_string());
                ev.fault = Some(Fault::Target);
                pipeline.audit(ev);
                return json_error(
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "sluice: the service of connection {:?} did not answer: {e}",
                        connection.name.0
                    ),
                );
            }
        };
        let mut exchange = exchange;
        exchange.record.status = Some(answer.status().as_u16());
        exchange.record.response_headers = headers::recorded(answer.headers(), connection);
        exchange.response_type = headers::content_type(answer.headers());
        if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, answer.status()) {
            let service = hyper::upgrade::on(&mut answer);
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            *r.headers_mut() = headers::toward_client(answer.headers(), true);
            exchange.record.websocket = true;
            info!(path = %self.path_and_query, "websocket opened");
            crate::websocket::relay(client, service, exchange);
            return r;
        }
        let masker = self.masker.clone().filter(|_| mask_client);
        relay_answer(&self.session, masker, self.cap, answer, exchange).await
    }
}

/// The service's answer toward the client: masked by `masker` (JSON field by field when
/// small enough to hold, other text as it streams), recorded through `exchange` with bodies
/// up to `cap`.
pub async fn relay_answer(
    session: &Arc<HttpSession>,
    masker: Option<Arc<sluice_mask::Masker>>,
    cap: usize,
    answer: Response<Incoming>,
    exchange: Exchange,
) -> Response<RespBody> {
    let (parts, incoming) = answer.into_parts();
    let mut headers = headers::toward_client(&parts.headers, false);
    let encoded = headers::is_encoded(&parts.headers);
    let content_type = exchange.response_type.clone();
    let length = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let masker = masker.filter(|_| !encoded);
    let body: RespBody = match &masker {
        Some(m)
            if body::is_json(content_type.as_deref())
                && length.is_some_and(|l| l <= MAX_BUFFERED) =>
        {
            let whole = match incoming.collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => {
                    let mut exchange = exchange;
                    exchange.record.error = Some(format!("the service's answer broke off: {e}"));
                    return json_error(
                        StatusCode::BAD_GATEWAY,
                        "sluice: the service's answer broke off".into(),
                    );
                }
            };
            let mut counts = MaskCounts::default();
            let masked = body::mask_json_body(&whole, m, &mut counts)
                .map(Bytes::from)
                .unwrap_or_else(|| {
                    let mut raw = whole.to_vec();
                    m.mask(&mut raw, &mut counts);
                    Bytes::from(raw)
                });
            session.add_masked(counts.by_name(m.custom_names()));
            headers.insert(CONTENT_LENGTH, HeaderValue::from(masked.len()));
            ResponseBody::new(Full::new(masked).map_err(never), None, exchange, cap).boxed_unsync()
        }
        Some(m) if body::is_text(content_type.as_deref()) => {
            ResponseBody::new(incoming, Some(m.clone()), exchange, cap).boxed_unsync()
        }
        _ => ResponseBody::new(incoming, None, exchange, cap).boxed_unsync(),
    };
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(CONTENT_TYPE, ct);
    }
    let mut r = Response::new(body);
    *r.status_mut() = parts.status;
    *r.headers_mut() = headers;
    r
}

/// A refusal to open the session, with the status its cause calls for.
fn refused(e: &SessionError) -> Response<RespBody> {
    let (status, message) = refusal(e);
    json_error(status, message)
}

/// The status a refusal to open the session calls for, and its message.
pub fn refusal(e: &SessionError) -> (StatusCode, String) {
    let status = match e {
        SessionError::Stopped(_) => StatusCode::FORBIDDEN,
        SessionError::Open(o) => match o {
            sluice_pipeline::OpenError::Credential(_) | sluice_pipeline::OpenError::Jwt(_) => {
                match o.fault() {
                    Fault::Client => StatusCode::UNAUTHORIZED,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                }
            }
            sluice_pipeline::OpenError::Store(_) | sluice_pipeline::OpenError::AuditUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => StatusCode::FORBIDDEN,
        },
    };
    (status, format!("sluice: {e}"))
}

/// How much of a refused request's body is read before the answer, so that the client
/// reads the answer instead of a reset connection.
const DRAIN_LIMIT: usize = 64 * 1024;

/// Answers `r` after reading what is left of `body` (up to [`DRAIN_LIMIT`], for at most a
/// second; a larger or slower body gets the answer and a closed connection).
pub async fn drained<B>(mut body: B, r: Response<RespBody>) -> Response<RespBody>
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin,
{
    let read = async {
        let mut seen = 0;
        while seen < DRAIN_LIMIT {
            match body.frame().await {
                Some(Ok(f)) => seen += f.data_ref().map_or(0, Bytes::len),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), read).await;
    r
}

fn full(bytes: Bytes) -> ReqBody {
    Full::new(bytes).map_err(never).boxed()
}

fn empty() -> RespBody {
    Full::new(Bytes::new()).map_err(never).boxed_unsync()
}

/// The error of a body that cannot fail.
fn never(e: std::convert::Infallible) -> body::BoxError {
    match e {}
}

/// A JSON answer.
pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<RespBody> {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    let mut r = Response::new(Full::new(bytes).map_err(never).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: String) -> Response<RespBody> {
    json(status, &serde_json::json!({ "error": message }))
}
