//! A terminal as screen frames: the program's output runs through a terminal emulator
//! (`vt100`) and each frame carries the rows that changed since the one before, as runs of
//! text with style classes (`f1` red foreground, `b4` blue background, `bo` bold, `it`,
//! `un`, `iv` inverse). The web console's player shows them in a `<pre>` styled by its own
//! sheet, so the page needs no inline style (its CSP allows none), and the browser never
//! interprets a recorded escape sequence.

use crate::recording::Terminal;
use serde::Serialize;

/// Largest screen a frame describes; bigger recorded sizes are clamped.
const MAX_SIZE: u16 = 500;

/// Output closer together than this (µs) is shown as one frame.
const COALESCE_US: i64 = 20_000;

/// A run of cells with one style: `[text, classes]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Run(pub String, pub String);

/// One step of the screen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Frame {
    /// Milliseconds since the recording started.
    pub t: u64,
    /// `[rows, cols]` when the size changed (the first frame always has it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<[u16; 2]>,
    /// The rows that changed: `[row, runs]`.
    pub lines: Vec<(u16, Vec<Run>)>,
    /// `[row, col]` of the cursor, `None` when the program hides it.
    pub cursor: Option<[u16; 2]>,
}

/// A recorded terminal as frames.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
pub struct Replay {
    /// Rows at the start.
    pub rows: u16,
    /// Columns at the start.
    pub cols: u16,
    /// Length of the recording (ms).
    pub duration_ms: u64,
    /// The frames, in order; the first shows the whole (empty) screen.
    pub frames: Vec<Frame>,
}

/// A screen being drawn: output in, frames of what changed out.
pub struct Screen {
    parser: vt100::Parser,
    shown: Vec<Vec<Run>>,
    resized: bool,
}

fn clamp(n: u64) -> u16 {
    u16::try_from(n).unwrap_or(MAX_SIZE).clamp(1, MAX_SIZE)
}

impl Screen {
    /// An empty screen of `rows` × `cols`.
    pub fn new(rows: u64, cols: u64) -> Screen {
        Screen {
            parser: vt100::Parser::new(clamp(rows), clamp(cols), 0),
            shown: Vec::new(),
            resized: true,
        }
    }

    /// Feeds the program's output.
    pub fn output(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
    }

    /// The window changed size.
    pub fn resize(&mut self, rows: u64, cols: u64) {
        self.parser.screen_mut().set_size(clamp(rows), clamp(cols));
        self.resized = true;
    }

    /// What changed since the last frame, at `t` ms; `None` when nothing did.
    pub fn frame(&mut self, t: u64) -> Option<Frame> {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        let resized = std::mem::take(&mut self.resized);
        if resized {
            self.shown.clear();
        }
        self.shown.resize(usize::from(rows), Vec::new());
        let mut lines = Vec::new();
        for row in 0..rows {
            let runs = row_runs(screen, row, cols);
            let slot = &mut self.shown[usize::from(row)];
            if resized || *slot != runs {
                lines.push((row, runs.clone()));
                *slot = runs;
            }
        }
        let cursor = (!screen.hide_cursor()).then(|| {
            let (r, c) = screen.cursor_position();
            [r, c]
        });
        if lines.is_empty() && !resized {
            return None;
        }
        Some(Frame {
            t,
            size: resized.then_some([rows, cols]),
            lines,
            cursor,
        })
    }

    /// The whole screen as one frame at `t` ms.
    pub fn full(&mut self, t: u64) -> Frame {
        self.resized = true;
        let mut f = self.frame(t);
        f.take().unwrap_or(Frame {
            t,
            size: None,
            lines: Vec::new(),
            cursor: None,
        })
    }
}

/// Row `row` as runs of equally styled cells, trailing blanks left out.
fn row_runs(screen: &vt100::Screen, row: u16, cols: u16) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut blank = String::new();
    for col in 0..cols {
        let Some(cell) = screen.cell(row, col) else {
            break;
        };
        if cell.is_wide_continuation() {
            continue;
        }
        let class = classes(cell);
        let text = if cell.has_contents() {
            cell.contents()
        } else {
            " "
        };
        // Blanks with no style are only kept when something follows them.
        if class.is_empty() && text == " " {
            blank.push(' ');
            continue;
        }
        if !blank.is_empty() {
            push(&mut runs, &std::mem::take(&mut blank), "");
        }
        push(&mut runs, text, &class);
    }
    runs
}

fn push(runs: &mut Vec<Run>, text: &str, class: &str) {
    match runs.last_mut() {
        Some(last) if last.1 == class => last.0.push_str(text),
        _ => runs.push(Run(text.to_string(), class.to_string())),
    }
}

