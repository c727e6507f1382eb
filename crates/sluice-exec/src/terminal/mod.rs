//! Interactive runs (`sluice connect CONNECTION`): the connection's program on a pty, the
//! person's terminal on the other end of an upgraded HTTPS connection ([`wire`]). Every line
//! typed is rebuilt and judged before its Enter reaches the program ([`sluice_terminal`]),
//! the screen is recorded as terminal output (replayable as asciicast), secrets and the
//! connection's masking rules are masked on the way out, and containment and limits end the
//! program's whole session.

pub mod wire;

use crate::event::{ExecEvent, EXIT_REFUSED, EXIT_TIMED_OUT};
use crate::judge::{self, Judge, Judged};
use crate::output::OutputStream;
use crate::process::{self, Exit, PtyInput, Started};
use crate::remote::{self, PtyAsk};
use crate::session::RunSession;
use crate::spec::RunSpec;
use crate::ExecSettings;
use bytes::Bytes;
use sluice_core::{ChannelIo, ChannelStart, EndReason, Pty, SessionEvent};
use sluice_mask::Masker;
use sluice_pipeline::output::TextCarry;
use sluice_pipeline::{Authorized, Pipeline, Recorder, SessionPolicy, Stop};
use sluice_terminal::{LineVerdict, Side, TerminalView, Typing};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::info;

/// Longest interactive session when the connection sets no `timeout`.
const TERMINAL_TIMEOUT: Duration = Duration::from_secs(8 * 3600);
/// How long an unfinished output line waits for its end before it goes out anyway.
const IDLE_FLUSH: Duration = Duration::from_millis(10);
/// How long what the program printed last may take to arrive once it has exited.
const EXIT_GRACE: Duration = Duration::from_millis(200);

/// What a client asks for.
pub struct TerminalRequest {
    /// Arguments after the connection's own.
    pub args: Vec<String>,
    /// `TERM`.
    pub term: String,
    /// Rows.
    pub rows: u16,
    /// Columns.
    pub cols: u16,
}

/// Runs an interactive session of `authorized`'s connection over `stream` (the upgraded
/// connection); returns when it has ended and been recorded.
pub async fn run_terminal<S>(
    pipeline: Pipeline,
    authorized: Authorized,
    request: TerminalRequest,
    settings: ExecSettings,
    stream: S,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (client_r, mut client_w) = tokio::io::split(stream);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let writer = tokio::spawn(async move {
        while let Some(frame) = rx.recv().await {
            if sluice_pipeline::stream::write_flushed(&mut client_w, &frame)
                .await
                .is_err()
            {
                return;
            }
        }
        let _ = client_w.shutdown().await;
    });
    session(pipeline, authorized, request, settings, client_r, tx).await;
    let _ = writer.await;
}

/// Sends an event frame.
async fn event(client: &mpsc::Sender<Vec<u8>>, e: &ExecEvent) {
    let json = serde_json::to_vec(e).unwrap_or_default();
    let _ = client.send(wire::frame(wire::EVENT, &json)).await;
}

