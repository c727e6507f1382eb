//! Terminal input: each line the user submits is judged before its Enter reaches the program.
//! A denied line is dropped (the program gets Ctrl-C and draws a new prompt) with the reason
//! in the terminal; a line held for review waits with a message until it is decided.
//!
//! The relay of a terminal (an SSH channel, a pty runtime) owns a [`TerminalView`] that it
//! feeds with the program's output, keeps a [`Typing`] for the input direction, and passes
//! every chunk of keys to [`type_keys`] with itself as the [`Side`].

use crate::line::{LineInput, Screen, ScreenLine};
use bytes::Bytes;
use sluice_pipeline::output::TextCarry;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

/// How long the echo of typed keys may take; a line edited beyond what the key model
/// follows and not readable off the screen by then is refused.
const ECHO_WAIT: Duration = Duration::from_secs(2);
/// Output quiet for this long after the echo: the program has drawn the line.
const QUIET: Duration = Duration::from_millis(30);
/// How long a line typed ahead of a prompt the program has just drawn may take to show up
/// before it counts as typed with echo off.
const AHEAD_WAIT: Duration = Duration::from_millis(500);
/// Keys kept back for the recording before they are written without waiting for Enter.
const RAW_FLUSH: usize = 4096;

/// The verdict on a submitted line.
pub enum LineVerdict {
    /// Let the Enter through.
    Run,
    /// Drop the line; the message for the person.
    Refused(String),
}

/// What the relay of a terminal does for the line judge.
#[allow(async_fn_in_trait)]
pub trait Side {
    /// Sends keys to the program; false when it is gone.
    async fn send_keys(&self, keys: Bytes) -> bool;
    /// Writes a message of the gateway into the person's terminal.
    async fn tell(&self, message: &str);
    /// Records typed input (`raw`, through `text` for UTF-8 cut by chunk boundaries).
    async fn record_input(&self, text: &mut TextCarry, raw: &[u8]);
    /// Records and judges a submitted line; `redacted` replaces its text in the recording.
    /// Notices of a hold go to the terminal through [`Side::tell`].
    async fn judge(&self, text: &str, redacted: Option<String>) -> LineVerdict;
    /// Whether lines are judged at all (the connection has guardrails).
    fn guarded(&self) -> bool;
}

/// The program's screen as the gateway follows it.
pub struct TerminalView {
    /// The terminal emulator, once the program has a pty; `None` without one or after it
    /// failed.
    screen: Mutex<Option<Screen>>,
    /// The emulator failed on the output and was dropped.
    screen_failed: AtomicBool,
    /// Counts output chunks fed to the screen: typed keys' echo arrives after they were sent.
    output: watch::Sender<u64>,
}

impl Default for TerminalView {
    fn default() -> Self {
        TerminalView {
            screen: Mutex::new(None),
            screen_failed: AtomicBool::new(false),
            output: watch::Sender::new(0),
        }
    }
}

impl TerminalView {
    /// Starts following a terminal of `rows` × `cols`.
    pub fn open(&self, rows: u32, cols: u32) {
        if let Ok(mut screen) = self.screen.lock() {
            *screen = Some(Screen::new(rows, cols));
        }
    }

    /// Follows a window change.
    pub fn resize(&self, rows: u32, cols: u32) {
        self.with_screen(|s| s.resize(rows, cols));
    }

    /// Feeds program output to the terminal emulator. If the emulator fails on it, the
    /// terminal goes on without one: lines the key model cannot follow are then refused.
    pub fn feed(&self, output: &[u8]) {
        if let Ok(mut screen) = self.screen.lock() {
            if screen.as_mut().is_some_and(|s| !s.process(output)) {
                warn!("the terminal emulator failed; interactive lines are judged from the keys");
                *screen = None;
                self.screen_failed.store(true, Ordering::Relaxed);
            }
        }
        self.output.send_modify(|n| *n += 1);
    }

    /// Runs `f` on the terminal emulator, if there is one.
    fn with_screen(&self, f: impl FnOnce(&mut Screen)) {
        if let Some(screen) = self.screen.lock().ok().as_mut().and_then(|s| s.as_mut()) {
            f(screen);
        }
    }

    fn screen_line(&self) -> Option<ScreenLine> {
        self.screen.lock().ok()?.as_ref().map(Screen::line)
    }

    fn output_count(&self) -> u64 {
        *self.output.borrow()
    }

    /// Waits until the program has echoed the keys: output arrived after they were sent,
    /// `tail` (what was typed last) stands left of the cursor, and output paused. False when
    /// that did not happen within `ECHO_WAIT`.
    async fn wait_for_echo(&self, sent_at: u64, tail: &str, wait: Duration) -> bool {
        let mut output = self.output.subscribe();
        let deadline = Instant::now() + wait;
        loop {
            let count = *output.borrow_and_update();
            let caught_up = count > sent_at
                && (tail.is_empty()
                    || self
                        .screen
                        .lock()
                        .ok()
                        .and_then(|s| s.as_ref().map(|s| s.echoed(tail)))
                        .unwrap_or(false));
            let until = if caught_up {
                (Instant::now() + QUIET).min(deadline)
            } else {
                deadline
            };
            match tokio::time::timeout_at(until, output.changed()).await {
                Ok(Ok(())) if Instant::now() < deadline => {}
                _ => return caught_up,
            }
        }
    }
}

