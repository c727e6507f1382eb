//! SSH commands: the gateway's keys, recorded target host keys, and user certificates
//! (`sluice ssh-cert`).

use super::client::{enc, Api};
use anyhow::Context;
use clap::Subcommand;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// `sluice ssh …`.
#[derive(Debug, Subcommand)]
pub enum SshCmd {
    /// Print the public key the gateway logs in to targets with (for their authorized_keys).
    GatewayKey {
        /// Print the gateway's host key instead (what clients see).
        #[arg(long, conflicts_with = "target_ca")]
        host: bool,
        /// Print the CA that signs the gateway's login certificates instead (for targets'
        /// `TrustedUserCAKeys`, with connections that set `ssh.certificate`).
        #[arg(long)]
        target_ca: bool,
    },
    /// Forget a target's recorded host key after a legitimate change.
    ForgetHostKey {
        /// Connection name.
        connection: String,
    },
}

/// Runs an SSH command.
pub fn ssh(api: &Api, cmd: SshCmd) -> anyhow::Result<()> {
    match cmd {
        SshCmd::GatewayKey { host, target_ca } => {
            let k: Value = api.get("/api/v1/ssh/gateway-key")?;
            let field = match (host, target_ca) {
                (true, _) => "host_key",
                (_, true) => "target_ca",
                _ => "client_key",
            };
            println!("{}", k[field].as_str().unwrap_or_default());
        }
        SshCmd::ForgetHostKey { connection } => {
            let r = api.post(
                &format!("/api/v1/ssh/known-hosts/{}/forget", enc(&connection)),
                json!({}),
            )?;
            println!(
                "forgot {} recorded host key(s) of {connection}",
                r["forgotten"]
            );
        }
    }
    Ok(())
}

/// `sluice ssh-cert`: asks the gateway's SSH CA for a short-lived certificate of the
/// logged-in identity over `key`, written next to it as `NAME-cert.pub`, where OpenSSH
/// finds it by itself.
pub fn ssh_cert(
    api: &Api,
    key: Option<PathBuf>,
    ttl: Option<String>,
    out: Option<PathBuf>,
) -> anyhow::Result<()> {
    let key = match key {
        Some(k) => k,
        None => default_key()?,
    };
    let public = std::fs::read_to_string(&key)
        .with_context(|| format!("cannot read the public key {}", key.display()))?;
    let ttl_secs = ttl
        .map(|t| humantime::parse_duration(&t).with_context(|| format!("--ttl {t:?}: use e.g. 8h")))
        .transpose()?
        .map(|d| d.as_secs());
    let issued: Value = api.post(
        "/api/v1/ssh/certificates",
        json!({ "public_key": public, "ttl_secs": ttl_secs }),
    )?;
    let out = out.unwrap_or_else(|| certificate_path(&key));
    let line = issued["certificate"].as_str().unwrap_or_default();
    std::fs::write(&out, format!("{line}\n"))
        .with_context(|| format!("cannot write {}", out.display()))?;
    let until = issued["valid_before"].as_u64().unwrap_or(0);
    let until = std::time::UNIX_EPOCH + std::time::Duration::from_secs(until);
    println!(
        "wrote {}: a certificate for {} until {}",
        out.display(),
        issued["identity"].as_str().unwrap_or_default(),
        humantime::format_rfc3339_seconds(until)
    );
    Ok(())
}

/// After `sluice login`: a certificate for `key` (or the user's usual key, if there is one),
/// unless its `-cert.pub` file holds a certificate from elsewhere, which is left alone.
pub fn certificate_at_login(api: &Api, key: Option<PathBuf>) -> anyhow::Result<()> {
    let explicit = key.is_some();
    let Some(key) = key.or_else(|| default_key().ok()) else {
        return Ok(());
    };
    let existing = std::fs::read_to_string(certificate_path(&key)).unwrap_or_default();
    if !explicit && !existing.trim().is_empty() && !issued_here(&existing) {
        println!(
            "left {} alone: it holds a certificate sluice did not issue (get one with `sluice ssh-cert --out FILE`)",
            certificate_path(&key).display()
        );
        return Ok(());
    }
    // The sign-in itself succeeded: a certificate that could not be had is only a warning.
    if let Err(e) = ssh_cert(api, Some(key), None, None) {
        eprintln!("signed in, but got no SSH certificate: {e:#}");
    }
    Ok(())
}

/// Whether a `-cert.pub` line is one `sluice ssh-cert` wrote (its comment says so).
fn issued_here(line: &str) -> bool {
    line.split_whitespace()
        .nth(2)
        .is_some_and(|comment| comment == "sluice")
}

/// The first of the user's usual OpenSSH public keys that exists.
fn default_key() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set: give --key")?;
    let dir = Path::new(&home).join(".ssh");
    ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
        .with_context(|| format!("no public key in {}: give --key", dir.display()))
}

/// `id_ed25519.pub` → `id_ed25519-cert.pub`.
fn certificate_path(key: &Path) -> PathBuf {
    let name = key.to_string_lossy();
    PathBuf::from(format!(
        "{}-cert.pub",
        name.strip_suffix(".pub").unwrap_or(&name)
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_certificates_sluice_wrote_are_replaced_at_login() {
        assert!(super::issued_here(
            "ssh-ed25519-cert-v01@openssh.com AAAA sluice eng-1\n"
        ));
        assert!(!super::issued_here(
            "ssh-ed25519-cert-v01@openssh.com AAAA corp-ca\n"
        ));
        assert!(!super::issued_here("ssh-ed25519-cert-v01@openssh.com AAAA"));
    }

    #[test]
    fn the_certificate_goes_where_openssh_looks_for_it() {
        assert_eq!(
            super::certificate_path(std::path::Path::new("/h/.ssh/id_ed25519.pub")),
            std::path::PathBuf::from("/h/.ssh/id_ed25519-cert.pub")
        );
    }
}
