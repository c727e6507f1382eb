//! The web console: server-rendered pages under `/console` for operators, approvers and
//! auditors. People sign in through the identity provider (`/console/.sluice/login`, the
//! same OIDC code flow as HTTP connections), which leaves a `sluice_console` cookie; the
//! pages and the API calls they make use it (changes only from the gateway's own origin).
//! Pages carry a strict Content-Security-Policy: no inline script or style.

mod reviews;

use super::roles::RoleSet;
use super::web_login::{cookie, WebLogin, CONSOLE_COOKIE};
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Request, Response, StatusCode};
use sluice_core::{Identity, Secret};
use sluice_http::body::RespBody;

/// The console's style sheet.
const STYLE: &str = include_str!("console.css");

/// The page a path under `/console` asks for (`""` for the home page), if it is one.
pub fn page_of(path: &str) -> Option<&str> {
    match path {
        "/console" => Some(""),
        _ => path.strip_prefix("/console/"),
    }
}

/// Serves console page `page`.
pub async fn serve(web: &WebLogin, page: &str, req: Request<Incoming>) -> Response<RespBody> {
    if page == "console.css" {
        return respond(StatusCode::OK, "text/css; charset=utf-8", STYLE.to_string());
    }
    let state = web.state();
    let identity = match cookie(req.headers(), CONSOLE_COOKIE) {
        Some(token) => state.pipeline.authenticate(&Secret::new(token)).await.ok(),
        None => None,
    };
    let Some(identity) = identity else {
        // Back to this very page after the sign-in.
        let here = req
            .uri()
            .path_and_query()
            .map_or("/console/", |p| p.as_str());
        let location = format!(
            "/console/.sluice/login?return={}",
            sluice_http::headers::percent_encode(here)
        );
        let mut r = respond(
            StatusCode::FOUND,
            "text/plain; charset=utf-8",
            String::new(),
        );
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(LOCATION, v);
        }
        return r;
    };
    let roles = state.roles.of(&identity);
    let html = "text/html; charset=utf-8";
    let query = req.uri().query().unwrap_or_default().to_string();
    let (parts, body) = req.into_parts();
    if parts.method != hyper::Method::GET {
        // A cookie comes with other sites' requests too: changes only from these pages.
        if parts.method != hyper::Method::POST || !super::auth::same_origin(&parts) {
            let refused = "<p>A change must come from the console's own pages.</p>";
            return respond(
                StatusCode::FORBIDDEN,
                html,
                layout("Refused", &identity, refused),
            );
        }
        let Some(id) = page
            .strip_prefix("reviews/")
            .and_then(|p| p.strip_suffix("/decide"))
        else {
            let missing = "<p>There is no such page.</p>";
            return respond(
                StatusCode::NOT_FOUND,
                html,
                layout("Not found", &identity, missing),
            );
        };
        let form = match http_body_util::Limited::new(body, 8 * 1024).collect().await {
            Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
            Err(_) => String::new(),
        };
        let done = reviews::decide(state, &identity, roles, id, &form).await;
        let mut r = respond(StatusCode::SEE_OTHER, html, String::new());
        let location = format!(
            "/console/reviews?done={}",
            sluice_http::headers::percent_encode(&done)
        );
        if let Ok(v) = HeaderValue::from_str(&location) {
            r.headers_mut().insert(LOCATION, v);
        }
        return r;
    }
    drop(body);
    match page {
        "" => respond(StatusCode::OK, html, home(&identity, roles)),
        "reviews" => {
            let done = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("done="))
                .map(reviews::decode_form);
            let page = reviews::inbox(state, &identity, roles, done.as_deref()).await;
            respond(StatusCode::OK, html, page)
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            "text/html; charset=utf-8",
            layout("Not found", &identity, "<p>There is no such page.</p>"),
        ),
    }
}

fn home(who: &Identity, roles: RoleSet) -> String {
    let body = format!(
        "<section aria-labelledby=\"you\"><h2 id=\"you\">Signed in</h2>\
         <dl><dt>Identity</dt><dd data-testid=\"identity\">{}</dd>\
         <dt>Groups</dt><dd>{}</dd>\
         <dt>Roles</dt><dd data-testid=\"roles\">{}</dd></dl></section>\
         <section aria-labelledby=\"api\"><h2 id=\"api\">API</h2>\
         <p>Every action of the console is an API call: \
         <a href=\"/api/v1/openapi.json\">the API's OpenAPI document</a>.</p></section>",
        escape(&who.name),
        escape(&who.groups.join(", ")),
        roles.names().join(", "),
    );
    layout("sluice console", who, &body)
}

/// A page: header with the identity and sign-out, then `body`.
pub(crate) fn layout(title: &str, who: &Identity, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title}</title><link rel=\"stylesheet\" href=\"/console/console.css\"></head>\
         <body><header><h1>{title}</h1>\
         <nav aria-label=\"Console\"><a href=\"/console/\">Home</a> <a href=\"/console/reviews\">Reviews</a></nav>\
         <form method=\"post\" action=\"/console/.sluice/logout\">\
         <span>{}</span> <button type=\"submit\">Sign out</button></form></header>\
         <main>{body}</main></body></html>",
        escape(&who.name)
    )
}

/// An answer with the console's security headers.
fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<RespBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|e: std::convert::Infallible| -> sluice_http::body::BoxError { match e {} })
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// Text for HTML.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_escaping() {
        assert_eq!(page_of("/console"), Some(""));
        assert_eq!(page_of("/console/"), Some(""));
        assert_eq!(page_of("/console/sessions"), Some("sessions"));
        assert_eq!(page_of("/consoles"), None);
        assert_eq!(
            escape("<b a=\"x\">&'"),
            "&lt;b a=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
