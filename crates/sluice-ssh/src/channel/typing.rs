//! Terminal input: each line the user submits is judged before its Enter reaches the shell.
//! A denied line is dropped (the shell gets Ctrl-C and draws a new prompt) with the reason
//! in the terminal; a line held for review waits with a message until it is decided.

use super::Relay;
use crate::session::Judged;
use crate::terminal::{LineInput, Screen, ScreenLine};
use bytes::Bytes;
use sluice_pipeline::output::TextCarry;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use tracing::warn;

/// How long the echo of typed keys may take; a line edited beyond what the key model
/// follows and not readable off the screen by then is refused.
const ECHO_WAIT: Duration = Duration::from_secs(2);
/// Output quiet for this long after the echo: the shell has drawn the line.
const QUIET: Duration = Duration::from_millis(30);
/// Keys kept back for the recording before they are written without waiting for Enter.
const RAW_FLUSH: usize = 4096;

/// The input side's state of a terminal channel.
#[derive(Default)]
pub(super) struct Typing {
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

impl Relay {
    /// Passes terminal keys on, holding each Enter until its line's verdict. False when the
    /// target is gone.
    pub(super) async fn type_keys(&self, typing: &mut Typing, mut keys: Bytes) -> bool {
        while !keys.is_empty() {
            if typing.line.at_start() {
                self.with_screen(Screen::mark_start);
                typing.started_at = *self.output.borrow();
            }
            let Some(at) = typing.line.feed(&keys) else {
                if typing.line.raw().len() >= RAW_FLUSH {
                    let raw = typing.line.take_raw();
                    self.record_io("in", &mut typing.text, &raw).await;
                }
                return self.send_keys(typing, keys).await;
            };
            let before = keys.split_to(at);
            let enter = keys.split_to(1);
            if !before.is_empty() && !self.send_keys(typing, before).await {
                return false;
            }
            let line = self.submitted(typing).await;
            let mut raw = typing.line.take_raw();
            match &line.redacted {
                Some(r) => raw = format!("{r}\r").into_bytes(),
                None => raw.extend_from_slice(&enter),
            }
            self.record_io("in", &mut typing.text, &raw).await;
            typing.line.reset();
            let key = if line.unreadable && self.shared.guarded() {
                let message = "sluice: the edited command line could not be read off the terminal, so it was not run; type it again";
                self.tell(&format!("\r\n{message}\r\n")).await;
                Bytes::from_static(b"\x03")
            } else if line.judge {
                let notice = async |n: String| self.tell(&format!("\r\n{n}")).await;
                match self.shared.judge(&line.text, line.redacted, notice).await {
                    Judged::Run(_) => enter,
                    Judged::Refused(message) => {
                        self.tell(&format!("\r\n{message}\r\n")).await;
                        Bytes::from_static(b"\x03")
                    }
                }
            } else {
                enter
            };
            if !self.send_keys(typing, key).await {
                return false;
            }
        }
        true
    }

    async fn send_keys(&self, typing: &mut Typing, keys: Bytes) -> bool {
        typing.sent_at = *self.output.borrow();
        self.target_w.data_bytes(keys).await.is_ok()
    }

    /// The line being submitted: the typed keys when the model followed them all, else the
    /// screen's line once the shell has echoed the keys.
    async fn submitted(&self, typing: &Typing) -> Submitted {
        let line = &typing.line;
        let modelled = line.text();
        let Some(mut seen) = self.screen_line() else {
            // No terminal emulator (a shell without a pty, or the emulator failed): the
            // keys are the line, if the model followed them.
            return Submitted {
                judge: !modelled.trim().is_empty(),
                text: modelled,
                redacted: None,
                unreadable: !line.exact() && self.screen_failed.load(Ordering::Relaxed),
            };
        };
        let typed = !modelled.trim().is_empty();
        let mut unreadable = false;
        // A line the model followed is judged at once: the Enter then reaches the terminal
        // right behind its text, as without the gateway (keys typed ahead of the prompt sit
        // in the terminal driver, which may drop a line whose Enter comes later).
        if !line.exact() && !seen.full_screen && !seen.secret_prompt {
            unreadable = !self.wait_for_echo(typing.sent_at, &line.tail()).await;
            seen = self.screen_line().unwrap_or(seen);
        }
        if seen.full_screen {
            return Submitted {
                text: String::new(),
                redacted: None,
                judge: false,
                unreadable: false,
            };
        }
        // Not echoed: a password prompt, or the shell drew output since the line began but
        // none of the line.
        let drew = *self.output.borrow() > typing.started_at;
        let not_echoed = typed && (seen.secret_prompt || (drew && seen.text.is_empty()));
        let text = if line.exact() || seen.text.is_empty() {
            modelled
        } else {
            seen.text
        };
        Submitted {
            judge: !text.trim().is_empty(),
            redacted: not_echoed
                .then(|| format!("[input not echoed: {} characters]", line.chars())),
            text,
            unreadable,
        }
    }

    fn screen_line(&self) -> Option<ScreenLine> {
        self.screen.lock().ok()?.as_ref().map(Screen::line)
    }

    /// Waits until the shell has echoed the keys: output arrived after they were sent,
    /// `tail` (what was typed last) stands left of the cursor, and output paused. False when
    /// that did not happen within `ECHO_WAIT`.
    async fn wait_for_echo(&self, sent_at: u64, tail: &str) -> bool {
        let mut output = self.output.subscribe();
        let deadline = Instant::now() + ECHO_WAIT;
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

    /// Feeds target output to the terminal emulator. If the emulator fails on it, the
    /// channel goes on without one: lines the key model cannot follow are then refused.
    pub(super) fn feed_screen(&self, output: &[u8]) {
        let Ok(mut screen) = self.screen.lock() else {
            return;
        };
        if screen.as_mut().is_some_and(|s| !s.process(output)) {
            warn!("the terminal emulator failed; interactive lines are judged from the keys");
            *screen = None;
            self.screen_failed.store(true, Ordering::Relaxed);
        }
    }

    /// Runs `f` on the terminal emulator, if the channel has one.
    pub(super) fn with_screen(&self, f: impl FnOnce(&mut Screen)) {
        if let Some(screen) = self.screen.lock().ok().as_mut().and_then(|s| s.as_mut()) {
            f(screen);
        }
    }
}
