//! Command runtimes (`type: command`): real bash and python3 run by the gateway for
//! `sluice exec`, with stdin, exit statuses, injected secrets that never show, guardrails
//! (deny, and a hold an approver decides), masking, time and output limits, and kill.

mod common;

use common::{unique, wait_for, Gateway};
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

/// The injected secret (a file the gateway reads) and a key file.
const DEPLOY_TOKEN: &str = "dpl_7Hq2RrT9xWm4Zk";
const KEY_PEM: &str = "-----BEGIN TEST KEY-----\nQUJDREVGR0hJSktMTU5PUFFSU1RVVldY\nWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\n-----END TEST KEY-----\n";

struct Setup {
    gw: Gateway,
    /// Engineering: may run everything.
    alice: String,
    /// Security: approves.
    bob: String,
    /// No grant.
    mallory: String,
}

fn setup() -> Setup {
    let dir = std::env::temp_dir().join(unique("sluice-exec"));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("deploy-token");
    std::fs::write(&token_file, format!("{DEPLOY_TOKEN}\n")).unwrap();
    let key_file = dir.join("key.pem");
    std::fs::write(&key_file, KEY_PEM).unwrap();
    let config = format!(
        r#"listeners:
  postgres:
    address: 127.0.0.1:0
  api:
    address: 127.0.0.1:0
connections:
  - name: pg
    type: postgres
    host: 127.0.0.1
    port: 5432
    username: postgres
  - name: sh
    type: command
    command:
      program: bash
      client_args: true
      env: {{ STAGE: staging }}
      secrets:
        - {{ env: DEPLOY_TOKEN, from_file: {token} }}
      files:
        - {{ env: KEY_FILE, from_file: {key} }}
    guardrails:
      approvers: [security]
      rules:
        - name: no-rm-root
          action: deny
          reason: removing the root file system is not allowed
          match: {{ statements: [rm], regex: 'rm -[a-z]*r[a-z]* /( |$)' }}
        - name: restarts-need-approval
          action: review
          reason: restarting a service needs a second pair of eyes
          match: {{ statements: [systemctl] }}
    masking: {{}}
  - name: py
    type: command
    command: {{ program: python3, args: ["-"] }}
  - name: slow
    type: command
    command: {{ program: bash, timeout: 2s }}
  - name: chatty
    type: command
    command: {{ program: bash, max_output: 100000 }}
grants:
  - {{ group: engineering, connection: pg }}
  - {{ group: engineering, connection: sh }}
  - {{ group: engineering, connection: py }}
  - {{ group: engineering, connection: slow }}
  - {{ group: engineering, connection: chatty }}
"#,
        token = token_file.display(),
        key = key_file.display(),
    );
    let gw = Gateway::start_in(dir, &config);
    Setup {
        alice: gw.named_service_account(&unique("alice"), "engineering"),
        bob: gw.named_service_account(&unique("bob"), "security"),
        mallory: gw.named_service_account(&unique("mallory"), "contractors"),
        gw,
    }
}

