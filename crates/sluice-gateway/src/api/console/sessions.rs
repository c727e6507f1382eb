//! The sessions list: filters (identity, connection, protocol, denials, reviews, text in
//! statements), newest first, a page at a time. A user sees its own sessions only.

use super::page::{duration, html_page, layout, seg, time, Ctx};
use hyper::{Response, StatusCode};
use maud::html;
use sluice_http::body::RespBody;
use sluice_store::{recordings, SessionFilter};

/// Sessions per page.
const PAGE: u32 = 50;

/// Protocols offered in the filter.
const PROTOCOLS: &[&str] = &["postgres", "mysql", "ssh", "http", "kubernetes", "command"];

/// The filter a query string asks for (empty fields are no filter).
fn filter(query: &str) -> SessionFilter {
    let mut f: SessionFilter = serde_urlencoded::from_str(query).unwrap_or_default();
    for v in [
        &mut f.identity,
        &mut f.connection,
        &mut f.protocol,
        &mut f.q,
        &mut f.cursor,
    ] {
        if v.as_deref().is_some_and(|s| s.trim().is_empty()) {
            *v = None;
        }
    }
    (f.since_us, f.until_us) = super::page::day_range(query);
    f.limit = Some(PAGE);
    f
}

/// The sessions page.
pub async fn list(ctx: &Ctx<'_>, query: &str) -> Response<RespBody> {
    let mut f = filter(query);
    if !ctx.roles.reads_all() {
        f.identity = Some(ctx.who.name.clone());
    }
    let shown = f.clone();
    let page = super::page::read_store(ctx, move |c| recordings::page_sessions(c, &f)).await;
    let page = match page {
        Ok(p) => p,
        Err(e) => {
            return super::page::message(
                ctx,
                StatusCode::BAD_REQUEST,
                "Sessions",
                &format!("The sessions could not be listed: {e}"),
            )
        }
    };
    let next = page
        .next_cursor
        .as_deref()
        .map(|c| super::page::next_page("/console/sessions", query, c));
    let now = sluice_core::time::now_micros();
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let body = html! {
        form.filters method="get" action="/console/sessions" role="search" aria-label="Filter sessions" {
            @if ctx.roles.reads_all() {
                label { "Identity" input name="identity" value=(text(&shown.identity)); }
            }
            label { "Connection" input name="connection" value=(text(&shown.connection)); }
            label { "Protocol"
                select name="protocol" {
                    option value="" { "any" }
                    @for p in PROTOCOLS {
                        option value=(p) selected[shown.protocol.as_deref() == Some(*p)] { (p) }
                    }
                }
            }
            label { "Statement contains" input name="q" type="search" value=(text(&shown.q)); }
            label { "From (UTC)" input name="since" type="date" value=(super::page::field(query, "since").unwrap_or_default()); }
            label { "To (UTC)" input name="until" type="date" value=(super::page::field(query, "until").unwrap_or_default()); }
            label.check { input type="checkbox" name="has_denials" value="true" checked[shown.has_denials]; "with denials" }
            label.check { input type="checkbox" name="has_reviews" value="true" checked[shown.has_reviews]; "with reviews" }
            label.check { input type="checkbox" name="live" value="true" checked[shown.live]; "live only" }
            button type="submit" { "Filter" }
        }
        @if page.sessions.is_empty() {
            p.empty { "No session matches." }
        } @else {
            table data-testid="sessions" {
                caption { "Sessions, newest first" }
                thead { tr {
                    th scope="col" { "Started" } th scope="col" { "Identity" }
                    th scope="col" { "Connection" } th scope="col" { "Protocol" }
                    th scope="col" { "Duration" } th scope="col" { "Ended" }
                } }
                tbody {
                    @for s in &page.sessions {
                        tr {
                            td { a href={ "/console/sessions/" (seg(&s.id)) } { (time(s.started_us)) } }
                            td { (s.identity) }
                            td { (s.connection) }
                            td { (s.protocol) }
                            td { (duration(s.ended_us.unwrap_or(now) - s.started_us)) }
                            td {
                                @match &s.end_reason {
                                    Some(r) => { (r.replace('_', " ")) }
                                    None => { span.live { "live" } }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(href) = next {
                p { a href=(href) rel="next" { "Older sessions" } }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(ctx, "/console/sessions", "Sessions", body),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn empty_fields_are_no_filter() {
        let f = super::filter("identity=&connection=pg&has_denials=true&q=");
        assert_eq!(f.identity, None);
        assert_eq!(f.connection.as_deref(), Some("pg"));
        assert!(f.has_denials && !f.has_reviews);
        assert_eq!(f.q, None);
    }
}
