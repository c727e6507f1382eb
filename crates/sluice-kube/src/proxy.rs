//! One kubectl request through the gateway: identity, session, what the request means, the
//! guard (with the pod's spec when the rules need it), the API server's credential in place
//! of the client's, and the answer masked and recorded (exec and attach as terminal
//! sessions).

use crate::exec::ExecStream;
use crate::guard::{self, Facts, Judged};
use crate::request::RequestInfo;
use crate::status::never;
use crate::{pod, secret, status, KubeProxy};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, AUTHORIZATION, CONNECTION, UPGRADE};
use hyper::{Request, Response, StatusCode};
use serde_json::Value;
use sluice_core::{ChannelStart, HttpExchange, Outcome, Pty, Secret, SessionEvent};
use sluice_http::body::{Capture, Exchange, ReqBody, RespBody, Tee};
use sluice_http::proxy::drained;
use sluice_http::session::HttpSession;
use sluice_http::{headers, ClientConn, Matched};
use sluice_mask::MaskCounts;
use std::sync::Arc;
use std::time::Instant;
use tracing::{info, warn};

/// Largest body read to judge the pod spec in it.
const MAX_JUDGED_BODY: usize = 3 * 1024 * 1024;
/// Bodies recorded per exchange when the connection sets no cap.
const DEFAULT_RECORDED_BODY: u64 = 64 * 1024;

