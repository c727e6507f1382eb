//! Answers in the API server's own form: a `metav1.Status` object, which kubectl prints as
//! `Error from server (Forbidden): …`.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde_json::{json, Value};
use sluice_http::body::RespBody;

/// A `Status` with `code`, the API server's `reason` (`Forbidden`, `Unauthorized`) and
/// `message`.
pub fn status(code: StatusCode, reason: &str, message: &str) -> Response<RespBody> {
    let body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    respond(code, &body)
}

/// A `Status` for a request the guard refused under `rule`.
pub fn denied(rule: &str, reason: &str) -> Response<RespBody> {
    let mut r = status(
        StatusCode::FORBIDDEN,
        "Forbidden",
        &format!("sluice: denied by rule \"{rule}\": {reason}"),
    );
    if let Ok(v) = HeaderValue::from_str(rule) {
        r.headers_mut().insert("x-sluice-rule", v);
    }
    r
}

/// The reason word the API server uses with `code`.
pub fn reason_of(code: StatusCode) -> &'static str {
    match code {
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        StatusCode::BAD_REQUEST => "BadRequest",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::PAYLOAD_TOO_LARGE => "RequestEntityTooLarge",
        StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
        StatusCode::GATEWAY_TIMEOUT => "Timeout",
        _ => "InternalError",
    }
}

/// A `Status` with the reason `code` calls for.
pub fn error(code: StatusCode, message: &str) -> Response<RespBody> {
    status(code, reason_of(code), message)
}

fn respond(code: StatusCode, body: &Value) -> Response<RespBody> {
    let bytes = Bytes::from(serde_json::to_vec(body).unwrap_or_default());
    let mut r = Response::new(Full::new(bytes).map_err(never).boxed_unsync());
    *r.status_mut() = code;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// The `Status` sent on an exec stream's error channel when the gateway ends it.
pub fn stream_failure(message: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": "Forbidden",
        "code": 403,
    }))
    .unwrap_or_default()
}

/// The error of a body that cannot fail.
pub(crate) fn never(e: std::convert::Infallible) -> sluice_http::body::BoxError {
    match e {}
}
