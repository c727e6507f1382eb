//! Who reaches HTTP connections and how: a person signing in through the identity provider in
//! headless Chromium, the browser cookie's origin rule, a blocked identity, machines with an
//! identity provider's JWT through an agent, and services that speak HTTPS.

mod common;

use common::http::*;
use common::oidc::Provider;
use common::{unique, Gateway};
use serde_json::Value;
use std::path::Path;
use std::process::Command;

#[test]
fn a_blocked_identity_loses_access_at_once() {
    let s = setup();
    let (status, _, _) = curl(
        &s.gw,
        &["-H", &bearer(&s.alice), &url(&s.gw, "/app/whoami")],
    );
    assert_eq!(status, 200);
    let name = s.gw.cli_ok(&["identities", "list", "--json"]);
    let list: Vec<Value> = serde_json::from_str(&name).unwrap();
    let alice = list
        .iter()
        .find(|i| i["name"].as_str().unwrap().starts_with("alice_"))
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_string();
    s.gw.cli_ok(&["identities", "block", &alice, "--reason", "incident"]);
    let (status, _, body) = curl(
        &s.gw,
        &["-H", &bearer(&s.alice), &url(&s.gw, "/app/whoami")],
    );
    assert_eq!(status, 401, "{body}");
}

#[test]
fn a_person_signs_in_through_the_identity_provider_in_a_browser() {
    let op = Provider::start();
    let s = setup_with(&format!(
        "identity_providers:\n  - name: corp\n    issuer: {}\n    audience: urn:sluice:gateway\n    login:\n      client_id: sluice-cli\n      scopes: [openid, profile]\n",
        op.issuer
    ));
    let page = url(&s.gw, "/app/whoami").replace("localhost", "127.0.0.1");
    let out = Command::new("node")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc/web_login.mjs"))
        .args([page.as_str(), "alice"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(&out.stdout).unwrap();
    for visit in ["first", "second"] {
        let seen: Value = serde_json::from_str(result[visit].as_str().unwrap())
            .unwrap_or_else(|_| panic!("{result}"));
        assert_eq!(seen["headers"]["x-forwarded-user"], "alice", "{visit}");
        assert_eq!(seen["headers"]["x-api-key"], SERVICE_KEY);
        // The provider's own cookies share the host (cookies ignore ports); the gateway's
        // session cookie never reaches the service.
        let cookie = seen["headers"]["cookie"].as_str().unwrap_or_default();
        assert!(!cookie.contains("sluice_session"), "{cookie}");
    }
    let cookies = result["cookies"].as_array().unwrap();
    let cookie = cookies
        .iter()
        .find(|c| c["name"] == "sluice_session")
        .unwrap();
    assert_eq!(cookie["path"], "/app");
    assert_eq!(cookie["secure"], true);
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Lax");
    s.gw.wait_audit("the browser sign-in", |e| {
        e["action"] == "auth.login" && e["outcome"] == "success" && e["connection"] == "app"
    });
}

#[test]
fn a_service_is_reached_through_an_agent_and_by_identity_provider_tokens() {
    let op = Provider::start();
    let svc = Service::start();
    let dir = std::env::temp_dir().join(unique("sluice-http-agent"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("service-key");
    std::fs::write(&key, SERVICE_KEY).unwrap();
    let extra = format!(
        "identity_providers:\n  - name: corp\n    issuer: {}\n    audience: {}\n    groups_claim: groups\n",
        op.issuer,
        common::oidc::AUDIENCE
    );
    let config = config(svc.port, &key, &extra).replace(
        "  - name: internal\n",
        &format!(
            "  - name: edge-app\n    type: http\n    host: 127.0.0.1\n    port: {}\n    via: edge\n    http: {{ path_prefix: /edge }}\n  - name: internal\n",
            svc.port
        ),
    )
    .replace(
        "  - { group: engineering, connection: gone }\n",
        "  - { group: engineering, connection: gone }\n  - { group: engineering, connection: edge-app }\n",
    );
    let gw = Gateway::start_in(dir, &config);
    let enroll = gw.cli_ok(&["agents", "add", "edge"]).trim().to_string();
    let state = std::env::temp_dir().join(unique("sluice-agent-state"));
    let mut agent = common::private_net::AgentProc::start(
        None,
        &[&gw],
        &state,
        &[format!("127.0.0.1:{}", svc.port)],
        &["--token", &enroll],
    );
    agent.wait_up(1);
    // A machine's JWT from the identity provider, as the bearer token.
    let jwt = op.client_credentials("ci-runner");
    let (status, _, body) = curl(&gw, &["-H", &bearer(&jwt), &url(&gw, "/edge/whoami")]);
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/whoami");
    assert_eq!(seen["headers"]["x-forwarded-user"], "corp:ci-runner");
    let session = gw.wait_ended_session("edge-app");
    let start = gw
        .events(&session)
        .into_iter()
        .find(|e| e["kind"] == "start")
        .unwrap();
    assert_eq!(
        start["target"],
        format!("http://127.0.0.1:{} via agent edge", svc.port)
    );
}

#[test]
fn the_browser_cookie_acts_only_from_the_services_own_origin() {
    let s = setup();
    let cookie = format!("Cookie: sluice_session={}", s.alice);
    let target = url(&s.gw, "/app/upload");
    // A page of another site posting with the person's cookie.
    let (status, _, body) = curl(
        &s.gw,
        &[
            "-X",
            "POST",
            "-H",
            &cookie,
            "-H",
            "Origin: https://evil.example",
            "-d",
            "x",
            &target,
        ],
    );
    assert_eq!(status, 403, "{body}");
    // The service's own pages may.
    let own = format!("Origin: https://localhost:{}", s.gw.api.port());
    let (status, _, body) = curl(
        &s.gw,
        &["-X", "POST", "-H", &cookie, "-H", &own, "-d", "x", &target],
    );
    assert_eq!(status, 200, "{body}");
    // Reads need no origin; a service cannot plant the gateway's cookie.
    let (status, _, _) = curl(&s.gw, &["-H", &cookie, &url(&s.gw, "/app/whoami")]);
    assert_eq!(status, 200);
    assert_eq!(s.svc.calls(), ["POST /upload", "GET /whoami"]);
}

#[test]
fn an_https_service_is_verified_against_its_ca() {
    let dir = std::env::temp_dir().join(unique("sluice-https-svc"));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key, ca) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "subjectAltName=DNS:svc.internal\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(&dir)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A CA of the test's, and the service's certificate from it.
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-days",
                "1",
                "-subj",
                "/CN=test-ca",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
            ],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &[
                "-subj",
                "/CN=svc.internal",
                "-keyout",
                "key.pem",
                "-out",
                "req.csr",
            ],
        ]
        .concat(),
    );
    openssl(&[
        "x509",
        "-req",
        "-in",
        "req.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
        "-out",
        "cert.pem",
    ]);
    let svc = Service::start_with(&["--tls", cert.to_str().unwrap(), key.to_str().unwrap()]);
    let config = format!(
        r#"listeners:
  postgres:
    address: 127.0.0.1:0
  api:
    address: 127.0.0.1:0
connections:
  - name: secure
    type: http
    host: 127.0.0.1
    port: {port}
    http: {{ path_prefix: /secure, tls: true, ca_file: {ca}, server_name: svc.internal }}
  - name: untrusted
    type: http
    host: 127.0.0.1
    port: {port}
    http: {{ path_prefix: /untrusted, tls: true }}
grants:
  - {{ group: engineering, connection: secure }}
  - {{ group: engineering, connection: untrusted }}
"#,
        port = svc.port,
        ca = ca.display(),
    );
    let gw = Gateway::start_in(dir, &config);
    let token = gw.service_account("engineering");
    let (status, _, body) = curl(&gw, &["-H", &bearer(&token), &url(&gw, "/secure/whoami")]);
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["path"], "/whoami");
    // A certificate the system's CAs do not vouch for is refused.
    let (status, _, body) = curl(
        &gw,
        &["-H", &bearer(&token), &url(&gw, "/untrusted/whoami")],
    );
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("TLS to the service failed"), "{body}");
    assert_eq!(svc.calls(), ["GET /whoami"]);
}
