//! File transfers through the SSH gateway with real OpenSSH on both sides: scp (SFTP and
//! legacy), sftp, their records and path rules.

mod common;

use common::ssh::{text, SshSetup};
use serde_json::Value;

fn sha256_of(path: &std::path::Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn scp_and_sftp_move_50_mb_both_ways_intact() {
    let s = SshSetup::new("box", "");
    let dir = s.sshd.dir.clone();
    let local = dir.join("upload.bin");
    let out = std::process::Command::new("head")
        .args(["-c", "50000000", "/dev/urandom"])
        .output()
        .unwrap();
    std::fs::write(&local, out.stdout).unwrap();
    let base = |cmd: &str| common::ssh::client(cmd, &s.gw, &s.key);
    // scp (SFTP mode, the default) up and down.
    let remote = dir.join("remote-scp.bin");
    let st = base("scp")
        .arg(&local)
        .arg(format!("box@127.0.0.1:{}", remote.display()))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(sha256_of(&remote), sha256_of(&local));
    let back = dir.join("back-scp.bin");
    let st = base("scp")
        .arg(format!("box@127.0.0.1:{}", remote.display()))
        .arg(&back)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(sha256_of(&back), sha256_of(&local));
    // Legacy scp protocol (-O runs `scp -t` / `scp -f` on the target).
    let legacy = dir.join("remote-legacy.bin");
    let st = base("scp")
        .arg("-O")
        .arg(&local)
        .arg(format!("box@127.0.0.1:{}", legacy.display()))
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(sha256_of(&legacy), sha256_of(&local));
    // sftp batch.
    let batch = dir.join("batch");
    let sftp_remote = dir.join("remote-sftp.bin");
    let sftp_back = dir.join("back-sftp.bin");
    std::fs::write(
        &batch,
        format!(
            "put {} {}\nget {} {}\n",
            local.display(),
            sftp_remote.display(),
            sftp_remote.display(),
            sftp_back.display()
        ),
    )
    .unwrap();
    let mut c = common::ssh::client("sftp", &s.gw, &s.key);
    c.arg("-b");
    let out = c.arg(&batch).arg("box@127.0.0.1").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(sha256_of(&sftp_back), sha256_of(&local));
    // Each file moved is recorded with its size and the SHA-256 of its content.
    let sum = sha256_of(&local);
    let files = file_events(&s.gw, 4);
    for (op, path) in [
        ("write", &remote),
        ("read", &remote),
        ("write", &legacy),
        ("write", &sftp_remote),
        ("read", &sftp_remote),
    ] {
        assert!(
            files.iter().any(|f| f["op"] == op
                && f["path"] == path.to_str().unwrap()
                && f["bytes"] == 50_000_000
                && f["sha256"] == sum.as_str()),
            "no {op} of {} in {files:?}",
            path.display()
        );
    }
    for f in [&local, &remote, &back, &legacy, &sftp_remote, &sftp_back] {
        let _ = std::fs::remove_file(f);
    }
}

/// The file operations recorded in the first `sessions` ended sessions.
fn file_events(gw: &common::Gateway, sessions: usize) -> Vec<Value> {
    gw.wait_ended_sessions(sessions)
        .iter()
        .flat_map(|session| gw.events(session["id"].as_str().unwrap()))
        .filter(|e| e["kind"] == "file")
        .collect()
}

#[test]
fn path_rules_refuse_sftp_and_scp_writes_with_the_reason() {
    let policy = "    guardrails:
      rules:
        - name: locked
          action: deny
          reason: the locked directory is read-only
          match: { statements: [file_write, file_rename, file_remove], paths: ['**/locked/**'] }
";
    let s = SshSetup::new("box", policy);
    let dir = s.sshd.dir.clone();
    std::fs::create_dir_all(dir.join("locked")).unwrap();
    std::fs::create_dir_all(dir.join("open")).unwrap();
    let local = dir.join("small.txt");
    std::fs::write(&local, "some text\n").unwrap();
    let sftp = |batch: &str| {
        let file = dir.join(common::unique("batch"));
        std::fs::write(&file, batch).unwrap();
        let mut c = common::ssh::client("sftp", &s.gw, &s.key);
        c.arg("-b")
            .arg(&file)
            .arg("box@127.0.0.1")
            .output()
            .unwrap()
    };
    let reason = "denied by rule \"locked\": the locked directory is read-only";
    // A write into the locked directory is refused by the gateway; sftp says why.
    let out = sftp(&format!(
        "put {} {}/locked/x\n",
        local.display(),
        dir.display()
    ));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(reason), "{}", text(&out.stderr));
    assert!(!dir.join("locked/x").exists());
    // Elsewhere it works, and so does reading; moving a file into the locked directory does not.
    let out = sftp(&format!(
        "put {l} {d}/open/y\nget {d}/open/y {d}/y-back\nrename {d}/open/y {d}/locked/y\n",
        l = local.display(),
        d = dir.display()
    ));
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(reason), "{}", text(&out.stderr));
    assert!(dir.join("open/y").exists() && dir.join("y-back").exists());
    assert!(!dir.join("locked/y").exists());
    // Legacy scp into the locked directory: the target's `scp -t` never runs.
    let out = common::ssh::client("scp", &s.gw, &s.key)
        .arg("-O")
        .arg(&local)
        .arg(format!("box@127.0.0.1:{}/locked/", dir.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(reason), "{}", text(&out.stderr));
    assert!(!dir.join("locked/small.txt").exists());
    let files = file_events(&s.gw, 3);
    let mut refused: Vec<_> = files
        .iter()
        .filter(|f| f["error"].as_str().is_some_and(|e| e.contains(reason)))
        .map(|f| f["op"].as_str().unwrap())
        .collect();
    refused.sort_unstable();
    assert_eq!(refused, ["rename", "write"], "{files:?}");
    assert!(files
        .iter()
        .any(|f| f["op"] == "write" && f["path"] == dir.join("open/y").to_str().unwrap()));
}

