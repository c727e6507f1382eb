//! kubectl through the gateway: `sluice kubeconfig` writes a context whose user gets its
//! token from `sluice kube-credentials`, a client-go exec credential plugin.

use anyhow::{anyhow, Context};
use base64::Engine;
use serde_yaml::{Mapping, Value};
use std::path::{Path, PathBuf};

/// What `sluice kubeconfig` writes.
pub struct KubeconfigArgs {
    /// The gateway's address (`https://gw:8443`).
    pub addr: String,
    /// The gateway's CA certificate file.
    pub ca: Option<PathBuf>,
    /// The Kubernetes connection.
    pub connection: String,
    /// The kubeconfig file (default: the first of `$KUBECONFIG`, else `~/.kube/config`).
    pub file: Option<PathBuf>,
    /// Context name (default `sluice-<connection>`).
    pub context: Option<String>,
    /// Default namespace of the context.
    pub namespace: Option<String>,
}

/// Adds (or replaces) the cluster, user and context of `args.connection` in the kubeconfig
/// and makes the context current.
pub fn kubeconfig(args: KubeconfigArgs) -> anyhow::Result<()> {
    let file = match args.file {
        Some(f) => f,
        None => default_file()?,
    };
    let ca_path = args
        .ca
        .clone()
        .unwrap_or_else(|| PathBuf::from("sluice-data/tls/ca.pem"));
    let ca = std::fs::read(&ca_path).with_context(|| {
        format!(
            "reading the gateway's CA {} (set SLUICE_CA)",
            ca_path.display()
        )
    })?;
    let name = args
        .context
        .clone()
        .unwrap_or_else(|| format!("sluice-{}", args.connection));
    let server = format!(
        "{}/kube/{}",
        args.addr.trim_end_matches('/'),
        args.connection
    );
    let exe = std::env::current_exe().context("locating the sluice program")?;
    let mut doc: Value = match std::fs::read_to_string(&file) {
        Ok(text) if !text.trim().is_empty() => serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not a kubeconfig", file.display()))?,
        _ => serde_yaml::from_str("{apiVersion: v1, kind: Config, preferences: {}}")?,
    };
    let cluster = yaml(serde_json::json!({
        "name": name,
        "cluster": {
            "server": server,
            "certificate-authority-data": base64::engine::general_purpose::STANDARD.encode(&ca),
        }
    }))?;
    let mut exec_args = vec![
        "kube-credentials".to_string(),
        "--addr".into(),
        args.addr.clone(),
    ];
    if let Some(ca) = &args.ca {
        let absolute = std::fs::canonicalize(ca).unwrap_or_else(|_| ca.clone());
        exec_args.extend(["--ca".into(), absolute.display().to_string()]);
    }
    let user = yaml(serde_json::json!({
        "name": name,
        "user": {
            "exec": {
                "apiVersion": "client.authentication.k8s.io/v1",
                "command": exe.display().to_string(),
                "args": exec_args,
                "interactiveMode": "Never",
                "provideClusterInfo": false,
            }
        }
    }))?;
    let mut context = serde_json::json!({
        "name": name,
        "context": { "cluster": name, "user": name }
    });
    if let Some(ns) = &args.namespace {
        context["context"]["namespace"] = serde_json::Value::String(ns.clone());
    }
    let context = yaml(context)?;
    let map = doc
        .as_mapping_mut()
        .ok_or_else(|| anyhow!("{} is not a kubeconfig", file.display()))?;
    upsert(map, "clusters", &name, cluster);
    upsert(map, "users", &name, user);
    upsert(map, "contexts", &name, context);
    map.insert("current-context".into(), Value::String(name.clone()));
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    write_private(&file, serde_yaml::to_string(&doc)?.as_bytes())?;
    println!(
        "context {name} written to {} and made current; kubectl reaches {server}",
        file.display()
    );
    Ok(())
}

/// Prints the client-go `ExecCredential` carrying the identity's gateway token.
pub fn credentials(token: Option<String>) -> anyhow::Result<()> {
    let token = super::client::resolve_token(token)?;
    // client-go says which version it speaks in KUBERNETES_EXEC_INFO.
    let api_version = std::env::var("KUBERNETES_EXEC_INFO")
        .ok()
        .and_then(|i| serde_json::from_str::<serde_json::Value>(&i).ok())
        .and_then(|i| i.get("apiVersion")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "client.authentication.k8s.io/v1".into());
    let credential = serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "status": { "token": token },
    });
    println!("{credential}");
    Ok(())
}

fn default_file() -> anyhow::Result<PathBuf> {
    if let Some(first) = std::env::var_os("KUBECONFIG")
        .as_ref()
        .and_then(|v| std::env::split_paths(v).next())
    {
        return Ok(first);
    }
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("set KUBECONFIG or HOME"))?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

fn yaml(v: serde_json::Value) -> anyhow::Result<Value> {
    Ok(serde_yaml::to_value(v)?)
}

/// Replaces the entry named `name` in the list `key` of `map`, or appends it.
fn upsert(map: &mut Mapping, key: &str, name: &str, entry: Value) {
    let list = map
        .entry(key.into())
        .or_insert_with(|| Value::Sequence(Vec::new()));
    if !list.is_sequence() {
        *list = Value::Sequence(Vec::new());
    }
    if let Value::Sequence(items) = list {
        items.retain(|i| i.get("name").and_then(Value::as_str) != Some(name));
        items.push(entry);
    }
}

/// Writes `data` to `path`, readable by its owner only (a kubeconfig holds credentials).
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}
