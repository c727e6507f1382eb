//! The web console in headless Chromium: `tests/oidc/console.mjs` signs a person in at the
//! test's OpenID Provider and plays a list of steps; screenshots are kept as the run's
//! artifacts in `target/tmp/console-shots`.

use super::Gateway;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};

/// Where the screenshots go.
pub fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-shots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A person at the console, their steps running.
pub struct Browser {
    child: Child,
    lines: BufReader<ChildStdout>,
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
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap());
        Browser { child, lines }
    }

    /// Waits for the steps' `{"signal": name}`: what they kept so far.
    pub fn signal(&mut self, name: &str) -> Value {
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
                    return v["output"].clone();
                }
            }
        }
    }

    /// Waits for the steps to finish: what they kept.
    pub fn finish(mut self) -> Value {
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
