//! Session commands: list, show, replay, export; and the audit tail.

use super::client::{enc, Api};
use super::render::{table, ts};
use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::Value;
use sluice_terminal::recording as asciicast;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Subcommand)]
pub enum SessionCmd {
    /// List sessions, newest first.
    List(ListArgs),
    /// Show a session: metadata, integrity and its statements.
    Show {
        /// Session id.
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Play a session back at its recorded pace: a terminal session's screen as it was
    /// (like `asciinema play`), other sessions as a timeline of statements and results.
    Replay {
        /// Session id.
        id: String,
        /// Speed factor (2 = twice as fast).
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// The SSH channel to play (default: the first shell).
        #[arg(long)]
        channel: Option<u64>,
        /// Print the timeline even for a terminal session.
        #[arg(long)]
        timeline: bool,
    },
    /// Export a session's recording.
    Export {
        /// Session id.
        id: String,
        /// `jsonl` (every stored event with its hash) or `asciicast` (a terminal, asciicast
        /// v2 for `asciinema play`).
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// For asciicast: the SSH channel (default: the first shell).
        #[arg(long)]
        channel: Option<u64>,
    },
    /// End a live session now: its in-flight statement is cancelled on the target.
    Kill {
        /// Session id.
        id: String,
    },
}

pub fn run(api: &Api, cmd: SessionCmd) -> anyhow::Result<()> {
    match cmd {
        SessionCmd::List(args) => list(api, args),
        SessionCmd::Show { id, json } => show(api, &id, json),
        SessionCmd::Replay {
            id,
            speed,
            channel,
            timeline,
        } => replay(api, &id, speed, channel, timeline),
        SessionCmd::Kill { id } => {
            api.post(
                &format!("/api/v1/sessions/{}/kill", enc(&id)),
                serde_json::json!({}),
            )?;
            println!("killed {id}");
            Ok(())
        }
        SessionCmd::Export {
            id,
            format,
            channel,
        } => {
            let text = match format.as_str() {
                "jsonl" => api.get_text(&format!("/api/v1/sessions/{}/events", enc(&id)))?,
                "asciicast" => {
                    let t = asciicast::terminal(&events(api, &id)?, channel)
                        .with_context(|| format!("session {id} recorded no terminal output"))?;
                    asciicast::to_asciicast(&t)
                }
                _ => bail!("unknown format {format:?}: use jsonl or asciicast"),
            };
            std::io::stdout().write_all(text.as_bytes())?;
            Ok(())
        }
    }
}

fn parse_since(s: &str) -> anyhow::Result<i64> {
    let t = match humantime::parse_duration(s) {
        Ok(d) => SystemTime::now() - d,
        Err(_) => humantime::parse_rfc3339_weak(s)
            .with_context(|| format!("--since {s:?}: use a duration (1h) or an RFC 3339 time"))?,
    };
    Ok(t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0))
}

