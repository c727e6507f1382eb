//! The console's forms. Each change is the API's own handler called with the signed-in
//! identity (so roles, validation and the audit trail are the API's), then back to the page
//! the form came from with what happened.

use super::catalog::secret_once;
use super::page::{back_to, field, Ctx};
use super::reviews;
use crate::api::admin::{self, GrantRequest, NewServiceAccount};
use crate::api::agents::{self, NewAgent};
use crate::api::auth::{Admin, Peer};
use crate::api::containment::{self, BlockRequest};
use crate::api::{ApiError, ApiState};
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use hyper::{Response, StatusCode};
use maud::html;
use sluice_http::body::RespBody;

/// What an admin's call needs: the state, the admin, where they are.
type AdminCall = (State<ApiState>, Admin, Extension<Peer>);

fn admin_call(ctx: &Ctx<'_>) -> AdminCall {
    (
        State(ctx.state.clone()),
        Admin(ctx.who.clone()),
        Extension(Peer(ctx.peer)),
    )
}

/// What a failed call tells the person.
fn said(e: ApiError) -> String {
    e.1
}

/// Applies the form posted to `segments`.
pub async fn post(ctx: &Ctx<'_>, segments: &[&str], form: &str) -> Response<RespBody> {
    if let ["reviews", id, "decide"] = segments {
        let done = reviews::decide(ctx, id, form).await;
        return back_to("/console/reviews", &done);
    }
    if !ctx.roles.admin {
        return super::page::message(
            ctx,
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Only admins make this change.",
        );
    }
    let (s, a, p) = admin_call(ctx);
    match segments {
        ["sessions", id, "kill"] => {
            let back = field(form, "back")
                .filter(|b| b.starts_with("/console/") && !b.starts_with("//"))
                .unwrap_or_else(|| "/console/live".into());
            let done = match containment::kill_session(s, a, p, Path(id.to_string())).await {
                Ok(_) => format!("Session {} was terminated.", super::session::short(id)),
                Err(e) => said(e),
            };
            back_to(&back, &done)
        }
        ["identities", name, "block"] => {
            let Some(reason) = field(form, "reason") else {
                return back_to("/console/identities", "A block needs a reason.");
            };
            let body = Some(Json(BlockRequest {
                reason: Some(reason),
            }));
            let done = match containment::block(s, a, p, Path(name.to_string()), body).await {
                Ok(Json(v)) => format!(
                    "{name} is blocked: {} token(s) revoked, {} live session(s) ended.",
                    v["tokens_revoked"],
                    v["sessions_killed"].as_array().map_or(0, Vec::len)
                ),
                Err(e) => said(e),
            };
            back_to("/console/identities", &done)
        }
        ["identities", name, "unblock"] => {
            let done = match containment::unblock(s, a, p, Path(name.to_string())).await {
                Ok(_) => format!("{name} is unblocked."),
                Err(e) => said(e),
            };
            back_to("/console/identities", &done)
        }
        ["tokens", id, "revoke"] => {
            let done = match admin::revoke_token(s, a, p, Path(id.to_string())).await {
                Ok(_) => format!("Token {id} is revoked."),
                Err(e) => said(e),
            };
            back_to("/console/identities", &done)
        }
        ["service-accounts"] => {
            let name = field(form, "name").unwrap_or_default();
            let groups = field(form, "groups")
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            let ttl_seconds = field(form, "ttl_days")
                .and_then(|d| d.trim().parse::<u64>().ok())
                .map(|d| d.saturating_mul(86_400));
            let req = NewServiceAccount {
                name: name.clone(),
                groups,
                ttl_seconds,
            };
            match admin::create_service_account(s, a, p, Json(req)).await {
                Ok((_, Json(issued))) => secret_once(
                    ctx,
                    "/console/identities",
                    "Service account created",
                    html! { "The first token of " strong { (name) } ":" },
                    &issued.token,
                ),
                Err(e) => back_to("/console/identities", &said(e)),
            }
        }
        ["grants"] | ["grants", "remove"] => {
            let req = GrantRequest {
                group: field(form, "group").unwrap_or_default(),
                connection: field(form, "connection").unwrap_or_default(),
            };
            let what = format!("{} → {}", req.group, req.connection);
            let done = if segments.len() == 1 {
                match admin::add_grant(s, a, p, Json(req)).await {
                    Ok(_) => format!("Granted {what}."),
                    Err(e) => said(e),
                }
            } else {
                match admin::remove_grant(s, a, p, Query(req)).await {
                    Ok(_) => format!("Removed the grant {what}."),
                    Err(e) => said(e),
                }
            };
            back_to("/console/connections", &done)
        }
        ["connections"] => {
            let mut fields = serde_json::Map::new();
            for key in [
                "name",
                "type",
                "host",
                "database",
                "username",
                "password_env",
                "via",
            ] {
                if let Some(v) = field(form, key) {
                    fields.insert(key.into(), v.into());
                }
            }
            let port = field(form, "port").and_then(|p| p.trim().parse::<u16>().ok());
            fields.insert("port".into(), port.unwrap_or(0).into());
            let req = match serde_json::from_value(fields.into()) {
                Ok(r) => r,
                Err(e) => {
                    return back_to("/console/connections", &format!("Invalid connection: {e}"))
                }
            };
            let done = match admin::add_connection(s, a, p, Json(req)).await {
                Ok((_, Json(c))) => format!("Connection {} is added.", c.name.0),
                Err(e) => said(e),
            };
            back_to("/console/connections", &done)
        }
        ["connections", name, "remove"] => {
            let done = match admin::remove_connection(s, a, p, Path(name.to_string())).await {
                Ok(_) => format!("Connection {name} is removed."),
                Err(e) => said(e),
            };
            back_to("/console/connections", &done)
        }
        ["agents"] => {
            let name = field(form, "name").unwrap_or_default();
            let req = NewAgent {
                name: name.clone(),
                ttl_seconds: None,
                public_key: None,
            };
            match agents::create(s, a, p, Json(req)).await {
                Ok((_, Json(created))) => secret_once(
                    ctx,
                    "/console/agents",
                    "Agent added",
                    html! { "Enroll " strong { (name) } " within the hour with "
                    code { "sluice agent --gateway https://THIS-GATEWAY --token TOKEN" } ". Its one-time token:" },
                    created.token.as_deref().unwrap_or(""),
                ),
                Err(e) => back_to("/console/agents", &said(e)),
            }
        }
        ["agents", name, "revoke"] => {
            let done = match agents::revoke(s, a, p, Path(name.to_string())).await {
                Ok(_) => format!("Agent {name} is revoked."),
                Err(e) => said(e),
            };
            back_to("/console/agents", &done)
        }
        _ => super::page::message(
            ctx,
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such form.",
        ),
    }
}
