//! `sluice login --device` and `sluice logout`: people sign in with their identity provider
//! (OAuth device authorization grant, RFC 8628), and the gateway trades the ID token for its
//! own short-lived session token, which is stored 0600 in the user's config dir and used by
//! every later command (unless `SLUICE_TOKEN` or `--token` says otherwise).

use super::client::Api;
use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Where the session token is kept: `$SLUICE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/sluice`,
/// else `~/.config/sluice`.
pub fn token_file() -> Option<PathBuf> {
    let dir = std::env::var_os("SLUICE_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_CONFIG_HOME").map(|d| PathBuf::from(d).join("sluice")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/sluice")))?;
    Some(dir.join("token"))
}

/// The stored session token, if there is one.
pub fn stored_token() -> Option<String> {
    let t = std::fs::read_to_string(token_file()?).ok()?;
    let t = t.trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn store_token(token: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let file =
        token_file().ok_or_else(|| anyhow!("no config dir: set SLUICE_CONFIG_DIR or HOME"))?;
    if let Some(dir) = file.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&file)
        .with_context(|| format!("writing {}", file.display()))?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    writeln!(f, "{token}")?;
    Ok(file)
}

/// Runs the device flow with the gateway's sign-in provider and stores the session token.
pub fn login(
    addr: &str,
    ca: Option<PathBuf>,
    provider: Option<String>,
    device: bool,
) -> anyhow::Result<()> {
    if !device {
        bail!("only the device flow is available so far: run `sluice login --device`");
    }
    // The sign-in endpoints need no token.
    let gateway = Api::new(addr, Some(String::new()), ca)?;
    let info: Value = gateway.get("/api/v1/login")?;
    let providers = info["providers"].as_array().cloned().unwrap_or_default();
    let p = match &provider {
        Some(name) => providers
            .iter()
            .find(|p| p["name"] == name.as_str())
            .ok_or_else(|| anyhow!("the gateway has no sign-in provider {name:?}"))?,
        None => providers
            .first()
            .ok_or_else(|| anyhow!("the gateway has no sign-in provider configured"))?,
    };
    let issuer = p["issuer"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('/');
    let client_id = p["client_id"].as_str().unwrap_or_default();
    let scopes: Vec<&str> = p["scopes"]
        .as_array()
        .map(|s| s.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    // The provider is reached with the public web roots (it is not the gateway's CA).
    let idp = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
    let discovery: Value = idp
        .get(&format!("{issuer}/.well-known/openid-configuration"))
        .call()
        .context("reading the provider's discovery document")?
        .into_json()?;
    let device_endpoint = discovery["device_authorization_endpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("the provider does not offer the device flow"))?;
    let token_endpoint = discovery["token_endpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("the provider has no token endpoint"))?;
    let scope = scopes.join(" ");
    let auth: Value = idp
        .post(device_endpoint)
        .send_form(&[("client_id", client_id), ("scope", &scope)])
        .map_err(oauth_error)?
        .into_json()?;
    let device_code = auth["device_code"].as_str().unwrap_or_default().to_string();
    let url = auth["verification_uri_complete"]
        .as_str()
        .or(auth["verification_uri"].as_str())
        .unwrap_or_default();
    println!(
        "To sign in, open {url} and confirm the code {}",
        auth["user_code"].as_str().unwrap_or_default()
    );
    std::io::stdout().flush()?;
    let mut interval = Duration::from_secs(auth["interval"].as_u64().unwrap_or(5).max(1));
    let deadline = Instant::now() + Duration::from_secs(auth["expires_in"].as_u64().unwrap_or(600));
    let id_token = loop {
        if Instant::now() >= deadline {
            bail!("the sign-in code expired; run sluice login again");
        }
        // RFC 8628 §3.5: the client waits `interval` between polls.
        std::thread::sleep(interval);
        let r = idp.post(token_endpoint).send_form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", &device_code),
            ("client_id", client_id),
        ]);
        match r {
            Ok(resp) => {
                let t: Value = resp.into_json()?;
                break t["id_token"]
                    .as_str()
                    .ok_or_else(|| {
                        anyhow!("the provider returned no ID token (is `openid` a scope?)")
                    })?
                    .to_string();
            }
            Err(ureq::Error::Status(_, resp)) => {
                let e: Value = resp.into_json().unwrap_or_default();
                match e["error"].as_str() {
                    Some("authorization_pending") => {}
                    Some("slow_down") => interval += Duration::from_secs(5),
                    Some("access_denied") => bail!("sign-in was denied"),
                    Some("expired_token") => {
                        bail!("the sign-in code expired; run sluice login again")
                    }
                    other => bail!("sign-in failed: {}", other.unwrap_or("unknown error")),
                }
            }
            Err(e) => return Err(anyhow!("cannot reach the provider: {e}")),
        }
    };
    let r = gateway.post_form(
        "/api/v1/token/exchange",
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", &id_token),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
        ],
    )?;
    let token = r["access_token"]
        .as_str()
        .ok_or_else(|| anyhow!("the gateway returned no token"))?;
    let file = store_token(token)?;
    let groups: Vec<&str> = r["identity"]["groups"]
        .as_array()
        .map(|g| g.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    println!(
        "logged in as {} (groups: {}); session token valid for {}s, stored in {}",
        r["identity"]["name"].as_str().unwrap_or_default(),
        if groups.is_empty() {
            "none".into()
        } else {
            groups.join(", ")
        },
        r["expires_in"],
        file.display()
    );
    Ok(())
}

fn oauth_error(e: ureq::Error) -> anyhow::Error {
    match e {
        ureq::Error::Status(code, resp) => {
            let v: Value = resp.into_json().unwrap_or_default();
            anyhow!(
                "the provider refused: {} (HTTP {code})",
                v["error_description"]
                    .as_str()
                    .or(v["error"].as_str())
                    .unwrap_or("error")
            )
        }
        other => anyhow!("cannot reach the provider: {other}"),
    }
}

/// Revokes the stored session token at the gateway and deletes it.
pub fn logout(addr: &str, ca: Option<PathBuf>) -> anyhow::Result<()> {
    let Some(token) = stored_token() else {
        println!("not logged in");
        return Ok(());
    };
    let api = Api::new(addr, Some(token), ca)?;
    let revoked = api.post("/api/v1/logout", serde_json::json!({}));
    if let Some(f) = token_file() {
        let _ = std::fs::remove_file(f);
    }
    match revoked {
        Ok(_) => println!("logged out: the session token is revoked and deleted"),
        Err(e) => println!("session token deleted (the gateway did not revoke it: {e})"),
    }
    Ok(())
}
