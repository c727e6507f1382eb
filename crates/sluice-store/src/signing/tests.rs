use super::*;

#[test]
fn a_manifest_verifies_with_the_public_key_only() {
    let dir = std::env::temp_dir().join(format!(
        "sluice-key-{}",
        hex(&crate::crypto::random_bytes::<6>())
    ));
    let key = SigningKey::load_or_create(&dir).unwrap();
    let again = SigningKey::load_or_create(&dir).unwrap();
    assert_eq!(key.public_hex, again.public_hex, "the key persists");
    let m = manifest("s", "alice", "pg", 1, 2, 3, "ab");
    let sig = key.sign(m.as_bytes());
    assert!(verify(&key.public_hex, m.as_bytes(), &sig));
    let edited = manifest("s", "alice", "pg", 1, 2, 2, "ab");
    assert!(!verify(&key.public_hex, edited.as_bytes(), &sig));
    let other = SigningKey::load_or_create(&dir.join("other")).unwrap();
    assert!(!verify(&other.public_hex, m.as_bytes(), &sig));
    let _ = std::fs::remove_dir_all(dir);
}
