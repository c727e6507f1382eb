//! Programs on an agent's host, for command connections `via` an agent. The gateway opens an
//! exec stream in the agent's tunnel ([`sluice_tunnel::Tunnels::exec`]), sends what to run
//! (program, arguments, environment with the injected secrets, secret files, pty), then the
//! input; the agent answers with the output and the exit status. Both sides use the frames of
//! [`crate::terminal::wire`] (kind, length, payload) with the kinds below.
//!
//! The agent runs only the programs it was started to allow (`sluice agent --allow-exec
//! PROGRAM`); the gateway still judges, masks and records everything, as for a local run.
//! The agent holds the secrets for the duration of the run only: they travel inside the
//! tunnel's TLS, and the secret files live in a private directory removed after the run.

use crate::process::{self, Exit, PtyInput, Started};
use crate::spec::{Injected, RunSpec, DEFAULT_MAX_OUTPUT, DEFAULT_TIMEOUT};
use crate::terminal::wire::Decoder;
use serde::{Deserialize, Serialize};
use sluice_core::Secret;
use sluice_pipeline::Pipeline;
use std::future::Future;
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

/// What to run (gateway → agent, first).
pub const SPEC: u8 = 20;
/// Standard input, or keys on a pty (gateway → agent).
pub const STDIN: u8 = 21;
/// End of standard input (gateway → agent).
pub const STDIN_EOF: u8 = 22;
/// A window change (gateway → agent).
pub const RESIZE: u8 = 23;
/// Kill the run (gateway → agent).
pub const KILL: u8 = 24;
/// Standard output, or the pty's output (agent → gateway).
pub const STDOUT: u8 = 31;
/// Standard error (agent → gateway).
pub const STDERR: u8 = 32;
/// The exit status, as JSON [`Exit`] (agent → gateway, last).
pub const EXIT: u8 = 33;
/// The run could not start, and why (agent → gateway, last).
pub const FAILED: u8 = 34;

/// How long output may still arrive after the program exited.
const EXIT_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
/// Room in each output pipe between the tunnel and the relay.
const PIPE: usize = 64 * 1024;

/// One frame.
pub fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
    crate::terminal::wire::frame(kind, payload)
}

/// A [`RESIZE`] frame.
pub fn resize(rows: u16, cols: u16) -> Vec<u8> {
    let mut p = [0u8; 4];
    p[..2].copy_from_slice(&rows.to_be_bytes());
    p[2..].copy_from_slice(&cols.to_be_bytes());
    frame(RESIZE, &p)
}

