//! Reaching a target: a direct TCP connection, or a stream inside an agent's tunnel. Adapters
//! speak the target's protocol over either the same way.

use crate::{audit, Pipeline};
use sluice_core::{Connection, Fault, Outcome};
use sluice_tunnel::TunnelStream;
use std::fmt;
use std::io;
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// Where a connection's target is and how to get there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The agent whose tunnel reaches it; `None` dials directly.
    pub via: Option<String>,
}

impl Route {
    /// The route of `conn`.
    pub fn of(conn: &Connection) -> Route {
        Route {
            host: conn.host.clone(),
            port: conn.port,
            via: conn.via.clone(),
        }
    }
}

impl fmt::Display for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&sluice_tunnel::proto::authority(&self.host, self.port))?;
        match &self.via {
            Some(agent) => write!(f, " via agent {agent}"),
            None => Ok(()),
        }
    }
}

/// Why the target could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The direct TCP connection failed.
    #[error("cannot reach target {target}: {source}")]
    Tcp {
        /// `host:port`.
        target: String,
        /// Cause.
        source: io::Error,
    },
    /// The agent's tunnel could not open it.
    #[error(transparent)]
    Agent(#[from] sluice_tunnel::DialError),
}

impl Pipeline {
    /// Opens a byte stream to `route`'s target. A destination an agent refuses is audited
    /// here (`agent.dial`); every other failure is the adapter's to report.
    pub async fn dial(&self, route: &Route) -> Result<TargetStream, DialError> {
        let Some(agent) = &route.via else {
            let stream = TcpStream::connect((route.host.as_str(), route.port))
                .await
                .map_err(|source| DialError::Tcp {
                    target: route.to_string(),
                    source,
                })?;
            stream.set_nodelay(true).map_err(|source| DialError::Tcp {
                target: route.to_string(),
                source,
            })?;
            return Ok(TargetStream::Tcp(stream));
        };
        match self.tunnels().dial(agent, &route.host, route.port).await {
            Ok(s) => Ok(TargetStream::Agent(Box::new(s))),
            Err(e) => {
                if let sluice_tunnel::DialError::Refused { target, reason, .. } = &e {
                    let mut ev = audit::by_agent(agent, "agent.dial", Outcome::Failure);
                    ev.target = Some(target.clone());
                    ev.reason = Some(reason.clone());
                    ev.fault = Some(Fault::Target);
                    self.audit(ev);
                }
                Err(e.into())
            }
        }
    }
}

/// A connection to a target.
pub enum TargetStream {
    /// Direct TCP.
    Tcp(TcpStream),
    /// A stream in an agent's tunnel.
    Agent(Box<TunnelStream>),
}

impl TargetStream {
    /// Where it leads, for the recording: the peer address, or the route for agent streams.
    pub fn describe(&self, route: &Route) -> String {
        match self {
            TargetStream::Tcp(s) => s
                .peer_addr()
                .map(|a| a.to_string())
                .unwrap_or_else(|_| route.to_string()),
            TargetStream::Agent(_) => route.to_string(),
        }
    }

    /// True when the target is on the dialing host's loopback (the gateway's, or the
    /// agent's): nothing sent to it crosses a network in clear.
    pub fn is_loopback(&self, route: &Route) -> bool {
        match self {
            TargetStream::Tcp(s) => s.peer_addr().is_ok_and(|a| a.ip().is_loopback()),
            TargetStream::Agent(_) => {
                route.host.eq_ignore_ascii_case("localhost")
                    || route
                        .host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
        }
    }

    /// Splits into read and write halves (TCP without a lock).
    pub fn into_split(self) -> (TargetRead, TargetWrite) {
        match self {
            TargetStream::Tcp(s) => {
                let (r, w) = s.into_split();
                (TargetRead::Tcp(r), TargetWrite::Tcp(w))
            }
            TargetStream::Agent(s) => {
                let (r, w) = tokio::io::split(*s);
                (TargetRead::Agent(r), TargetWrite::Agent(w))
            }
        }
    }
}

/// The read half of a [`TargetStream`].
pub enum TargetRead {
    /// Direct TCP.
    Tcp(OwnedReadHalf),
    /// Agent stream.
    Agent(ReadHalf<TunnelStream>),
}

/// The write half of a [`TargetStream`].
pub enum TargetWrite {
    /// Direct TCP.
    Tcp(OwnedWriteHalf),
    /// Agent stream.
    Agent(WriteHalf<TunnelStream>),
}

delegate_read!(TargetStream, Tcp, Agent);
delegate_write!(TargetStream, Tcp, Agent);
delegate_read!(TargetRead, Tcp, Agent);
delegate_write!(TargetWrite, Tcp, Agent);
