//! # sluice-tunnel
//!
//! The gateway⇄agent tunnel. An agent inside a private network dials out to the gateway's
//! HTTPS listener and upgrades one HTTP/1.1 request (`Upgrade: sluice-tunnel/1`) to a raw
//! byte stream, inside TLS. On that stream the roles flip: the gateway is the HTTP/2 client
//! and the agent the server. Each target connection the gateway needs is one HTTP/2 `CONNECT
//! host:port` stream, so many sessions share the tunnel with HTTP/2's per-stream flow control
//! (one slow session never stalls another) and its PING frames as heartbeats.
//!
//! The agent is a relay with an allow-list. It never sees a target credential: the gateway
//! speaks the target's protocol end to end through the stream.
//!
//! - [`proto`]: the names and the signed proof an agent presents (Ed25519 over the TLS
//!   exporter, so a captured proof is worthless on another connection).
//! - [`gateway`]: the gateway side: [`Tunnels`], the live tunnels by agent name, and
//!   [`TunnelStream`], one dialed stream.
//! - [`agent`]: the agent side: enrollment, state, the allow-list, reconnecting with backoff
//!   and jitter, and serving `CONNECT` streams.

pub mod agent;
pub mod gateway;
pub mod proto;

pub use gateway::{AgentStatus, DialError, TunnelStream, Tunnels};

#[cfg(test)]
mod tests;
