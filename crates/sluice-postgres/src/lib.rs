//! # sluice-postgres
//!
//! The PostgreSQL adapter: a thin codec plus a sans-I/O tracker, pumped by a short tokio
//! relay. Identity, authorization, recording and audit come from `sluice-pipeline`.
//!
//! ## Layout
//! - [`analyze`]: SQL → guard facts with PostgreSQL's own parser (`pg_query`), cached.
//! - [`codec`]: framing and message views; no I/O.
//! - [`tracker`]: sans-I/O state machine that pairs client statements with server results
//!   and turns them into recording events.
//! - [`handshake`]: the client-facing startup: TLS, token as password, native errors.
//! - [`upstream`]: opening the target with the gateway's credentials.
//! - [`relay`]: the two byte pumps of an established session; the guard cuts refused
//!   statements out of the client's stream, the masker edits server messages in place.
//! - [`masking`]: masking of DataRow, COPY, error and notification bodies, in place.
//! - [`cancel`]: CancelRequest routing to the right target backend.
//! - [`listener`]: the accept loop that ties them together.
//! - [`tunnel`]: `sluice connect`, a local port that logs in to the gateway with the user's token.

pub mod analyze;
pub mod buffer;
pub mod cancel;
pub mod codec;
pub mod handshake;
pub mod listener;
pub mod masking;
pub mod relay;
pub mod tracker;
pub mod tunnel;
pub mod upstream;

pub use listener::{serve, ListenerSettings};