/// `sluice exec` as `token`, not yet started.
fn exec_cmd(gw: &Gateway, token: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(common::bin());
    cmd.arg("exec")
        .args(args)
        .env("SLUICE_ADDR", format!("https://{}", gw.api))
        .env("SLUICE_TOKEN", token)
        .env("SLUICE_CA", gw.data().join("tls/ca.pem"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs `sluice exec ARGS` with `script` on stdin to the end.
fn exec(gw: &Gateway, token: &str, args: &[&str], script: &str) -> Output {
    spawn(gw, token, args, script).wait_with_output().unwrap()
}

/// Starts `sluice exec ARGS` with `script` on stdin (closed after it).
fn spawn(gw: &Gateway, token: &str, args: &[&str], script: &str) -> Child {
    let mut child = exec_cmd(gw, token, args).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).unwrap();
    drop(stdin);
    child
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The one session on `connection` once it ended, and its events.
fn ended(gw: &Gateway, connection: &str) -> (Value, Vec<Value>) {
    let id = gw.wait_ended_session(connection);
    let session = gw
        .sessions()
        .into_iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap();
    (session, gw.events(&id))
}

/// What was recorded of output `stream` (`out`, `err`).
fn recorded_output(events: &[Value], stream: &str) -> String {
    events
        .iter()
        .filter(|e| e["kind"] == "io" && e["stream"] == stream)
        .map(|e| e["data"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_bash_script_runs_with_stdin_output_exit_status_and_is_recorded() {
    let s = setup();
    // bash reads its script from stdin, as `bash < script` does: `read` takes the next line.
    let script = "echo \"hello from $STAGE\"\necho oops >&2\nread -r name\nAda Lovelace\necho \"name=$name\"\nexit 3\n";
    let out = exec(&s.gw, &s.alice, &["sh"], script);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from staging\nname=Ada Lovelace\n");
    assert_eq!(text(&out.stderr), "oops\n");

    let (session, events) = ended(&s.gw, "sh");
    assert_eq!(session["protocol"], "command");
    assert_eq!(session["end_reason"], "target_closed");
    let query = events.iter().find(|e| e["kind"] == "query").unwrap();
    assert_eq!(
        query["text"].as_str().unwrap(),
        format!("bash\n{script}"),
        "the command line and the script are recorded as judged"
    );
    let channel = events.iter().find(|e| e["kind"] == "channel").unwrap();
    assert_eq!(channel["purpose"], "exec");
    assert_eq!(channel["detail"], "bash");
    assert_eq!(
        recorded_output(&events, "out"),
        "hello from staging\nname=Ada Lovelace\n"
    );
    assert_eq!(recorded_output(&events, "err"), "oops\n");
    let exit = events.iter().find(|e| e["kind"] == "exit").unwrap();
    assert_eq!(exit["status"], 3);
}

#[test]
fn python3_reads_its_script_from_stdin_and_arguments_are_refused_where_not_taken() {
    let s = setup();
    let out = exec(
        &s.gw,
        &s.alice,
        &["py"],
        "import sys\nprint(sum(range(10)))\nsys.exit(7)\n",
    );
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "45\n");

    // `py` does not take client arguments: refused before anything runs.
    let out = exec(&s.gw, &s.alice, &["py", "--", "-c", "print(1)"], "");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("does not take arguments from clients"),
        "{}",
        text(&out.stderr)
    );
    // `sh` does: they go after the connection's own.
    let out = exec(
        &s.gw,
        &s.alice,
        &["sh", "--", "-c", "echo $0-$1", "a", "b"],
        "",
    );
    assert_eq!(text(&out.stdout), "a-b\n", "{}", text(&out.stderr));
}

#[test]
fn injected_secrets_reach_the_program_but_never_its_output_or_the_recording() {
    let s = setup();
    let script = "test \"$DEPLOY_TOKEN\" = dpl_7Hq2RrT9xWm4Zk && echo token-ok\n\
                  echo \"leak: $DEPLOY_TOKEN\"\n\
                  head -c 10 \"$KEY_FILE\"; echo\n\
                  cat \"$KEY_FILE\"\n\
                  env | grep -c SLUICE_ || true\n";
    let out = exec(&s.gw, &s.alice, &["sh"], script);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("token-ok\nleak: ******************\n-----BEGIN\n"),
        "{stdout}"
    );
    assert!(!stdout.contains(DEPLOY_TOKEN));
    assert!(
        !stdout.contains("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"),
        "{stdout}"
    );
    // The gateway's own environment does not leak into the program's.
    assert!(stdout.ends_with("0\n"), "{stdout}");

    let (session, events) = ended(&s.gw, "sh");
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(DEPLOY_TOKEN));
    assert!(!all.contains("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"));
    let masking = events.iter().find(|e| e["kind"] == "masking").unwrap();
    assert!(masking["counts"]["injected_secret"].as_u64().unwrap() >= 2);
    let files = common::files_containing(&s.gw.data(), DEPLOY_TOKEN);
    assert!(files.is_empty(), "the secret is on disk in {files:?}");
    assert!(!s.gw.log().contains(DEPLOY_TOKEN));
    assert_eq!(session["end_reason"], "target_closed");
}

#[test]
fn card_numbers_printed_by_a_script_are_masked_for_the_client_and_the_recording() {
    let s = setup();
    let out = exec(
        &s.gw,
        &s.alice,
        &["sh"],
        "echo 'card: 4111 1111 1111 1111 ok'\n",
    );
    assert_eq!(text(&out.stdout), "card: **** **** **** 1111 ok\n");
    let (_, events) = ended(&s.gw, "sh");
    assert_eq!(
        recorded_output(&events, "out"),
        "card: **** **** **** 1111 ok\n"
    );
    let masking = events.iter().find(|e| e["kind"] == "masking").unwrap();
    assert_eq!(masking["counts"]["card_number"], 1);
}

#[test]
fn a_script_with_a_denied_line_never_runs_and_the_denial_is_recorded_and_audited() {
    let s = setup();
    let marker = std::env::temp_dir().join(unique("never-created"));
    let script = format!(
        "touch {}\nsudo rm -rf / --no-preserve-root\n",
        marker.display()
    );
    let out = exec(&s.gw, &s.alice, &["sh"], &script);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains(
            "denied by rule \"no-rm-root\": removing the root file system is not allowed"
        ),
        "{}",
        text(&out.stderr)
    );
    assert!(!marker.exists(), "no line of a denied script runs");

    let (session, events) = ended(&s.gw, "sh");
    assert_eq!(session["end_reason"], "refused");
    let guard = events.iter().find(|e| e["kind"] == "guard").unwrap();
    assert_eq!(guard["action"], "denied");
    assert_eq!(guard["rule"], "no-rm-root");
    assert!(!events.iter().any(|e| e["kind"] == "channel"));
    s.gw.wait_audit("statement.denied", |e| {
        e["action"] == "statement.denied" && e["rule"] == "no-rm-root"
    });
}

#[test]
fn a_held_script_waits_for_an_approver_and_then_runs() {
    let s = setup();
    let script = "echo before\nsystemctl --version >/dev/null 2>&1 || true\necho after\n";
    let child = spawn(&s.gw, &s.alice, &["sh"], script);
    let review = s.gw.pending_review(&s.bob);
    assert_eq!(review["rule"], "restarts-need-approval");
    assert!(review["statement"]
        .as_str()
        .unwrap()
        .contains("systemctl --version"));
    let id = review["id"].as_str().unwrap();
    let ok =
        s.gw.cli_as(&s.bob, &["reviews", "approve", id, "--reason", "OPS-12"]);
    assert!(ok.status.success(), "{}", text(&ok.stderr));

    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "before\nafter\n");
    assert!(text(&out.stderr).contains(id), "{}", text(&out.stderr));
    let (_, events) = ended(&s.gw, "sh");
    let decision = events.iter().find(|e| e["kind"] == "decision").unwrap();
    assert_eq!(decision["decision"], "approved");
    assert_eq!(decision["reason"], "OPS-12");
}

