//! # sluice-gateway
//!
//! The gateway runtime. Only this crate reads the config file and opens listeners.
//!
//! ## Layout
//! - [`config`]: the YAML config file, validated with file/line errors.
//! - [`tls`]: the listener certificate (generated with its own CA on first start).
//! - [`bootstrap`]: the data dir and the first admin token.
//! - [`api`]: the HTTPS REST API (`/api/v1`).
//! - [`archive`]: recordings moved to S3-compatible object storage.
//! - [`webhook`]: announces reviews and decisions (Slack-compatible JSON POST).
//! - [`runtime`]: wires store, pipeline and listeners together and runs until shutdown.

pub mod api;
pub mod archive;
pub mod bootstrap;
pub mod config;
pub mod runtime;
pub mod tls;
pub mod webhook;

pub use config::Config;
pub use runtime::{run, GatewayOptions};
