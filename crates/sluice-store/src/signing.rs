//! The gateway's Ed25519 signing key and session manifests.
//!
//! When a session ends, the writer signs its manifest: the session's identity, connection,
//! times, event count and final chain hash, in a fixed text form. With the gateway's public
//! key alone, anyone can then check a recording offline: the chain proves no event was edited,
//! removed, reordered or inserted, and the signed count and final hash prove the tail was not
//! cut off. The key is generated at first start (`<data-dir>/signing/ed25519.pk8`, 0600; its
//! public half in `ed25519.pub`);
//! public keys stay in the store (`signing_keys`) so rotated keys still verify old recordings.

use crate::crypto::{hex, sha256, unhex};
use crate::StoreError;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use rusqlite::{params, Connection};
use std::path::Path;

/// The signing key.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    /// Public key, hex.
    pub public_hex: String,
    /// Short id: the first 8 bytes of the public key's SHA-256, hex.
    pub key_id: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.key_id)
    }
}

/// The id of a public key.
pub fn key_id(public: &[u8]) -> String {
    hex(&sha256(public)[..8])
}

/// Where the signing key comes from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Generated at first start and kept in this directory (`ed25519.pk8`); can be rotated.
    Managed(std::path::PathBuf),
    /// A PKCS#8 file (PEM or DER) the operator provides; rotate by replacing it and restarting.
    File(std::path::PathBuf),
    /// An environment variable holding the PKCS#8 key (PEM, or base64 of the DER).
    Env(String),
}

impl SigningKey {
    /// Loads the key in `dir`, generating it (0600) on first use.
    pub fn load_or_create(dir: &Path) -> Result<SigningKey, StoreError> {
        let file = dir.join("ed25519.pk8");
        let pkcs8 = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => write_new_key(dir, &file)?,
            Err(e) => return Err(e.into()),
        };
        let key = SigningKey::from_pkcs8(&pkcs8, &file.display().to_string())?;
        // The public half, for auditors to hold on to (`sluice verify --public-key`).
        std::fs::write(dir.join("ed25519.pub"), format!("{}\n", key.public_hex))?;
        Ok(key)
    }

    /// Loads the key from `source`.
    pub fn load(source: &KeySource) -> Result<SigningKey, StoreError> {
        match source {
            KeySource::Managed(dir) => SigningKey::load_or_create(dir),
            KeySource::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| {
                    StoreError::Corrupt(format!("signing key {}: {e}", path.display()))
                })?;
                SigningKey::from_pkcs8(&decode_key(&bytes), &path.display().to_string())
            }
            KeySource::Env(var) => {
                let text = std::env::var(var).map_err(|_| {
                    StoreError::Corrupt(format!(
                        "signing key: environment variable {var} is not set"
                    ))
                })?;
                SigningKey::from_pkcs8(&decode_key(text.as_bytes()), &format!("${var}"))
            }
        }
    }

    /// A key from PKCS#8 DER (v1 as OpenSSL writes it, or v2); `what` names it in errors.
    pub fn from_pkcs8(der: &[u8], what: &str) -> Result<SigningKey, StoreError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|_| StoreError::Corrupt(format!("{what} is not an Ed25519 PKCS#8 key")))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(SigningKey {
            pair,
            public_hex: hex(&public),
            key_id: key_id(&public),
        })
    }

    /// Signs `message`; the signature in hex.
    pub fn sign(&self, message: &[u8]) -> String {
        hex(self.pair.sign(message).as_ref())
    }

    /// Records the public key so recordings it signs stay verifiable after a rotation.
    pub fn publish(&self, db: &Connection) -> Result<(), StoreError> {
        db.execute(
            "INSERT OR IGNORE INTO signing_keys (key_id, public_hex, created_us) VALUES (?1, ?2, ?3)",
            params![self.key_id, self.public_hex, sluice_core::time::now_micros()],
        )?;
        Ok(())
    }
}

