//! The agent's own state: its Ed25519 key pair and, once enrolled, its name.

use ring::signature::{Ed25519KeyPair, KeyPair};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the state dir could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("agent state {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The key file is not an Ed25519 PKCS#8 key.
    #[error("agent key {0} is not a valid Ed25519 key")]
    BadKey(PathBuf),
}

/// The agent's identity on disk: `agent.key` (PKCS#8, 0600) and `agent.name`.
pub struct AgentState {
    dir: PathBuf,
    key: Ed25519KeyPair,
}

impl AgentState {
    /// Opens the state in `dir`, generating the key pair on first use.
    pub fn open(dir: &Path) -> Result<AgentState, StateError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join("agent.key");
        let pkcs8 = match std::fs::read(&key_path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| StateError::BadKey(key_path.clone()))?;
                write_private(&key_path, doc.as_ref()).map_err(io(&key_path))?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(io(&key_path)(e)),
        };
        let key =
            Ed25519KeyPair::from_pkcs8(&pkcs8).map_err(|_| StateError::BadKey(key_path.clone()))?;
        Ok(AgentState {
            dir: dir.to_path_buf(),
            key,
        })
    }

    /// The public key to pin (32 bytes).
    pub fn public_key(&self) -> &[u8] {
        self.key.public_key().as_ref()
    }

    /// Signs `message` with the agent's key.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.key.sign(message).as_ref().to_vec()
    }

    /// The name the gateway gave at enrollment, if enrolled.
    pub fn name(&self) -> Option<String> {
        std::fs::read_to_string(self.dir.join("agent.name"))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    /// Records the name the gateway gave.
    pub fn set_name(&self, name: &str) -> Result<(), StateError> {
        let path = self.dir.join("agent.name");
        std::fs::write(&path, format!("{name}\n")).map_err(|source| StateError::Io { path, source })
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
