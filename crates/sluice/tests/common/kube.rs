//! Kubernetes connections in tests: the API server stand-in (`tests/kube_standin.py`, a
//! stand-in because no real API server can run here), a gateway with `kubernetes`
//! connections to it, and real kubectl against either.
#![allow(dead_code)]

use super::ssh::kinds;
use super::{bin, unique, wait_for, Gateway};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The bearer token the stand-in accepts (the gateway's credential toward it).
pub const STANDIN_TOKEN: &str = "standin-token-Xq83Lm2Pz";

/// The Kubernetes API server stand-in, stopped on drop.
pub struct StandinApiServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub ca: String,
    pub client_cert: String,
    pub client_key: String,
}

impl StandinApiServer {
    pub fn start() -> StandinApiServer {
        let dir = std::env::temp_dir().join(unique("kube-standin"));
        std::fs::create_dir_all(&dir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/kube_standin.py");
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--dir", dir.to_str().unwrap(), "--token", STANDIN_TOKEN])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        let s = |k: &str| v[k].as_str().unwrap().to_string();
        StandinApiServer {
            child,
            port: v["port"].as_u64().unwrap() as u16,
            ca: s("ca"),
            client_cert: s("client_cert"),
            client_key: s("client_key"),
            dir,
        }
    }

    /// Every request the stand-in received: method, path, query, impersonation headers.
    pub fn calls(&self) -> Vec<Value> {
        let out = Command::new("curl")
            .args(["-sS", "--cacert", &self.ca])
            .arg(format!("https://127.0.0.1:{}/standin/calls", self.port))
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A kubeconfig that reaches the stand-in directly with its token.
    pub fn direct_kubeconfig(&self) -> PathBuf {
        let path = self.dir.join("direct.kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1
kind: Config
clusters: [{{name: standin, cluster: {{server: 'https://127.0.0.1:{}', certificate-authority: '{}'}}}}]
users: [{{name: admin, user: {{token: {STANDIN_TOKEN}}}}}]
contexts: [{{name: direct, context: {{cluster: standin, user: admin}}}}]
current-context: direct
",
                self.port, self.ca
            ),
        )
        .unwrap();
        path
    }
}

impl Drop for StandinApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The gateway config: connection `k8s` (bearer token, rules and masking) and `k8s-cert`
/// (client certificate, impersonating the identity), both granted to `engineering`.
pub fn config(api: &StandinApiServer, rules: &str) -> String {
    let rules: String = rules.lines().map(|l| format!("        {l}\n")).collect();
    format!(
        r#"listeners:
  postgres:
    address: 127.0.0.1:0
  api:
    address: 127.0.0.1:0
connections:
  - name: k8s
    type: kubernetes
    host: 127.0.0.1
    port: {port}
    password_env: SLUICE_TEST_KUBE_TOKEN
    kubernetes: {{ ca_file: {ca} }}
    masking: {{ detectors: [card_number] }}
    guardrails:
      rules:
{rules}
  - name: k8s-cert
    type: kubernetes
    host: 127.0.0.1
    port: {port}
    kubernetes: {{ ca_file: {ca}, client_cert_file: {cert}, client_key_file: {key}, impersonate: true }}
grants:
  - group: engineering
    connection: k8s
  - group: engineering
    connection: k8s-cert
"#,
        port = api.port,
        ca = api.ca,
        cert = api.client_cert,
        key = api.client_key,
    )
}

/// The rules most tests use.
pub const RULES: &str = "- name: no-node-delete
  action: deny
  reason: nodes are managed by the platform team
  match: { statements: [delete], resources: [nodes] }
- name: no-privileged-exec
  action: deny
  reason: exec into privileged pods is not allowed
  match: { statements: [exec, attach], pod_risks: [privileged, host_path, host_namespaces] }
- name: no-privileged-pods
  action: deny
  reason: privileged pods are not allowed
  match: { statements: [create, update, patch], pod_risks: [privileged] }
- name: no-rm-in-pods
  action: deny
  reason: rm in a pod is not allowed
  match: { statements: [rm] }
- name: no-configmaps-in-kube-system
  action: deny
  reason: kube-system is managed by the platform team
  match: { statements: [create, update, patch, delete], resources: [configmaps], namespaces: [kube-system] }
- name: no-port-forward
  action: deny
  reason: port forwarding is not allowed
  match: { statements: [portforward] }
- name: review-pod-delete
  action: review
  match: { statements: [delete], resources: [pods] }";

/// A gateway whose `k8s` connections reach `api`.
pub fn gateway(api: &StandinApiServer) -> Gateway {
    std::env::set_var("SLUICE_TEST_KUBE_TOKEN", STANDIN_TOKEN);
    Gateway::start(&config(api, RULES))
}

/// kubectl as one identity through one gateway connection, set up by `sluice kubeconfig`.
pub struct Kubectl {
    pub kubeconfig: PathBuf,
    home: PathBuf,
    token: String,
    /// Stream exec and attach over SPDY/3.1, as kubectl before 1.30 does.
    pub spdy: bool,
}

impl Kubectl {
    /// Runs `sluice kubeconfig CONNECTION` for `token` into a fresh kubeconfig.
    pub fn through(gw: &Gateway, connection: &str, token: &str) -> Kubectl {
        let home = std::env::temp_dir().join(unique("kube-home"));
        std::fs::create_dir_all(&home).unwrap();
        let kubeconfig = home.join("config");
        let out = gw.cli_as(
            token,
            &[
                "kubeconfig",
                connection,
                "--kubeconfig",
                kubeconfig.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Kubectl {
            kubeconfig,
            home,
            token: token.to_string(),
            spdy: false,
        }
    }

    /// kubectl straight to the stand-in.
    pub fn direct(api: &StandinApiServer) -> Kubectl {
        let home = std::env::temp_dir().join(unique("kube-home"));
        std::fs::create_dir_all(&home).unwrap();
        Kubectl {
            kubeconfig: api.direct_kubeconfig(),
            home,
            token: String::new(),
            spdy: false,
        }
    }

    /// The command line `kubectl ARGS` with this kubeconfig (and the token for the
    /// credential plugin in the environment).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new("kubectl");
        // A hang fails the test with kubectl's own message.
        c.arg("--request-timeout=60s")
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env("SLUICE_TOKEN", &self.token)
            .env_remove("SLUICE_ADDR");
        if self.spdy {
            c.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
        }
        c
    }

    /// Runs `kubectl ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Runs `kubectl ARGS`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The shell command line running kubectl with ARGS (for a terminal).
    pub fn shell_line(&self, args: &str) -> String {
        format!(
            "env KUBECONFIG={} HOME={} SLUICE_TOKEN={} KUBECTL_REMOTE_COMMAND_WEBSOCKETS={} kubectl {args}",
            self.kubeconfig.display(),
            self.home.display(),
            self.token,
            !self.spdy
        )
    }
}

impl Drop for Kubectl {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// The sluice binary (the kubeconfig's credential plugin).
pub fn sluice_bin() -> &'static str {
    bin()
}

/// The sessions of `gw` that recorded an exec or attach stream, with their events.
pub fn exec_sessions(gw: &Gateway) -> Vec<(String, Vec<Value>)> {
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
pub fn all_events(gw: &Gateway) -> Vec<Value> {
    gw.sessions()
        .into_iter()
        .flat_map(|s| gw.events(s["id"].as_str().unwrap()))
        .collect()
}

/// Starts `kubectl exec web -- sh -c 'echo started; exec sleep 600'` and waits until its
/// output is in a recording; the running kubectl and the session's id.
pub fn long_exec(gw: &Gateway, kubectl: &Kubectl) -> (Child, String) {
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
            exec_sessions(gw).into_iter().find(|(_, e)| {
                kinds(e, "io")
                    .iter()
                    .any(|io| io["data"].as_str().unwrap_or("").contains("started"))
            })
        },
    );
    (exec, id)
}
