//! The gateway's own SSH keys, and parsing the public keys operators register.
//!
//! Four Ed25519 keys live in `<data-dir>/ssh/` (OpenSSH format, 0600), generated on first
//! start: `host_ed25519`, the host key clients see (pin it in `known_hosts`),
//! `client_ed25519`, the key the gateway logs in to targets with (`sluice ssh gateway-key`
//! prints its public half for the targets' `authorized_keys`), and `user_ca_ed25519`, the CA
//! that signs identities' short-lived user certificates (`sluice ssh-cert`), and
//! `target_ca_ed25519`, the CA that signs the gateway's own login certificates toward targets
//! that trust it (a separate CA: a target never accepts an identity's certificate directly).

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::ssh_key::LineEnding;
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use std::path::Path;

/// Why a key could not be loaded or parsed.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file or text is not a valid key.
    #[error("{0}")]
    Invalid(String),
}

/// The gateway's host key and its client key toward targets.
#[derive(Clone)]
pub struct GatewayKeys {
    /// Presented to SSH clients.
    pub host: PrivateKey,
    /// Used to log in to targets.
    pub client: PrivateKey,
    /// Signs identities' user certificates.
    pub user_ca: PrivateKey,
    /// Signs the gateway's login certificates toward targets.
    pub target_ca: PrivateKey,
}

impl std::fmt::Debug for GatewayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "GatewayKeys(host {})",
            fingerprint(self.host.public_key())
        )
    }
}

impl GatewayKeys {
    /// Loads the keys in `dir`, generating missing ones.
    pub fn load_or_create(dir: &Path) -> Result<GatewayKeys, KeyError> {
        std::fs::create_dir_all(dir).map_err(|source| KeyError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        Ok(GatewayKeys {
            host: load_or_create_key(&dir.join("host_ed25519"), "sluice-gateway-host")?,
            client: load_or_create_key(&dir.join("client_ed25519"), "sluice-gateway")?,
            user_ca: load_or_create_key(&dir.join("user_ca_ed25519"), "sluice-user-ca")?,
            target_ca: load_or_create_key(&dir.join("target_ca_ed25519"), "sluice-target-ca")?,
        })
    }

    /// The client key's public half, one `authorized_keys` line.
    pub fn client_public(&self) -> String {
        public_line(self.client.public_key())
    }

    /// The user CA's public half (for `TrustedUserCAKeys` elsewhere, if wanted).
    pub fn user_ca_public(&self) -> String {
        public_line(self.user_ca.public_key())
    }

    /// The target CA's public half, for targets' `TrustedUserCAKeys`.
    pub fn target_ca_public(&self) -> String {
        public_line(self.target_ca.public_key())
    }

    /// The host key's public half, one `known_hosts`-style key.
    pub fn host_public(&self) -> String {
        public_line(self.host.public_key())
    }
}

fn load_or_create_key(file: &Path, comment: &str) -> Result<PrivateKey, KeyError> {
    let io = |source| KeyError::Io {
        path: file.display().to_string(),
        source,
    };
    match std::fs::read(file) {
        Ok(bytes) => PrivateKey::from_openssh(&bytes)
            .map_err(|e| KeyError::Invalid(format!("{}: {e}", file.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
                .map_err(|_| KeyError::Invalid("no randomness".into()))?;
            let mut key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
            key.set_comment(comment);
            let text = key
                .to_openssh(LineEnding::LF)
                .map_err(|e| KeyError::Invalid(e.to_string()))?;
            write_private(file, text.as_bytes()).map_err(io)?;
            let public = format!("{}\n", public_line(key.public_key()));
            std::fs::write(file.with_extension("pub"), public).map_err(io)?;
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

fn write_private(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file)?.write_all(bytes)
}

/// `SHA256:…`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A public key as one line, `algorithm base64 comment` (no comment when it has none).
pub fn public_line(key: &PublicKey) -> String {
    key.to_openssh().unwrap_or_default()
}

/// A public key as `algorithm base64`, without comment: what is compared.
pub fn key_text(key: &PublicKey) -> String {
    let mut k = key.clone();
    k.set_comment("");
    public_line(&k)
}

/// Parses one public key line (`ssh-ed25519 AAAA… comment`, as in `id_ed25519.pub`).
pub fn parse_public_key(text: &str) -> Result<PublicKey, KeyError> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or_else(|| KeyError::Invalid("no public key in the text".into()))?;
    PublicKey::from_openssh(line)
        .map_err(|e| KeyError::Invalid(format!("not an OpenSSH public key: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_generated_once_private_and_reloaded() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("sluice-sshkeys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let first = GatewayKeys::load_or_create(&dir)?;
        let again = GatewayKeys::load_or_create(&dir)?;
        assert_eq!(first.client_public(), again.client_public());
        assert_ne!(first.client_public(), first.host_public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("client_ed25519"))?
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let parsed = parse_public_key(&first.client_public())?;
        assert_eq!(fingerprint(&parsed), fingerprint(first.client.public_key()));
        assert!(fingerprint(&parsed).starts_with("SHA256:"));
        assert!(parse_public_key("ssh-ed25519 not-base64").is_err());
        assert!(parse_public_key("").is_err());
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
