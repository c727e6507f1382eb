use super::*;

#[test]
fn a_manifest_verifies_with_the_public_key_only() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!(
        "sluice-key-{}",
        hex(&crate::crypto::random_bytes::<6>())
    ));
    let key = SigningKey::load_or_create(&dir)?;
    let again = SigningKey::load_or_create(&dir)?;
    assert_eq!(key.public_hex, again.public_hex, "the key persists");
    let m = manifest("s", "alice", "pg", 1, 2, 3, "ab");
    let sig = key.sign(m.as_bytes());
    assert!(verify(&key.public_hex, m.as_bytes(), &sig));
    let edited = manifest("s", "alice", "pg", 1, 2, 2, "ab");
    assert!(!verify(&key.public_hex, edited.as_bytes(), &sig));
    let other = SigningKey::load_or_create(&dir.join("other"))?;
    assert!(!verify(&other.public_hex, m.as_bytes(), &sig));
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

#[test]
fn keys_from_files_and_the_environment_load_in_pem_base64_and_der(
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join(format!(
        "sluice-keysrc-{}",
        hex(&crate::crypto::random_bytes::<6>())
    ));
    let generated = SigningKey::load_or_create(&dir)?;
    let der = std::fs::read(dir.join("ed25519.pk8"))?;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    for (name, body) in [("k.der", der.clone()), ("k.pem", pem.clone().into_bytes())] {
        let path = dir.join(name);
        std::fs::write(&path, body)?;
        let k = SigningKey::load(&KeySource::File(path))?;
        assert_eq!(k.public_hex, generated.public_hex, "{name}");
    }
    let var = format!("SLUICE_UNIT_KEY_{}", std::process::id());
    std::env::set_var(&var, &b64);
    let k = SigningKey::load(&KeySource::Env(var.clone()))?;
    assert_eq!(k.key_id, generated.key_id);
    std::env::set_var(&var, "not a key");
    let err = SigningKey::load(&KeySource::Env(var.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("${var} is not an Ed25519 PKCS#8 key")),
        "{err}"
    );
    std::env::remove_var(&var);
    let err = SigningKey::load(&KeySource::Env(var.clone()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not set"), "{err}");
    let err = SigningKey::load(&KeySource::File(dir.join("missing.pem")))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing.pem"), "{err}");
    // A key from the config is not rotated by the gateway.
    let ring = KeyRing::load(KeySource::File(dir.join("k.pem")))?;
    assert!(matches!(ring.rotate(), Err(StoreError::Refused(_))));
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
