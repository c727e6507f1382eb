//! # sluice-mysql
//!
//! The MySQL/MariaDB adapter: a codec without I/O, a sans-I/O tracker, and a short tokio
//! relay. Identity, authorization, recording and audit come from `sluice-pipeline`.

pub mod analyze;
pub mod auth;
pub mod codec;
pub mod exchange;
pub mod handshake;
pub mod kill;
pub mod listener;
pub mod relay;
pub mod tracker;
pub mod upstream;

pub use listener::{serve, ListenerSettings};
