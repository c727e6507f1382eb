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
        kill_group(&mut self.child);
    }
}

/// A program started on a pseudo-terminal (`sluice connect`): the session leader of a
/// session of its own, the pty its controlling terminal.
pub struct RunningPty {
    /// The process.
    pub child: Child,
    /// The pty's controlling side.
    pub pty: pty_process::Pty,
    _private: tempfile::TempDir,
}

/// Kills `child` and everything it started (its process group).
pub fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        // The group may already be gone (ESRCH); nothing else can fail here.
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
    let _ = child.start_kill();
}

/// The environment and directories of a run.
struct Prepared {
    private: tempfile::TempDir,
    workdir: std::path::PathBuf,
    env: Vec<(String, std::ffi::OsString)>,
}

/// Creates the private directory, writes the secret files, and lists the environment.
fn prepare(spec: &RunSpec) -> io::Result<Prepared> {
    let private = tempfile::Builder::new().prefix("sluice-exec-").tempdir()?;
    let workdir = match &spec.workdir {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            let dir = private.path().join("work");
            std::fs::create_dir(&dir)?;
            dir
        }
    };
    let mut env: Vec<(String, std::ffi::OsString)> = vec![
        ("PATH".into(), PATH.into()),
        ("LANG".into(), "C.UTF-8".into()),
        ("HOME".into(), workdir.clone().into()),
    ];
    env.extend(spec.env.iter().map(|(k, v)| (k.clone(), v.into())));
    env.extend(
        spec.secrets
            .iter()
            .map(|s| (s.env.clone(), s.value.expose().into())),
    );
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
            env.push((s.env.clone(), path.into()));
        }
    }
    Ok(Prepared {
        private,
        workdir,
        env,
    })
}

/// Starts `spec`'s program with pipes for stdin, stdout and stderr.
pub fn start(spec: &RunSpec) -> io::Result<Running> {
    let p = prepare(spec)?;
    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env_clear()
        .envs(p.env)
        .current_dir(&p.workdir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
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
        _private: p.private,
    })
}

/// Starts `spec`'s program on a new pty of `rows` × `cols` with `TERM=term`.
pub fn start_pty(spec: &RunSpec, term: &str, rows: u16, cols: u16) -> io::Result<RunningPty> {
    let p = prepare(spec)?;
    let (pty, pts) = pty_process::open().map_err(io::Error::other)?;
    pty.resize(pty_process::Size::new(rows, cols))
        .map_err(io::Error::other)?;
    let child = pty_process::Command::new(&spec.program)
        .args(&spec.args)
        .env_clear()
        .envs(p.env)
        .env("TERM", term)
        .current_dir(&p.workdir)
        .kill_on_drop(true)
        .spawn(pts)
        .map_err(|e| match e {
            pty_process::Error::Io(e) => e,
            other => io::Error::other(other),
        })?;
    Ok(RunningPty {
        child,
        pty,
        _private: p.private,
    })
}
