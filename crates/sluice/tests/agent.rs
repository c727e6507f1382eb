//! The agent: a private PostgreSQL cluster in a network namespace, reachable only from inside
//! it, reached through `sluice agent` running there and dialing out to the gateway.

mod common;

use common::mysql::MyDb;
use common::private_net::{AgentProc, PrivateNet, PrivatePg};
use common::{unique, wait_for, Gateway};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A gateway whose API the namespace can reach, with `private` (allowed by the agent) and
/// `outside` (a destination the agent does not allow) both via agent `edge`.
fn gateway(net: &PrivateNet, pg: &PrivatePg) -> Gateway {
    gateway_on(&net.host_ip, net, pg)
}

/// [`gateway`] with its API on `api_host`.
fn gateway_on(api_host: &str, net: &PrivateNet, pg: &PrivatePg) -> Gateway {
    Gateway::start(&gateway_config(&format!("{api_host}:0"), net, pg))
}

/// The config of [`gateway`], with the API on `api` (`host:port`).
fn gateway_config(api: &str, net: &PrivateNet, pg: &PrivatePg) -> String {
    format!(
        r#"listeners:
  postgres:
    address: 127.0.0.1:0
    allow_plaintext: true
  api:
    address: {api}
{tls}connections:
  - name: private
    type: postgres
    host: 127.0.0.1
    port: {port}
    database: postgres
    username: postgres
    via: edge
  - name: outside
    type: postgres
    host: 127.0.0.1
    port: {other}
    database: postgres
    username: postgres
    via: edge
grants:
  - group: engineering
    connection: private
  - group: engineering
    connection: outside
"#,
        tls = net.gateway_config(),
        port = pg.port,
        other = pg.port + 1,
    )
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn state_dir() -> PathBuf {
    std::env::temp_dir().join(unique("sluice-agent-state"))
}

/// Everything an agent test needs: the namespace, the cluster, a gateway, an enrolled agent.
struct Setup {
    agent: AgentProc,
    gw: Gateway,
    pg: PrivatePg,
    net: PrivateNet,
    token: String,
}

fn setup() -> Option<Setup> {
    let net = PrivateNet::create()?;
    let pg = PrivatePg::start(&net);
    let gw = gateway(&net, &pg);
    let agent = enrolled_agent(Some(&net), &gw, format!("127.0.0.1:{}", pg.port), &[]);
    let token = gw.service_account("engineering");
    Some(Setup {
        agent,
        gw,
        pg,
        net,
        token,
    })
}

/// Agent `edge`, created on `gw` and enrolled with its token, running (in `net`, or in this
/// namespace) with `allow` and `extra` flags, its tunnel up.
fn enrolled_agent(
    net: Option<&PrivateNet>,
    gw: &Gateway,
    allow: String,
    extra: &[&str],
) -> AgentProc {
    let enroll = gw.cli_ok(&["agents", "add", "edge"]).trim().to_string();
    let mut flags = vec!["--token", enroll.as_str()];
    flags.extend_from_slice(extra);
    let mut agent = AgentProc::start(net, &[gw], &state_dir(), &[allow], &flags);
    agent.wait_up(1);
    agent
}

fn agents(gw: &Gateway) -> Vec<Value> {
    serde_json::from_str(&gw.cli_ok(&["agents", "list", "--json"])).unwrap()
}

#[test]
fn the_private_database_is_reached_only_through_the_agent() {
    let Some(s) = setup() else { return };
    // Nothing outside the namespace reaches the cluster.
    assert!(std::net::TcpStream::connect(("127.0.0.1", s.pg.port)).is_err());

    let got = stdout(&s.gw.psql_as("private", &s.token, "SELECT v FROM marker"));
    assert_eq!(got, "inside the private network");

    // Recorded and policed at the gateway like any session.
    let session = s.gw.wait_ended_session("private");
    let events = s.gw.events(&session);
    let start = events.iter().find(|e| e["kind"] == "start").unwrap();
    assert_eq!(
        start["target"],
        format!("127.0.0.1:{} via agent edge", s.pg.port),
        "{start}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "query" && e["text"] == "SELECT v FROM marker"),
        "{events:?}"
    );

    // A destination outside the agent's allow-list is refused by the agent, and audited.
    let out = s.gw.psql_as("outside", &s.token, "SELECT 1");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent edge refused") && err.contains("allow-list"),
        "{err}"
    );
    let audited = s.gw.wait_audit("agent.dial refusal", |e| {
        e["action"] == "agent.dial" && e["outcome"] == "failure"
    });
    assert_eq!(audited["actor"]["name"], "edge");
    assert_eq!(audited["target"], format!("127.0.0.1:{}", s.pg.port + 1));

    // The gateway shows the agent with its tunnel.
    let list = agents(&s.gw);
    let edge = &list[0];
    assert_eq!(edge["name"], "edge");
    let tunnel = &edge["tunnel"];
    assert_eq!(tunnel["version"], env!("CARGO_PKG_VERSION"));
    assert!(tunnel["streams_total"].as_u64().unwrap() >= 1, "{edge}");
    assert!(tunnel["bytes_from_agent"].as_u64().unwrap() > 0, "{edge}");
    assert!(
        tunnel["peer"].as_str().unwrap().starts_with(&s.net.ns_ip),
        "{edge}"
    );
    drop(s.agent);
}

