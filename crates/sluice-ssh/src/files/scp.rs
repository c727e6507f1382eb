//! Legacy scp (`scp -t` receives, `scp -f` sends on the target): the sending side's stream
//! of records (`C` file, `D`/`E` directory, `T` times) and file contents, followed to record
//! each file with its size and SHA-256.
//!
//! The recorded path joins the `-t`/`-f` operand, the directories entered and the file's
//! name. For an upload without `-d`/`-r` to an operand that does not end in `/`, the operand
//! is taken as the file's own path (it may be a directory on the target: scp decides there).

use super::{resolve, Transfer};
use sluice_core::FileOp;

/// Longest record line followed.
const MAX_LINE: usize = 4096;

enum State {
    Line,
    Data {
        left: u64,
        path: String,
        content: Box<Transfer>,
    },
    /// The zero byte that follows a file's content.
    Trailer,
}

/// The file-carrying direction of one scp channel.
pub(crate) struct Scp {
    channel: u32,
    op: &'static str,
    /// Where files land (upload) or come from (download).
    base: String,
    /// Files go into `base` rather than being `base`.
    into_dir: bool,
    dirs: Vec<String>,
    line: Vec<u8>,
    state: State,
}

impl Scp {
    /// Follows the transfer of `command` (`scp [-r] [-d] -t|-f PATH`), or `None` when it is
    /// not one.
    pub fn new(channel: u32, command: &str) -> Option<Scp> {
        let mut words = command.split_whitespace();
        if words.next()?.rsplit('/').next() != Some("scp") {
            return None;
        }
        let words: Vec<&str> = words.collect();
        let flags: String = words
            .iter()
            .filter(|w| w.starts_with('-') && !w.starts_with("--"))
            .flat_map(|w| w.chars().skip(1))
            .collect();
        let operand = words.iter().rev().find(|w| !w.starts_with('-'))?;
        let path = resolve(None, operand);
        let (op, base, into_dir) = if flags.contains('t') {
            let into = flags.contains('d') || flags.contains('r') || operand.ends_with('/');
            ("write", path, into)
        } else if flags.contains('f') {
            // Sent files are named relative to the operand's directory.
            let parent = match path.rsplit_once('/') {
                Some(("", _)) => "/".to_string(),
                Some((p, _)) => p.to_string(),
                None => String::new(),
            };
            ("read", parent, true)
        } else {
            return None;
        };
        Some(Scp {
            channel,
            op,
            base,
            into_dir,
            dirs: Vec::new(),
            line: Vec::new(),
            state: State::Line,
        })
    }

    /// Whether this follows the client → target direction (an upload).
    pub fn upload(&self) -> bool {
        self.op == "write"
    }

    /// Follows `data`; returns the files it finished.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<FileOp> {
        let mut done = Vec::new();
        while !data.is_empty() {
            match &mut self.state {
                State::Trailer => {
                    data = &data[1..];
                    self.state = State::Line;
                }
                State::Data { left, content, .. } => {
                    let n = (*left).min(data.len() as u64) as usize;
                    content.append(&data[..n]);
                    *left -= n as u64;
                    data = &data[n..];
                    if *left == 0 {
                        if let State::Data { path, content, .. } =
                            std::mem::replace(&mut self.state, State::Trailer)
                        {
                            done.push(content.finish(self.channel, self.op, path));
                        }
                    }
                }
                State::Line => {
                    let end = data.iter().position(|b| *b == b'\n');
                    let take = end.map_or(data.len(), |e| e + 1);
                    if self.line.len() + take <= MAX_LINE {
                        self.line.extend_from_slice(&data[..take]);
                    }
                    data = &data[take..];
                    if end.is_some() {
                        let line = std::mem::take(&mut self.line);
                        self.record(&String::from_utf8_lossy(&line));
                    }
                }
            }
        }
        done
    }

    fn record(&mut self, line: &str) {
        let line = line.trim_end_matches('\n');
        let mut fields = line.get(1..).unwrap_or_default().splitn(3, ' ');
        let (_mode, size, name) = (fields.next(), fields.next(), fields.next());
        match line.as_bytes().first() {
            Some(b'C') => {
                let (Some(size), Some(name)) = (size.and_then(|s| s.parse().ok()), name) else {
                    return;
                };
                let path = self.path_of(name);
                self.state = State::Data {
                    left: size,
                    path,
                    content: Box::new(Transfer::new()),
                };
            }
            Some(b'D') => self.dirs.push(name.unwrap_or_default().to_string()),
            Some(b'E') => {
                self.dirs.pop();
            }
            _ => {}
        }
    }

    fn path_of(&self, name: &str) -> String {
        if !self.into_dir && self.dirs.is_empty() {
            return self.base.clone();
        }
        let mut path = self.base.clone();
        for part in self.dirs.iter().map(String::as_str).chain([name]) {
            if !path.is_empty() {
                path.push('/');
            }
            path.push_str(part);
        }
        resolve(None, &path)
    }
}