#[test]
fn a_denied_review_does_not_run_the_script() {
    let s = setup();
    let marker = std::env::temp_dir().join(unique("not-created"));
    let script = format!("systemctl restart app\ntouch {}\n", marker.display());
    let child = spawn(&s.gw, &s.alice, &["sh"], &script);
    let review = s.gw.pending_review(&s.bob);
    let id = review["id"].as_str().unwrap();
    let no =
        s.gw.cli_as(&s.bob, &["reviews", "deny", id, "--reason", "not now"]);
    assert!(no.status.success(), "{}", text(&no.stderr));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("not now"),
        "{}",
        text(&out.stderr)
    );
    assert!(!marker.exists());
}

#[test]
fn a_run_past_its_time_limit_is_killed_with_everything_it_started() {
    let s = setup();
    let out = exec(
        &s.gw,
        &s.alice,
        &["slow"],
        "sleep 300 &\necho \"child $!\"\nwait\n",
    );
    assert_eq!(out.status.code(), Some(124), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ran past its time limit (2s) and was killed"),
        "{}",
        text(&out.stderr)
    );
    let pid: u32 = text(&out.stdout)
        .trim()
        .trim_start_matches("child ")
        .parse()
        .unwrap();
    assert_gone(pid);
    let (session, events) = ended(&s.gw, "slow");
    assert_eq!(session["end_reason"], "limit_exceeded");
    let exit = events.iter().find(|e| e["kind"] == "exit").unwrap();
    assert_eq!(exit["signal"], "KILL");
}

