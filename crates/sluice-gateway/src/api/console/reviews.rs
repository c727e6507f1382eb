//! The reviews inbox: pending reviews and access requests the person may see, with Approve
//! and Deny (and a reason) where they may decide. The list follows the live review feed:
//! the page's script reloads it when a review is created or decided.

use super::page::{field, layout, notice, Ctx};
use crate::api::reviews::visible;
use maud::html;
use sluice_core::Review;
use sluice_pipeline::reviews::may_decide;

/// The inbox page.
pub async fn inbox(ctx: &Ctx<'_>, done: Option<&str>) -> String {
    let pending = ctx
        .state
        .pipeline
        .store()
        .run(|c| sluice_store::reviews::list(c, true, 500, 0))
        .await
        .unwrap_or_default();
    let shown: Vec<&Review> = pending
        .iter()
        .filter(|r| visible(r, ctx.who, ctx.roles))
        .collect();
    let body = html! {
        (notice(done))
        div data-follow="/api/v1/live/reviews" {}
        @if shown.is_empty() {
            p.empty { "No review is waiting for a decision." }
        } @else {
            table {
                caption { "Waiting for a decision" }
                thead { tr {
                    th scope="col" { "Review" } th scope="col" { "Requester" }
                    th scope="col" { "Connection" } th scope="col" { "Rule" }
                    th scope="col" { "Statement or request" } th scope="col" { "Approvals" }
                    th scope="col" { "Decide" }
                } }
                tbody {
                    @for r in shown {
                        tr data-review=(r.id) {
                            td { (r.id) }
                            td { (r.requester) }
                            td { (r.connection) }
                            td { (r.rule.as_deref().unwrap_or("access request")) }
                            td { code { (r.statement.as_deref().unwrap_or(&r.reason)) } }
                            td { (r.approvals.len()) "/" (r.approvals_required) }
                            td {
                                @match may_decide(r, ctx.who, ctx.roles.default_approver()) {
                                    Ok(()) => {
                                        form.decide method="post" action={ "/console/reviews/" (super::page::seg(&r.id)) "/decide" } {
                                            label for={ "reason-" (r.id) } { "Reason" }
                                            input id={ "reason-" (r.id) } name="reason" maxlength="500";
                                            button type="submit" name="decision" value="approve" { "Approve" }
                                            button type="submit" name="decision" value="deny" { "Deny" }
                                        }
                                    }
                                    Err(e) => { span.muted { (e) } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout(ctx, "/console/reviews", "Reviews", body)
}

/// Applies a decision from the inbox's form (`decision=approve|deny&reason=…`); the notice
/// the inbox shows next.
pub async fn decide(ctx: &Ctx<'_>, id: &str, form: &str) -> String {
    let approve = match field(form, "decision").as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => return "Choose Approve or Deny.".into(),
    };
    match ctx
        .state
        .pipeline
        .decide(
            id,
            ctx.who,
            ctx.roles.default_approver(),
            approve,
            field(form, "reason"),
        )
        .await
    {
        Ok(r) => format!("Review {} is {}.", r.id, r.status.as_str()),
        Err(e) => format!("Review {id}: {e}"),
    }
}
