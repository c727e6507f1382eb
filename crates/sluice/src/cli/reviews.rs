//! `sluice reviews …` (list, show, approve, deny) and `sluice access request`.

use super::client::{enc, Api};
use super::render::{table, ts};
use clap::Subcommand;
use serde_json::json;
use sluice_core::{Review, ReviewKind, ReviewStatus};

/// Review commands.
#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// List reviews you asked for or may decide (admins: all), newest first.
    List {
        /// Only pending ones.
        #[arg(long)]
        pending: bool,
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one review.
    Show {
        /// Review id (`rv-…`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Approve a review (a held statement runs once enough approvers agree).
    Approve {
        /// Review id.
        id: String,
        /// Why (kept with the review and in the session's recording).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a review (a held statement fails in its session).
    Deny {
        /// Review id.
        id: String,
        /// Why (shown to the requester).
        #[arg(long)]
        reason: Option<String>,
    },
}

/// Access commands.
#[derive(Debug, Subcommand)]
pub enum AccessCmd {
    /// Ask for time-boxed access to a connection that requires approval.
    Request {
        /// Connection.
        connection: String,
        /// For how long (`30m`, `1h`, `90s`).
        #[arg(long = "for", value_name = "DURATION")]
        duration: String,
        /// Why you need it (shown to approvers).
        #[arg(long)]
        reason: String,
    },
}

/// Runs a review command.
pub fn run(api: &Api, cmd: ReviewCmd) -> anyhow::Result<()> {
    match cmd {
        ReviewCmd::List {
            pending,
            limit,
            json,
        } => {
            let list: Vec<Review> =
                api.get(&format!("/api/v1/reviews?pending={pending}&limit={limit}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|r| {
                    vec![
                        r.id.clone(),
                        r.kind.as_str().to_string(),
                        status(r),
                        r.requester.clone(),
                        r.connection.clone(),
                        ts(r.created_us),
                        subject(r),
                    ]
                })
                .collect();
            table(
                &[
                    "ID",
                    "KIND",
                    "STATUS",
                    "REQUESTER",
                    "CONNECTION",
                    "CREATED",
                    "WHAT",
                ],
                &rows,
            );
            Ok(())
        }
        ReviewCmd::Show { id, json } => {
            let r: Review = api.get(&format!("/api/v1/reviews/{}", enc(&id)))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                print_review(&r);
            }
            Ok(())
        }
        ReviewCmd::Approve { id, reason } => decide(api, &id, "approve", reason),
        ReviewCmd::Deny { id, reason } => decide(api, &id, "deny", reason),
    }
}

/// Runs an access command.
pub fn access(api: &Api, cmd: AccessCmd) -> anyhow::Result<()> {
    match cmd {
        AccessCmd::Request {
            connection,
            duration,
            reason,
        } => {
            let r = api.post(
                "/api/v1/access-requests",
                json!({ "connection": connection, "duration": duration, "reason": reason }),
            )?;
            let r: Review = serde_json::from_value(r)?;
            println!(
                "access request {} filed: {} for {} on {}",
                r.id, r.requester, duration, r.connection
            );
            println!(
                "waiting for {} approval(s) by {}; an approver runs: sluice reviews approve {}",
                r.approvals_required,
                groups(&r),
                r.id
            );
            Ok(())
        }
    }
}

fn decide(api: &Api, id: &str, verb: &str, reason: Option<String>) -> anyhow::Result<()> {
    let r = api.post(
        &format!("/api/v1/reviews/{}/{verb}", enc(id)),
        json!({ "reason": reason }),
    )?;
    let r: Review = serde_json::from_value(r)?;
    match r.status {
        ReviewStatus::Pending => println!(
            "approved {}: {} of {} approvals, still pending",
            r.id,
            r.approvals.len(),
            r.approvals_required
        ),
        ReviewStatus::Approved => match r.access_until_us {
            Some(until) => println!("approved {}: access until {}", r.id, ts(until)),
            None => println!("approved {}: the statement runs now", r.id),
        },
        s => println!("{} {}", s.as_str(), r.id),
    }
    Ok(())
}

fn status(r: &Review) -> String {
    if r.status == ReviewStatus::Pending {
        format!("pending {}/{}", r.approvals.len(), r.approvals_required)
    } else {
        r.status.as_str().to_string()
    }
}

fn groups(r: &Review) -> String {
    if r.approver_groups.is_empty() {
        "a gateway admin".into()
    } else {
        format!("group {}", r.approver_groups.join(" or "))
    }
}

fn subject(r: &Review) -> String {
    match r.kind {
        ReviewKind::Command => {
            let s = r.statement.as_deref().unwrap_or("");
            let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
            if one_line.chars().count() > 60 {
                format!("{}…", one_line.chars().take(59).collect::<String>())
            } else {
                one_line
            }
        }
        ReviewKind::Access => format!("{}s: {}", r.access_secs.unwrap_or(0), r.reason),
    }
}

fn print_review(r: &Review) {
    println!("review      {}", r.id);
    println!("kind        {}", r.kind.as_str());
    println!("status      {}", status(r));
    println!(
        "requester   {} ({})",
        r.requester,
        r.requester_groups.join(",")
    );
    println!("connection  {}", r.connection);
    if let Some(s) = &r.session_id {
        println!("session     {s}");
    }
    if let Some(rule) = &r.rule {
        println!("rule        {rule}");
    }
    println!("reason      {}", r.reason);
    println!("approvers   {}", groups(r));
    println!("created     {}", ts(r.created_us));
    println!("deadline    {}", ts(r.deadline_us));
    if let Some(secs) = r.access_secs {
        println!("access      {secs}s");
    }
    if let Some(u) = r.access_until_us {
        println!("until       {}", ts(u));
    }
    for a in &r.approvals {
        println!(
            "approved by {} at {}{}",
            a.by,
            ts(a.at_us),
            a.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    if let Some(d) = &r.denial {
        println!(
            "denied by   {} at {}{}",
            d.by,
            ts(d.at_us),
            d.reason
                .as_ref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
    }
    if let Some(s) = &r.statement {
        println!("statement\n{s}");
    }
}
