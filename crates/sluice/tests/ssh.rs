//! SSH through the gateway with real OpenSSH on both sides: a private `sshd` as the target
//! and the `ssh`/`scp`/`sftp` clients.

mod common;

use common::ssh::{kinds, ssh_command, ssh_exec, text, KeyPair, SshSetup, GUARD};
use common::wait_for;
use serde_json::Value;
use std::time::Duration;

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
    let fp = fingerprint_of(&stranger);
    let refused = s.gw.wait_audit("the refused key", |e| {
        e["action"] == "auth.connect"
            && e["outcome"] == "failure"
            && e["reason"].as_str().is_some_and(|r| r.contains(&fp))
    });
    assert_eq!(
        refused["reason"],
        format!("public-key login failed: {fp} is registered to no identity")
    );
    // One event for the attempt, not one more per key offered.
    let failures: Vec<Value> =
        s.gw.audit_log()
            .into_iter()
            .filter(|e| e["action"] == "auth.connect" && e["outcome"] == "failure")
            .collect();
    assert_eq!(failures.len(), 1, "{failures:?}");
}

/// `SHA256:…` of a key, as `ssh-keygen -l` prints it.
fn fingerprint_of(key: &KeyPair) -> String {
    let out = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key.public)
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// `ssh-keygen -s CA` signing `key` with `validity` (`-V`): a certificate OpenSSH made.
fn sign_with(ca: &std::path::Path, key: &KeyPair, name: &str, validity: &str) {
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(ca)
        .args(["-I", name, "-n", name, "-V", validity])
        .arg(&key.public)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn a_gateway_certificate_logs_in_until_it_expires() {
    let s = SshSetup::new("box", "");
    // A key registered to nobody: only the certificate vouches for it.
    let key = KeyPair::new(&s.sshd.dir, "cert-user");
    let public = key.public.to_str().unwrap();
    let issued =
        s.gw.cli_as(&s.token, &["ssh-cert", "--key", public, "--ttl", "1h"]);
    assert!(issued.status.success(), "{}", text(&issued.stderr));
    let cert = s.sshd.dir.join("cert-user-cert.pub");
    assert!(text(&std::fs::read(&cert).unwrap()).starts_with("ssh-ed25519-cert-v01@openssh.com "));
    let out = s.exec("box", "true");
    assert!(out.status.success());
    let out = ssh_exec(&s.gw, &key, "box", "echo by-certificate");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "by-certificate\n");
    s.gw.wait_audit("the issued certificate", |e| {
        e["action"] == "ssh.certificate.issue" && e["actor"]["name"] == s.identity.as_str()
    });
    // The same CA's certificate, expired (made with ssh-keygen and the gateway's CA key).
    let ca = s.gw.dir.join("data/ssh/user_ca_ed25519");
    sign_with(&ca, &key, &s.identity, "20200101:20200102");
    let out = ssh_exec(&s.gw, &key, "box", "true");
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("Permission denied (publickey)"));
    let fp = fingerprint_of(&key);
    s.gw.wait_audit("the failed login", |e| {
        e["action"] == "auth.connect"
            && e["outcome"] == "failure"
            && e["reason"].as_str().is_some_and(|r| r.contains(&fp))
    });
    // A certificate from another CA is refused, and the audit says why.
    let other_ca = KeyPair::new(&s.sshd.dir, "other-ca");
    sign_with(&other_ca.private, &key, &s.identity, "-5m:+1h");
    let out = ssh_exec(&s.gw, &key, "box", "true");
    assert_eq!(out.status.code(), Some(255));
    s.gw.wait_audit("the foreign certificate", |e| {
        e["action"] == "auth.connect"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("not signed by this gateway's SSH CA"))
    });
    // A blocked identity's valid certificate gets the reason, not a session.
    let issued = s.gw.cli_as(&s.token, &["ssh-cert", "--key", public]);
    assert!(issued.status.success(), "{}", text(&issued.stderr));
    s.gw.cli_ok(&["identities", "block", &s.identity]);
    let out = ssh_exec(&s.gw, &key, "box", "true");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("blocked"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn the_gateway_logs_in_to_a_target_with_a_short_lived_certificate_from_its_ca() {
    let s = SshSetup::new("box", "    ssh:\n      certificate: true\n");
    // The target does not trust the gateway's target CA yet: the bare gateway key in its
    // authorized_keys does not stand in for a certificate.
    let refused = s.exec("box", "true");
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("TrustedUserCAKeys"),
        "{}",
        text(&refused.stderr)
    );
    let ca = s.gw.cli_ok(&["ssh", "gateway-key", "--target-ca"]);
    assert!(ca.starts_with("ssh-ed25519 "), "{ca}");
    assert_ne!(ca, s.gw.cli_ok(&["ssh", "gateway-key"]));
    s.sshd.trust_user_ca(&ca);
    let out = s.exec("box", "echo in-by-certificate");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "in-by-certificate");
    // The target's own log names who the gateway logged in for.
    let id = format!("ID sluice identity={} connection=box", s.identity);
    wait_for("sshd logs the certificate", Duration::from_secs(10), || {
        s.sshd.log().contains(&id).then_some(())
    });
}

