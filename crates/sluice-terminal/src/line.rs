//! Interactive command lines: the line a user submits with Enter in a terminal, rebuilt so
//! the guard can judge it before the shell runs it.
//!
//! Two sources, used together:
//! - [`LineInput`] replays the typed keys through a minimal line editor (printable text,
//!   backspace, Ctrl-U, Ctrl-W, bracketed paste). When every key of a line is one it models,
//!   its text is exactly what the shell holds.
//! - [`Screen`] is a terminal emulator (`vt100`) over the target's output. Lines edited with
//!   keys the model does not follow (arrows, history, Tab completion, Ctrl-R) are read off the
//!   screen: the logical line under the cursor, minus the prompt seen when the line began.
//!
//! What neither sees: what a program builds or reads at run time (scripts, aliases, `eval`),
//! text typed into full-screen programs (the alternate screen: editors, pagers), and input
//! after the shell turned echo off is judged from the keys alone and recorded redacted.

/// Longest escape sequence followed; longer ones are skipped as unknown.
const MAX_CSI: usize = 16;

/// The keys typed since the last Enter, through a minimal line-editor model.
#[derive(Debug)]
pub struct LineInput {
    /// The line as the model sees it (UTF-8 bytes).
    text: Vec<u8>,
    /// Every key since the line began was one the model follows.
    exact: bool,
    /// Text typed since the last key the model does not follow: once the shell has echoed
    /// it, it stands just left of the cursor.
    tail: Vec<u8>,
    /// Inside a bracketed paste: Enter is text.
    paste: bool,
    esc: Esc,
    started: bool,
    /// The raw keys of the line, for the recording.
    raw: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
enum Esc {
    None,
    /// After ESC.
    Escape,
    /// In a control sequence (`ESC [` …), with its parameter bytes.
    Csi(Vec<u8>),
    /// After `ESC O`: one more byte.
    Ss3,
}

impl Default for LineInput {
    fn default() -> Self {
        LineInput {
            text: Vec::new(),
            exact: true,
            tail: Vec::new(),
            paste: false,
            esc: Esc::None,
            started: false,
            raw: Vec::new(),
        }
    }
}

impl LineInput {
    /// Whether no key of the current line has been seen yet.
    pub fn at_start(&self) -> bool {
        !self.started
    }

    /// Whether the model followed every key of the line.
    pub fn exact(&self) -> bool {
        self.exact
    }

    /// The line as modelled.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.text).into_owned()
    }

    /// Characters in the modelled line.
    pub fn chars(&self) -> usize {
        String::from_utf8_lossy(&self.text).chars().count()
    }

    /// Text typed since the last key the model does not follow.
    pub fn tail(&self) -> String {
        String::from_utf8_lossy(&self.tail).into_owned()
    }

    /// The raw keys of the line so far.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Takes the raw keys recorded so far (for recording them before the line ends).
    pub fn take_raw(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.raw)
    }

    /// Starts a new line.
    pub fn reset(&mut self) {
        *self = LineInput::default();
    }

    /// Feeds keys up to the first Enter. Returns the Enter's index in `keys` (the keys before
    /// it are consumed, the Enter is not), or `None` when all keys were consumed.
    pub fn feed(&mut self, keys: &[u8]) -> Option<usize> {
        for (i, &b) in keys.iter().enumerate() {
            if matches!(b, b'\r' | b'\n') && self.esc == Esc::None && !self.paste {
                return Some(i);
            }
            self.started = true;
            self.raw.push(b);
            self.key(b);
        }
        None
    }

    fn key(&mut self, b: u8) {
        match std::mem::replace(&mut self.esc, Esc::None) {
            Esc::Escape => match b {
                b'[' => self.esc = Esc::Csi(Vec::new()),
                b'O' => self.esc = Esc::Ss3,
                _ => self.inexact(),
            },
            Esc::Ss3 => self.inexact(),
            Esc::Csi(mut params) => {
                if (0x40..=0x7e).contains(&b) {
                    match (params.as_slice(), b) {
                        (b"200", b'~') => self.paste = true,
                        (b"201", b'~') => self.paste = false,
                        _ => self.inexact(),
                    }
                } else if params.len() < MAX_CSI {
                    params.push(b);
                    self.esc = Esc::Csi(params);
                } else {
                    self.inexact();
                }
            }
            Esc::None => self.plain(b),
        }
    }

    /// A key the model does not follow: only the screen knows the line now.
    fn inexact(&mut self) {
        self.exact = false;
        self.tail.clear();
    }

    fn plain(&mut self, b: u8) {
        match b {
            0x1b => self.esc = Esc::Escape,
            b'\r' | b'\n' => {
                self.text.push(b'\n');
                self.tail.clear();
            }
            0x7f | 0x08 => {
                pop_char(&mut self.text);
                pop_char(&mut self.tail);
            }
            // Ctrl-U: the whole line.
            0x15 => {
                self.text.clear();
                self.tail.clear();
            }
            // Ctrl-W: the word before the cursor.
            0x17 => {
                while self.text.last().is_some_and(u8::is_ascii_whitespace) {
                    self.text.pop();
                }
                while self.text.last().is_some_and(|c| !c.is_ascii_whitespace()) {
                    self.text.pop();
                }
                self.tail.clear();
            }
            // Ctrl-C abandons the line; the shell draws a new prompt.
            0x03 => {
                self.text.clear();
                self.tail.clear();
                self.exact = true;
                self.started = false;
            }
            b if b < 0x20 => self.inexact(),
            b => {
                self.text.push(b);
                self.tail.push(b);
            }
        }
    }
}

