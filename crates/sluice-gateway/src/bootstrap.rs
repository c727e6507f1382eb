//! The data dir and the first admin: on first start the gateway creates a bootstrap identity
//! and writes its token to `<data-dir>/bootstrap-token` (mode 0600). It stays valid until
//! revoked.

use sluice_core::IdentityKind;
use sluice_store::{tokens, Store, StoreError};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Name of the bootstrap identity.
pub const BOOTSTRAP_IDENTITY: &str = "bootstrap-admin";

/// Writes `data` to `path`, readable by the owner only.
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Creates the bootstrap identity and token file if this store has none yet.
pub fn ensure_admin(store: &Store, data_dir: &Path) -> Result<bool, StoreError> {
    let file = data_dir.join("bootstrap-token");
    store.run_sync(|c| {
        if tokens::has_bootstrap(c)? {
            return Ok(false);
        }
        let tx = c.transaction_with_behavior(sluice_store::TransactionBehavior::Immediate)?;
        tokens::upsert_identity(
            &tx,
            BOOTSTRAP_IDENTITY,
            IdentityKind::Bootstrap,
            &["admin".to_string()],
        )?;
        let (_, token) =
            tokens::issue_token(&tx, BOOTSTRAP_IDENTITY, IdentityKind::Bootstrap, None)?;
        write_private(&file, format!("{}\n", token.expose()).as_bytes())?;
        tx.commit()?;
        Ok(true)
    })
}