#[test]
fn a_bad_enrollment_token_is_refused() {
    let Some(net) = PrivateNet::create() else {
        return;
    };
    let pg = PrivatePg::start(&net);
    let gw = gateway(&net, &pg);
    let mut agent = AgentProc::start(
        Some(&net),
        &[&gw],
        &state_dir(),
        &["127.0.0.1:*".to_string()],
        &["--token", "sle_not-a-real-token"],
    );
    let (status, log) = agent.wait_exit();
    assert!(!status.success());
    assert!(
        log.contains("invalid or already used enrollment token"),
        "{log}"
    );
    let audited = gw.wait_audit("agent.enroll failure", |e| e["action"] == "agent.enroll");
    assert_eq!(audited["outcome"], "failure");
    // A used token does not work twice either.
    let token = gw.cli_ok(&["agents", "add", "edge"]).trim().to_string();
    let dir = state_dir();
    let mut first = AgentProc::start(
        Some(&net),
        &[&gw],
        &dir,
        &["127.0.0.1:1".into()],
        &["--token", &token],
    );
    first.wait_up(1);
    let mut second = AgentProc::start(
        Some(&net),
        &[&gw],
        &state_dir(),
        &["127.0.0.1:1".into()],
        &["--token", &token],
    );
    let (status, log) = second.wait_exit();
    assert!(!status.success() && log.contains("enrollment"), "{log}");
}