/// Removes the last UTF-8 character: its continuation bytes, then its first byte.
fn pop_char(text: &mut Vec<u8>) {
    while text.last().is_some_and(|c| (0x80..0xc0).contains(c)) {
        text.pop();
    }
    text.pop();
}

/// What the screen showed when a line began.
#[derive(Debug)]
struct Start {
    /// The text left of the cursor when the line began: the prompt.
    prompt: String,
}

/// A terminal emulator over the target's output.
pub struct Screen {
    parser: vt100::Parser,
    start: Option<Start>,
}

/// The line under the cursor, as the screen shows it.
#[derive(Debug, PartialEq, Eq)]
pub struct ScreenLine {
    /// The text after the prompt.
    pub text: String,
    /// Whether the prompt asks for a secret (`password:`), so the input is not echoed.
    pub secret_prompt: bool,
    /// A full-screen program (editor, pager) owns the terminal.
    pub full_screen: bool,
}

impl Screen {
    /// An empty screen of the client's terminal size (a size the client left at zero is
    /// 24×80; sizes are kept within what a real terminal shows).
    pub fn new(rows: u32, cols: u32) -> Screen {
        let (rows, cols) = size(rows, cols);
        Screen {
            parser: vt100::Parser::new(rows, cols, 0),
            start: None,
        }
    }

    /// Applies target output. False if the emulator failed on it (it is then of no use).
    #[must_use]
    pub fn process(&mut self, output: &[u8]) -> bool {
        let parser = std::panic::AssertUnwindSafe(&mut self.parser);
        std::panic::catch_unwind(move || {
            let parser = parser;
            parser.0.process(output);
        })
        .is_ok()
    }

    /// Follows a window change.
    pub fn resize(&mut self, rows: u32, cols: u32) {
        let (rows, cols) = size(rows, cols);
        self.parser.screen_mut().set_size(rows, cols);
    }

    /// Notes where the line being typed begins and the prompt left of it.
    pub fn mark_start(&mut self) {
        let screen = self.parser.screen();
        let (row, col) = screen.cursor_position();
        let prompt = screen.contents_between(row, 0, row, col);
        self.start = Some(Start { prompt });
    }

    /// Whether `typed` stands just left of the cursor: the shell has echoed it.
    pub fn echoed(&self, typed: &str) -> bool {
        let screen = self.parser.screen();
        let (row, col) = screen.cursor_position();
        let mut first = row;
        while first > 0 && screen.row_wrapped(first - 1) {
            first -= 1;
        }
        screen.contents_between(first, 0, row, col).ends_with(typed)
    }

    /// The logical line under the cursor (wrapped rows joined), without the prompt.
    pub fn line(&self) -> ScreenLine {
        let screen = self.parser.screen();
        let (rows, cols) = screen.size();
        let (row, _) = screen.cursor_position();
        let mut first = row;
        while first > 0 && screen.row_wrapped(first - 1) {
            first -= 1;
        }
        let mut last = row;
        while last + 1 < rows && screen.row_wrapped(last) {
            last += 1;
        }
        let full = screen.contents_between(first, 0, last, cols);
        let prompt = self.start.as_ref().map_or("", |s| s.prompt.as_str());
        let text = match full.strip_prefix(prompt) {
            Some(rest) if !prompt.is_empty() => rest,
            _ => strip_search_prompt(&full),
        };
        ScreenLine {
            text: text.trim().to_string(),
            secret_prompt: is_secret_prompt(prompt),
            full_screen: screen.alternate_screen(),
        }
    }
}

/// Rows and columns for the emulator: 24×80 when the client sent zero (no terminal on its
/// side), else between 4×20 and 300×600 (the emulator keeps every cell).
fn size(rows: u32, cols: u32) -> (u16, u16) {
    let fit = |n: u32, unknown: u16, min: u16, max: u16| -> u16 {
        if n == 0 {
            unknown
        } else {
            u16::try_from(n).unwrap_or(max).clamp(min, max)
        }
    };
    (fit(rows, 24, 4, 300), fit(cols, 80, 20, 600))
}

/// Drops readline's incremental-search prompt, which replaces the shell's prompt while the
/// user searches history (`(reverse-i-search)`rm': rm -rf /tmp/x`).
fn strip_search_prompt(line: &str) -> &str {
    let trimmed = line.trim_start();
    if trimmed.starts_with('(') && trimmed.contains("-search)") {
        if let Some(i) = trimmed.find("': ") {
            return &trimmed[i + 3..];
        }
    }
    line
}

/// Whether a prompt asks for a secret: `[sudo] password for root:`, `Enter passphrase:`.
fn is_secret_prompt(prompt: &str) -> bool {
    let p = prompt.trim_end().to_ascii_lowercase();
    p.ends_with(':')
        && ["password", "passphrase", "passcode"]
            .iter()
            .any(|w| p.contains(w))
}

#[cfg(test)]
mod tests;