#[test]
fn a_run_past_its_output_limit_is_killed() {
    let s = setup();
    let out = exec(&s.gw, &s.alice, &["chatty"], "yes 0123456789abcdef\n");
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("more than its output limit (100000 bytes)"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.len() <= 100_000, "{}", out.stdout.len());
    let (session, _) = ended(&s.gw, "chatty");
    assert_eq!(session["end_reason"], "limit_exceeded");
}

#[test]
fn an_administrator_kills_a_running_script() {
    let s = setup();
    let mut child = spawn(
        &s.gw,
        &s.alice,
        &["sh"],
        "sleep 300 &\necho \"ready $!\"\nwait\n",
    );
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let pid: u32 = line.trim().trim_start_matches("ready ").parse().unwrap();
    // The session is committed within the writer's batch interval: wait for its row.
    let live = wait_for("the live session", Duration::from_secs(10), || {
        s.gw.sessions()
            .into_iter()
            .find(|x| x["connection"] == "sh" && !x["end_reason"].is_string())
    });
    let id = live["id"].as_str().unwrap();
    s.gw.cli_ok(&["sessions", "kill", id]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        text(&out.stderr).contains("killed"),
        "{}",
        text(&out.stderr)
    );
    assert_gone(pid);
    let (session, _) = ended(&s.gw, "sh");
    assert_eq!(session["end_reason"], "killed");
}

#[test]
fn refusals_before_a_run_are_clear_and_audited() {
    let s = setup();
    let no_grant = exec(&s.gw, &s.mallory, &["sh"], "echo hi\n");
    assert_eq!(no_grant.status.code(), Some(125));
    assert!(text(&no_grant.stderr).contains("has no grant on connection \"sh\""));
    let bad_token = exec(&s.gw, "not-a-token", &["sh"], "echo hi\n");
    assert_eq!(bad_token.status.code(), Some(125));
    assert!(
        text(&bad_token.stderr).contains("authentication failed"),
        "{}",
        text(&bad_token.stderr)
    );
    let unknown = exec(&s.gw, &s.alice, &["nope"], "echo hi\n");
    assert!(text(&unknown.stderr).contains("connection \"nope\" does not exist"));
    let wrong_type = exec(&s.gw, &s.alice, &["pg"], "");
    assert_eq!(wrong_type.status.code(), Some(125));
    assert!(
        text(&wrong_type.stderr).contains("is a postgres connection, not command"),
        "{}",
        text(&wrong_type.stderr)
    );
    s.gw.wait_audit("the refused grant", |e| {
        e["action"] == "auth.connect" && e["outcome"] == "failure" && e["connection"] == "sh"
    });
    // Nothing was recorded as a session, and the gateway still serves others.
    assert!(s.gw.sessions().is_empty());
    let ok = exec(&s.gw, &s.alice, &["sh"], "echo still-here\n");
    assert_eq!(text(&ok.stdout), "still-here\n");
}

