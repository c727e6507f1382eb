//! What a run tells its client, in order: one JSON object per line (NDJSON) on the wire of
//! `POST /api/v1/exec/{connection}`, so a CI job, an AI agent or `sluice exec` can follow
//! it as it streams.

use base64::Engine;
use serde::{Deserialize, Serialize};

/// Exit status `sluice exec` returns when the gateway refused or stopped the run (denied,
/// not approved, killed, output limit, bad request): the program's own statuses stay
/// distinguishable from the gateway's, as with `docker run`.
pub const EXIT_REFUSED: i32 = 125;
/// Exit status for a run killed at its time limit (the convention of `timeout(1)`).
pub const EXIT_TIMED_OUT: i32 = 124;

/// Which output stream bytes came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

impl Stream {
    /// The name recordings use (`out`, `err`), as for SSH channels.
    pub fn recorded(self) -> &'static str {
        match self {
            Stream::Stdout => "out",
            Stream::Stderr => "err",
        }
    }
}

/// One line of a run's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecEvent {
    /// The session was opened and is recorded under this id.
    Session {
        /// Session id (`sluice sessions show ID`).
        id: String,
    },
    /// Something the gateway tells the person (a held command waiting for approval).
    Notice {
        /// The message.
        message: String,
    },
    /// Output of the program, masked.
    Output {
        /// Which stream.
        stream: Stream,
        /// The bytes: UTF-8 text, or base64 when `base64` is set.
        data: String,
        /// `data` is base64.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        base64: bool,
    },
    /// The program ended by itself.
    Exit {
        /// Exit status, when it exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<i32>,
        /// Signal number, when a signal ended it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<i32>,
    },
    /// The gateway refused or stopped the run; always the last line when present.
    Error {
        /// Why, for the person.
        message: String,
        /// The exit status `sluice exec` returns ([`EXIT_REFUSED`], [`EXIT_TIMED_OUT`]).
        exit_code: i32,
    },
}

impl ExecEvent {
    /// Output bytes as an event: text when they are UTF-8, base64 otherwise.
    pub fn output(stream: Stream, bytes: &[u8]) -> ExecEvent {
        match std::str::from_utf8(bytes) {
            Ok(text) => ExecEvent::Output {
                stream,
                data: text.to_string(),
                base64: false,
            },
            Err(_) => ExecEvent::Output {
                stream,
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
                base64: true,
            },
        }
    }

    /// A refusal with the gateway's exit status.
    pub fn refused(message: impl Into<String>) -> ExecEvent {
        ExecEvent::Error {
            message: message.into(),
            exit_code: EXIT_REFUSED,
        }
    }

    /// The output bytes of an [`ExecEvent::Output`] (`None` for other events or bad base64).
    pub fn output_bytes(&self) -> Option<(Stream, Vec<u8>)> {
        match self {
            ExecEvent::Output {
                stream,
                data,
                base64: false,
            } => Some((*stream, data.as_bytes().to_vec())),
            ExecEvent::Output {
                stream,
                data,
                base64: true,
            } => base64::engine::general_purpose::STANDARD
                .decode(data)
                .ok()
                .map(|b| (*stream, b)),
            _ => None,
        }
    }

    /// The event as one NDJSON line.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        line.push(b'\n');
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_round_trips_text_and_binary() -> Result<(), serde_json::Error> {
        for bytes in [&b"hello\n"[..], &[0xff, 0x00, 0x10][..]] {
            let line = ExecEvent::output(Stream::Stderr, bytes).to_line();
            let back: ExecEvent = serde_json::from_slice(&line)?;
            assert_eq!(back.output_bytes(), Some((Stream::Stderr, bytes.to_vec())));
        }
        Ok(())
    }

    #[test]
    fn lines_are_tagged_json() {
        let line = ExecEvent::Exit {
            code: Some(3),
            signal: None,
        }
        .to_line();
        assert_eq!(line, b"{\"type\":\"exit\",\"code\":3}\n");
    }
}