/// Filters of `sluice sessions list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    /// Only this identity.
    #[arg(long)]
    identity: Option<String>,
    /// Only this connection.
    #[arg(long)]
    connection: Option<String>,
    /// Only this protocol (postgres, mysql, ssh, command, http, kubernetes).
    #[arg(long)]
    protocol: Option<String>,
    /// Only sessions started since this time (RFC 3339) or this long ago (e.g. 1h).
    #[arg(long)]
    since: Option<String>,
    /// Only sessions still running.
    #[arg(long)]
    live: bool,
    /// Only sessions in which the guard denied something.
    #[arg(long)]
    denied: bool,
    /// Only sessions in which something was held for review.
    #[arg(long)]
    held: bool,
    /// Only sessions whose recording contains this text (statements, commands, requests).
    #[arg(long)]
    search: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn list(api: &Api, a: ListArgs) -> anyhow::Result<()> {
    let mut q = format!(
        "/api/v1/sessions?limit={}&live={}&has_denials={}&has_reviews={}",
        a.limit, a.live, a.denied, a.held
    );
    for (key, value) in [
        ("identity", &a.identity),
        ("connection", &a.connection),
        ("protocol", &a.protocol),
        ("q", &a.search),
    ] {
        if let Some(v) = value {
            q.push_str(&format!("&{key}={}", enc(v)));
        }
    }
    if let Some(s) = &a.since {
        q.push_str(&format!("&since_us={}", parse_since(s)?));
    }
    let sessions: Vec<Value> = api.get(&q)?;
    let json = a.json;
    if json {
        println!("{}", serde_json::to_string_pretty(&sessions)?);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            vec![
                s["id"].as_str().unwrap_or_default().to_string(),
                s["identity"].as_str().unwrap_or_default().to_string(),
                s["connection"].as_str().unwrap_or_default().to_string(),
                s["client_addr"].as_str().unwrap_or_default().to_string(),
                s["started_us"].as_i64().map(ts).unwrap_or_default(),
                s["end_reason"].as_str().unwrap_or("live").to_string(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "IDENTITY",
            "CONNECTION",
            "CLIENT",
            "STARTED",
            "STATUS",
        ],
        &rows,
    );
    Ok(())
}

fn events(api: &Api, id: &str) -> anyhow::Result<Vec<Value>> {
    let text = api.get_text(&format!("/api/v1/sessions/{}/events", enc(id)))?;
    text.lines()
        .map(|l| serde_json::from_str(l).context("invalid event line"))
        .collect()
}

fn show(api: &Api, id: &str, json: bool) -> anyhow::Result<()> {
    let detail: Value = api.get(&format!("/api/v1/sessions/{}", enc(id)))?;
    let evs = events(api, id)?;
    if json {
        let out = serde_json::json!({ "session": detail, "events": evs });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let s = |k: &str| detail[k].as_str().unwrap_or("-").to_string();
    println!("session     {}", s("id"));
    println!(
        "identity    {} ({})  groups: {}",
        s("identity"),
        s("identity_kind"),
        detail["groups"]
    );
    println!(
        "connection  {} ({}) → {}",
        s("connection"),
        s("protocol"),
        s("target")
    );
    println!("client      {}", s("client_addr"));
    println!(
        "started     {}",
        detail["started_us"].as_i64().map(ts).unwrap_or_default()
    );
    println!(
        "ended       {} ({})",
        detail["ended_us"]
            .as_i64()
            .map(ts)
            .unwrap_or_else(|| "live".into()),
        s("end_reason")
    );
    println!(
        "integrity   {} ({} events)",
        s("chain"),
        detail["events_stored"]
    );
    println!();
    for e in &evs {
        print_event(e);
    }
    Ok(())
}

fn replay(
    api: &Api,
    id: &str,
    speed: f64,
    channel: Option<u64>,
    timeline: bool,
) -> anyhow::Result<()> {
    if !(speed > 0.0 && speed.is_finite()) {
        bail!("--speed must be a positive number");
    }
    let evs = events(api, id)?;
    let terminal = (!timeline)
        .then(|| asciicast::terminal(&evs, channel))
        .flatten();
    if let Some(t) = terminal {
        let mut out = std::io::stdout().lock();
        let mut pace = Pace::new(speed);
        for f in t.frames.iter().filter(|f| f.code == "o") {
            pace.wait_until(f.at_us);
            out.write_all(f.data.as_bytes())?;
            out.flush()?;
        }
        return Ok(());
    }
    let mut pace = Pace::new(speed);
    for e in &evs {
        pace.wait_until(e["ts_us"].as_i64().unwrap_or(0));
        print_event(e);
        std::io::stdout().flush()?;
    }
    Ok(())
}

/// Replays recorded time: waits out the gap since the previous event, divided by the speed;
/// long idle gaps are shortened to 5 s, as terminal players do.
struct Pace {
    speed: f64,
    prev: Option<i64>,
}

impl Pace {
    fn new(speed: f64) -> Pace {
        Pace { speed, prev: None }
    }

    fn wait_until(&mut self, at_us: i64) {
        if let Some(p) = self.prev {
            let gap = ((at_us - p).max(0) as f64 / self.speed).min(5_000_000.0);
            std::thread::sleep(Duration::from_micros(gap as u64));
        }
        self.prev = Some(at_us);
    }
}

fn print_event(e: &Value) {
    let ev = &e["event"];
    let at = e["ts_us"].as_i64().map(ts).unwrap_or_default();
    match ev["kind"].as_str().unwrap_or_default() {
        "start" => println!(
            "{at}  session start: {} → {} from {}",
            ev["identity"]["name"].as_str().unwrap_or_default(),
            ev["connection"].as_str().unwrap_or_default(),
            ev["client_addr"].as_str().unwrap_or_default()
        ),
        "query" => {
            let params = match ev["params"].as_array() {
                Some(p) => format!("  params: {}", Value::Array(p.clone())),
                None => String::new(),
            };
            println!(
                "{at}  #{} {}{params}",
                ev["id"],
                ev["text"].as_str().unwrap_or_default()
            );
        }
        "result" => print_result(&at, ev),
        "notification" => println!(
            "{at}  NOTIFY {}: {}",
            ev["channel"].as_str().unwrap_or_default(),
            ev["payload"].as_str().unwrap_or_default()
        ),
        "guard" => println!(
            "{at}  #{} {} by rule {}: {}{}",
            ev["query"],
            ev["action"].as_str().unwrap_or_default().to_uppercase(),
            ev["rule"].as_str().unwrap_or_default(),
            ev["reason"].as_str().unwrap_or_default(),
            ev["review"]
                .as_str()
                .map(|r| format!(" (review {r})"))
                .unwrap_or_default()
        ),
        "decision" => println!(
            "{at}  #{} review {} {} by {}{}",
            ev["query"],
            ev["review"].as_str().unwrap_or_default(),
            ev["decision"].as_str().unwrap_or_default(),
            ev["by"],
            ev["reason"]
                .as_str()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
        "masking" => println!("{at}  masked values: {}", ev["counts"]),
        "end" => println!(
            "{at}  session end: {}{}",
            ev["reason"].as_str().unwrap_or_default(),
            ev["detail"]
                .as_str()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        ),
        other => println!("{at}  {other}: {ev}"),
    }
}

fn print_result(at: &str, ev: &Value) {
    let outcome = &ev["outcome"];
    let status = if let Some(err) = outcome["error"].as_object() {
        format!(
            "ERROR {}: {}",
            err.get("code").and_then(Value::as_str).unwrap_or_default(),
            err.get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )
    } else if outcome["skipped"].as_bool() == Some(true) {
        "skipped (an earlier statement failed)".to_string()
    } else {
        outcome["tags"]
            .as_array()
            .map(|t| {
                t.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    println!(
        "{at}  #{} → {status}  ({} rows, {} µs)",
        ev["query"], outcome["row_count"], ev["duration_us"]
    );
    let columns: Vec<&str> = ev["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = ev["rows"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    r.as_array()
                        .map(|cells| {
                            cells
                                .iter()
                                .map(|c| {
                                    c.as_str()
                                        .map(str::to_string)
                                        .unwrap_or_else(|| "NULL".into())
                                })
                                .collect()
                        })
                        .unwrap_or_default()
                })
                .collect()
        })
        .unwrap_or_default();
    if !rows.is_empty() {
        let headers: Vec<&str> = if columns.is_empty() {
            vec![""; rows[0].len()]
        } else {
            columns
        };
        table(&headers, &rows);
        if ev["rows_truncated"].as_bool() == Some(true) {
            println!("… (more rows were returned than recorded)");
        }
    }
}

/// Filters of `sluice audit`.
#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// How many.
    #[arg(long, default_value_t = 50)]
    limit: u32,
    /// Only actions starting with this (`session.`, `statement.denied`).
    #[arg(long)]
    action: Option<String>,
    /// Only events of this identity (or agent).
    #[arg(long)]
    actor: Option<String>,
    /// Only events of this session.
    #[arg(long)]
    session: Option<String>,
    /// Only events of this connection.
    #[arg(long)]
    connection: Option<String>,
    /// Only `success` or `failure`.
    #[arg(long)]
    outcome: Option<String>,
    /// Print JSON lines.
    #[arg(long)]
    json: bool,
}

/// Prints the newest audit events matching `a`, oldest first.
pub fn audit(api: &Api, a: AuditArgs) -> anyhow::Result<()> {
    let mut q = format!("/api/v1/audit?limit={}", a.limit);
    for (key, value) in [
        ("action", &a.action),
        ("actor", &a.actor),
        ("session", &a.session),
        ("connection", &a.connection),
        ("outcome", &a.outcome),
    ] {
        if let Some(v) = value {
            q.push_str(&format!("&{key}={}", enc(v)));
        }
    }
    let events: Vec<Value> = api.get(&q)?;
    let json = a.json;
    for e in &events {
        if json {
            println!("{e}");
        } else {
            println!(
                "{}  {:<22} {:<8} {:<18} {}",
                e["ts_us"].as_i64().map(ts).unwrap_or_default(),
                e["action"].as_str().unwrap_or_default(),
                e["outcome"].as_str().unwrap_or_default(),
                e["actor"]["name"].as_str().unwrap_or("-"),
                e["reason"].as_str().or(e["target"].as_str()).unwrap_or("")
            );
        }
    }
    Ok(())
}