/// Generates a key into `file` (0600, in a 0700 `dir`); its PKCS#8 bytes.
fn write_new_key(dir: &Path, file: &Path) -> Result<Vec<u8>, StoreError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let rng = ring::rand::SystemRandom::new();
    let doc = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| StoreError::Corrupt("cannot generate a signing key".into()))?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)?;
    std::io::Write::write_all(&mut f, doc.as_ref())?;
    f.sync_all()?;
    Ok(doc.as_ref().to_vec())
}

/// PKCS#8 DER from PEM, base64 or DER input.
fn decode_key(input: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let text = String::from_utf8_lossy(input);
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<Vec<_>>()
        .concat();
    match base64::engine::general_purpose::STANDARD.decode(body.trim()) {
        Ok(der) if !der.is_empty() => der,
        _ => input.to_vec(),
    }
}

/// The current signing key, replaceable while the gateway runs (rotation). Old public keys stay
/// in `signing_keys`, so what they signed keeps verifying.
#[derive(Debug)]
pub struct KeyRing {
    source: KeySource,
    current: std::sync::RwLock<std::sync::Arc<SigningKey>>,
}

impl KeyRing {
    /// Loads the key from `source`.
    pub fn load(source: KeySource) -> Result<KeyRing, StoreError> {
        let key = SigningKey::load(&source)?;
        Ok(KeyRing {
            source,
            current: std::sync::RwLock::new(std::sync::Arc::new(key)),
        })
    }

    /// The key to sign with now.
    pub fn current(&self) -> std::sync::Arc<SigningKey> {
        match self.current.read() {
            Ok(k) => k.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Replaces a managed key with a new one (the old private key is deleted, its public key
    /// stays published); publish the new one with [`SigningKey::publish`]. Keys from a file or
    /// the environment are rotated by the operator.
    pub fn rotate(&self) -> Result<std::sync::Arc<SigningKey>, StoreError> {
        let KeySource::Managed(dir) = &self.source else {
            return Err(StoreError::Refused(
                "the signing key comes from the config (file or environment): replace it there and restart the gateway".into(),
            ));
        };
        let staged = dir.join("ed25519.pk8.new");
        let _ = std::fs::remove_file(&staged);
        let pkcs8 = write_new_key(dir, &staged)?;
        let key = std::sync::Arc::new(SigningKey::from_pkcs8(&pkcs8, "new key")?);
        std::fs::rename(&staged, dir.join("ed25519.pk8"))?;
        std::fs::write(dir.join("ed25519.pub"), format!("{}\n", key.public_hex))?;
        let mut cur = match self.current.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *cur = key.clone();
        Ok(key)
    }
}

/// The signed text of a session manifest.
pub fn manifest(
    session_id: &str,
    identity: &str,
    connection: &str,
    started_us: i64,
    ended_us: i64,
    event_count: u64,
    final_hash: &str,
) -> String {
    format!(
        "sluice-manifest-v1\nsession {session_id}\nidentity {identity}\nconnection {connection}\nstarted_us {started_us}\nended_us {ended_us}\nevents {event_count}\nfinal_hash {final_hash}\n"
    )
}

/// The text the gateway signs to attest an evidence bundle's listing (`bundle.json`), given the
/// listing's SHA-256 in hex.
pub fn bundle_attestation(sha256_hex: &str) -> String {
    format!("sluice-bundle-v1\n{sha256_hex}\n")
}

/// Whether `signature_hex` is `public_hex`'s signature of `message`.
pub fn verify(public_hex: &str, message: &[u8], signature_hex: &str) -> bool {
    let (Some(public), Some(sig)) = (unhex(public_hex), unhex(signature_hex)) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public)
        .verify(message, &sig)
        .is_ok()
}

/// Writes every published public key, one hex key per line, to `dir/all.pub`: what an auditor
/// passes to `sluice verify --public-key` to check records from before and after rotations.
pub fn write_all_public(db: &Connection, dir: &Path) -> Result<(), StoreError> {
    let keys = public_keys(db)?;
    let text: String = keys.iter().map(|(_, hex)| format!("{hex}\n")).collect();
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("all.pub"), text)?;
    Ok(())
}

/// The published public keys: (key id, public key hex).
pub fn public_keys(db: &Connection) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = db.prepare("SELECT key_id, public_hex FROM signing_keys ORDER BY created_us")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests;
