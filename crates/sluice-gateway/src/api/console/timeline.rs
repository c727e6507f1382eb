//! A recorded session as a timeline: each statement or request with what the guardrails
//! did to it, its review and the result (the masked, capped rows as a table); channels,
//! file transfers and notifications in between.

use super::page::{bytes, offset};
use maud::{html, Markup};
use sluice_core::{HttpExchange, QueryResult, SessionEvent};

/// Rows of a result shown on the page (the recording may hold more).
const SHOWN_ROWS: usize = 50;

/// Statements, requests and other items shown on one page; the download holds all.
const SHOWN_ITEMS: usize = 2000;

/// One statement and what followed it.
#[derive(Default)]
struct Step<'a> {
    at_us: i64,
    text: &'a str,
    params: Option<&'a [Option<String>]>,
    guard: Option<(&'a str, &'a str, &'a str, Option<&'a str>)>,
    decision: Option<(&'a str, &'a [String], Option<&'a str>)>,
    result: Option<&'a QueryResult>,
    http: Option<&'a HttpExchange>,
}

/// What the timeline shows, in order.
enum Item<'a> {
    Step(Step<'a>),
    Other(i64, Markup),
}

/// Stored events as `(ts_us, event)`; an event this build cannot read is left out.
pub fn parse(rows: &[sluice_store::EventRow]) -> Vec<(i64, SessionEvent)> {
    rows.iter()
        .filter_map(|e| Some((e.ts_us, serde_json::from_str(&e.data_json).ok()?)))
        .collect()
}

/// The timeline of `events` (`(ts_us, event)`, in order) of a session that started at
/// `start_us`.
pub fn timeline(start_us: i64, events: &[(i64, SessionEvent)]) -> Markup {
    let mut items: Vec<Item<'_>> = Vec::new();
    let mut index: std::collections::HashMap<u64, usize> = std::collections::HashMap::new();
    for (at_us, e) in events {
        let at_us = *at_us;
        match e {
            SessionEvent::Query(q) => {
                index.insert(q.id, items.len());
                items.push(Item::Step(Step {
                    at_us,
                    text: &q.text,
                    params: q.params.as_deref(),
                    ..Step::default()
                }));
            }
            SessionEvent::Guard {
                query,
                action,
                rule,
                reason,
                review,
            } => {
                if let Some(s) = step_of(&mut items, &index, *query) {
                    s.guard = Some((action, rule, reason, review.as_deref()));
                }
            }
            SessionEvent::Decision {
                query,
                decision,
                by,
                reason,
                ..
            } => {
                if let Some(s) = step_of(&mut items, &index, *query) {
                    s.decision = Some((decision, by, reason.as_deref()));
                }
            }
            SessionEvent::Result(r) => {
                if let Some(s) = step_of(&mut items, &index, r.query) {
                    s.result = Some(r);
                }
            }
            SessionEvent::Http(h) => {
                if let Some(s) = step_of(&mut items, &index, h.query) {
                    s.http = Some(h);
                }
            }
            SessionEvent::Channel(c) => items.push(Item::Other(
                at_us,
                html! { "Channel " (c.channel) ": " (c.purpose) @if let Some(d) = &c.detail { " " code { (d) } } },
            )),
            SessionEvent::File(f) => items.push(Item::Other(
                at_us,
                html! {
                    "File " (f.op) " " code { (f.path) }
                    @if let Some(to) = &f.to { " → " code { (to) } }
                    " (" (bytes(f.bytes)) ")"
                    @if let Some(h) = &f.sha256 { " sha256 " code.hash { (h) } }
                    @if let Some(e) = &f.error { " " span.bad { (e) } }
                },
            )),
            SessionEvent::Exit {
                channel,
                status,
                signal,
            } => items.push(Item::Other(
                at_us,
                html! {
                    "Channel " (channel) " exited"
                    @if let Some(s) = status { " with status " (s) }
                    @if let Some(s) = signal { " on signal " (s) }
                },
            )),
            SessionEvent::Notification { channel, payload } => items.push(Item::Other(
                at_us,
                html! { "Notification on " code { (channel) } ": " code { (payload) } },
            )),
            _ => {}
        }
    }
    if items.is_empty() {
        return html! { p.empty { "This session recorded no statement, request or transfer." } };
    }
    let more = items.len().saturating_sub(SHOWN_ITEMS);
    html! {
        ol.timeline data-testid="timeline" {
            @for item in items.iter().take(SHOWN_ITEMS) {
                @match item {
                    Item::Step(s) => li.step { (step(start_us, s)) },
                    Item::Other(at, m) => li.other { span.at { (offset(at - start_us)) } " " (m) },
                }
            }
        }
        @if more > 0 {
            p.muted { (more) " more items are not shown here; the recording's download holds every one." }
        }
    }
}

