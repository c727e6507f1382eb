//! The audit log: newest first, filtered by action (prefix), actor, session, connection and
//! outcome, a page at a time.

use super::page::{html_page, layout, seg, time, Ctx};
use hyper::{Response, StatusCode};
use maud::html;
use sluice_http::body::RespBody;
use sluice_store::{recordings, AuditFilter};

/// Events per page.
const PAGE: u32 = 100;

fn filter(query: &str) -> AuditFilter {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, v)| n == k && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    };
    AuditFilter {
        action: get("action"),
        actor: get("actor"),
        session: get("session"),
        connection: get("connection"),
        outcome: get("outcome"),
        cursor: get("cursor").and_then(|c| c.parse().ok()),
        limit: Some(PAGE),
        since_us: super::page::day_range(query).0,
        until_us: super::page::day_range(query).1,
    }
}

/// The audit page.
pub async fn page(ctx: &Ctx<'_>, query: &str) -> Response<RespBody> {
    let f = filter(query);
    let shown = f.clone();
    let page = super::page::read_store(ctx, move |c| recordings::audit_page(c, &f)).await;
    let page = match page {
        Ok(p) => p,
        Err(e) => return super::page::message(ctx, StatusCode::BAD_REQUEST, "Audit log", &e),
    };
    let next = page
        .next_cursor
        .map(|c| super::page::next_page("/console/audit", query, &c.to_string()));
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/console/audit" role="search" aria-label="Filter the audit log" {
            label { "Action (prefix)" input name="action" value=(text(&shown.action)) placeholder="statement."; }
            label { "Actor" input name="actor" value=(text(&shown.actor)); }
            label { "Connection" input name="connection" value=(text(&shown.connection)); }
            label { "Session" input name="session" value=(text(&shown.session)); }
            label { "From (UTC)" input name="since" type="date" value=(super::page::field(query, "since").unwrap_or_default()); }
            label { "To (UTC)" input name="until" type="date" value=(super::page::field(query, "until").unwrap_or_default()); }
            label { "Outcome"
                select name="outcome" {
                    option value="" { "any" }
                    @for o in ["success", "failure"] {
                        option value=(o) selected[shown.outcome.as_deref() == Some(o)] { (o) }
                    }
                }
            }
            button type="submit" { "Filter" }
        }
        @if page.events.is_empty() {
            p.empty { "No audit event matches." }
        } @else {
            table data-testid="audit" {
                caption { "Audit events, newest first" }
                thead { tr {
                    th scope="col" { "Time" } th scope="col" { "Action" } th scope="col" { "Outcome" }
                    th scope="col" { "Actor" } th scope="col" { "Connection" } th scope="col" { "Detail" }
                } }
                tbody { @for e in &page.events {
                    tr {
                        td { (time(e.ts_us)) }
                        td { code { (e.action) } }
                        td { span class=(e.outcome.as_str()) { (e.outcome.as_str()) } }
                        td { @if let Some(a) = &e.actor { (a.name) } }
                        td { (e.connection.as_deref().unwrap_or("")) }
                        td {
                            @if let Some(s) = &e.session_id { a href={ "/console/sessions/" (seg(s)) } { "session" } " " }
                            @if let Some(r) = &e.rule { "rule " code { (r) } " " }
                            @if let Some(t) = &e.target { code { (t) } " " }
                            @if let Some(s) = &e.statement { code { (s) } " " }
                            @if let Some(r) = &e.reason { span.muted { (r) } }
                        }
                    }
                } }
            }
            @if let Some(href) = next {
                p { a href=(href) rel="next" { "Older events" } }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(ctx, "/console/audit", "Audit log", body),
    )
}
