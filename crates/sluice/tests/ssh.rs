//! SSH through the gateway with real OpenSSH on both sides: a private `sshd` as the target
//! and the `ssh`/`scp`/`sftp` clients.

mod common;

use common::ssh::{ssh_command, ssh_exec, KeyPair, SshSetup};
use common::wait_for;
use serde_json::Value;
use std::time::Duration;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn kinds<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn exec_runs_with_its_exit_status_and_is_recorded() {
    let s = SshSetup::new("box", "");
    let out = s.exec("box", "echo hello from $(whoami); echo oops >&2; exit 3");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from root\n");
    assert_eq!(text(&out.stderr), "oops\n");

    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    let start = &events[0];
    assert_eq!(start["protocol"], "ssh");
    assert_eq!(start["identity"]["name"], s.identity.as_str());
    let channel = &kinds(&events, "channel")[0];
    assert_eq!(channel["purpose"], "exec");
    assert_eq!(
        channel["detail"],
        "echo hello from $(whoami); echo oops >&2; exit 3"
    );
    let io: Vec<String> = kinds(&events, "io")
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["stream"].as_str().unwrap(),
                e["data"].as_str().unwrap()
            )
        })
        .collect();
    assert!(io.contains(&"out:hello from root\n".to_string()), "{io:?}");
    assert!(io.contains(&"err:oops\n".to_string()), "{io:?}");
    assert_eq!(kinds(&events, "exit")[0]["status"], 3);
    let end = events.last().unwrap();
    assert_eq!(end["kind"], "end");
    s.gw.wait_audit("statement.allowed for the exec", |e| {
        e["action"] == "statement.allowed"
            && e["statement"]
                .as_str()
                .is_some_and(|t| t.contains("hello from"))
    });
}

#[test]
fn a_key_nobody_registered_is_refused_and_audited() {
    let s = SshSetup::new("box", "");
    let stranger = KeyPair::new(&s.sshd.dir, "stranger");
    let out = ssh_exec(&s.gw, &stranger, "box", "true");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        text(&out.stderr).contains("Permission denied (publickey)"),
        "{}",
        text(&out.stderr)
    );
    let fp = String::from_utf8(
        std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&stranger.public)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let fp = fp.split_whitespace().nth(1).unwrap().to_string();
    s.gw.wait_audit("the refused key", |e| {
        e["action"] == "auth.connect"
            && e["outcome"] == "failure"
            && e["reason"].as_str().is_some_and(|r| r.contains(&fp))
    });
}

#[test]
fn no_grant_gets_a_clear_message_and_the_target_is_never_opened() {
    let s = SshSetup::new("box", "");
    let key2 = KeyPair::new(&s.sshd.dir, "outsider");
    let outsider = common::unique("outsider");
    s.gw.named_service_account(&outsider, "nobody");
    s.gw.cli_ok(&[
        "identities",
        "keys",
        "add",
        &outsider,
        "--key-file",
        key2.public.to_str().unwrap(),
    ]);
    let out = ssh_exec(&s.gw, &key2, "box", "true");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("has no grant on connection \"box\""),
        "{}",
        text(&out.stderr)
    );
    let out = ssh_exec(&s.gw, &s.key, "nosuch", "true");
    assert!(
        text(&out.stderr).contains("connection \"nosuch\" does not exist"),
        "{}",
        text(&out.stderr)
    );
    assert!(s.gw.sessions().is_empty());
}

const GUARD: &str = "    guardrails:
      approvers: [security]
      rules:
        - name: no-rm
          action: deny
          reason: deleting files is not allowed here
          match: { statements: [rm, shred] }
        - name: review-restart
          action: review
          reason: restarts need approval
          match: { regex: '^systemctl restart' }
    masking:
      mask_client: true
";

#[test]
fn a_denied_exec_never_reaches_the_target() {
    let s = SshSetup::new("box", GUARD);
    let victim = s.sshd.dir.join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let out = s.exec("box", &format!("sudo /bin/rm -f {}", victim.display()));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("denied by rule \"no-rm\": deleting files is not allowed here"),
        "{}",
        text(&out.stderr)
    );
    assert!(victim.exists());
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    let guard = &kinds(&events, "guard")[0];
    assert_eq!(
        (guard["action"].as_str(), guard["rule"].as_str()),
        (Some("denied"), Some("no-rm"))
    );
    assert!(
        kinds(&events, "channel").is_empty(),
        "a refused exec opens no target command"
    );
    s.gw.wait_audit("statement.denied", |e| {
        e["action"] == "statement.denied" && e["rule"] == "no-rm"
    });
}

#[test]
fn secrets_in_output_are_masked_for_the_client_and_the_recording() {
    let s = SshSetup::new("box", GUARD);
    let file = s.sshd.dir.join("customers.txt");
    std::fs::write(
        &file,
        "alice 4111 1111 1111 1111 alice@example.com\nbob no secrets\n",
    )
    .unwrap();
    let out = s.exec("box", &format!("cat {}", file.display()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(
        !shown.contains("4111 1111 1111") && !shown.contains("alice@"),
        "{shown}"
    );
    assert!(shown.contains("bob no secrets"));
    assert_eq!(
        shown.len(),
        "alice 4111 1111 1111 1111 alice@example.com\nbob no secrets\n".len()
    );
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains("4111 1111 1111") && !all.contains("alice@example.com"));
    assert!(!kinds(&events, "masking").is_empty());
}

#[test]
fn a_held_command_runs_once_approved_from_another_process() {
    let s = SshSetup::new("box", GUARD);
    let approver =
        s.gw.named_service_account(&common::unique("sec"), "security");
    let child = ssh_command(&s.gw, &s.key, "box")
        .arg("systemctl restart --help >/dev/null 2>&1; echo approved-and-ran")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let review = s.gw.pending_review(&approver);
    let id = review["id"].as_str().unwrap();
    assert_eq!(review["rule"], "review-restart");
    let out = s.gw.cli_as(
        &approver,
        &["reviews", "approve", id, "--reason", "planned"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "approved-and-ran\n");
    assert!(
        text(&out.stderr).contains(&format!("held for review {id}")),
        "{}",
        text(&out.stderr)
    );
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    assert_eq!(kinds(&events, "decision")[0]["decision"], "approved");
}

#[test]
fn many_channels_on_one_connection_like_ansible() {
    let s = SshSetup::new("box", "");
    let control = s.sshd.dir.join("ctl");
    let ctl = format!("ControlPath={}", control.display());
    let mut master = ssh_command(&s.gw, &s.key, "box")
        .args(["-M", "-N", "-o", &ctl])
        .spawn()
        .unwrap();
    wait_for("the control master", Duration::from_secs(20), || {
        let out = ssh_command(&s.gw, &s.key, "box")
            .args(["-o", &ctl, "-O", "check"])
            .output()
            .unwrap();
        out.status.success().then_some(())
    });
    let children: Vec<_> = (0..50)
        .map(|i| {
            ssh_command(&s.gw, &s.key, "box")
                .args(["-o", &ctl])
                .arg(format!("echo channel-{i}"))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, c) in children.into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "channel {i}: {:?} {}",
            out.status,
            text(&out.stderr)
        );
        assert_eq!(text(&out.stdout), format!("channel-{i}\n"));
    }
    let _ = ssh_command(&s.gw, &s.key, "box")
        .args(["-o", &ctl, "-O", "exit"])
        .output();
    let _ = master.wait();
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    assert_eq!(kinds(&events, "exit").len(), 50);
    assert_eq!(s.gw.sessions().len(), 1, "one connection, one session");
}
