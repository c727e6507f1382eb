//! Machines authenticate with JWTs from a real OpenID Provider (npm `oidc-provider`): a
//! client-credentials access token is the psql password; tokens that are expired, early, for
//! another audience or issuer, unsigned, HMAC-signed with the public key, signed with an
//! unknown or foreign key, or tampered with are refused with a clear error and audited; the
//! provider rotating its key is followed.

mod common;

use common::oidc::{Provider, AUDIENCE};
use common::{Gateway, TestDb};
use serde_json::{json, Value};
use std::process::Output;

fn start(op: &Provider) -> (TestDb, Gateway) {
    let db = TestDb::new();
    let extra = format!(
        "identity_providers:\n  - name: corp\n    issuer: {}\n    audience: {AUDIENCE}\n    algorithms: [RS256]\n",
        op.issuer
    );
    let gw = Gateway::start(&common::config(&db, &extra));
    (db, gw)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn a_client_credentials_jwt_is_the_password() {
    let op = Provider::start();
    let (_db, gw) = start(&op);
    let token = op.client_credentials("ci-runner");

    let out = gw.psql(&token, "select 'via-jwt'");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "via-jwt");

    // The recording names the machine, its issuer and subject, and its groups then.
    let identity = gw.recorded_identity("pg");
    assert_eq!(identity["name"], "corp:ci-runner");
    assert_eq!(identity["kind"], "machine");
    assert_eq!(identity["subject"], "ci-runner");
    assert_eq!(identity["issuer"], op.issuer.as_str());
    assert_eq!(identity["groups"], json!(["engineering"]));

    // A client whose token carries no granted group gets no access.
    let other = op.client_credentials("other-app");
    let refused = gw.psql(&other, "select 1");
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("has no grant"),
        "{}",
        stderr(&refused)
    );

    // The same JWT works on the REST API.
    let me = gw.cli_as(&token, &["reviews", "list", "--json"]);
    assert!(me.status.success(), "{}", stderr(&me));

    // Machines can be blocked like any identity.
    let listed = gw.cli_ok(&["identities", "list"]);
    assert!(listed.contains("corp:ci-runner"), "{listed}");
    gw.cli_ok(&[
        "identities",
        "block",
        "corp:ci-runner",
        "--reason",
        "leaked",
    ]);
    let blocked = gw.psql(&op.client_credentials("ci-runner"), "select 1");
    assert!(!blocked.status.success());
    assert!(stderr(&blocked).contains("blocked"), "{}", stderr(&blocked));
}

#[test]
fn bad_tokens_are_refused_with_the_reason_and_audited() {
    let op = Provider::start();
    let (_db, gw) = start(&op);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = |extra: Value| {
        let mut c = json!({ "sub": "ci-runner", "groups": ["engineering"] });
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    // Sanity: a token the harness signs with the provider's key and sane claims is accepted,
    // so each refusal below is caused by the one thing changed.
    let good = op.sign(claims(json!({})), json!({}), "current");
    assert!(gw.psql(&good, "select 1").status.success());
    // Clocks disagree a little: within the tolerance (60 s by default) a token just expired or
    // not quite valid yet is accepted.
    let skewed_exp = op.sign(claims(json!({ "exp": now - 20 })), json!({}), "current");
    assert!(gw.psql(&skewed_exp, "select 1").status.success());
    let skewed_nbf = op.sign(claims(json!({ "nbf": now + 20 })), json!({}), "current");
    assert!(gw.psql(&skewed_nbf, "select 1").status.success());

    let mut tampered = {
        // The signed claims with one more group, the signature kept.
        let parts: Vec<&str> = good.split('.').collect();
        let mut payload: Value =
            serde_json::from_slice(&base64_url::decode(parts[1]).unwrap()).unwrap();
        payload["groups"] = json!(["engineering", "admin"]);
        format!(
            "{}.{}.{}",
            parts[0],
            base64_url::encode(&payload.to_string()),
            parts[2]
        )
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            op.sign(claims(json!({ "exp": now - 3600 })), json!({}), "current"),
            "token expired",
        ),
        (
            "not yet valid",
            op.sign(claims(json!({ "nbf": now + 3600 })), json!({}), "current"),
            "token not yet valid",
        ),
        (
            "wrong audience",
            op.sign(
                claims(json!({ "aud": "urn:someone-else" })),
                json!({}),
                "current",
            ),
            "token audience is not this gateway",
        ),
        (
            "wrong issuer",
            op.sign(
                claims(json!({ "iss": "https://evil.example" })),
                json!({}),
                "current",
            ),
            "token issuer \"https://evil.example\" is not trusted",
        ),
        (
            "alg none",
            op.sign(claims(json!({})), json!({}), "none"),
            "token algorithm \"none\" is not allowed",
        ),
        (
            "HS256 keyed with the public key",
            op.sign(claims(json!({})), json!({}), "hs256-public"),
            "token algorithm \"HS256\" is not allowed",
        ),
        (
            "unknown kid",
            op.sign(
                claims(json!({})),
                json!({ "kid": "not-published" }),
                "current",
            ),
            "token signed with unknown key \"not-published\"",
        ),
        (
            "foreign key, published kid",
            op.sign(claims(json!({})), json!({}), "foreign"),
            "token signature is invalid",
        ),
        (
            "tampered claims",
            std::mem::take(&mut tampered),
            "token signature is invalid",
        ),
        (
            "no exp",
            op.sign(claims(json!({ "exp": null })), json!({}), "current"),
            "token lacks claim \"exp\"",
        ),
    ];
    for (what, token, message) in &cases {
        let out = gw.psql(token, "select 1");
        assert!(!out.status.success(), "{what} was accepted");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("password authentication failed: {message}")),
            "{what}: {err}"
        );
        gw.wait_audit(what, |e| {
            e["action"] == "auth.connect"
                && e["outcome"] == "failure"
                && e["reason"].as_str().is_some_and(|r| r.ends_with(message))
        });
    }
    // The gateway is unharmed and a good token still works.
    assert!(gw
        .psql(&op.client_credentials("ci-runner"), "select 1")
        .status
        .success());
    // No token reached the audit log or the gateway log.
    let audit = gw.audit_file();
    let log = gw.log();
    for (what, token, _) in &cases {
        let signature = token.rsplit('.').next().unwrap_or_default();
        if signature.len() > 10 {
            assert!(!audit.contains(signature), "{what}: token in the audit log");
            assert!(!log.contains(signature), "{what}: token in the gateway log");
        }
    }
}

