//! A real OpenID Provider for tests: npm `oidc-provider` run by `tests/oidc/provider.mjs`
//! (installed by ./test.sh with `npm ci`), on a free loopback port, stopped on drop.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// The running provider.
pub struct Provider {
    child: Child,
    /// Its issuer URL.
    pub issuer: String,
    agent: ureq::Agent,
}

fn harness_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/oidc")
}

/// Runs the harness `script` that plays `user` at `url`; panics with its output on failure.
fn play_person(script: &str, url: &str, user: &str) {
    let out = Command::new("node")
        .arg(harness_dir().join(script))
        .args([url, user])
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{script} for {user} at {url} failed: {} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The audience the provider's access tokens carry.
pub const AUDIENCE: &str = "urn:sluice:gateway";

impl Provider {
    /// Starts the provider and waits for its issuer line.
    pub fn start() -> Provider {
        let dir = harness_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed: run ./test.sh (it runs npm ci in tests/oidc)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("provider.mjs"))
            .stdout(Stdio::piped())
            .stderr(
                std::fs::File::create(std::env::temp_dir().join("sluice-oidc-provider.log"))
                    .unwrap(),
            )
            .spawn()
            .expect("node starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).expect("the provider prints its issuer");
        Provider {
            child,
            issuer: v["issuer"].as_str().unwrap().to_string(),
            agent: ureq::AgentBuilder::new().build(),
        }
    }

    /// An access token (JWT) for `client` from the token endpoint (client credentials grant).
    pub fn client_credentials(&self, client: &str) -> String {
        let r: Value = self
            .agent
            .post(&format!("{}/token", self.issuer))
            .send_form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client),
                ("client_secret", &format!("{client}-secret")),
                ("scope", "db"),
            ])
            .expect("token endpoint answers")
            .into_json()
            .unwrap();
        r["access_token"]
            .as_str()
            .expect("an access token")
            .to_string()
    }

    /// A token made by the test harness: `claims` over the defaults (iss, aud, iat, exp; a
    /// `null` removes one), signed with `key` (`current`, `foreign`, `hs256-public`, `none`).
    pub fn sign(&self, claims: Value, header: Value, key: &str) -> String {
        let r: Value = self
            .agent
            .post(&format!("{}/test/sign", self.issuer))
            .send_json(json!({ "claims": claims, "header": header, "key": key }))
            .expect("harness signs")
            .into_json()
            .unwrap();
        r["token"].as_str().unwrap().to_string()
    }

    /// Whether the provider still accepts `refresh_token` for `client`.
    pub fn refresh_works(&self, refresh_token: &str, client: &str) -> bool {
        self.agent
            .post(&format!("{}/token", self.issuer))
            .send_form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", client),
            ])
            .is_ok()
    }

    /// Sets `user`'s groups at the provider from now on.
    pub fn set_groups(&self, user: &str, groups: &[&str]) {
        self.agent
            .post(&format!("{}/test/groups", self.issuer))
            .send_json(json!({ "user": user, "groups": groups }))
            .expect("harness sets groups");
    }

    /// Plays `user` in the device flow at `url`: confirms the code, signs in, consents.
    pub fn approve_device(&self, url: &str, user: &str) {
        play_person("approve_device.mjs", url, user);
    }

    /// Plays `user` in a real browser (headless Chromium via playwright-core): signs in at
    /// `url`, consents, and follows the redirect to the CLI's loopback listener.
    pub fn browser_login(&self, url: &str, user: &str) {
        play_person("browser_login.mjs", url, user);
    }

    /// Rotates the provider's signing key (the old one stays published).
    pub fn rotate(&self) -> String {
        let r: Value = self
            .agent
            .post(&format!("{}/test/rotate", self.issuer))
            .call()
            .expect("harness rotates")
            .into_json()
            .unwrap();
        r["kid"].as_str().unwrap().to_string()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
