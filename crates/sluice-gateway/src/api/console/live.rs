//! Live sessions: who is connected where, for how long, how much was recorded; watching a
//! live terminal or statement feed; Terminate and Block identity (with a confirmation and a
//! reason).

use super::page::{bytes, duration, html_page, layout, notice, seg, time, Ctx};
use hyper::{Response, StatusCode};
use maud::{html, Markup};
use sluice_http::body::RespBody;

/// Protocols whose sessions are terminals (watched in the player).
const TERMINALS: &[&str] = &["ssh", "command"];

/// The live sessions page.
pub fn list(ctx: &Ctx<'_>, done: Option<&str>) -> Response<RespBody> {
    let live = ctx.state.pipeline.live().list();
    let now = sluice_core::time::now_micros();
    let body = html! {
        (notice(done))
        p { a href="/console/live" { "Refresh" } }
        @if live.is_empty() {
            p.empty { "No session is live on this gateway." }
        } @else {
            table data-testid="live" {
                caption { "Live on this gateway" }
                thead { tr {
                    th scope="col" { "Identity" } th scope="col" { "Connection" }
                    th scope="col" { "Protocol" } th scope="col" { "Started" }
                    th scope="col" { "Duration" } th scope="col" { "Recorded" }
                    th scope="col" { "Actions" }
                } }
                tbody { @for s in &live {
                    tr data-session=(s.id) {
                        td { (s.identity) }
                        td { (s.connection) }
                        td { (s.protocol) }
                        td { (time(s.started_us)) }
                        td { (duration(now - s.started_us)) }
                        td { (s.events) " events, " (bytes(s.recorded_bytes)) }
                        td.actions {
                            a href={ "/console/live/" (seg(&s.id)) } { "Watch" }
                            a href={ "/console/sessions/" (seg(&s.id)) } { "Details" }
                            @if ctx.roles.admin {
                                (terminate_form(&s.id, "/console/live"))
                                a href={ "/console/identities/" (seg(&s.identity)) "/block" } { "Block identity…" }
                            }
                        }
                    }
                } }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(ctx, "/console/live", "Live sessions", body),
    )
}

/// The Terminate button of session `id`; the console comes back to `back`.
pub fn terminate_form(id: &str, back: &str) -> Markup {
    html! {
        form.inline method="post" action={ "/console/sessions/" (seg(id)) "/kill" }
            data-confirm="End this session now? The client is disconnected with an error." {
            input type="hidden" name="back" value=(back);
            button.danger type="submit" { "Terminate" }
        }
    }
}

/// Watching live session `id`: its terminal, or its statements as they come.
pub async fn watch(ctx: &Ctx<'_>, id: &str) -> Response<RespBody> {
    let entry = ctx
        .state
        .pipeline
        .live()
        .list()
        .into_iter()
        .find(|s| s.id == id);
    let Some(s) = entry.filter(|s| ctx.roles.reads_all() || s.identity == ctx.who.name) else {
        let body = html! {
            p.empty { "This session is not live on this gateway (any more)." }
            p { a href={ "/console/sessions/" (seg(id)) } { "The recorded session" } }
        };
        return html_page(
            StatusCode::NOT_FOUND,
            layout(ctx, "/console/live", "Not live", body),
        );
    };
    let sid = seg(&s.id);
    let terminal = TERMINALS.contains(&s.protocol.as_str());
    // What happened before the page opened; the script adds what follows.
    let so_far = match terminal {
        true => None,
        false => {
            let caller = crate::api::auth::Caller(ctx.who.clone(), ctx.roles);
            let _ = crate::api::sessions::read_your_writes(ctx.state).await;
            crate::api::sessions::load(ctx.state, s.id.clone(), &caller)
                .await
                .ok()
                .map(|(session, rows)| {
                    let events = super::timeline::parse(&rows);
                    let last = rows.last().map(|e| e.seq);
                    (super::timeline::timeline(session.started_us, &events), last)
                })
        }
    };
    let body = html! {
        dl {
            dt { "Identity" } dd { (s.identity) }
            dt { "Connection" } dd { (s.connection) " · " (s.protocol) }
            dt { "Started" } dd { (time(s.started_us)) }
        }
        p.actions {
            a href={ "/console/sessions/" (sid) } { "Details" }
            @if ctx.roles.admin {
                (terminate_form(&s.id, "/console/live"))
                a href={ "/console/identities/" (seg(&s.identity)) "/block" } { "Block " (s.identity) "…" }
            }
        }
        p.status role="status" data-testid="live-status" { "Connecting…" }
        @if terminal {
            div.player data-live={ "/api/v1/live/sessions/" (sid) "/terminal" } data-testid="player" {}
        } @else {
            h2 { "So far" }
            @let after = so_far.as_ref().and_then(|s| s.1).map(|n| format!("?after={n}")).unwrap_or_default();
            @if let Some((t, _)) = &so_far { (t) }
            h2 { "From now on" }
            ol.timeline data-live-events={ "/api/v1/live/sessions/" (sid) (after) } data-testid="live-events" {}
        }
    };
    html_page(
        StatusCode::OK,
        layout(
            ctx,
            "/console/live",
            &format!("Watching {}", s.identity),
            body,
        ),
    )
}

/// The confirmation before blocking identity `name`: what it does, a required reason.
pub fn confirm_block(ctx: &Ctx<'_>, name: &str) -> Response<RespBody> {
    let live = ctx
        .state
        .pipeline
        .live()
        .list()
        .into_iter()
        .filter(|s| s.identity == name)
        .count();
    let body = html! {
        p {
            "Blocking " strong { (name) } " revokes its tokens, ends its "
            (live) " live session" @if live != 1 { "s" }
            " at once, and refuses it everywhere until it is unblocked."
        }
        form.stacked method="post" action={ "/console/identities/" (seg(name)) "/block" } {
            label for="block-reason" { "Reason (kept with the block and in the audit log)" }
            textarea #block-reason name="reason" required maxlength="500" rows="3" {}
            div.actions {
                button.danger type="submit" { "Block " (name) }
                a href="/console/identities" { "Cancel" }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(ctx, "/console/identities", &format!("Block {name}?"), body),
    )
}
