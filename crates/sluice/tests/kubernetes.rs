//! kubectl through the gateway (`type: kubernetes`), against the Kubernetes API server
//! stand-in (`tests/kube_standin.py`; no real API server can run on these machines), which
//! the first test checks with kubectl directly.

mod common;

use common::kube::{gateway, Kubectl, StandinApiServer};
use common::ssh::{kinds, text, Terminal};
use common::{wait_for, Gateway};
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

/// The sessions of `gw` that recorded an exec or attach stream, with their events.
fn exec_sessions(gw: &Gateway) -> Vec<(String, Vec<Value>)> {
    gw.sessions()
        .into_iter()
        .filter_map(|s| {
            let id = s["id"].as_str()?.to_string();
            let events = gw.events(&id);
            events
                .iter()
                .any(|e| e["kind"] == "channel")
                .then_some((id, events))
        })
        .collect()
}

/// All recorded events of every session on `gw` (each ended session is complete).
fn all_events(gw: &Gateway) -> Vec<Value> {
    gw.sessions()
        .into_iter()
        .flat_map(|s| gw.events(s["id"].as_str().unwrap()))
        .collect()
}

#[test]
fn the_stand_in_serves_kubectl_directly() {
    let api = StandinApiServer::start();
    let kubectl = Kubectl::direct(&api);
    let pods = kubectl.ok(&["get", "pods"]);
    assert!(pods.contains("web") && pods.contains("debug"), "{pods}");
    assert!(kubectl.ok(&["get", "nodes"]).contains("node-1"));
    let out = kubectl.run(&["exec", "web", "--", "sh", "-c", "echo from-pod; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-pod\n");
    let logs = kubectl.ok(&["logs", "web"]);
    assert!(logs.contains("4111 1111 1111 1111"), "{logs}");
}

#[test]
fn kubectl_works_through_the_gateway_recorded_and_masked() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    let kubectl = Kubectl::through(&gw, "k8s", &token);

    // Discovery, list and get work through the gateway.
    let pods = kubectl.ok(&["get", "pods"]);
    assert!(pods.contains("web") && pods.contains("doomed"), "{pods}");
    let node: Value =
        serde_json::from_str(&kubectl.ok(&["get", "node", "node-1", "-o", "json"])).unwrap();
    assert_eq!(node["metadata"]["name"], "node-1");

    // Logs and exec output are masked; exec keeps stdout, stderr and the exit code.
    let logs = kubectl.ok(&["logs", "web"]);
    assert!(logs.contains("**** **** **** 1111"), "{logs}");
    assert!(!logs.contains("4111 1111"), "{logs}");
    let out = kubectl.run(&[
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "echo card 4111111111111111 paid; echo oops >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "card ************1111 paid\n");
    assert!(text(&out.stderr).contains("oops"), "{}", text(&out.stderr));

    // stdin reaches the process.
    let mut child = kubectl
        .command(&["exec", "-i", "web", "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "through stdin\n");

    // The client sees Secret data; the recording never does.
    let password = kubectl.ok(&["get", "secret", "db", "-o", "jsonpath={.data.password}"]);
    assert_eq!(password, "czNjcjN0LVBhNTV3b3Jk");

    // The API server got the gateway's credential, never the client's token.
    let calls = api.calls();
    assert!(calls.iter().all(|c| c["bearer"] == true), "{calls:?}");

    let events = wait_for("the exec recordings", Duration::from_secs(20), || {
        let sessions = exec_sessions(&gw);
        (sessions.len() == 2).then_some(sessions)
    });
    let exec = events
        .iter()
        .flat_map(|(_, e)| e.iter())
        .filter(|e| e["kind"] == "channel")
        .map(|e| e["detail"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(
        exec.iter()
            .any(|d| d.starts_with("exec pods web -n default -- sh -c")),
        "{exec:?}"
    );
    let all = all_events(&gw);
    let io: String = kinds(&all, "io")
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert!(io.contains("card ************1111 paid"), "{io}");
    assert!(io.contains("through stdin"), "{io}");
    assert!(!io.contains("4111111111111111"));
    assert!(
        kinds(&all, "exit").iter().any(|e| e["status"] == 4),
        "{:?}",
        kinds(&all, "exit")
    );
    let everything = serde_json::to_string(&all).unwrap();
    assert!(
        !everything.contains("czNjcjN0LVBhNTV3b3Jk"),
        "Secret data was recorded"
    );
    assert!(
        !everything.contains("4111 1111 1111 1111"),
        "a card number was recorded"
    );
    let queries: Vec<&str> = kinds(&all, "query")
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert!(queries.contains(&"list pods -n default"), "{queries:?}");
    assert!(
        queries.contains(&"get secrets db -n default"),
        "{queries:?}"
    );
}

#[test]
fn guardrails_read_verbs_resources_pods_and_commands() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    let kubectl = Kubectl::through(&gw, "k8s", &token);

    let out = kubectl.run(&["delete", "node", "node-2"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("Forbidden") && err.contains("no-node-delete"),
        "{err}"
    );
    assert!(
        !api.calls().iter().any(|c| c["method"] == "DELETE"),
        "the denied delete reached the API server"
    );
    assert!(kubectl.ok(&["get", "nodes"]).contains("node-2"));

    // Exec into a privileged pod: the gateway read the pod's spec and refused.
    let out = kubectl.run(&["exec", "debug", "--", "id"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("no-privileged-exec"), "{err}");
    assert!(
        !api.calls()
            .iter()
            .any(|c| c["path"].as_str().unwrap().ends_with("/debug/exec")),
        "the denied exec reached the API server"
    );

    // Resource and namespace together: a ConfigMap in kube-system, with a body larger than
    // a stream window that the gateway never needed to read.
    let blob = std::env::temp_dir().join(common::unique("blob"));
    std::fs::write(&blob, "x".repeat(300_000)).unwrap();
    let out = kubectl.run(&[
        "create",
        "configmap",
        "platform",
        "-n",
        "kube-system",
        &format!("--from-file=blob={}", blob.display()),
    ]);
    let _ = std::fs::remove_file(&blob);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no-configmaps-in-kube-system"),
        "{}",
        text(&out.stderr)
    );

    // The command of an exec is judged like an SSH exec.
    let out = kubectl.run(&["exec", "web", "--", "rm", "-rf", "/tmp/important"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no-rm-in-pods"),
        "{}",
        text(&out.stderr)
    );

    // Creating a privileged pod is refused, a restricted one is not.
    let dir = std::env::temp_dir().join(common::unique("pods"));
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = |name: &str, security: &str| {
        let path = dir.join(format!("{name}.json"));
        std::fs::write(
            &path,
            format!(
                r#"{{"apiVersion": "v1", "kind": "Pod", "metadata": {{"name": "{name}"}},
                "spec": {{"containers": [{{"name": "main", "image": "busybox", "securityContext": {security}}}]}}}}"#
            ),
        )
        .unwrap();
        path
    };
    let bad = manifest("root-shell", r#"{"privileged": true}"#);
    // The stand-in serves no OpenAPI schemas for client-side validation.
    let out = kubectl.run(&["create", "--validate=false", "-f", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no-privileged-pods"),
        "{}",
        text(&out.stderr)
    );
    let good = manifest("worker", r#"{"runAsNonRoot": true, "runAsUser": 1000}"#);
    let created = kubectl.ok(&["create", "--validate=false", "-f", good.to_str().unwrap()]);
    assert!(created.contains("pod/worker created"), "{created}");
    let _ = std::fs::remove_dir_all(&dir);

    let all = all_events(&gw);
    let denied: Vec<&str> = kinds(&all, "guard")
        .iter()
        .map(|e| e["rule"].as_str().unwrap())
        .collect();
    for rule in [
        "no-node-delete",
        "no-privileged-exec",
        "no-rm-in-pods",
        "no-privileged-pods",
    ] {
        assert!(denied.contains(&rule), "{rule} not recorded in {denied:?}");
    }
}

#[test]
fn a_held_pod_delete_runs_once_approved() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    let kubectl = Kubectl::through(&gw, "k8s", &token);
    let delete = kubectl
        .command(&["delete", "pod", "doomed", "--wait=false"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let review = gw.pending_review(&gw.admin_token);
    assert_eq!(
        review["statement"], "delete pods doomed -n default",
        "{review}"
    );
    assert!(
        !api.calls().iter().any(|c| c["method"] == "DELETE"),
        "the held delete reached the API server before its approval"
    );
    gw.cli_ok(&["reviews", "approve", review["id"].as_str().unwrap()]);
    let out = delete.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("pod \"doomed\" deleted"),
        "{}",
        text(&out.stdout)
    );
    assert!(!kubectl.ok(&["get", "pods"]).contains("doomed"));
    let all = all_events(&gw);
    assert!(
        kinds(&all, "decision")
            .iter()
            .any(|e| e["decision"] == "approved"),
        "{:?}",
        kinds(&all, "decision")
    );
}

#[test]
fn impersonation_is_the_gateways_alone() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.named_service_account("ada", "engineering");

    // A client cannot impersonate anyone through the gateway.
    let kubectl = Kubectl::through(&gw, "k8s", &token);
    let out = kubectl.run(&["get", "pods", "--as", "cluster-admin"]);
    assert!(!out.status.success());
    // kubectl's discovery prints a 403 without its message; the audit event has the reason.
    assert!(
        text(&out.stderr).contains("Forbidden"),
        "{}",
        text(&out.stderr)
    );
    assert!(api.calls().is_empty(), "{:?}", api.calls());
    let event = gw.wait_audit("the refused impersonation", |e| {
        e["action"] == "kubernetes.impersonate" && e["outcome"] == "failure"
    });
    assert!(
        event["reason"]
            .as_str()
            .unwrap()
            .contains("impersonate-user"),
        "{event}"
    );

    // A connection may impersonate the identity itself (with its client certificate).
    let kubectl = Kubectl::through(&gw, "k8s-cert", &token);
    assert!(kubectl.ok(&["get", "pods"]).contains("web"));
    let calls = api.calls();
    let last = calls.last().unwrap();
    assert_eq!(
        last["bearer"], false,
        "the certificate connection sent a token"
    );
    assert_eq!(last["impersonate"]["impersonate-user"], "ada", "{last}");
    assert_eq!(
        last["impersonate"]["impersonate-group"], "engineering",
        "{last}"
    );
}

#[test]
fn an_interactive_exec_is_recorded_and_replayable() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    let kubectl = Kubectl::through(&gw, "k8s", &token);
    let prompt = |s: &str| s.lines().any(|l| l.trim_end().ends_with('#'));
    let term = Terminal::run(&kubectl.shell_line("exec -it web -- sh"), prompt);
    term.keys(&["echo card 4111111111111111 in pod; stty size", "Enter"]);
    term.wait("the command's output", |s| s.contains("30 120"));
    let screen = term.screen();
    assert!(screen.contains("card ************1111 in pod"), "{screen}");
    term.keys(&["exit", "Enter"]);
    let (id, events) = wait_for("the exec's recording", Duration::from_secs(20), || {
        exec_sessions(&gw)
            .into_iter()
            .find(|(_, e)| kinds(e, "exit").len() == 1)
    });
    assert!(kinds(&events, "resize")
        .iter()
        .any(|e| e["cols"] == 120 && e["rows"] == 30));
    let cast = gw.cli_ok(&["sessions", "export", &id, "--format", "asciicast"]);
    let header: Value = serde_json::from_str(cast.lines().next().unwrap()).unwrap();
    assert_eq!(header["version"], 2);
    assert!(cast.contains("card ************1111 in pod"), "{cast}");
    assert!(!cast.contains("4111111111111111"));
}

#[test]
fn a_killed_session_ends_the_exec_with_a_message() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");
    let kubectl = Kubectl::through(&gw, "k8s", &token);
    let exec = kubectl
        .command(&[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (id, _) = wait_for(
        "the exec's output in the recording",
        Duration::from_secs(20),
        || {
            exec_sessions(&gw).into_iter().find(|(_, e)| {
                kinds(e, "io")
                    .iter()
                    .any(|io| io["data"].as_str().unwrap_or("").contains("started"))
            })
        },
    );
    let out = gw.cli_ok(&["sessions", "kill", &id]);
    assert!(out.contains("killed"), "{out}");
    let done = exec.wait_with_output().unwrap();
    assert!(!done.status.success());
    let err = text(&done.stderr);
    assert!(err.contains("sluice"), "{err}");
    let ended = wait_for("the session's end", Duration::from_secs(10), || {
        gw.sessions()
            .into_iter()
            .find(|s| s["id"] == id.as_str() && s["end_reason"].is_string())
    });
    assert_eq!(ended["end_reason"], "killed");
    let events = gw.events(&id);
    assert_eq!(events.last().unwrap()["kind"], "end");
    assert!(kinds(&events, "channel_end").len() == 1, "{events:?}");
}

#[test]
fn bad_credentials_and_a_missing_api_server_get_clear_errors() {
    let api = StandinApiServer::start();
    let gw = gateway(&api);
    let token = gw.service_account("engineering");

    // A wrong token: kubectl's own "Unauthorized".
    let wrong = Kubectl::through(&gw, "k8s", "slc_not-a-real-token");
    let out = wrong.run(&["get", "pods"]);
    assert!(!out.status.success());
    // kubectl words a 401 as "You must be logged in to the server".
    assert!(
        text(&out.stderr).contains("logged in"),
        "{}",
        text(&out.stderr)
    );
    // An identity without a grant.
    let outsider = gw.service_account("marketing");
    let out = Kubectl::through(&gw, "k8s", &outsider).run(&["get", "pods"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("Forbidden"),
        "{}",
        text(&out.stderr)
    );

    // The API server goes away: a Status from the gateway, which keeps serving.
    let kubectl = Kubectl::through(&gw, "k8s", &token);
    assert!(kubectl.ok(&["get", "pods"]).contains("web"));
    drop(api);
    let out = kubectl.run(&["get", "nodes"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("did not answer"),
        "{}",
        text(&out.stderr)
    );
    assert!(gw.cli_ok(&["sessions", "list"]).contains("k8s"));
    gw.wait_audit("the failed upstream", |e| {
        e["action"] == "kubernetes.upstream" && e["outcome"] == "failure"
    });
}

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

    let long = kubectl
        .command(&[
            "exec",
            "web",
            "--",
            "sh",
            "-c",
            "echo started; exec sleep 600",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (id, _) = wait_for("the long exec's output", Duration::from_secs(20), || {
        exec_sessions(&gw).into_iter().find(|(_, e)| {
            kinds(e, "io")
                .iter()
                .any(|io| io["data"].as_str().unwrap_or("").contains("started"))
        })
    });
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