#[test]
fn losing_the_agent_mid_query_ends_the_session_and_a_restart_restores_service() {
    let Some(mut s) = setup() else { return };
    // A session on the private cluster holds a lock; the client's statement waits for it
    // until the agent goes away.
    let _holder = s.pg.hold_advisory_lock(&s.net, 4242);
    let mut client = s.gw.psql_session_as("private", &s.token);
    let mut stdin = client.stdin.take().unwrap();
    std::io::Write::write_all(
        &mut stdin,
        b"SELECT 'started';\nSELECT pg_advisory_lock(4242);\n",
    )
    .unwrap();
    wait_for(
        "the query running on the private cluster",
        Duration::from_secs(20),
        || {
            let out = s.pg.psql(
                &s.net,
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
            );
            (String::from_utf8_lossy(&out.stdout).trim() == "1").then_some(())
        },
    );
    s.agent.kill();

    let out = client.wait_with_output().unwrap();
    drop(stdin);
    assert!(
        !out.status.success(),
        "the client must see the session fail"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the tunnel to agent edge was lost"), "{err}");
    // The recording is complete up to that moment and closed.
    let session = s.gw.wait_ended_session("private");
    let events = s.gw.events(&session);
    assert!(
        events
            .iter()
            .any(|e| e["kind"] == "query" && e["text"].as_str().unwrap().contains("'started'")),
        "{events:?}"
    );
    let end = events.last().unwrap();
    assert_eq!(end["kind"], "end", "{events:?}");
    assert!(
        end["reason"] == "target_closed" || end["reason"] == "target_error",
        "{end}"
    );
    let out = s.gw.cli_ok(&["verify", &session]);
    assert!(out.contains(": ok:"), "{out}");

    // While the agent is away, new sessions get a clear error.
    let out = s.gw.psql_as("private", &s.token, "SELECT 1");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("agent edge is not connected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It comes back with its state (no token needed) and service resumes.
    let mut again = AgentProc::start(
        Some(&s.net),
        &[&s.gw],
        &s.agent.state,
        &[format!("127.0.0.1:{}", s.pg.port)],
        &[],
    );
    again.wait_up(1);
    let got = stdout(&s.gw.psql_as("private", &s.token, "SELECT v FROM marker"));
    assert_eq!(got, "inside the private network");
}

#[test]
fn a_revoked_agent_is_cut_off_and_cannot_reconnect() {
    let Some(mut s) = setup() else { return };
    let mut client = s.gw.psql_session_as("private", &s.token);
    let mut stdin = client.stdin.take().unwrap();
    std::io::Write::write_all(&mut stdin, b"SELECT v FROM marker;\n").unwrap();
    wait_for("a live session", Duration::from_secs(20), || {
        s.gw.sessions()
            .into_iter()
            .find(|x| x["connection"] == "private")
            .map(|_| ())
    });
    s.gw.cli_ok(&["agents", "revoke", "edge"]);
    // Its tunnel closed: the session through it ends.
    let session = s.gw.wait_ended_session("private");
    drop(stdin);
    let _ = client.wait_with_output();
    assert!(s.gw.events(&session).last().unwrap()["kind"] == "end");
    // It tries again and is refused, audited.
    let refused = s.gw.wait_audit("a refused reconnect", |e| {
        e["action"] == "agent.connect" && e["outcome"] == "failure"
    });
    assert_eq!(refused["reason"], "agent is revoked");
    wait_for(
        "the agent to log its refusal",
        Duration::from_secs(20),
        || s.agent.log().contains("agent is revoked").then_some(()),
    );
    let list = agents(&s.gw);
    assert!(
        list[0]["revoked_us"].is_i64() && list[0]["tunnel"].is_null(),
        "{list:?}"
    );
    let out = s.gw.psql_as("private", &s.token, "SELECT 1");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("agent edge is not connected"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.agent.kill();
}

#[test]
fn an_agent_holds_a_tunnel_to_every_replica_it_is_given() {
    let Some(s) = setup() else { return };
    // A second gateway with its own store: the admin pins the agent's key there, and the
    // agent trusts both gateways' CAs.
    let second = gateway(&s.net, &s.pg);
    let bundle = std::env::temp_dir().join(unique("sluice-ca-bundle"));
    let mut pems = std::fs::read_to_string(s.gw.data().join("tls/ca.pem")).unwrap();
    pems.push_str(&std::fs::read_to_string(second.data().join("tls/ca.pem")).unwrap());
    std::fs::write(&bundle, pems).unwrap();
    let key = Command::new(common::bin())
        .args(["agent", "--show-key", "--state-dir"])
        .arg(&s.agent.state)
        .output()
        .unwrap();
    let key = String::from_utf8(key.stdout).unwrap();
    second.cli_ok(&["agents", "add", "edge", "--public-key", key.trim()]);
    let mut agent = AgentProc::start(
        Some(&s.net),
        &[&s.gw, &second],
        &s.agent.state,
        &[format!("127.0.0.1:{}", s.pg.port)],
        &["--ca", bundle.to_str().unwrap()],
    );
    agent.wait_up(2);
    let token2 = second.service_account("engineering");
    for (gw, token) in [(&s.gw, &s.token), (&second, &token2)] {
        let got = stdout(&gw.psql_as("private", token, "SELECT v FROM marker"));
        assert_eq!(got, "inside the private network");
    }
    assert!(agents(&second)[0]["tunnel"].is_object());
}

#[test]
fn mysql_sessions_go_through_the_agent_unchanged() {
    // The agent runs in this namespace here: the machine's MariaDB is on this loopback.
    let db = MyDb::new();
    db.typed_table();
    let gw = Gateway::start(&common::mysql::config(
        &db,
        false,
        "via: edge\nmasking:\n  mask_client: true",
    ));
    let _agent = enrolled_agent(None, &gw, "127.0.0.1:3306".into(), &[]);
    let token = gw.service_account("engineering");
    let out = gw.mariadb(&token, "SELECT card, note FROM typed WHERE id = 1");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("**** **** **** 1111\thello"), "{text}");
    assert!(!text.contains("4111 1111"), "{text}");
    let session = gw.wait_ended_session("my");
    let start = gw
        .events(&session)
        .into_iter()
        .find(|e| e["kind"] == "start")
        .unwrap();
    assert_eq!(start["target"], "127.0.0.1:3306 via agent edge");
    assert!(agents(&gw)[0]["tunnel"]["streams_total"].as_u64().unwrap() >= 1);
}

#[test]
fn the_agent_reaches_the_gateway_through_an_egress_proxy() {
    let Some(net) = PrivateNet::create() else {
        return;
    };
    let pg = PrivatePg::start(&net);
    // The API listens on this namespace's loopback: from inside, only the proxy gets there.
    let gw = gateway_on("127.0.0.1", &net, &pg);
    let dir = std::env::temp_dir().join(unique("sluice-tinyproxy"));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind((net.host_ip.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen {host}\nTimeout 600\nAllow {host}/30\nConnectPort {api}\n\
             LogFile \"{log}\"\nLogLevel Connect\nMaxClients 20\n",
            host = net.host_ip,
            api = gw.api.port(),
            log = dir.join("tinyproxy.log").display(),
        ),
    )
    .unwrap();
    let mut proxy = Command::new("tinyproxy")
        .args(["-d", "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tinyproxy starts");
    wait_for("tinyproxy to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect((net.host_ip.as_str(), port)).ok()
    });
    let proxy_url = format!("http://{}:{port}", net.host_ip);
    let agent = enrolled_agent(
        Some(&net),
        &gw,
        format!("127.0.0.1:{}", pg.port),
        &["--proxy", &proxy_url],
    );
    let token = gw.service_account("engineering");
    let got = stdout(&gw.psql_as("private", &token, "SELECT v FROM marker"));
    assert_eq!(got, "inside the private network");
    // The tunnel came from the proxy, not from the namespace.
    let list = agents(&gw);
    assert!(
        list[0]["tunnel"]["peer"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{list:?}"
    );
    let log = std::fs::read_to_string(dir.join("tinyproxy.log")).unwrap_or_default();
    assert!(log.contains("CONNECT"), "{log}");
    drop(agent);
    let _ = proxy.kill();
    let _ = proxy.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_agent_reconnects_by_itself_after_a_gateway_crash_and_stops_cleanly() {
    let Some(net) = PrivateNet::create() else {
        return;
    };
    let pg = PrivatePg::start(&net);
    // A fixed API port, so the restarted gateway is where the agent keeps dialing.
    let port = std::net::TcpListener::bind((net.host_ip.as_str(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = gateway_config(&format!("{}:{port}", net.host_ip), &net, &pg);
    let gw = Gateway::start(&config);
    let mut agent = enrolled_agent(Some(&net), &gw, format!("127.0.0.1:{}", pg.port), &[]);
    let gw = gw.restart(&config, true);
    // Backoff and jitter bring it back without anyone touching the agent.
    agent.wait_up(2);
    let token = gw.service_account("engineering");
    let got = stdout(&gw.psql_as("private", &token, "SELECT v FROM marker"));
    assert_eq!(got, "inside the private network");
    assert!(agent.log().contains("tunnel lost") || agent.log().contains("tunnel closed"));
    // SIGTERM: the agent closes its tunnels and exits 0; the gateway sees it go.
    agent.terminate();
    let (status, log) = agent.wait_exit();
    assert!(status.success(), "{log}");
    assert!(log.contains("shutting down"), "{log}");
    gw.wait_audit("the agent's disconnect", |e| {
        e["action"] == "agent.disconnect" && e["actor"]["name"] == "edge"
    });
    assert!(agents(&gw)[0]["tunnel"].is_null());
}

#[test]
fn ssh_sessions_go_through_the_agent_unchanged() {
    // The agent runs in this namespace: the test's sshd listens on this loopback.
    let s = common::ssh::SshSetup::new("box", "    via: edge\n");
    let allow = format!("127.0.0.1:{}", s.sshd.addr.port());
    let _agent = enrolled_agent(None, &s.gw, allow, &[]);
    let out = s.exec("box", "echo through-the-tunnel; exit 3");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "through-the-tunnel"
    );
    let session = s.gw.wait_ended_session("box");
    let start =
        s.gw.events(&session)
            .into_iter()
            .find(|e| e["kind"] == "start")
            .unwrap();
    assert_eq!(
        start["target"],
        format!("root@127.0.0.1:{} via agent edge", s.sshd.addr.port())
    );
    assert!(
        agents(&s.gw)[0]["tunnel"]["streams_total"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

#[test]
fn commands_run_on_the_agents_host_and_only_those_it_allows() {
    let Some(net) = PrivateNet::create() else {
        return;
    };
    let dir = std::env::temp_dir().join(unique("sluice-agent-exec"));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("token");
    std::fs::write(&secret, "agent-run-s3cret-77").unwrap();
    let config = format!(
        r#"listeners:
  postgres:
    address: 127.0.0.1:0
  api:
    address: {host}:0
{tls}connections:
  - name: remote-sh
    type: command
    via: edge
    command:
      program: bash
      secrets: [{{ env: TOKEN, from_file: {secret} }}]
    guardrails:
      rules:
        - {{ name: no-rm, action: deny, match: {{ statements: [rm] }} }}
  - name: remote-py
    type: command
    via: edge
    command: {{ program: python3, args: ["-"] }}
grants:
  - {{ group: engineering, connection: remote-sh }}
  - {{ group: engineering, connection: remote-py }}
"#,
        host = net.host_ip,
        tls = net.gateway_config(),
        secret = secret.display(),
    );
    let gw = Gateway::start_in(dir, &config);
    let _agent = enrolled_agent(
        Some(&net),
        &gw,
        "127.0.0.1:9".into(),
        &["--allow-exec", "bash"],
    );
    let token = gw.service_account("engineering");
    let exec = |connection: &str, script: &str| {
        let mut child = std::process::Command::new(common::bin())
            .args(["exec", connection])
            .env("SLUICE_ADDR", format!("https://{}", gw.api))
            .env("SLUICE_TOKEN", &token)
            .env("SLUICE_CA", gw.data().join("tls/ca.pem"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), script.as_bytes()).unwrap();
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    };
    // The namespace's own address shows only where the agent runs.
    let script = format!(
        "ip -o -4 addr show | grep -c ' {}/'\necho \"t=$TOKEN\"\necho oops >&2\nexit 5\n",
        net.ns_ip
    );
    let out = exec("remote-sh", &script);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(5), "{stdout} {stderr}");
    assert_eq!(stdout, "1\nt=*******************\n");
    assert_eq!(stderr, "oops\n");
    let session = gw.wait_ended_session("remote-sh");
    let events = gw.events(&session);
    let start = events.iter().find(|e| e["kind"] == "start").unwrap();
    assert_eq!(start["target"], "bash via agent edge");
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains("agent-run-s3cret-77"));

    // An interactive session on a pty at the agent's host.
    let command = format!(
        "env SLUICE_ADDR=https://{} SLUICE_TOKEN={} SLUICE_CA={} {} connect remote-sh; echo \"connect exited $?\"; sleep 600",
        gw.api,
        token,
        gw.data().join("tls/ca.pem").display(),
        common::bin()
    );
    let term = common::ssh::Terminal::run(&command, |screen| {
        screen.trim_end().ends_with('#') || screen.trim_end().ends_with('$')
    });
    term.keys(&[
        &format!("ip -o -4 addr show | grep -c ' {}/'", net.ns_ip),
        "Enter",
    ]);
    term.wait("the count", |screen| {
        screen.lines().any(|l| l.trim() == "1")
    });
    term.keys(&["exit 3", "Enter"]);
    term.wait("sluice connect's exit", |screen| {
        screen.contains("connect exited 3")
    });

    // Guardrails are the gateway's: a denied script never reaches the agent.
    let out = exec("remote-sh", "rm -rf /tmp/x\n");
    assert_eq!(out.status.code(), Some(125));
    // The agent runs only what it allows.
    let out = exec("remote-py", "print(1)\n");
    assert_eq!(out.status.code(), Some(125));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("program \"python3\" is not in this agent's --allow-exec"),
        "{stderr}"
    );
}
