//! Whose fault an error was. Both the audit record and the client-facing error need it.

use serde::{Deserialize, Serialize};

/// The party responsible for a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The client sent something wrong (bad credentials, malformed bytes, no grant).
    Client,
    /// The target failed (down, refused, protocol error).
    Target,
    /// The gateway itself failed (store, internal error).
    Gateway,
}
