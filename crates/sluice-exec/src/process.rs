//! Starting the program and ending it: a cleared environment with the injected secrets, a
//! private directory for secret files (and the working directory, unless the connection
//! names one), its own process group so that a kill reaches every process it started.

use crate::spec::RunSpec;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Stdio;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot};

/// What the program may inherit from the gateway's environment besides what the
/// connection injects.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How a program ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Exit {
    /// Exit status, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
}

impl From<std::process::ExitStatus> for Exit {
    fn from(s: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        Exit {
            code: s.code(),
            signal: s.signal(),
        }
    }
}

/// Boxed reading and writing halves, so a program on the gateway host and one on an agent's
/// look the same to the relay.
pub type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// See [`Reader`].
pub type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A started program, on the gateway host or on an agent's.
pub struct Started {
    /// Standard input (pipes; `None` on a pty, whose input is [`Started::pty`]).
    pub stdin: Option<Writer>,
    /// Standard output, or what the pty shows.
    pub stdout: Reader,
    /// Standard error (empty on a pty).
    pub stderr: Reader,
    /// The pty's input and size, for interactive runs.
    pub pty: Option<PtyInput>,
    /// Waiting for the end, and killing.
    pub handle: Handle,
}

/// The input side of a pty.
pub enum PtyInput {
    /// A pty on the gateway host.
    Local(pty_process::OwnedWritePty),
    /// A pty on an agent's host: frames toward it.
    Remote(mpsc::Sender<Vec<u8>>),
}

impl PtyInput {
    /// Writes keys; false when the pty is gone.
    pub async fn write(&mut self, keys: &[u8]) -> bool {
        match self {
            PtyInput::Local(w) => w.write_all(keys).await.is_ok(),
            PtyInput::Remote(tx) => tx
                .send(crate::remote::frame(crate::remote::STDIN, keys))
                .await
                .is_ok(),
        }
    }

    /// Follows a window change.
    pub async fn resize(&self, rows: u16, cols: u16) {
        match self {
            PtyInput::Local(w) => {
                let _ = w.resize(pty_process::Size::new(rows, cols));
            }
            PtyInput::Remote(tx) => {
                let _ = tx.send(crate::remote::resize(rows, cols)).await;
            }
        }
    }
}

/// Waits for a program's end and kills it.
pub struct Handle {
    inner: HandleInner,
    /// The private directory (secret files; the working directory unless configured),
    /// removed when the handle is dropped.
    _private: Option<tempfile::TempDir>,
}

enum HandleInner {
    /// A child of this process and its process group (taken at spawn: the id is gone from
    /// the child once it is reaped, the group may outlive it).
    Local(Child, Option<i32>),
    Remote {
        control: mpsc::UnboundedSender<Vec<u8>>,
        exit: Option<oneshot::Receiver<Result<Exit, String>>>,
    },
}

impl Handle {
    /// A handle of a program on an agent's host.
    pub fn remote(
        control: mpsc::UnboundedSender<Vec<u8>>,
        exit: oneshot::Receiver<Result<Exit, String>>,
    ) -> Handle {
        Handle {
            inner: HandleInner::Remote {
                control,
                exit: Some(exit),
            },
            _private: None,
        }
    }

    fn local(child: Child, private: tempfile::TempDir) -> Handle {
        let group = child.id().and_then(|p| i32::try_from(p).ok());
        Handle {
            inner: HandleInner::Local(child, group),
            _private: Some(private),
        }
    }

    /// Waits until the program has ended.
    pub async fn wait(&mut self) -> io::Result<Exit> {
        match &mut self.inner {
            HandleInner::Local(child, _) => child.wait().await.map(Exit::from),
            // Polled in place: a `select!` may drop this future and wait again later.
            HandleInner::Remote { exit, .. } => {
                let Some(rx) = exit.as_mut() else {
                    return Err(io::Error::other("the program's end was already reported"));
                };
                let result = rx.await;
                *exit = None;
                match result {
                    Ok(Ok(e)) => Ok(e),
                    Ok(Err(why)) => Err(io::Error::other(why)),
                    Err(_) => Err(io::Error::other(
                        "the agent's stream ended without an exit status",
                    )),
                }
            }
        }
    }

    /// Kills the program and everything it started (its process group or session).
    pub fn kill(&mut self) {
        self.killer().kill();
    }

    /// What kills the program, apart from the handle (to kill while waiting).
    pub fn killer(&self) -> Killer {
        match &self.inner {
            HandleInner::Local(_, group) => Killer::Local(*group),
            HandleInner::Remote { control, .. } => Killer::Remote(control.clone()),
        }
    }
}

/// Kills a program: its process group here, or through its agent.
#[derive(Clone)]
pub enum Killer {
    /// The process group of the program on this host.
    Local(Option<i32>),
    /// The program on an agent's host: frames that go before any input.
    Remote(mpsc::UnboundedSender<Vec<u8>>),
}

impl Killer {
    /// Kills the program and everything it started.
    pub fn kill(&self) {
        match self {
            Killer::Local(Some(pid)) => {
                // The group may already be gone (ESRCH); nothing else can fail here.
                let _ = killpg(Pid::from_raw(*pid), Signal::SIGKILL);
                kill_session(*pid);
            }
            Killer::Local(None) => {}
            Killer::Remote(control) => {
                let _ = control.send(crate::remote::frame(crate::remote::KILL, b""));
            }
        }
    }
}

/// Kills every process of the session `sid` leads (a program on a pty leads its own session:
/// an interactive shell puts each job in a process group of its own, in that session).
/// Reads `/proc`, which is memory, not disk.
fn kill_session(sid: i32) {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // After the command name (which may hold spaces and parentheses): state, ppid, pgrp,
        // session.
        let session = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(3))
            .and_then(|s| s.parse::<i32>().ok());
        if session == Some(sid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
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

/// Starts `spec`'s program on this host with pipes for stdin, stdout and stderr.
pub fn start(spec: &RunSpec) -> io::Result<Started> {
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
    Ok(Started {
        stdin: Some(Box::new(stdin)),
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        pty: None,
        handle: Handle::local(child, p.private),
    })
}

/// Starts `spec`'s program on this host on a new pty of `rows` × `cols` with `TERM=term`:
/// the leader of a session of its own, the pty its controlling terminal.
pub fn start_pty(spec: &RunSpec, term: &str, rows: u16, cols: u16) -> io::Result<Started> {
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
    let (reader, writer) = pty.into_split();
    Ok(Started {
        stdin: None,
        stdout: Box::new(reader),
        stderr: Box::new(tokio::io::empty()),
        pty: Some(PtyInput::Local(writer)),
        handle: Handle::local(child, p.private),
    })
}