async fn session<R: AsyncRead + Unpin>(
    pipeline: Pipeline,
    authorized: Authorized,
    request: TerminalRequest,
    settings: ExecSettings,
    client_r: R,
    client: mpsc::Sender<Vec<u8>>,
) {
    let options = authorized.connection.command.clone();
    let via = authorized.connection.via.clone();
    let spec = match RunSpec::resolve(
        &authorized.connection.name.0,
        options.as_ref(),
        request.args,
    ) {
        Ok(s) => s,
        Err(e) => {
            pipeline.target_failed(&authorized, &e.to_string());
            return event(&client, &ExecEvent::refused(format!("sluice: {e}"))).await;
        }
    };
    let timeout = match options.as_ref().and_then(|o| o.timeout.as_ref()) {
        Some(_) => spec.timeout,
        None => TERMINAL_TIMEOUT,
    };
    let max_output = options
        .as_ref()
        .and_then(|o| o.max_output)
        .unwrap_or(u64::MAX);
    let RunSession {
        recorder,
        registration,
        policy,
        rules,
        secrets,
    } = match RunSession::open(&pipeline, authorized, &spec, via.as_deref()) {
        Ok(s) => s,
        Err(message) => return event(&client, &ExecEvent::refused(message)).await,
    };
    event(
        &client,
        &ExecEvent::Session {
            id: recorder.id().0.clone(),
        },
    )
    .await;
    let recorder = Mutex::new(recorder);
    let side = PtySide {
        recorder: &recorder,
        policy: policy.as_ref(),
        maskers: [secrets.clone(), rules.clone()],
        stop: registration.stop.clone(),
        program: spec.program.clone(),
        next_id: AtomicU64::new(1),
        client: client.clone(),
        pty: tokio::sync::Mutex::new(None),
    };
    let (text, analysis) = judge::analyze(&spec, b"");
    let verdict = side
        .judge_with(&text, None, &analysis, std::future::pending())
        .await;
    let query = match verdict {
        Judged::Run(id) => id,
        Judged::Refused(message) => {
            finish(recorder, EndReason::Refused, message.clone());
            return event(&client, &ExecEvent::refused(message)).await;
        }
        Judged::Stopped(stop) => {
            finish(recorder, stop.reason, stop.message.clone());
            return event(
                &client,
                &ExecEvent::refused(format!("sluice: {}", stop.message)),
            )
            .await;
        }
    };
    let started = match &via {
        Some(agent) => {
            let ask = PtyAsk {
                term: request.term.clone(),
                rows: request.rows,
                cols: request.cols,
            };
            remote::start(&pipeline, agent, &spec, Some(ask))
                .await
                .map_err(|why| {
                    format!(
                        "sluice: cannot run {} on agent {agent}: {why}",
                        spec.program
                    )
                })
        }
        None => process::start_pty(&spec, &request.term, request.rows, request.cols)
            .map_err(|e| format!("sluice: cannot start {}: {e}", spec.program)),
    };
    let started = match started {
        Ok(r) => r,
        Err(message) => {
            finish(recorder, EndReason::TargetError, message.clone());
            return event(&client, &ExecEvent::refused(message)).await;
        }
    };
    info!(program = %spec.program, "terminal session started");
    side.record(&SessionEvent::Channel(Box::new(ChannelStart {
        channel: 0,
        purpose: "shell".into(),
        detail: Some(spec.command_line()),
        query: Some(query),
        pty: Some(Pty {
            term: request.term.clone(),
            cols: u32::from(request.cols),
            rows: u32::from(request.rows),
        }),
    })));
    let Started {
        stdout: pty_r,
        pty: pty_w,
        mut handle,
        ..
    } = started;
    *side.pty.lock().await = pty_w;
    let view = TerminalView::default();
    view.open(u32::from(request.rows), u32::from(request.cols));
    let mut out = OutputStream::new(secrets, rules.clone(), settings.output_cap);
    let printed = AtomicU64::new(0);
    let deadline = Instant::now() + timeout;
    let mut stop = registration.stop.clone();
    let mut pty_r = pty_r;
    let ended = tokio::select! {
        () = side.input(&view, client_r) => Ended::ClientGone,
        over = side.output(&view, &mut out, &mut pty_r, &printed, max_output) => match over {
            true => Ended::TooMuchOutput,
            false => match handle.wait().await {
                Ok(status) => Ended::Exited(status),
                Err(e) => Ended::Failed(e.to_string()),
            },
        },
        // The program exited while something it started holds the terminal open.
        status = handle.wait() => match status {
            Ok(status) => Ended::Exited(status),
            Err(e) => Ended::Failed(e.to_string()),
        },
        s = async { stop.wait_for(Option::is_some).await.ok().and_then(|s| s.clone()) } => {
            Ended::Stopped(s.unwrap_or_else(|| Stop {
                reason: EndReason::Killed,
                message: "the session was killed by an administrator".into(),
            }))
        }
        () = tokio::time::sleep_until(deadline) => Ended::TimedOut(timeout),
    };
    // Jobs the session left running (each in a process group of its own) end with it; what
    // the program printed last is still read.
    handle.kill();
    if matches!(ended, Ended::Exited(_)) {
        let rest = side.output(&view, &mut out, &mut pty_r, &printed, u64::MAX);
        let _ = tokio::time::timeout(EXIT_GRACE, rest).await;
    } else {
        let _ = handle.wait().await;
    }
    let rest = out.flush();
    side.deliver(rest).await;
    let mut counts = out.counts(
        &rules
            .as_ref()
            .map(|m| m.custom_names().to_vec())
            .unwrap_or_default(),
    );
    counts.retain(|_, v| *v > 0);
    let (reason, detail, last) = ended.describe(&side);
    side.record(&SessionEvent::ChannelEnd {
        channel: 0,
        bytes_up: 0,
        bytes_down: printed.load(Ordering::Relaxed),
    });
    if !counts.is_empty() {
        side.record(&SessionEvent::Masking { counts });
    }
    drop(side);
    info!(reason = reason.as_str(), "terminal session ended");
    finish(recorder, reason, detail);
    event(&client, &last).await;
}