impl KubeProxy {
    /// Handles `req`, which `matched` routes to a Kubernetes connection, from `conn`.
    pub async fn handle(
        &self,
        conn: &ClientConn,
        matched: Matched,
        mut req: Request<Incoming>,
    ) -> Response<RespBody> {
        // kubectl sends the token from `sluice kube-credentials` as a bearer token; cookies
        // are not a credential here.
        let Some((credential, false)) = headers::credential(req.headers()) else {
            let r = status::error(
                StatusCode::UNAUTHORIZED,
                "sluice: send a gateway token as a bearer token (sluice kubeconfig sets up kubectl)",
            );
            return drained(req.into_body(), r).await;
        };
        if let Err(why) = headers::normalized(req.uri().path()) {
            let r = status::error(StatusCode::BAD_REQUEST, &format!("sluice: {why}"));
            return drained(req.into_body(), r).await;
        }
        let session = match conn
            .session(&self.pipeline, &matched, Secret::new(credential))
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let (code, message) = sluice_http::proxy::refusal(&e);
                return drained(req.into_body(), status::error(code, &message)).await;
            }
        };
        // Only the gateway says who is asking.
        if let Some(name) = req
            .headers()
            .keys()
            .find(|n| n.as_str().starts_with("impersonate-"))
        {
            let reason =
                format!("the client sent {name}; impersonation through the gateway is refused");
            session.audit(
                "kubernetes.impersonate",
                Outcome::Failure,
                Some(reason.clone()),
            );
            warn!(header = %name, "impersonation header refused");
            let r = status::error(StatusCode::FORBIDDEN, &format!("sluice: {reason}"));
            return drained(req.into_body(), r).await;
        }
        let path = matched.inner_path(req.uri().path()).to_string();
        let query = req.uri().query().map(str::to_string);
        let info = RequestInfo::parse(req.method().as_str(), &path, query.as_deref());
        let upgrade = req.headers().contains_key(UPGRADE);
        let websocket = headers::is_websocket(req.headers());
        // kubectl before 1.30 streams exec, attach and port-forward over SPDY/3.1.
        let spdy = info.is_connect() && upgrade && !websocket;
        let upgrade_to = req.headers().get(UPGRADE).cloned();
        let client_upgrade = (websocket || spdy).then(|| hyper::upgrade::on(&mut req));
        let (parts, incoming) = req.into_parts();
        let path_and_query = match &query {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let command = match info.subresource.as_str() {
            "exec" if info.is_connect() => {
                crate::request::query_values(query.as_deref(), "command")
            }
            _ => Vec::new(),
        };
        let mut facts = Facts {
            info,
            command,
            pod_risks: Vec::new(),
            unreadable: None,
        };
        let secret = match self.pipeline.target_password(&matched.connection).await {
            Ok(s) => s,
            Err(e) => {
                self.pipeline
                    .target_failed(&session.authorized, &e.to_string());
                let r = status::error(StatusCode::BAD_GATEWAY, &format!("sluice: {e}"));
                return drained(incoming, r).await;
            }
        };
        // The pod spec the rules judge: the pod entered, or the one in the body.
        let judge_body = matches!(facts.info.verb.as_str(), "create" | "update" | "patch")
            && pod::carries_pod_spec(&facts.info.group, &facts.info.resource)
            && facts.info.subresource.is_empty();
        let body: ReqBody = if !guard::needs_pod_risks(&session) {
            incoming.map_err(Into::into).boxed()
        } else if facts.info.is_connect() {
            self.read_pod(&session, &matched, secret.as_ref(), &mut facts)
                .await;
            incoming.map_err(Into::into).boxed()
        } else if judge_body {
            let Ok(collected) = Limited::new(incoming, MAX_JUDGED_BODY).collect().await else {
                return status::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "sluice: the request body is too large to judge",
                );
            };
            let bytes = collected.to_bytes();
            match serde_json::from_slice::<Value>(&bytes) {
                Ok(doc) => {
                    facts.pod_risks = pod::pod_spec(&doc).map(pod::risks).unwrap_or_default();
                }
                Err(_) => {
                    facts.unreadable = Some("the pod spec in the request body is not JSON".into());
                }
            }
            Full::new(bytes).map_err(never).boxed()
        } else {
            incoming.map_err(Into::into).boxed()
        };
        let line = facts.line();
        let masker = session
            .policy
            .as_ref()
            .and_then(|p| p.policy.masker.clone());
        let shown = masker
            .as_ref()
            .and_then(|m| m.mask_str(&line, &mut MaskCounts::default()))
            .unwrap_or_else(|| line.clone());
        let verdict = guard::verdict(&session, &facts, &line);
        let id = match guard::judge(&self.pipeline, &session, shown.clone(), verdict).await {
            Judged::Run(id) => id,
            Judged::Refused { rule, message } => {
                let mut r = status::status(StatusCode::FORBIDDEN, "Forbidden", &message);
                if let Ok(v) = HeaderValue::from_str(&rule) {
                    r.headers_mut().insert("x-sluice-rule", v);
                }
                // Read what is left of the body: HTTP/2 clients get the answer, not a reset.
                return drained(body, r).await;
            }
            Judged::Unavailable(message) => {
                let r = status::error(StatusCode::SERVICE_UNAVAILABLE, &message);
                return drained(body, r).await;
            }
        };
        let mask_client = masker.as_ref().is_some_and(|m| m.mask_client());
        let mut out = to_service(&parts, &path_and_query);
        out.headers = headers::toward_service(
            &parts,
            &matched.connection,
            &session.authorized.identity.name,
            conn.peer,
            &matched.prefix,
            None,
            mask_client,
        );
        credentials(&mut out.headers, &session, secret.as_ref());
        if let (true, Some(to)) = (spdy, &upgrade_to) {
            out.headers
                .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            out.headers.insert(UPGRADE, to.clone());
        }
        let cap = usize::try_from(
            matched
                .connection
                .kubernetes
                .as_ref()
                .and_then(|k| k.max_body)
                .unwrap_or(DEFAULT_RECORDED_BODY),
        )
        .unwrap_or(usize::MAX);
        let request_capture = Capture::default();
        let mut exchange = Exchange {
            record: HttpExchange {
                query: id,
                method: parts.method.to_string(),
                path: masker
                    .as_ref()
                    .and_then(|m| m.mask_str(&path_and_query, &mut MaskCounts::default()))
                    .unwrap_or_else(|| path_and_query.clone()),
                request_headers: headers::recorded(&parts.headers, &matched.connection),
                kubernetes: Some(facts.info.recorded()),
                ..HttpExchange::default()
            },
            request: request_capture.clone(),
            request_type: headers::content_type(&parts.headers),
            response: Capture::default(),
            response_type: None,
            masker: masker.clone(),
            started: Instant::now(),
            complete: false,
            session: session.clone(),
            redact: (facts.info.resource == "secrets" && facts.info.group.is_empty())
                .then_some(secret::redact_secret_body as fn(&mut Value)),
        };
        let body = Tee::new(body, request_capture, cap).boxed();
        let mut answer = match session
            .pool
            .send(
                &self.pipeline,
                Request::from_parts(out, body),
                client_upgrade.is_some(),
            )
            .await
        {
            Ok(a) => a,
            Err(e) => {
                exchange.record.error = Some(e.to_string());
                warn!(error = %e, "the API server did not answer");
                session.audit("kubernetes.upstream", Outcome::Failure, Some(e.to_string()));
                return status::error(
                    StatusCode::BAD_GATEWAY,
                    &format!(
                        "sluice: the API server of connection {:?} did not answer: {e}",
                        matched.connection.name.0
                    ),
                );
            }
        };
        exchange.record.status = Some(answer.status().as_u16());
        exchange.record.response_headers = headers::recorded(answer.headers(), &matched.connection);
        exchange.response_type = headers::content_type(answer.headers());
        if let (Some(client), StatusCode::SWITCHING_PROTOCOLS) = (client_upgrade, answer.status()) {
            let service = hyper::upgrade::on(&mut answer);
            let mut r = Response::new(empty());
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            *r.headers_mut() = headers::toward_client(answer.headers(), !spdy);
            if spdy {
                let to = answer.headers().get(UPGRADE).cloned();
                r.headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
                if let Some(to) = to {
                    r.headers_mut().insert(UPGRADE, to);
                }
            }
            exchange.record.websocket = true;
            if matches!(facts.info.subresource.as_str(), "exec" | "attach")
                && facts.info.is_connect()
            {
                let channel = u32::try_from(id).unwrap_or(u32::MAX);
                let tty = crate::request::query_values(query.as_deref(), "tty")
                    .iter()
                    .any(|v| matches!(v.as_str(), "true" | "1"));
                session.record(&SessionEvent::Channel(Box::new(ChannelStart {
                    channel,
                    purpose: facts.info.subresource.clone(),
                    detail: Some(shown),
                    query: Some(id),
                    pty: tty.then(|| Pty {
                        term: "xterm".into(),
                        cols: 80,
                        rows: 24,
                    }),
                })));
                info!(pod = %facts.info.name, "exec stream opened");
                let stream = ExecStream {
                    exchange,
                    channel,
                    masker,
                    mask_client,
                };
                match spdy {
                    false => stream.relay(client, service),
                    true => {
                        let flag = |k: &str| {
                            crate::request::query_values(query.as_deref(), k)
                                .iter()
                                .any(|v| matches!(v.as_str(), "true" | "1"))
                        };
                        let order = crate::spdy::expected(
                            flag("stdin"),
                            flag("stdout"),
                            flag("stderr"),
                            tty,
                        );
                        stream.relay_spdy(client, service, order);
                    }
                }
            } else {
                // Port forwarding: relayed and counted, not read.
                sluice_http::websocket::relay(client, service, exchange);
            }
            return r;
        }
        let masker = masker.filter(|_| mask_client);
        sluice_http::proxy::relay_answer(&session, masker, cap, answer, exchange).await
    }

    /// Reads the spec of the pod an exec or attach enters, with the gateway's own
    /// credential, into `facts`.
    async fn read_pod(
        &self,
        session: &Arc<HttpSession>,
        matched: &Matched,
        secret: Option<&Secret<String>>,
        facts: &mut Facts,
    ) {
        let path = format!(
            "/api/v1/namespaces/{}/pods/{}",
            facts.info.namespace, facts.info.name
        );
        let mut req = Request::new(Full::new(Bytes::new()).map_err(never).boxed());
        *req.uri_mut() = match path.parse() {
            Ok(u) => u,
            Err(_) => {
                facts.unreadable = Some("the pod's name is not valid in a path".into());
                return;
            }
        };
        let host = format!("{}:{}", matched.connection.host, matched.connection.port);
        if let Ok(v) = HeaderValue::from_str(&host) {
            req.headers_mut().insert(hyper::header::HOST, v);
        }
        req.headers_mut().insert(
            hyper::header::ACCEPT,
            HeaderValue::from_static("application/json"),
        );
        if let Some(v) = secret.and_then(bearer) {
            req.headers_mut().insert(AUTHORIZATION, v);
        }
        let read = async {
            let answer = session
                .pool
                .send(&self.pipeline, req, false)
                .await
                .map_err(|e| e.to_string())?;
            let code = answer.status();
            let bytes = Limited::new(answer.into_body(), MAX_JUDGED_BODY)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok::<_, String>((code, bytes))
        };
        match read.await {
            Ok((StatusCode::OK, bytes)) => match serde_json::from_slice::<Value>(&bytes) {
                Ok(doc) => {
                    facts.pod_risks = pod::pod_spec(&doc).map(pod::risks).unwrap_or_default()
                }
                Err(_) => facts.unreadable = Some("the pod's spec is not JSON".into()),
            },
            // No such pod: the API server answers the request itself.
            Ok((StatusCode::NOT_FOUND, _)) => {}
            Ok((code, _)) => {
                facts.unreadable = Some(format!("the pod's spec could not be read (status {code})"))
            }
            Err(e) => facts.unreadable = Some(format!("the pod's spec could not be read: {e}")),
        }
    }
}

