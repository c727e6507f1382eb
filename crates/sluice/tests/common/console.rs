//! The web console in headless Chromium: `tests/oidc/console.mjs` signs a person in at the
//! test's OpenID Provider and plays a list of steps; screenshots are kept as the run's
//! artifacts in `target/tmp/console-shots`.

use super::Gateway;
use serde_json::Value;
use std::io::Write;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Where the screenshots go.
pub fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A person at the console, their steps running. The steps wait at each `signal` until
/// the test asks for the next one (or for the end).
pub struct Browser {
    child: Child,
    lines: BufReader<ChildStdout>,
    /// Where the go-ahead after a signal is written; `None` once the steps run to the end.
    go_ahead: Option<ChildStdin>,
    /// The steps wait at a signal.
    paused: bool,
}

impl Browser {
    /// Signs `user` in to `gw`'s console and starts `steps`.
    pub fn start(gw: &Gateway, user: &str, steps: &Value) -> Browser {
        let base = format!("https://127.0.0.1:{}", gw.api.port());
        let mut child = Command::new("node")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc/console.mjs"))
            .arg(&base)
            .arg(user)
            .arg(shots())
            .arg(steps.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap());
        let go_ahead = child.stdin.take();
        Browser {
            child,
            lines,
            go_ahead,
            paused: false,
        }
    }

    /// Lets steps waiting at a signal go on.
    fn resume(&mut self) {
        if std::mem::take(&mut self.paused) {
            if let Some(stdin) = self.go_ahead.as_mut() {
                let _ = stdin.write_all(b"go\n").and_then(|()| stdin.flush());
            }
        }
    }

    /// Lets the steps go on from the last signal and waits for their `{"signal": name}`:
    /// what they kept so far. They wait there until the next `signal` or `finish`.
    pub fn signal(&mut self, name: &str) -> Value {
        self.resume();
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.lines.read_line(&mut line).unwrap();
            if n == 0 {
                let out = self.child.wait_with_output_ref();
                panic!("the browser stopped before signalling {name}: {out}");
            }
            if let Ok(v) = serde_json::from_str::<Value>(&line) {
                if v["signal"] == name {
                    self.paused = true;
                    return v["output"].clone();
                }
            }
        }
    }

    /// Waits for the steps to finish: what they kept.
    pub fn finish(mut self) -> Value {
        self.resume();
        self.go_ahead = None;
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.lines, &mut rest).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}", self.child.wait_with_output_ref());
        let last = rest.lines().last().unwrap_or("{}");
        serde_json::from_str(last).unwrap()
    }
}

trait StderrText {
    fn wait_with_output_ref(&mut self) -> String;
}

impl StderrText for Child {
    /// What the browser script said on stderr.
    fn wait_with_output_ref(&mut self) -> String {
        let _ = self.wait();
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        err
    }
}

/// Runs `steps` as `user` to the end.
pub fn run(gw: &Gateway, user: &str, steps: Value) -> Value {
    Browser::start(gw, user, &steps).finish()
}
