//! Password scrambles the gateway computes when it logs in to a target with the credentials
//! it holds. Clients never get a scramble checked: their token arrives in full over TLS.

use ring::digest::{digest, Context, SHA1_FOR_LEGACY_USE_ONLY, SHA256};

/// The plugin the gateway asks clients to use: its "full authentication" sends the password
/// (the token) itself, which the gateway accepts only over TLS.
pub const CACHING_SHA2: &str = "caching_sha2_password";
/// The legacy plugin most MariaDB accounts use.
pub const NATIVE: &str = "mysql_native_password";
/// The password in clear text (only ever sent over TLS or to a loopback target).
pub const CLEAR: &str = "mysql_clear_password";

/// `caching_sha2_password` AuthMoreData: the fast path succeeded.
pub const FAST_AUTH_OK: u8 = 3;
/// `caching_sha2_password` AuthMoreData: send the password in full.
pub const FULL_AUTH: u8 = 4;

/// `mysql_native_password`: SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))); empty for no password.
pub fn native_password(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = digest(&SHA1_FOR_LEGACY_USE_ONLY, password);
    let h2 = digest(&SHA1_FOR_LEGACY_USE_ONLY, h1.as_ref());
    let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&nonce[..nonce.len().min(20)]);
    ctx.update(h2.as_ref());
    let h3 = ctx.finish();
    xor(h1.as_ref(), h3.as_ref())
}

/// `caching_sha2_password` fast path: SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce).
pub fn caching_sha2(password: &[u8], nonce: &[u8]) -> Vec<u8> {
    if password.is_empty() {
        return Vec::new();
    }
    let h1 = digest(&SHA256, password);
    let h2 = digest(&SHA256, h1.as_ref());
    let mut ctx = Context::new(&SHA256);
    ctx.update(h2.as_ref());
    ctx.update(&nonce[..nonce.len().min(20)]);
    let h3 = ctx.finish();
    xor(h1.as_ref(), h3.as_ref())
}

fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The server's check for mysql_native_password: SHA1(nonce + stored) XOR answer must
    /// hash to the stored SHA1(SHA1(pw)).
    #[test]
    fn native_password_passes_the_servers_check() {
        let nonce: Vec<u8> = (0..20).map(|i| i * 7 + 1).collect();
        let answer = native_password(b"secret", &nonce);
        let stored = digest(
            &SHA1_FOR_LEGACY_USE_ONLY,
            digest(&SHA1_FOR_LEGACY_USE_ONLY, b"secret").as_ref(),
        );
        let mut ctx = Context::new(&SHA1_FOR_LEGACY_USE_ONLY);
        ctx.update(&nonce);
        ctx.update(stored.as_ref());
        let candidate = xor(ctx.finish().as_ref(), &answer);
        assert_eq!(
            digest(&SHA1_FOR_LEGACY_USE_ONLY, &candidate).as_ref(),
            stored.as_ref()
        );
        assert!(native_password(b"", &nonce).is_empty());
    }

    /// The server's check for caching_sha2_password's fast path.
    #[test]
    fn caching_sha2_passes_the_servers_check() {
        let nonce: Vec<u8> = (0..20).collect();
        let answer = caching_sha2(b"pw", &nonce);
        let stored = digest(&SHA256, digest(&SHA256, b"pw").as_ref());
        let mut ctx = Context::new(&SHA256);
        ctx.update(stored.as_ref());
        ctx.update(&nonce);
        let candidate = xor(ctx.finish().as_ref(), &answer);
        assert_eq!(digest(&SHA256, &candidate).as_ref(), stored.as_ref());
    }
}
