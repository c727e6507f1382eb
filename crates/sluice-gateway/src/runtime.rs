//! Start-up and shutdown: data dir, store, TLS, bootstrap admin, pipeline, listeners.

use crate::api::{self, ApiState};
use crate::archive::{archive_pass, Archive};
use crate::bootstrap;
use crate::config::{Config, ConfigError, StorageConfig};
use crate::tls::{self, CertPaths, TlsError};
use sluice_pipeline::retention::{ArchiveStore, RetentionPolicy};
use sluice_pipeline::{Catalog, Pipeline, RecordingSettings};
use sluice_postgres::handshake::HandshakeConfig;
use sluice_postgres::ListenerSettings;
use sluice_store::audit_log::{SpoolHealth, SpoolSignal};
use sluice_store::signing::{KeyRing, KeySource};
use sluice_store::writer::WriterSettings;
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
    /// An audit sink could not be set up.
    #[error("audit.sinks.{0}: {1}")]
    Sink(String, String),
    /// Object storage is misconfigured.
    #[error(transparent)]
    Archive(#[from] crate::archive::ArchiveError),
    /// The review webhook is misconfigured.
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
    /// The gateway's SSH keys could not be loaded or created.
    #[error("ssh keys: {0}")]
    SshKeys(String),
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

/// How often ended recordings are moved to object storage.
const ARCHIVE_EVERY: Duration = Duration::from_secs(5);
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
    if config.recording.mode == sluice_store::DurabilityMode::Off {
        warn!("recording.mode is off: statements are neither recorded nor audited (benchmark baseline only)");
    }

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
        _ => tls::ensure_generated(&data_dir.join("tls"), &config.certificate_names())?,
    };
    let pg_tls = TlsAcceptor::from(tls::server_config(&cert, &[])?);
    let api_tls = TlsAcceptor::from(tls::server_config(&cert, &[b"h2", b"http/1.1"])?);

    let key_source = match (
        &config.audit.signing_key_file,
        &config.audit.signing_key_env,
    ) {
        (Some(f), _) => KeySource::File(f.clone()),
        (None, Some(var)) => KeySource::Env(var.clone()),
        (None, None) => KeySource::Managed(data_dir.join("signing")),
    };
    let keys = Arc::new(KeyRing::load(key_source)?);
    let signing_dir = data_dir.join("signing");
    store.run_sync(|c| {
        keys.current().publish(c)?;
        sluice_store::signing::write_all_public(c, &signing_dir)
    })?;
    let spool = Arc::new(SpoolSignal::default());
    let health = Arc::new(SpoolHealth::default());
    let (writer, writer_thread) = RecordWriter::start(
        &db_path,
        WriterSettings {
            max_delay: Duration::from_millis(100),
            keys: Some(keys.clone()),
            checkpoint_every: sluice_policy::parse_duration(&config.audit.checkpoint_interval)
                .unwrap_or(Duration::from_secs(60)),
            spool: Some(spool.clone()),
        },
    )?;
    let sink_threads = start_audit_sinks(&config, &data_dir, &db_path, &spool, &health)?;
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
            audit_statements: config.audit.statements,
        },
    );

    if config.audit.fail_closed {
        pipeline.fail_closed_on(health.clone());
    }
    audit_start(&pipeline, &opts, &config);
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
    let mysql_listener = match &config.listeners.mysql {
        Some(l) => Some(
            TcpListener::bind(l.address)
                .await
                .map_err(io(format!("mysql listener {}", l.address)))?,
        ),
        None => None,
    };
    let mysql_addr = match &mysql_listener {
        Some(l) => Some(l.local_addr().map_err(io("mysql listener"))?),
        None => None,
    };
    let api_addr = api_listener.local_addr().map_err(io("API listener"))?;
    let ssh_keys = sluice_ssh::GatewayKeys::load_or_create(&data_dir.join("ssh"))
        .map_err(|e| GatewayError::SshKeys(e.to_string()))?;
    let ssh_listener = match &config.listeners.ssh {
        Some(l) => Some(
            TcpListener::bind(l.address)
                .await
                .map_err(io(format!("ssh listener {}", l.address)))?,
        ),
        None => None,
    };
    let ssh_addr = match &ssh_listener {
        Some(l) => Some(l.local_addr().map_err(io("ssh listener"))?),
        None => None,
    };

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    if let Some(w) = &config.reviews.webhook {
        let url = crate::webhook::resolve_url(w)?;
        crate::webhook::install(&pipeline, url, shutdown_rx.clone());
    }
    let (drained_tx, mut drained_rx) = mpsc::channel::<()>(1);
    if let (Some(listener), Some(l)) = (mysql_listener, &config.listeners.mysql) {
        let settings = sluice_mysql::ListenerSettings {
            handshake: sluice_mysql::handshake::HandshakeConfig {
                tls: Some(pg_tls.clone()),
                allow_plaintext: l.allow_plaintext,
            },
            connect_timeout: Duration::from_secs(10),
            drained: drained_tx.clone(),
        };
        tokio::spawn(sluice_mysql::serve(
            listener,
            pipeline.clone(),
            settings,
            shutdown_rx.clone(),
        ));
    }
    if let Some(listener) = ssh_listener {
        // Checked when the config was loaded.
        let ciphers = config
            .listeners
            .ssh
            .as_ref()
            .and_then(|l| l.ciphers.as_deref())
            .and_then(|names| sluice_ssh::client_ciphers(names).ok())
            .unwrap_or_else(|| sluice_ssh::DEFAULT_CLIENT_CIPHERS.to_vec());
        let settings = sluice_ssh::SshSettings {
            ciphers,
            connect_timeout: Duration::from_secs(10),
            output_cap: config.recording.ssh_output_cap,
            drained: drained_tx.clone(),
        };
        tokio::spawn(sluice_ssh::serve(
            listener,
            pipeline.clone(),
            ssh_keys.clone(),
            settings,
            shutdown_rx.clone(),
        ));
    }
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
    let retention = Arc::new(RetentionPolicy {
        default: config
            .retention
            .default
            .as_deref()
            .and_then(sluice_policy::parse_duration),
        per_connection: config.retention_overrides(),
    });
    let archive = match &config.storage {
        StorageConfig::Local => None,
        StorageConfig::S3(s3) => {
            let a = Arc::new(Archive::new(s3)?);
            let (p, job) = (pipeline.clone(), a.clone());
            tokio::spawn(every(ARCHIVE_EVERY, shutdown_rx.clone(), move || {
                archive_pass(p.clone(), job.clone())
            }));
            Some(a)
        }
    };
    if retention.is_active() {
        let period = config
            .retention
            .check_interval
            .as_deref()
            .and_then(sluice_policy::parse_duration)
            .unwrap_or(Duration::from_secs(3600));
        let (p, policy) = (pipeline.clone(), retention.clone());
        let store = archive.clone().map(|a| a as Arc<dyn ArchiveStore>);
        tokio::spawn(every(period, shutdown_rx.clone(), move || {
            retention_pass(p.clone(), policy.clone(), store.clone())
        }));
    }
    let state = ApiState {
        pipeline: pipeline.clone(),
        config_connections: Arc::new(config.connections()),
        config_grants: Arc::new(config.grants()),
        keys: keys.clone(),
        signing_dir,
        health: health.clone(),
        retention,
        archive,
        ssh_keys: Arc::new(ssh_keys),
        exec: sluice_exec::ExecSettings {
            output_cap: config.recording.ssh_output_cap,
        },
        roles: Arc::new(api::roles::Roles::new(config.roles.clone())),
    };
    let web = api::web_login::WebLogin::new(state.clone());
    tokio::spawn(api::serve(
        api_listener,
        api_tls,
        api::router(state),
        web,
        shutdown_rx,
    ));

    let mut listeners =
        serde_json::json!({ "postgres": pg_addr.to_string(), "api": api_addr.to_string() });
    if let Some(a) = mysql_addr {
        listeners["mysql"] = serde_json::Value::String(a.to_string());
    }
    if let Some(a) = ssh_addr {
        listeners["ssh"] = serde_json::Value::String(a.to_string());
    }
    std::fs::write(data_dir.join("listeners.json"), listeners.to_string())
        .map_err(io("writing listeners.json"))?;
    let mysql = mysql_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
    let ssh = ssh_addr.map_or_else(|| "off".to_string(), |a| a.to_string());
    info!(postgres = %pg_addr, %mysql, %ssh, api = %api_addr, data_dir = %data_dir.display(), "sluice gateway ready");

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
    // The writer ends (with a final checkpoint) once every handle to it is gone; a pass of the
    // retention or archive job still holding one must not keep the gateway from stopping.
    let joined = tokio::task::spawn_blocking(move || writer_thread.join());
    if tokio::time::timeout(DRAIN_TIMEOUT, joined).await.is_err() {
        warn!("the recording writer did not finish within {DRAIN_TIMEOUT:?}");
    }
    // The sinks get a last attempt at what is spooled; what they cannot deliver stays spooled.
    spool.close();
    let joined = tokio::task::spawn_blocking(move || {
        for t in sink_threads {
            let _ = t.thread.join();
        }
    });
    if tokio::time::timeout(DRAIN_TIMEOUT, joined).await.is_err() {
        warn!(
            "audit sinks did not finish within {DRAIN_TIMEOUT:?}; undelivered events stay spooled"
        );
    }
    info!("stopped");
    Ok(())
}

