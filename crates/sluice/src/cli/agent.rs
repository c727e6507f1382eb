//! `sluice agent`: the agent process. It dials out to the gateways, so the network it sits in
//! needs no inbound access, relays the streams they open to the destinations it allows, and
//! runs the programs it allows for command connections `via` it.

use anyhow::{bail, Context};
use clap::Args as ClapArgs;
use serde::Deserialize;
use sluice_tunnel::agent::{self, AgentSettings, AgentState, AllowList, GatewayAddr, Proxy};
use std::path::PathBuf;
use std::sync::Arc;

/// Options of `sluice agent`; the config file's values come first, flags add to them.
#[derive(Debug, ClapArgs)]
pub struct AgentArgs {
    /// Gateway API address to hold a tunnel to; repeat for replicas.
    #[arg(long = "gateway", env = "SLUICE_GATEWAY", value_delimiter = ',')]
    gateways: Vec<String>,
    /// One-time enrollment token from `sluice agents add` (needed only once).
    #[arg(long, env = "SLUICE_AGENT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Where the agent keeps its key and name.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// A destination the agent may dial: host-or-CIDR:port (`10.0.0.0/8:5432`,
    /// `db.internal:5432`, `127.0.0.1:*`); repeat. Nothing else is dialed.
    #[arg(long = "allow")]
    allow: Vec<String>,
    /// A program the agent may run for command connections `via` it (`bash`,
    /// `/usr/local/bin/deploy`; the name exactly as the connection's `command.program`, or
    /// `*` for any); repeat. Without one, no command runs here.
    #[arg(long = "allow-exec")]
    allow_exec: Vec<String>,
    /// Agent config file (YAML: gateways, allow, state_dir, ca).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print the agent's public key (creating the key on first use) and exit; pin it on a
    /// gateway with `sluice agents add NAME --public-key KEY`.
    #[arg(long)]
    show_key: bool,
    /// Agent name to use with a key pinned by an admin (instead of enrolling with a token).
    #[arg(long)]
    name: Option<String>,
    /// HTTP proxy to reach the gateways through (`CONNECT`): http://[user:pass@]host:port.
    #[arg(long, env = "HTTPS_PROXY", hide_env_values = true)]
    proxy: Option<String>,
    /// Hosts that skip the proxy (comma-separated names or domain suffixes).
    #[arg(long, env = "NO_PROXY", default_value = "")]
    no_proxy: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    #[serde(default)]
    gateways: Vec<String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    allow_exec: Vec<String>,
    state_dir: Option<PathBuf>,
    ca: Option<PathBuf>,
}

/// Runs the agent until SIGINT/SIGTERM.
pub fn run(args: AgentArgs, ca: Option<PathBuf>) -> anyhow::Result<()> {
    let file: AgentFile = match &args.config {
        Some(p) => serde_yaml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("invalid agent config {}", p.display()))?,
        None => AgentFile::default(),
    };
    let state_dir = args
        .state_dir
        .or(file.state_dir)
        .unwrap_or_else(|| PathBuf::from("sluice-agent"));
    let state = AgentState::open(&state_dir)?;
    if args.show_key {
        println!("{}", sluice_tunnel::proto::encode_key(state.public_key()));
        return Ok(());
    }
    if let Some(name) = &args.name {
        if state.name().is_none() {
            state.set_name(name)?;
        }
    }
    let proxy = args
        .proxy
        .or_else(|| std::env::var("https_proxy").ok())
        .filter(|p| !p.is_empty())
        .map(|p| Proxy::parse(&p))
        .transpose()?;
    let gateways: Vec<GatewayAddr> = file
        .gateways
        .iter()
        .chain(args.gateways.iter())
        .map(|g| GatewayAddr::parse(g).map(|g| g.via_proxy(proxy.as_ref(), &args.no_proxy)))
        .collect::<Result<_, _>>()?;
    if gateways.is_empty() {
        bail!("no gateway: pass --gateway https://GATEWAY:8443 (repeat for replicas)");
    }
    let entries: Vec<&String> = file.allow.iter().chain(args.allow.iter()).collect();
    let allow = AllowList::parse(&entries)?;
    let programs: Vec<String> = file
        .allow_exec
        .iter()
        .chain(args.allow_exec.iter())
        .cloned()
        .collect();
    if allow.is_empty() && programs.is_empty() {
        bail!("the allow-list is empty: pass --allow host-or-CIDR:port for each destination (or --allow-exec PROGRAM)");
    }
    let exec: Option<Arc<dyn agent::ExecService>> = (!programs.is_empty()).then(|| {
        Arc::new(sluice_exec::remote::AgentExec::new(programs)) as Arc<dyn agent::ExecService>
    });
    let mut tls = super::client::tls_config(ca.or(file.ca))?;
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];

    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    // One thread: an agent only relays, and cross-thread wake-ups would cost more than the
    // relaying itself (measured with bench/pg.sh's agent column).
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down: closing tunnels");
            let _ = stop_tx.send(true);
        });
        let settings = AgentSettings {
            gateways,
            tls: Arc::new(tls),
            state: Arc::new(state),
            token: args.token,
            allow: Arc::new(allow),
            exec,
        };
        agent::run(settings, stop_rx).await
    })?;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
