//! What every console page shares: who is looking, the layout (header, navigation,
//! sign-out), answers with the console's security headers, and small formatting helpers.

use crate::api::roles::RoleSet;
use crate::api::ApiState;
use axum::body::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use hyper::{Response, StatusCode};
use maud::{html, Markup, DOCTYPE};
use sluice_core::Identity;
use sluice_http::body::RespBody;
use std::net::SocketAddr;

/// The person looking at a page.
pub struct Ctx<'a> {
    /// The gateway's API state.
    pub state: &'a ApiState,
    /// Who is signed in.
    pub who: &'a Identity,
    /// Their roles.
    pub roles: RoleSet,
    /// Their address (audited with changes).
    pub peer: SocketAddr,
}

/// Whether roles may see a page.
type Shown = fn(RoleSet) -> bool;

/// The navigation: page path, label, and whether the roles may see it.
const NAV: &[(&str, &str, Shown)] = &[
    ("/console/", "Home", |_| true),
    ("/console/sessions", "Sessions", |_| true),
    ("/console/live", "Live", |r| r.reads_all()),
    ("/console/reviews", "Reviews", |_| true),
    ("/console/identities", "Identities", |r| r.reads_all()),
    ("/console/connections", "Connections", |r| r.reads_all()),
    ("/console/agents", "Agents", |r| r.reads_all()),
    ("/console/audit", "Audit log", |r| r.reads_all()),
];

/// A whole page: header with the navigation, the identity and sign-out, then `body`.
pub fn layout(ctx: &Ctx<'_>, current: &str, title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · sluice" }
                link rel="stylesheet" href="/console/console.css";
                script src="/console/console.js" defer {}
            }
            body {
                header {
                    span.brand { "sluice" }
                    nav aria-label="Console" {
                        @for (href, label, shown) in NAV {
                            @if shown(ctx.roles) {
                                @if *href == current {
                                    a href=(href) aria-current="page" { (label) }
                                } @else {
                                    a href=(href) { (label) }
                                }
                            }
                        }
                    }
                    form method="post" action="/console/.sluice/logout" {
                        span data-testid="who" { (ctx.who.name) }
                        button type="submit" { "Sign out" }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
    .into_string()
}

/// A notice after an action (`?done=…`), announced to screen readers.
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.notice role="status" { (t) }
        }
    }
}

/// An answer with the console's security headers.
pub fn respond(status: StatusCode, content_type: &'static str, body: String) -> Response<RespBody> {
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
             connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

/// An HTML page.
pub fn html_page(status: StatusCode, page: String) -> Response<RespBody> {
    respond(status, "text/html; charset=utf-8", page)
}

/// A redirect to `location` (after a form).
pub fn see_other(location: &str) -> Response<RespBody> {
    let mut r = respond(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        String::new(),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// `path?done=<notice>`: where a form goes back to, with what happened.
pub fn back_to(path: &str, done: &str) -> Response<RespBody> {
    see_other(&format!(
        "{path}?done={}",
        sluice_http::headers::percent_encode(done)
    ))
}

/// A page with only a message (not found, refused).
pub fn message(ctx: &Ctx<'_>, status: StatusCode, title: &str, text: &str) -> Response<RespBody> {
    html_page(
        status,
        layout(ctx, "", title, html! { p.error role="alert" { (text) } }),
    )
}

/// µs since the epoch as `2026-12-07 10:04:05 UTC`.
pub fn time(us: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_micros(u64::try_from(us).unwrap_or(0));
    humantime::format_rfc3339_seconds(t)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// A duration in µs, short: `3s`, `4m 10s`, `2h 5m`.
pub fn duration(us: i64) -> String {
    let s = us.max(0) / 1_000_000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// Time into a session: `+0.021s`, `+6.512s`, then as [`duration`].
pub fn offset(us: i64) -> String {
    match us.max(0) {
        us @ 0..=59_999_999 => format!("+{:.3}s", us as f64 / 1e6),
        us => format!("+{}", duration(us)),
    }
}

/// A byte count, short: `512 B`, `3.2 KiB`, `1.5 MiB`.
pub fn bytes(n: u64) -> String {
    match n {
        0..=1023 => format!("{n} B"),
        1024..=1_048_575 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

/// The value of `name` in a query string or form body, decoded; empty values are absent.
pub fn field(query: &str, name: &str) -> Option<String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .ok()?
        .into_iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v)
}

/// Runs `f` on the store once everything recorded so far is committed (a page shows what
/// happened before it was asked for); the error as text.
pub async fn read_store<R, F>(ctx: &Ctx<'_>, f: F) -> Result<R, String>
where
    R: Send + 'static,
    F: FnOnce(&mut sluice_store::Db) -> Result<R, sluice_store::StoreError> + Send + 'static,
{
    crate::api::sessions::read_your_writes(ctx.state)
        .await
        .map_err(|e| e.1)?;
    ctx.state
        .pipeline
        .store()
        .run(f)
        .await
        .map_err(|e| e.to_string())
}

/// The link to the page after `cursor`: `path` with the same filters.
pub fn next_page(path: &str, query: &str, cursor: &str) -> String {
    let mut q: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    q.retain(|(k, _)| k != "cursor" && k != "done");
    q.push(("cursor".into(), cursor.to_string()));
    format!(
        "{path}?{}",
        serde_urlencoded::to_string(&q).unwrap_or_default()
    )
}

/// A day (`2026-12-07`, UTC) as µs since the epoch at its start.
pub fn day_start_us(day: &str) -> Option<i64> {
    let t = humantime::parse_rfc3339_weak(&format!("{} 00:00:00", day.trim())).ok()?;
    let us = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_micros();
    i64::try_from(us).ok()
}

/// The `since`/`until` days of a filter form as a µs range (`until` takes the whole day).
pub fn day_range(query: &str) -> (Option<i64>, Option<i64>) {
    let since = field(query, "since").and_then(|d| day_start_us(&d));
    let until = field(query, "until")
        .and_then(|d| day_start_us(&d))
        .map(|us| us + 86_400_000_000);
    (since, until)
}

/// A path segment for a link (everything but unreserved characters percent-encoded).
pub fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A percent-encoded path segment, decoded.
pub fn unseg(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(time(1_700_000_000_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(duration(75_000_000), "1m 15s");
        assert_eq!(duration(7_500_000_000), "2h 5m");
        assert_eq!(bytes(2048), "2.0 KiB");
        assert_eq!(offset(21_000), "+0.021s");
        assert_eq!(day_start_us("2023-11-14"), Some(1_699_920_000_000_000));
        assert_eq!(
            day_range("since=2023-11-14&until=2023-11-14"),
            (Some(1_699_920_000_000_000), Some(1_700_006_400_000_000))
        );
        assert_eq!(day_range("since=yesterday"), (None, None));
        assert_eq!(offset(61_000_000), "+1m 1s");
        assert_eq!(
            field("a=1&reason=looks+fine%21&e=", "reason").as_deref(),
            Some("looks fine!")
        );
        assert_eq!(field("e=", "e"), None);
        assert_eq!(seg("a b/c@d"), "a%20b%2Fc@d");
        assert_eq!(unseg(&seg("ü x/y%")), "ü x/y%");
        assert_eq!(unseg("100%"), "100%");
    }
}
