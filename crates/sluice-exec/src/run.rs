//! One run from authorization to its end: record, judge, start, relay the output (masked,
//! recorded, limited), and end the session exactly once, whatever stopped it.

use crate::event::{ExecEvent, Stream, EXIT_REFUSED, EXIT_TIMED_OUT};
use crate::judge::{self, Judge, Judged};
use crate::output::OutputStream;
use crate::process::{self, Exit, Started};
use crate::remote;
use crate::session::RunSession;
use crate::spec::RunSpec;
use crate::ExecSettings;
use bytes::Bytes;
use sluice_core::{ChannelIo, ChannelStart, EndReason, SessionEvent};
use sluice_pipeline::{Authorized, Pipeline, Recorder, Stop};
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::info;

/// How long a line without its end is held back for masking before it goes out anyway.
const IDLE_FLUSH: Duration = Duration::from_millis(50);
/// How long output may still arrive after the program exited, while something it started
/// holds its pipes open.
const EXIT_GRACE: Duration = Duration::from_millis(200);

/// What a client asks to run.
pub struct ExecRequest {
    /// Arguments after the connection's own.
    pub args: Vec<String>,
    /// Standard input (the script).
    pub stdin: Bytes,
}

/// Runs `request` for `authorized`, telling the client through `client`. Returns when the
/// session has ended and been recorded.
pub async fn run(
    pipeline: Pipeline,
    authorized: Authorized,
    request: ExecRequest,
    settings: ExecSettings,
    client: mpsc::Sender<ExecEvent>,
) {
    let connection = authorized.connection.clone();
    let spec = match RunSpec::resolve(
        &connection.name.0,
        connection.command.as_ref(),
        request.args,
    ) {
        Ok(s) => s,
        Err(e) => {
            pipeline.target_failed(&authorized, &e.to_string());
            let _ = client
                .send(ExecEvent::refused(format!("sluice: {e}")))
                .await;
            return;
        }
    };
    let RunSession {
        recorder,
        registration,
        policy,
        rules,
        secrets,
    } = match RunSession::open(&pipeline, authorized, &spec, connection.via.as_deref()) {
        Ok(s) => s,
        Err(message) => {
            let _ = client.send(ExecEvent::refused(message)).await;
            return;
        }
    };
    let _ = client
        .send(ExecEvent::Session {
            id: recorder.id().0.clone(),
        })
        .await;
    let (text, analysis) = judge::analyze(&spec, &request.stdin);
    let shared = Mutex::new(recorder);
    let verdict = Judge {
        recorder: &shared,
        id: 1,
        policy: policy.as_ref(),
        maskers: [secrets.as_ref(), rules.as_ref()],
        stop: registration.stop.clone(),
    }
    .judge(
        &text,
        None,
        &analysis,
        async |message| {
            let _ = client.send(ExecEvent::Notice { message }).await;
        },
        client.closed(),
    )
    .await;
    let mut recorder = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    let query = match verdict {
        Judged::Run(id) => id,
        Judged::Refused(message) => {
            let _ = client.send(ExecEvent::refused(message.clone())).await;
            recorder.finish(EndReason::Refused, Some(message));
            return;
        }
        Judged::Stopped(stop) => return end_stopped(recorder, &client, stop).await,
    };
    let started = match &connection.via {
        Some(agent) => remote::start(&pipeline, agent, &spec, None)
            .await
            .map_err(|why| {
                (
                    format!(
                        "sluice: cannot run {} on agent {agent}: {why}",
                        spec.program
                    ),
                    EXIT_REFUSED,
                )
            }),
        None => process::start(&spec).map_err(|e| {
            let code = if e.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                EXIT_REFUSED
            };
            (format!("sluice: cannot start {}: {e}", spec.program), code)
        }),
    };
    let mut started = match started {
        Ok(r) => r,
        Err((message, exit_code)) => {
            let _ = client
                .send(ExecEvent::Error {
                    message: message.clone(),
                    exit_code,
                })
                .await;
            recorder.finish(EndReason::TargetError, Some(message));
            return;
        }
    };
    info!(program = %spec.program, "command started");
    let _ = recorder.record(&SessionEvent::Channel(Box::new(ChannelStart {
        channel: 0,
        purpose: "exec".into(),
        detail: Some(spec.command_line()),
        query: Some(query),
        pty: None,
    })));
    let mut relay = Relay {
        recorder,
        client,
        stop: registration.stop.clone(),
        deadline: Instant::now() + spec.timeout,
        out: OutputStream::new(secrets.clone(), rules.clone(), settings.output_cap),
        err: OutputStream::new(secrets, rules.clone(), settings.output_cap),
        printed: 0,
        max_output: spec.max_output,
    };
    let stdin = started.stdin.take();
    let feed = tokio::spawn(async move {
        if let Some(mut stdin) = stdin {
            // A program that exits without reading its input closes the pipe: not an error.
            let _ = stdin.write_all(&request.stdin).await;
        }
    });
    let ended = relay.pump(&mut started).await;
    feed.abort();
    let rule_names = rules
        .as_ref()
        .map(|m| m.custom_names().to_vec())
        .unwrap_or_default();
    relay.end(ended, &rule_names, spec.timeout).await;
}