/// A cell's style classes.
fn classes(cell: &vt100::Cell) -> String {
    let mut c = String::new();
    let mut add = |s: &str| {
        if !c.is_empty() {
            c.push(' ');
        }
        c.push_str(s);
    };
    if let Some(n) = basic(cell.fgcolor()) {
        add(&format!("f{n}"));
    }
    if let Some(n) = basic(cell.bgcolor()) {
        add(&format!("b{n}"));
    }
    for (on, name) in [
        (cell.bold(), "bo"),
        (cell.italic(), "it"),
        (cell.underline(), "un"),
        (cell.inverse(), "iv"),
    ] {
        if on {
            add(name);
        }
    }
    c
}

/// One of the 16 basic colors; 256-color and true-color cells use their nearest basic one.
fn basic(color: vt100::Color) -> Option<u8> {
    match color {
        vt100::Color::Default => None,
        vt100::Color::Idx(n) if n < 16 => Some(n),
        vt100::Color::Idx(n) if n >= 232 => Some(if n < 244 { 8 } else { 7 }),
        vt100::Color::Idx(n) => {
            let n = n - 16;
            let (r, g, b) = (n / 36, (n / 6) % 6, n % 6);
            Some(nearest(r * 51, g * 51, b * 51))
        }
        vt100::Color::Rgb(r, g, b) => Some(nearest(r, g, b)),
    }
}

fn nearest(r: u8, g: u8, b: u8) -> u8 {
    let bright = u16::from(r) + u16::from(g) + u16::from(b) > 3 * 160;
    let bit = |v: u8| u8::from(v > 100);
    let n = bit(r) | (bit(g) << 1) | (bit(b) << 2);
    if bright {
        n + 8
    } else {
        n
    }
}

/// The frames of recorded terminal `t`: output closer together than 20 ms makes one frame.
pub fn replay(t: &Terminal) -> Replay {
    let mut screen = Screen::new(t.height, t.width);
    let mut frames = vec![screen.full(0)];
    let ms = |at_us: i64| u64::try_from((at_us - t.start_us).max(0) / 1000).unwrap_or(0);
    let mut pending: Option<i64> = None;
    let mut last_us = t.start_us;
    for f in &t.frames {
        if let Some(first) = pending {
            if f.at_us - first > COALESCE_US {
                frames.extend(screen.frame(ms(first)));
                pending = None;
            }
        }
        match f.code {
            "o" => {
                screen.output(f.data.as_bytes());
                pending.get_or_insert(f.at_us);
            }
            "r" => {
                if let Some((cols, rows)) = f.data.split_once('x') {
                    let (cols, rows) = (cols.parse().unwrap_or(80), rows.parse().unwrap_or(24));
                    screen.resize(rows, cols);
                    pending.get_or_insert(f.at_us);
                }
            }
            _ => {}
        }
        last_us = last_us.max(f.at_us);
    }
    if let Some(first) = pending {
        frames.extend(screen.frame(ms(first)));
    }
    Replay {
        rows: clamp(t.height),
        cols: clamp(t.width),
        duration_ms: ms(last_us),
        frames,
    }
}

/// A live terminal, followed event by event: the session's first shell channel (else the
/// first channel with output).
pub struct Follow {
    start_us: i64,
    channel: Option<u64>,
    screen: Option<Screen>,
}

impl Follow {
    /// Follows a session that started at `start_us`.
    pub fn new(start_us: i64) -> Follow {
        Follow {
            start_us,
            channel: None,
            screen: None,
        }
    }

    /// Applies one recorded event (`{"kind": …}` as stored).
    pub fn apply(&mut self, event: &serde_json::Value) {
        let channel = event["channel"].as_u64();
        match event["kind"].as_str().unwrap_or_default() {
            "channel" if self.channel.is_none() && event["purpose"] == "shell" => {
                let pty = &event["pty"];
                self.channel = channel;
                self.screen = Some(Screen::new(
                    pty["rows"].as_u64().unwrap_or(24),
                    pty["cols"].as_u64().unwrap_or(80),
                ));
            }
            "io" if event["stream"] != "in" => {
                if self.channel.is_none() {
                    self.channel = channel;
                }
                if channel == self.channel {
                    let screen = self.screen.get_or_insert_with(|| Screen::new(24, 80));
                    screen.output(&crate::recording::io_bytes(event));
                }
            }
            "resize" if channel.is_some() && channel == self.channel => {
                if let Some(s) = &mut self.screen {
                    s.resize(
                        event["rows"].as_u64().unwrap_or(24),
                        event["cols"].as_u64().unwrap_or(80),
                    );
                }
            }
            _ => {}
        }
    }

