//! `sluice connect CONNECTION`: a local port that tunnels to the gateway with your identity,
//! for tools that cannot carry a token.

use super::client::{resolve_token, tls_config};
use anyhow::Context;
use sluice_core::Secret;
use sluice_postgres::tunnel::{self, TunnelConfig};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_rustls::rustls::pki_types::ServerName;

/// Runs the tunnel until interrupted.
pub fn run(
    connection: String,
    listen: String,
    gateway: String,
    token: Option<String>,
    ca: Option<PathBuf>,
) -> anyhow::Result<()> {
    let token = resolve_token(token)?;
    let tls = tls_config(ca)?;
    let host = gateway
        .rsplit_once(':')
        .map(|(h, _)| h.trim_matches(['[', ']']))
        .context("--gateway must be HOST:PORT")?;
    let server_name = ServerName::try_from(host.to_string())
        .with_context(|| format!("invalid gateway host {host:?}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let local = listener.local_addr()?;
        println!(
            "sluice connect: {local} -> {connection} via {gateway}; e.g. psql \"host={} port={} dbname=<db>\" (any user and password)",
            local.ip(),
            local.port()
        );
        let cfg = Arc::new(TunnelConfig {
            gateway,
            server_name,
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            connection,
            token: Secret::new(token),
        });
        tokio::select! {
            r = tunnel::serve(listener, cfg) => r.context("accepting local clients"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
