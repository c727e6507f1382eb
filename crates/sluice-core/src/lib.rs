//! # sluice-core
//!
//! Domain types shared by every part of sluice. This crate does no I/O.
//!
//! ## Layout
//! - [`ids`]: newtypes for identifiers (`SessionId`, `ConnectionName`).
//! - [`secret`]: `Secret<T>`, a wrapper whose `Debug` never shows the value.
//! - [`identity`]: who is acting (`Identity`, `IdentityKind`).
//! - [`connection`]: what can be reached (`Connection`, `Protocol`, `TargetCredential`) and who may (`Grant`).
//! - [`event`]: what a recording and the audit log hold (`SessionEvent`, `AuditEvent`, `EndReason`).
//! - [`fault`]: whose fault an error was (`Fault`), for the audit record and the client-facing error.
//! - [`review`]: held commands and access requests waiting for approvers (`Review`).
//! - [`statement_audit`]: the cheap form of an allowed statement's audit event.
//! - [`time`]: microsecond wall-clock timestamps.

pub mod audit;
pub mod connection;
pub mod event;
pub mod fault;
pub mod identity;
pub mod ids;
pub mod review;
pub mod secret;
pub mod statement_audit;
pub mod time;

pub use audit::{Actor, AuditEvent, Outcome};
pub use connection::{
    CommandOptions, Connection, Grant, HttpAuth, HttpOptions, InjectedSecret, KubeOptions,
    Protocol, SshOptions, TargetCredential,
};
pub use event::{
    ChannelIo, ChannelStart, EndReason, FileOp, HttpExchange, KubeRequest, Pty, Query, QueryResult,
    SessionEvent, StatementError, StatementOutcome,
};
pub use fault::Fault;
pub use identity::{Identity, IdentityKind};
pub use ids::{ConnectionName, SessionId};
pub use review::{Approval, Review, ReviewKind, ReviewStatus};
pub use secret::Secret;
