//! What recordings and the audit log hold.
//!
//! A recording is an ordered list of [`SessionEvent`]s; the store chains them by hash.
//! The audit log is a list of [`AuditEvent`](crate::AuditEvent)s.

use crate::identity::Identity;
use serde::{Deserialize, Serialize};

/// One event of a session recording.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SessionEvent {
    /// The session was authorized and the target opened.
    Start {
        /// Identity as authenticated (groups at that time).
        identity: Identity,
        /// Connection name.
        connection: String,
        /// Wire protocol.
        protocol: String,
        /// Client socket address.
        client_addr: String,
        /// Target `host:port`.
        target: String,
    },
    /// A statement the client sent, recorded before it is forwarded to the target.
    Query(Box<Query>),
    /// What the target answered to an earlier [`SessionEvent::Query`].
    Result(Box<QueryResult>),
    /// An asynchronous notification delivered to the client (LISTEN/NOTIFY).
    Notification {
        /// Channel name.
        channel: String,
        /// Payload.
        payload: String,
    },
    /// The guard refused a statement, or held it for review.
    Guard {
        /// The [`Query::id`] concerned.
        query: u64,
        /// `denied` or `held`.
        action: String,
        /// Rule name.
        rule: String,
        /// Reason shown to the user.
        reason: String,
        /// Review id, when held.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        review: Option<String>,
    },
    /// A held statement was decided: approved (it runs), denied, or timed out.
    Decision {
        /// The [`Query::id`] concerned.
        query: u64,
        /// Review id.
        review: String,
        /// `approved`, `denied`, `expired`, `cancelled` (withdrawn) or `error` (not filed).
        decision: String,
        /// Who decided (approvers, in order).
        #[serde(default)]
        by: Vec<String>,
        /// The deciders' reason, if given.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A channel of a terminal protocol (SSH) started: a shell, an exec, a subsystem or a
    /// forwarded connection.
    Channel(Box<ChannelStart>),
    /// Bytes a channel carried, masked: terminal and exec output, and terminal input.
    Io(Box<ChannelIo>),
    /// A terminal's window changed size.
    Resize {
        /// Channel number (the client's).
        channel: u32,
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
    /// A channel's command ended.
    Exit {
        /// Channel number (the client's).
        channel: u32,
        /// Exit status, when the command exited.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        status: Option<u32>,
        /// Signal name, when it was killed by one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signal: Option<String>,
    },
    /// A channel closed: what it carried in all (recorded or not).
    ChannelEnd {
        /// Channel number (the client's).
        channel: u32,
        /// Bytes client → target.
        bytes_up: u64,
        /// Bytes target → client.
        bytes_down: u64,
    },
    /// A file operation (SFTP, scp).
    File(Box<FileOp>),
    /// An HTTP exchange: the response to the request recorded as [`SessionEvent::Query`].
    Http(Box<HttpExchange>),
    /// How many values were masked in the session, by detector (recorded before the end).
    Masking {
        /// Counts by detector name.
        counts: std::collections::BTreeMap<String, u64>,
    },
    /// The session ended; always the last event.
    End {
        /// Why it ended.
        reason: EndReason,
        /// Human-readable detail (never a secret).
        detail: Option<String>,
    },
}

impl SessionEvent {
    /// Stable short name of the event kind.
    pub fn kind(&self) -> &'static str {
        match self {
            SessionEvent::Start { .. } => "start",
            SessionEvent::Query(_) => "query",
            SessionEvent::Result(_) => "result",
            SessionEvent::Notification { .. } => "notification",
            SessionEvent::Guard { .. } => "guard",
            SessionEvent::Decision { .. } => "decision",
            SessionEvent::Channel(_) => "channel",
            SessionEvent::Io(_) => "io",
            SessionEvent::Resize { .. } => "resize",
            SessionEvent::Exit { .. } => "exit",
            SessionEvent::ChannelEnd { .. } => "channel_end",
            SessionEvent::File(_) => "file",
            SessionEvent::Http(_) => "http",
            SessionEvent::Masking { .. } => "masking",
            SessionEvent::End { .. } => "end",
        }
    }
}

/// A channel opened in a terminal-protocol session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChannelStart {
    /// Channel number (the client's), unique within the session.
    pub channel: u32,
    /// What the channel is for: `shell`, `exec`, `subsystem` or `forward`.
    pub purpose: String,
    /// The command (exec), subsystem name, or forwarding destination `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The [`Query::id`] under which the command was judged (exec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<u64>,
    /// The terminal, when one was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pty: Option<Pty>,
}

/// A pseudo-terminal requested by the client.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pty {
    /// `TERM`.
    pub term: String,
    /// Columns.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
}

/// Bytes on a channel, masked. Text is kept as is; bytes that are not UTF-8 are base64.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelIo {
    /// Channel number (the client's).
    pub channel: u32,
    /// `out` (target → client), `err` (stderr) or `in` (client → target).
    pub stream: String,
    /// The bytes: UTF-8 text, or base64 when `base64` is set.
    pub data: String,
    /// `data` is base64.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
}

