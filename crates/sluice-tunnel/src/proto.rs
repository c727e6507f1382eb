//! What crosses the wire between agent and gateway, besides HTTP/2 itself.

use base64::Engine;
use ring::signature::{UnparsedPublicKey, ED25519};

/// The API path an agent upgrades to a tunnel.
pub const TUNNEL_PATH: &str = "/api/v1/agents/tunnel";
/// The API path an agent enrolls at.
pub const ENROLL_PATH: &str = "/api/v1/agents/enroll";
/// The `Upgrade` protocol token.
pub const UPGRADE: &str = "sluice-tunnel/1";
/// Request header: the agent's name.
pub const HEADER_NAME: &str = "sluice-agent";
/// Request header: the agent's version.
pub const HEADER_VERSION: &str = "sluice-agent-version";
/// Request header: base64 Ed25519 signature of [`signed_message`].
pub const HEADER_SIGNATURE: &str = "sluice-agent-signature";
/// The path of the request the gateway sends once a tunnel is registered.
pub const HELLO_PATH: &str = "/hello";
/// TLS exporter label (RFC 5705/8446) binding the proof to one TLS connection.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-sluice-agent-tunnel";

/// Keying material both ends derive from their TLS connection.
pub type Binding = [u8; 32];

/// `host:port`, with an IPv6 address in brackets (the form `CONNECT` and `Host` take).
pub fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// What the agent signs: a domain tag, its name and the TLS connection's exporter value.
pub fn signed_message(name: &str, binding: &Binding) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + name.len() + binding.len());
    m.extend_from_slice(b"sluice-agent-tunnel-v1\0");
    m.extend_from_slice(name.as_bytes());
    m.push(0);
    m.extend_from_slice(binding);
    m
}

/// The exporter value of a TLS connection (client or server side).
pub fn binding<D>(conn: &rustls::ConnectionCommon<D>) -> Option<Binding> {
    conn.export_keying_material([0u8; 32], EXPORTER_LABEL, None)
        .ok()
}

/// True when `signature` (base64) is `public_key`'s Ed25519 signature of the proof for
/// `name` on the connection with `binding`.
pub fn verify(public_key: &[u8], name: &str, binding: &Binding, signature: &str) -> bool {
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    UnparsedPublicKey::new(&ED25519, public_key)
        .verify(&signed_message(name, binding), &sig)
        .is_ok()
}

/// Encodes a public key for people and the API (base64).
pub fn encode_key(key: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// Decodes a public key given as base64 (32 bytes), or as an OpenSSH-style line whose
/// second field is base64.
pub fn decode_key(text: &str) -> Option<Vec<u8>> {
    let field = text.split_whitespace().find(|f| f.len() >= 43)?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(field)
        .ok()?;
    (key.len() == 32).then_some(key)
}

/// The `CONNECT` authority of a stream on which the agent runs a program instead of dialing a
/// destination (a reserved name, RFC 6761 `.invalid`, that no allow-list entry can match).
pub const EXEC_AUTHORITY: &str = "exec.sluice.invalid:1";

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{Ed25519KeyPair, KeyPair};

    #[test]
    fn proof_is_bound_to_name_and_connection() -> Result<(), Box<dyn std::error::Error>> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)?;
        let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())?;
        let binding = [9u8; 32];
        let sig = encode_key(key.sign(&signed_message("edge", &binding)).as_ref());
        let public = key.public_key().as_ref();
        assert!(verify(public, "edge", &binding, &sig));
        assert!(!verify(public, "other", &binding, &sig));
        assert!(!verify(public, "edge", &[8u8; 32], &sig));
        assert!(!verify(public, "edge", &binding, "not base64!"));
        assert_eq!(decode_key(&encode_key(public)).as_deref(), Some(public));
        assert_eq!(decode_key("short"), None);
        Ok(())
    }
}