/// Starts the audit sinks: `audit.file` (as the sink `file`) and `audit.sinks`.
fn start_audit_sinks(
    config: &Config,
    data_dir: &std::path::Path,
    db_path: &std::path::Path,
    spool: &Arc<SpoolSignal>,
    health: &Arc<SpoolHealth>,
) -> Result<Vec<sluice_audit::SinkHandle>, GatewayError> {
    let mut sinks: Vec<(String, Box<dyn sluice_audit::Sink>)> = Vec::new();
    if let Some(f) = &config.audit.file {
        let cfg = sluice_audit::config::FileSink::at(data_dir.join(f));
        sinks.push((
            "file".into(),
            Box::new(sluice_audit::sink::file::FileSink::new(&cfg)),
        ));
    }
    for (name, cfg) in &config.audit.sinks {
        let sink = sluice_audit::sink::build(cfg, data_dir)
            .map_err(|e| GatewayError::Sink(name.clone(), e.to_string()))?;
        sinks.push((name.clone(), sink));
    }
    Ok(sluice_audit::start_sinks(
        db_path,
        sinks,
        spool.clone(),
        health.clone(),
        config.audit.spool_limit,
    )?)
}

/// Audits the start, with a digest of the config file (configuration changes show as a new
/// digest).
fn audit_start(pipeline: &Pipeline, opts: &GatewayOptions, config: &Config) {
    let mut e = sluice_pipeline::audit::event("gateway.start", sluice_core::Outcome::Success);
    e.target = opts.config.as_ref().map(|p| p.display().to_string());
    e.reason = config.sha256().map(|d| format!("config sha256 {d}"));
    pipeline.audit(e);
}

/// One pass of the retention job: deletes expired, unheld recordings, logs.
async fn retention_pass(
    pipeline: Pipeline,
    policy: Arc<RetentionPolicy>,
    archive: Option<Arc<dyn ArchiveStore>>,
) {
    match pipeline.apply_retention(&policy, archive, None).await {
        Ok(deleted) if !deleted.is_empty() => {
            info!(
                sessions = deleted.len(),
                "retention deleted expired recordings"
            )
        }
        Ok(_) => {}
        Err(e) => warn!(error = %e, "retention run failed"),
    }
}

/// Runs `pass` every `period` (the first at once), one at a time, until shutdown.
async fn every<F, Fut>(period: Duration, mut shutdown: watch::Receiver<bool>, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        pass().await;
    }
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
