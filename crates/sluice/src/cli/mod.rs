//! Command-line arguments and dispatch.

mod admin;
mod agent;
mod agents;
mod audit;
mod bundle;
mod client;
mod connect;
mod exec;
mod identities;
mod kube;
mod login;
mod render;
mod reviews;
mod sessions;
mod ssh;
mod terminal;
mod verify;

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// sluice: an access gateway that records, guards and audits every session.
#[derive(Debug, Parser)]
#[command(name = "sluice", version)]
pub struct Args {
    /// Gateway API address.
    #[arg(
        long,
        env = "SLUICE_ADDR",
        default_value = "https://127.0.0.1:8443",
        global = true
    )]
    addr: String,
    /// Token for the API (default: ./sluice-data/bootstrap-token when readable).
    #[arg(long, env = "SLUICE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// CA certificate the gateway's TLS certificate chains to (default: ./sluice-data/tls/ca.pem).
    #[arg(long, env = "SLUICE_CA", global = true)]
    ca: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway.
    Gateway {
        /// Config file (YAML).
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Data dir (default ./sluice-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Manage service accounts.
    #[command(subcommand, name = "service-accounts")]
    ServiceAccounts(admin::ServiceAccountCmd),
    /// Manage tokens; exchange an identity provider's JWT for a gateway token.
    #[command(subcommand, alias = "token")]
    Tokens(admin::TokenCmd),
    /// Manage connections.
    #[command(subcommand)]
    Connections(admin::ConnectionCmd),
    /// Manage grants.
    #[command(subcommand)]
    Grants(admin::GrantCmd),
    /// Manage agents: add (prints an enrollment token), list, revoke.
    #[command(subcommand)]
    Agents(agents::AgentsCmd),
    /// Run an agent inside a private network: it dials out to the gateway and relays the
    /// streams the gateway opens to the destinations it allows.
    Agent(agent::AgentArgs),
    /// Inspect recorded sessions.
    #[command(subcommand)]
    Sessions(sessions::SessionCmd),
    /// Block and unblock identities.
    #[command(subcommand)]
    Identities(identities::IdentityCmd),
    /// SSH: the gateway's keys, recorded target host keys.
    #[command(subcommand)]
    Ssh(ssh::SshCmd),
    /// Get a short-lived SSH user certificate for your identity from the gateway's CA,
    /// written next to your key (`~/.ssh/id_ed25519-cert.pub`), where `ssh` uses it.
    SshCert {
        /// Your public key (default: ~/.ssh/id_ed25519.pub, id_ecdsa.pub or id_rsa.pub).
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        /// Validity (default 8h, at most 24h).
        #[arg(long)]
        ttl: Option<String>,
        /// Where to write the certificate (default: next to the key, `-cert.pub`).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
    /// Review held statements and access requests: list, show, approve, deny.
    #[command(subcommand)]
    Reviews(reviews::ReviewCmd),
    /// Ask for time-boxed access to a connection.
    #[command(subcommand)]
    Access(reviews::AccessCmd),
    /// Command connections: an interactive session of the connection's program in this
    /// terminal (each line judged, the session recorded). PostgreSQL connections: a local
    /// port that tunnels to the connection with your identity (for GUIs and ORMs that cannot
    /// carry a token); local clients need no password.
    Connect {
        /// Connection name.
        connection: String,
        /// Arguments for a command connection's program (where it takes them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
        /// Local port (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        port: u16,
        /// Local address to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        bind: String,
        /// The gateway's PostgreSQL listener.
        #[arg(long, env = "SLUICE_PG_ADDR", default_value = "127.0.0.1:15432")]
        gateway: String,
    },
    /// Run a command connection's program on the gateway: stdin is its input (the script),
    /// its output streams back, and the exit status is the program's (125: the gateway
    /// refused or stopped the run; 124: it ran past its time limit).
    Exec {
        /// Connection name (of type command).
        connection: String,
        /// Arguments after the connection's own (where it takes them).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Write a kubeconfig context for a Kubernetes connection: kubectl then talks to the
    /// gateway, authenticated by `sluice kube-credentials` with your identity's token.
    Kubeconfig {
        /// Connection name (of type kubernetes).
        connection: String,
        /// The kubeconfig file (default: the first file of $KUBECONFIG, else ~/.kube/config).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Context name (default sluice-CONNECTION).
        #[arg(long)]
        context: Option<String>,
        /// Default namespace of the context.
        #[arg(long, short)]
        namespace: Option<String>,
    },
    /// The kubectl credential plugin: prints an ExecCredential with your gateway token (from
    /// --token, SLUICE_TOKEN or `sluice login`).
    #[command(name = "kube-credentials")]
    KubeCredentials,
    /// Sign in with your identity provider; the gateway session token is stored 0600 in
    /// your config dir and used by later commands.
    Login {
        /// Use the device flow (a code to confirm in any browser, on any machine).
        #[arg(long)]
        device: bool,
        /// Only print the sign-in URL; do not try to open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Sign in again even when a stored refresh token could renew the session.
        #[arg(long)]
        fresh: bool,
        /// Provider name, when the gateway has several.
        #[arg(long)]
        provider: Option<String>,
        /// The SSH public key to get a certificate for, written next to it as
        /// `NAME-cert.pub` (default: the first of ~/.ssh/id_ed25519.pub, id_ecdsa.pub,
        /// id_rsa.pub that exists).
        #[arg(long)]
        ssh_key: Option<PathBuf>,
        /// Do not get an SSH certificate.
        #[arg(long, conflicts_with = "ssh_key")]
        no_ssh_cert: bool,
    },
    /// Revoke and delete the stored session token.
    Logout,
    /// Verify a recording (its hash chain and signed manifest) or, offline, an evidence bundle
    /// (every recording and the audit chain with its signed checkpoints); names the first problem.
    Verify {
        /// Session id, or a bundle file written by `sluice export`.
        session: String,
        /// The gateway's public key you hold (hex, or a file such as
        /// `<data-dir>/signing/ed25519.pub`); default: the keys the gateway publishes.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Show the newest audit events.
    Audit(sessions::AuditArgs),
    /// Write an evidence bundle (recordings, manifests, audit log and checkpoints, public keys)
    /// for auditors; check it with `sluice verify BUNDLE`.
    Export {
        /// Sessions started at or after: a time (2026-01-31T00:00:00Z) or a duration ago (7d).
        #[arg(long)]
        since: Option<String>,
        /// Sessions started before: a time or a duration ago.
        #[arg(long)]
        until: Option<String>,
        /// Only this identity's sessions.
        #[arg(long)]
        identity: Option<String>,
        /// Only this connection's sessions.
        #[arg(long)]
        connection: Option<String>,
        /// Output file.
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Legal holds: held recordings are never deleted by retention.
    #[command(subcommand)]
    Holds(audit::HoldCmd),
    /// Apply the retention policy now (the gateway also does it on its own schedule).
    #[command(subcommand)]
    Retention(audit::RetentionCmd),
    /// Delivery metrics (Prometheus text): audit sink backlog, failures, spool state.
    Metrics,
    /// The signing key: list public keys, rotate.
    #[command(subcommand, name = "signing-keys")]
    SigningKeys(audit::KeyCmd),
}

/// Runs one command.
pub fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Gateway { config, data_dir } => run_gateway(config, data_dir),
        Command::Login {
            device,
            no_browser,
            fresh,
            provider,
            ssh_key,
            no_ssh_cert,
        } => {
            let token = login::login(
                &args.addr,
                args.ca.clone(),
                provider,
                device,
                !no_browser,
                fresh,
            )?;
            if no_ssh_cert {
                return Ok(());
            }
            let api = client::Api::new(&args.addr, Some(token), args.ca)?;
            ssh::certificate_at_login(&api, ssh_key)
        }
        Command::Logout => login::logout(&args.addr, args.ca),
        Command::Kubeconfig {
            connection,
            kubeconfig,
            context,
            namespace,
        } => kube::kubeconfig(kube::KubeconfigArgs {
            addr: args.addr,
            ca: args.ca,
            connection,
            file: kubeconfig,
            context,
            namespace,
        }),
        Command::KubeCredentials => kube::credentials(args.token),
        Command::Agent(a) => agent::run(a, args.ca),
        Command::Connect {
            connection,
            args: extra,
            port,
            bind,
            gateway,
        } => match terminal::run(
            &args.addr,
            &connection,
            &extra,
            args.token.clone(),
            args.ca.clone(),
        )? {
            terminal::Opened::Ran(code) => std::process::exit(code),
            terminal::Opened::NotCommand => connect::run(
                connection,
                if bind.contains(':') {
                    format!("[{bind}]:{port}")
                } else {
                    format!("{bind}:{port}")
                },
                gateway,
                args.token,
                args.ca,
            ),
        },
        Command::Verify {
            session,
            public_key,
        } if std::path::Path::new(&session).is_file() => {
            bundle::verify(std::path::Path::new(&session), public_key)
        }
        Command::Tokens(admin::TokenCmd::Exchange { subject_token }) => {
            admin::exchange(&args.addr, args.ca, subject_token)
        }
        cmd => {
            let api = client::Api::new(&args.addr, args.token, args.ca)?;
            match cmd {
                Command::ServiceAccounts(c) => admin::service_accounts(&api, c),
                Command::Tokens(c) => admin::tokens(&api, c),
                Command::Connections(c) => admin::connections(&api, c),
                Command::Grants(c) => admin::grants(&api, c),
                Command::Agents(c) => agents::run(&api, c),
                Command::Sessions(c) => sessions::run(&api, c),
                Command::Identities(c) => identities::run(&api, c),
                Command::Ssh(c) => ssh::ssh(&api, c),
                Command::SshCert { key, ttl, out } => ssh::ssh_cert(&api, key, ttl, out),
                Command::Exec { connection, args } => exec::run(&api, &connection, &args),
                Command::Reviews(c) => reviews::run(&api, c),
                Command::Access(c) => reviews::access(&api, c),
                Command::Audit(a) => sessions::audit(&api, a),
                Command::Verify {
                    session,
                    public_key,
                } => verify::run(&api, &session, public_key),
                Command::Export {
                    since,
                    until,
                    identity,
                    connection,
                    out,
                } => {
                    let sel = bundle::Selection {
                        since_us: since.as_deref().map(bundle::parse_time).transpose()?,
                        until_us: until.as_deref().map(bundle::parse_time).transpose()?,
                        identity,
                        connection,
                    };
                    bundle::export(&api, &sel, &out)
                }
                Command::Metrics => {
                    print!("{}", api.get_text("/api/v1/metrics")?);
                    Ok(())
                }
                Command::Holds(c) => audit::holds(&api, c),
                Command::Retention(c) => audit::retention(&api, c),
                Command::SigningKeys(c) => audit::keys(&api, c),
                Command::Gateway { .. }
                | Command::Agent(_)
                | Command::Connect { .. }
                | Command::Login { .. }
                | Command::Kubeconfig { .. }
                | Command::KubeCredentials
                | Command::Logout => Ok(()),
            }
        }
    }
}

/// The gateway's async worker threads: `SLUICE_WORKER_THREADS`, else one per CPU this process
/// may use (cgroup limits count). Fewer leave cores to what shares the machine.
fn worker_threads() -> anyhow::Result<usize> {
    if let Ok(v) = std::env::var("SLUICE_WORKER_THREADS") {
        return match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => anyhow::bail!("SLUICE_WORKER_THREADS must be a positive number, not {v:?}"),
        };
    }
    Ok(std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
}

fn run_gateway(config: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads()?)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(sluice_gateway::run(sluice_gateway::GatewayOptions {
        config,
        data_dir,
    }))?;
    Ok(())
}
