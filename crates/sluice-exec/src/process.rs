//! Starting the program and ending it: a cleared environment with the injected secrets, a
//! private directory for secret files (and the working directory, unless the connection
//! names one), its own process group so that a kill reaches every process it started.

use crate::spec::RunSpec;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};

/// What the program may inherit from the gateway's environment besides what the
/// connection injects.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A started program.
pub struct Running {
    /// The process (the leader of its own process group).
    pub child: Child,
    /// Its standard input, until written and closed.
    pub stdin: Option<ChildStdin>,
    /// Standard output.
    pub stdout: ChildStdout,
    /// Standard error.
    pub stderr: ChildStderr,
    /// The private directory (secret files; the working directory unless configured),
    /// removed when this is dropped.
    _private: tempfile::TempDir,
}

impl Running {
    /// Kills the program and everything it started (its process group).
    pub fn kill_group(&mut self) {
        if let Some(pid) = self.child.id().and_then(|p| i32::try_from(p).ok()) {
            // The group may already be gone (ESRCH); nothing else can fail here.
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.start_kill();
    }
}

/// Starts `spec`'s program.
pub fn start(spec: &RunSpec) -> io::Result<Running> {
    let private = tempfile::Builder::new().prefix("sluice-exec-").tempdir()?;
    let workdir = match &spec.workdir {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let dir = private.path().join("work");
            std::fs::create_dir(&dir)?;
            dir
        }
    };
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .env("PATH", PATH)
        .env("LANG", "C.UTF-8")
        .env("HOME", &workdir)
        .current_dir(&workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for (k, v) in &spec.env {
        cmd.env(k, v);
    }
    for s in &spec.secrets {
        cmd.env(&s.env, s.value.expose());
    }
    if !spec.files.is_empty() {
        let secrets = private.path().join("secrets");
        std::fs::create_dir(&secrets)?;
        for s in &spec.files {
            let path = secrets.join(&s.env);
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .and_then(|mut f| io::Write::write_all(&mut f, s.value.expose().as_bytes()))?;
            cmd.env(&s.env, &path);
        }
    }
    let mut child = cmd.spawn()?;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(io::Error::other("the program's pipes were not set up"));
    };
    Ok(Running {
        child,
        stdin: Some(stdin),
        stdout,
        stderr,
        _private: private,
    })
}
