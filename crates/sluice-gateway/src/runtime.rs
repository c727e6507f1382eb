//! Start-up and shutdown: data dir, store, TLS, bootstrap admin, pipeline, listeners.

use crate::api::{self, ApiState};
use crate::bootstrap;
use crate::config::{Config, ConfigError};
use crate::tls::{self, CertPaths, TlsError};
use sluice_pipeline::{Catalog, Pipeline, RecordingSettings};
use sluice_postgres::handshake::HandshakeConfig;
use sluice_postgres::ListenerSettings;
use sluice_store::{catalog, recordings, RecordWriter, Store, StoreError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// How `sluice gateway` was invoked.
#[derive(Debug, Clone, Default)]
pub struct GatewayOptions {
    /// Config file; without one the gateway starts with defaults and no connections.
    pub config: Option<PathBuf>,
    /// Data dir (overrides the config's); default `./sluice-data`.
    pub data_dir: Option<PathBuf>,
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// Invalid config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS set-up failed.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The review webhook is misconfigured.
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    /// A listener could not bind, or the data dir is unusable.
    #[error("{what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// Cause.
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GatewayError {
    let what = what.into();
    move |source| GatewayError::Io { what, source }
}

/// How long sessions get to finish recording at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the gateway until SIGINT/SIGTERM.
pub async fn run(opts: GatewayOptions) -> Result<(), GatewayError> {
    let config = match &opts.config {
        Some(p) => Config::load(p)?,
        None => Config::default(),
    };
    let data_dir = opts
        .data_dir
        .clone()
        .or_else(|| config.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("./sluice-data"));
    create_private_dir(&data_dir)?;

    let db_path = data_dir.join("sluice.db");
    let store = Store::open_sqlite(&db_path)?;
    let closed = store.run_sync(|c| recordings::close_dangling(c))?;
    if closed > 0 {
        warn!(
            sessions = closed,
            "closed sessions left open by a previous run"
        );
    }
    if bootstrap::ensure_admin(&store, &data_dir)? {
        info!(file = %data_dir.join("bootstrap-token").display(), "created the bootstrap admin token");
    }
    let cert = match (&config.tls.cert, &config.tls.key) {
        (Some(cert), Some(key)) => CertPaths {
            cert: cert.clone(),
            key: key.clone(),
        },
        _ => tls::ensure_generated(&data_dir.join("tls"), &config.tls.hostnames)?,
    };
    let pg_tls = TlsAcceptor::from(tls::server_config(&cert, &[])?);
    let api_tls = TlsAcceptor::from(tls::server_config(&cert, &[b"http/1.1"])?);

    let audit_file = config.audit.file.as_ref().map(|f| data_dir.join(f));
    let signer = Arc::new(sluice_store::signing::SigningKey::load_or_create(
        &data_dir.join("signing"),
    )?);
    store.run_sync(|c| signer.publish(c))?;
    let (writer, writer_thread) = RecordWriter::start(
        &db_path,
        audit_file,
        Duration::from_millis(100),
        Some(signer.clone()),
    )?;
    let (runtime_conns, runtime_grants) =
        store.run_sync(|c| Ok((catalog::list_connections(c)?, catalog::list_grants(c)?)))?;
    let pipeline = Pipeline::new(
        store,
        writer.clone(),
        Catalog::new(
            config.connections(),
            config.grants(),
            runtime_conns,
            runtime_grants,
        )
        .with_policies(config.policies()),
        RecordingSettings {
            mode: config.recording.mode,
            max_rows: config.recording.max_rows,
            max_value_len: config.recording.max_value_len,
        },
    );

    pipeline.resume_reviews()?;
    if let Some(verifier) = config.verifier() {
        pipeline.set_identity_providers(verifier);
    }

    let pg_listener = TcpListener::bind(config.listeners.postgres.address)
        .await
        .map_err(io(format!(
            "postgres listener {}",
            config.listeners.postgres.address
        )))?;
    let api_listener = TcpListener::bind(config.listeners.api.address)
        .await
        .map_err(io(format!("API listener {}", config.listeners.api.address)))?;
    let pg_addr = pg_listener.local_addr().map_err(io("postgres listener"))?;
    let api_addr = api_listener.local_addr().map_err(io("API listener"))?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let Some(w) = &config.reviews.webhook {
        let url = crate::webhook::resolve_url(w)?;
        crate::webhook::install(&pipeline, url, shutdown_rx.clone());
    }
    let (drained_tx, mut drained_rx) = mpsc::channel::<()>(1);
    let pg_settings = ListenerSettings {
        handshake: HandshakeConfig {
            tls: Some(pg_tls),
            allow_plaintext: config.listeners.postgres.allow_plaintext,
        },
        connect_timeout: Duration::from_secs(10),
        drained: drained_tx,
    };
    tokio::spawn(sluice_postgres::serve(
        pg_listener,
        pipeline.clone(),
        pg_settings,
        shutdown_rx.clone(),
    ));
    let state = ApiState {
        pipeline: pipeline.clone(),
        config_connections: Arc::new(config.connections()),
        config_grants: Arc::new(config.grants()),
    };
    tokio::spawn(api::serve(
        api_listener,
        api_tls,
        api::router(state),
        shutdown_rx,
    ));

    let listeners =
        serde_json::json!({ "postgres": pg_addr.to_string(), "api": api_addr.to_string() });
    std::fs::write(data_dir.join("listeners.json"), listeners.to_string())
        .map_err(io("writing listeners.json"))?;
    info!(postgres = %pg_addr, api = %api_addr, data_dir = %data_dir.display(), "sluice gateway ready");

    wait_for_signal().await;
    info!("shutting down: ending sessions");
    let _ = shutdown_tx.send(true);
    if tokio::time::timeout(DRAIN_TIMEOUT, drained_rx.recv())
        .await
        .is_err()
    {
        warn!("sessions did not end within {DRAIN_TIMEOUT:?}");
    }
    if let Err(e) = writer.flush().await {
        warn!(error = %e, "final recording flush failed");
    }
    drop(pipeline);
    drop(writer);
    let _ = tokio::task::spawn_blocking(move || writer_thread.join()).await;
    info!("stopped");
    Ok(())
}

fn create_private_dir(dir: &std::path::Path) -> Result<(), GatewayError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(format!("data dir {}", dir.display())))
}

async fn wait_for_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term => {},
    }
}
