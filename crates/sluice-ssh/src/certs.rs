//! The gateway's SSH user CA: short-lived OpenSSH user certificates for identities
//! (`sluice ssh-cert`), and their check at login. A certificate names its identity in its key
//! id and only principal; it is accepted while valid, signed by this CA, for a user.

use crate::keys;
use russh::keys::ssh_key::certificate::{Builder, CertType};
use russh::keys::{Certificate, HashAlg, PrivateKey, PublicKey};
use std::time::Duration;

/// Longest validity a certificate may be issued with.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// Validity when none is asked for.
pub const DEFAULT_TTL: Duration = Duration::from_secs(8 * 3600);
/// Clock skew allowed between the gateway and the client's view of `valid_after`.
const BACKDATE: u64 = 60;

/// Why a certificate could not be issued or was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CertError {
    #[error("the certificate is not signed by this gateway's SSH CA")]
    UnknownCa,
    #[error("the certificate's signature does not verify")]
    BadSignature,
    #[error("the certificate expired at {0} (Unix time)")]
    Expired(u64),
    #[error("the certificate is not valid before {0} (Unix time)")]
    NotYetValid(u64),
    #[error("not a user certificate")]
    NotUser,
    #[error("the certificate names no single identity")]
    NoIdentity,
    #[error("the certificate has critical options the gateway does not enforce: {0}")]
    CriticalOptions(String),
    #[error("cannot issue the certificate: {0}")]
    Issue(String),
}

/// Signs a user certificate for `identity` over `key`, valid from now for `ttl`.
pub fn issue(
    ca: &PrivateKey,
    key: &PublicKey,
    identity: &str,
    ttl: Duration,
    now: u64,
) -> Result<Certificate, CertError> {
    let spec = Spec {
        key_id: identity,
        principal: identity,
        extensions: &["permit-pty", "permit-port-forwarding"],
        comment: format!("sluice {identity}"),
    };
    sign(ca, key, &spec, ttl.min(MAX_TTL), now)
}

/// How long the gateway's login certificate toward a target is valid: only the login needs it.
pub const TARGET_TTL: Duration = Duration::from_secs(120);

/// Signs the gateway's own login certificate toward a target, for `login` there. Its key id
/// names the identity and connection, so the target's own log (`sshd`: "ID …") says who
/// the gateway logged in for. Agent forwarding is permitted only when the connection allows it.
pub fn issue_for_target(
    target_ca: &PrivateKey,
    gateway_key: &PublicKey,
    login: &str,
    identity: &str,
    connection: &str,
    agent_forwarding: bool,
    now: u64,
) -> Result<Certificate, CertError> {
    let mut extensions = vec!["permit-pty", "permit-port-forwarding"];
    if agent_forwarding {
        extensions.push("permit-agent-forwarding");
    }
    let key_id = format!("sluice identity={identity} connection={connection}");
    let spec = Spec {
        key_id: &key_id,
        principal: login,
        extensions: &extensions,
        comment: "sluice gateway".into(),
    };
    sign(target_ca, gateway_key, &spec, TARGET_TTL, now)
}

/// What a certificate says besides its key and validity.
struct Spec<'a> {
    key_id: &'a str,
    principal: &'a str,
    extensions: &'a [&'a str],
    comment: String,
}

fn sign(
    ca: &PrivateKey,
    key: &PublicKey,
    spec: &Spec<'_>,
    ttl: Duration,
    now: u64,
) -> Result<Certificate, CertError> {
    let issue = |e: russh::keys::ssh_key::Error| CertError::Issue(e.to_string());
    let mut nonce = [0u8; 32];
    let mut serial = [0u8; 8];
    let rng = ring::rand::SystemRandom::new();
    ring::rand::SecureRandom::fill(&rng, &mut nonce)
        .and_then(|()| ring::rand::SecureRandom::fill(&rng, &mut serial))
        .map_err(|_| CertError::Issue("no randomness".into()))?;
    let mut b = Builder::new(
        nonce.to_vec(),
        key.key_data().clone(),
        now.saturating_sub(BACKDATE),
        now + ttl.as_secs(),
    )
    .map_err(issue)?;
    b.serial(u64::from_be_bytes(serial))
        .and_then(|b| b.key_id(spec.key_id))
        .and_then(|b| b.cert_type(CertType::User))
        .and_then(|b| b.valid_principal(spec.principal))
        .and_then(|b| b.comment(spec.comment.clone()))
        .map_err(issue)?;
    for name in spec.extensions {
        b.extension(*name, "").map_err(issue)?;
    }
    b.sign(ca).map_err(issue)
}

