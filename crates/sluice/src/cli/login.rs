//! `sluice login` and `sluice logout`: people sign in with their identity provider, in a
//! browser (authorization code with PKCE and a loopback redirect, RFC 8252; state and nonce
//! checked) or with `--device` (device authorization grant, RFC 8628), and the gateway trades
//! the ID token for its own short-lived session token, which is stored 0600 in the user's
//! config dir and used by every later command (unless `SLUICE_TOKEN` or `--token` says
//! otherwise).

use super::client::{enc, Api};
use anyhow::{anyhow, bail, Context};
use serde_json::Value;
use sluice_store::crypto;
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

/// Where the provider's refresh token is kept (next to the session token).
fn refresh_file() -> Option<PathBuf> {
    Some(token_file()?.with_file_name("refresh"))
}

fn store_token(token: &str) -> anyhow::Result<PathBuf> {
    let file =
        token_file().ok_or_else(|| anyhow!("no config dir: set SLUICE_CONFIG_DIR or HOME"))?;
    store_private(file, token)
}

/// Writes `contents` to `file`, readable by the owner only.
fn store_private(file: PathBuf, contents: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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
    writeln!(f, "{contents}")?;
    Ok(file)
}

/// Signs in with the gateway's sign-in provider (browser or device flow, or a stored refresh
/// token), stores the session token and returns it.
pub fn login(
    addr: &str,
    ca: Option<PathBuf>,
    provider: Option<String>,
    device: bool,
    open_browser: bool,
    fresh: bool,
) -> anyhow::Result<String> {
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
    let token_endpoint = discovery["token_endpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("the provider has no token endpoint"))?;
    let scope = scopes.join(" ");
    let refreshed = if fresh {
        None
    } else {
        refresh(&idp, issuer, client_id, token_endpoint)
    };
    let tokens = match refreshed {
        Some(t) => {
            println!("refreshed the session with the provider; no sign-in needed");
            t
        }
        None if device => device_flow(&idp, &discovery, token_endpoint, client_id, &scope)?,
        None => browser_flow(
            &idp,
            &discovery,
            token_endpoint,
            client_id,
            &scope,
            open_browser,
        )?,
    };
    if let (Some(rt), Some(file)) = (&tokens.refresh, refresh_file()) {
        let saved =
            serde_json::json!({ "issuer": issuer, "client_id": client_id, "refresh_token": rt });
        store_private(file, &saved.to_string())?;
    }
    let id_token = tokens.id_token;
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
    Ok(token.to_string())
}

/// The device flow: print a URL and a code, poll until the person confirmed them.
fn device_flow(
    idp: &ureq::Agent,
    discovery: &Value,
    token_endpoint: &str,
    client_id: &str,
    scope: &str,
) -> anyhow::Result<Tokens> {
    let device_endpoint = discovery["device_authorization_endpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("the provider does not offer the device flow"))?;
    let auth: Value = idp
        .post(device_endpoint)
        .send_form(&[("client_id", client_id), ("scope", scope)])
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
    loop {
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
            Ok(resp) => return id_token_of(resp.into_json()?),
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
    }
}

/// What the provider's token endpoint gave.
struct Tokens {
    id_token: String,
    refresh: Option<String>,
}

fn id_token_of(t: Value) -> anyhow::Result<Tokens> {
    let id_token = t["id_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("the provider returned no ID token (is `openid` a scope?)"))?;
    Ok(Tokens {
        id_token,
        refresh: t["refresh_token"].as_str().map(str::to_string),
    })
}

/// A new ID token from the stored refresh token of this provider and client, if it works;
/// a refused refresh token is deleted.
fn refresh(
    idp: &ureq::Agent,
    issuer: &str,
    client_id: &str,
    token_endpoint: &str,
) -> Option<Tokens> {
    let file = refresh_file()?;
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&file).ok()?).ok()?;
    if saved["issuer"] != issuer || saved["client_id"] != client_id {
        return None;
    }
    let rt = saved["refresh_token"].as_str()?;
    let answer = idp.post(token_endpoint).send_form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", client_id),
    ]);
    match answer
        .ok()
        .and_then(|r| r.into_json::<Value>().ok())
        .map(id_token_of)
    {
        Some(Ok(mut t)) => {
            t.refresh = t.refresh.or_else(|| Some(rt.to_string()));
            Some(t)
        }
        _ => {
            let _ = std::fs::remove_file(file);
            None
        }
    }
}

