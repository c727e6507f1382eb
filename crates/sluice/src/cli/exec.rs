//! `sluice exec CONNECTION [--] [ARGS] < script`: runs a `command` connection's program on
//! the gateway with this process's stdin as its input, streams its stdout and stderr here
//! and exits with its status (125 when the gateway refused or stopped the run, 124 at its
//! time limit).

use super::client::{enc, Api};
use sluice_exec::event::EXIT_REFUSED;
use sluice_exec::{ExecEvent, Stream};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};

/// Runs the program and exits with its status.
pub fn run(api: &Api, connection: &str, args: &[String]) -> ! {
    let code = match relay(api, connection, args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            EXIT_REFUSED
        }
    };
    std::process::exit(code)
}

/// Sends the script, prints what comes back; the exit status to return.
fn relay(api: &Api, connection: &str, args: &[String]) -> anyhow::Result<i32> {
    let mut input = Vec::new();
    // A terminal on stdin means no script: the program gets an empty input.
    if !std::io::stdin().is_terminal() {
        std::io::stdin().read_to_end(&mut input)?;
    }
    let query: Vec<String> = args.iter().map(|a| format!("arg={}", enc(a))).collect();
    let path = format!("/api/v1/exec/{}?{}", enc(connection), query.join("&"));
    let answer = BufReader::new(api.post_bytes(&path, &input)?);
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    for line in answer.lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let event: ExecEvent = serde_json::from_str(&line)?;
        if let Some((stream, bytes)) = event.output_bytes() {
            match stream {
                Stream::Stdout => {
                    out.write_all(&bytes)?;
                    out.flush()?;
                }
                Stream::Stderr => {
                    err.write_all(&bytes)?;
                    err.flush()?;
                }
            }
            continue;
        }
        match event {
            ExecEvent::Notice { message } => eprintln!("{message}"),
            ExecEvent::Exit { code, signal } => {
                return Ok(code.unwrap_or_else(|| 128 + signal.unwrap_or(0)))
            }
            ExecEvent::Error { message, exit_code } => {
                eprintln!("{message}");
                return Ok(exit_code);
            }
            ExecEvent::Session { .. } | ExecEvent::Output { .. } => {}
        }
    }
    anyhow::bail!("the gateway ended the run without an exit status")
}
