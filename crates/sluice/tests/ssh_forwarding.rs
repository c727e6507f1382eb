//! Forwarding through the gateway with real OpenSSH on both sides: `-L` to the destinations a
//! connection lists; `-R` and agent forwarding only where a connection enables them.

mod common;

use common::ssh::{free_port, kinds, ssh_command, text, KeyPair, SshSetup};
use common::{unique, wait_for};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `select 40 + 2` on the machine's PostgreSQL reached at `port`, once something answers there.
fn psql_through(port: u16) -> String {
    let out = wait_for("psql through the forward", Duration::from_secs(20), || {
        let out = Command::new("psql")
            .args(["-X", "-At", "-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-U", "postgres", "-d", "test", "-c", "select 40 + 2"])
            .output()
            .unwrap();
        out.status.success().then_some(out)
    });
    text(&out.stdout).trim().to_string()
}

/// A private `ssh-agent` holding one key, for `ssh -A`.
struct Agent {
    child: Child,
    sock: PathBuf,
}

impl Agent {
    fn start(dir: &Path, key: &KeyPair) -> Agent {
        let sock = dir.join(format!("{}.sock", unique("agent")));
        let child = Command::new("ssh-agent")
            .args(["-D", "-a"])
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent starts");
        wait_for("ssh-agent listening", Duration::from_secs(10), || {
            sock.exists().then_some(())
        });
        let added = Command::new("ssh-add")
            .arg(&key.private)
            .env("SSH_AUTH_SOCK", &sock)
            .output()
            .unwrap();
        assert!(added.status.success(), "{}", text(&added.stderr));
        Agent { child, sock }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn local_forwarding_reaches_an_allowed_destination_only() {
    let policy = "    ssh:\n      forward_to: [\"127.0.0.1:5432\"]\n";
    let s = SshSetup::new("box", policy);
    let (pg_port, denied_port) = (free_port(), free_port());
    let mut tunnel = ssh_command(&s.gw, &s.key, "box")
        .args(["-N", "-o", "ExitOnForwardFailure=yes"])
        .arg("-L")
        .arg(format!("{pg_port}:127.0.0.1:5432"))
        .arg("-L")
        .arg(format!("{denied_port}:127.0.0.1:22"))
        .spawn()
        .unwrap();
    assert_eq!(psql_through(pg_port), "42");
    // The local end listens, but the gateway refuses the channel: nothing answers.
    let mut denied = std::net::TcpStream::connect(("127.0.0.1", denied_port)).unwrap();
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut denied, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "no SSH banner from a refused forward");
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    let fwd = kinds(&events, "channel");
    assert!(fwd
        .iter()
        .any(|c| c["purpose"] == "forward" && c["detail"] == "127.0.0.1:5432"));
    assert!(kinds(&events, "channel_end")
        .iter()
        .any(|e| e["bytes_down"].as_u64().unwrap() > 0));
    s.gw.wait_audit("the refused forward", |e| {
        e["action"] == "ssh.forward"
            && e["outcome"] == "failure"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("forwarding to 127.0.0.1:22 is not allowed"))
    });

    // -R and agent forwarding are off on this connection: refused, audited, the session goes on.
    let agent = Agent::start(&s.sshd.dir, &s.key);
    let remote = ssh_command(&s.gw, &s.key, "box")
        .args(["-o", "ExitOnForwardFailure=yes", "-R"])
        .arg(format!("{}:127.0.0.1:5432", free_port()))
        .arg("true")
        .output()
        .unwrap();
    assert!(!remote.status.success());
    assert!(
        text(&remote.stderr).contains("remote port forwarding failed"),
        "{}",
        text(&remote.stderr)
    );
    let no_agent = ssh_command(&s.gw, &s.key, "box")
        .arg("-A")
        .env("SSH_AUTH_SOCK", &agent.sock)
        .arg("ssh-add -l")
        .output()
        .unwrap();
    assert_eq!(
        no_agent.status.code(),
        Some(2),
        "{}",
        text(&no_agent.stdout)
    );
    assert!(
        text(&no_agent.stderr).contains("Could not open a connection to your authentication agent"),
        "{}",
        text(&no_agent.stderr)
    );
    for action in ["ssh.remote_forward", "ssh.agent_forward"] {
        s.gw.wait_audit(action, |e| {
            e["action"] == action
                && e["outcome"] == "failure"
                && e["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("not allowed on this connection"))
        });
    }
}

#[test]
fn remote_forwarding_listens_on_the_target_when_the_connection_allows_it() {
    let s = SshSetup::new("box", "    ssh:\n      remote_forwarding: true\n");
    let port = free_port();
    let mut tunnel = ssh_command(&s.gw, &s.key, "box")
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-R"])
        .arg(format!("{port}:127.0.0.1:5432"))
        .spawn()
        .unwrap();
    // The target (sshd on this machine) listens on `port`; each connection comes back through
    // the gateway to the client, which reaches PostgreSQL.
    assert_eq!(psql_through(port), "42");
    let _ = tunnel.kill();
    let _ = tunnel.wait();
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    let channels = kinds(&events, "channel");
    let forward = channels
        .iter()
        .find(|c| c["purpose"] == "remote-forward")
        .unwrap_or_else(|| panic!("no remote-forward channel in {channels:?}"));
    assert!(forward["detail"]
        .as_str()
        .is_some_and(|d| d.contains(&format!(":{port} on the target"))));
    let end = kinds(&events, "channel_end")
        .into_iter()
        .find(|e| e["channel"] == forward["channel"])
        .unwrap();
    assert!(end["bytes_up"].as_u64().unwrap() > 0 && end["bytes_down"].as_u64().unwrap() > 0);
    s.gw.wait_audit("the remote forward", |e| {
        e["action"] == "ssh.remote_forward"
            && e["outcome"] == "success"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains(&format!(":{port} on the target")))
    });
}

#[test]
fn agent_forwarding_lets_the_target_use_the_clients_agent_when_allowed() {
    let s = SshSetup::new("box", "    ssh:\n      agent_forwarding: true\n");
    // The person's key also opens the target directly: a hop from the target onwards works
    // only with their forwarded agent (the target holds no key of theirs).
    s.sshd.authorize(&s.key.public_line());
    let agent = Agent::start(&s.sshd.dir, &s.key);
    let hop = format!(
        "ssh -p {} -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
         -o LogLevel=ERROR -o IdentityFile=/nonexistent root@127.0.0.1 echo hopped-with-the-agent",
        s.sshd.addr.port()
    );
    let out = ssh_command(&s.gw, &s.key, "box")
        .arg("-A")
        .env("SSH_AUTH_SOCK", &agent.sock)
        .arg(&hop)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "hopped-with-the-agent");
    let session = s.gw.wait_ended_session("box");
    let events = s.gw.events(&session);
    assert!(kinds(&events, "channel")
        .iter()
        .any(|c| c["purpose"] == "agent"));
    s.gw.wait_audit("the agent forwarding", |e| {
        e["action"] == "ssh.agent_forward" && e["outcome"] == "success"
    });
}