/// The request line toward the API server.
fn to_service(
    parts: &hyper::http::request::Parts,
    path_and_query: &str,
) -> hyper::http::request::Parts {
    let mut out = Request::new(()).into_parts().0;
    out.method = parts.method.clone();
    out.uri = path_and_query.parse().unwrap_or_default();
    out.version = hyper::Version::HTTP_11;
    out
}

/// The gateway's credential toward the API server, and the identity it impersonates when the
/// connection says so.
fn credentials(out: &mut hyper::HeaderMap, session: &HttpSession, secret: Option<&Secret<String>>) {
    out.remove(AUTHORIZATION);
    if let Some(v) = secret.and_then(bearer) {
        out.insert(AUTHORIZATION, v);
    }
    let impersonate = session
        .authorized
        .connection
        .kubernetes
        .as_ref()
        .is_some_and(|k| k.impersonate);
    if impersonate {
        let identity = &session.authorized.identity;
        if let Ok(v) = HeaderValue::from_str(&identity.name) {
            out.insert(HeaderName::from_static("impersonate-user"), v);
        }
        for g in &identity.groups {
            if let Ok(v) = HeaderValue::from_str(g) {
                out.append(HeaderName::from_static("impersonate-group"), v);
            }
        }
    }
}

/// `Authorization: Bearer <secret>`, marked sensitive.
fn bearer(secret: &Secret<String>) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", secret.expose())).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn empty() -> RespBody {
    Full::new(Bytes::new()).map_err(never).boxed_unsync()
}
