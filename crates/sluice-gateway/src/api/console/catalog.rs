//! The catalog pages: identities (block, unblock), service accounts and tokens (create,
//! revoke), connections and grants (add, remove), agents (add, revoke). Everyone who reads
//! everything sees them; only admins get the forms. Lists come from the API's handlers.

use super::page::{bytes, html_page, layout, notice, seg, time, Ctx};
use crate::api::auth::Reader;
use crate::api::{admin, agents, containment};
use axum::extract::State;
use hyper::{Response, StatusCode};
use maud::{html, Markup};
use sluice_http::body::RespBody;

/// Tokens shown on the identities page.
const SHOWN_TOKENS: usize = 200;

fn reader(ctx: &Ctx<'_>) -> (State<crate::api::ApiState>, Reader) {
    (State(ctx.state.clone()), Reader(ctx.who.clone()))
}

fn failed(ctx: &Ctx<'_>, what: &str, e: crate::api::ApiError) -> Response<RespBody> {
    super::page::message(ctx, e.0, what, &e.1)
}

/// Identities, service accounts and tokens.
pub async fn identities(ctx: &Ctx<'_>, done: Option<&str>) -> Response<RespBody> {
    let (s, r) = reader(ctx);
    let people = match containment::list(s, r).await {
        Ok(l) => l.0,
        Err(e) => return failed(ctx, "Identities", e),
    };
    let (s, r) = reader(ctx);
    let mut tokens = match admin::list_tokens(s, r).await {
        Ok(l) => l.0,
        Err(e) => return failed(ctx, "Identities", e),
    };
    // Every sign-in makes a token: the newest ones, the rest through the API.
    tokens.sort_by_key(|t| std::cmp::Reverse(t.created_us));
    let older = tokens.len().saturating_sub(SHOWN_TOKENS);
    tokens.truncate(SHOWN_TOKENS);
    let admin = ctx.roles.admin;
    let body = html! {
        (notice(done))
        section aria-labelledby="people" {
            h2 #people { "Identities" }
            @if people.is_empty() { p.empty { "No identity has signed in yet." } } @else {
                table data-testid="identities" {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Groups" } th scope="col" { "Status" } @if admin { th scope="col" { "Actions" } } } }
                    tbody { @for p in &people {
                        tr data-identity=(p.name) {
                            td { (p.name) } td { (p.kind) } td { (p.groups.join(", ")) }
                            td { @match p.blocked_us {
                                Some(at) => { span.bad { "blocked" } " " (time(at)) @if let Some(r) = &p.blocked_reason { ": " (r) } }
                                None => { "active" }
                            } }
                            @if admin { td.actions {
                                @if p.blocked_us.is_some() {
                                    form.inline method="post" action={ "/console/identities/" (seg(&p.name)) "/unblock" } {
                                        button type="submit" { "Unblock" }
                                    }
                                } @else if p.name != ctx.who.name {
                                    a href={ "/console/identities/" (seg(&p.name)) "/block" } { "Block…" }
                                }
                            } }
                        }
                    } }
                }
            }
        }
        @if admin {
            section aria-labelledby="new-sa" {
                h2 #new-sa { "New service account" }
                form.row method="post" action="/console/service-accounts" {
                    label { "Name" input name="name" required pattern="[A-Za-z0-9._-]{1,63}"; }
                    label { "Groups (comma-separated)" input name="groups"; }
                    label { "Token lifetime (days, empty: none)" input name="ttl_days" type="number" min="1"; }
                    button type="submit" { "Create" }
                }
            }
        }
        section aria-labelledby="tokens" {
            h2 #tokens { "Tokens" }
            @if tokens.is_empty() { p.empty { "No token." } } @else {
                table data-testid="tokens" {
                    thead { tr { th scope="col" { "Token" } th scope="col" { "Identity" } th scope="col" { "Created" } th scope="col" { "Expires" } th scope="col" { "Status" } } }
                    tbody { @for t in &tokens {
                        tr {
                            td { code { (t.id) } } td { (t.identity) " (" (t.kind) ")" } td { (time(t.created_us)) }
                            td { @match t.expires_us { Some(x) => { (time(x)) } None => { "never" } } }
                            td { @match t.revoked_us {
                                Some(at) => { "revoked " (time(at)) }
                                None => {
                                    "valid"
                                    @if admin {
                                        form.inline method="post" action={ "/console/tokens/" (seg(&t.id)) "/revoke" }
                                            data-confirm="Revoke this token? Whoever holds it is refused from now on." {
                                            button type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            } }
                        }
                    } }
                }
                @if older > 0 {
                    p.muted { (older) " older tokens are not shown (" a href="/api/v1/tokens" { "all tokens" } ")." }
                }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(ctx, "/console/identities", "Identities", body),
    )
}

/// Connections and grants.
pub async fn connections(ctx: &Ctx<'_>, done: Option<&str>) -> Response<RespBody> {
    let (s, r) = reader(ctx);
    let conns = admin::list_connections(s, r).await.0;
    let (s, r) = reader(ctx);
    let grants = admin::list_grants(s, r).await.0;
    let admin = ctx.roles.admin;
    let body = html! {
        (notice(done))
        section aria-labelledby="conns" {
            h2 #conns { "Connections" }
            @if conns.is_empty() { p.empty { "No connection." } } @else {
                table data-testid="connections" {
                    thead { tr { th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Target" } th scope="col" { "Via" } th scope="col" { "Defined in" } } }
                    tbody { @for c in &conns {
                        tr {
                            td { (c.name.0) } td { (c.protocol.as_str()) }
                            td { code { (c.host) ":" (c.port) } @if let Some(u) = &c.username { " as " (u) } }
                            td { (c.via.as_deref().unwrap_or("direct")) }
                            td { @if c.from_config { "config file" } @else {
                                "runtime"
                                @if admin {
                                    form.inline method="post" action={ "/console/connections/" (seg(&c.name.0)) "/remove" }
                                        data-confirm="Remove this connection and its grants?" {
                                        button type="submit" { "Remove" }
                                    }
                                }
                            } }
                        }
                    } }
                }
            }
            @if admin {
                h3 { "New connection" }
                form.row method="post" action="/console/connections" aria-label="Add a connection" {
                    label { "Name" input name="name" required pattern="[A-Za-z0-9._-]{1,63}"; }
                    label { "Type"
                        select name="type" required {
                            @for t in ["postgres", "mysql", "ssh", "http", "kubernetes"] { option value=(t) { (t) } }
                        }
                    }
                    label { "Host" input name="host" required; }
                    label { "Port" input name="port" type="number" min="1" max="65535" required; }
                    label { "Database" input name="database"; }
                    label { "Username" input name="username"; }
                    label { "Password from env" input name="password_env" placeholder="VARIABLE"; }
                    label { "Via agent" input name="via"; }
                    button type="submit" { "Add connection" }
                }
                p.muted { "Guardrails, masking and access rules are set in the config file." }
            }
        }
        section aria-labelledby="grants" {
            h2 #grants { "Grants" }
            @if grants.is_empty() { p.empty { "No grant: nobody but admins reaches a connection." } } @else {
                table data-testid="grants" {
                    thead { tr { th scope="col" { "Group" } th scope="col" { "Connection" } th scope="col" { "Defined in" } } }
                    tbody { @for g in &grants {
                        tr {
                            td { (g.group) } td { (g.connection.0) }
                            td { @if g.from_config { "config file" } @else {
                                "runtime"
                                @if admin {
                                    form.inline method="post" action="/console/grants/remove" {
                                        input type="hidden" name="group" value=(g.group);
                                        input type="hidden" name="connection" value=(g.connection.0);
                                        button type="submit" { "Remove" }
                                    }
                                }
                            } }
                        }
                    } }
                }
            }
            @if admin {
                form.row method="post" action="/console/grants" aria-label="Grant a group a connection" {
                    label { "Group" input name="group" required; }
                    label { "Connection"
                        select name="connection" required {
                            @for c in &conns { option value=(c.name.0) { (c.name.0) } }
                        }
                    }
                    button type="submit" { "Grant" }
                }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(ctx, "/console/connections", "Connections", body),
    )
}

/// Agents with their tunnels.
pub async fn agents(ctx: &Ctx<'_>, done: Option<&str>) -> Response<RespBody> {
    let (s, r) = reader(ctx);
    let list = match agents::list(s, r).await {
        Ok(l) => l.0,
        Err(e) => return failed(ctx, "Agents", e),
    };
    let admin = ctx.roles.admin;
    let body = html! {
        (notice(done))
        @if list.is_empty() { p.empty { "No agent. An agent reaches targets inside a private network." } } @else {
            table data-testid="agents" {
                thead { tr { th scope="col" { "Name" } th scope="col" { "Enrolled" } th scope="col" { "Tunnel" } th scope="col" { "Status" } } }
                tbody { @for a in &list {
                    tr {
                        td { (a.agent.name) }
                        td { @match a.agent.enrolled_us { Some(at) => { (time(at)) } None => { span.muted { "waiting for enrollment" } } } }
                        td { @match &a.tunnel {
                            Some(t) => { "version " (t.version) " from " code { (t.peer) } " since " (time(t.connected_since_us))
                                " · " (t.streams) " streams · " (bytes(t.bytes_to_agent + t.bytes_from_agent)) }
                            None => { span.muted { "not connected" } }
                        } }
                        td { @match a.agent.revoked_us {
                            Some(at) => { span.bad { "revoked" } " " (time(at)) }
                            None => {
                                "active"
                                @if admin {
                                    form.inline method="post" action={ "/console/agents/" (seg(&a.agent.name)) "/revoke" }
                                        data-confirm="Revoke this agent? Its tunnel closes and sessions through it end." {
                                        button.danger type="submit" { "Revoke" }
                                    }
                                }
                            }
                        } }
                    }
                } }
            }
        }
        @if admin {
            section aria-labelledby="new-agent" {
                h2 #new-agent { "New agent" }
                form.row method="post" action="/console/agents" {
                    label { "Name" input name="name" required pattern="[A-Za-z0-9._-]{1,63}"; }
                    button type="submit" { "Add agent" }
                }
            }
        }
    };
    html_page(
        StatusCode::OK,
        layout(ctx, "/console/agents", "Agents", body),
    )
}

/// A secret shown once (a new service account's token, an agent's enrollment token).
pub fn secret_once(
    ctx: &Ctx<'_>,
    current: &str,
    title: &str,
    what: Markup,
    secret: &str,
) -> Response<RespBody> {
    let body = html! {
        p { (what) }
        p { "It is shown only now; copy it somewhere safe." }
        pre.secret data-testid="secret" { (secret) }
        p { a href=(current) { "Back" } }
    };
    html_page(StatusCode::CREATED, layout(ctx, current, title, body))
}
