//! Audit delivery. The audit table of the store is the durable spool: every event has a
//! sequence number in the hash-chained log, and each sink keeps a cursor (the last sequence it
//! delivered). One thread per sink reads the events after its cursor in order, delivers them in
//! batches, and advances the cursor only once the destination has accepted them, so delivery is
//! at-least-once, in order, and survives restarts and destinations that are down for hours.

pub mod config;
pub mod dispatch;
pub mod sink;

pub use config::{AuditSinks, SinkConfig};
pub use dispatch::{start_sinks, SinkHandle};
pub use sink::{Sink, SinkError, SpooledEvent};
pub use sluice_store::audit_log::{SinkStats, SpoolHealth, SpoolSignal};
