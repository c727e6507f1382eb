//! Headers across the proxy: the client's credential taken out (never forwarded), the
//! service's put in, hop-by-hop headers dropped, `X-Forwarded-*` set by the gateway alone,
//! and the few headers a recording keeps.

use base64::Engine;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use sluice_core::{Connection, HttpAuth, Secret};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// The cookie holding a browser's gateway session.
pub const SESSION_COOKIE: &str = "sluice_session";

/// The cookies that hold gateway tokens (HTTP connections' sessions, the console's): never
/// forwarded to a service.
pub const GATEWAY_COOKIES: &[&str] = &[SESSION_COOKIE, "sluice_console"];

/// Headers that belong to one hop (RFC 9110 §7.6.1), and what the gateway sets itself.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-prefix",
    "x-forwarded-user",
    // Methods in disguise: the guard judges the request's own method.
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers every recording keeps (credentials and cookies never).
const RECORDED: &[&str] = &["content-type", "content-length", "location", "user-agent"];

/// The credential of a request: a bearer token, else the browser session cookie (`true`).
pub fn credential(headers: &HeaderMap) -> Option<(String, bool)> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    match bearer {
        Some(b) => Some((b, false)),
        None => session_cookie(headers).map(|c| (c, true)),
    }
}

/// Fails for a path that a service could read as another one: empty or dot segments,
/// backslashes, percent-encoded characters that need no encoding (letters, digits, `/`, `.`).
pub fn normalized(path: &str) -> Result<(), &'static str> {
    let encoded_plain = path.match_indices('%').any(|(i, _)| {
        let hex = path.get(i + 1..i + 3).unwrap_or("");
        u8::from_str_radix(hex, 16).map_or(true, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'\\' | b'-' | b'_' | b'~')
        })
    });
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    let bad_segment = segments
        .iter()
        .enumerate()
        .any(|(i, seg)| *seg == "." || *seg == ".." || (seg.is_empty() && i < last));
    if encoded_plain || bad_segment || path.contains('\\') {
        return Err("the request path is not in normal form (`//`, `.` or `..` segments, a backslash, or characters encoded that need no encoding)");
    }
    Ok(())
}

/// Whether a request with a cookie credential may act: reads (`GET`, `HEAD`, `OPTIONS`)
/// that are not WebSocket handshakes always; anything else only from the service's own
/// origin (`Origin` equal to the host, or `Sec-Fetch-Site: same-origin`/`none`).
pub fn same_origin<B>(req: &hyper::Request<B>) -> bool {
    let safe = matches!(
        *req.method(),
        hyper::Method::GET | hyper::Method::HEAD | hyper::Method::OPTIONS
    );
    if safe && !is_websocket(req.headers()) {
        return true;
    }
    let h = req.headers();
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if let Some(origin) = h.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        return host.is_some_and(|host| origin.eq_ignore_ascii_case(&format!("https://{host}")));
    }
    match h.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => matches!(site, "same-origin" | "none"),
        // Neither header: not a browser's cross-site request.
        None => true,
    }
}

/// The headers a `Connection` header names (hop-by-hop by that naming), lower-case.
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty() && t != "upgrade" && t != "keep-alive" && t != "close")
        .collect()
}