/// Why the output relay stopped.
enum Ended {
    /// The program exited.
    Exited(Exit),
    /// Containment stopped the session.
    Stopped(Stop),
    /// The time limit passed.
    TimedOut,
    /// The output limit was passed.
    TooMuchOutput,
    /// The client went away.
    ClientGone,
    /// Waiting for the program failed.
    Failed(std::io::Error),
}

/// The output side of a running program.
struct Relay {
    recorder: Recorder,
    client: mpsc::Sender<ExecEvent>,
    stop: watch::Receiver<Option<Stop>>,
    deadline: Instant,
    out: OutputStream,
    err: OutputStream,
    printed: u64,
    max_output: u64,
}

impl Relay {
    /// Relays output until the program exits or something stops it (then kills it).
    /// Whatever the program left running (a daemon holding its stdout) is killed with it.
    async fn pump(&mut self, started: &mut Started) -> Ended {
        let (mut out_buf, mut err_buf) = (vec![0u8; 32 * 1024], vec![0u8; 32 * 1024]);
        let (mut out_open, mut err_open) = (true, true);
        let mut exited: Option<Exit> = None;
        let client = self.client.clone();
        let mut stop = self.stop.clone();
        let deadline = self.deadline;
        let ended = loop {
            if let (Some(e), false, false) = (exited, out_open, err_open) {
                break Ended::Exited(e);
            }
            let holding = self.out.holding() || self.err.holding();
            tokio::select! {
                n = read(&mut started.stdout, &mut out_buf), if out_open => match n {
                    0 => out_open = false,
                    n => if let Err(e) = self.output(Stream::Stdout, &out_buf[..n]).await {
                        break e;
                    },
                },
                n = read(&mut started.stderr, &mut err_buf), if err_open => match n {
                    0 => err_open = false,
                    n => if let Err(e) = self.output(Stream::Stderr, &err_buf[..n]).await {
                        break e;
                    },
                },
                status = started.handle.wait(), if exited.is_none() => match status {
                    Ok(s) => exited = Some(s),
                    Err(e) => break Ended::Failed(e),
                },
                // The program has exited but something it started still holds its output:
                // what is in the pipes has a moment to arrive, then the run is over.
                _ = tokio::time::sleep(EXIT_GRACE), if exited.is_some() => {
                    break Ended::Exited(exited.unwrap_or_default());
                }
                _ = tokio::time::sleep(IDLE_FLUSH), if holding => if let Err(e) = self.flush().await {
                    break e;
                },
                s = async { stop.wait_for(Option::is_some).await.ok().and_then(|s| s.clone()) } => {
                    break Ended::Stopped(s.unwrap_or_else(killed));
                }
                _ = tokio::time::sleep_until(deadline) => break Ended::TimedOut,
                _ = client.closed() => break Ended::ClientGone,
            }
        };
        started.handle.kill();
        if exited.is_none() {
            // Nothing reads the output any more: an agent's relay must not wait for it.
            started.stdout = Box::new(tokio::io::empty());
            started.stderr = Box::new(tokio::io::empty());
            let _ = started.handle.wait().await;
        }
        let _ = self.flush().await;
        ended
    }

    /// Masks, records and sends one chunk; fails once the output limit is passed, or when
    /// the run ends while the client does not take the output.
    async fn output(&mut self, stream: Stream, raw: &[u8]) -> Result<(), Ended> {
        self.printed += raw.len() as u64;
        if self.printed > self.max_output {
            return Err(Ended::TooMuchOutput);
        }
        let masked = match stream {
            Stream::Stdout => self.out.push(raw),
            Stream::Stderr => self.err.push(raw),
        };
        self.deliver(stream, masked).await
    }

    /// Sends out what both streams held back.
    async fn flush(&mut self) -> Result<(), Ended> {
        let out = self.out.flush();
        self.deliver(Stream::Stdout, out).await?;
        let err = self.err.flush();
        self.deliver(Stream::Stderr, err).await
    }