#[test]
fn a_rotated_signing_key_is_fetched_when_first_seen() {
    let op = Provider::start();
    let (_db, gw) = start(&op);
    let before = op.client_credentials("ci-runner");
    assert!(gw.psql(&before, "select 1").status.success());
    let kid = op.rotate();
    let after = op.client_credentials("ci-runner");
    let header: Value =
        serde_json::from_slice(&base64_url::decode(after.split('.').next().unwrap()).unwrap())
            .unwrap();
    assert_eq!(
        header["kid"],
        kid.as_str(),
        "the provider signs with the new key"
    );
    let out = gw.psql(&after, "select 1");
    assert!(out.status.success(), "{}", stderr(&out));
    // The old key is still published, so tokens signed before the rotation stay valid.
    assert!(gw.psql(&before, "select 1").status.success());
}

/// base64url without padding, for reading and forging token parts in tests.
mod base64_url {
    use base64::Engine;

    pub fn encode(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    pub fn decode(s: &str) -> Result<Vec<u8>, base64::DecodeError> {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(s)
    }
}

#[test]
fn a_jwt_is_exchanged_for_a_short_lived_revocable_gateway_token() {
    let op = Provider::start();
    let (_db, gw) = start(&op);
    let jwt = op.client_credentials("ci-runner");
    let out = gw.cli_as(&jwt, &["token", "exchange", "--subject-token", &jwt]);
    assert!(out.status.success(), "{}", stderr(&out));
    let token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(token.starts_with("slc_"), "{token}");

    let ok = gw.psql(&token, "select 'exchanged'");
    assert!(ok.status.success(), "{}", stderr(&ok));
    let identity = gw.recorded_identity("pg");
    assert_eq!(identity["name"], "corp:ci-runner");
    assert_eq!(identity["kind"], "machine");
    assert_eq!(identity["groups"], json!(["engineering"]));

    // It lives for the provider's token TTL (default one hour) and can be revoked.
    let tokens: Vec<Value> =
        serde_json::from_str(&gw.cli_ok(&["tokens", "list", "--json"])).unwrap();
    let t = tokens
        .iter()
        .find(|t| t["identity"] == "corp:ci-runner")
        .expect("the exchanged token is listed");
    assert_eq!(
        t["expires_us"].as_i64().unwrap() - t["created_us"].as_i64().unwrap(),
        3_600_000_000
    );
    gw.cli_ok(&["tokens", "revoke", t["id"].as_str().unwrap()]);
    let revoked = gw.psql(&token, "select 1");
    assert!(
        stderr(&revoked).contains("token revoked"),
        "{}",
        stderr(&revoked)
    );

    // Only a valid JWT from a trusted provider can be exchanged.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let expired = op.sign(
        json!({ "sub": "ci-runner", "exp": now - 3600 }),
        json!({}),
        "current",
    );
    let out = gw.cli_as(
        &expired,
        &["token", "exchange", "--subject-token", &expired],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid_grant: authentication failed: token expired"),
        "{}",
        stderr(&out)
    );
    let out = gw.cli_as(&token, &["token", "exchange", "--subject-token", &token]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("must be a JWT"), "{}", stderr(&out));
    gw.wait_audit("token.exchange failure", |e| {
        e["action"] == "token.exchange" && e["outcome"] == "failure"
    });
}