/// A terminal for the run.
#[derive(Clone, Serialize, Deserialize)]
pub struct PtyAsk {
    /// `TERM`.
    pub term: String,
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// What the agent runs. Not `Debug`: it carries secrets.
#[derive(Serialize, Deserialize)]
pub struct RemoteSpec {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    secrets: Vec<(String, String)>,
    files: Vec<(String, String)>,
    workdir: Option<String>,
    pty: Option<PtyAsk>,
}

/// Variables a command may not set on an agent: they would run another program than the one
/// `--allow-exec` allows (`PATH`, the loader's and shells' start-up hooks).
const GUARDED_VARIABLES: &[&str] = &[
    "PATH",
    "BASH_ENV",
    "ENV",
    "PROMPT_COMMAND",
    "SHELLOPTS",
    "IFS",
];

impl RemoteSpec {
    /// A variable name this spec may not use: guarded, or not a plain name (secret files are
    /// named after their variable).
    fn forbidden_name(&self) -> Option<&str> {
        let plain = |n: &str| {
            !n.is_empty()
                && !n.starts_with(|c: char| c.is_ascii_digit())
                && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        self.env
            .iter()
            .chain(&self.secrets)
            .chain(&self.files)
            .map(|(n, _)| n.as_str())
            .find(|n| !plain(n) || n.starts_with("LD_") || GUARDED_VARIABLES.contains(n))
    }

    fn of(spec: &RunSpec, pty: Option<PtyAsk>) -> RemoteSpec {
        let pairs = |list: &[Injected]| {
            list.iter()
                .map(|s| (s.env.clone(), s.value.expose().clone()))
                .collect()
        };
        RemoteSpec {
            program: spec.program.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            secrets: pairs(&spec.secrets),
            files: pairs(&spec.files),
            workdir: spec.workdir.clone(),
            pty,
        }
    }

    fn into_run(self) -> (RunSpec, Option<PtyAsk>) {
        let injected = |list: Vec<(String, String)>| {
            list.into_iter()
                .map(|(env, v)| Injected {
                    env,
                    value: Secret::new(v),
                })
                .collect()
        };
        let spec = RunSpec {
            program: self.program,
            args: self.args,
            env: self.env,
            secrets: injected(self.secrets),
            files: injected(self.files),
            workdir: self.workdir,
            timeout: DEFAULT_TIMEOUT,
            max_output: DEFAULT_MAX_OUTPUT,
        };
        (spec, self.pty)
    }
}

/// Starts `spec` on `agent`'s host (on a pty when `pty` is given).
pub async fn start(
    pipeline: &Pipeline,
    agent: &str,
    spec: &RunSpec,
    pty: Option<PtyAsk>,
) -> Result<Started, String> {
    let stream = pipeline
        .tunnels()
        .exec(agent)
        .await
        .map_err(|e| e.to_string())?;
    let (mut rd, mut wr) = tokio::io::split(stream);
    let interactive = pty.is_some();
    let json = serde_json::to_vec(&RemoteSpec::of(spec, pty)).map_err(|e| e.to_string())?;
    wr.write_all(&frame(SPEC, &json))
        .await
        .map_err(|e| format!("agent {agent}: {e}"))?;
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    // Kills go ahead of queued input.
    let (control, mut urgent) = mpsc::unbounded_channel::<Vec<u8>>();
    // The stream stays open while the run's handle lives (the end of the input is not the
    // end of the run: the agent kills a run whose gateway went away).
    tokio::spawn(async move {
        let mut input_open = true;
        loop {
            let f = tokio::select! {
                biased;
                f = urgent.recv() => match f {
                    Some(f) => f,
                    None => break,
                },
                f = rx.recv(), if input_open => match f {
                    Some(f) => f,
                    None => {
                        input_open = false;
                        continue;
                    }
                },
            };
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let (mut out_w, out_r) = tokio::io::duplex(PIPE);
    let (mut err_w, err_r) = tokio::io::duplex(PIPE);
    let (exit_tx, exit_rx) = oneshot::channel();
    let agent_name = agent.to_string();
    tokio::spawn(async move {
        let mut decoder = Decoder::default();
        let end = loop {
            let f = match next_frame(&mut rd, &mut decoder).await {
                Some(f) => f,
                None => break Err(format!("the stream to agent {agent_name} closed")),
            };
            // Output nobody reads any more (the run is ending) is skipped, so the exit
            // status behind it still arrives.
            match f {
                (STDOUT, data) => {
                    let _ = out_w.write_all(&data).await;
                }
                (STDERR, data) => {
                    let _ = err_w.write_all(&data).await;
                }
                (EXIT, json) => {
                    break serde_json::from_slice::<Exit>(&json).map_err(|e| e.to_string())
                }
                (FAILED, why) => {
                    break Err(format!(
                        "agent {agent_name}: {}",
                        String::from_utf8_lossy(&why)
                    ))
                }
                _ => {}
            }
        };
        drop((out_w, err_w));
        let _ = exit_tx.send(end);
    });
    let stdin: Option<process::Writer> = if interactive {
        None
    } else {
        let (in_w, mut in_r) = tokio::io::duplex(PIPE);
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match in_r.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(frame(STDIN_EOF, b"")).await;
                        return;
                    }
                    Ok(n) => {
                        if tx.send(frame(STDIN, &buf[..n])).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Some(Box::new(in_w))
    };
    Ok(Started {
        stdin,
        stdout: Box::new(out_r),
        stderr: Box::new(err_r),
        pty: interactive.then(|| PtyInput::Remote(tx.clone())),
        handle: process::Handle::remote(control, exit_rx),
    })
}

/// The next frame from `rd`; `None` at the end of the stream or on a bad frame.
async fn next_frame<R: AsyncRead + Unpin>(
    rd: &mut R,
    decoder: &mut Decoder,
) -> Option<(u8, bytes::Bytes)> {
    loop {
        match decoder.next_frame() {
            Ok(Some(f)) => return Some(f),
            Ok(None) => match rd.read_buf(decoder.buffer()).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            },
            Err(_) => return None,
        }
    }
}

/// The agent's side: runs the programs in `allow` (`*` allows any) for the gateway.
pub struct AgentExec {
    allow: Vec<String>,
}

impl AgentExec {
    /// A service running the programs in `allow`.
    pub fn new(allow: Vec<String>) -> AgentExec {
        AgentExec { allow }
    }
}

impl sluice_tunnel::agent::ExecService for AgentExec {
    fn serve(
        &self,
        stream: sluice_tunnel::agent::ExecStream,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(serve_run(self.allow.clone(), stream))
    }
}

/// One run on the agent: the spec, the allow check, the program, its output and exit.
async fn serve_run<S: AsyncRead + AsyncWrite + Send + 'static>(allow: Vec<String>, stream: S) {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if wr.write_all(&f).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut decoder = Decoder::default();
    let spec = match next_frame(&mut rd, &mut decoder).await {
        Some((SPEC, json)) => serde_json::from_slice::<RemoteSpec>(&json).ok(),
        _ => None,
    };
    let Some(spec) = spec else {
        let _ = tx
            .send(frame(FAILED, b"the gateway sent no valid command"))
            .await;
        drop(tx);
        let _ = writer.await;
        return;
    };
    if let Some(name) = spec.forbidden_name() {
        warn!(variable = %name, "command refused: a variable it may not set");
        let why = format!("the command may not set {name:?} on this agent");
        let _ = tx.send(frame(FAILED, why.as_bytes())).await;
        drop(tx);
        let _ = writer.await;
        return;
    }
    if !allow.iter().any(|a| a == "*" || *a == spec.program) {
        warn!(program = %spec.program, "command refused: not in --allow-exec");
        let why = format!(
            "program {:?} is not in this agent's --allow-exec",
            spec.program
        );
        let _ = tx.send(frame(FAILED, why.as_bytes())).await;
        drop(tx);
        let _ = writer.await;
        return;
    }
    let (run, pty) = spec.into_run();
    let started = match &pty {
        Some(p) => process::start_pty(&run, &p.term, p.rows, p.cols),
        None => process::start(&run),
    };
    let started = match started {
        Ok(s) => s,
        Err(e) => {
            let why = format!("cannot start {}: {e}", run.program);
            let _ = tx.send(frame(FAILED, why.as_bytes())).await;
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    info!(program = %run.program, "command started for the gateway");
    relay(started, &mut rd, decoder, tx).await;
    let _ = writer.await;
}

/// Relays a started program: input frames in, output frames out, then the exit status.
async fn relay<R: AsyncRead + Unpin>(
    started: Started,
    rd: &mut R,
    mut decoder: Decoder,
    tx: mpsc::Sender<Vec<u8>>,
) {
    let Started {
        stdin,
        stdout,
        stderr,
        mut pty,
        mut handle,
    } = started;
    let killer = handle.killer();
    // Input is written by a task of its own: a program that does not read it must not stop
    // this loop from draining its output or hearing a kill.
    let (input, mut input_rx) = mpsc::unbounded_channel::<Option<bytes::Bytes>>();
    let mut input = Some(input);
    if let Some(mut w) = stdin {
        tokio::spawn(async move {
            while let Some(Some(data)) = input_rx.recv().await {
                if w.write_all(&data).await.is_err() {
                    return;
                }
            }
        });
    }
    let outputs = async {
        tokio::join!(
            pump(stdout, STDOUT, tx.clone()),
            pump(stderr, STDERR, tx.clone())
        )
    };
    let mut outputs = std::pin::pin!(outputs);
    let mut outputs_done = false;
    let mut gateway_open = true;
    let mut exited: Option<std::io::Result<Exit>> = None;
    let exit = loop {
        if outputs_done && exited.is_some() {
            break exited.take();
        }
        tokio::select! {
            _ = &mut outputs, if !outputs_done => outputs_done = true,
            exit = handle.wait(), if exited.is_none() => {
                // What the program started ends with it (jobs of a shell on a pty, daemons
                // holding its output); its last output still gets through.
                killer.kill();
                exited = Some(exit);
            }
            _ = tokio::time::sleep(EXIT_GRACE), if exited.is_some() => break exited.take(),
            f = next_frame(rd, &mut decoder), if gateway_open => match f {
                Some((STDIN, data)) => match &mut pty {
                    Some(p) => {
                        p.write(&data).await;
                    }
                    None => {
                        if let Some(i) = &input {
                            let _ = i.send(Some(data));
                        }
                    }
                },
                Some((STDIN_EOF, _)) => {
                    if let Some(i) = input.take() {
                        let _ = i.send(None);
                    }
                }
                Some((RESIZE, p)) => {
                    if let (Some(pty), Ok((rows, cols))) = (&pty, crate::terminal::wire::parse_resize(&p)) {
                        pty.resize(rows, cols).await;
                    }
                }
                Some((KILL, _)) => killer.kill(),
                Some(_) => {}
                // The gateway went away: the run ends with it.
                None => {
                    gateway_open = false;
                    killer.kill();
                }
            },
        }
    };
    let json =
        match exit.unwrap_or_else(|| Err(std::io::Error::other("the program's end was lost"))) {
            Ok(e) => serde_json::to_vec(&e).unwrap_or_default(),
            Err(e) => {
                let _ = tx.send(frame(FAILED, e.to_string().as_bytes())).await;
                return;
            }
        };
    let _ = tx.send(frame(EXIT, &json)).await;
}

/// Sends everything `r` yields as frames of `kind`.
async fn pump(mut r: process::Reader, kind: u8, tx: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(kind, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}