    fn ms(&self, ts_us: i64) -> u64 {
        u64::try_from((ts_us - self.start_us).max(0) / 1000).unwrap_or(0)
    }

    /// What changed since the last frame (at `ts_us`), once there is a terminal.
    pub fn frame(&mut self, ts_us: i64) -> Option<Frame> {
        let t = self.ms(ts_us);
        self.screen.as_mut()?.frame(t)
    }

    /// The whole screen (at `ts_us`), once there is a terminal.
    pub fn full(&mut self, ts_us: i64) -> Option<Frame> {
        let t = self.ms(ts_us);
        Some(self.screen.as_mut()?.full(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::Frame as Recorded;

    fn text(f: &Frame, row: u16) -> String {
        f.lines
            .iter()
            .find(|(r, _)| *r == row)
            .map(|(_, runs)| runs.iter().map(|r| r.0.as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn output_becomes_frames_of_changed_rows() {
        let out = |at_us, data: &str| Recorded {
            at_us,
            code: "o",
            data: data.into(),
        };
        let t = Terminal {
            width: 20,
            height: 4,
            term: None,
            start_us: 1_000_000,
            frames: vec![
                out(1_100_000, "$ "),
                out(1_105_000, "ls\r\n"),
                out(1_500_000, "\x1b[31mred\x1b[0m file\r\n$ "),
                Recorded {
                    at_us: 2_000_000,
                    code: "i",
                    data: "secret typed".into(),
                },
                Recorded {
                    at_us: 2_500_000,
                    code: "r",
                    data: "30x5".into(),
                },
                out(3_000_000, "\x1b[2J\x1b[Hcleared"),
            ],
        };
        let r = replay(&t);
        assert_eq!((r.rows, r.cols, r.duration_ms), (4, 20, 2000));
        // The empty screen, then "$ ls" (two writes 5 ms apart: one frame).
        assert_eq!(r.frames[0].size, Some([4, 20]));
        assert_eq!(r.frames[1].t, 100);
        assert_eq!(text(&r.frames[1], 0), "$ ls");
        // Row 0 did not change again: only rows 1 and 2 are sent.
        let f = &r.frames[2];
        assert_eq!(f.lines.iter().map(|l| l.0).collect::<Vec<_>>(), vec![1, 2]);
        assert_eq!(
            f.lines[0].1,
            vec![
                Run("red".into(), "f1".into()),
                Run(" file".into(), "".into())
            ]
        );
        assert_eq!(f.cursor, Some([2, 2]));
        // Input is not drawn; the resize redraws the whole screen.
        assert_eq!(r.frames[3].size, Some([5, 30]));
        assert_eq!(r.frames[3].lines.len(), 5);
        assert_eq!(text(&r.frames[4], 0), "cleared");
        assert_eq!(text(&r.frames[4], 1), "");
        assert_eq!(r.frames.len(), 5);
    }

    #[test]
    fn a_live_shell_is_followed_from_its_pty_request() {
        let mut f = Follow::new(0);
        f.apply(&serde_json::json!({"kind": "io", "channel": 0, "stream": "out", "data": "exec"}));
        f.apply(
            &serde_json::json!({"kind": "channel", "channel": 1, "purpose": "shell",
            "pty": {"term": "xterm", "rows": 3, "cols": 10}}),
        );
        assert_eq!(
            f.channel,
            Some(0),
            "the first channel with output stays chosen"
        );
        let mut g = Follow::new(0);
        assert!(g.frame(5_000).is_none());
        g.apply(
            &serde_json::json!({"kind": "channel", "channel": 1, "purpose": "shell",
            "pty": {"term": "xterm", "rows": 3, "cols": 10}}),
        );
        g.apply(&serde_json::json!({"kind": "io", "channel": 1, "stream": "in", "data": "typed"}));
        g.apply(&serde_json::json!({"kind": "io", "channel": 1, "stream": "out", "data": "aGk=", "base64": true}));
        let first = g.full(7_000).expect("a screen");
        assert_eq!((first.t, first.size), (7, Some([3, 10])));
        assert_eq!(text(&first, 0), "hi");
        assert!(g.frame(8_000).is_none(), "nothing changed");
    }

    #[test]
    fn colors_map_to_the_basic_sixteen() {
        assert_eq!(basic(vt100::Color::Idx(9)), Some(9));
        assert_eq!(basic(vt100::Color::Rgb(250, 10, 10)), Some(1));
        assert_eq!(basic(vt100::Color::Rgb(250, 250, 250)), Some(15));
        assert_eq!(basic(vt100::Color::Idx(196)), Some(1));
        assert_eq!(basic(vt100::Color::Default), None);
    }
}