/// The identity a certificate logs in, if the certificate is acceptable at `now`.
pub fn check(ca: &PublicKey, cert: &Certificate, now: u64) -> Result<String, CertError> {
    if cert.signature_key().fingerprint(HashAlg::Sha256) != ca.fingerprint(HashAlg::Sha256) {
        return Err(CertError::UnknownCa);
    }
    cert.verify_signature()
        .map_err(|_| CertError::BadSignature)?;
    if now >= cert.valid_before() {
        return Err(CertError::Expired(cert.valid_before()));
    }
    if now < cert.valid_after() {
        return Err(CertError::NotYetValid(cert.valid_after()));
    }
    if cert.cert_type() != CertType::User {
        return Err(CertError::NotUser);
    }
    if !cert.critical_options().is_empty() {
        let names: Vec<&str> = cert.critical_options().keys().map(String::as_str).collect();
        return Err(CertError::CriticalOptions(names.join(", ")));
    }
    match cert.valid_principals() {
        [one] if one == cert.key_id() && !one.is_empty() => Ok(one.clone()),
        _ => Err(CertError::NoIdentity),
    }
}

/// A certificate as one line (`ssh-ed25519-cert-v01@openssh.com AAAA… comment`), what
/// OpenSSH reads from `id_ed25519-cert.pub`.
pub fn certificate_line(cert: &Certificate) -> String {
    cert.to_openssh().unwrap_or_default()
}

/// `SHA256:…` of the certified key, for the audit trail.
pub fn certified_fingerprint(cert: &Certificate) -> String {
    keys::fingerprint(&PublicKey::from(cert.public_key().clone()))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    fn key(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    #[test]
    fn an_issued_certificate_logs_in_its_identity_while_valid(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (ca, user) = (key(1), key(2));
        let now = 1_800_000_000;
        let cert = issue(
            &ca,
            user.public_key(),
            "eng-1",
            Duration::from_secs(3600),
            now,
        )?;
        assert_eq!(check(ca.public_key(), &cert, now).as_deref(), Ok("eng-1"));
        assert_eq!(
            check(ca.public_key(), &cert, now + 3600),
            Err(CertError::Expired(now + 3600))
        );
        assert_eq!(
            check(ca.public_key(), &cert, now - 120),
            Err(CertError::NotYetValid(now - 60))
        );
        assert_eq!(
            check(key(3).public_key(), &cert, now),
            Err(CertError::UnknownCa)
        );
        assert!(certificate_line(&cert).starts_with("ssh-ed25519-cert-v01@openssh.com "));
        assert_eq!(
            certified_fingerprint(&cert),
            keys::fingerprint(user.public_key())
        );
        Ok(())
    }

    #[test]
    fn validity_is_capped() -> Result<(), Box<dyn std::error::Error>> {
        let (ca, user) = (key(1), key(2));
        let cert = issue(
            &ca,
            user.public_key(),
            "x",
            Duration::from_secs(999_999),
            100,
        )?;
        assert_eq!(cert.valid_before(), 100 + MAX_TTL.as_secs());
        Ok(())
    }

    #[test]
    fn a_target_certificate_names_the_login_and_who_it_is_for(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let (target_ca, gateway) = (key(4), key(5));
        let now = 1_800_000_000;
        let cert = issue_for_target(
            &target_ca,
            gateway.public_key(),
            "root",
            "eng-1",
            "web",
            false,
            now,
        )?;
        assert_eq!(cert.valid_principals(), ["root".to_string()]);
        assert_eq!(cert.key_id(), "sluice identity=eng-1 connection=web");
        assert_eq!(cert.valid_before(), now + TARGET_TTL.as_secs());
        assert!(!cert.extensions().contains_key("permit-agent-forwarding"));
        let with_agent = issue_for_target(
            &target_ca,
            gateway.public_key(),
            "root",
            "eng-1",
            "web",
            true,
            now,
        )?;
        assert!(with_agent
            .extensions()
            .contains_key("permit-agent-forwarding"));
        // It never logs anybody in to the gateway itself.
        assert_eq!(
            check(target_ca.public_key(), &cert, now),
            Err(CertError::NoIdentity)
        );
        Ok(())
    }
}