/// Waits until process `pid` is gone (or a zombie nobody waits for).
fn assert_gone(pid: u32) {
    let stat = PathBuf::from(format!("/proc/{pid}/stat"));
    wait_for(
        "the program's process to be gone",
        Duration::from_secs(10),
        || match std::fs::read_to_string(&stat) {
            Err(_) => Some(()),
            Ok(s) => s
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
                .then_some(()),
        },
    );
}

#[test]
fn sluice_connect_opens_a_terminal_whose_lines_are_judged_masked_and_recorded() {
    let s = setup();
    let command = format!(
        "env SLUICE_ADDR=https://{} SLUICE_TOKEN={} SLUICE_CA={} {} connect sh; echo \"connect exited $?\"; sleep 600",
        s.gw.api,
        s.alice,
        s.gw.data().join("tls/ca.pem").display(),
        common::bin()
    );
    // The gateway's bash, as root on this machine: Debian's prompt ends in `#`.
    let term = common::ssh::Terminal::run(&command, |screen| {
        screen.trim_end().ends_with('#') || screen.trim_end().ends_with('$')
    });
    term.keys(&["echo interactive-$((6*7))", "Enter"]);
    term.wait("the command's output", |screen| {
        screen.lines().any(|l| l.trim() == "interactive-42")
    });
    term.keys(&["rm -rf / --no-preserve-root", "Enter"]);
    // The reason, then the shell's new prompt (keys typed before it would reach the
    // terminal driver, not the line editor, as without the gateway).
    term.wait("the denial and a new prompt", |screen| {
        screen
            .contains("denied by rule \"no-rm-root\": removing the root file system is not allowed")
            && screen.trim_end().ends_with('#')
    });
    term.keys(&["echo \"token=$DEPLOY_TOKEN\"", "Enter"]);
    term.wait("the masked secret", |screen| {
        screen.contains("token=******************")
    });
    // A background job, in a process group of its own, ends with the session.
    term.keys(&["sleep 300 & echo \"job $!\"", "Enter"]);
    let job: u32 = wait_for("the job's pid", Duration::from_secs(20), || {
        term.screen()
            .lines()
            .find_map(|l| l.trim().strip_prefix("job ")?.parse().ok())
    });
    term.keys(&["exit 4", "Enter"]);
    term.wait("sluice connect's exit", |screen| {
        screen.contains("connect exited 4")
    });
    assert_gone(job);

    assert!(!term.screen().contains(DEPLOY_TOKEN));

    let (session, events) = ended(&s.gw, "sh");
    assert_eq!(session["end_reason"], "target_closed");
    let channel = events.iter().find(|e| e["kind"] == "channel").unwrap();
    assert_eq!(channel["purpose"], "shell");
    assert_eq!(channel["pty"]["cols"], 120);
    let lines: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "query")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        lines,
        [
            "bash",
            "echo interactive-$((6*7))",
            "rm -rf / --no-preserve-root",
            "echo \"token=$DEPLOY_TOKEN\"",
            "sleep 300 & echo \"job $!\"",
            "exit 4"
        ]
    );
    let guard = events.iter().find(|e| e["kind"] == "guard").unwrap();
    assert_eq!(guard["rule"], "no-rm-root");
    assert!(recorded_output(&events, "out").contains("interactive-42"));
    assert!(!serde_json::to_string(&events)
        .unwrap()
        .contains(DEPLOY_TOKEN));
    let exit = events.iter().find(|e| e["kind"] == "exit").unwrap();
    assert_eq!(exit["status"], 4);
    // The session plays back as a terminal recording.
    let cast = s.gw.cli_ok(&[
        "sessions",
        "export",
        session["id"].as_str().unwrap(),
        "--format",
        "asciicast",
    ]);
    assert!(cast.contains("interactive-42"), "{cast}");
}