/// The step of statement `q`.
fn step_of<'x, 'a>(
    items: &'x mut [Item<'a>],
    index: &std::collections::HashMap<u64, usize>,
    q: u64,
) -> Option<&'x mut Step<'a>> {
    match items.get_mut(*index.get(&q)?) {
        Some(Item::Step(s)) => Some(s),
        _ => None,
    }
}

fn step(start_us: i64, s: &Step<'_>) -> Markup {
    html! {
        div.head {
            span.at { (offset(s.at_us - start_us)) }
            @if let Some((action, rule, reason, _)) = s.guard {
                span class={ "verdict " (action) } { (action) } " by " code { (rule) } ": " (reason)
            }
        }
        pre.statement { code { (s.text) } }
        @if let Some(params) = s.params {
            p.params { "Parameters: "
                @for (i, p) in params.iter().enumerate() {
                    code { "$" (i + 1) "=" (p.as_deref().unwrap_or("NULL")) } " "
                }
            }
        }
        @if let Some((_, _, _, Some(review))) = s.guard {
            p.review { "Review " code { (review) }
                @match s.decision {
                    Some((decision, by, reason)) => {
                        ": " strong { (decision) }
                        @if !by.is_empty() { " by " (by.join(", ")) }
                        @if let Some(r) = reason { " (" (r) ")" }
                    }
                    None => { ": waiting" }
                }
            }
        }
        @if let Some(h) = s.http {
            p.http {
                code { (h.method) " " (h.path) }
                @if let Some(status) = h.status { " → " (status) }
                " (" (bytes(h.request_bytes)) " up, " (bytes(h.response_bytes)) " down)"
                @if let Some(e) = &h.error { " " span.bad { (e) } }
            }
        }
        @if let Some(r) = s.result {
            (result(r))
        }
    }
}

fn result(r: &QueryResult) -> Markup {
    let o = &r.outcome;
    html! {
        p.outcome {
            @if let Some(e) = &o.error {
                span.bad { "Error " (e.code) ": " (e.message) }
            } @else if o.skipped {
                "Not run"
            } @else {
                (o.tags.join(", "))
                @if o.tags.is_empty() { "Done" }
                " · " (o.row_count) " row" @if o.row_count != 1 { "s" }
            }
            " · " (duration_ms(r.duration_us))
        }
        @if !r.columns.is_empty() {
            div.scroll {
                table.result {
                    thead { tr { @for c in &r.columns { th scope="col" { (c) } } } }
                    tbody {
                        @for row in r.rows.iter().take(SHOWN_ROWS) {
                            tr { @for v in row {
                                @match v {
                                    Some(v) => td { (v) },
                                    None => td.null { "NULL" },
                                }
                            } }
                        }
                    }
                }
            }
            @if r.rows_truncated || r.rows.len() > SHOWN_ROWS {
                p.muted { "Only the first rows are shown; the download holds what was recorded." }
            }
        }
    }
}

fn duration_ms(us: i64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{Query, StatementOutcome};

    #[test]
    fn a_statement_with_its_hold_decision_and_rows() {
        let events = vec![
            (
                1_000,
                SessionEvent::Query(Box::new(Query {
                    id: 1,
                    text: "delete from t <x>".into(),
                    params: None,
                })),
            ),
            (
                2_000,
                SessionEvent::Guard {
                    query: 1,
                    action: "held".into(),
                    rule: "review-deletes".into(),
                    reason: "deletes need a review".into(),
                    review: Some("rv-1".into()),
                },
            ),
            (
                3_000,
                SessionEvent::Decision {
                    query: 1,
                    review: "rv-1".into(),
                    decision: "approved".into(),
                    by: vec!["bob".into()],
                    reason: None,
                },
            ),
            (
                4_000,
                SessionEvent::Result(Box::new(QueryResult {
                    query: 1,
                    columns: vec!["card".into()],
                    rows: vec![vec![Some("****".into())], vec![None]],
                    rows_truncated: false,
                    outcome: StatementOutcome {
                        tags: vec!["DELETE 2".into()],
                        row_count: 2,
                        error: None,
                        skipped: false,
                    },
                    duration_us: 1500,
                })),
            ),
        ];
        let html = timeline(0, &events).into_string();
        assert!(html.contains("delete from t &lt;x&gt;"), "{html}");
        assert!(html.contains("review-deletes"));
        assert!(html.contains("<strong>approved</strong> by bob"));
        assert!(html.contains("<td>****</td>"));
        assert!(html.contains("NULL"));
        assert!(html.contains("DELETE 2 · 2 rows · 1.5 ms"), "{html}");
    }
}
