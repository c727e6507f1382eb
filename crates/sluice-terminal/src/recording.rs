//! A recorded terminal as asciicast v2 (the format `asciinema play` plays), taken from a
//! session's stored events: the output of one channel with its pty size, typed input and
//! window changes.

use base64::Engine;
use serde_json::{json, Value};

/// One channel's terminal, as recorded.
#[derive(Debug)]
pub struct Terminal {
    /// Columns.
    pub width: u64,
    /// Rows.
    pub height: u64,
    /// `TERM`, when the pty request named it.
    pub term: Option<String>,
    /// The session's start (µs since the epoch).
    pub start_us: i64,
    /// Output, input and resizes, in order.
    pub frames: Vec<Frame>,
}

/// One timed event of the terminal.
#[derive(Debug, PartialEq)]
pub struct Frame {
    /// µs since the epoch.
    pub at_us: i64,
    /// `o` output, `i` input, `r` resize.
    pub code: &'static str,
    pub data: String,
}

/// The terminal of `channel`, or of the session's first shell (else first channel with
/// output) when `channel` is `None`; `None` when the session recorded no terminal output.
pub fn terminal(events: &[Value], channel: Option<u64>) -> Option<Terminal> {
    let ev = |e: &'_ Value| e["event"].clone();
    let channel = channel.or_else(|| terminal_channel(events))?;
    let start_us = events
        .first()
        .and_then(|e| e["ts_us"].as_i64())
        .unwrap_or(0);
    let mut t = Terminal {
        width: 80,
        height: 24,
        term: None,
        start_us,
        frames: Vec::new(),
    };
    for e in events {
        let event = ev(e);
        if event["channel"].as_u64() != Some(channel) {
            continue;
        }
        let at_us = e["ts_us"].as_i64().unwrap_or(start_us);
        match event["kind"].as_str().unwrap_or_default() {
            "channel" => {
                let pty = &event["pty"];
                t.width = pty["cols"].as_u64().unwrap_or(t.width);
                t.height = pty["rows"].as_u64().unwrap_or(t.height);
                t.term = pty["term"].as_str().map(str::to_string);
            }
            "resize" => t.frames.push(Frame {
                at_us,
                code: "r",
                data: format!("{}x{}", event["cols"], event["rows"]),
            }),
            "io" => {
                let code = if event["stream"] == "in" { "i" } else { "o" };
                let data = String::from_utf8_lossy(&io_bytes(&event)).into_owned();
                t.frames.push(Frame { at_us, code, data });
            }
            _ => {}
        }
    }
    t.frames.iter().any(|f| f.code == "o").then_some(t)
}

/// The channel a recording's terminal is on: its first shell, else the first channel that
/// carried bytes.
pub fn terminal_channel(events: &[Value]) -> Option<u64> {
    let kind = |e: &Value, k: &str| e["event"]["kind"] == k;
    let shell = events
        .iter()
        .find(|e| kind(e, "channel") && e["event"]["purpose"] == "shell");
    let first_io = || events.iter().find(|e| kind(e, "io"));
    shell
        .or_else(first_io)
        .and_then(|e| e["event"]["channel"].as_u64())
}

/// The bytes of a recorded `io` event (text, or base64 where the bytes were not UTF-8).
pub fn io_bytes(event: &Value) -> Vec<u8> {
    let text = event["data"].as_str().unwrap_or_default();
    if event["base64"] == true {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .unwrap_or_default()
    } else {
        text.as_bytes().to_vec()
    }
}

/// The asciicast v2 file: a header line, then one `[seconds, code, data]` line per frame.
pub fn to_asciicast(t: &Terminal) -> String {
    let mut header = json!({
        "version": 2,
        "width": t.width,
        "height": t.height,
        "timestamp": t.start_us / 1_000_000,
    });
    if let Some(term) = &t.term {
        header["env"] = json!({ "TERM": term });
    }
    let mut out = header.to_string();
    out.push('\n');
    for f in &t.frames {
        let secs = (f.at_us - t.start_us).max(0) as f64 / 1e6;
        out.push_str(&json!([secs, f.code, f.data]).to_string());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(ts_us: i64, event: Value) -> Value {
        json!({ "ts_us": ts_us, "event": event })
    }

    #[test]
    fn a_shell_channel_becomes_an_asciicast() -> Result<(), Box<dyn std::error::Error>> {
        let events = vec![
            stored(1_000_000, json!({"kind": "start"})),
            stored(
                1_100_000,
                json!({"kind": "channel", "channel": 0, "purpose": "exec"}),
            ),
            stored(
                1_200_000,
                json!({"kind": "io", "channel": 0, "stream": "out", "data": "not this"}),
            ),
            stored(
                1_300_000,
                json!({"kind": "channel", "channel": 1, "purpose": "shell",
                "pty": {"term": "xterm", "cols": 120, "rows": 30}}),
            ),
            stored(
                1_500_000,
                json!({"kind": "io", "channel": 1, "stream": "out", "data": "$ "}),
            ),
            stored(
                2_000_000,
                json!({"kind": "io", "channel": 1, "stream": "in", "data": "ls\r"}),
            ),
            stored(
                2_500_000,
                json!({"kind": "resize", "channel": 1, "cols": 100, "rows": 40}),
            ),
            stored(
                3_000_000,
                json!({"kind": "io", "channel": 1, "stream": "out",
                "data": "w6k=", "base64": true}),
            ),
        ];
        let t = terminal(&events, None).ok_or("missing")?;
        let cast = to_asciicast(&t);
        let lines = cast
            .lines()
            .map(serde_json::from_str)
            .collect::<Result<Vec<Value>, _>>()?;
        assert_eq!(lines[0]["version"], 2);
        assert_eq!(
            (lines[0]["width"].as_u64(), lines[0]["height"].as_u64()),
            (Some(120), Some(30))
        );
        assert_eq!(lines[0]["env"]["TERM"], "xterm");
        assert_eq!(lines[1], json!([0.5, "o", "$ "]));
        assert_eq!(lines[2], json!([1.0, "i", "ls\r"]));
        assert_eq!(lines[3], json!([1.5, "r", "100x40"]));
        assert_eq!(lines[4], json!([2.0, "o", "é"]));
        assert_eq!(lines.len(), 5);
        assert!(terminal(&events[..2], None).is_none());
        assert_eq!(
            terminal(&events, Some(0)).ok_or("missing")?.frames[0].data,
            "not this"
        );
        Ok(())
    }
}