/// Ends the recording.
fn finish(recorder: Mutex<Recorder>, reason: EndReason, detail: String) {
    let recorder = recorder.into_inner().unwrap_or_else(|p| p.into_inner());
    recorder.finish(reason, Some(detail));
}

/// Why an interactive session ended.
enum Ended {
    Exited(Exit),
    Stopped(Stop),
    TimedOut(Duration),
    TooMuchOutput,
    ClientGone,
    Failed(String),
}

impl Ended {
    /// Records the exit; the end reason, its detail and the client's last event.
    fn describe(self, side: &PtySide<'_>) -> (EndReason, String, ExecEvent) {
        let killed = |side: &PtySide<'_>| side.record_exit(None, Some(9));
        match self {
            Ended::Exited(status) => {
                side.record_exit(status.code, status.signal);
                let detail = match status.code {
                    Some(c) => format!("the program exited with status {c}"),
                    None => "the program was ended by a signal".into(),
                };
                let e = ExecEvent::Exit {
                    code: status.code,
                    signal: status.signal,
                };
                (EndReason::TargetClosed, detail, e)
            }
            Ended::Stopped(stop) => {
                killed(side);
                let e = ExecEvent::refused(format!("sluice: {}", stop.message));
                (stop.reason, stop.message, e)
            }
            Ended::TimedOut(t) => {
                killed(side);
                let message = format!(
                    "sluice: the session ran past its time limit ({}) and was ended",
                    sluice_pipeline::reviews::human(t)
                );
                let e = ExecEvent::Error {
                    message: message.clone(),
                    exit_code: EXIT_TIMED_OUT,
                };
                (EndReason::LimitExceeded, message, e)
            }
            Ended::TooMuchOutput => {
                killed(side);
                let message =
                    "sluice: the session printed more than its output limit and was ended"
                        .to_string();
                (
                    EndReason::LimitExceeded,
                    message.clone(),
                    ExecEvent::refused(message),
                )
            }
            Ended::ClientGone => {
                killed(side);
                let detail = "the client went away; the program was killed".to_string();
                (
                    EndReason::ClientDisconnected,
                    detail.clone(),
                    ExecEvent::refused(detail),
                )
            }
            Ended::Failed(why) => {
                let message = format!("sluice: waiting for the program failed: {why}");
                let e = ExecEvent::Error {
                    message: message.clone(),
                    exit_code: EXIT_REFUSED,
                };
                (EndReason::GatewayError, message, e)
            }
        }
    }
}

/// The session as the line judge sees it.
struct PtySide<'a> {
    recorder: &'a Mutex<Recorder>,
    policy: Option<&'a SessionPolicy>,
    maskers: [Option<Arc<Masker>>; 2],
    stop: watch::Receiver<Option<Stop>>,
    program: String,
    next_id: AtomicU64,
    client: mpsc::Sender<Vec<u8>>,
    pty: tokio::sync::Mutex<Option<PtyInput>>,
}

