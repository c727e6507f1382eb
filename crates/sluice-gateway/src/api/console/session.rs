//! One session: metadata, identity and groups, integrity, policy events and reviews,
//! masking counts, downloads, and the replay: a terminal player for terminal sessions, the
//! statement timeline for the others. Live sessions offer Watch, Terminate and Block.

use super::page::{bytes, duration, html_page, layout, seg, time, Ctx};
use super::timeline::timeline;
use crate::api::auth::Caller;
use crate::api::sessions::{chain_verdict, load, read_your_writes};
use hyper::{Response, StatusCode};
use maud::{html, Markup};
use sluice_core::SessionEvent;
use sluice_http::body::RespBody;
use sluice_store::SessionRow;
use std::collections::BTreeMap;

/// The session page.
pub async fn detail(ctx: &Ctx<'_>, id: &str) -> Response<RespBody> {
    let caller = Caller(ctx.who.clone(), ctx.roles);
    let loaded = match read_your_writes(ctx.state).await {
        Ok(()) => load(ctx.state, id.to_string(), &caller).await,
        Err(e) => Err(e),
    };
    let (session, rows) = match loaded {
        Ok(l) => l,
        Err(e) => return super::page::message(ctx, e.0, "Session", &e.1),
    };
    let chain = chain_verdict(&session, &rows);
    let events = super::timeline::parse(&rows);
    let terminal = events.iter().any(|(_, e)| match e {
        SessionEvent::Io(io) => io.stream != "in",
        _ => false,
    });
    let live = session.ended_us.is_none() && ctx.state.pipeline.live().watch(id).is_some();
    let sid = seg(&session.id);
    let body = html! {
        (summary(&session, rows.len(), &chain))
        @if live {
            section aria-labelledby="live" {
                h2 #live { "Live" }
                p.actions {
                    a href={ "/console/live/" (sid) } { "Watch live" }
                    @if ctx.roles.admin {
                        (super::live::terminate_form(&session.id, &format!("/console/sessions/{sid}")))
                        a href={ "/console/identities/" (seg(&session.identity)) "/block" } { "Block " (session.identity) "…" }
                    }
                }
            }
        }
        (policy(&events))
        (masking(&events))
        section aria-labelledby="downloads" {
            h2 #downloads { "Download" }
            ul {
                li { a href={ "/api/v1/sessions/" (sid) "/events" } download={ (session.id) ".jsonl" } { "Recording (JSON lines, with the hash chain)" } }
                @if terminal {
                    li { a href={ "/api/v1/sessions/" (sid) "/asciicast" } { "Terminal (asciicast v2, plays in asciinema)" } }
                }
            }
        }
        section aria-labelledby="replay" {
            h2 #replay { "Replay" }
            @if terminal {
                div.player data-replay={ "/api/v1/sessions/" (sid) "/terminal" } data-testid="player" {
                    p.muted { "Loading the terminal…" }
                }
            }
            (timeline(session.started_us, &events))
        }
    };
    let title = format!("Session {}", short(&session.id));
    html_page(
        StatusCode::OK,
        layout(ctx, "/console/sessions", &title, body),
    )
}

/// The first block of a session id.
pub fn short(id: &str) -> &str {
    id.split('-').next().unwrap_or(id)
}

fn summary(s: &SessionRow, stored: usize, chain: &str) -> Markup {
    let end = s.ended_us.unwrap_or_else(sluice_core::time::now_micros);
    html! {
        dl data-testid="summary" {
            dt { "Session" } dd { code { (s.id) } }
            dt { "Identity" } dd data-testid="session-identity" { (s.identity) " (" (s.identity_kind) ")"
                @if let Some(sub) = &s.subject { " · subject " code { (sub) } } }
            dt { "Groups" } dd { @if s.groups.is_empty() { span.muted { "none" } } @else { (s.groups.join(", ")) } }
            dt { "Connection" } dd { (s.connection) " · " (s.protocol) " · target " code { (s.target) } }
            dt { "Client" } dd { code { (s.client_addr) } }
            dt { "Started" } dd { (time(s.started_us)) }
            dt { "Ended" } dd {
                @match (s.ended_us, &s.end_reason) {
                    (Some(at), reason) => { (time(at)) " · " (reason.as_deref().unwrap_or("").replace('_', " ")) }
                    (None, _) => { span.live { "live" } }
                }
                " · " (duration(end - s.started_us))
            }
            dt { "Recording" } dd {
                (stored) " events · hash chain "
                @if chain == "ok" { span.good { "intact" } } @else { span.bad { (chain) } }
                @if let Some(key) = &s.manifest_key { " · manifest signed by key " code { (key) } }
            }
        }
    }
}

/// Denied and held statements with their decisions.
fn policy(events: &[(i64, SessionEvent)]) -> Markup {
    let mut statements: BTreeMap<u64, &str> = BTreeMap::new();
    let mut decisions: BTreeMap<&str, (&str, String)> = BTreeMap::new();
    for (_, e) in events {
        match e {
            SessionEvent::Query(q) => {
                statements.insert(q.id, &q.text);
            }
            SessionEvent::Decision {
                review,
                decision,
                by,
                ..
            } => {
                decisions.insert(review, (decision, by.join(", ")));
            }
            _ => {}
        }
    }
    let guards: Vec<_> = events
        .iter()
        .filter_map(|(at, e)| match e {
            SessionEvent::Guard {
                query,
                action,
                rule,
                reason,
                review,
            } => Some((at, query, action, rule, reason, review)),
            _ => None,
        })
        .collect();
    html! {
        section aria-labelledby="policy" {
            h2 #policy { "Policy events" }
            @if guards.is_empty() {
                p.empty { "Nothing was denied or held." }
            } @else {
                table data-testid="policy" {
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Action" } th scope="col" { "Rule" }
                        th scope="col" { "Statement" } th scope="col" { "Review" }
                    } }
                    tbody { @for (at, query, action, rule, reason, review) in &guards {
                        tr {
                            td { (time(**at)) }
                            td { span class={ "verdict " (action) } { (action) } }
                            td { code { (rule) } br; span.muted { (reason) } }
                            td { code { (statements.get(query).copied().unwrap_or("")) } }
                            td { @if let Some(r) = review {
                                code { (r) } ": "
                                @match decisions.get(r.as_str()) {
                                    Some((d, by)) => { (d) @if !by.is_empty() { " by " (by) } }
                                    None => { "waiting" }
                                }
                            } }
                        }
                    } }
                }
            }
        }
    }
}

/// Masked values per kind.
fn masking(events: &[(i64, SessionEvent)]) -> Markup {
    let counts = events.iter().rev().find_map(|(_, e)| match e {
        SessionEvent::Masking { counts } => Some(counts),
        _ => None,
    });
    let moved: u64 = events
        .iter()
        .map(|(_, e)| match e {
            SessionEvent::ChannelEnd {
                bytes_up,
                bytes_down,
                ..
            } => bytes_up + bytes_down,
            _ => 0,
        })
        .sum();
    html! {
        section aria-labelledby="masking" {
            h2 #masking { "Masking" }
            @match counts {
                Some(c) if !c.is_empty() => {
                    dl data-testid="masking" { @for (kind, n) in c { dt { (kind) } dd { (n) " value" @if *n != 1 { "s" } " masked" } } }
                }
                _ => { p.empty { "No value was masked." } }
            }
            @if moved > 0 { p { "Channels carried " (bytes(moved)) "." } }
        }
    }
}
