//! # sluice-exec
//!
//! Code-execution runtimes: connections of type `command` name a program (`bash`, `python3`,
//! `psql`, a deploy script) that the gateway runs for a client, with credentials only the
//! gateway holds. The shape a CI job or an AI agent uses: `sluice exec CONN < script` sends
//! the script, streams stdout and stderr back and returns the exit status.
//!
//! Every run is a session of the shared pipeline: authorized by grant, the command line and
//! script recorded and judged by the connection's guardrails before anything starts (deny,
//! or hold for approval), output masked (injected secrets always, the connection's masking
//! rules on top) and recorded, containment (kill, block) and limits (time, output) ending
//! the program's whole process group.
//!
//! ## Layout
//! - [`event`]: what the client is told, one JSON line at a time.
//! - [`spec`]: a connection's settings resolved for one run (secrets read, limits).
//! - [`judge`]: the guard's view of a run and its verdict (deny / review).
//! - [`process`]: starting the program (cleared environment, secret files) and killing it.
//! - [`output`]: masking and capping one output stream.
//! - [`session`]: a run's session: recorder, live registration, policy, maskers.
//! - [`run`]: one run from authorization to its recorded end.
//! - [`terminal`]: interactive runs on a pty (`sluice connect`), each typed line judged.

pub mod event;
pub mod judge;
pub mod output;
pub mod process;
pub mod remote;
pub mod run;
pub mod session;
pub mod spec;
pub mod terminal;

pub use event::{ExecEvent, Stream};
pub use run::{run, ExecRequest};

/// How runs are recorded.
#[derive(Clone, Copy, Debug)]
pub struct ExecSettings {
    /// Output recorded per stream of a run, in bytes (the rest is relayed and counted).
    pub output_cap: u64,
}