impl PtySide<'_> {
    fn record(&self, event: &SessionEvent) {
        let _ = match self.recorder.lock() {
            Ok(mut r) => r.record(event),
            Err(p) => p.into_inner().record(event),
        };
    }

    fn record_exit(&self, status: Option<i32>, signal: Option<i32>) {
        self.record(&SessionEvent::Exit {
            channel: 0,
            status: status.and_then(|s| u32::try_from(s).ok()),
            signal: signal.map(|s| {
                nix::sys::signal::Signal::try_from(s)
                    .map(|s| s.as_str().trim_start_matches("SIG").to_string())
                    .unwrap_or_else(|_| s.to_string())
            }),
        });
    }

    async fn judge_with(
        &self,
        text: &str,
        redacted: Option<String>,
        analysis: &sluice_policy::analysis::Analysis,
        gone: impl std::future::Future<Output = ()>,
    ) -> Judged {
        Judge {
            recorder: self.recorder,
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            policy: self.policy,
            maskers: [self.maskers[0].as_ref(), self.maskers[1].as_ref()],
            stop: self.stop.clone(),
        }
        .judge(
            text,
            redacted,
            analysis,
            async |n: String| {
                self.tell(&format!("\r\n{}\r\n", n.replace('\n', "\r\n")))
                    .await
            },
            gone,
        )
        .await
    }

    /// Sends masked output to the client and records it.
    async fn deliver(&self, masked: crate::output::Masked) {
        if let Some((data, base64)) = masked.record {
            self.record(&SessionEvent::Io(Box::new(ChannelIo {
                channel: 0,
                stream: "out".into(),
                data,
                base64,
            })));
        }
        if !masked.client.is_empty() {
            let _ = self
                .client
                .send(wire::frame(wire::OUTPUT, &masked.client))
                .await;
        }
    }

    /// The client's frames: keys through the line judge, window changes to the pty.
    async fn input<R: AsyncRead + Unpin>(&self, view: &TerminalView, mut client_r: R) {
        let mut decoder = wire::Decoder::default();
        let mut typing = Typing::default();
        loop {
            let frame = match decoder.next_frame() {
                Ok(Some(f)) => f,
                Ok(None) => match client_r.read_buf(decoder.buffer()).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                },
                Err(e) => {
                    self.tell(&format!("\r\nsluice: {e}\r\n")).await;
                    return;
                }
            };
            let alive = match frame {
                (wire::INPUT, keys) => {
                    sluice_terminal::type_keys(self, view, &mut typing, keys).await
                }
                (wire::RESIZE, p) => {
                    let Ok((rows, cols)) = wire::parse_resize(&p) else {
                        continue;
                    };
                    if let Some(w) = self.pty.lock().await.as_ref() {
                        w.resize(rows, cols).await;
                    }
                    view.resize(u32::from(rows), u32::from(cols));
                    self.record(&SessionEvent::Resize {
                        channel: 0,
                        cols: u32::from(cols),
                        rows: u32::from(rows),
                    });
                    true
                }
                // Kinds this gateway does not know are skipped (newer clients).
                _ => true,
            };
            if !alive {
                return;
            }
        }
    }

    /// The program's output until the pty closes; `true` when it passed `max_output`.
    async fn output<R: AsyncRead + Unpin>(
        &self,
        view: &TerminalView,
        out: &mut OutputStream,
        pty_r: &mut R,
        printed: &AtomicU64,
        max_output: u64,
    ) -> bool {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let read = tokio::select! {
                r = pty_r.read(&mut buf) => r,
                () = tokio::time::sleep(IDLE_FLUSH), if out.holding() => {
                    let rest = out.flush();
                    self.deliver(rest).await;
                    continue;
                }
            };
            // EIO once the program and everything holding the terminal are gone.
            let n = match read {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            if printed.fetch_add(n as u64, Ordering::Relaxed) + n as u64 > max_output {
                return true;
            }
            view.feed(&buf[..n]);
            let masked = out.push(&buf[..n]);
            self.deliver(masked).await;
        }
    }
}

impl Side for PtySide<'_> {
    async fn send_keys(&self, keys: Bytes) -> bool {
        match self.pty.lock().await.as_mut() {
            Some(w) => w.write(&keys).await,
            None => false,
        }
    }

    async fn tell(&self, message: &str) {
        self.record(&SessionEvent::Io(Box::new(ChannelIo {
            channel: 0,
            stream: "out".into(),
            data: message.to_string(),
            base64: false,
        })));
        let _ = self
            .client
            .send(wire::frame(wire::OUTPUT, message.as_bytes()))
            .await;
    }

    async fn record_input(&self, text: &mut TextCarry, raw: &[u8]) {
        let (data, base64) = text.encode(raw);
        if !data.is_empty() {
            self.record(&SessionEvent::Io(Box::new(ChannelIo {
                channel: 0,
                stream: "in".into(),
                data,
                base64,
            })));
        }
    }

    async fn judge(&self, text: &str, redacted: Option<String>) -> LineVerdict {
        let analysis = judge::analyze_line(&self.program, text);
        match self
            .judge_with(text, redacted, &analysis, std::future::pending())
            .await
        {
            Judged::Run(_) => LineVerdict::Run,
            Judged::Refused(message) => LineVerdict::Refused(message),
            Judged::Stopped(stop) => LineVerdict::Refused(format!("sluice: {}", stop.message)),
        }
    }

    fn guarded(&self) -> bool {
        self.policy.is_some_and(|p| p.policy.guard.is_some())
    }
}
