//! File transfers through SSH: what SFTP and legacy scp do to which files, for the guard
//! (path rules) and the recording (one [`FileOp`] per operation, with byte counts and the
//! SHA-256 of the content moved).

pub(crate) mod scp;
pub(crate) mod sftp;
pub(crate) mod wire;

use sluice_core::FileOp;

/// The content of one file moved through a channel, hashed as it passes.
pub(crate) struct Transfer {
    bytes: u64,
    /// Where the next in-order byte lands; content out of order cannot be hashed as a file.
    next: u64,
    in_order: bool,
    digest: ring::digest::Context,
}

impl Transfer {
    pub fn new() -> Transfer {
        Transfer {
            bytes: 0,
            next: 0,
            in_order: true,
            digest: ring::digest::Context::new(&ring::digest::SHA256),
        }
    }

    /// Adds `data`, which belongs at `offset` in the file.
    pub fn add(&mut self, offset: u64, data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.in_order && offset == self.next {
            self.digest.update(data);
            self.next += data.len() as u64;
        } else {
            self.in_order = false;
        }
    }

    /// Adds `data` after what came before.
    pub fn append(&mut self, data: &[u8]) {
        self.add(self.next, data);
    }

    /// The finished operation.
    pub fn finish(self, channel: u32, op: &str, path: String) -> FileOp {
        let sha256 = self.in_order.then(|| {
            self.digest
                .finish()
                .as_ref()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect()
        });
        FileOp {
            channel,
            op: op.to_string(),
            path,
            bytes: self.bytes,
            sha256,
            ..FileOp::default()
        }
    }
}

/// `path` made absolute against `home` (when known), with `.`, `..` and repeated slashes
/// resolved.
pub(crate) fn resolve(home: Option<&str>, path: &str) -> String {
    let joined;
    let full = match home {
        Some(h) if !path.starts_with('/') => {
            joined = format!("{h}/{path}");
            joined.as_str()
        }
        _ => path,
    };
    if !full.starts_with('/') {
        return full.to_string();
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in full.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests;