/// 32 random bytes, base64url: PKCE verifier, state and nonce.
fn random_b64() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crypto::random_bytes::<32>())
}

/// The browser flow: authorization code with PKCE (S256), a loopback redirect on a free
/// port, and state and nonce checks.
fn browser_flow(
    idp: &ureq::Agent,
    discovery: &Value,
    token_endpoint: &str,
    client_id: &str,
    scope: &str,
    open_browser: bool,
) -> anyhow::Result<Tokens> {
    use base64::Engine;
    let authorize = discovery["authorization_endpoint"]
        .as_str()
        .ok_or_else(|| anyhow!("the provider has no authorization endpoint"))?;
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").context("opening the loopback redirect")?;
    let redirect = format!(
        "http://127.0.0.1:{}/callback",
        listener.local_addr()?.port()
    );
    let verifier = random_b64();
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(crypto::sha256(verifier.as_bytes()));
    let (state, nonce) = (random_b64(), random_b64());
    let url = format!(
        "{authorize}?response_type=code&client_id={}&redirect_uri={}&scope={}&state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256",
        enc(client_id),
        enc(&redirect),
        enc(scope)
    );
    // OpenID Connect Core §11: offline access (a refresh token) needs prompt=consent.
    let url = if scope.split(' ').any(|s| s == "offline_access") {
        format!("{url}&prompt=consent")
    } else {
        url
    };
    println!("To sign in, open {url}");
    std::io::stdout().flush()?;
    if open_browser {
        // Best effort; the URL above works from any browser.
        let _ = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some(params) = callback(stream) {
                let _ = tx.send(params);
                return;
            }
        }
    });
    let params = rx
        .recv_timeout(Duration::from_secs(300))
        .map_err(|_| anyhow!("no sign-in within 5 minutes; run sluice login again"))?;
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if let Some(e) = get("error") {
        bail!(
            "sign-in failed: {e}: {}",
            get("error_description").unwrap_or("")
        );
    }
    if get("state") != Some(state.as_str()) {
        bail!("sign-in failed: the redirect's state does not match this login");
    }
    let code = get("code").ok_or_else(|| anyhow!("sign-in failed: no code in the redirect"))?;
    let t: Value = idp
        .post(token_endpoint)
        .send_form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &redirect),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ])
        .map_err(oauth_error)?
        .into_json()?;
    let tokens = id_token_of(t)?;
    // The gateway verifies the signature; the nonce ties the token to this login.
    let payload = tokens
        .id_token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .unwrap_or_default();
    if payload["nonce"].as_str() != Some(nonce.as_str()) {
        bail!("sign-in failed: the ID token's nonce does not match this login");
    }
    Ok(tokens)
}

/// Reads one request on the loopback listener; answers it and returns the query of a
/// `/callback` request.
fn callback(mut stream: std::net::TcpStream) -> Option<Vec<(String, String)>> {
    use std::io::BufRead;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut line = String::new();
    std::io::BufReader::new(stream.try_clone().ok()?)
        .read_line(&mut line)
        .ok()?;
    let target = line.split_whitespace().nth(1)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/callback" {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return None;
    }
    let body = "sluice: signed in. You can close this window.";
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Some(
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (unescape(k), unescape(v)))
            .collect(),
    )
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or(""), 16) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
    revoke_refresh_token();
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

/// Revokes the stored refresh token at the provider (RFC 7009, when it offers revocation),
/// best effort, and deletes it.
fn revoke_refresh_token() {
    let Some(file) = refresh_file() else { return };
    let saved: Option<Value> = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    if let Some(saved) = saved {
        let idp = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(10))
            .build();
        let issuer = saved["issuer"].as_str().unwrap_or_default();
        let endpoint = idp
            .get(&format!("{issuer}/.well-known/openid-configuration"))
            .call()
            .ok()
            .and_then(|r| r.into_json::<Value>().ok())
            .and_then(|d| d["revocation_endpoint"].as_str().map(str::to_string));
        if let (Some(endpoint), Some(rt), Some(client)) = (
            endpoint,
            saved["refresh_token"].as_str(),
            saved["client_id"].as_str(),
        ) {
            if let Err(e) = idp.post(&endpoint).send_form(&[
                ("token", rt),
                ("token_type_hint", "refresh_token"),
                ("client_id", client),
            ]) {
                eprintln!("the provider did not revoke the refresh token: {e}");
            }
        }
    }
    let _ = std::fs::remove_file(file);
}
