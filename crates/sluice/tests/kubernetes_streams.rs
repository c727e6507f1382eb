//! kubectl's streaming and transfer verbs through the gateway, against the Kubernetes API
//! stand-in (`tests/kube_standin.py`): watch, apply, logs -f, cp, attach, exec over SPDY for
//! older clients, port-forward, a cluster behind an agent, and a malformed stream.

mod common;

use common::kube::{all_events, exec_sessions, gateway, long_exec, Kubectl, StandinApiServer};
use common::ssh::{kinds, text, Terminal};
use common::{wait_for, Gateway};
use std::process::Stdio;
use std::time::Duration;

#[test]
fn watch_apply_logs_cp_and_attach_pass_through() {
    use std::io::{BufRead, BufReader, Write};
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    let kubectl = Kubectl::through(&gw, "k8s", &token);
    let dir = std::env::temp_dir().join(common::unique("kube-files"));
    std::fs::create_dir_all(&dir).unwrap();

    // A watch streams what happens while it is open.
    let mut watch = kubectl
        .command(&["get", "pods", "--watch-only", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(
        "the watch to reach the API server",
        Duration::from_secs(20),
        || {
            api.calls()
                .iter()
                .any(|c| c["query"].as_str().unwrap_or("").contains("watch=true"))
                .then_some(())
        },
    );

    // Client-side apply creates, then patches; server-side apply too.
    let manifest = dir.join("applied.json");
    let pod = |label: &str| {
        format!(
            r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "applied", "labels": {{"v": "{label}"}}}},
            "spec": {{"containers": [{{"name": "main", "image": "busybox", "securityContext": {{"runAsNonRoot": true}}}}]}}}}"#
        )
    };
    std::fs::write(&manifest, pod("1")).unwrap();
    let path = manifest.to_str().unwrap();
    assert!(kubectl
        .ok(&["apply", "--validate=false", "-f", path])
        .contains("pod/applied created"));
    let mut line = String::new();
    BufReader::new(watch.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "pod/applied");
    let _ = watch.kill();
    let _ = watch.wait();
    std::fs::write(&manifest, pod("2")).unwrap();
    assert!(kubectl
        .ok(&["apply", "--validate=false", "-f", path])
        .contains("pod/applied configured"));
    let ssa = dir.join("ssa.json");
    std::fs::write(&ssa, pod("3").replace("\"applied\"", "\"ssa\"")).unwrap();
    let out = kubectl.ok(&[
        "apply",
        "--server-side",
        "--validate=false",
        "-f",
        ssa.to_str().unwrap(),
    ]);
    assert!(out.contains("pod/ssa serverside-applied"), "{out}");
    let labels = kubectl.ok(&[
        "get",
        "pod",
        "applied",
        "-o",
        "jsonpath={.metadata.labels.v}",
    ]);
    assert_eq!(labels, "2");

    // Following logs streams them, masked.
    let logs = kubectl.ok(&["logs", "-f", "web"]);
    assert_eq!(logs.lines().count(), 3, "{logs}");
    assert!(logs.contains("**** **** **** 1111"), "{logs}");

    // kubectl cp runs tar in the pod, both ways.
    let inside = dir.join("inside");
    std::fs::create_dir_all(&inside).unwrap();
    let local = dir.join("report.txt");
    std::fs::write(&local, "quarterly numbers\n").unwrap();
    let target = format!("default/web:{}/report.txt", inside.display());
    kubectl.ok(&["cp", local.to_str().unwrap(), &target]);
    assert_eq!(
        std::fs::read_to_string(inside.join("report.txt")).unwrap(),
        "quarterly numbers\n"
    );
    let back = dir.join("back.txt");
    kubectl.ok(&["cp", &target, back.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(&back).unwrap(),
        "quarterly numbers\n"
    );

    // attach joins the container's process (the stand-in starts a shell in its place).
    let mut attach = kubectl
        .command(&["attach", "-i", "web"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    attach
        .stdin
        .take()
        .unwrap()
        .write_all(b"echo attached-$((40+2))\n")
        .unwrap();
    let out = attach.wait_with_output().unwrap();
    assert!(
        text(&out.stdout).contains("attached-42"),
        "{} {}",
        text(&out.stdout),
        text(&out.stderr)
    );

    // Port forwarding is a verb the rules see.
    let out = kubectl.run(&["port-forward", "web", "18080:80"]);
    assert!(!out.status.success());
    let all = all_events(&gw);
    assert!(
        kinds(&all, "guard")
            .iter()
            .any(|e| e["rule"] == "no-port-forward"),
        "{}",
        text(&out.stderr)
    );
    let channels: Vec<&str> = kinds(&all, "channel")
        .iter()
        .map(|e| e["purpose"].as_str().unwrap())
        .collect();
    assert!(
        channels.contains(&"attach") && channels.contains(&"exec"),
        "{channels:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A client that opens an exec WebSocket through the gateway and then sends a frame with
/// reserved bits set; prints the upgrade status and whether the gateway closed the stream.
const BAD_FRAME_CLIENT: &str = r#"
import base64, os, socket, ssl, sys
addr, ca, token = sys.argv[1], sys.argv[2], sys.argv[3]
host, port = addr.rsplit(":", 1)
ctx = ssl.create_default_context(cafile=ca)
ctx.set_alpn_protocols(["http/1.1"])
s = ctx.wrap_socket(socket.create_connection((host, int(port))), server_hostname=host)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall((
    "GET /kube/k8s/api/v1/namespaces/default/pods/web/exec?command=sleep&command=30&stdout=true HTTP/1.1\r\n"
    f"Host: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
    f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    "Sec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n").encode())
head = b""
while b"\r\n\r\n" not in head:
    head += s.recv(1)
print(head.split(b" ")[1].decode())
s.sendall(bytes([0xF2, 0x85, 1, 2, 3, 4]) + b"\x00oops")
s.settimeout(30)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print("closed")
"#;

#[test]
fn a_malformed_exec_frame_ends_only_that_stream() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    let out = std::process::Command::new("python3")
        .args(["-c", BAD_FRAME_CLIENT])
        .arg(gw.api.to_string())
        .arg(gw.data().join("tls/ca.pem"))
        .arg(&token)
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "101\nclosed\n", "{}", text(&out.stderr));
    // The stream's recording is closed; the gateway serves the next client.
    let (_, events) = wait_for("the stream's recording", Duration::from_secs(20), || {
        exec_sessions(&gw)
            .into_iter()
            .find(|(_, e)| e.last().is_some_and(|l| l["kind"] == "end"))
    });
    assert_eq!(kinds(&events, "channel_end").len(), 1, "{events:?}");
    let event = gw.wait_audit("the broken stream", |e| e["action"] == "kubernetes.stream");
    assert!(
        event["reason"].as_str().unwrap().contains("reserved bits"),
        "{event}"
    );
    let kubectl = Kubectl::through(&gw, "k8s", &token);
    assert!(kubectl.ok(&["get", "pods"]).contains("web"));
}

#[test]
fn older_kubectl_over_spdy_is_recorded_masked_and_killable() {
    let api = StandinApiServer::start();
    // The stand-in speaks SPDY too: checked with kubectl directly first.
    let mut direct = Kubectl::direct(&api);
    direct.spdy = true;
    let out = direct.run(&["exec", "web", "--", "sh", "-c", "echo direct; exit 6"]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "direct\n");

    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    let mut kubectl = Kubectl::through(&gw, "k8s", &token);
    kubectl.spdy = true;
    let out = kubectl.run(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo card 4111111111111111 over spdy; echo warn >&2; exit 5",
    ]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "card ************1111 over spdy\n");
    assert!(text(&out.stderr).contains("warn"));
    let out = kubectl.run(&["exec", "debug", "--", "id"]);
    assert!(
        text(&out.stderr).contains("no-privileged-exec"),
        "{}",
        text(&out.stderr)
    );

    // A terminal over SPDY: typed input, window size and output are recorded.
    let prompt = |s: &str| s.lines().any(|l| l.trim_end().ends_with('#'));
    let term = Terminal::run(&kubectl.shell_line("exec -it web -- sh"), prompt);
    term.keys(&["echo typed-$((6*7)); stty size", "Enter"]);
    term.wait("the command's output", |s| {
        s.contains("typed-42") && s.contains("30 120")
    });
    term.keys(&["exit", "Enter"]);

    let (long, id) = long_exec(&gw, &kubectl);
    gw.cli_ok(&["sessions", "kill", &id]);
    let done = long.wait_with_output().unwrap();
    assert!(!done.status.success());
    assert!(
        text(&done.stderr).contains("sluice"),
        "{}",
        text(&done.stderr)
    );

    let all = all_events(&gw);
    let io: String = kinds(&all, "io")
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert!(io.contains("card ************1111 over spdy"), "{io}");
    assert!(
        io.contains("typed-$((6*7))"),
        "typed input not recorded: {io}"
    );
    assert!(!io.contains("4111111111111111"));
    assert!(kinds(&all, "exit").iter().any(|e| e["status"] == 5));
    assert!(kinds(&all, "resize")
        .iter()
        .any(|e| e["cols"] == 120 && e["rows"] == 30));
}

#[test]
fn a_cluster_behind_an_agent_works_the_same() {
    let api = StandinApiServer::start();
    std::env::set_var("SLUICE_TEST_KUBE_TOKEN", common::kube::STANDIN_TOKEN);
    let config = common::kube::config(&api, common::kube::RULES).replace(
        "grants:\n",
        &format!(
            "  - name: k8s-edge\n    type: kubernetes\n    host: 127.0.0.1\n    port: {}\n    via: edge\n    password_env: SLUICE_TEST_KUBE_TOKEN\n    kubernetes: {{ ca_file: {} }}\n    masking: {{ detectors: [card_number] }}\ngrants:\n  - group: engineering\n    connection: k8s-edge\n",
            api.port, api.ca
        ),
    );
    let gw = Gateway::start(&config);
    let enroll = gw.cli_ok(&["agents", "add", "edge"]).trim().to_string();
    let state = std::env::temp_dir().join(common::unique("sluice-agent-state"));
    let mut agent = common::private_net::AgentProc::start(
        None,
        &[&gw],
        &state,
        &[format!("127.0.0.1:{}", api.port)],
        &["--token", &enroll],
    );
    agent.wait_up(1);
    let token = gw.service_account("engineering");
    let kubectl = Kubectl::through(&gw, "k8s-edge", &token);
    assert!(kubectl.ok(&["get", "pods"]).contains("web"));
    let out = kubectl.run(&["exec", "web", "--", "echo", "card", "4111111111111111"]);
    assert_eq!(
        text(&out.stdout),
        "card ************1111\n",
        "{}",
        text(&out.stderr)
    );
    let (id, _) = wait_for(
        "the exec through the agent",
        Duration::from_secs(20),
        || exec_sessions(&gw).into_iter().next(),
    );
    let start = gw
        .events(&id)
        .into_iter()
        .find(|e| e["kind"] == "start")
        .unwrap();
    assert_eq!(
        start["target"],
        format!("https://127.0.0.1:{} via agent edge", api.port)
    );
    agent.kill();
}

/// Runs `kubectl port-forward web :PORT` (`spdy`: plain SPDY instead of SPDY in a
/// WebSocket) and fetches `/version` of the stand-in through it; the answer's status line.
fn forwarded_fetch(kubectl: &Kubectl, api: &StandinApiServer, spdy: bool) -> String {
    use std::io::{BufRead, BufReader};
    let mut cmd = kubectl.command(&["port-forward", "web", &format!(":{}", api.port)]);
    if spdy {
        cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
    }
    let mut pf = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    // Kept open until the end: kubectl dies of SIGPIPE on its next line otherwise.
    let mut output = BufReader::new(pf.stdout.take().unwrap());
    output.read_line(&mut line).unwrap();
    // "Forwarding from 127.0.0.1:LOCAL -> PORT"
    let local = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .unwrap_or_else(|| panic!("unexpected port-forward output: {line}"))
        .to_string();
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            &api.ca,
        ])
        .arg(format!("https://127.0.0.1:{local}/version"))
        .output()
        .unwrap();
    let _ = pf.kill();
    let _ = pf.wait();
    drop(output);
    text(&out.stdout)
}

#[test]
fn port_forwarding_is_relayed_and_counted() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    // On `k8s-cert` no rule stops port forwarding (on `k8s` one does).
    let kubectl = Kubectl::through(&gw, "k8s-cert", &token);
    // The stand-in answers 401 to a request without credentials: it was reached.
    assert_eq!(forwarded_fetch(&kubectl, &api, false), "401");
    assert_eq!(forwarded_fetch(&kubectl, &api, true), "401");
    let all = wait_for("both forwards recorded", Duration::from_secs(20), || {
        let all = all_events(&gw);
        let forwards = kinds(&all, "http")
            .iter()
            .filter(|e| {
                e["path"].as_str().unwrap_or("").contains("/portforward") && e["websocket"] == true
            })
            .count();
        (forwards == 2).then_some(all)
    });
    for e in kinds(&all, "http") {
        if e["path"].as_str().unwrap_or("").contains("/portforward") {
            assert!(e["request_bytes"].as_u64().unwrap() > 0, "{e}");
            assert!(e["response_bytes"].as_u64().unwrap() > 0, "{e}");
        }
    }
    let queries: Vec<&str> = kinds(&all, "query")
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(
        queries.contains(&"portforward pods web -n default"),
        "{queries:?}"
    );
}
