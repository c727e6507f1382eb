//! The web console: server-rendered pages under `/console` for operators, approvers and
//! auditors. People sign in through the identity provider (`/console/.sluice/login`, the
//! same OIDC code flow as HTTP connections), which leaves a `sluice_console` cookie; the
//! pages and the API calls their script makes use it (changes only from the gateway's own
//! origin). Pages carry a strict Content-Security-Policy: no inline script or style.
//!
//! Every action a page offers is the API's own handler, called with the signed-in identity,
//! so the console checks roles, validates and audits exactly as the API does.
//!
//! - [`page`]: layout, answers, formatting.
//! - [`sessions`], [`session`], [`timeline`]: the sessions list, one session with its
//!   replay (terminal player or statement timeline).
//! - [`live`]: live sessions, watching one, Terminate, Block identity.
//! - [`reviews`]: the reviews inbox.
//! - [`catalog`]: identities and tokens, connections and grants, agents.
//! - [`audit`]: the audit log.
//! - [`actions`]: the forms' changes.

mod actions;
mod audit;
mod catalog;
mod live;
mod page;
mod reviews;
mod session;
mod sessions;
mod timeline;

use super::web_login::{cookie, WebLogin, CONSOLE_COOKIE};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use maud::html;
use page::{html_page, layout, respond, Ctx};
use sluice_core::Secret;
use sluice_http::body::RespBody;
use std::net::SocketAddr;

/// The console's style sheet.
const STYLE: &str = include_str!("console.css");
/// The console's script: the terminal player, live updates, confirmations.
const SCRIPT: &str = include_str!("console.js");

/// Largest form body the console reads.
const MAX_FORM: usize = 16 * 1024;

/// The page a path under `/console` asks for (`""` for the home page), if it is one.
pub fn page_of(path: &str) -> Option<&str> {
    match path {
        "/console" => Some(""),
        _ => path.strip_prefix("/console/"),
    }
}

/// Serves console page `page` to the person at `peer`.
pub async fn serve(
    web: &WebLogin,
    page: &str,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<RespBody> {
    match page {
        "console.css" => return respond(StatusCode::OK, "text/css; charset=utf-8", STYLE.into()),
        "console.js" => {
            return respond(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                SCRIPT.into(),
            )
        }
        _ => {}
    }
    let state = web.state();
    let identity = match cookie(req.headers(), CONSOLE_COOKIE) {
        Some(token) => state.pipeline.authenticate(&Secret::new(token)).await.ok(),
        None => None,
    };
    let Some(who) = identity else {
        // Back to this very page after the sign-in.
        let here = req
            .uri()
            .path_and_query()
            .map_or("/console/", |p| p.as_str());
        let mut r = page::see_other(&format!(
            "/console/.sluice/login?return={}",
            sluice_http::headers::percent_encode(here)
        ));
        *r.status_mut() = StatusCode::FOUND;
        return r;
    };
    let ctx = Ctx {
        state,
        roles: state.roles.of(&who),
        who: &who,
        peer,
    };
    let query = req.uri().query().unwrap_or_default().to_string();
    let (parts, body) = req.into_parts();
    let segments: Vec<String> = page
        .trim_end_matches('/')
        .split('/')
        .map(page::unseg)
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    if parts.method == Method::GET || parts.method == Method::HEAD {
        drop(body);
        return get(&ctx, &segments, &query).await;
    }
    // A cookie comes with other sites' requests too: changes only from these pages.
    if parts.method != Method::POST || !super::auth::same_origin(&parts) {
        return page::message(
            &ctx,
            StatusCode::FORBIDDEN,
            "Refused",
            "A change must come from the console's own pages.",
        );
    }
    let form = match http_body_util::BodyExt::collect(http_body_util::Limited::new(body, MAX_FORM))
        .await
    {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
        Err(_) => {
            return page::message(
                &ctx,
                StatusCode::PAYLOAD_TOO_LARGE,
                "Refused",
                "The form is too large.",
            )
        }
    };
    actions::post(&ctx, &segments, &form).await
}

/// The pages.
async fn get(ctx: &Ctx<'_>, segments: &[&str], query: &str) -> Response<RespBody> {
    let done = page::field(query, "done");
    let done = done.as_deref();
    let reader = ctx.roles.reads_all();
    match segments {
        [""] => html_page(StatusCode::OK, home(ctx)),
        ["sessions"] => sessions::list(ctx, query).await,
        ["sessions", id] => session::detail(ctx, id).await,
        ["reviews"] => html_page(StatusCode::OK, reviews::inbox(ctx, done).await),
        ["live"] if reader => live::list(ctx, done),
        ["live", id] => live::watch(ctx, id).await,
        ["identities"] if reader => catalog::identities(ctx, done).await,
        ["identities", name, "block"] if ctx.roles.admin => live::confirm_block(ctx, name),
        ["connections"] if reader => catalog::connections(ctx, done).await,
        ["agents"] if reader => catalog::agents(ctx, done).await,
        ["audit"] if reader => audit::page(ctx, query).await,
        ["live" | "identities" | "connections" | "agents" | "audit", ..] => page::message(
            ctx,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "This page is for admins and auditors.",
        ),
        _ => page::message(
            ctx,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such page.",
        ),
    }
}

fn home(ctx: &Ctx<'_>) -> String {
    let who = ctx.who;
    let live = ctx.state.pipeline.live().count();
    let body = html! {
        section aria-labelledby="you" {
            h2 #you { "Signed in" }
            dl {
                dt { "Identity" } dd data-testid="identity" { (who.name) }
                dt { "Groups" } dd { (who.groups.join(", ")) }
                dt { "Roles" } dd data-testid="roles" { (ctx.roles.names().join(", ")) }
            }
        }
        section aria-labelledby="now" {
            h2 #now { "Now" }
            ul {
                @if ctx.roles.reads_all() {
                    li { a href="/console/live" { (live) " live session" @if live != 1 { "s" } } }
                }
                li { a href="/console/reviews" { "Reviews waiting for a decision" } }
                li { a href="/console/sessions" { "Recorded sessions" } }
            }
        }
        section aria-labelledby="api" {
            h2 #api { "API" }
            p {
                "Every action of the console is an API call: "
                a href="/api/v1/openapi.json" { "the API's OpenAPI document" } "."
            }
        }
    };
    layout(ctx, "/console/", "sluice console", body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages() {
        assert_eq!(page_of("/console"), Some(""));
        assert_eq!(page_of("/console/"), Some(""));
        assert_eq!(page_of("/console/sessions"), Some("sessions"));
        assert_eq!(page_of("/consoles"), None);
    }
}