/// The input side's state of a terminal.
#[derive(Default)]
pub struct Typing {
    line: LineInput,
    /// The output count when keys were last sent: their echo is output after it.
    sent_at: u64,
    /// The output count when the line began.
    started_at: u64,
    text: TextCarry,
}

/// A submitted line and how it is judged.
struct Submitted {
    text: String,
    /// Replaces the text in the recording (typed with echo off).
    redacted: Option<String>,
    judge: bool,
    /// Edited with keys only the screen shows the effect of, and the screen never caught
    /// up: the line cannot be known.
    unreadable: bool,
}

/// Passes terminal keys on, holding each Enter until its line's verdict. False when the
/// program is gone.
pub async fn type_keys<S: Side>(
    side: &S,
    view: &TerminalView,
    typing: &mut Typing,
    mut keys: Bytes,
) -> bool {
    while !keys.is_empty() {
        if typing.line.at_start() {
            view.with_screen(Screen::mark_start);
            typing.started_at = view.output_count();
        }
        let Some(at) = typing.line.feed(&keys) else {
            if typing.line.raw().len() >= RAW_FLUSH {
                let raw = typing.line.take_raw();
                side.record_input(&mut typing.text, &raw).await;
            }
            return send_keys(side, view, typing, keys).await;
        };
        let before = keys.split_to(at);
        let enter = keys.split_to(1);
        if !before.is_empty() && !send_keys(side, view, typing, before).await {
            return false;
        }
        let line = submitted(view, typing).await;
        let tail = typing.line.tail();
        let mut raw = typing.line.take_raw();
        match &line.redacted {
            Some(r) => raw = format!("{r}\r").into_bytes(),
            None => raw.extend_from_slice(&enter),
        }
        side.record_input(&mut typing.text, &raw).await;
        typing.line.reset();
        let echoed = line.redacted.is_none();
        let key = if line.unreadable && side.guarded() {
            let message = "sluice: the edited command line could not be read off the terminal, so it was not run; type it again";
            refuse(side, view, typing.sent_at, &tail, false, message).await
        } else if line.judge {
            match side.judge(&line.text, line.redacted).await {
                LineVerdict::Run => enter,
                LineVerdict::Refused(message) => {
                    refuse(side, view, typing.sent_at, &tail, echoed, &message).await
                }
            }
        } else {
            enter
        };
        if !send_keys(side, view, typing, key).await {
            return false;
        }
    }
    true
}

/// Drops a submitted line: once the program has drawn it (so the reason follows the line,
/// and the Ctrl-C reaches a line editor that has read the keys, as a person's would), the
/// reason goes to the terminal; the key to send instead of the Enter is returned.
async fn refuse<S: Side>(
    side: &S,
    view: &TerminalView,
    sent_at: u64,
    tail: &str,
    echoed: bool,
    message: &str,
) -> Bytes {
    if echoed && view.screen_line().is_some() {
        view.wait_for_echo(sent_at, tail, ECHO_WAIT).await;
    }
    side.tell(&format!("\r\n{message}\r\n")).await;
    Bytes::from_static(b"\x03")
}

async fn send_keys<S: Side>(
    side: &S,
    view: &TerminalView,
    typing: &mut Typing,
    keys: Bytes,
) -> bool {
    typing.sent_at = view.output_count();
    side.send_keys(keys).await
}

/// The line being submitted: the typed keys when the model followed them all, else the
/// screen's line once the program has echoed the keys.
async fn submitted(view: &TerminalView, typing: &Typing) -> Submitted {
    let line = &typing.line;
    let modelled = line.text();
    let Some(mut seen) = view.screen_line() else {
        // No terminal emulator (a shell without a pty, or the emulator failed): the
        // keys are the line, if the model followed them.
        return Submitted {
            judge: !modelled.trim().is_empty(),
            text: modelled,
            redacted: None,
            unreadable: !line.exact() && view.screen_failed.load(Ordering::Relaxed),
        };
    };
    let typed = !modelled.trim().is_empty();
    let mut unreadable = false;
    // A line the model followed is judged at once: the Enter then reaches the terminal
    // right behind its text, as without the gateway (keys typed ahead of the prompt sit
    // in the terminal driver, which may drop a line whose Enter comes later).
    if !line.exact() && !seen.full_screen && !seen.secret_prompt {
        unreadable = !view
            .wait_for_echo(typing.sent_at, &line.tail(), ECHO_WAIT)
            .await;
        seen = view.screen_line().unwrap_or(seen);
    }
    if seen.full_screen {
        return Submitted {
            text: String::new(),
            redacted: None,
            judge: false,
            unreadable: false,
        };
    }
    // Not echoed: a password prompt, or the program drew output since the line began but
    // none of the line.
    let drew = view.output_count() > typing.started_at;
    let mut not_echoed = typed && (seen.secret_prompt || (drew && seen.text.is_empty()));
    if not_echoed && !seen.secret_prompt && line.exact() {
        // Typed ahead of a prompt the program has just drawn: the echo may be on its way.
        if view
            .wait_for_echo(typing.sent_at, &line.tail(), AHEAD_WAIT)
            .await
        {
            seen = view.screen_line().unwrap_or(seen);
            not_echoed = seen.text.is_empty();
        }
    }
    let text = if line.exact() || seen.text.is_empty() {
        modelled
    } else {
        seen.text
    };
    Submitted {
        judge: !text.trim().is_empty(),
        redacted: not_echoed.then(|| format!("[input not echoed: {} characters]", line.chars())),
        text,
        unreadable,
    }
}