/// One file operation, as the target answered it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileOp {
    /// Channel number (the client's).
    pub channel: u32,
    /// `read`, `write`, `rename`, `remove`, `mkdir`, `rmdir`, `setstat`, `symlink`.
    pub op: String,
    /// Path on the target.
    pub path: String,
    /// Second path (`rename`, `symlink`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Bytes transferred (`read`, `write`).
    #[serde(default)]
    pub bytes: u64,
    /// SHA-256 (hex) of the bytes transferred, when they were transferred in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The target's error, if it failed (or the gateway's refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An HTTP request and what answered it, masked, bodies capped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpExchange {
    /// The [`Query::id`] of the request line (`GET /path?query`).
    pub query: u64,
    /// Request method.
    pub method: String,
    /// Path and query as the service received them.
    pub path: String,
    /// Selected request headers (lower-case names).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub request_headers: std::collections::BTreeMap<String, String>,
    /// The request body, masked, up to the cap (base64 when not text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<String>,
    /// Request body bytes in all.
    #[serde(default)]
    pub request_bytes: u64,
    /// The service's status, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Selected response headers (lower-case names).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub response_headers: std::collections::BTreeMap<String, String>,
    /// The response body, masked, up to the cap (base64 when not text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
    /// Response body bytes in all (after masking).
    #[serde(default)]
    pub response_bytes: u64,
    /// A body was longer than the cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The exchange became a WebSocket (bytes counted both ways).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub websocket: bool,
    /// Why the service did not answer, or the exchange broke off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Microseconds from forwarding the request to the end of the response.
    pub duration_us: i64,
    /// What a Kubernetes API request was about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes: Option<KubeRequest>,
}

/// A Kubernetes API request as the API server reads it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubeRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`
    /// (the method in lower case for non-resource requests).
    pub verb: String,
    /// API group (`""` for the core group).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Resource (`pods`); empty for non-resource requests such as discovery.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource: String,
    /// Subresource (`exec`, `log`, `status`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subresource: String,
    /// Namespace.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    /// Object name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// A statement sent by the client.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Query {
    /// Number of the statement within the session, from 1; results refer to it.
    pub id: u64,
    /// Statement text as the client sent it (a simple query may hold several statements).
    /// Shared with the adapter's prepared-statement cache, so recording it copies nothing.
    pub text: std::sync::Arc<str>,
    /// Bound parameters (extended protocol), text form; `None` is SQL NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Option<String>>>,
}

/// The target's answer to a [`Query`], with the result rows up to the configured cap.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The [`Query::id`] this answers.
    pub query: u64,
    /// Result column names, when the target described them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns: Vec<String>,
    /// Result rows, up to the configured cap; `None` is SQL NULL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rows: Vec<Vec<Option<String>>>,
    /// True when more rows were returned than recorded.
    #[serde(default)]
    pub rows_truncated: bool,
    /// What the target answered.
    pub outcome: StatementOutcome,
    /// Microseconds from forwarding the query to its completion.
    pub duration_us: i64,
}

/// The target's answer to a statement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatementOutcome {
    /// Command tags (`SELECT 3`, `INSERT 0 1`), one per executed statement.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Rows returned to the client.
    pub row_count: u64,
    /// The error, if the target refused or failed the statement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StatementError>,
    /// True when the statement was never executed (an earlier one in the batch failed).
    #[serde(default)]
    pub skipped: bool,
}

/// An error the target (or the gateway) returned for a statement.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatementError {
    /// Protocol error code (SQLSTATE for PostgreSQL).
    pub code: String,
    /// Error message.
    pub message: String,
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The client said goodbye (e.g. PostgreSQL Terminate).
    ClientQuit,
    /// The client's connection dropped without goodbye.
    ClientDisconnected,
    /// The client sent bytes that are not valid protocol.
    ClientProtocolError,
    /// The target closed the connection.
    TargetClosed,
    /// The target failed or sent invalid protocol.
    TargetError,
    /// The gateway shut down.
    GatewayShutdown,
    /// The gateway failed.
    GatewayError,
    /// An administrator killed the session.
    Killed,
    /// The identity was blocked.
    IdentityBlocked,
    /// The time-boxed access the session relied on expired.
    AccessExpired,
    /// The session ran past a limit of its connection (run time, output size).
    LimitExceeded,
    /// The gateway refused what the session asked for (a denied or unapproved command run).
    Refused,
}

impl EndReason {
    /// Stable text form.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ClientQuit => "client_quit",
            EndReason::ClientDisconnected => "client_disconnected",
            EndReason::ClientProtocolError => "client_protocol_error",
            EndReason::TargetClosed => "target_closed",
            EndReason::TargetError => "target_error",
            EndReason::GatewayShutdown => "gateway_shutdown",
            EndReason::GatewayError => "gateway_error",
            EndReason::Killed => "killed",
            EndReason::IdentityBlocked => "identity_blocked",
            EndReason::AccessExpired => "access_expired",
            EndReason::LimitExceeded => "limit_exceeded",
            EndReason::Refused => "refused",
        }
    }
}