/// The value of the session cookie, if the request carries it.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// Whether the request asks to become a WebSocket.
pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The headers toward the service.
pub fn toward_service(
    parts: &hyper::http::request::Parts,
    connection: &Connection,
    identity: &str,
    peer: SocketAddr,
    prefix: &str,
    secret: Option<&Secret<String>>,
    mask_client: bool,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(parts.headers.len() + 6);
    let listed = connection_listed(&parts.headers);
    for (name, value) in &parts.headers {
        if DROPPED.contains(&name.as_str()) || listed.iter().any(|l| l == name.as_str()) {
            continue;
        }
        if name == header::COOKIE {
            if let Some(rest) = without_session_cookie(value) {
                out.append(header::COOKIE, rest);
            }
            continue;
        }
        // Masked answers must be readable: the service answers uncompressed.
        if mask_client && name == header::ACCEPT_ENCODING {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    let authority = sluice_tunnel::proto::authority(&connection.host, connection.port);
    if let Ok(v) = HeaderValue::from_str(&authority) {
        out.insert(header::HOST, v);
    }
    if is_websocket(&parts.headers) {
        out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    let original_host = parts
        .headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .unwrap_or_default();
    let forwarded = [
        ("x-forwarded-for", peer.ip().to_string()),
        ("x-forwarded-proto", "https".to_string()),
        ("x-forwarded-host", original_host.to_string()),
        ("x-forwarded-user", identity.to_string()),
    ];
    for (name, value) in forwarded {
        if let Ok(v) = HeaderValue::from_str(&value) {
            out.insert(HeaderName::from_static(name), v);
        }
    }
    if !prefix.is_empty() {
        if let Ok(v) = HeaderValue::from_str(prefix) {
            out.insert(HeaderName::from_static("x-forwarded-prefix"), v);
        }
    }
    if let (Some(secret), Some(http)) = (secret, &connection.http) {
        let value = match http.auth {
            HttpAuth::None => None,
            HttpAuth::Bearer => Some(format!("Bearer {}", secret.expose())),
            HttpAuth::Basic => {
                let user = connection.username.as_deref().unwrap_or_default();
                let pair = format!("{user}:{}", secret.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            HttpAuth::Header => Some(secret.expose().clone()),
        };
        let name = match http.auth {
            HttpAuth::Header => http
                .header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            _ => Some(header::AUTHORIZATION),
        };
        if let (Some(name), Some(mut v)) =
            (name, value.and_then(|v| HeaderValue::from_str(&v).ok()))
        {
            v.set_sensitive(true);
            out.insert(name, v);
        }
    }
    out
}

/// The service's headers toward the client (`upgrade`: keep the WebSocket handshake's).
pub fn toward_client(headers: &HeaderMap, upgrade: bool) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    let listed = connection_listed(headers);
    for (name, value) in headers {
        let hop = matches!(
            name.as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
        ) || listed.iter().any(|l| l == name.as_str());
        // A service cannot set the gateway's cookies.
        let ours = name == header::SET_COOKIE
            && value.to_str().is_ok_and(|v| {
                let v = v.trim_start();
                GATEWAY_COOKIES
                    .iter()
                    .any(|c| v.strip_prefix(c).is_some_and(|rest| rest.starts_with('=')))
            });
        if !hop && !ours {
            out.append(name.clone(), value.clone());
        }
    }
    if upgrade {
        out.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        out.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    out
}

/// The headers a recording keeps: the defaults and the connection's `record_headers`.
pub fn recorded(headers: &HeaderMap, connection: &Connection) -> BTreeMap<String, String> {
    let extra = connection
        .http
        .as_ref()
        .map(|h| h.record_headers.as_slice())
        .unwrap_or_default();
    headers
        .iter()
        .filter(|(n, _)| {
            let n = n.as_str();
            let secret = matches!(
                n,
                "authorization" | "cookie" | "set-cookie" | "proxy-authorization"
            ) || connection
                .http
                .as_ref()
                .and_then(|h| h.header.as_deref())
                .is_some_and(|h| h.eq_ignore_ascii_case(n));
            !secret && (RECORDED.contains(&n) || extra.iter().any(|e| e.eq_ignore_ascii_case(n)))
        })
        .filter_map(|(n, v)| Some((n.as_str().to_string(), v.to_str().ok()?.to_string())))
        .collect()
}

/// The content type, if any.
pub fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether the body is compressed (masking cannot read it).
pub fn is_encoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| !v.eq_ignore_ascii_case("identity"))
}

/// Percent-encodes a URL component.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A `Cookie` header without the gateway's session cookie (`None` when nothing is left).
fn without_session_cookie(value: &HeaderValue) -> Option<HeaderValue> {
    let text = value.to_str().ok()?;
    let kept: Vec<&str> = text
        .split(';')
        .map(str::trim)
        .filter(|c| {
            !c.is_empty()
                && c.split_once('=')
                    .is_none_or(|(k, _)| !GATEWAY_COOKIES.contains(&k))
        })
        .collect();
    if kept.is_empty() {
        return None;
    }
    HeaderValue::from_str(&kept.join("; ")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_read_and_never_forwarded() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; sluice_session=abc; lang=en"),
        );
        assert_eq!(credential(&h), Some(("abc".to_string(), true)));
        let rest = without_session_cookie(&HeaderValue::from_static(
            "theme=dark; sluice_session=abc; lang=en",
        ));
        assert_eq!(rest, Some(HeaderValue::from_static("theme=dark; lang=en")));
        assert_eq!(
            without_session_cookie(&HeaderValue::from_static("sluice_session=abc")),
            None
        );
        // The console's cookie (path `/`) is sent along to services under a path prefix too: it
        // never reaches them either.
        assert_eq!(
            without_session_cookie(&HeaderValue::from_static(
                "sluice_console=tok; a=1; sluice_session=abc"
            )),
            Some(HeaderValue::from_static("a=1"))
        );
    }

    #[test]
    fn the_service_gets_the_gateways_credential_and_forwarded_headers_of_its_own(
    ) -> Result<(), hyper::http::Error> {
        let req = hyper::Request::builder()
            .uri("/x")
            .header("authorization", "Bearer client-token")
            .header("x-forwarded-user", "root")
            .header("connection", "keep-alive, x-drop")
            .header("accept", "application/json")
            .body(())?;
        let (parts, ()) = req.into_parts();
        let mut conn = Connection {
            name: sluice_core::ConnectionName("svc".into()),
            protocol: sluice_core::Protocol::Http,
            host: "10.0.0.7".into(),
            port: 3000,
            database: None,
            username: Some("deploy".into()),
            credential: sluice_core::TargetCredential::None,
            via: None,
            ssh: None,
            command: None,
            http: Some(sluice_core::HttpOptions {
                auth: HttpAuth::Basic,
                ..Default::default()
            }),
            kubernetes: None,
            from_config: true,
        };
        let peer: SocketAddr = ([192, 0, 2, 9], 5000).into();
        let secret = Secret::new("pw".to_string());
        let out = toward_service(&parts, &conn, "alice", peer, "", Some(&secret), false);
        assert_eq!(out["authorization"], "Basic ZGVwbG95OnB3");
        assert_eq!(out["x-forwarded-user"], "alice");
        assert_eq!(out["x-forwarded-for"], "192.0.2.9");
        assert_eq!(out["host"], "10.0.0.7:3000");
        assert_eq!(out["accept"], "application/json");
        assert!(out.get("connection").is_none());
        conn.http = Some(sluice_core::HttpOptions {
            auth: HttpAuth::Header,
            header: Some("X-Api-Key".into()),
            ..Default::default()
        });
        let out = toward_service(&parts, &conn, "alice", peer, "/p", Some(&secret), true);
        assert_eq!(out["x-api-key"], "pw");
        assert!(
            out.get("authorization").is_none(),
            "the client's token never passes"
        );
        assert_eq!(out["x-forwarded-prefix"], "/p");
        Ok(())
    }

    #[test]
    fn paths_a_service_could_read_otherwise_are_refused() {
        for good in ["/", "/admin/users", "/a/b/", "/search%20x", "/q%3Fx"] {
            assert!(normalized(good).is_ok(), "{good}");
        }
        for bad in [
            "//admin/x",
            "/a/../admin",
            "/./admin",
            "/%61dmin",
            "/a%2fb",
            "/a%2Eb",
            "/a\\b",
            "/a//b",
        ] {
            assert!(normalized(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_bearer_token_wins_over_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("sluice_session=abc"),
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert_eq!(credential(&h), Some(("tok".to_string(), false)));
    }
}