    /// Records masked output and sends it. A client that stops reading holds the program
    /// back (its pipes fill), but never a kill, a block or the time limit.
    async fn deliver(
        &mut self,
        stream: Stream,
        masked: crate::output::Masked,
    ) -> Result<(), Ended> {
        if let Some((data, base64)) = masked.record {
            let _ = self.recorder.record(&SessionEvent::Io(Box::new(ChannelIo {
                channel: 0,
                stream: stream.recorded().into(),
                data,
                base64,
            })));
        }
        if masked.client.is_empty() {
            return Ok(());
        }
        let event = ExecEvent::output(stream, &masked.client);
        let mut stop = self.stop.clone();
        tokio::select! {
            sent = self.client.send(event) => sent.map_err(|_| Ended::ClientGone),
            s = async { stop.wait_for(Option::is_some).await.ok().and_then(|s| s.clone()) } => {
                Err(Ended::Stopped(s.unwrap_or_else(killed)))
            }
            _ = tokio::time::sleep_until(self.deadline) => Err(Ended::TimedOut),
        }
    }

    /// Records how the run ended, tells the client, and ends the session.
    async fn end(mut self, ended: Ended, rule_names: &[String], timeout: Duration) {
        let (reason, detail, event) = match ended {
            Ended::Exited(status) => {
                self.record_exit(status.code, status.signal);
                let detail = match (status.code, status.signal) {
                    (Some(c), _) => format!("the command exited with status {c}"),
                    (None, Some(s)) => format!("the command was ended by signal {s}"),
                    (None, None) => "the command ended".into(),
                };
                let event = ExecEvent::Exit {
                    code: status.code,
                    signal: status.signal,
                };
                (EndReason::TargetClosed, detail, Some(event))
            }
            Ended::Stopped(stop) => {
                self.record_exit(None, Some(9));
                let message = format!("sluice: {}", stop.message);
                (stop.reason, stop.message, Some(ExecEvent::refused(message)))
            }
            Ended::TimedOut => {
                self.record_exit(None, Some(9));
                let message = format!(
                    "sluice: the command ran past its time limit ({}) and was killed",
                    sluice_pipeline::reviews::human(timeout)
                );
                let event = ExecEvent::Error {
                    message: message.clone(),
                    exit_code: EXIT_TIMED_OUT,
                };
                (EndReason::LimitExceeded, message, Some(event))
            }
            Ended::TooMuchOutput => {
                self.record_exit(None, Some(9));
                let message = format!(
                    "sluice: the command printed more than its output limit ({} bytes) and was killed",
                    self.max_output
                );
                (
                    EndReason::LimitExceeded,
                    message.clone(),
                    Some(ExecEvent::refused(message)),
                )
            }
            Ended::ClientGone => {
                self.record_exit(None, Some(9));
                let detail = "the client went away; the command was killed".to_string();
                (EndReason::ClientDisconnected, detail, None)
            }
            Ended::Failed(e) => {
                let message = format!("sluice: the command failed to run: {e}");
                (
                    EndReason::GatewayError,
                    message.clone(),
                    Some(ExecEvent::refused(message)),
                )
            }
        };
        let _ = self.recorder.record(&SessionEvent::ChannelEnd {
            channel: 0,
            bytes_up: 0,
            bytes_down: self.printed,
        });
        let mut counts = self.out.counts(rule_names);
        for (k, v) in self.err.counts(rule_names) {
            *counts.entry(k).or_default() += v;
        }
        if !counts.is_empty() {
            let _ = self.recorder.record(&SessionEvent::Masking { counts });
        }
        info!(reason = reason.as_str(), "command run ended");
        self.recorder.finish(reason, Some(detail));
        if let Some(event) = event {
            // The last word, after the recording has ended: a client that stopped reading
            // holds only this task.
            let _ = self.client.send(event).await;
        }
    }

    fn record_exit(&mut self, status: Option<i32>, signal: Option<i32>) {
        let _ = self.recorder.record(&SessionEvent::Exit {
            channel: 0,
            status: status.and_then(|s| u32::try_from(s).ok()),
            signal: signal.map(signal_name),
        });
    }
}

/// Ends a session stopped before its program started.
async fn end_stopped(recorder: Recorder, client: &mpsc::Sender<ExecEvent>, stop: Stop) {
    let message = format!("sluice: {}", stop.message);
    recorder.finish(stop.reason, Some(stop.message));
    let _ = client.send(ExecEvent::refused(message)).await;
}

/// The stop an administrator's kill sends, should the signal carry none.
fn killed() -> Stop {
    Stop {
        reason: EndReason::Killed,
        message: "the session was killed by an administrator".into(),
    }
}

/// Reads into `buf`; a read error ends the stream like EOF.
async fn read(r: &mut process::Reader, buf: &mut [u8]) -> usize {
    r.read(buf).await.unwrap_or(0)
}

/// `KILL`, `TERM`, … as SSH names signals.
fn signal_name(signal: i32) -> String {
    nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().trim_start_matches("SIG").to_string())
        .unwrap_or_else(|_| signal.to_string())
}