#[test]
fn a_target_without_sftp_refuses_it_and_the_client_is_told() {
    let s = SshSetup::with_sshd(common::ssh::Sshd::start_without_sftp(), "box", "");
    let dir = s.sshd.dir.clone();
    let local = dir.join("small.txt");
    std::fs::write(&local, "some text\n").unwrap();
    let told = "sluice: the target refused to start the sftp subsystem";

    let batch = dir.join("batch");
    std::fs::write(&batch, "ls\n").unwrap();
    let mut sftp = common::ssh::client("sftp", &s.gw, &s.key);
    sftp.arg("-b").arg(&batch).arg("box@127.0.0.1");
    let out = common::output_within_two_minutes(&sftp);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(told), "{}", text(&out.stderr));

    // scp's default (SFTP) mode fails the same way; nothing is written.
    let mut scp = common::ssh::client("scp", &s.gw, &s.key);
    scp.arg(&local)
        .arg(format!("box@127.0.0.1:{}/copy.txt", dir.display()));
    let out = common::output_within_two_minutes(&scp);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains(told), "{}", text(&out.stderr));
    assert!(!dir.join("copy.txt").exists());

    let refused = s.gw.wait_audit("the refused subsystem", |e| {
        e["action"] == "ssh.channel" && e["outcome"] == "failure"
    });
    assert_eq!(
        refused["reason"],
        "the target refused to start the sftp subsystem"
    );
    // Legacy scp needs no subsystem and still works through the same gateway.
    let mut legacy = common::ssh::client("scp", &s.gw, &s.key);
    legacy
        .arg("-O")
        .arg(&local)
        .arg(format!("box@127.0.0.1:{}/legacy.txt", dir.display()));
    let out = common::output_within_two_minutes(&legacy);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("legacy.txt")).unwrap(),
        "some text\n"
    );
}