#[test]
fn clients_get_aes_gcm_by_default() {
    let s = SshSetup::new("box", "");
    // OpenSSH prefers ChaCha20-Poly1305; the gateway offers only AES-GCM unless configured.
    // (`ssh_command`'s LogLevel=ERROR would hide the negotiation.)
    let ssh = |extra: &[&str]| {
        std::process::Command::new("ssh")
            .args(["-p", &s.gw.ssh.unwrap().port().to_string(), "-i"])
            .arg(&s.key.private)
            .args(["-o", "IdentitiesOnly=yes", "-o", "StrictHostKeyChecking=no"])
            .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes"])
            .args(extra)
            .args(["box@127.0.0.1", "true"])
            .output()
            .unwrap()
    };
    let out = ssh(&["-v"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("kex: server->client cipher: aes128-gcm@openssh.com"),
        "{}",
        text(&out.stderr)
    );
    let chacha = ssh(&["-c", "chacha20-poly1305@openssh.com"]);
    assert!(!chacha.status.success());
    assert!(
        text(&chacha.stderr).contains("no matching cipher found"),
        "{}",
        text(&chacha.stderr)
    );
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

#[test]
fn a_killed_session_ends_at_once_with_a_message() {
    let s = SshSetup::new("box", "");
    // `cat` with an open stdin keeps the session alive until something ends it.
    let mut child = ssh_command(&s.gw, &s.key, "box")
        .arg("cat")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let session = wait_for("the live session", Duration::from_secs(20), || {
        s.gw.sessions()
            .into_iter()
            .find(|x| x["connection"] == "box")
            .map(|x| x["id"].as_str().unwrap().to_string())
    });
    s.gw.cli_ok(&["sessions", "kill", &session]);
    let _stdin = child.stdin.take();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("sluice:"),
        "{}",
        text(&out.stderr)
    );
    let ended = s.gw.wait_ended_session("box");
    let events = s.gw.events(&ended);
    assert_eq!(events.last().unwrap()["reason"], "killed");
}

#[test]
fn a_pinned_host_key_that_does_not_match_is_refused() {
    let sshd = common::ssh::Sshd::start();
    let other = KeyPair::new(&sshd.dir, "not-the-host");
    let policy = format!("    ssh:\n      host_key: \"{}\"\n", other.public_line());
    let gw = common::Gateway::start(&common::ssh::ssh_config(&sshd, "box", &policy));
    sshd.authorize(&gw.cli_ok(&["ssh", "gateway-key"]));
    let id = common::unique("eng");
    gw.named_service_account(&id, "ops");
    let key = KeyPair::new(&sshd.dir, "user");
    gw.cli_ok(&[
        "identities",
        "keys",
        "add",
        &id,
        "--key-file",
        key.public.to_str().unwrap(),
    ]);
    let out = ssh_exec(&gw, &key, "box", "echo reached");
    assert_eq!(out.status.code(), Some(1));
    assert!(!text(&out.stdout).contains("reached"));
    assert!(
        text(&out.stderr).contains("is not the key pinned for connection box"),
        "{}",
        text(&out.stderr)
    );
    gw.wait_audit("the refused target", |e| {
        e["action"] == "session.start"
            && e["outcome"] == "failure"
            && e["reason"].as_str().is_some_and(|r| r.contains("pinned"))
    });
}

#[test]
fn a_target_whose_host_key_changed_after_first_use_is_refused() {
    let s = SshSetup::new("box", "");
    assert!(
        s.exec("box", "true").status.success(),
        "first use records the key"
    );
    let SshSetup { sshd, gw, key, .. } = s;
    let _sshd = sshd.restart_with_new_host_key();
    let out = ssh_exec(&gw, &key, "box", "echo reached");
    assert!(!text(&out.stdout).contains("reached"));
    assert!(
        text(&out.stderr).contains("host key changed"),
        "{}",
        text(&out.stderr)
    );
    // After an administrator forgets the old key, the new one is trusted.
    gw.cli_ok(&["ssh", "forget-host-key", "box"]);
    let out = ssh_exec(&gw, &key, "box", "echo reached");
    assert_eq!(text(&out.stdout), "reached\n", "{}", text(&out.stderr));
}

#[test]
fn proxyjump_through_the_gateway_reaches_a_connection_recorded() {
    let s = SshSetup::new("box", "");
    let port = s.gw.ssh.unwrap().port();
    let options = format!(
        "  IdentityFile {}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
         UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n",
        s.key.private.display()
    );
    // `ssh -J` starts a second ssh for the jump; it reads the same config file.
    let config = s.sshd.dir.join("jump_config");
    std::fs::write(
        &config,
        format!(
            "Host gw\n  HostName 127.0.0.1\n  Port {port}\n  User jump\n\
             Host box nope\n  ProxyJump gw\nHost *\n{options}"
        ),
    )
    .unwrap();
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["box", "echo through-the-jump"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "through-the-jump\n");
    // One session, on the connection, by the identity; the jump itself is none.
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    assert_eq!(
        kinds(&events, "start")[0]["identity"]["name"],
        s.identity.as_str()
    );
    assert_eq!(
        kinds(&events, "channel")[0]["detail"],
        "echo through-the-jump"
    );
    assert_eq!(s.gw.sessions().len(), 1);
    // A jump to a connection that does not exist gets the reason.
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["nope", "true"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("connection \"nope\" does not exist"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn only_allowed_environment_variables_reach_the_target() {
    let s = SshSetup::new("box", "");
    // A connection added at runtime to the same target, letting `LC_*` and one name through
    // (the target's sshd would accept every `SECRET_*`).
    let port = s.sshd.addr.port().to_string();
    s.gw.cli_ok(&[
        "connections",
        "add",
        "box-env",
        "--type",
        "ssh",
        "--host",
        "127.0.0.1",
        "--port",
        &port,
        "--username",
        "root",
        "--env",
        "LC_*",
        "--env",
        "SECRET_TOKEN",
    ]);
    s.gw.grant("ops", "box-env");
    let run = |connection: &str| {
        let out = common::ssh::client("ssh", &s.gw, &s.key)
            .args([
                "-o",
                "SetEnv=LC_DEMO=hello SECRET_TOKEN=abc SECRET_OTHER=leaked",
                "-l",
                connection,
                "127.0.0.1",
                "echo \"[$LC_DEMO][$SECRET_TOKEN][$SECRET_OTHER]\"",
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout).trim().to_string()
    };
    assert_eq!(run("box-env"), "[hello][abc][]");
    // A connection with no allow-list passes nothing.
    assert_eq!(run("box"), "[][][]");
}
