//! The reviews inbox: pending reviews and access requests the person may see, with Approve
//! and Deny (and a reason) where they may decide.

use super::{escape, layout};
use crate::api::reviews::visible;
use crate::api::roles::RoleSet;
use crate::api::ApiState;
use sluice_core::{Identity, Review};
use sluice_pipeline::reviews::may_decide;

/// The inbox page's body.
pub async fn inbox(
    state: &ApiState,
    who: &Identity,
    roles: RoleSet,
    notice: Option<&str>,
) -> String {
    let pending = state
        .pipeline
        .store()
        .run(|c| sluice_store::reviews::list(c, true, 500, 0))
        .await
        .unwrap_or_default();
    let shown: Vec<&Review> = pending.iter().filter(|r| visible(r, who, roles)).collect();
    let mut body = String::new();
    if let Some(n) = notice {
        body.push_str(&format!(
            "<p role=\"status\" class=\"notice\">{}</p>",
            escape(n)
        ));
    }
    if shown.is_empty() {
        body.push_str("<p class=\"empty\">No review is waiting for a decision.</p>");
        return layout("Reviews", who, &body);
    }
    body.push_str(
        "<table><caption>Waiting for a decision</caption><thead><tr><th scope=\"col\">Review</th>\
         <th scope=\"col\">Requester</th><th scope=\"col\">Connection</th><th scope=\"col\">Rule</th>\
         <th scope=\"col\">Statement or request</th><th scope=\"col\">Approvals</th>\
         <th scope=\"col\">Decide</th></tr></thead><tbody>",
    );
    for r in shown {
        let what = r.statement.as_deref().unwrap_or(&r.reason);
        let decide = match may_decide(r, who, roles.default_approver()) {
            Ok(()) => format!(
                "<form method=\"post\" action=\"/console/reviews/{id}/decide\" class=\"decide\">\
                 <label for=\"reason-{id}\">Reason</label>\
                 <input id=\"reason-{id}\" name=\"reason\" maxlength=\"500\">\
                 <button type=\"submit\" name=\"decision\" value=\"approve\">Approve</button>\
                 <button type=\"submit\" name=\"decision\" value=\"deny\">Deny</button></form>",
                id = escape(&r.id)
            ),
            Err(e) => format!("<span class=\"muted\">{}</span>", escape(&e.to_string())),
        };
        body.push_str(&format!(
            "<tr data-review=\"{id}\"><td>{id}</td><td>{req}</td><td>{conn}</td><td>{rule}</td>\
             <td><code>{what}</code></td><td>{got}/{need}</td><td>{decide}</td></tr>",
            id = escape(&r.id),
            req = escape(&r.requester),
            conn = escape(&r.connection),
            rule = escape(r.rule.as_deref().unwrap_or("access request")),
            what = escape(what),
            got = r.approvals.len(),
            need = r.approvals_required,
        ));
    }
    body.push_str("</tbody></table>");
    layout("Reviews", who, &body)
}

/// Applies a decision from the inbox's form (`decision=approve|deny&reason=…`); the notice
/// the inbox shows next.
pub async fn decide(
    state: &ApiState,
    who: &Identity,
    roles: RoleSet,
    id: &str,
    form: &str,
) -> String {
    let field = |name: &str| {
        form.split('&')
            .filter_map(|kv| kv.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| decode_form(v))
    };
    let approve = match field("decision").as_deref() {
        Some("approve") => true,
        Some("deny") => false,
        _ => return "Choose Approve or Deny.".into(),
    };
    let reason = field("reason").filter(|r| !r.trim().is_empty());
    match state
        .pipeline
        .decide(id, who, roles.default_approver(), approve, reason)
        .await
    {
        Ok(r) => format!("Review {} is {}.", r.id, r.status.as_str()),
        Err(e) => format!("Review {id}: {e}"),
    }
}

/// `application/x-www-form-urlencoded` value → text.
pub(crate) fn decode_form(v: &str) -> String {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn form_values_are_decoded() {
        assert_eq!(super::decode_form("looks+fine%21%20ok"), "looks fine! ok");
    }
}
