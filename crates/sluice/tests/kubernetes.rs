//! kubectl through the gateway (`type: kubernetes`), against the Kubernetes API server
//! stand-in (`tests/kube_standin.py`; no real API server can run on these machines), which
//! the first test checks with kubectl directly.

mod common;

use common::kube::{all_events, exec_sessions, gateway, long_exec, Kubectl, StandinApiServer};
use common::ssh::{kinds, text, Terminal};
use common::wait_for;
use serde_json::Value;
use std::process::Stdio;
use std::time::Duration;

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
    let (exec, id) = long_exec(&gw, &kubectl);
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
