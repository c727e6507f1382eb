use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn cfg(json: &str) -> Result<ProviderConfig, serde_json::Error> {
    serde_json::from_str(json)
}

#[test]
fn claims_map_to_an_identity_with_rules() -> TestResult {
    let c = cfg(
        r#"{"name":"corp","issuer":"https://idp","audience":"sluice",
        "rules":[{"match":{"repository":"acme/api","ref":"refs/heads/main"},"name":"ci-api","groups":["deploy"]}]}"#,
    )?;
    let claims: Map<String, Value> = serde_json::from_str(
        r#"{"sub":"repo:acme/api","repository":"acme/api","ref":"refs/heads/main","groups":"a b a"}"#,
    )?;
    let id = identity(&c, "https://idp", &claims)?;
    assert_eq!(id.name, "ci-api");
    assert_eq!(id.groups, ["a", "b", "deploy"]);
    assert_eq!(id.kind, IdentityKind::Machine);
    assert_eq!(id.subject.as_deref(), Some("repo:acme/api"));
    let other: Map<String, Value> =
        serde_json::from_str(r#"{"sub":"svc","repository":"acme/web","groups":["x"]}"#)?;
    let id = identity(&c, "https://idp", &other)?;
    assert_eq!(id.name, "corp:svc");
    assert_eq!(id.groups, ["x"]);
    Ok(())
}

#[test]
fn hmac_and_none_cannot_be_configured() -> TestResult {
    let c =
        cfg(r#"{"name":"corp","issuer":"https://idp","audience":["a"],"algorithms":["HS256"]}"#)?;
    assert!(c.validate().unwrap_err().contains("HS256"));
    let c =
        cfg(r#"{"name":"corp","issuer":"https://idp","audience":["a"],"algorithms":["none"]}"#)?;
    assert!(c.validate().is_err());
    Ok(())
}

#[test]
fn only_three_part_eyj_credentials_are_jwts() {
    assert!(looks_like_jwt("eyJa.eyJb.c"));
    assert!(!looks_like_jwt("slc_0123"));
    assert!(!looks_like_jwt("eyJa.b"));
}
